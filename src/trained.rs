//! A trained model loaded back from its run folder, with what turns review
//! texts into its inputs, for `predict` and `evaluate`.
use std::sync::Arc;

use anyhow::{bail, Result};
use tch::{nn, Kind, Tensor};

use crate::data::{self, Tokenizer, Vocabulary};
use crate::device::DeviceAndThreads;
use crate::model::{Inference, SentimentModel};
use crate::run_config::RunConfig;
use crate::run_dir::{RunDir, WeightsChoice, LABELS_FILE};

pub struct TrainedModel {
    pub model: SentimentModel,
    pub vocab: Arc<Vocabulary>,
    pub config: RunConfig,
    /// By class; IMDB runs (no `labels.json`) are negative and positive.
    pub class_names: Vec<String>,
    /// Which of the run's weights these are, in words.
    pub weights: String,
    _vs: nn::VarStore,
}

impl TrainedModel {
    /// The model of `folder` with the `which` weights, on `device`.
    pub fn load(
        folder: &RunDir,
        which: WeightsChoice,
        device: &DeviceAndThreads,
    ) -> Result<TrainedModel> {
        let config = RunConfig::load(folder)?;
        let placement = device.placement(config.model.units)?;
        let mut vs = nn::VarStore::new(placement.device);
        let model =
            SentimentModel::new(&vs.root(), config.model, placement.gru, placement.threads)?;
        // First: it checks the vocabulary and labels against the weights.
        let weights = folder.load_weights(&mut vs, which)?;
        let vocab = folder.load_vocabulary()?;
        let class_names = match (folder.load_labels()?, &config.texts) {
            (Some(names), _) => names,
            (None, None) => vec!["negative".to_owned(), "positive".to_owned()],
            (None, Some(_)) => bail!(
                "{} is missing: a run on a user's texts needs its class names",
                folder.dir().join(LABELS_FILE).display()
            ),
        };
        if class_names.len() != config.model.classes {
            bail!(
                "{} names {} classes, but the model has {}",
                folder.dir().join(LABELS_FILE).display(),
                class_names.len(),
                config.model.classes
            );
        }
        eprintln!("Using {weights} of {}", folder.dir().display());
        placement.share_threads();
        Ok(TrainedModel {
            model,
            vocab: Arc::new(vocab),
            config,
            class_names,
            weights,
            _vs: vs,
        })
    }

    /// The rule that cuts texts into this run's tokens.
    pub fn tokenizer(&self) -> Tokenizer {
        self.config.tokenizer()
    }

    /// What turns texts into this model's inputs, for any thread.
    pub fn encoder(&self) -> TextEncoder {
        TextEncoder {
            vocab: self.vocab.clone(),
            tokenizer: self.tokenizer(),
            num_words: self.config.model.max_features,
            maxlen: self.config.maxlen,
        }
    }

    /// Review texts -> padded id rows `[n, maxlen]`, as in training.
    pub fn encode(&self, texts: &[String]) -> Tensor {
        self.ids(&self.encoder().rows(texts))
    }

    /// [`TextEncoder::rows`] as the model's input tensor `[n, maxlen]`.
    fn ids(&self, rows: &[i32]) -> Tensor {
        let maxlen = self.config.maxlen as i64;
        Tensor::from_slice(rows)
            .view([rows.len() as i64 / maxlen, maxlen])
            .to_kind(Kind::Int64)
            .to_device(self.model.device)
    }

    /// The probability of each class for each text; on a CPU each text's
    /// the same bits whatever the others.
    pub fn predict(&self, texts: &[String]) -> Vec<Vec<f64>> {
        self.predict_with(&self.model.inference(), texts)
    }

    /// [`TrainedModel::predict`] with `inference` prepared once by the
    /// caller (`self.model.inference()`), for a caller that predicts often.
    pub fn predict_with(&self, inference: &Inference, texts: &[String]) -> Vec<Vec<f64>> {
        self.predict_rows(inference, &self.encoder().rows(texts))
    }

    /// [`TrainedModel::predict_with`] of texts already encoded
    /// ([`TextEncoder::rows`]).
    pub fn predict_rows(&self, inference: &Inference, rows: &[i32]) -> Vec<Vec<f64>> {
        if rows.is_empty() {
            return Vec::new();
        }
        let probabilities = inference.probabilities_by_row(&self.ids(rows));
        probabilities
            .into_iter()
            .map(|row| match row.as_slice() {
                [positive] => vec![1.0 - f64::from(*positive), f64::from(*positive)],
                _ => row.into_iter().map(f64::from).collect(),
            })
            .collect()
    }
}

/// Texts into a model's padded id rows, as training made them. It holds no
/// tensor, so it can encode on any thread while the model runs on its own.
#[derive(Clone)]
pub struct TextEncoder {
    vocab: Arc<Vocabulary>,
    tokenizer: Tokenizer,
    num_words: usize,
    maxlen: usize,
}

impl TextEncoder {
    /// Ids per row.
    pub fn maxlen(&self) -> usize {
        self.maxlen
    }

    /// `maxlen` ids per text, the texts one after another.
    pub fn rows(&self, texts: &[impl AsRef<str>]) -> Vec<i32> {
        let encoded: Vec<Vec<i32>> = texts
            .iter()
            .map(|t| {
                self.vocab
                    .encode_last(self.tokenizer, t.as_ref(), self.num_words, self.maxlen)
            })
            .collect();
        data::pad_sequences(&encoded, self.maxlen)
    }
}
