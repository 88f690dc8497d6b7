//! Whether a training run fits in the memory available now: checked in
//! planning, once the texts are counted and before anything large is
//! allocated.
use anyhow::{bail, Result};

use crate::data::memory::{available_memory, padded_texts_bytes};
use crate::data::DataConfig;
use crate::model::ModelConfig;
use crate::settings::defaults;
use crate::train::TrainConfig;

/// Refuses settings whose training cannot fit in the memory available now,
/// before anything is allocated, naming the flag that asks for the most.
/// The estimate counts the prepared arrays, the parameters with their
/// gradients and Adam's two moments, the evaluation table, and one batch's
/// record of the recurrence; what libtorch adds on top is small beside it.
/// `samples` counts the texts of both splits.
pub fn check_memory(
    data: &DataConfig,
    model: &ModelConfig,
    train: &TrainConfig,
    samples: usize,
) -> Result<()> {
    match available_memory() {
        Some(available) => check_memory_within(data, model, train, samples, available),
        None => Ok(()),
    }
}

/// A flag and how many times its default it is.
#[derive(Debug, Clone, Copy)]
struct FlagSize {
    flag: &'static str,
    above_default: f64,
}

impl FlagSize {
    fn new(flag: &'static str, value: usize, default: usize) -> FlagSize {
        FlagSize {
            flag,
            above_default: value as f64 / default as f64,
        }
    }
}

/// A part of the memory estimate: what it holds, its bytes, and the flags
/// it grows with.
struct MemoryNeed {
    what: &'static str,
    bytes: f64,
    flags: Vec<FlagSize>,
}

impl MemoryNeed {
    /// The flag that made this part large: the one furthest above its
    /// default (the first when none is further than the others).
    fn flag(&self) -> &'static str {
        let furthest = self.flags.iter().fold(self.flags[0], |most, f| {
            if f.above_default > most.above_default {
                *f
            } else {
                most
            }
        });
        furthest.flag
    }
}

/// The parts of [`check_memory`]'s estimate.
fn memory_needs(
    data: &DataConfig,
    model: &ModelConfig,
    train: &TrainConfig,
    samples: usize,
) -> [MemoryNeed; 5] {
    let (n, d, h) = (
        model.max_features as f64,
        model.embedding_dim as f64,
        model.units as f64,
    );
    let (t, b) = (data.maxlen as f64, train.batch_size as f64);
    let max_features = FlagSize::new("--max-features", model.max_features, defaults::MAX_FEATURES);
    let embedding_dim = FlagSize::new(
        "--embedding-dim",
        model.embedding_dim,
        defaults::EMBEDDING_DIM,
    );
    let units = FlagSize::new("--units", model.units, defaults::UNITS);
    let maxlen = FlagSize::new("--maxlen", data.maxlen, defaults::MAXLEN);
    let batch_size = FlagSize::new("--batch-size", train.batch_size, defaults::BATCH_SIZE);
    const F32: f64 = 4.0;
    // Parameter, gradient and two moments per weight.
    let per_weight = 4.0 * F32;
    [
        MemoryNeed {
            what: "the padded texts",
            bytes: padded_texts_bytes(samples, data.maxlen),
            flags: vec![maxlen],
        },
        MemoryNeed {
            what: "the embedding table",
            bytes: n * d * per_weight,
            flags: vec![max_features, embedding_dim],
        },
        MemoryNeed {
            what: "the evaluation table",
            bytes: n * 3.0 * h * F32,
            flags: vec![max_features, units],
        },
        MemoryNeed {
            what: "the GRU's weights",
            bytes: (3.0 * h * (d + h + 2.0) + h + 1.0) * per_weight,
            flags: vec![units, embedding_dim],
        },
        MemoryNeed {
            what: "one batch's record of the recurrence",
            bytes: b * t * (14.0 * h + 4.0 * d) * F32,
            flags: vec![batch_size, maxlen, units, embedding_dim],
        },
    ]
}

