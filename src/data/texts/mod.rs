//! A user's own labelled texts: a CSV or TSV file, a JSON Lines file, or a
//! folder with one sub-folder per class. They go through the IMDB pipeline
//! (`prepare`: tokenise, rank the training tokens, encode, pad), and the
//! arrays are cached under the sha256 of the files and the options.
//!
//! Every problem of the input is an error naming the file, the line (or
//! the file of a folder) and what is wrong; empty texts are counted and
//! warned about, or refused with [`EmptyTexts::Refuse`]. Nothing is cached
//! from a file that failed.
//!
//! A NUL byte in a text or a label is an error too: text has none, and
//! they are what a UTF-16 file looks like read as UTF-8, which it passes
//! for when its text is ASCII (every other byte NUL).
mod folders;
mod jsonl;
mod labels;
mod table;

use std::fmt;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::cache::{self, CacheKey};
use super::dir_lock::DataDirLock;
use super::prepare::{prepare_texts, Encoding, Prepared, RawText, TextSink};
use super::printout::{self, Origin, VocabularySummary};
use super::tokenize::{ScriptCounts, Tokenizer, TokenizerChoice};
use super::{export_npy, DataConfig, Dataset, LabeledText, Split};
use crate::atomic::{write_json, JsonLayout};
use labels::{Classes, LabelSet};

pub use jsonl::json_kind;
pub use labels::MAX_CLASSES;

/// A column of a table: its header name, or its 0-based position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Column {
    Name(String),
    Position(usize),
}

impl FromStr for Column {
    type Err = String;

    /// All digits is a position; anything else a name.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err("a column is a name or a 0-based position, not empty".into());
        }
        Ok(match s.parse() {
            Ok(i) if s.bytes().all(|b| b.is_ascii_digit()) => Column::Position(i),
            _ => Column::Name(s.to_owned()),
        })
    }
}

/// Whether the first row of a CSV or TSV file names the columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Header {
    Present,
    Absent,
}

/// How to read a table. Columns left `None` are found by default: those
/// named `text` and `label`, or else the first and second of exactly two.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableOptions {
    /// The field delimiter; `None` takes it from the extension.
    pub delimiter: Option<u8>,
    pub header: Header,
    pub text_column: Option<Column>,
    pub label_column: Option<Column>,
}

impl Default for TableOptions {
    fn default() -> Self {
        TableOptions {
            delimiter: None,
            header: Header::Present,
            text_column: None,
            label_column: None,
        }
    }
}

/// What to do with a text that is empty or only white space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EmptyTexts {
    /// Keep it (as Keras would) and warn with their count.
    Warn,
    Refuse,
}

/// The files of a user's texts and how to read them: what a run folder
/// keeps to read them again when the run is resumed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextFiles {
    pub train_file: PathBuf,
    /// Without one the test split is empty.
    pub test_file: Option<PathBuf>,
    pub table: TableOptions,
    pub empty_texts: EmptyTexts,
    /// How the texts are cut into tokens; absent from runs from before
    /// there was a choice, whose texts were cut by the `imdb` rule.
    #[serde(default = "TokenizerChoice::before_tokenizers")]
    pub tokenizer: TokenizerChoice,
}

/// Where a user's texts come from and how they are shaped.
#[derive(Debug, Clone)]
pub struct TextsConfig {
    /// Cache folder.
    pub data_dir: PathBuf,
    pub files: TextFiles,
    /// Keras `num_words`.
    pub max_features: usize,
    /// Keras `pad_sequences(maxlen)`.
    pub maxlen: usize,
    /// Show a progress bar when stderr is a terminal.
    pub progress: bool,
}

impl TextsConfig {
    /// `files`, cached in and shaped as `data` says.
    pub fn new(data: &DataConfig, files: TextFiles) -> TextsConfig {
        TextsConfig {
            data_dir: data.data_dir.clone(),
            files,
            max_features: data.max_features,
            maxlen: data.maxlen,
            progress: data.progress,
        }
    }
}

