//! A training run from start to finish, and the run folder it leaves:
//! `config.json`, `history.csv`, `vocab.txt` and `model.safetensors`, each
//! written atomically, so `predict` can rebuild the model later.
use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use tch::{nn, Device, Kind, Tensor};

use crate::atomic::{replace_atomically, write_atomically};
use crate::cuda;
use crate::data::{self, DataConfig, Vocabulary};
use crate::model::{GruImpl, ModelConfig, SentimentModel};
use crate::optim::Adam;
use crate::progress::Verbosity;
use crate::train::{self, HistoryCsv, SplitTensors, TrainConfig};

pub const CONFIG_FILE: &str = "config.json";
pub const HISTORY_FILE: &str = "history.csv";
pub const VOCAB_FILE: &str = "vocab.txt";
pub const WEIGHTS_FILE: &str = "model.safetensors";

/// `--device`: `auto` takes the first GPU when there is one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeviceChoice {
    Auto,
    Cpu,
    Cuda(usize),
}

impl FromStr for DeviceChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" => Ok(DeviceChoice::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(DeviceChoice::Cuda)
                .ok_or_else(|| format!("expected auto, cpu, cuda or cuda:N, got '{s}'")),
        }
    }
}

impl DeviceChoice {
    /// The device to run on; loads libtorch's CUDA backend when the choice
    /// may use a GPU (see `cuda`).
    pub fn resolve(self) -> Result<Device> {
        match self {
            DeviceChoice::Auto if cuda::try_load() => Ok(Device::cuda_if_available()),
            DeviceChoice::Auto | DeviceChoice::Cpu => Ok(Device::Cpu),
            DeviceChoice::Cuda(n) => {
                cuda::load().with_context(|| format!("--device cuda:{n}"))?;
                let count = tch::Cuda::device_count() as usize;
                if n >= count {
                    bail!("--device cuda:{n}: this machine has {count} CUDA device(s) visible to libtorch");
                }
                Ok(Device::Cuda(n))
            }
        }
    }
}

/// Everything a training run needs; what `gru-imdb` (train) parses into.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub data: DataConfig,
    pub model: ModelConfig,
    pub train: TrainConfig,
    /// Seeds libtorch's generator (weights, masks, shuffling); random if None.
    pub seed: Option<u64>,
    pub device: DeviceChoice,
    /// CPU threads for libtorch and the GRU kernel.
    pub threads: usize,
    /// History CSV path; default `<run_dir>/history.csv`.
    pub history: Option<PathBuf>,
    /// Run folder; default `runs/<start time>`.
    pub run_dir: Option<PathBuf>,
    /// Keras's `verbose`: 0 silent, 1 progress bar, 2 one line per epoch.
    pub verbose: u8,
    /// Which GRU implementation trains; `Auto` picks the fastest valid one.
    pub gru_impl: GruImpl,
}

/// What `config.json` holds: enough to rebuild the model and its inputs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunConfig {
    pub model: ModelConfig,
    pub train: TrainConfig,
    pub maxlen: usize,
    pub data_url: String,
    pub data_sha256: Option<String>,
    pub seed: u64,
    pub device: String,
    pub gru_implementation: String,
    pub threads: usize,
    pub gru_imdb_version: String,
}

/// Seconds since the epoch as `YYYY-MM-DDTHH-MM-SS` (UTC), a folder name
/// that sorts by time.
fn timestamp_name(now: SystemTime) -> String {
    let secs = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}-{:02}-{:02}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

fn fresh_seed() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    (nanos as u64 ^ (u64::from(std::process::id()) << 32)) % (1 << 53)
}

