//! Training you can stop, resume and trust, through the binary: a run
//! stopped or killed anywhere and resumed has the history of one never
//! stopped; callbacks keep and restore the best epoch; a diverging run
//! keeps its last good checkpoint; runs never share a folder; and what
//! cannot work is refused before anything is written.
mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::runs::{fixture, printed, read_history, Fixture, HistoryRow};
use common::tfevents::{bits, expected_scalars, scalars, split_learning_rate};
use common::{names_in, run_cli, sha256_hex};

/// The first five columns (everything but the timings) of each row.
fn metrics(rows: &[HistoryRow]) -> Vec<Vec<String>> {
    rows.iter().map(|r| r.fields[..5].to_vec()).collect()
}

fn history_of(f: &Fixture, run: &str) -> Vec<Vec<String>> {
    metrics(&read_history(&f.root.join(run).join("history.csv")).1)
}

/// Every row of the step-level history (it has no timings), header first.
fn steps_of(f: &Fixture, run: &str) -> Vec<Vec<String>> {
    let (header, rows) = read_history(&f.root.join(run).join("steps.csv"));
    let mut all = vec![vec![header]];
    all.extend(rows.into_iter().map(|r| r.fields));
    all
}

/// `train --resume <run>` with the data flags; returns (code, stdout, stderr).
fn resume(f: &Fixture, run: &str, extra: &[&str]) -> (Option<i32>, String, String) {
    let run_dir = f.path(run);
    let mut args = vec!["train", "--resume", &run_dir, "--verbose", "2"];
    args.extend(extra);
    f.run(&args)
}

fn spawn(f: &Fixture, args: &[String]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_gru-imdb"))
        .args(args)
        .args(f.data_flags())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start gru-imdb")
}

/// The run's TensorBoard points are those of `whole`, each once, and
/// hold its CSVs' values bit for bit.
fn assert_same_event_points(f: &Fixture, run: &str, whole: &str) {
    let dir = f.root.join(run);
    assert_eq!(
        bits(&scalars(&dir)),
        bits(&scalars(&f.root.join(whole))),
        "{run}'s event files"
    );
    assert_eq!(
        bits(&split_learning_rate(&dir).0),
        bits(&expected_scalars(&dir))
    );
}

