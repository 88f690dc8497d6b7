//! Keras's `model.summary()` for the model of a config: each layer's name,
//! output shape and parameter count, then the totals, in Keras 3's table.
//! Counts are exact: in `u128`, with every step checked, so sizes that no
//! model could have are an error naming their flags, never a wrapped count.
use anyhow::{Context, Result};

use crate::model::ModelConfig;

/// One row of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerSummary {
    /// `embedding (Embedding)`, as Keras names the layers of a Sequential.
    pub layer: String,
    /// `(None, 100, 128)`: None is the batch.
    pub output_shape: String,
    pub parameters: u128,
}

/// The three layers of `Embedding -> GRU -> Dense(n)` for inputs of
/// `maxlen` ids (n = 1 for two classes), or an error naming the flags whose
/// sizes make a count past `u128`.
pub fn layers(model: &ModelConfig, maxlen: usize) -> Result<Vec<LayerSummary>> {
    let (d, h, n) = (model.embedding_dim, model.units, model.outputs());
    let [v, d128, h128, n128] = [model.max_features, d, h, n].map(|x| x as u128);
    let too_many = |layer: &str, flags: &str| {
        format!(
            "the {layer} layer of --max-features {}, --embedding-dim {d} and --units {h} would \
             have more than 2^128 parameters: lower {flags}",
            model.max_features
        )
    };
    let embedding = v
        .checked_mul(d128)
        .with_context(|| too_many("embedding", "--max-features or --embedding-dim"))?;
    // Kernel, recurrent kernel, and reset_after's two biases, per gate.
    let gru = d128
        .checked_mul(h128)
        .zip(h128.checked_mul(h128))
        .and_then(|(dh, hh)| dh.checked_add(hh)?.checked_add(h128.checked_mul(2)?))
        .and_then(|per_gate| per_gate.checked_mul(3))
        .with_context(|| too_many("GRU", "--embedding-dim or --units"))?;
    let dense = h128
        .checked_mul(n128)
        .and_then(|hn| hn.checked_add(n128))
        .with_context(|| too_many("dense", "--units"))?;
    Ok(vec![
        LayerSummary {
            layer: "embedding (Embedding)".to_owned(),
            output_shape: format!("(None, {maxlen}, {d})"),
            parameters: embedding,
        },
        LayerSummary {
            layer: "gru (GRU)".to_owned(),
            output_shape: format!("(None, {h})"),
            parameters: gru,
        },
        LayerSummary {
            layer: "dense (Dense)".to_owned(),
            output_shape: format!("(None, {n})"),
            parameters: dense,
        },
    ])
}

/// The sum of the layers' counts, or an error naming the flags when it is
/// past `u128`.
pub fn total_parameters(layers: &[LayerSummary]) -> Result<u128> {
    layers
        .iter()
        .try_fold(0u128, |sum, l| sum.checked_add(l.parameters))
        .context(
            "the model would have more than 2^128 parameters: lower --max-features, \
             --embedding-dim or --units",
        )
}

/// 1317313 -> "1,317,313".
pub fn thousands(n: impl std::fmt::Display) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Float32 bytes as Keras prints them: "5.03 MB", "260.00 B".
fn size_of_parameters(count: u128) -> String {
    let bytes = 4.0 * count as f64;
    match bytes {
        b if b >= 1024.0 * 1024.0 => format!("{:.2} MB", b / (1024.0 * 1024.0)),
        b if b >= 1024.0 => format!("{:.2} KB", b / 1024.0),
        b => format!("{b:.2} B"),
    }
}

const WIDTHS: [usize; 3] = [33, 24, 15];

fn rule(left: char, fill: char, join: char, right: char) -> String {
    let cells: Vec<String> = WIDTHS.iter().map(|&w| fill.to_string().repeat(w)).collect();
    format!("{left}{}{right}", cells.join(&join.to_string()))
}

/// [`try_model_summary`] for a model being trained, whose counts fit (its
/// memory was checked): the error's text in place of the table otherwise.
pub fn model_summary(model: &ModelConfig, maxlen: usize) -> String {
    try_model_summary(model, maxlen).unwrap_or_else(|e| format!("Model: \"sequential\": {e:#}\n"))
}

