//! End to end on small archives: download from a local HTTP server ->
//! verify -> read -> encode -> cache, then the cache without network;
//! resuming broken downloads; local sources; the report and the export.
mod common;

use std::path::{Path, PathBuf};

use common::http::{Reply, Server};
use common::{
    names_in, read_npy_i32, run_cli, sha256_hex, synthetic_reviews, write_imdb_archive,
    write_raw_archive, write_synthetic_imdb_archive, RawEntry,
};
use gru_imdb::data::{load_dataset, pad_sequences, DataConfig, Dataset, Tokenizer, Vocabulary};

const MAXLEN: usize = 20;
const NUM_WORDS: usize = 30;
const NAME: &str = "aclImdb_v1.tar.gz";

fn config(data_dir: &Path, url: &str, sha256: Option<String>) -> DataConfig {
    DataConfig {
        data_dir: data_dir.to_path_buf(),
        url: url.to_owned(),
        sha256,
        max_features: NUM_WORDS,
        maxlen: MAXLEN,
        progress: false,
    }
}

/// A synthetic archive of `n` reviews per folder, in `dir`.
fn synthetic_archive(dir: &Path, n: usize) -> (PathBuf, Vec<u8>) {
    let path = dir.join("source.tar.gz");
    write_synthetic_imdb_archive(&path, n, 7);
    let bytes = std::fs::read(&path).unwrap();
    (path, bytes)
}

/// What the contract says the dataset of `synthetic_reviews(n, 7)` is,
/// computed with the public per-review API.
fn expected_dataset(n: usize) -> (Vocabulary, Vec<i32>, Vec<u8>, Vec<i32>, Vec<u8>) {
    let mut reviews = synthetic_reviews(n, 7);
    let id = |name: &str| name.split('_').next().unwrap().parse::<u64>().unwrap();
    reviews.sort_by_key(|(split, label, name, _)| (split != "train", label.clone(), id(name)));
    let texts: Vec<(String, bool, u8)> = reviews
        .iter()
        .map(|(s, l, _, t)| {
            (
                String::from_utf8(t.clone()).unwrap(),
                s == "train",
                (l == "pos") as u8,
            )
        })
        .collect();
    let vocab = Vocabulary::build(
        Tokenizer::Imdb,
        texts.iter().filter(|t| t.1).map(|t| t.0.as_str()),
    );
    let encode = |train: bool| {
        let seqs: Vec<Vec<i32>> = texts
            .iter()
            .filter(|t| t.1 == train)
            .map(|t| vocab.encode(Tokenizer::Imdb, &t.0, NUM_WORDS))
            .collect();
        let y = texts.iter().filter(|t| t.1 == train).map(|t| t.2).collect();
        (pad_sequences(&seqs, MAXLEN), y)
    };
    let (x_train, y_train) = encode(true);
    let (x_test, y_test) = encode(false);
    (vocab, x_train, y_train, x_test, y_test)
}

#[test]
fn download_verify_encode_cache_then_cache_without_network() {
    let tmp = tempfile::tempdir().unwrap();
    let (source, bytes) = synthetic_archive(tmp.path(), 25);
    let server = Server::start(vec![(
        "/files/aclImdb_v1.tar.gz",
        Reply::File(bytes.clone()),
    )]);
    let data = tmp.path().join("data");
    let cfg = config(
        &data,
        &server.url("/files/aclImdb_v1.tar.gz"),
        Some(sha256_hex(&source)),
    );

    let ds = load_dataset(&cfg).unwrap();
    assert_eq!(server.hits(), 1);
    let (vocab, x_train, y_train, x_test, y_test) = expected_dataset(25);
    assert_eq!(ds.vocab, vocab);
    assert_eq!(
        (ds.train.len(), ds.train.maxlen, ds.test.len()),
        (50, MAXLEN, 50)
    );
    assert_eq!(ds.train.y, y_train);
    assert_eq!(ds.train.y[..25], [0; 25], "neg first");
    assert_eq!(ds.train.x, x_train);
    assert_eq!((&ds.test.x, &ds.test.y), (&x_test, &y_test));

    // The verified archive is kept under its name; no partial or temporary
    // file is left behind.
    assert_eq!(std::fs::read(data.join(NAME)).unwrap(), bytes);
    let names = names_in(&data);
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(names.iter().any(|n| n.ends_with(".cache")), "{names:?}");
    assert!(names.iter().any(|n| n.ends_with("-vocab.txt")), "{names:?}");
    let vocab_file = names.iter().find(|n| n.ends_with("-vocab.txt")).unwrap();
    assert_eq!(Vocabulary::load(&data.join(vocab_file)).unwrap(), vocab);

    // Second run: from the cache, no request at all.
    let again = load_dataset(&cfg).unwrap();
    assert_eq!(again, ds);
    assert_eq!(server.hits(), 1, "the second run used the network");
}

