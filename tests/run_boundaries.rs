//! The run's boundaries: a run touches only the names it made, never mixes
//! with another run's files or other data, and leaves nothing half-made
//! that cannot be resumed or reused. Each test reproduces one defect of
//! issue 21 as a hostile user found it.
mod common;

use std::path::{Path, PathBuf};

use common::http::{Reply, Server};
use common::runs::{fixture, Fixture};
use common::{cli, run_cli, write_synthetic_imdb_archive};

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn train(f: &Fixture, run: &str, epochs: usize, extra: &[&str]) -> (Option<i32>, String, String) {
    let a = f.train_args(run, epochs, extra);
    f.run(&args(&a))
}

fn resume(f: &Fixture, run: &str, extra: &[&str]) -> (Option<i32>, String, String) {
    let run = f.path(run);
    let mut a = vec!["--resume", run.as_str(), "--verbose", "2"];
    a.extend(extra);
    f.run(&a)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The history's metrics (the timings differ from run to run).
fn metrics(path: &Path) -> Vec<String> {
    read(path)
        .lines()
        .map(|l| l.split(',').take(5).collect::<Vec<_>>().join(","))
        .collect()
}

#[test]
fn a_folder_that_is_not_a_run_is_refused_before_anything_is_written() {
    let f = fixture();
    let mine = f.root.join("mine");
    let outside = f.root.join("outside");
    std::fs::create_dir_all(&mine).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("precious.txt"), "keep me").unwrap();
    std::os::unix::fs::symlink(&outside, mine.join("checkpoints")).unwrap();
    for (name, text) in [("vocab.txt", "my words"), ("results.json", "{}")] {
        std::fs::write(mine.join(name), text).unwrap();
    }
    let before = common::names_in(&mine);
    let (code, _, stderr) = train(&f, "mine", 1, &[]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("is not empty"), "{stderr}");
    assert!(stderr.contains("not a gru-imdb run folder"), "{stderr}");
    assert_eq!(common::names_in(&mine), before, "no .lock, no marker");
    assert_eq!(read(&mine.join("vocab.txt")), "my words");
    assert_eq!(read(&outside.join("precious.txt")), "keep me");
}

#[test]
fn an_empty_folder_is_claimed_and_given_back_empty_when_refused() {
    let f = fixture();
    std::fs::create_dir_all(f.root.join("empty")).unwrap();
    let history = f.path("empty/vocab.txt");
    let (code, _, stderr) = train(&f, "empty", 1, &["--history", &history]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("inside a run folder"), "{stderr}");
    assert!(common::names_in(&f.root.join("empty")).is_empty());
    f.train("empty", 1, &[]);
    assert!(f.root.join("empty/.gru-imdb-run").exists());
}

#[test]
fn resume_removes_only_the_runs_own_temporary_names() {
    let f = fixture();
    let history = f.path("elsewhere/h.csv");
    f.train("run", 1, &["--history", &history]);
    let run = f.root.join("run");
    let elsewhere = f.root.join("elsewhere");
    for (dir, name) in [
        (&run, "notes.tmp2024.txt"),
        (&run, "config.tmp999.json"),
        (&elsewhere, "h.tmp4242.csv"),
        (&elsewhere, "notes.tmp1.csv"),
    ] {
        std::fs::write(dir.join(name), "x").unwrap();
    }
    let (code, _, stderr) = resume(&f, "run", &["--epochs", "2"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        run.join("notes.tmp2024.txt").exists(),
        "a user's file stays"
    );
    assert!(
        elsewhere.join("notes.tmp1.csv").exists(),
        "a user's file stays"
    );
    assert!(
        !run.join("config.tmp999.json").exists(),
        "our leftover goes"
    );
    assert!(
        !elsewhere.join("h.tmp4242.csv").exists(),
        "our leftover goes"
    );
}

#[test]
fn a_broken_or_foreign_latest_link_costs_no_checkpoint() {
    let f = fixture();
    f.train("straight", 2, &[]);
    f.train("other", 1, &["--seed", "9"]);
    let other_checkpoint = f.root.join("other/checkpoints/000001");
    let targets = [
        "999999".to_owned(),
        "/etc".to_owned(),
        "../../other/checkpoints/000001".to_owned(),
    ];
    for (i, target) in targets.iter().enumerate() {
        let run = format!("run{i}");
        f.train(&run, 1, &[]);
        let latest = f.root.join(&run).join("checkpoints/latest");
        std::fs::remove_file(&latest).unwrap();
        std::os::unix::fs::symlink(target, &latest).unwrap();
        let (code, _, stderr) = resume(&f, &run, &["--epochs", "2"]);
        assert_eq!(code, Some(0), "latest -> {target}: {stderr}");
        assert!(stderr.contains("Resuming at epoch 2"), "{target}: {stderr}");
        assert_eq!(
            metrics(&f.root.join(&run).join("history.csv")),
            metrics(&f.root.join("straight/history.csv")),
            "latest -> {target}"
        );
        assert!(other_checkpoint.join("model.safetensors").exists());
    }
}

#[test]
fn history_may_not_be_written_into_a_run_folder() {
    let f = fixture();
    f.train("first", 1, &[]);
    for history in [f.path("second/vocab.txt"), f.path("first/mine.csv")] {
        let (code, _, stderr) = train(&f, "second", 1, &["--history", &history]);
        assert_eq!(code, Some(1), "{history}: {stderr}");
        assert!(stderr.contains("inside a run folder"), "{stderr}");
        assert!(!f.root.join("second").exists(), "nothing is left");
    }
    let vocab = f.root.join("first/vocab.txt");
    let (code, _, stderr) = run_cli(&[
        "report",
        &f.path("first"),
        "--output",
        vocab.to_str().unwrap(),
    ]);
    assert_ne!(code, Some(0));
    assert!(stderr.contains("own files"), "{stderr}");
}

/// An archive with the fixture's test reviews but other training reviews,
/// so that a vocabulary built from it ranks the words otherwise.
fn same_tests_other_training(f: &Fixture, path: &Path) {
    let ours =
        common::synthetic_reviews(common::runs::REVIEWS_PER_FOLDER, common::runs::ARCHIVE_SEED);
    let theirs = common::synthetic_reviews(common::runs::REVIEWS_PER_FOLDER * 2, 99);
    let mixed: Vec<(&str, &str, &str, &[u8])> = theirs
        .iter()
        .filter(|r| r.0 == "train")
        .chain(ours.iter().filter(|r| r.0 == "test"))
        .map(|(s, l, n, t)| (s.as_str(), l.as_str(), n.as_str(), t.as_slice()))
        .collect();
    common::write_imdb_archive(path, &mixed);
    assert!(f.archive.exists());
}

fn evaluate_accuracy(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.split("accuracy ").nth(1))
        .unwrap_or_else(|| panic!("no accuracy in {stdout}"))
        .to_owned()
}