/// The arrays of a user's texts and the names of their classes.
#[derive(Debug, Clone, PartialEq)]
pub struct TextsDataset {
    pub dataset: Dataset,
    /// Class names, by class (the value in `y`).
    pub class_names: Vec<String>,
    /// sha256 (hex) of the files' content and the options, which a resumed
    /// run compares with its start's to notice a changed file.
    pub sha256: String,
    /// The rule the texts were cut by (`auto`'s choice, or the one given).
    pub tokenizer: Tokenizer,
    /// What a person needs to judge the vocabulary.
    pub summary: VocabularySummary,
}

/// Reads, checks and prepares the texts, or loads the cache of an earlier
/// run on the same files and options.
pub fn load_texts(cfg: &TextsConfig) -> Result<TextsDataset> {
    load_texts_checking(cfg, &|_| Ok(()))
}

/// [`load_texts`], asking `fits` whether the arrays of this many texts (of
/// both files) may be made once they are counted, before they are padded:
/// padded to a huge `--maxlen` they would not fit in memory, and the
/// process would be killed before any check after them.
pub fn load_texts_checking(
    cfg: &TextsConfig,
    fits: &dyn Fn(usize) -> Result<()>,
) -> Result<TextsDataset> {
    let loaded = load(cfg, fits)?;
    let summary = VocabularySummary::of(&loaded.prepared, cfg.max_features, cfg.maxlen);
    Ok(TextsDataset {
        dataset: loaded.prepared.dataset,
        class_names: loaded.meta.classes,
        sha256: loaded.sha256,
        tokenizer: loaded.meta.tokenizer,
        summary,
    })
}

/// A run's texts as `report` shows them: how many training texts each
/// class has, and the test texts with their classes, in the test file's
/// order (the order of the test arrays).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunTexts {
    pub train_per_class: Vec<usize>,
    pub test: Vec<LabeledText>,
}

/// Reads the files of a run on a user's texts again, its classes being
/// `class_names` (a test label finds its class as training found it).
pub fn read_run_texts(files: &TextFiles, class_names: &[String]) -> Result<RunTexts> {
    let test_file = files
        .test_file
        .as_deref()
        .context("the run has no --test-file: there are no test texts to report on")?;
    let mut labels = LabelSet::default();
    for name in class_names {
        labels.add(name);
    }
    let classes = labels.classes()?;
    let mut class_of = |label: &str| -> Option<u8> {
        let number = labels.find(label)?;
        Some(classes.class_of[number as usize])
    };
    let mut texts = RunTexts {
        train_per_class: vec![0; class_names.len()],
        test: Vec::new(),
    };
    let hidden = ProgressBar::hidden();
    for (role, path) in [
        (Role::Train, files.train_file.as_path()),
        (Role::Test, test_file),
    ] {
        let format = Format::of(path, files.table.delimiter)?;
        read_file(path, format, &files.table, &hidden, &mut |row| {
            let class = class_of(&row.label).with_context(|| {
                format!(
                    "{}: label '{}' is not one of the run's classes",
                    row.place, row.label
                )
            })?;
            match role {
                Role::Train => texts.train_per_class[usize::from(class)] += 1,
                Role::Test => texts.test.push(LabeledText {
                    label: class,
                    text: row.text,
                }),
            }
            Ok(())
        })
        .with_context(|| format!("in the {} file {}", role.name(), path.display()))?;
    }
    Ok(texts)
}