#[test]
fn unpinned_url_is_accepted_and_its_kept_archive_reused() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, bytes) = synthetic_archive(tmp.path(), 5);
    let server = Server::start(vec![("/x/imdb.tar.gz", Reply::File(bytes))]);
    let cfg = config(
        &tmp.path().join("data"),
        &server.url("/x/imdb.tar.gz"),
        None,
    );
    let first = load_dataset(&cfg).unwrap();
    assert!(tmp.path().join("data/imdb.tar.gz").exists());
    let second = load_dataset(&cfg).unwrap();
    assert_eq!(first, second);
    assert_eq!(server.hits(), 1);
}

#[test]
fn resume_after_the_connection_drops_mid_body() {
    let tmp = tempfile::tempdir().unwrap();
    let (source, bytes) = synthetic_archive(tmp.path(), 30);
    let cut = bytes.len() / 2;
    let server = Server::start(vec![("/a.tar.gz", Reply::CutFirst(bytes, cut))]);
    let cfg = config(
        &tmp.path().join("data"),
        &server.url("/a.tar.gz"),
        Some(sha256_hex(&source)),
    );
    let ds = load_dataset(&cfg).unwrap();

    let requests = server.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests[0].range, None);
    assert_eq!(
        requests[1].range.as_deref(),
        Some(format!("bytes={cut}-").as_str())
    );
    let local = config(&tmp.path().join("local"), source.to_str().unwrap(), None);
    assert_eq!(ds, load_dataset(&local).unwrap());
    assert_eq!(names_in(&tmp.path().join("data")).len(), 3);
}

#[test]
fn partial_download_of_an_earlier_run_is_resumed() {
    let tmp = tempfile::tempdir().unwrap();
    let (source, bytes) = synthetic_archive(tmp.path(), 10);
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("a.tar.gz.part"), &bytes[..1000]).unwrap();
    let server = Server::start(vec![("/a.tar.gz", Reply::File(bytes))]);
    let cfg = config(&data, &server.url("/a.tar.gz"), Some(sha256_hex(&source)));
    load_dataset(&cfg).unwrap();
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].range.as_deref(), Some("bytes=1000-"));
    assert!(!data.join("a.tar.gz.part").exists());
}

#[test]
fn server_ignoring_the_range_restarts_the_download_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let (source, bytes) = synthetic_archive(tmp.path(), 10);
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    // Garbage that a wrong append would keep in front of the real bytes.
    std::fs::write(data.join("a.tar.gz.part"), vec![0xAB; 1000]).unwrap();
    let server = Server::start(vec![("/a.tar.gz", Reply::IgnoreRange(bytes.clone()))]);
    let cfg = config(&data, &server.url("/a.tar.gz"), Some(sha256_hex(&source)));
    load_dataset(&cfg).unwrap();
    assert_eq!(server.requests()[0].range.as_deref(), Some("bytes=1000-"));
    assert_eq!(std::fs::read(data.join("a.tar.gz")).unwrap(), bytes);
}

#[test]
fn local_path_and_file_url_are_verified_and_used_in_place() {
    let tmp = tempfile::tempdir().unwrap();
    let (source, _) = synthetic_archive(tmp.path(), 5);
    let sha = sha256_hex(&source);
    let data = tmp.path().join("data");
    let by_path =
        load_dataset(&config(&data, source.to_str().unwrap(), Some(sha.clone()))).unwrap();
    let url = format!("file://{}", source.display());
    let by_url = load_dataset(&config(
        &tmp.path().join("data2"),
        &url,
        Some(sha.to_uppercase()),
    ))
    .unwrap();
    assert_eq!(by_path, by_url);
    assert!(
        names_in(&data).iter().all(|n| !n.ends_with(".tar.gz")),
        "no copy is made"
    );
}