/// Gives the CPU threads to whoever does the heavy work. With the CPU
/// kernel that is the kernel (and the fused Adam) on their own threads, and
/// libtorch is kept to one: its OpenMP workers spin for a while after each
/// parallel region and would take the cores from the kernel's threads
/// (measured: 3.5x slower steps with libtorch on two threads as well).
fn use_threads(model: &SentimentModel, threads: usize) {
    let kernel_runs = model.resolved_gru_impl(true) == GruImpl::CpuKernel
        || model.resolved_gru_impl(false) == GruImpl::CpuKernel;
    tch::set_num_threads(if kernel_runs { 1 } else { threads as i32 });
}

/// Writes `value` as pretty JSON, atomically.
fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let mut json = serde_json::to_string_pretty(value)
        .with_context(|| format!("cannot serialise {}", path.display()))?;
    json.push('\n');
    write_atomically(path, |out| std::io::Write::write_all(out, json.as_bytes()))
}

/// Saves the weights as safetensors, atomically.
pub fn save_weights(vs: &nn::VarStore, path: &Path) -> Result<()> {
    replace_atomically(path, |tmp| {
        vs.save(tmp)
            .with_context(|| format!("cannot save the weights to {}", tmp.display()))
    })
}

/// `gru-imdb` (train): data, model, fit, evaluate, and the run folder.
pub fn train_command(opts: &TrainOptions) -> Result<()> {
    opts.model.validate()?;
    opts.train.validate()?;
    if opts.threads == 0 {
        bail!("--threads must be at least 1");
    }
    let verbosity = Verbosity::from_keras(opts.verbose);
    let say = |msg: String| {
        if verbosity != Verbosity::Silent {
            eprintln!("{msg}");
        }
    };
    let device = opts.device.resolve()?;
    // `auto` always picks a valid one; a forced choice may not fit.
    match opts.gru_impl {
        GruImpl::Fused if opts.model.recurrent_dropout > 0.0 => {
            bail!("the fused GRU has no recurrent dropout: use --recurrent-dropout 0 with it")
        }
        GruImpl::CpuKernel if device != Device::Cpu => {
            bail!("the CPU kernel runs on the CPU only: use --device cpu with it")
        }
        _ => {}
    }
    let seed = opts.seed.unwrap_or_else(fresh_seed);
    tch::manual_seed(seed as i64);

    // The data first: it checks its own flags, and a run folder is made
    // only for a run that can start.
    let dataset = data::load_dataset(&opts.data)?;
    let run_dir = opts
        .run_dir
        .clone()
        .unwrap_or_else(|| Path::new("runs").join(timestamp_name(SystemTime::now())));
    // Never write over an earlier run's results.
    if run_dir.join(CONFIG_FILE).exists() {
        bail!(
            "--run-dir {} already holds a run ({CONFIG_FILE}); choose another folder or remove it",
            run_dir.display()
        );
    }
    let history_path = opts
        .history
        .clone()
        .unwrap_or_else(|| run_dir.join(HISTORY_FILE));
    if history_path.exists() {
        bail!(
            "--history {} already exists; choose another file or remove it",
            history_path.display()
        );
    }
    fs::create_dir_all(&run_dir)
        .with_context(|| format!("cannot create the run folder {}", run_dir.display()))?;
    // Found out now rather than after the first epoch's work.
    if let Some(parent) = history_path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).with_context(|| {
            format!(
                "cannot create the folder of --history {}",
                history_path.display()
            )
        })?;
    }
    let started = Instant::now();
    let vs = nn::VarStore::new(device);
    let model = SentimentModel::new(&vs.root(), opts.model, opts.gru_impl, opts.threads);
    let gru_impl = model.resolved_gru_impl(true);
    use_threads(&model, opts.threads);
    say(format!(
        "Training on {} with the {:?} GRU, seed {seed}; run folder {}",
        describe(device),
        gru_impl,
        run_dir.display()
    ));

    let config = RunConfig {
        model: opts.model,
        train: opts.train,
        maxlen: opts.data.maxlen,
        data_url: opts.data.url.clone(),
        data_sha256: opts.data.sha256.clone(),
        seed,
        device: describe(device),
        gru_implementation: format!("{gru_impl:?}"),
        threads: opts.threads,
        gru_imdb_version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    write_json(&run_dir.join(CONFIG_FILE), &config)?;
    dataset.vocab.save(&run_dir.join(VOCAB_FILE))?;

    let train_data = SplitTensors::new(&dataset.train, device);
    let test_data = SplitTensors::new(&dataset.test, device);
    let mut optimizer = Adam::new(model.parameters(), opts.train.adam, opts.threads);
    let mut history = HistoryCsv::new(&history_path);
    let weights_path = run_dir.join(WEIGHTS_FILE);
    train::fit(
        &model,
        &mut optimizer,
        &train_data,
        &test_data,
        &opts.train,
        verbosity,
        |record| {
            history.append(record)?;
            save_weights(&vs, &weights_path)
        },
    )?;

    let test = train::evaluate(&model, &test_data, opts.train.validation_batch_size);
    println!("Test loss: {:.4}", test.loss);
    println!("Test accuracy: {:.4}", test.accuracy);
    say(format!(
        "Trained in {:.1} s; history in {}, weights in {}",
        started.elapsed().as_secs_f64(),
        history.path().display(),
        weights_path.display()
    ));
    Ok(())
}