/// `data --train-file`: the report of `data`, and an optional `.npy`
/// export with the class names beside it (`labels.json`).
pub fn run_texts_data_command(cfg: &TextsConfig, export: Option<&Path>) -> Result<()> {
    let started = Instant::now();
    // Checked before padding, as `train` checks: a huge --maxlen would be
    // killed for its memory first.
    let fits = |samples| crate::data::memory::check_padded_texts_memory(cfg.maxlen, samples);
    let loaded = load(cfg, &fits)?;
    let elapsed = started.elapsed();
    let summary = VocabularySummary::of(&loaded.prepared, cfg.max_features, cfg.maxlen);
    for line in summary.lines() {
        eprintln!("{line}");
    }
    let ds = &loaded.prepared.dataset;
    let mut out = std::io::stdout().lock();
    printout::print_report(
        &mut out,
        &printout::Arrays {
            dataset: ds,
            stats: &loaded.prepared.stats,
            class_names: &loaded.meta.classes,
        },
        cfg.max_features,
        elapsed,
        loaded.origin,
    )
    .and_then(|()| out.flush())
    .context("cannot write the report")?;
    if let Some(dir) = export {
        export_npy(dir, ds)?;
        save_class_names(&dir.join(LABELS_FILE), &loaded.meta.classes)?;
        eprintln!(
            "exported x_train, y_train, x_test, y_test (.npy) and {LABELS_FILE} to {}",
            dir.display()
        );
    }
    Ok(())
}

/// The class names beside an export, as a JSON array, by class.
const LABELS_FILE: &str = "labels.json";

/// Writes class names as a JSON array, atomically (in exports and run
/// folders).
pub fn save_class_names(path: &Path, names: &[String]) -> Result<()> {
    write_json(path, &names, JsonLayout::OneLine)
}

/// Reads a file written by [`save_class_names`].
pub fn load_class_names(path: &Path) -> Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a JSON array of class names", path.display()))
}

/// One class per label and the count per class, e.g. `neg 7 (58.3%), pos 5
/// (41.7%)`: what to look at before training on imbalanced classes.
pub fn class_balance(split: &Split, class_names: &[String]) -> String {
    let n = split.len().max(1) as f64;
    class_names
        .iter()
        .zip(printout::class_counts(split, class_names.len()))
        .map(|(name, c)| format!("{name} {c} ({:.1}%)", 100.0 * c as f64 / n))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The kind of a source file, from its extension, or a folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Delimited(u8),
    JsonLines,
    Folders,
}

impl Format {
    fn of(path: &Path, delimiter: Option<u8>) -> Result<Format> {
        if path.is_dir() {
            return Ok(Format::Folders);
        }
        if !path.is_file() {
            bail!("{}: no such file or folder", path.display());
        }
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        Ok(match (delimiter, ext.as_deref()) {
            (Some(d), _) => Format::Delimited(d),
            (None, Some("csv")) => Format::Delimited(b','),
            (None, Some("tsv" | "tab")) => Format::Delimited(b'\t'),
            (None, Some("jsonl" | "ndjson")) => Format::JsonLines,
            _ => bail!(
                "{}: cannot tell its format from the extension; use .csv, .tsv, .jsonl or a folder of class folders, or give --delimiter",
                path.display()
            ),
        })
    }
}

/// One labelled text as a reader found it.
pub(super) struct Row {
    pub place: Place,
    pub text: String,
    /// Trimmed; empty when missing.
    pub label: String,
}

/// Where a row is: a line of a file, or a file of a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Place {
    Line(u64),
    File(PathBuf),
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Line(n) => write!(f, "line {n}"),
            Place::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// What the cache keeps beside the arrays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Meta {
    classes: Vec<String>,
    /// Empty texts of the training and test files, warned about again on
    /// every run that uses the cache.
    empty_texts: [u64; 2],
    /// How labels that are the same number were read as one class, told
    /// again on every run that uses the cache; absent when none were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    label_note: Option<String>,
    /// How the columns of each file were chosen by their header, told again
    /// on every run that uses the cache.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    column_notes: Vec<String>,
    /// The rule the texts were cut by (absent from caches from before there
    /// was a choice: `imdb`).
    #[serde(default)]
    tokenizer: Tokenizer,
    /// Why `auto` took it, told again on every run that uses the cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    auto_reason: Option<String>,
}

