//! A tiny training setup on a generated archive, run through the binary,
//! and readers for what a run leaves.
use std::path::{Path, PathBuf};

use super::{run_cli, sha256_hex, write_synthetic_imdb_archive};

pub const REVIEWS_PER_FOLDER: usize = 80;
pub const ARCHIVE_SEED: u64 = 7;

pub struct Fixture {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
    pub archive: PathBuf,
    pub sha256: String,
}

pub fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().to_path_buf();
    let archive = root.join("aclImdb_v1.tar.gz");
    write_synthetic_imdb_archive(&archive, REVIEWS_PER_FOLDER, ARCHIVE_SEED);
    let sha256 = sha256_hex(&archive);
    Fixture {
        _dir: dir,
        root,
        archive,
        sha256,
    }
}

impl Fixture {
    pub fn data_flags(&self) -> Vec<String> {
        [
            "--data-url",
            self.archive.to_str().unwrap(),
            "--data-sha256",
            &self.sha256,
            "--data-dir",
            self.root.join("data").to_str().unwrap(),
        ]
        .map(String::from)
        .to_vec()
    }

    /// `path` under the fixture's folder, as a string for the command line.
    pub fn path(&self, path: &str) -> String {
        self.root.join(path).to_str().unwrap().to_owned()
    }

    /// Runs the binary with `args` followed by the fixture's data flags;
    /// returns (exit code, stdout, stderr).
    pub fn run(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let data = self.data_flags();
        let all: Vec<&str> = args
            .iter()
            .copied()
            .chain(data.iter().map(String::as_str))
            .collect();
        run_cli(&all)
    }

    /// The flags of a small, fast model trained for `epochs` into `run`
    /// (seed 3), with `extra`; without the data flags.
    pub fn train_args(&self, run: &str, epochs: usize, extra: &[&str]) -> Vec<String> {
        let (epochs, run_dir) = (epochs.to_string(), self.path(run));
        let base = [
            ("--epochs", epochs.as_str()),
            ("--run-dir", run_dir.as_str()),
            ("--max-features", "200"),
            ("--maxlen", "40"),
            ("--embedding-dim", "16"),
            ("--units", "8"),
            ("--batch-size", "16"),
            ("--learning-rate", "0.01"),
            ("--seed", "3"),
            ("--verbose", "2"),
        ];
        // A flag in `extra` replaces the base one.
        let mut args: Vec<String> = base
            .iter()
            .filter(|(flag, _)| !extra.contains(flag))
            .flat_map(|(flag, value)| [flag.to_string(), value.to_string()])
            .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    /// Trains a small model for `epochs` into `run`; returns stdout.
    pub fn train(&self, run: &str, epochs: usize, extra: &[&str]) -> String {
        let args = self.train_args(run, epochs, extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, stdout, stderr) = self.run(&args);
        assert_eq!(code, Some(0), "training failed:\n{stdout}\n{stderr}");
        stdout
    }
}

pub struct HistoryRow {
    pub fields: Vec<String>,
}

impl HistoryRow {
    pub fn get(&self, column: usize) -> f64 {
        self.fields[column].parse().expect("a number")
    }
}

pub fn read_history(path: &Path) -> (String, Vec<HistoryRow>) {
    let text = std::fs::read_to_string(path).expect("history.csv");
    let mut lines = text.lines();
    let header = lines.next().expect("a header").to_owned();
    let rows = lines
        .map(|l| HistoryRow {
            fields: l.split(',').map(String::from).collect(),
        })
        .collect();
    (header, rows)
}

pub fn printed(stdout: &str, prefix: &str) -> f64 {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no '{prefix}' line in:\n{stdout}"))
        .trim()
        .parse()
        .expect("a number")
}
