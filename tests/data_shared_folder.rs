//! Runs that share one `--data-dir` take turns: two processes of the real
//! binary, against one local HTTP server, never write one `.part` file
//! together; the second waits and uses what the first downloaded.
mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Output, Stdio};

use common::http::{Gate, Reply, Server};
use common::{cli, names_in, sha256_hex, write_synthetic_imdb_archive};

const WAITING: &str = "waiting for another run that is using the data folder";

/// `gru-imdb data -q` into `data` from `url`, started with stderr piped.
fn start_data_run(data: &Path, url: &str) -> Child {
    cli(&[
        "data",
        "-q",
        "--data-dir",
        data.to_str().unwrap(),
        "--data-url",
        url,
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap()
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The run succeeded and offered the archive's real sha256 for pinning.
fn assert_succeeded_with_sha(out: &Output, url: &str, sha: &str) {
    let stderr = stderr_of(out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let line = format!("sha256 of {url}: {sha} (pass --data-sha256 {sha} to pin it)");
    assert!(stderr.contains(&line), "'{line}' missing from:\n{stderr}");
}

/// The archive with the note of its URL (nothing pinned it), its cache
/// and its vocabulary; no lock, part or bad file.
fn assert_only_the_results(data: &Path) {
    let names = names_in(data);
    assert_eq!(names.len(), 4, "{names:?}");
    assert!(names.contains(&"aclImdb_v1.tar.gz".to_owned()), "{names:?}");
    assert!(
        names.contains(&"aclImdb_v1.tar.gz.url".to_owned()),
        "{names:?}"
    );
    assert!(names.iter().any(|n| n.ends_with(".cache")), "{names:?}");
    assert!(names.iter().any(|n| n.ends_with("-vocab.txt")), "{names:?}");
}

#[test]
fn a_second_run_waits_for_the_first_and_uses_its_download() {
    let tmp = tempfile::tempdir().unwrap();
    let source = tmp.path().join("source.tar.gz");
    write_synthetic_imdb_archive(&source, 20, 5);
    let gate = Gate::default();
    let server = Server::start(vec![(
        "/aclImdb_v1.tar.gz",
        Reply::Gated(std::fs::read(&source).unwrap(), gate.clone()),
    )]);
    let url = server.url("/aclImdb_v1.tar.gz");
    let data = tmp.path().join("data");

    let first = start_data_run(&data, &url);
    while server.hits() == 0 {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // The first run is downloading, held back by the gate: the second
    // must say that it waits, and wait.
    let mut second = start_data_run(&data, &url);
    let mut second_stderr = BufReader::new(second.stderr.take().unwrap());
    let mut said = String::new();
    while !said.contains(WAITING) {
        let mut line = String::new();
        let n = second_stderr.read_line(&mut line).unwrap();
        assert!(n > 0, "the second run ended without waiting:\n{said}");
        said.push_str(&line);
    }
    gate.open();

    let first = first.wait_with_output().unwrap();
    second_stderr.read_to_string(&mut said).unwrap();
    let mut second = second.wait_with_output().unwrap();
    second.stderr = said.into_bytes();
    let sha = sha256_hex(&source);
    assert_succeeded_with_sha(&first, &url, &sha);
    assert_succeeded_with_sha(&second, &url, &sha);
    assert!(!stderr_of(&first).contains(WAITING));
    assert_eq!(server.hits(), 1, "the second run downloaded again");
    assert_only_the_results(&data);
}

#[test]
fn runs_started_at_once_into_one_folder_all_succeed_with_one_download() {
    let tmp = tempfile::tempdir().unwrap();
    let source = tmp.path().join("source.tar.gz");
    write_synthetic_imdb_archive(&source, 200, 9);
    let sha = sha256_hex(&source);
    let server = Server::start(vec![(
        "/aclImdb_v1.tar.gz",
        Reply::File(std::fs::read(&source).unwrap()),
    )]);
    let url = server.url("/aclImdb_v1.tar.gz");
    for attempt in 0..3 {
        let data = tmp.path().join(format!("data{attempt}"));
        let runs = [start_data_run(&data, &url), start_data_run(&data, &url)];
        for run in runs {
            assert_succeeded_with_sha(&run.wait_with_output().unwrap(), &url, &sha);
        }
        assert_eq!(server.hits(), attempt + 1, "attempt {attempt}");
        assert_only_the_results(&data);
    }
}