struct Loaded {
    prepared: Prepared,
    meta: Meta,
    origin: Origin,
    /// Of the files and the options: the cache key.
    sha256: String,
}

/// The two files, by role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Train,
    Test,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Train => "training",
            Role::Test => "test",
        }
    }
}

/// The arrays of `cfg`, from the cache or the files; `fits` is asked about
/// their count of texts (see [`load_texts_checking`]).
fn load(cfg: &TextsConfig, fits: &dyn Fn(usize) -> Result<()>) -> Result<Loaded> {
    let files = source_files(cfg)?;
    crate::disk::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("cannot create the data folder {}", cfg.data_dir.display()))?;
    let key = CacheKey {
        archive_sha256: digest(cfg, &files)?,
        num_words: cfg.max_features,
        maxlen: cfg.maxlen,
    };
    let paths = CachePaths::new(cfg, &key);
    // A cache's arrays are made already, but the model beside them is
    // checked all the same.
    let from_cache = |key: CacheKey, (prepared, meta): (Prepared, Meta)| {
        fits(prepared.dataset.train.len() + prepared.dataset.test.len())?;
        tell_how_texts_were_read(&meta);
        warn_empty_texts(&files, &meta);
        Ok(Loaded {
            prepared,
            meta,
            origin: Origin::Cache,
            sha256: key.archive_sha256,
        })
    };
    if let Some(found) = cached(&paths, &key) {
        return from_cache(key, found);
    }
    // Runs that share the folder take turns from here, as for IMDB; one
    // that waited may find the cache that the other has just written.
    let turn = DataDirLock::acquire(&cfg.data_dir)?;
    if turn.waited() {
        if let Some(found) = cached(&paths, &key) {
            return from_cache(key, found);
        }
    }
    let (prepared, meta) = read_and_prepare(cfg, &files, fits)?;
    tell_how_texts_were_read(&meta);
    warn_empty_texts(&files, &meta);
    // The class names first: the arrays without them are no cache.
    write_json(&paths.meta, &meta, JsonLayout::OneLine)?;
    cache::save(&paths.arrays, &key, &prepared)?;
    Ok(Loaded {
        prepared,
        meta,
        origin: Origin::TextFiles,
        sha256: key.archive_sha256,
    })
}

/// The training file and the test file, each with its format.
fn source_files(cfg: &TextsConfig) -> Result<Vec<(Role, &Path, Format)>> {
    let mut files = vec![(Role::Train, cfg.files.train_file.as_path())];
    if let Some(test) = &cfg.files.test_file {
        files.push((Role::Test, test));
    }
    files
        .into_iter()
        .map(|(role, path)| {
            let format = Format::of(path, cfg.files.table.delimiter)
                .with_context(|| format!("--{}-file", role_flag(role)))?;
            Ok((role, path, format))
        })
        .collect()
}

fn role_flag(role: Role) -> &'static str {
    match role {
        Role::Train => "train",
        Role::Test => "test",
    }
}

