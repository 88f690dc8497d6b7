//! What `train` trains on: IMDB's arrays, or a user's texts with their
//! classes; and the part of it that validates.
use anyhow::{bail, ensure, Result};

use super::memory_estimate::check_memory;
use crate::data::memory::IMDB_REVIEWS;
use crate::data::texts::{self, TextsConfig};
use crate::data::{self, Dataset, Split, VocabularySummary};
use crate::progress::Verbosity;
use crate::run_config::{RunConfig, TextsSource};
use crate::settings::TrainSettings;

pub(super) struct TrainingData {
    pub dataset: Dataset,
    /// `None` for IMDB.
    pub texts: Option<LoadedTexts>,
    /// sha256 of what the arrays were made from: IMDB's archive, or the
    /// user's texts and how they were read.
    pub data_sha256: String,
}

/// A user's texts beside their arrays.
pub(super) struct LoadedTexts {
    /// By class (the value in `y`).
    pub class_names: Vec<String>,
    pub source: TextsSource,
    pub summary: VocabularySummary,
}

impl TrainingData {
    /// IMDB, or the user's texts of `settings.texts`, checked against
    /// the memory available once their count is known and before they are
    /// padded.
    pub fn load(settings: &TrainSettings) -> Result<TrainingData> {
        let fits =
            |samples| check_memory(&settings.data, &settings.model, &settings.train, samples);
        let Some(files) = &settings.texts else {
            fits(IMDB_REVIEWS)?;
            let imdb = data::load_imdb(&settings.data)?;
            return Ok(TrainingData {
                dataset: imdb.dataset,
                texts: None,
                data_sha256: imdb.archive_sha256,
            });
        };
        // Checked once the texts are counted and before they are padded:
        // a huge --maxlen would be killed for its memory before a later
        // check.
        let config = TextsConfig::new(&settings.data, files.clone());
        let loaded = texts::load_texts_checking(&config, &fits)?;
        Ok(TrainingData {
            dataset: loaded.dataset,
            data_sha256: loaded.sha256.clone(),
            texts: Some(LoadedTexts {
                class_names: loaded.class_names,
                source: TextsSource {
                    files: files.clone(),
                    sha256: loaded.sha256,
                    tokenizer: loaded.tokenizer,
                },
                summary: loaded.summary,
            }),
        })
    }

    /// The classes the model tells apart: IMDB's two, or the texts'.
    pub fn classes(&self) -> usize {
        self.texts.as_ref().map_or(2, |t| t.class_names.len())
    }

    /// The training split, and the validation split when
    /// `--validation-split` takes one from it (else validation is on the
    /// test set, as in the tutorial): Keras's last fraction. IMDB's arrays
    /// are in the contract's order, all negative reviews first, so as
    /// Keras's `imdb.load_data` they are first put in a fixed shuffled
    /// order; a user's file is split in its own order, as Keras splits.
    pub fn split_validation(&self, settings: &TrainSettings) -> Result<(Split, Option<Split>)> {
        let train = &self.dataset.train;
        let Some(fraction) = settings.train.validation_split else {
            return Ok((train.clone(), None));
        };
        let (fit, validation) = match self.texts {
            None => train.in_shuffled_order().split_last(fraction),
            Some(_) => train.split_last(fraction),
        };
        ensure!(
            !fit.is_empty() && !validation.is_empty(),
            "--validation-split {fraction} of {} training texts leaves {} to train on and {} \
             to validate on; both need at least one",
            train.len(),
            fit.len(),
            validation.len()
        );
        Ok((fit, Some(validation)))
    }

    /// For a user's texts: the vocabulary's summary, and the count and
    /// share of each class in what trains and what validates (IMDB's are
    /// balanced by construction).
    pub fn report_texts(&self, train: &Split, validation: &Split, verbosity: Verbosity) {
        let Some(texts) = &self.texts else { return };
        if verbosity == Verbosity::Silent {
            return;
        }
        for line in texts.summary.lines() {
            eprintln!("{line}");
        }
        for (name, split) in [("train", train), ("validation", validation)] {
            let balance = texts::class_balance(split, &texts.class_names);
            eprintln!("Classes ({name}): {balance}");
        }
    }

    /// Refuses to resume a run whose texts changed since it started: the
    /// run would go on with other arrays than it began with.
    pub fn check_resumed(&self, saved: &RunConfig) -> Result<()> {
        let (now, then) = (self.texts.as_ref(), saved.texts.as_ref());
        if let (Some(now), Some(then)) = (now, then) {
            if now.source.sha256 != then.sha256 {
                bail!(
                    "--train-file {} (or its test file or how they are read) changed since \
                     this run started (sha256 {}, then {}); restore it or start a new run",
                    then.files.train_file.display(),
                    now.source.sha256,
                    then.sha256
                );
            }
            // Same files, read otherwise (labels 1 and 1.0 were two
            // classes before they were one).
            if now.class_names.len() != saved.model.classes {
                bail!(
                    "--train-file {} is now read as {} classes ({}), but this run was started \
                     with {}; start a new run",
                    then.files.train_file.display(),
                    now.class_names.len(),
                    now.class_names.join(", "),
                    saved.model.classes
                );
            }
        }
        Ok(())
    }
}
