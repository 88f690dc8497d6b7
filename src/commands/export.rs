//! `gru-imdb export RUN --format onnx|keras`: the run's model as a file
//! for another stack, and `tokenizer.json` beside it (`crate::export`).
//!
//! Safe by default: a run that is training (its lock is held), has not
//! finished an epoch, or whose files differ from what its checkpoint was
//! saved with is refused, as `predict` refuses it; no file is written over
//! without `--force`, except a `tokenizer.json` with the very same bytes.
//! Both files are written whole under temporary names and synced before
//! either is renamed into place, the tokenizer first (`atomic::write_together`):
//! an error leaves both as they were, and since the model names the
//! tokenizer's sha256 in its metadata, a pair torn by a crash between the
//! two renames can be told apart.
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Result};
use sha2::{Digest, Sha256};

use crate::atomic::write_together;
use crate::device::DeviceAndThreads;
use crate::export::{tokenizer_json, ExportFormat, ExportedModel, TOKENIZER_FILE};
use crate::run_dir::{refuse_run_file, RunDir, WeightsChoice};
use crate::trained::TrainedModel;

pub struct ExportSettings {
    pub run_dir: PathBuf,
    pub format: ExportFormat,
    /// Default: `RUN/model.onnx` or `RUN/model.keras`.
    pub output: Option<PathBuf>,
    pub weights: WeightsChoice,
    /// Write over existing files.
    pub force: bool,
    pub device: DeviceAndThreads,
}

/// The two files of an export.
struct Outputs {
    model: PathBuf,
    tokenizer: PathBuf,
}

pub fn export_command(settings: &ExportSettings) -> Result<()> {
    let started = Instant::now();
    let folder = RunDir::open_idle(&settings.run_dir)?;
    let outputs = outputs(settings)?;
    let trained = TrainedModel::load(&folder, settings.weights, &settings.device)?;
    let tokenizer = serde_json::to_vec_pretty(&tokenizer_json(&trained))?;
    let tokenizer_sha256 = hex::encode(Sha256::digest(&tokenizer));
    let provenance = vec![
        ("run".to_owned(), settings.run_dir.display().to_string()),
        ("weights".to_owned(), trained.weights.clone()),
        ("tokenizer".to_owned(), TOKENIZER_FILE.to_owned()),
        ("tokenizer_sha256".to_owned(), tokenizer_sha256),
        (
            "classes".to_owned(),
            serde_json::to_string(&trained.class_names)?,
        ),
        ("maxlen".to_owned(), trained.config.maxlen.to_string()),
    ];
    let model = ExportedModel::new(&trained, provenance).file_bytes(settings.format)?;
    check_outputs(&outputs, &tokenizer, settings.force)?;
    write_together(&[(&outputs.tokenizer, &tokenizer), (&outputs.model, &model)])?;
    println!(
        "Wrote {} ({}, {}) and {} ({}) in {:.2} s",
        outputs.model.display(),
        settings.format,
        size(model.len()),
        outputs.tokenizer.display(),
        size(tokenizer.len()),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The model's path (`-o`, or `RUN/model.<ext>`) and the tokenizer's
/// beside it.
fn outputs(settings: &ExportSettings) -> Result<Outputs> {
    let model = match &settings.output {
        Some(path) => path.clone(),
        None => settings
            .run_dir
            .join(format!("model.{}", settings.format.extension())),
    };
    if model.is_dir() {
        bail!("-o {} is a folder; give a file name", model.display());
    }
    if let Some(parent) = model.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.is_dir() {
            bail!(
                "cannot write {}: the folder {} does not exist",
                model.display(),
                parent.display()
            );
        }
    }
    refuse_run_file(&model, "-o")?;
    let tokenizer = model.with_file_name(TOKENIZER_FILE);
    if tokenizer == model {
        bail!(
            "-o {} is the tokenizer's own name; choose another",
            model.display()
        );
    }
    Ok(Outputs { model, tokenizer })
}

/// Refuses to write over a file without `--force`; a `tokenizer.json` that
/// already holds these bytes (another export of the same run) is kept.
fn check_outputs(outputs: &Outputs, tokenizer: &[u8], force: bool) -> Result<()> {
    if force {
        return Ok(());
    }
    if exists(&outputs.model) {
        bail!(
            "{} already exists; remove it, choose another -o, or give --force to write over it",
            outputs.model.display()
        );
    }
    if exists(&outputs.tokenizer)
        && std::fs::read(&outputs.tokenizer).ok().as_deref() != Some(tokenizer)
    {
        bail!(
            "{} already exists and describes another tokenizer (another run's); export into another folder, or give --force to write over it",
            outputs.tokenizer.display()
        );
    }
    Ok(())
}

fn exists(path: &Path) -> bool {
    path.exists() || path.is_symlink()
}

fn size(bytes: usize) -> String {
    match bytes {
        0..=9_999 => format!("{bytes} bytes"),
        10_000..=9_999_999 => format!("{:.1} kB", bytes as f64 / 1e3),
        _ => format!("{:.1} MB", bytes as f64 / 1e6),
    }
}
