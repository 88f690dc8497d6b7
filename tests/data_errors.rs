//! Every failure of the data pipeline, each on its own: a clear message
//! naming the file, URL or flag, a non-zero exit without a panic, and
//! nothing half-written left behind for a later run to trust.
mod common;

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::http::{Reply, Server};
use common::{
    append_raw, cli, run_cli, sha256_hex, write_imdb_archive, write_raw_archive,
    write_synthetic_imdb_archive, write_tar_gz, RawEntry,
};
use gru_imdb::data::{load_dataset, DataConfig, MAX_ARCHIVE_BYTES, MAX_REVIEW_BYTES};
use tar::EntryType;

/// The variable that sets the wait before the first retry of a download.
const RETRY_DELAY_VAR: &str = "GRU_IMDB_RETRY_DELAY_MS";

/// Runs `gru-imdb data -q <args>`, expects exit code 1 without a panic, and
/// returns stderr. Retries wait a millisecond at first, not half a second.
fn fails(args: &[&str]) -> String {
    fails_with_retry_delay(args, Duration::from_millis(1))
}

fn fails_with_retry_delay(args: &[&str], first_retry: Duration) -> String {
    let mut all = vec!["data", "-q"];
    all.extend_from_slice(args);
    let out = cli(&all)
        .env(RETRY_DELAY_VAR, first_retry.as_millis().to_string())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `data -q --data-dir <tmp>/data --data-url <archive>` must fail; returns
/// stderr and the data folder.
fn fails_on_archive(tmp: &Path, archive: &Path) -> (String, PathBuf) {
    let data = tmp.join("data");
    let err = fails(&["--data-dir", s(&data), "--data-url", s(archive)]);
    (err, data)
}

/// A valid synthetic archive in `dir`.
fn good_archive(dir: &Path) -> (PathBuf, Vec<u8>) {
    let path = dir.join("good.tar.gz");
    write_synthetic_imdb_archive(&path, 8, 3);
    let bytes = std::fs::read(&path).unwrap();
    (path, bytes)
}

fn assert_has(haystack: &str, needles: &[&str]) {
    for n in needles {
        assert!(haystack.contains(n), "'{n}' missing from:\n{haystack}");
    }
}

/// Nothing that looks complete was left in `data`: no kept archive, no
/// cache, no temporary file.
fn assert_nothing_kept(data: &Path, name: &str) {
    if let Ok(entries) = std::fs::read_dir(data) {
        for e in entries {
            let n = e.unwrap().file_name().to_string_lossy().into_owned();
            assert!(
                n != name && !n.ends_with(".cache") && !n.contains(".tmp"),
                "{n} left in {}",
                data.display()
            );
        }
    }
}

#[test]
fn unreachable_host() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/aclImdb_v1.tar.gz");
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let err = fails(&["--data-dir", s(&data), "--data-url", &url]);
    assert_has(&err, &["cannot download", &url]);
    assert_nothing_kept(&data, "aclImdb_v1.tar.gz");
}

#[test]
fn http_404() {
    let server = Server::start(vec![]);
    let url = server.url("/missing.tar.gz");
    let tmp = tempfile::tempdir().unwrap();
    let err = fails(&[
        "--data-dir",
        s(&tmp.path().join("data")),
        "--data-url",
        &url,
    ]);
    assert_has(&err, &["HTTP 404", &url]);
}

#[test]
fn http_500() {
    let server = Server::start(vec![("/a.tar.gz", Reply::Status(500))]);
    let url = server.url("/a.tar.gz");
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let err = fails(&["--data-dir", s(&data), "--data-url", &url]);
    assert_has(&err, &["HTTP 500", &url]);
    assert_nothing_kept(&data, "a.tar.gz");
}

#[test]
fn checksum_mismatch_moves_the_download_aside() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, bytes) = good_archive(tmp.path());
    let server = Server::start(vec![("/a.tar.gz", Reply::File(bytes.clone()))]);
    let url = server.url("/a.tar.gz");
    let data = tmp.path().join("data");
    let wrong = "0".repeat(64);
    let err = fails(&[
        "--data-dir",
        s(&data),
        "--data-url",
        &url,
        "--data-sha256",
        &wrong,
    ]);
    assert_has(&err, &["sha256 mismatch", &url, "a.tar.gz.bad"]);
    assert_nothing_kept(&data, "a.tar.gz");
    assert!(!data.join("a.tar.gz.part").exists());
    assert_eq!(std::fs::read(data.join("a.tar.gz.bad")).unwrap(), bytes);
}

