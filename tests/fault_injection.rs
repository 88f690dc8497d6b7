//! Fault injection, as SQLite tests its I/O: every file-system change a
//! small `train`, `train --resume` and `data` make is numbered
//! (`src/disk.rs`), and each one in turn is made to fail (`ENOSPC`, as a
//! full disk) or to abort the process (as a kill). After each, the same
//! command, or `--resume` where a checkpoint exists, must finish with the
//! history of a run that was never hurt, bit for bit, and no file that
//! existed before may have changed.
//!
//! Built only with the `fault-injection` feature, which `make test` turns
//! on.
#![cfg(feature = "fault-injection")]
mod common;

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::cli;
use common::runs::{fixture, Fixture};

#[derive(Clone, Copy, Debug)]
enum Fault {
    Fail,
    Abort,
}

/// Runs `args` in `root` with the fault at change `n` (none for 0).
fn run(root: &Path, args: &[String], n: usize, fault: Fault, trace: bool) -> Output {
    let mut command: Command = cli(&args.iter().map(String::as_str).collect::<Vec<_>>());
    command.current_dir(root);
    if n > 0 {
        let kind = match fault {
            Fault::Fail => "fail",
            Fault::Abort => "abort",
        };
        command.env("GRU_IMDB_FAULT", format!("{n}:{kind}"));
    }
    if trace {
        command.env("GRU_IMDB_FAULT_TRACE", "1");
    }
    // SAFETY: setrlimit only, between fork and exec: no core files from
    // the aborts.
    unsafe {
        command.pre_exec(|| {
            let none = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            libc::setrlimit(libc::RLIMIT_CORE, &none);
            Ok(())
        });
    }
    command.output().expect("run gru-imdb")
}

/// The changes a clean run of `args` makes, as the trace prints them.
fn changes(root: &Path, args: &[String]) -> Vec<String> {
    let out = run(root, args, 0, Fault::Fail, true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let points: Vec<String> = stderr
        .lines()
        .filter(|l| l.starts_with("fault point "))
        .map(str::to_owned)
        .collect();
    assert!(!points.is_empty(), "no fault points traced:\n{stderr}");
    points
}

/// The history's metrics (timings differ between runs).
fn metrics(run: &Path) -> Vec<String> {
    std::fs::read_to_string(run.join("history.csv"))
        .unwrap_or_else(|e| panic!("{}: {e}", run.display()))
        .lines()
        .map(|l| l.split(',').take(5).collect::<Vec<_>>().join(","))
        .collect()
}

/// The run's TensorBoard points, bit for bit.
fn event_points(run: &Path) -> BTreeMap<(String, String), Vec<(i64, u32)>> {
    common::tfevents::bits(&common::tfevents::scalars(run))
}

/// sha256 of every file under `dir` (links by their target), by path.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(next) = stack.pop() {
        for entry in std::fs::read_dir(&next).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path);
            } else if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                files.insert(path, format!("-> {}", target.display()));
            } else {
                files.insert(path.clone(), common::sha256_hex(&path));
            }
        }
    }
    files
}

fn has_checkpoint(run: &Path) -> bool {
    std::fs::read_dir(run.join("checkpoints")).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit())
        })
    })
}

/// Walks `n` over `1..=points` for both faults on two threads, calling
/// `one(n, fault)` for each; returns how many were walked.
fn walk(points: usize, one: impl Fn(usize, Fault) + Sync) -> usize {
    let next = AtomicUsize::new(0);
    let cases: Vec<(usize, Fault)> = (1..=points)
        .flat_map(|n| [(n, Fault::Fail), (n, Fault::Abort)])
        .collect();
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(&(n, fault)) = cases.get(i) else {
                    break;
                };
                one(n, fault);
            });
        }
    });
    cases.len()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// How a hurt command came through, counted for the summary line.
#[derive(Default)]
struct Outcomes {
    unhurt: AtomicUsize,
    /// The changes whose failure the command came through by itself.
    unhurt_at: std::sync::Mutex<Vec<String>>,
    resumed: AtomicUsize,
    started_again: AtomicUsize,
}

impl Outcomes {
    fn summary(&self) -> String {
        let mut unhurt_at = self.unhurt_at.lock().unwrap().clone();
        unhurt_at.sort();
        format!(
            "{} finished despite the fault, {} resumed, {} started again; came through: {:#?}",
            self.unhurt.load(Ordering::SeqCst),
            self.resumed.load(Ordering::SeqCst),
            self.started_again.load(Ordering::SeqCst),
            unhurt_at
        )
    }

    fn came_through(&self, context: String) {
        self.unhurt.fetch_add(1, Ordering::SeqCst);
        self.unhurt_at.lock().unwrap().push(context);
    }
}