/// The sha256 (hex) of the options and the files' content, in one pass
/// over each file.
fn digest(cfg: &TextsConfig, files: &[(Role, &Path, Format)]) -> Result<String> {
    let mut hasher = Sha256::new();
    hasher.update(format!(
        "{:?}|{:?}|",
        cfg.files.table, cfg.files.empty_texts
    ));
    // Left out for `imdb`, so that the texts of runs from before there was
    // a choice keep their sha256 (and resume).
    if cfg.files.tokenizer != TokenizerChoice::before_tokenizers() {
        hasher.update(format!("tokenizer {}|", cfg.files.tokenizer));
    }
    for &(role, path, format) in files {
        hasher.update(format!("{role:?}|{format:?}|"));
        match format {
            Format::Folders => {
                let classes = folders::class_folders(path)
                    .with_context(|| format!("--{}-file {}", role_flag(role), path.display()))?;
                for (class, files) in classes {
                    for file in files {
                        let name = file.file_name().unwrap_or_default().as_encoded_bytes();
                        hasher.update(format!("{class}/{}|", name.len()));
                        hasher.update(name);
                        hash_file(&mut hasher, &file)?;
                    }
                }
            }
            Format::Delimited(_) | Format::JsonLines => hash_file(&mut hasher, path)?,
        }
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Adds a file's bytes and length (so the next one cannot run into it).
fn hash_file(hasher: &mut Sha256, file: &Path) -> Result<()> {
    let mut input = File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let n = std::io::copy(&mut input, hasher)
        .with_context(|| format!("cannot read {}", file.display()))?;
    hasher.update(n.to_le_bytes());
    Ok(())
}

/// The cache's two files: the arrays (in `cache`'s format) and [`Meta`].
struct CachePaths {
    arrays: PathBuf,
    meta: PathBuf,
}

impl CachePaths {
    fn new(cfg: &TextsConfig, key: &CacheKey) -> CachePaths {
        let short = key.archive_sha256.get(..16).unwrap_or(&key.archive_sha256);
        let stem = format!("texts-{short}-w{}-l{}", key.num_words, key.maxlen);
        CachePaths {
            arrays: cfg.data_dir.join(format!("{stem}.cache")),
            meta: cfg.data_dir.join(format!("{stem}.meta.json")),
        }
    }
}

/// The cache for `key` if there is an intact one; a damaged one is reported
/// and left to be overwritten by the rebuild.
fn cached(paths: &CachePaths, key: &CacheKey) -> Option<(Prepared, Meta)> {
    if !paths.arrays.exists() {
        return None;
    }
    let loaded = cache::load(&paths.arrays, key).and_then(|prepared| {
        let prepared = prepared.context("it vanished while being read")?;
        let text = std::fs::read_to_string(&paths.meta)
            .with_context(|| format!("cannot read {}", paths.meta.display()))?;
        let meta: Meta = serde_json::from_str(&text)
            .with_context(|| format!("bad cache file {}", paths.meta.display()))?;
        if labels::same_number_twice(&meta.classes) {
            bail!(
                "{} has classes that are the same number (read before they were one class)",
                paths.meta.display()
            );
        }
        let ds = &prepared.dataset;
        let classes = meta.classes.len();
        if ds
            .train
            .y
            .iter()
            .chain(&ds.test.y)
            .any(|&y| y as usize >= classes)
        {
            bail!(
                "{} names fewer classes than the arrays hold",
                paths.meta.display()
            );
        }
        Ok((prepared, meta))
    });
    match loaded {
        Ok(found) => Some(found),
        Err(e) => {
            eprintln!("warning: {e:#}; rebuilding it");
            None
        }
    }
}

/// The notes of how the columns, labels and tokenizer were chosen.
fn tell_how_texts_were_read(meta: &Meta) {
    for note in &meta.column_notes {
        eprintln!("note: {note}");
    }
    if let Some(note) = &meta.label_note {
        eprintln!("note: {note}");
    }
    match &meta.auto_reason {
        Some(reason) => eprintln!("tokenizer: {} (auto: {reason})", meta.tokenizer),
        None => eprintln!("tokenizer: {}", meta.tokenizer),
    }
}

fn warn_empty_texts(files: &[(Role, &Path, Format)], meta: &Meta) {
    for &(role, path, _) in files {
        let n = meta.empty_texts[role as usize];
        if n > 0 {
            eprintln!(
                "warning: {n} empty text(s) in the {} file {}; they are kept (as Keras keeps them), and --refuse-empty-texts makes them an error",
                role.name(),
                path.display()
            );
        }
    }
}

/// Streams both files through the tokenisers: the training file first (its
/// labels make the classes), then the test file (whose labels must be
/// among them). `fits` is asked about the count of texts before any is
/// padded.
fn read_and_prepare(
    cfg: &TextsConfig,
    files: &[(Role, &Path, Format)],
    fits: &dyn Fn(usize) -> Result<()>,
) -> Result<(Prepared, Meta)> {
    let (tokenizer, auto_reason) = resolve_tokenizer(cfg, files)?;
    let encoding = Encoding {
        tokenizer,
        num_words: cfg.max_features,
        maxlen: cfg.maxlen,
    };
    let mut meta = Meta {
        classes: Vec::new(),
        empty_texts: [0; 2],
        label_note: None,
        column_notes: Vec::new(),
        tokenizer,
        auto_reason,
    };
    let progress = progress_bar(cfg, files);
    let prepared = prepare_texts(encoding, |sink: &mut TextSink<'_, u64>| {
        let mut labels = LabelSet::default();
        let mut order = 0u64;
        let mut classes: Option<Classes> = None;
        for &(role, path, format) in files {
            let mut reading = Reading {
                role,
                empty_texts: cfg.files.empty_texts,
                labels: &mut labels,
                order: &mut order,
                empty: 0,
                rows: 0,
            };
            let read = read_file(path, format, &cfg.files.table, &progress, &mut |row| {
                reading.take(row, sink)
            });
            let (rows, empty) = (reading.rows, reading.empty);
            let columns = read
                .and_then(|columns| match rows {
                    0 => bail!("no rows"),
                    _ => Ok(columns),
                })
                .with_context(|| format!("in the {} file {}", role.name(), path.display()))?;
            if let Some(columns) = columns {
                let file = format!("the {} file {}", role.name(), path.display());
                meta.column_notes.push(format!("{file}: {columns}"));
            }
            meta.empty_texts[role as usize] = empty;
            if role == Role::Train {
                let found = labels
                    .classes()
                    .with_context(|| format!("in the training file {}", path.display()))?;
                classes = Some(found);
            }
        }
        progress.finish_and_clear();
        fits(order as usize)?;
        let classes = classes.context("no training file")?;
        meta.label_note = labels.note(&classes);
        meta.classes = classes.names;
        Ok(classes.class_of)
    })?;
    Ok((prepared, meta))
}

/// The rule to cut the texts by: the one given, or `auto`'s choice from the
/// letters of the training file, and why (one more pass over that file,
/// made only when the cache misses).
fn resolve_tokenizer(
    cfg: &TextsConfig,
    files: &[(Role, &Path, Format)],
) -> Result<(Tokenizer, Option<String>)> {
    if let TokenizerChoice::Given(tokenizer) = cfg.files.tokenizer {
        return Ok((tokenizer, None));
    }
    let &(_, path, format) = files
        .iter()
        .find(|(role, ..)| *role == Role::Train)
        .context("no training file")?;
    let mut letters = ScriptCounts::default();
    let hidden = ProgressBar::hidden();
    read_file(path, format, &cfg.files.table, &hidden, &mut |row| {
        letters.add(&row.text);
        Ok(())
    })
    .with_context(|| format!("in the training file {}", path.display()))?;
    let choice = letters.choose();
    Ok((choice.tokenizer, Some(choice.reason)))
}

/// The state of reading one file.
struct Reading<'a> {
    role: Role,
    empty_texts: EmptyTexts,
    labels: &'a mut LabelSet,
    /// The next text's place in the arrays.
    order: &'a mut u64,
    empty: u64,
    rows: u64,
}