#[test]
fn size_mismatch_moves_the_download_aside() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, bytes) = good_archive(tmp.path());
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("a.tar.gz.part"), &bytes[..100]).unwrap();
    // The server resumes fine but claims the file is 10 bytes longer.
    let claimed = bytes.len() as u64 + 10;
    let server = Server::start(vec![("/a.tar.gz", Reply::WrongTotal(bytes, claimed))]);
    let url = server.url("/a.tar.gz");
    let err = fails(&["--data-dir", s(&data), "--data-url", &url]);
    assert_has(
        &err,
        &[
            "size mismatch",
            &format!("expected {claimed}"),
            "a.tar.gz.bad",
        ],
    );
    assert_nothing_kept(&data, "a.tar.gz");
}

#[test]
fn kept_archive_failing_verification_is_moved_aside_and_fetched_again() {
    let tmp = tempfile::tempdir().unwrap();
    let (source, bytes) = good_archive(tmp.path());
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("a.tar.gz"), b"tampered").unwrap();
    let server = Server::start(vec![("/a.tar.gz", Reply::File(bytes.clone()))]);
    let cfg = DataConfig {
        data_dir: data.clone(),
        url: server.url("/a.tar.gz"),
        sha256: Some(sha256_hex(&source)),
        max_features: 100,
        maxlen: 10,
        progress: false,
    };
    load_dataset(&cfg).unwrap();
    assert_eq!(std::fs::read(data.join("a.tar.gz")).unwrap(), bytes);
    assert_eq!(
        std::fs::read(data.join("a.tar.gz.bad")).unwrap(),
        b"tampered"
    );
}

#[test]
fn download_broken_on_every_attempt_gives_up_and_keeps_the_part() {
    let tmp = tempfile::tempdir().unwrap();
    let (source, bytes) = good_archive(tmp.path());
    let chunk = bytes.len() / 20;
    let broken = Server::start(vec![("/a.tar.gz", Reply::CutAlways(bytes.clone(), chunk))]);
    let data = tmp.path().join("data");
    let err = fails(&[
        "--data-dir",
        s(&data),
        "--data-url",
        &broken.url("/a.tar.gz"),
    ]);
    assert_has(&err, &["cannot download", "5 attempts", "a.tar.gz.part"]);
    assert_eq!(broken.hits(), 5);
    assert_nothing_kept(&data, "a.tar.gz");
    let part = std::fs::read(data.join("a.tar.gz.part")).unwrap();
    assert_eq!(part, bytes[..5 * chunk]);

    // The next run picks up where this one stopped.
    let good = Server::start(vec![("/a.tar.gz", Reply::File(bytes.clone()))]);
    let sha = sha256_hex(&source);
    let url = good.url("/a.tar.gz");
    let (code, _, stderr) = run_cli(&[
        "data",
        "-q",
        "--data-dir",
        s(&data),
        "--data-url",
        &url,
        "--data-sha256",
        &sha,
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        good.requests()[0].range,
        Some(format!("bytes={}-", 5 * chunk))
    );
}

#[test]
fn retries_of_a_broken_download_wait_twice_as_long_each_time() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, bytes) = good_archive(tmp.path());
    let broken = Server::start(vec![("/a.tar.gz", Reply::CutAlways(bytes, 100))]);
    let first = Duration::from_millis(40);
    let err = fails_with_retry_delay(
        &[
            "--data-dir",
            s(&tmp.path().join("data")),
            "--data-url",
            &broken.url("/a.tar.gz"),
        ],
        first,
    );
    assert_has(
        &err,
        &["resuming in 40ms", "resuming in 320ms", "5 attempts"],
    );
    let requests = broken.requests();
    assert_eq!(requests.len(), 5);
    for (i, pair) in requests.windows(2).enumerate() {
        let waited = pair[1].at - pair[0].at;
        let at_least = first * 2u32.pow(i as u32);
        assert!(
            waited >= at_least,
            "retry {i} came {waited:?} after the attempt before it, expected at least {at_least:?}"
        );
    }
}