/// A run folder hurt at one change goes on to the unhurt history: by
/// `--resume` once it holds a checkpoint, else by the same command again.
fn recover(f: &Fixture, run: &str, again: &[String], context: &str, outcomes: &Outcomes) {
    let dir = f.root.join(run);
    let (args, counter): (Vec<String>, _) = match has_checkpoint(&dir) {
        true => (
            ["--resume", &f.path(run), "--verbose", "0"]
                .map(String::from)
                .to_vec(),
            &outcomes.resumed,
        ),
        false => (again.to_vec(), &outcomes.started_again),
    };
    counter.fetch_add(1, Ordering::SeqCst);
    let out = run_plain(&f.root, &args);
    assert!(
        out.status.success(),
        "{context}: recovery failed:\n{}",
        stderr(&out)
    );
}

fn run_plain(root: &Path, args: &[String]) -> Output {
    run(root, args, 0, Fault::Fail, false)
}

fn train_args(f: &Fixture, run: &str) -> Vec<String> {
    let mut args = f.train_args(run, 2, &["--verbose", "0"]);
    args.extend(f.data_flags());
    args
}

#[test]
fn a_train_hurt_at_any_file_change_ends_as_one_never_hurt() {
    let f = fixture();
    // The data cache first, so that every run below makes the same changes.
    assert!(run_plain(&f.root, &train_args(&f, "warm")).status.success());
    let base = train_args(&f, "base");
    let points = changes(&f.root, &base);
    let expected = metrics(&f.root.join("base"));
    let expected_events = event_points(&f.root.join("base"));
    std::fs::write(f.root.join("user.txt"), "mine").unwrap();
    let before = snapshot(&f.root.join("data"));
    let outcomes = Outcomes::default();
    let walked = walk(points.len(), |n, fault| {
        let name = format!("w-{fault:?}-{n}");
        let args = train_args(&f, &name);
        let context = format!("{fault:?} at {}", points[n - 1]);
        let hurt = run(&f.root, &args, n, fault, false);
        assert!(
            !matches!(fault, Fault::Abort) || !hurt.status.success(),
            "{context}: the abort never came; the runs make other changes than the traced one"
        );
        match hurt.status.success() {
            true => outcomes.came_through(context.clone()),
            false => recover(&f, &name, &args, &context, &outcomes),
        }
        assert_eq!(metrics(&f.root.join(&name)), expected, "{context}");
        assert_eq!(
            event_points(&f.root.join(&name)),
            expected_events,
            "{context}"
        );
    });
    assert_eq!(
        snapshot(&f.root.join("data")),
        before,
        "the data folder is untouched"
    );
    assert_eq!(
        std::fs::read_to_string(f.root.join("user.txt")).unwrap(),
        "mine"
    );
    eprintln!(
        "train: {} fault points, {walked} cases walked: {}",
        points.len(),
        outcomes.summary()
    );
}

#[test]
fn a_resume_hurt_at_any_file_change_ends_as_one_never_hurt() {
    let f = fixture();
    let straight = train_args(&f, "straight");
    let out = run_plain(&f.root, &straight);
    assert!(out.status.success(), "{}", stderr(&out));
    let expected = metrics(&f.root.join("straight"));
    let expected_events = event_points(&f.root.join("straight"));
    // Stopped in the second epoch (the fixture's epoch is 10 steps).
    let mut stopped = train_args(&f, "stopped");
    stopped.extend(["--stop-after-steps", "15"].map(String::from));
    let out = run_plain(&f.root, &stopped);
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    let copy = |to: &str| {
        let status = Command::new("cp")
            .args(["-a", &f.path("stopped"), &f.path(to)])
            .status()
            .unwrap();
        assert!(status.success());
    };
    let resume = |run: &str| ["--resume", &f.path(run), "--verbose", "0"].map(String::from);
    copy("probe");
    let points = changes(&f.root, &resume("probe"));
    let outcomes = Outcomes::default();
    let walked = walk(points.len(), |n, fault| {
        let name = format!("r-{fault:?}-{n}");
        copy(&name);
        let context = format!("{fault:?} at {}", points[n - 1]);
        let hurt = run(&f.root, &resume(&name), n, fault, false);
        assert!(
            !matches!(fault, Fault::Abort) || !hurt.status.success(),
            "{context}: the abort never came; the runs make other changes than the traced one"
        );
        match hurt.status.success() {
            true => outcomes.came_through(context.clone()),
            false => recover(&f, &name, &resume(&name), &context, &outcomes),
        }
        assert_eq!(metrics(&f.root.join(&name)), expected, "{context}");
        assert_eq!(
            event_points(&f.root.join(&name)),
            expected_events,
            "{context}"
        );
    });
    eprintln!(
        "resume: {} fault points, {walked} cases walked: {}",
        points.len(),
        outcomes.summary()
    );
}

