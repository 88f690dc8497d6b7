//! The real reviews as a user's CSV: `scripts/imdb_to_csv.py` turns the
//! shared mirror of aclImdb (`shared/data` beside the repo) into train.csv
//! and test.csv, and `--train-file`/`--test-file` on them give exactly the
//! archive path's arrays and vocabulary. Skipped with a note when the
//! archive or python3 is absent.
mod common;

use std::path::Path;
use std::process::Command;

use common::real_archive;

use gru_imdb::data::texts::{load_texts, EmptyTexts, TableOptions, TextFiles, TextsConfig};
use gru_imdb::data::{load_dataset, DataConfig, TokenizerChoice};

#[test]
fn the_real_reviews_as_csv_give_the_archive_arrays_bit_for_bit() {
    let Some((archive, sha)) = real_archive() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let csv_dir = tmp.path().join("csv");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/imdb_to_csv.py");
    let converted = Command::new("python3")
        .arg(&script)
        .arg(&archive)
        .arg(&csv_dir)
        .output();
    let converted = match converted {
        Ok(out) => out,
        Err(e) => {
            eprintln!("note: cannot run python3 ({e}); skipping");
            return;
        }
    };
    assert!(
        converted.status.success(),
        "{}",
        String::from_utf8_lossy(&converted.stderr)
    );
    let from_archive = load_dataset(&DataConfig {
        data_dir: tmp.path().join("archive"),
        url: archive.to_str().unwrap().to_owned(),
        sha256: Some(sha),
        max_features: 10_000,
        maxlen: 100,
        progress: false,
    })
    .unwrap();
    let from_csv = load_texts(&TextsConfig {
        data_dir: tmp.path().join("texts"),
        files: TextFiles {
            train_file: csv_dir.join("train.csv"),
            test_file: Some(csv_dir.join("test.csv")),
            table: TableOptions::default(),
            empty_texts: EmptyTexts::Refuse,
            tokenizer: TokenizerChoice::Auto,
        },
        max_features: 10_000,
        maxlen: 100,
        progress: false,
    })
    .unwrap();
    assert_eq!(from_csv.class_names, ["neg", "pos"]);
    assert!(from_csv.dataset == from_archive, "the arrays differ");
}