/// [`check_memory`] against `available` bytes. Each part of the estimate
/// is put on the flag that made it large ([`MemoryNeed::flag`]), and the
/// flag with the most is named: a huge --embedding-dim is named for the
/// embedding table, not --max-features.
fn check_memory_within(
    data: &DataConfig,
    model: &ModelConfig,
    train: &TrainConfig,
    samples: usize,
    available: f64,
) -> Result<()> {
    let needs = memory_needs(data, model, train, samples);
    let total: f64 = needs.iter().map(|need| need.bytes).sum();
    if total <= available {
        return Ok(());
    }
    // The parts by flag, in the order the flags first come.
    let mut by_flag: Vec<(&str, f64, Vec<&str>)> = Vec::new();
    for need in &needs {
        let flag = need.flag();
        match by_flag.iter_mut().find(|(f, _, _)| *f == flag) {
            Some((_, bytes, whats)) => {
                *bytes += need.bytes;
                whats.push(need.what);
            }
            None => by_flag.push((flag, need.bytes, vec![need.what])),
        }
    }
    let (flag, most, whats) = by_flag
        .iter()
        .fold(&by_flag[0], |a, b| if b.1 > a.1 { b } else { a });
    let whats = match whats.as_slice() {
        [init @ .., last] if !init.is_empty() => format!("{} and {last}", init.join(", ")),
        _ => whats.join(""),
    };
    let gib = |bytes: f64| bytes / (1u64 << 30) as f64;
    bail!(
        "these settings need about {:.1} GiB, most of it for {flag} ({:.1} GiB: {whats}), \
         but {:.1} GiB of memory is available: lower {flag}",
        gib(total),
        gib(*most),
        gib(available)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    use crate::data::memory::IMDB_REVIEWS;
    use crate::optim::{AdamConfig, Optimizer};
    use crate::train::CallbackConfig;

    const GIB: f64 = (1u64 << 30) as f64;

    /// The tutorial's settings, with `change` applied to the flags.
    fn refusal(samples: usize, change: impl Fn(&mut DataConfig, &mut ModelConfig)) -> String {
        let mut data = DataConfig {
            data_dir: PathBuf::from(defaults::DATA_DIR),
            url: String::new(),
            sha256: None,
            max_features: defaults::MAX_FEATURES,
            maxlen: defaults::MAXLEN,
            progress: false,
        };
        let mut model = ModelConfig {
            max_features: defaults::MAX_FEATURES,
            embedding_dim: defaults::EMBEDDING_DIM,
            units: defaults::UNITS,
            dropout: defaults::DROPOUT,
            recurrent_dropout: defaults::RECURRENT_DROPOUT,
            classes: 2,
        };
        change(&mut data, &mut model);
        model.max_features = data.max_features;
        let train = TrainConfig {
            epochs: defaults::EPOCHS,
            batch_size: defaults::BATCH_SIZE,
            validation_batch_size: defaults::BATCH_SIZE,
            adam: AdamConfig {
                learning_rate: defaults::LEARNING_RATE,
                beta_1: defaults::BETA_1,
                beta_2: defaults::BETA_2,
                epsilon: defaults::EPSILON,
            },
            optimizer: Optimizer::Adam,
            validation_split: None,
            callbacks: CallbackConfig::default(),
            history_every_steps: None,
        };
        assert!(check_memory_within(&data, &model, &train, samples, 1e3 * GIB).is_ok());
        check_memory_within(&data, &model, &train, samples, GIB / 4.0)
            .expect_err("a quarter of a GiB is too little")
            .to_string()
    }

    #[test]
    fn a_huge_embedding_dim_is_named_for_the_embedding_table_not_max_features() {
        let err = refusal(IMDB_REVIEWS, |_, model| model.embedding_dim = 40_000);
        assert!(
            err.contains("most of it for --embedding-dim (")
                && err.contains("the embedding table")
                && err.ends_with("lower --embedding-dim"),
            "{err}"
        );
        assert!(!err.contains("--max-features"), "{err}");
    }

    #[test]
    fn a_huge_max_features_is_named_for_the_embedding_table_not_embedding_dim() {
        let err = refusal(IMDB_REVIEWS, |data, _| data.max_features = 2_000_000);
        assert!(
            err.contains("most of it for --max-features (")
                && err.contains("the embedding table and the evaluation table")
                && err.ends_with("lower --max-features"),
            "{err}"
        );
    }

    #[test]
    fn a_huge_maxlen_is_named_for_the_texts_and_the_batch_it_lengthens() {
        // Three texts: the batch's record, not the texts, is most of it.
        let err = refusal(3, |data, _| data.maxlen = 1_000_000);
        assert!(
            err.contains("most of it for --maxlen (")
                && err.contains("the padded texts and one batch's record of the recurrence")
                && err.ends_with("lower --maxlen"),
            "{err}"
        );
    }
}