#[test]
fn a_data_command_hurt_at_any_file_change_prepares_the_same_arrays() {
    let f = fixture();
    let data_args = |dir: &str| -> Vec<String> {
        let mut args = vec!["data".to_owned(), "-q".to_owned()];
        args.extend(
            [
                "--data-url",
                f.archive.to_str().unwrap(),
                "--data-dir",
                &f.path(dir),
            ]
            .map(String::from),
        );
        args
    };
    let points = changes(&f.root, &data_args("base"));
    let expected = String::from_utf8(run_plain(&f.root, &data_args("base")).stdout).unwrap();
    let archive = common::sha256_hex(&f.archive);
    let walked = walk(points.len(), |n, fault| {
        let dir = format!("d-{fault:?}-{n}");
        let context = format!("{fault:?} at {}", points[n - 1]);
        let hurt = run(&f.root, &data_args(&dir), n, fault, false);
        assert!(
            !matches!(fault, Fault::Abort) || !hurt.status.success(),
            "{context}: the abort never came"
        );
        let out = run_plain(&f.root, &data_args(&dir));
        assert!(out.status.success(), "{context}: {}", stderr(&out));
        let report = String::from_utf8(out.stdout).unwrap();
        let shapes = |r: &str| -> Vec<String> {
            let arrays = |l: &&str| l.starts_with("x_") || l.starts_with("y_");
            r.lines().filter(arrays).map(String::from).collect()
        };
        assert_eq!(shapes(&report), shapes(&expected), "{context}");
    });
    assert_eq!(
        common::sha256_hex(&f.archive),
        archive,
        "the archive is untouched"
    );
    eprintln!("data: {} fault points, {walked} cases walked", points.len());
}

/// The model file and tokenizer.json in `dir`, as bytes (empty if missing).
fn export_pair(dir: &Path) -> (Vec<u8>, Vec<u8>) {
    let read = |name: &str| std::fs::read(dir.join(name)).unwrap_or_default();
    (read("model.onnx"), read("tokenizer.json"))
}

#[test]
fn an_export_hurt_at_any_file_change_leaves_the_old_files_or_the_new_ones() {
    let f = fixture();
    for (run, words) in [("a", "200"), ("b", "150")] {
        let mut args = train_args(&f, run);
        args.extend(["--max-features".into(), words.into()]);
        assert!(run_plain(&f.root, &args).status.success());
    }
    let export = |run: &str, out: &Path| -> Vec<String> {
        let model = out.join("model.onnx");
        [
            &f.path(run),
            "--format",
            "onnx",
            "-o",
            model.to_str().unwrap(),
            "--force",
        ]
        .iter()
        .fold(vec!["export".to_owned()], |mut args, a| {
            args.push(a.to_string());
            args
        })
    };
    // The old pair (run a's) and the new one (run b's), exported unhurt.
    let (old_dir, new_dir) = (f.root.join("old"), f.root.join("new"));
    for (dir, run) in [(&old_dir, "a"), (&new_dir, "b")] {
        std::fs::create_dir(dir).unwrap();
        assert!(run_plain(&f.root, &export(run, dir)).status.success());
    }
    let (old, new) = (export_pair(&old_dir), export_pair(&new_dir));
    let run_b = snapshot(&f.root.join("b"));
    let points = changes(&f.root, &export("b", &new_dir)).len();
    let walked = walk(points, |n, fault| {
        let dir = f.root.join(format!("out-{n}-{fault:?}"));
        std::fs::create_dir(&dir).unwrap();
        for name in ["model.onnx", "tokenizer.json"] {
            std::fs::copy(old_dir.join(name), dir.join(name)).unwrap();
        }
        let hurt = run(&f.root, &export("b", &dir), n, fault, false);
        let now = export_pair(&dir);
        // The tokenizer is renamed first: a fault between the two renames
        // leaves the new tokenizer beside the old model, whose metadata
        // names the old tokenizer's sha256.
        let torn = (old.0.clone(), new.1.clone());
        assert!(
            now == old || now == new || now == torn,
            "change {n} ({fault:?}) left another pair: {}",
            stderr(&hurt)
        );
        assert!(run_plain(&f.root, &export("b", &dir)).status.success());
        assert!(
            export_pair(&dir) == new,
            "change {n} ({fault:?}): no recovery"
        );
    });
    assert!(walked >= 8, "only {walked} cases");
    assert_eq!(
        snapshot(&f.root.join("b")),
        run_b,
        "an export wrote into its run"
    );
}