fn results(f: &Fixture, run: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(f.root.join(run).join("results.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Every file and folder under `dir`, recursively, as paths.
fn all_paths(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        out.push(path.display().to_string());
        if path.is_dir() && !path.is_symlink() {
            out.extend(all_paths(&path));
        }
    }
    out
}

#[test]
fn a_run_stopped_anywhere_and_resumed_has_the_history_of_one_never_stopped() {
    let f = fixture();
    let whole = f.train("whole", 3, &[]);
    // 160 reviews at batch 16: 10 steps an epoch. Stop before the first
    // epoch ends, exactly at an epoch's end, and in the middle of the second.
    for stop in ["3", "10", "17"] {
        let run = format!("stopped-at-{stop}");
        let args = f.train_args(&run, 3, &["--stop-after-steps", stop]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, _, stderr) = f.run(&args);
        assert_eq!(code, Some(130), "{stderr}");
        assert!(stderr.contains("--resume"), "says how to go on: {stderr}");
        assert_eq!(results(&f, &run)["status"], "interrupted");

        let (code, stdout, stderr) = resume(&f, &run, &[]);
        assert_eq!(code, Some(0), "{stderr}");
        assert_eq!(
            history_of(&f, &run),
            history_of(&f, "whole"),
            "stopped at {stop}"
        );
        assert_eq!(
            steps_of(&f, &run),
            steps_of(&f, "whole"),
            "steps.csv, stopped at {stop}"
        );
        assert_same_event_points(&f, &run, "whole");
        assert_eq!(
            printed(&stdout, "Test accuracy: "),
            printed(&whole, "Test accuracy: ")
        );
        assert_eq!(results(&f, &run)["status"], "finished");
    }
}

#[test]
fn lazy_adam_resumes_bit_for_bit_and_a_resume_cannot_change_the_optimizer() {
    let f = fixture();
    let lazy = ["--optimizer", "lazy-adam"];
    let whole = f.train("whole-lazy", 3, &lazy);
    f.train("whole-adam", 3, &[]);
    assert_ne!(
        history_of(&f, "whole-lazy"),
        history_of(&f, "whole-adam"),
        "lazy-adam is a different optimizer"
    );
    let args = f.train_args(
        "lazy",
        3,
        &["--optimizer", "lazy-adam", "--stop-after-steps", "17"],
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, _, stderr) = f.run(&args);
    assert_eq!(code, Some(130), "{stderr}");

    let (code, _, stderr) = resume(&f, "lazy", &["--optimizer", "adam"]);
    assert_ne!(code, Some(0));
    assert!(stderr.contains("--optimizer"), "{stderr}");
    let (code, stdout, stderr) = resume(&f, "lazy", &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(history_of(&f, "lazy"), history_of(&f, "whole-lazy"));
    assert_eq!(steps_of(&f, "lazy"), steps_of(&f, "whole-lazy"));
    assert_eq!(
        printed(&stdout, "Test accuracy: "),
        printed(&whole, "Test accuracy: ")
    );
}

/// Long enough (seconds of training) that the kills below cannot all
/// miss it.
const EPOCHS: usize = 600;
const KILLS: usize = 16;

#[test]
fn a_run_killed_again_and_again_and_resumed_each_time_ends_as_one_never_killed() {
    let f = fixture();
    f.train("whole", EPOCHS, &[]);
    let first = f.train_args("killed", EPOCHS, &[]);
    let resumed: Vec<String> = ["train", "--resume", &f.path("killed"), "--verbose", "0"]
        .map(String::from)
        .to_vec();
    // Kill times from a fixed pseudo-random sequence, 50 to 550 ms after
    // each start, so kills land in start-up, data loading, steps,
    // validation and saving; after KILLS of them the run may finish.
    let mut seed: u64 = 12345;
    for kills in 0.. {
        let started = f.root.join("killed/config.json").exists();
        let mut child = spawn(&f, if started { &resumed } else { &first });
        if kills == KILLS {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            break;
        }
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        std::thread::sleep(Duration::from_millis(50 + (seed >> 33) % 500));
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before kill {kills}: make it longer"
        );
        child.kill().unwrap();
        child.wait().unwrap();
    }
    assert_eq!(history_of(&f, "killed"), history_of(&f, "whole"));
    assert_eq!(steps_of(&f, "killed"), steps_of(&f, "whole"));
    assert_same_event_points(&f, "killed", "whole");
    let run = f.root.join("killed");
    let left: Vec<String> = all_paths(&run)
        .into_iter()
        .filter(|p| p[run.display().to_string().len()..].contains(".tmp"))
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
    assert_eq!(names_in(&f.root.join("killed/checkpoints")).len(), 2);
}

/// Long enough that a signal sent after the first epoch finds the run
/// still training.
const SIGNALLED_EPOCHS: usize = 100;

/// Starts a long run, waits for its first checkpoint, and sends `signals`
/// to it at once; returns its exit code.
fn signal_after_first_checkpoint(f: &Fixture, run: &str, signals: &[libc::c_int]) -> Option<i32> {
    let mut child = spawn(f, &f.train_args(run, SIGNALLED_EPOCHS, &[]));
    let latest = f.root.join(run).join("checkpoints/latest");
    while !latest.exists() {
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
        std::thread::sleep(Duration::from_millis(5));
    }
    for &signal in signals {
        // SAFETY: kill(2) on a child process this test started and has not
        // yet waited for.
        unsafe { libc::kill(child.id() as libc::pid_t, signal) };
    }
    child.wait().unwrap().code()
}

#[test]
fn sigterm_or_ctrl_c_saves_a_checkpoint_and_exits_130_and_a_second_one_at_once() {
    let f = fixture();
    f.train("whole", SIGNALLED_EPOCHS, &[]);
    for (run, signal) in [("term", libc::SIGTERM), ("int", libc::SIGINT)] {
        assert_eq!(signal_after_first_checkpoint(&f, run, &[signal]), Some(130));
        assert_eq!(results(&f, run)["status"], "interrupted");
        let (code, _, stderr) = resume(&f, run, &[]);
        assert_eq!(code, Some(0), "{stderr}");
        assert_eq!(history_of(&f, run), history_of(&f, "whole"), "{run}");
    }
    // A second interrupt right after the first does not wait for the step:
    // the process ends at once, still with 130, and the run goes on from
    // its last checkpoint.
    let signals = [libc::SIGINT, libc::SIGINT];
    assert_eq!(
        signal_after_first_checkpoint(&f, "twice", &signals),
        Some(130)
    );
    let (code, _, stderr) = resume(&f, "twice", &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(history_of(&f, "twice"), history_of(&f, "whole"));
}

#[test]
fn resume_keeps_the_model_and_data_but_may_train_longer() {
    let f = fixture();
    f.train("two", 2, &[]);
    f.train("one-then-two", 1, &[]);
    let (code, _, stderr) = resume(&f, "one-then-two", &["--units", "16", "--seed", "4"]);
    assert_ne!(code, Some(0));
    assert!(
        stderr.contains("--units") && stderr.contains("--seed"),
        "{stderr}"
    );
    let (code, _, stderr) = resume(&f, "one-then-two", &["--epochs", "2"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(history_of(&f, "one-then-two"), history_of(&f, "two"));
    let (code, _, stderr) = resume(&f, "missing", &[]);
    assert_ne!(code, Some(0));
    assert!(stderr.contains("nothing to resume"), "{stderr}");
}

#[test]
fn the_best_epoch_is_kept_restored_and_tested() {
    let f = fixture();
    // A high learning rate overfits the tiny set within a few epochs.
    let stdout = f.train(
        "best",
        6,
        &[
            "--save-best",
            "--restore-best-weights",
            "--learning-rate",
            "0.05",
        ],
    );
    let (_, rows) = read_history(&f.root.join("best/history.csv"));
    let best = (0..rows.len())
        .min_by(|&a, &b| rows[a].get(4).total_cmp(&rows[b].get(4)))
        .unwrap();
    assert_ne!(best, rows.len() - 1, "the set-up must peak before the end");
    let results = results(&f, "best");
    assert_eq!(results["best"]["epoch"], best);
    assert_eq!(results["test"]["weights"], "best");
    // Validation is on the test set: the test figures are the best epoch's.
    assert!((printed(&stdout, "Test accuracy: ") - rows[best].get(3)).abs() < 1e-4);
    let read = |name: &str| std::fs::read(f.root.join("best").join(name)).unwrap();
    assert_eq!(read("model.safetensors"), read("model.best.safetensors"));
    // The checkpoint that restores the best weights keeps every step.
    let steps = steps_of(&f, "best");
    assert_eq!(steps.len(), 1 + 6 * 10, "a header and 10 steps an epoch");
    // predict and evaluate say which weights they use.
    let (code, _, stderr) = run_cli(&["predict", "--run-dir", &f.path("best"), "great"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("best epoch's weights"), "{stderr}");
}

#[test]
fn early_stopping_ends_the_run_after_patience_epochs_without_a_new_best() {
    let f = fixture();
    f.train(
        "early",
        30,
        &["--early-stopping-patience", "2", "--learning-rate", "0.05"],
    );
    let (_, rows) = read_history(&f.root.join("early/history.csv"));
    // The rule, replayed on the history the run wrote.
    let mut best = f64::INFINITY;
    let mut since = 0;
    let mut stop = None;
    for (epoch, row) in rows.iter().enumerate() {
        if row.get(4) < best {
            (best, since) = (row.get(4), 0);
        } else {
            since += 1;
        }
        if since >= 2 {
            stop = Some(epoch);
            break;
        }
    }
    let stop = stop.expect("the set-up stops early");
    assert_eq!(rows.len(), stop + 1);
    assert_eq!(results(&f, "early")["stopped_early_after"], stop);
}

/// Sets every value of one tensor in a safetensors file to NaN.
fn poison(path: &Path, tensor: &str) {
    let mut bytes = std::fs::read(path).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    let offsets = &header[tensor]["data_offsets"];
    let (start, end) = (offsets[0].as_u64().unwrap(), offsets[1].as_u64().unwrap());
    let data = 8 + header_len;
    for chunk in bytes[data + start as usize..data + end as usize].chunks_mut(4) {
        chunk.copy_from_slice(&f32::NAN.to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
    // The checkpoint's manifest would refuse the edit: record it there too,
    // so that the poisoned moment reaches training as a real one would.
    let checkpoint = path.parent().unwrap();
    let manifest_path = checkpoint.join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest_path).unwrap()).unwrap();
    let name = path.file_name().unwrap().to_str().unwrap();
    manifest["files"][name] = sha256_hex(path).into();
    std::fs::write(&manifest_path, manifest.to_string()).unwrap();
}

#[test]
fn a_run_whose_loss_turns_non_finite_stops_and_keeps_its_last_good_checkpoint() {
    let f = fixture();
    f.train("diverges", 1, &[]);
    // Force the divergence: Adam's first moment of one weight becomes NaN,
    // so the next update writes NaN into the model.
    let latest = f.root.join("diverges/checkpoints/latest");
    let files = ["model.safetensors", "history.csv", "checkpoint.json"];
    let before: Vec<Vec<u8>> = files
        .iter()
        .map(|n| std::fs::read(latest.join(n)).unwrap())
        .collect();
    poison(&latest.join("optimizer.safetensors"), "m.dense_kernel");
    let (code, _, stderr) = resume(&f, "diverges", &["--epochs", "2"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("NaN") && stderr.contains("epoch 2 step 2"),
        "names the epoch and step: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    let after: Vec<Vec<u8>> = files
        .iter()
        .map(|n| std::fs::read(latest.join(n)).unwrap())
        .collect();
    assert_eq!(before, after, "the last good checkpoint is untouched");
    assert_eq!(results(&f, "diverges")["status"], "failed");
}

#[test]
fn two_runs_into_one_folder_never_share_it() {
    let f = fixture();
    let args = f.train_args("shared", 2, &[]);
    let children: Vec<Child> = (0..2).map(|_| spawn(&f, &args)).collect();
    let outputs: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let ok = outputs.iter().filter(|o| o.status.success()).count();
    assert_eq!(ok, 1, "exactly one run trains into the folder");
    let refused = outputs.iter().find(|o| !o.status.success()).unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("another run is using") || stderr.contains("already holds a run"),
        "{stderr}"
    );
    assert_eq!(history_of(&f, "shared").len(), 2);
}

#[test]
fn runs_started_in_the_same_second_get_folders_of_their_own() {
    let f = fixture();
    let mut args = f.train_args("unused", 1, &[]);
    let at = args.iter().position(|a| a == "--run-dir").unwrap();
    args.drain(at..at + 2);
    let children: Vec<Child> = (0..2)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_gru-imdb"))
                .current_dir(&f.root)
                .args(&args)
                .args(f.data_flags())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let runs = names_in(&f.root.join("runs"));
    assert_eq!(runs.len(), 2, "{runs:?}");
    for run in runs {
        assert!(f
            .root
            .join("runs")
            .join(run)
            .join("model.safetensors")
            .exists());
    }
}

#[test]
fn an_edited_vocabulary_or_config_is_refused_rather_than_trusted() {
    let f = fixture();
    f.train("run", 1, &[]);
    let vocab = f.root.join("run/vocab.txt");
    let original = std::fs::read_to_string(&vocab).unwrap();
    let shortened: String = original.lines().skip(1).map(|l| format!("{l}\n")).collect();
    std::fs::write(&vocab, shortened).unwrap();
    let (code, _, stderr) = run_cli(&["predict", "--run-dir", &f.path("run"), "a fine film"]);
    assert_ne!(code, Some(0));
    assert!(stderr.contains("vocab.txt changed"), "{stderr}");
    std::fs::write(&vocab, original).unwrap();

    let config = f.root.join("run/config.json");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("\"units\": 8", "\"units\": 9")).unwrap();
    let (code, _, stderr) = run_cli(&["predict", "--run-dir", &f.path("run"), "a fine film"]);
    assert_ne!(code, Some(0));
    assert!(stderr.contains("config.json changed"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn outputs_and_sizes_that_cannot_work_are_refused_before_training() {
    let f = fixture();
    std::fs::write(f.root.join("a-file"), "").unwrap();
    let history = f.path("a-file/history.csv");
    let args = f.train_args("never", 1, &["--history", &history]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, stdout, stderr) = f.run(&args);
    assert_ne!(code, Some(0));
    assert!(stderr.contains("--history"), "{stderr}");
    assert!(
        !stdout.contains("Epoch 1"),
        "refused before training: {stdout}"
    );
    assert!(!f.root.join("never").exists(), "no run folder is left");

    for (flag, value) in [
        ("--units", "100000"),
        ("--maxlen", "100000000"),
        ("--threads", "10000"),
    ] {
        let args = f.train_args("never", 1, &[flag, value]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, _, stderr) = f.run(&args);
        assert_eq!(code, Some(1), "{flag} {value}: {stderr}");
        assert!(stderr.contains(flag), "{flag} {value}: {stderr}");
        assert!(
            !f.root.join("never").exists(),
            "{flag}: no run folder is left"
        );
    }
}

#[test]
fn predict_answers_every_line_and_names_one_that_is_not_utf8() {
    let f = fixture();
    f.train("run", 1, &[]);
    let input = f.root.join("reviews.txt");
    std::fs::write(&input, b"a great film\n\nbad \xff acting\n").unwrap();
    let (code, stdout, stderr) = run_cli(&[
        "predict",
        "--run-dir",
        &f.path("run"),
        "--file",
        input.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        stdout.lines().count(),
        3,
        "one line out per line in:\n{stdout}"
    );
    assert!(stderr.contains("line 3 is not valid UTF-8"), "{stderr}");
}
