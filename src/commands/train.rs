//! `gru-imdb train`: data -> model -> fit -> test, leaving a run folder.
use std::time::Instant;

use anyhow::Result;
use tch::nn;

use crate::data;
use crate::evaluation::{evaluate, SplitTensors};
use crate::model::SentimentModel;
use crate::optim::Adam;
use crate::progress::Verbosity;
use crate::run_folder::{HistoryCsv, RunConfig, RunFolder};
use crate::settings::TrainSettings;
use crate::train::fit;

pub fn train_command(settings: &TrainSettings) -> Result<()> {
    let say = |msg: String| {
        if settings.verbosity != Verbosity::Silent {
            eprintln!("{msg}");
        }
    };
    let placement = &settings.placement;
    tch::manual_seed(settings.seed as i64);

    // The data first, so a run folder is made only for a run that can start.
    let dataset = data::load_dataset(&settings.data)?;
    let folder = RunFolder::create(&settings.outputs)?;
    let started = Instant::now();

    let vs = nn::VarStore::new(placement.device);
    let model = SentimentModel::new(&vs.root(), settings.model, placement.gru, placement.threads);
    placement.share_threads();
    say(format!(
        "Training on {} with the {:?} GRU, seed {}; run folder {}",
        placement.device_name(),
        placement.gru.train,
        settings.seed,
        folder.dir().display()
    ));
    folder.save_config(&run_config(settings))?;
    folder.save_vocabulary(&dataset.vocab)?;

    let train_data = SplitTensors::new(&dataset.train, placement.device);
    let test_data = SplitTensors::new(&dataset.test, placement.device);
    let mut optimizer = Adam::new(&model.parameters(), settings.train.adam, placement.threads);
    let mut history = HistoryCsv::new(folder.history_path());
    fit(
        &model,
        &mut optimizer,
        &train_data,
        &test_data,
        &settings.train,
        settings.verbosity,
        |record| {
            history.append(record)?;
            folder.save_weights(&vs)
        },
    )?;

    let test = evaluate(&model, &test_data, settings.train.validation_batch_size);
    println!("Test loss: {:.4}", test.loss);
    println!("Test accuracy: {:.4}", test.accuracy);
    say(format!(
        "Trained in {:.1} s; history in {}, weights in {}",
        started.elapsed().as_secs_f64(),
        history.path().display(),
        folder.weights_path().display()
    ));
    Ok(())
}

fn run_config(settings: &TrainSettings) -> RunConfig {
    RunConfig {
        model: settings.model,
        train: settings.train,
        maxlen: settings.data.maxlen,
        data_url: settings.data.url.clone(),
        data_sha256: settings.data.sha256.clone(),
        seed: settings.seed,
        device: settings.placement.device_name(),
        gru_implementation: format!("{:?}", settings.placement.gru.train),
        threads: settings.placement.threads,
        gru_imdb_version: env!("CARGO_PKG_VERSION").to_owned(),
    }
}