#[test]
fn reviews_are_ordered_by_numeric_id_and_non_utf8_is_decoded_lossily() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("a.tar.gz");
    write_imdb_archive(
        &path,
        &[
            ("train", "pos", "10_9.txt", b"great great fun"),
            ("train", "neg", "10_1.txt", b"dull<br />dull"),
            ("train", "pos", "9_8.txt", b"good \xff\xfe film"),
            ("train", "neg", "100_2.txt", b"bad"),
            ("train", "neg", "9_3.txt", b"awful"),
            ("test", "neg", "0_1.txt", b"bad film"),
            ("test", "pos", "0_10.txt", b"unseen words"),
        ],
    );
    let ds = load_dataset(&config(
        &tmp.path().join("data"),
        path.to_str().unwrap(),
        None,
    ))
    .unwrap();
    let v = &ds.vocab;
    let train = [
        "awful",
        "dull<br />dull",
        "bad",
        "good \u{FFFD}\u{FFFD} film",
        "great great fun",
    ];
    let seqs: Vec<Vec<i32>> = train
        .iter()
        .map(|t| v.encode(Tokenizer::Imdb, t, NUM_WORDS))
        .collect();
    assert_eq!(ds.train.x, pad_sequences(&seqs, MAXLEN));
    assert_eq!(ds.train.y, [0, 0, 0, 1, 1]);
    assert_eq!(
        v.tokens(),
        ["dull", "great", "awful", "bad", "film", "fun", "good"]
    );
    assert_eq!(ds.test.x[MAXLEN - 3..MAXLEN], [1, 7, 8]);
    assert_eq!(ds.test.x[2 * MAXLEN - 3..], [1, 2, 2]);
}

#[test]
fn leading_dot_slash_is_accepted_and_other_entries_are_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("a.tar.gz");
    write_raw_archive(
        &path,
        &[
            RawEntry::dir("./aclImdb/"),
            RawEntry::file("./aclImdb/README", b"readme"),
            RawEntry::file("./aclImdb/imdb.vocab", b"the\nand\n"),
            RawEntry::file("./aclImdb/train/labeledBow.feat", b"0:1"),
            RawEntry::file("./aclImdb/train/unsup/0_0.txt", b"ignored words"),
            RawEntry::file("./aclImdb/train/urls_pos.txt", b"http://x"),
            RawEntry::file("./aclImdb/train/neg/0_1.txt", b"bad"),
            RawEntry::file("./aclImdb/train/pos/0_9.txt", b"good"),
            RawEntry::file("./aclImdb/test/neg/0_2.txt", b"bad"),
            RawEntry::file("aclImdb/test/pos/0_8.txt", b"good"),
        ],
    );
    let ds = load_dataset(&config(
        &tmp.path().join("data"),
        path.to_str().unwrap(),
        None,
    ))
    .unwrap();
    assert_eq!(ds.vocab.tokens(), ["bad", "good"]);
    assert_eq!((ds.train.len(), ds.test.len()), (2, 2));
}

/// A report line that starts with `prefix`.
fn line<'a>(stdout: &'a str, prefix: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line '{prefix}...' in:\n{stdout}"))
}