/// What a download without `--data-sha256` may turn out to be instead of
/// the archive, each served with 200 as if it were the file.
fn bodies_that_are_not_the_archive(archive: &[u8]) -> [(&'static str, Vec<u8>); 2] {
    let html = b"<!DOCTYPE html><html><body>Please log in</body></html>\n".to_vec();
    let truncated = archive[..archive.len() / 2].to_vec();
    [("an HTML page", html), ("a truncated archive", truncated)]
}

#[test]
fn unpinned_download_that_does_not_read_is_not_kept_and_is_fetched_again() {
    let tmp = tempfile::tempdir().unwrap();
    let (source, bytes) = good_archive(tmp.path());
    for (what, body) in bodies_that_are_not_the_archive(&bytes) {
        let data = tmp.path().join("data");
        let bad_server = Server::start(vec![("/a.tar.gz", Reply::File(body.clone()))]);
        let err = fails(&[
            "--data-dir",
            s(&data),
            "--data-url",
            &bad_server.url("/a.tar.gz"),
        ]);
        assert_has(
            &err,
            &[
                "not a readable archive",
                &bad_server.url("/a.tar.gz"),
                "a.tar.gz.bad",
            ],
        );
        assert!(
            !err.contains("--data-sha256"),
            "{what}: offered to pin: {err}"
        );
        assert_nothing_kept(&data, "a.tar.gz");
        assert!(!data.join("a.tar.gz.part").exists(), "{what}");
        assert_eq!(std::fs::read(data.join("a.tar.gz.bad")).unwrap(), body);

        // Once the server is right, the next run downloads it again.
        let good = Server::start(vec![("/a.tar.gz", Reply::File(bytes.clone()))]);
        let url = good.url("/a.tar.gz");
        let (code, _, stderr) =
            run_cli(&["data", "-q", "--data-dir", s(&data), "--data-url", &url]);
        assert_eq!(code, Some(0), "{what}: {stderr}");
        assert_eq!(good.hits(), 1, "{what}");
        assert_eq!(
            std::fs::read(data.join("a.tar.gz")).unwrap(),
            bytes,
            "{what}"
        );
        let sha = sha256_hex(&source);
        assert_has(
            &stderr,
            &[&format!("{url}: {sha} (pass --data-sha256 {sha}")],
        );
        std::fs::remove_dir_all(&data).unwrap();
    }
}

#[test]
fn kept_unpinned_archive_that_does_not_read_is_moved_aside_and_fetched_again() {
    let tmp = tempfile::tempdir().unwrap();
    let (source, bytes) = good_archive(tmp.path());
    for (what, body) in bodies_that_are_not_the_archive(&bytes) {
        // As an earlier version kept it, with no hash to check it against.
        let data = tmp.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("a.tar.gz"), &body).unwrap();
        let server = Server::start(vec![("/a.tar.gz", Reply::File(bytes.clone()))]);
        let cfg = DataConfig {
            data_dir: data.clone(),
            url: server.url("/a.tar.gz"),
            sha256: None,
            max_features: 100,
            maxlen: 10,
            progress: false,
        };
        let from_download = load_dataset(&cfg).unwrap();
        assert_eq!(server.hits(), 1, "{what}");
        assert_eq!(
            std::fs::read(data.join("a.tar.gz")).unwrap(),
            bytes,
            "{what}"
        );
        assert_eq!(
            std::fs::read(data.join("a.tar.gz.bad")).unwrap(),
            body,
            "{what}"
        );
        let local = DataConfig {
            data_dir: tmp.path().join("local"),
            url: s(&source).to_owned(),
            ..cfg
        };
        assert_eq!(from_download, load_dataset(&local).unwrap(), "{what}");
        std::fs::remove_dir_all(&data).unwrap();
    }
}

#[test]
fn truncated_gzip() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, bytes) = good_archive(tmp.path());
    let cut = tmp.path().join("cut.tar.gz");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let (err, data) = fails_on_archive(tmp.path(), &cut);
    assert_has(&err, &["cannot read the archive", "cut.tar.gz"]);
    assert_nothing_kept(&data, "cut.tar.gz");
}

