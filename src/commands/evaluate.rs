//! `gru-imdb evaluate`: test loss, accuracy and evaluation throughput of a
//! trained run, one warm-up pass then `repeats` timed passes per batch size.
use std::path::Path;
use std::time::Instant;

use anyhow::{bail, ensure, Result};
use serde::Serialize;

use crate::atomic::{write_json, JsonLayout};
use crate::data::texts::{self, TextsConfig};
use crate::data::{self, DataConfig, Split};
use crate::device::DeviceAndThreads;
use crate::evaluation::{evaluate, SplitTensors};
use crate::run_config::RunConfig;
use crate::run_dir::{refuse_run_file, RunDir, WeightsChoice};
use crate::settings::{EvaluateData, EvaluateSettings};
use crate::trained::TrainedModel;

/// One batch size's figures.
#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    pub batch_size: usize,
    pub loss: f64,
    pub accuracy: f64,
    /// Seconds of each timed pass over the test set.
    pub pass_seconds: Vec<f64>,
    /// Reviews per second of the median pass.
    pub reviews_per_second: f64,
}

/// The test set shaped as the run was trained: same num_words and maxlen,
/// and by default the same archive.
fn data_of_run(data: &EvaluateData, run: &RunConfig) -> DataConfig {
    let (url, sha256) = match &data.url {
        Some(url) => (url.clone(), data.sha256.clone()),
        None => (run.data_url.clone(), run.data_sha256.clone()),
    };
    DataConfig {
        data_dir: data.data_dir.clone(),
        url,
        sha256,
        max_features: run.model.max_features,
        maxlen: run.maxlen,
        progress: false,
    }
}

/// A trained run loaded to be tested, and its test data.
pub(crate) struct RunUnderTest {
    pub trained: TrainedModel,
    pub data: DataConfig,
}

/// The run in `run_dir` with its `weights`, and the data it is tested on
/// (`data` as the command's flags give it).
pub(crate) fn open_run_under_test(
    run_dir: &Path,
    weights: WeightsChoice,
    device: &DeviceAndThreads,
    data: &EvaluateData,
) -> Result<RunUnderTest> {
    let trained = TrainedModel::load(&RunDir::open(run_dir), weights, device)?;
    let data = data_of_run(data, &trained.config);
    Ok(RunUnderTest { trained, data })
}

pub fn evaluate_command(settings: &EvaluateSettings) -> Result<()> {
    if let Some(path) = &settings.json {
        refuse_run_file(path, "--json")?;
    }
    let RunUnderTest { trained, data } = open_run_under_test(
        &settings.run_dir,
        settings.weights,
        &settings.device,
        &settings.data,
    )?;
    let test = test_split(settings, &trained, &data)?;
    ensure!(
        !test.is_empty(),
        "{} trained on --train-file without --test-file: there is no test set to evaluate on",
        settings.run_dir.display()
    );
    let test = SplitTensors::new(&test, settings.device.device);
    let mut figures = Vec::new();
    for &batch_size in &settings.batch_sizes {
        let throughput = measure(&trained, &test, batch_size, settings.repeats);
        println!(
            "batch {:>5}: {:>8.0} reviews/s  (loss {:.4}, accuracy {:.4})",
            batch_size, throughput.reviews_per_second, throughput.loss, throughput.accuracy
        );
        figures.push(throughput);
    }
    if let Some(path) = &settings.json {
        write_json(path, &figures, JsonLayout::Pretty)?;
    }
    Ok(())
}

/// The reviews to test on: the run's own test set, or, with `--data-url`,
/// another archive's test reviews tokenised with the run's vocabulary (a
/// vocabulary built from that archive would give the weights other ids).
/// A run on a user's texts is a task of its own classes: it is tested on
/// its own test file only.
fn test_split(
    settings: &EvaluateSettings,
    trained: &TrainedModel,
    data: &DataConfig,
) -> Result<Split> {
    match (&trained.config.texts, &settings.data.url) {
        (Some(texts), None) => {
            let config = TextsConfig::new(data, texts.files.clone());
            Ok(texts::load_texts(&config)?.dataset.test)
        }
        (Some(texts), Some(url)) => bail!(
            "{} was trained on --train-file {} (classes {}), another task than the IMDB \
             reviews of --data-url {url}; leave --data-url out to evaluate it on its own test file",
            settings.run_dir.display(),
            texts.files.train_file.display(),
            trained.class_names.join(", ")
        ),
        (None, None) => Ok(data::load_dataset(data)?.test),
        (None, Some(url)) => {
            eprintln!(
                "Evaluating on the test reviews of {url}, tokenised with the run's vocabulary"
            );
            let reviews = data::read_texts(data)?.test;
            let encoder = trained.encoder();
            let texts: Vec<&str> = reviews.iter().map(|r| r.text.as_str()).collect();
            Ok(Split {
                x: encoder.rows(&texts),
                y: reviews.iter().map(|r| r.label).collect(),
                maxlen: encoder.maxlen(),
            })
        }
    }
}

fn measure(
    trained: &TrainedModel,
    test: &SplitTensors,
    batch_size: usize,
    repeats: usize,
) -> Throughput {
    let mut passes = Vec::new();
    let mut evaluation = evaluate(&trained.model, test, batch_size);
    for _ in 0..repeats {
        let started = Instant::now();
        evaluation = evaluate(&trained.model, test, batch_size);
        passes.push(started.elapsed().as_secs_f64());
    }
    let mut sorted = passes.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    Throughput {
        batch_size,
        loss: evaluation.loss,
        accuracy: evaluation.accuracy,
        reviews_per_second: test.len() as f64 / median,
        pass_seconds: passes,
    }
}