#[test]
fn data_command_prints_the_report_and_exports_npy() {
    let tmp = tempfile::tempdir().unwrap();
    let (source, _) = synthetic_archive(tmp.path(), 12);
    let data = tmp.path().join("data");
    let export = tmp.path().join("export");
    let args = [
        "data",
        "--data-dir",
        data.to_str().unwrap(),
        "--data-url",
        source.to_str().unwrap(),
        "--max-features",
        "30",
        "--maxlen",
        "20",
        "--export",
        export.to_str().unwrap(),
    ];
    let (code, stdout, stderr) = run_cli(&args);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(line(&stdout, "x_train shape"), "x_train shape: (24, 20)");
    assert_eq!(line(&stdout, "x_test shape"), "x_test shape: (24, 20)");
    assert_eq!(
        line(&stdout, "y_train labels"),
        "y_train labels: 12 neg, 12 pos"
    );
    assert_eq!(
        line(&stdout, "y_test labels"),
        "y_test labels: 12 neg, 12 pos"
    );
    let (vocab, x_train, ..) = expected_dataset(12);
    assert_eq!(
        line(&stdout, "first training review"),
        format!("first training review: {:?}", &x_train[..20])
    );
    assert_eq!(
        line(&stdout, "vocabulary"),
        format!(
            "vocabulary: {} distinct training tokens, num_words 30",
            vocab.len()
        )
    );
    let oov = line(&stdout, "OOV rate: ");
    assert!(oov.contains("% of training tokens"), "{oov}");
    let truncated = line(&stdout, "truncated: ");
    assert!(
        truncated.ends_with("% of test reviews are longer than 20")
            && truncated.contains("% of train reviews and "),
        "{truncated}"
    );
    assert!(line(&stdout, "prepared in ").ends_with(" s (from archive)"));
    assert!(
        stderr.contains("sha256 of") && stderr.contains("--data-sha256"),
        "{stderr}"
    );

    let (shape, x) = read_npy_i32(&export.join("x_train.npy"));
    assert_eq!((shape, x), (vec![24, 20], x_train));
    assert_eq!(read_npy_i32(&export.join("y_train.npy")).0, [24]);
    assert_eq!(read_npy_i32(&export.join("x_test.npy")).0, [24, 20]);
    let (_, y_test) = read_npy_i32(&export.join("y_test.npy"));
    assert_eq!(y_test, [[0; 12], [1; 12]].concat());

    let (code, again, _) = run_cli(&args[..9]);
    assert_eq!(code, Some(0));
    assert!(
        line(&again, "prepared in ").ends_with(" s (from cache)"),
        "{again}"
    );
    let without_time = |s: &str| {
        s.lines()
            .filter(|l| !l.starts_with("prepared"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(without_time(&again), without_time(&stdout));
}

#[test]
fn corrupt_or_truncated_cache_is_rebuilt_not_trusted() {
    let tmp = tempfile::tempdir().unwrap();
    let (source, _) = synthetic_archive(tmp.path(), 6);
    let data = tmp.path().join("data");
    let args = [
        "data",
        "-q",
        "--data-dir",
        data.to_str().unwrap(),
        "--data-url",
        source.to_str().unwrap(),
    ];
    let (code, first, _) = run_cli(&args);
    assert_eq!(code, Some(0));
    let cache = names_in(&data)
        .into_iter()
        .find(|n| n.ends_with(".cache"))
        .unwrap();
    let cache = data.join(cache);
    let good = std::fs::read(&cache).unwrap();
    let same_report = |out: &str| {
        let keep = |s: &str| {
            s.lines()
                .filter(|l| !l.starts_with("prepared"))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert_eq!(keep(out), keep(&first));
    };

    let mut flipped = good.clone();
    flipped[good.len() / 2] ^= 0x40;
    let truncated = good[..good.len() - 10].to_vec();
    for (damage, why) in [
        (flipped, "checksum"),
        (truncated, "truncated"),
        (b"junk".to_vec(), ""),
    ] {
        std::fs::write(&cache, damage).unwrap();
        let (code, out, err) = run_cli(&args);
        assert_eq!(code, Some(0), "{err}");
        assert!(out.contains("(from archive)"), "{out}");
        assert!(err.contains("bad cache file") && err.contains(why), "{err}");
        same_report(&out);
        assert_eq!(std::fs::read(&cache).unwrap(), good, "rebuilt identically");
    }
    let (_, out, _) = run_cli(&args);
    assert!(out.contains("(from cache)"), "{out}");
}

#[test]
fn dataset_is_the_same_through_every_source() {
    // Sanity for the training side: the API result equals the cached one,
    // field by field, including the vocabulary.
    let tmp = tempfile::tempdir().unwrap();
    let (source, _) = synthetic_archive(tmp.path(), 8);
    let cfg = config(&tmp.path().join("data"), source.to_str().unwrap(), None);
    let built: Dataset = load_dataset(&cfg).unwrap();
    let cached: Dataset = load_dataset(&cfg).unwrap();
    assert_eq!(built, cached);
}