fn describe(device: Device) -> String {
    match device {
        Device::Cpu => "cpu".to_owned(),
        Device::Cuda(n) => format!("cuda:{n}"),
        other => format!("{other:?}"),
    }
}

/// A trained model loaded back from its run folder, with what turns text
/// into its inputs.
pub struct TrainedModel {
    pub model: SentimentModel,
    pub vocab: Vocabulary,
    pub config: RunConfig,
    _vs: nn::VarStore,
}

impl TrainedModel {
    pub fn load(run_dir: &Path, device: Device, threads: usize) -> Result<TrainedModel> {
        let config_path = run_dir.join(CONFIG_FILE);
        let text = fs::read_to_string(&config_path).with_context(|| {
            format!(
                "cannot read {} (is it a run folder?)",
                config_path.display()
            )
        })?;
        let config: RunConfig = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a gru-imdb run config", config_path.display()))?;
        config
            .model
            .validate()
            .with_context(|| format!("in {}", config_path.display()))?;
        let vocab = Vocabulary::load(&run_dir.join(VOCAB_FILE))?;
        let mut vs = nn::VarStore::new(device);
        let model = SentimentModel::new(&vs.root(), config.model, GruImpl::Auto, threads);
        let weights = run_dir.join(WEIGHTS_FILE);
        vs.load(&weights)
            .with_context(|| format!("cannot load the weights from {}", weights.display()))?;
        use_threads(&model, threads);
        Ok(TrainedModel {
            model,
            vocab,
            config,
            _vs: vs,
        })
    }

    /// Review texts -> padded id rows `[n, maxlen]`, as in training.
    pub fn encode(&self, texts: &[String]) -> Tensor {
        let encoded: Vec<Vec<i32>> = texts
            .iter()
            .map(|t| self.vocab.encode(t, self.config.model.max_features))
            .collect();
        let padded = data::pad_sequences(&encoded, self.config.maxlen);
        Tensor::from_slice(&padded)
            .view([texts.len() as i64, self.config.maxlen as i64])
            .to_kind(Kind::Int64)
            .to_device(self.model.device)
    }

    /// Probability of the positive class for each text.
    pub fn predict(&self, texts: &[String]) -> Vec<f64> {
        if texts.is_empty() {
            return Vec::new();
        }
        let probabilities = self.model.inference().probabilities(&self.encode(texts));
        Vec::<f64>::try_from(probabilities.to_kind(Kind::Double).to_device(Device::Cpu))
            .expect("probabilities are a 1-d tensor")
    }
}

