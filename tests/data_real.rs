//! Against the real reviews: the shared 27.8 MB mirror of aclImdb's labelled
//! part (`shared/data` beside the repo; skipped with a note when absent).
mod common;

use std::path::Path;

use common::http::{Reply, Server};
use common::real_archive;
use gru_imdb::data::{load_dataset, DataConfig, Dataset};

/// The archive and its pinned sha256 from `SHA256SUMS`, if present.
fn config(data_dir: &Path, url: &str, sha: &str) -> DataConfig {
    DataConfig {
        data_dir: data_dir.to_path_buf(),
        url: url.to_owned(),
        sha256: Some(sha.to_owned()),
        max_features: 10_000,
        maxlen: 100,
        progress: false,
    }
}

fn assert_keras_shapes(ds: &Dataset) {
    for split in [&ds.train, &ds.test] {
        assert_eq!(
            (split.len(), split.maxlen, split.x.len()),
            (25_000, 100, 2_500_000)
        );
        assert!(split.y[..12_500].iter().all(|&y| y == 0), "neg first");
        assert!(split.y[12_500..].iter().all(|&y| y == 1), "then pos");
        assert!(split.x.iter().all(|&id| (0..10_000).contains(&id)));
    }
}

#[test]
fn real_archive_gives_25000_by_100_per_split_and_reloads_from_cache() {
    let Some((path, sha)) = real_archive() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), path.to_str().unwrap(), &sha);
    let ds = load_dataset(&cfg).unwrap();
    assert_keras_shapes(&ds);
    // Regression values, cross-checked against an independent Python
    // implementation of the contract on this archive.
    assert_eq!(ds.vocab.len(), 81_393);
    assert_eq!(&ds.vocab.tokens()[..5], ["the", "and", "a", "of", "to"]);
    assert_eq!(
        ds.train.x[90..100],
        [379, 3502, 2, 5, 2, 8509, 69, 29, 109, 3371]
    );
    assert_eq!(load_dataset(&cfg).unwrap(), ds);
}

#[test]
fn real_archive_through_http_with_a_dropped_connection() {
    let Some((path, sha)) = real_archive() else {
        return;
    };
    let bytes = std::fs::read(&path).unwrap();
    let cut = bytes.len() / 3;
    let server = Server::start(vec![("/aclImdb_v1.tar.gz", Reply::CutFirst(bytes, cut))]);
    let tmp = tempfile::tempdir().unwrap();
    let ds = load_dataset(&config(tmp.path(), &server.url("/aclImdb_v1.tar.gz"), &sha)).unwrap();
    assert_keras_shapes(&ds);
    let ranges: Vec<_> = server.requests().into_iter().map(|r| r.range).collect();
    assert_eq!(ranges, [None, Some(format!("bytes={cut}-"))]);
}
