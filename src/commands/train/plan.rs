//! A training run planned once, between its validated flags
//! ([`TrainSettings`]) and the first byte it writes: the data (checked
//! against the memory available once its texts are counted, before they
//! are padded), the model's classes from it, and the placement: the
//! device, and which GRU runs there, with the CUDA kernels compiled when
//! they will run. Everything after it reads the plan, not the flags.
use anyhow::Result;

use super::training_data::TrainingData;
use crate::device::Placement;
use crate::model::ModelConfig;
use crate::run_config::RunConfig;
use crate::settings::TrainSettings;

pub(super) struct TrainPlan {
    pub data: TrainingData,
    /// The flags' model with the data's classes.
    pub model: ModelConfig,
    pub placement: Placement,
}

impl TrainPlan {
    pub fn make(settings: &TrainSettings) -> Result<TrainPlan> {
        let data = TrainingData::load(settings)?;
        let model = ModelConfig {
            classes: data.classes(),
            ..settings.model
        };
        let placement =
            Placement::resolve(settings.placement, model.recurrent_dropout, model.units)?;
        Ok(TrainPlan {
            data,
            model,
            placement,
        })
    }

    /// What the run records in `config.json`.
    pub fn run_config(&self, settings: &TrainSettings) -> RunConfig {
        let data_sha256 = &self.data.data_sha256;
        let texts = self.data.texts.as_ref().map(|texts| texts.source.clone());
        let archive_sha256 = match texts {
            Some(_) => settings.data.sha256.clone(),
            None => Some(data_sha256.clone()),
        };
        RunConfig {
            model: self.model,
            train: settings.train,
            maxlen: settings.data.maxlen,
            data_dir: settings.data.data_dir.clone(),
            data_url: settings.data.url.clone(),
            data_sha256: archive_sha256,
            texts,
            seed: settings.seed,
            device: self.placement.device_name(),
            gru_implementation: format!("{:?}", self.placement.gru.train),
            threads: self.placement.threads,
            history: settings.outputs.history.clone(),
            gru_imdb_version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}