/// What `gru-imdb evaluate` measures.
#[derive(Debug, Clone)]
pub struct EvaluateOptions {
    pub run_dir: PathBuf,
    pub data_dir: PathBuf,
    /// The archive; `None` takes the run's (and its sha256).
    pub data_url: Option<String>,
    pub data_sha256: Option<String>,
    pub batch_sizes: Vec<usize>,
    pub repeats: usize,
    pub device: DeviceChoice,
    pub threads: usize,
    pub json: Option<PathBuf>,
}

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

/// `gru-imdb evaluate`: test loss, accuracy and evaluation throughput of a
/// trained run, one warm-up pass then `repeats` timed passes per batch size.
pub fn evaluate_command(opts: &EvaluateOptions) -> Result<()> {
    if opts.threads == 0 {
        bail!("--threads must be at least 1");
    }
    if opts.repeats == 0 || opts.batch_sizes.contains(&0) {
        bail!("--repeats and --batch-size must be at least 1");
    }
    let device = opts.device.resolve()?;
    let trained = TrainedModel::load(&opts.run_dir, device, opts.threads)?;
    // The test set shaped as the run was trained: same num_words and maxlen,
    // and by default the same archive.
    let (url, sha256) = match &opts.data_url {
        Some(url) => (url.clone(), opts.data_sha256.clone()),
        None => (
            trained.config.data_url.clone(),
            trained.config.data_sha256.clone(),
        ),
    };
    let data = DataConfig {
        data_dir: opts.data_dir.clone(),
        url,
        sha256,
        max_features: trained.config.model.max_features,
        maxlen: trained.config.maxlen,
        progress: false,
    };
    let test = SplitTensors::new(&data::load_dataset(&data)?.test, device);
    let mut figures = Vec::new();
    for &batch_size in &opts.batch_sizes {
        let mut passes = Vec::new();
        let mut evaluation = train::evaluate(&trained.model, &test, batch_size);
        for _ in 0..opts.repeats {
            let started = Instant::now();
            evaluation = train::evaluate(&trained.model, &test, batch_size);
            passes.push(started.elapsed().as_secs_f64());
        }
        let mut sorted = passes.clone();
        sorted.sort_by(f64::total_cmp);
        let median = sorted[sorted.len() / 2];
        let throughput = Throughput {
            batch_size,
            loss: evaluation.loss,
            accuracy: evaluation.accuracy,
            reviews_per_second: test.len() as f64 / median,
            pass_seconds: passes,
        };
        println!(
            "batch {:>5}: {:>8.0} reviews/s  (loss {:.4}, accuracy {:.4})",
            batch_size, throughput.reviews_per_second, throughput.loss, throughput.accuracy
        );
        figures.push(throughput);
    }
    if let Some(path) = &opts.json {
        write_json(path, &figures)?;
    }
    Ok(())
}

/// `gru-imdb predict`: one line per text, `probability<TAB>label<TAB>text`.
pub fn predict_command(run_dir: &Path, texts: &[String], threads: usize) -> Result<()> {
    if texts.is_empty() {
        bail!(
            "no reviews to predict: give them as arguments, with --file, or on stdin, one per line"
        );
    }
    let trained = TrainedModel::load(run_dir, Device::Cpu, threads)?;
    for (text, p) in texts.iter().zip(trained.predict(texts)) {
        let label = if p > 0.5 { "positive" } else { "negative" };
        println!("{p:.4}\t{label}\t{text}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_folder_names_are_utc_timestamps() {
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_795_711_895);
        assert_eq!(timestamp_name(t), "2026-11-26T16-51-35");
        assert_eq!(timestamp_name(UNIX_EPOCH), "1970-01-01T00-00-00");
    }

    #[test]
    fn device_flag_parses() {
        assert_eq!("auto".parse(), Ok(DeviceChoice::Auto));
        assert_eq!("cuda:1".parse(), Ok(DeviceChoice::Cuda(1)));
        assert!("gpu".parse::<DeviceChoice>().is_err());
    }
}