#[test]
fn another_archive_is_tokenised_with_the_runs_vocabulary() {
    let f = fixture();
    f.train("run", 1, &[]);
    let other = f.root.join("other.tar.gz");
    same_tests_other_training(&f, &other);
    let data = f.path("data");
    let base = [
        "evaluate",
        "--run-dir",
        &f.path("run"),
        "--data-dir",
        &data,
        "--repeats",
        "1",
    ];
    let (code, own, stderr) = run_cli(&base);
    assert_eq!(code, Some(0), "{stderr}");
    let mut with_other = base.to_vec();
    with_other.extend(["--data-url", other.to_str().unwrap()]);
    let (code, theirs, stderr) = run_cli(&with_other);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("tokenised with the run's vocabulary"),
        "{stderr}"
    );
    assert_eq!(evaluate_accuracy(&own), evaluate_accuracy(&theirs));
}

#[test]
fn a_run_on_a_users_texts_is_not_evaluated_on_imdb() {
    let f = fixture();
    let csv = f.root.join("t.csv");
    let mut text = String::from("text,label\n");
    for i in 0..40 {
        let (word, label) = if i % 2 == 0 {
            ("spam", "spam")
        } else {
            ("ham", "ham")
        };
        text.push_str(&format!("buy {word} now {i},{label}\n"));
    }
    std::fs::write(&csv, text).unwrap();
    let run = f.path("texts");
    let (code, _, stderr) = run_cli(&[
        "--train-file",
        csv.to_str().unwrap(),
        "--validation-split",
        "0.25",
        "--run-dir",
        &run,
        "--epochs",
        "1",
        "--max-features",
        "50",
        "--maxlen",
        "10",
        "--embedding-dim",
        "4",
        "--units",
        "4",
        "--data-dir",
        &f.path("data"),
        "--verbose",
        "0",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let archive = f.archive.to_str().unwrap();
    let (code, _, stderr) = run_cli(&[
        "evaluate",
        "--run-dir",
        &run,
        "--data-url",
        archive,
        "--repeats",
        "1",
    ]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("another task"), "{stderr}");

    // Its class names are tied to its weights too.
    let labels = f.root.join("texts/labels.json");
    std::fs::write(&labels, "[\"spam\",\"ham\"]\n").unwrap();
    let (code, _, stderr) = run_cli(&["predict", "--run-dir", &run, "buy spam now"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("labels.json changed"), "{stderr}");
    std::fs::remove_file(&labels).unwrap();
    let (code, _, stderr) = run_cli(&["predict", "--run-dir", &run, "buy spam now"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("labels.json is missing"), "{stderr}");
}

#[test]
fn an_unpinned_archive_is_tied_to_the_run_all_the_same() {
    let f = fixture();
    let archive = f.root.join("unpinned.tar.gz");
    std::fs::copy(&f.archive, &archive).unwrap();
    let run = f.path("run");
    let a = f.train_args("run", 1, &[]);
    let mut a: Vec<&str> = args(&a);
    a.extend([
        "--data-url",
        archive.to_str().unwrap(),
        "--data-dir",
        "data",
    ]);
    let out = cli(&a).current_dir(&f.root).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config: serde_json::Value =
        serde_json::from_str(&read(&f.root.join("run/config.json"))).unwrap();
    assert_eq!(config["data_sha256"], f.sha256.as_str());
    assert!(Path::new(config["data_dir"].as_str().unwrap()).is_absolute());

    // Another archive under the same path, and no cache of the run's own
    // arrays to fall back on: the run's archive is gone.
    write_synthetic_imdb_archive(&archive, 20, 5);
    std::fs::remove_dir_all(f.root.join("data")).unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let out = cli(&["--resume", &run, "--epochs", "2"])
        .current_dir(elsewhere.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&f.sha256),
        "names the sha256 it expects: {stderr}"
    );
}

#[test]
fn a_second_url_with_the_same_file_name_is_downloaded_not_reused() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.tar.gz"), dir.path().join("b.tar.gz"));
    write_synthetic_imdb_archive(&a, 8, 1);
    write_synthetic_imdb_archive(&b, 12, 2);
    let server = Server::start(vec![
        (
            "/a/aclImdb_v1.tar.gz",
            Reply::File(std::fs::read(&a).unwrap()),
        ),
        (
            "/b/aclImdb_v1.tar.gz",
            Reply::File(std::fs::read(&b).unwrap()),
        ),
    ]);
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    for (path, reviews) in [
        ("/a/aclImdb_v1.tar.gz", 16),
        ("/b/aclImdb_v1.tar.gz", 24),
        ("/a/aclImdb_v1.tar.gz", 16),
    ] {
        let url = server.url(path);
        let (code, stdout, stderr) =
            run_cli(&["data", "--data-url", &url, "--data-dir", data, "-q"]);
        assert_eq!(code, Some(0), "{stderr}");
        assert!(
            stdout.contains(&format!("x_train shape: ({reviews}, 100)")),
            "{url}: {stdout}"
        );
    }
    assert_eq!(server.hits(), 3, "each URL change asks the server");
}

#[test]
fn an_edited_checkpoint_state_is_refused_and_changes_nothing() {
    let f = fixture();
    f.train("run", 1, &[]);
    let state = f.root.join("run/checkpoints/latest/checkpoint.json");
    let text = read(&state);
    let edited = text.replacen("\"step\": 0", "\"step\": 99999", 1);
    assert_ne!(edited, text);
    std::fs::write(&state, edited).unwrap();
    let results = read(&f.root.join("run/results.json"));
    let (code, _, stderr) = resume(&f, "run", &["--epochs", "2"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("checkpoint.json does not match"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(read(&f.root.join("run/results.json")), results);
}

#[test]
fn a_run_killed_before_its_first_epoch_is_claimed_again() {
    let f = fixture();
    let run = f.root.join("half");
    std::fs::create_dir_all(&run).unwrap();
    // What a kill between config.json and vocab.txt leaves.
    std::fs::write(run.join(".gru-imdb-run"), "").unwrap();
    std::fs::write(run.join("config.json"), "{\"half\": true}").unwrap();
    std::fs::write(run.join("config.tmp77.json"), "{").unwrap();
    // Event files of ours from the first try (none is written before a
    // checkpoint, but the names are the run's all the same), beside a
    // user's file.
    let logs = run.join("logs");
    std::fs::create_dir_all(logs.join("train")).unwrap();
    std::fs::create_dir_all(logs.join("validation")).unwrap();
    let stale = logs.join("train/events.out.tfevents.0000000001.gru-imdb.00000");
    std::fs::write(&stale, "torn").unwrap();
    std::fs::write(logs.join("train/events-being-written.tmp5"), "x").unwrap();
    std::fs::write(logs.join("validation/mine.txt"), "mine").unwrap();
    let (code, _, stderr) = resume(&f, "half", &[]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("start it again with --run-dir"), "{stderr}");
    f.train("half", 1, &[]);
    assert!(!run.join("config.tmp77.json").exists());
    assert_eq!(metrics(&run.join("history.csv")).len(), 2);
    assert!(!stale.exists() && !logs.join("train/events-being-written.tmp5").exists());
    assert_eq!(read(&logs.join("validation/mine.txt")), "mine");
    let (points, _) = common::tfevents::split_learning_rate(&run);
    assert_eq!(points, common::tfevents::expected_scalars(&run));
}

#[test]
fn a_failed_data_command_leaves_no_empty_data_folder() {
    let dir = tempfile::tempdir().unwrap();
    let data: PathBuf = dir.path().join("new/data");
    let missing = dir.path().join("missing.tar.gz");
    let (code, _, _) = run_cli(&[
        "data",
        "--data-dir",
        data.to_str().unwrap(),
        "--data-url",
        missing.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1));
    assert!(
        !dir.path().join("new").exists(),
        "{:?}",
        common::names_in(dir.path())
    );
}