#[test]
fn gzip_missing_its_trailer() {
    // Every tar entry is intact; only the gzip CRC and length are gone.
    let tmp = tempfile::tempdir().unwrap();
    let (_, bytes) = good_archive(tmp.path());
    let cut = tmp.path().join("cut.tar.gz");
    std::fs::write(&cut, &bytes[..bytes.len() - 8]).unwrap();
    let (err, data) = fails_on_archive(tmp.path(), &cut);
    assert_has(&err, &["cannot read the archive", "cut.tar.gz"]);
    assert_nothing_kept(&data, "cut.tar.gz");
}

#[test]
fn corrupt_gzip() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, mut bytes) = good_archive(tmp.path());
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 64] {
        *b ^= 0x5A;
    }
    let bad = tmp.path().join("bad.tar.gz");
    std::fs::write(&bad, &bytes).unwrap();
    let (err, _) = fails_on_archive(tmp.path(), &bad);
    assert_has(&err, &["cannot read the archive", "bad.tar.gz"]);
}

#[test]
fn not_a_gzip_file() {
    let tmp = tempfile::tempdir().unwrap();
    let text = tmp.path().join("reviews.tar.gz");
    std::fs::write(&text, "this is not an archive\n").unwrap();
    let (err, _) = fails_on_archive(tmp.path(), &text);
    assert_has(&err, &["cannot read the archive", "reviews.tar.gz"]);
}

#[test]
fn archive_without_one_of_the_four_folders() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("three.tar.gz");
    write_imdb_archive(
        &path,
        &[
            ("train", "neg", "0_1.txt", b"bad"),
            ("train", "pos", "0_9.txt", b"good"),
            ("test", "neg", "0_2.txt", b"bad"),
        ],
    );
    let (err, data) = fails_on_archive(tmp.path(), &path);
    assert_has(&err, &["three.tar.gz", "no aclImdb/test/pos/*.txt reviews"]);
    assert_nothing_kept(&data, "three.tar.gz");
}

/// An archive with the four folders and one extra, hostile entry.
fn archive_with(tmp: &Path, extra: RawEntry) -> PathBuf {
    let path = tmp.join("hostile.tar.gz");
    write_raw_archive(
        &path,
        &[
            RawEntry::file("aclImdb/train/neg/0_1.txt", b"bad"),
            RawEntry::file("aclImdb/train/pos/0_9.txt", b"good"),
            extra,
            RawEntry::file("aclImdb/test/neg/0_2.txt", b"bad"),
            RawEntry::file("aclImdb/test/pos/0_8.txt", b"good"),
        ],
    );
    path
}

#[test]
fn tar_entry_escaping_with_dot_dot() {
    let tmp = tempfile::tempdir().unwrap();
    let name = "aclImdb/train/pos/../../../../tmp/evil_1.txt";
    let path = archive_with(tmp.path(), RawEntry::file(name, b"owned"));
    let (err, data) = fails_on_archive(tmp.path(), &path);
    assert_has(&err, &[name, "'..'", "hostile.tar.gz"]);
    assert_nothing_kept(&data, "hostile.tar.gz");
}

#[test]
fn tar_entry_with_an_absolute_path() {
    let tmp = tempfile::tempdir().unwrap();
    let name = "/aclImdb/train/pos/1_9.txt";
    let path = archive_with(tmp.path(), RawEntry::file(name, b"owned"));
    let (err, _) = fails_on_archive(tmp.path(), &path);
    assert_has(&err, &[name, "absolute path"]);
}

#[test]
fn tar_entry_that_is_a_link() {
    let tmp = tempfile::tempdir().unwrap();
    for kind in [EntryType::Symlink, EntryType::Link] {
        let name = "aclImdb/train/pos/1_9.txt";
        let link = RawEntry {
            name: name.as_bytes(),
            kind,
            link: b"/etc/passwd",
            data: b"",
        };
        let path = archive_with(tmp.path(), link);
        let (err, _) = fails_on_archive(tmp.path(), &path);
        assert_has(&err, &[name, "is a link"]);
    }
}

#[test]
fn review_larger_than_the_cap() {
    let tmp = tempfile::tempdir().unwrap();
    let big = vec![b'a'; MAX_REVIEW_BYTES as usize + 1];
    let name = "aclImdb/train/pos/1_9.txt";
    let path = archive_with(tmp.path(), RawEntry::file(name, &big));
    let (err, _) = fails_on_archive(tmp.path(), &path);
    assert_has(&err, &[name, "more than the 1048576"]);
}