impl Reading<'_> {
    /// Checks a row's label and text and sends it to the tokenisers.
    fn take(&mut self, row: Row, sink: &mut TextSink<'_, u64>) -> Result<()> {
        let Row { place, text, label } = row;
        if label.is_empty() {
            bail!("{place}: the label is empty or missing");
        }
        for (what, field) in [("text", &text), ("label", &label)] {
            if let Some(at) = field.bytes().position(|b| b == 0) {
                bail!(
                    "{place}: the {what} holds a NUL byte (byte {at} of it), which text has \
                     none of: is the file UTF-16? save it as UTF-8"
                );
            }
        }
        let number = match self.role {
            Role::Train => self.labels.add(&label).ok_or_else(|| {
                anyhow!(
                    "{place}: label '{label}' would be class {}, past the {MAX_CLASSES} this model can have (is the label column right?)",
                    MAX_CLASSES + 1
                )
            })?,
            Role::Test => self.labels.find(&label).ok_or_else(|| {
                anyhow!("{place}: label '{label}' is not among the training file's labels")
            })?,
        };
        if text.trim().is_empty() {
            if self.empty_texts == EmptyTexts::Refuse {
                bail!("{place}: the text is empty (--refuse-empty-texts)");
            }
            self.empty += 1;
        }
        self.rows += 1;
        sink(RawText {
            order: *self.order,
            train: self.role == Role::Train,
            label: number,
            text: text.into_bytes(),
        })?;
        *self.order += 1;
        Ok(())
    }
}