/// The table as Keras 3 prints it for `Sequential` (every parameter is
/// trainable here), or an error naming the flags when a count is past
/// `u128`.
pub fn try_model_summary(model: &ModelConfig, maxlen: usize) -> Result<String> {
    let rows = layers(model, maxlen)?;
    let total = total_parameters(&rows)?;
    let row = |sep: char, cells: [String; 3]| {
        format!(
            "{sep} {:<w0$} {sep} {:<w1$} {sep} {:>w2$} {sep}",
            cells[0],
            cells[1],
            cells[2],
            w0 = WIDTHS[0] - 2,
            w1 = WIDTHS[1] - 2,
            w2 = WIDTHS[2] - 2
        )
    };
    let mut lines = vec![
        "Model: \"sequential\"".to_owned(),
        rule('┏', '━', '┳', '┓'),
        row(
            '┃',
            ["Layer (type)", "Output Shape", "Param #"].map(String::from),
        ),
        rule('┡', '━', '╇', '┩'),
    ];
    for (i, r) in rows.iter().enumerate() {
        if i > 0 {
            lines.push(rule('├', '─', '┼', '┤'));
        }
        lines.push(row(
            '│',
            [
                r.layer.clone(),
                r.output_shape.clone(),
                thousands(r.parameters),
            ],
        ));
    }
    lines.push(rule('└', '─', '┴', '┘'));
    let size = size_of_parameters(total);
    lines.push(format!(" Total params: {} ({size})", thousands(total)));
    lines.push(format!(" Trainable params: {} ({size})", thousands(total)));
    lines.push(" Non-trainable params: 0 (0.00 B)".to_owned());
    Ok(lines.join("\n") + "\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::defaults;

    /// The tutorial's model.
    fn tutorial_model() -> ModelConfig {
        ModelConfig {
            max_features: defaults::MAX_FEATURES,
            embedding_dim: defaults::EMBEDDING_DIM,
            units: defaults::UNITS,
            dropout: defaults::DROPOUT,
            recurrent_dropout: defaults::RECURRENT_DROPOUT,
            classes: 2,
        }
    }

    #[test]
    fn the_tutorial_model_has_keras_parameter_counts() {
        let counts: Vec<u128> = layers(&tutorial_model(), 100)
            .unwrap()
            .iter()
            .map(|l| l.parameters)
            .collect();
        assert_eq!(counts, vec![1_280_000, 37_248, 65]);
    }

    #[test]
    fn the_table_has_keras_totals_and_aligned_rows() {
        let table = model_summary(&tutorial_model(), 100);
        assert!(
            table.contains(" Total params: 1,317,313 (5.03 MB)"),
            "{table}"
        );
        assert!(table.contains(" Trainable params: 1,317,313 (5.03 MB)"));
        assert!(
            table.contains(
                "│ embedding (Embedding)           │ (None, 100, 128)       │     1,280,000 │"
            ),
            "{table}"
        );
        let widths: Vec<usize> = table
            .lines()
            .skip(1)
            .take_while(|l| !l.starts_with(' '))
            .map(|l| l.chars().count())
            .collect();
        assert!(widths.iter().all(|&w| w == widths[0]), "{table}");
    }

    #[test]
    fn the_counts_match_the_parameters_the_model_builds() {
        let config = ModelConfig {
            max_features: 300,
            embedding_dim: 12,
            units: 7,
            ..tutorial_model()
        };
        let vs = tch::nn::VarStore::new(tch::Device::Cpu);
        let gru = crate::device::GruPlan::only(crate::device::GruImpl::CpuKernel);
        let model = crate::model::SentimentModel::new(&vs.root(), config, gru, 1).unwrap();
        let built: i64 = model.parameters().iter().map(|t| t.numel() as i64).sum();
        let listed = total_parameters(&layers(&config, 40).unwrap()).unwrap();
        assert_eq!(built as u128, listed);
    }

    #[test]
    fn counts_past_usize_are_exact_and_past_u128_an_error_naming_the_flags() {
        let huge = ModelConfig {
            max_features: 2_147_483_647,
            embedding_dim: 2_147_483_647,
            units: 2_147_483_647,
            ..tutorial_model()
        };
        let table = try_model_summary(&huge, 100).unwrap();
        // 2^31 - 1 squared, and 3 (d h + h^2 + 2 h) with d = h = 2^31 - 1.
        assert!(
            table.contains("4,611,686,014,132,420,609 │")
                && table.contains("27,670,116,097,679,425,536 │")
                && table.contains(" Total params: 32,281,802,113,959,329,793 ("),
            "{table}"
        );
        let past = ModelConfig {
            units: usize::MAX,
            ..huge
        };
        let err = try_model_summary(&past, 100).unwrap_err().to_string();
        assert!(
            err.contains(
                "the GRU layer of --max-features 2147483647, --embedding-dim 2147483647 \
                 and --units 18446744073709551615 would have more than 2^128 parameters: \
                 lower --embedding-dim or --units"
            ),
            "{err}"
        );
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_317_313), "1,317,313");
    }
}