#[test]
fn gzip_bomb_is_an_error_not_an_out_of_memory() {
    // A ~1 MB file that inflates past the archive cap, in an entry that is
    // skipped (not kept in memory): only the cap can stop it.
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("bomb.tar.gz");
    let size = MAX_ARCHIVE_BYTES + (1 << 20);
    write_tar_gz(&path, |tar| {
        let name = b"aclImdb/train/unsup/bomb.txt";
        append_raw(
            tar,
            name,
            EntryType::Regular,
            b"",
            size,
            io::repeat(0).take(size),
        )
    });
    assert!(
        std::fs::metadata(&path).unwrap().len() < 2 << 20,
        "a small file"
    );
    let (err, _) = fails_on_archive(tmp.path(), &path);
    assert_has(&err, &["bomb.tar.gz", "decompresses to more than"]);
}

#[test]
fn data_dir_that_is_a_file() {
    let tmp = tempfile::tempdir().unwrap();
    let (source, _) = good_archive(tmp.path());
    let file = tmp.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    for data in [file.clone(), file.join("sub")] {
        let err = fails(&["--data-dir", s(&data), "--data-url", s(&source)]);
        assert_has(&err, &["cannot create the data folder", s(&data)]);
    }
}

#[test]
fn full_cache_folder() {
    // The cache is written to `<stem>.tmp<pid>.<ext>` first; making that name a
    // link to /dev/full makes every write fail with ENOSPC, like a full disk.
    let tmp = tempfile::tempdir().unwrap();
    let (source, _) = good_archive(tmp.path());
    let cfg = |data: &Path| DataConfig {
        data_dir: data.to_path_buf(),
        url: s(&source).to_owned(),
        sha256: None,
        max_features: 100,
        maxlen: 10,
        progress: false,
    };
    let probe = tmp.path().join("probe");
    load_dataset(&cfg(&probe)).unwrap();
    let cache_name = std::fs::read_dir(&probe)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .find(|n| n.ends_with(".cache"))
        .unwrap();

    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let stem = cache_name.strip_suffix(".cache").unwrap();
    let temp = data.join(format!("{stem}.tmp{}.cache", std::process::id()));
    std::os::unix::fs::symlink("/dev/full", &temp).unwrap();
    let err = format!("{:#}", load_dataset(&cfg(&data)).unwrap_err());
    assert_has(
        &err,
        &["cannot write the cache", &cache_name, "No space left"],
    );
    assert_nothing_kept(&data, "");
    assert!(
        std::fs::symlink_metadata(&temp).is_err(),
        "the temporary name is cleaned up"
    );
}

#[test]
fn missing_local_archive() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nowhere.tar.gz");
    let (err, _) = fails_on_archive(tmp.path(), &missing);
    assert_has(&err, &["--data-url", "nowhere.tar.gz"]);
}

#[test]
fn local_archive_with_the_wrong_checksum_is_refused_and_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let (source, bytes) = good_archive(tmp.path());
    let data = tmp.path().join("data");
    let wrong = "f".repeat(64);
    let err = fails(&[
        "--data-dir",
        s(&data),
        "--data-url",
        s(&source),
        "--data-sha256",
        &wrong,
    ]);
    assert_has(&err, &["sha256 mismatch", s(&source)]);
    assert_eq!(
        std::fs::read(&source).unwrap(),
        bytes,
        "a user's file is never moved"
    );
}

#[test]
fn bad_flags() {
    let tmp = tempfile::tempdir().unwrap();
    let (source, _) = good_archive(tmp.path());
    let data = tmp.path().join("data");
    let base = ["--data-dir", s(&data), "--data-url", s(&source)];
    let with = |extra: &[&str]| fails(&[&base[..], extra].concat());
    assert_has(&with(&["--maxlen", "0"]), &["--maxlen"]);
    assert_has(&with(&["--max-features", "0"]), &["--max-features"]);
    assert_has(
        &with(&["--data-sha256", "abc"]),
        &["--data-sha256", "'abc'"],
    );
    let err = fails(&[
        "--data-dir",
        s(&data),
        "--data-url",
        "ftp://example.invalid/a.tar.gz",
    ]);
    assert_has(&err, &["--data-url", "ftp"]);
}