/// Streams the rows of one file to `sink`; returns how a table's columns
/// were chosen by its header, if they were.
fn read_file(
    path: &Path,
    format: Format,
    table: &TableOptions,
    progress: &ProgressBar,
    sink: &mut dyn FnMut(Row) -> Result<()>,
) -> Result<Option<String>> {
    let open = || File::open(path).with_context(|| format!("cannot open {}", path.display()));
    match format {
        Format::Delimited(d) => table::read(path, d, table, progress.wrap_read(open()?), sink),
        Format::JsonLines => jsonl::read(table, progress.wrap_read(open()?), sink).map(|()| None),
        Format::Folders => folders::read(path, &|n| progress.inc(n), sink).map(|()| None),
    }
}

/// A bar over the bytes of all files; hidden unless asked for and stderr
/// is a terminal.
fn progress_bar(cfg: &TextsConfig, files: &[(Role, &Path, Format)]) -> ProgressBar {
    if !cfg.progress {
        return ProgressBar::hidden();
    }
    let total: u64 = files
        .iter()
        .map(|&(_, path, format)| match format {
            Format::Folders => folders::class_folders(path)
                .map(|classes| {
                    let sizes = classes.iter().flat_map(|(_, files)| files);
                    sizes
                        .filter_map(|f| f.metadata().ok())
                        .map(|m| m.len())
                        .sum()
                })
                .unwrap_or(0),
            _ => path.metadata().map_or(0, |m| m.len()),
        })
        .sum();
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "preparing {bar:30} {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        )
        .expect("the progress template is valid"),
    );
    bar
}

/// `--delimiter`: one ASCII character, or `tab` / `\t`.
pub fn parse_delimiter(s: &str) -> Result<u8, String> {
    match s {
        "tab" | "\\t" | "\t" => Ok(b'\t'),
        _ if s.len() == 1 && s.is_ascii() && s != "\"" && s != "\n" => Ok(s.as_bytes()[0]),
        _ => Err(format!(
            "expected one ASCII character other than a quote or a line break, or 'tab', got '{s}'"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_column_of_digits_is_a_position_and_anything_else_a_name() {
        assert_eq!("2".parse(), Ok(Column::Position(2)));
        assert_eq!("review".parse(), Ok(Column::Name("review".into())));
        assert_eq!("+1".parse(), Ok(Column::Name("+1".into())));
        assert!("".parse::<Column>().is_err());
    }

    #[test]
    fn a_delimiter_is_one_ascii_character_or_tab() {
        assert_eq!(parse_delimiter(";"), Ok(b';'));
        assert_eq!(parse_delimiter("tab"), Ok(b'\t'));
        assert_eq!(parse_delimiter("\\t"), Ok(b'\t'));
        for bad in ["", ";;", "\"", "é", "\n"] {
            assert!(parse_delimiter(bad).is_err(), "{bad:?}");
        }
    }
}
