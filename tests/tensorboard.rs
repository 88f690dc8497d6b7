//! TensorBoard event files in every run folder, read back by a reader
//! written from the format's specification (`common::tfevents`): every
//! value of `history.csv` and `steps.csv` is there, bit for bit as f32,
//! once, at its step; the settings are the hparams plugin's session; a
//! resumed run has the points of one never stopped; `--no-tensorboard`
//! writes none.
mod common;

use std::path::Path;

use common::runs::fixture;
use common::tfevents::{
    bits, event_files, expected_scalars, session_start, split_learning_rate, Setting,
};

/// The fixture's epoch: 160 reviews at batch 16.
const STEPS_PER_EPOCH: i64 = 10;

/// The run's points, checked against its CSVs bit for bit, and its
/// learning rate (the fixture trains at 0.01 throughout).
fn check_points(run: &Path, epochs: i64) {
    let (points, rate) = split_learning_rate(run);
    assert_eq!(
        bits(&points),
        bits(&expected_scalars(run)),
        "{}",
        run.display()
    );
    let rates: Vec<(i64, f32)> = (0..epochs).map(|e| (e, 0.01f32)).collect();
    assert_eq!(rate, rates);
    let tags: Vec<(&str, &str)> = points
        .keys()
        .map(|(f, t)| (f.as_str(), t.as_str()))
        .collect();
    assert_eq!(
        tags,
        [
            ("train", "batch_accuracy"),
            ("train", "batch_loss"),
            ("train", "epoch_accuracy"),
            ("train", "epoch_loss"),
            ("validation", "epoch_accuracy"),
            ("validation", "epoch_loss"),
        ]
    );
    let last = &points[&("train".to_owned(), "batch_loss".to_owned())];
    assert_eq!(
        last.last().unwrap().0,
        epochs * STEPS_PER_EPOCH,
        "global steps"
    );
}

#[test]
fn every_history_and_step_value_is_in_the_event_files_bit_for_bit() {
    let f = fixture();
    f.train("run", 2, &[]);
    let run = f.root.join("run");
    check_points(&run, 2);
    // One file per epoch in each folder, named in epoch order.
    for folder in ["train", "validation"] {
        let files = event_files(&run.join("logs").join(folder));
        let names: Vec<String> = files
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(names[0].ends_with(".gru-imdb.00000") && names[1].ends_with(".gru-imdb.00001"));
    }
}

#[test]
fn the_settings_of_config_json_are_the_runs_hparams_with_their_types() {
    let f = fixture();
    f.train("run", 1, &[]);
    let run = f.root.join("run");
    let (settings, start) = session_start(&run);
    assert!(start > 1.6e9, "a start time in seconds: {start}");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    let mut leaves = Vec::new();
    flatten(&config, "", &mut leaves);
    assert_eq!(settings.len(), leaves.len());
    for (key, value) in leaves {
        let expected = match value {
            serde_json::Value::Number(n) => Setting::Number(n.as_f64().unwrap()),
            serde_json::Value::Bool(b) => Setting::Bool(b),
            serde_json::Value::String(s) => Setting::Text(s),
            other => Setting::Text(other.to_string()),
        };
        assert_eq!(settings.get(&key), Some(&expected), "{key}");
    }
    assert_eq!(settings["train.adam.learning_rate"], Setting::Number(0.01));
    assert_eq!(settings["model.units"], Setting::Number(8.0));
    assert_eq!(settings["train.callbacks.save_best"], Setting::Bool(false));
    assert_eq!(
        settings["train.callbacks.monitor"],
        Setting::Text("val_loss".into())
    );
}

/// `{"a": {"b": 1}}` -> `("a.b", 1)`, written here apart from the program's.
fn flatten(value: &serde_json::Value, prefix: &str, out: &mut Vec<(String, serde_json::Value)>) {
    match value {
        serde_json::Value::Object(fields) => {
            for (key, inner) in fields {
                let path = match prefix {
                    "" => key.clone(),
                    _ => format!("{prefix}.{key}"),
                };
                flatten(inner, &path, out);
            }
        }
        leaf => out.push((prefix.to_owned(), leaf.clone())),
    }
}

#[test]
fn event_files_a_kill_left_unwritten_are_written_on_resume_and_none_twice() {
    let f = fixture();
    f.train("whole", 3, &[]);
    f.train("cut", 2, &[]);
    let run = f.root.join("cut");
    // As a kill after the second checkpoint, before its event files: the
    // second epoch's are missing, a temporary is left.
    for folder in ["train", "validation"] {
        let dir = run.join("logs").join(folder);
        let last = event_files(&dir).pop().unwrap();
        std::fs::remove_file(last).unwrap();
    }
    std::fs::write(
        run.join("logs/train/events-being-written.tmp99999"),
        b"half",
    )
    .unwrap();
    let first = std::fs::read(&event_files(&run.join("logs/train"))[0]).unwrap();
    let (code, _, stderr) = f.run(&["train", "--resume", &f.path("cut"), "--epochs", "3"]);
    assert_eq!(code, Some(0), "{stderr}");
    check_points(&run, 3);
    let (cut, whole) = (
        split_learning_rate(&run).0,
        split_learning_rate(&f.root.join("whole")).0,
    );
    assert_eq!(bits(&cut), bits(&whole));
    assert!(!run
        .join("logs/train/events-being-written.tmp99999")
        .exists());
    // The first epoch's file was not written again.
    assert_eq!(
        std::fs::read(&event_files(&run.join("logs/train"))[0]).unwrap(),
        first
    );
}

#[test]
fn no_tensorboard_writes_no_logs_and_a_resume_may_turn_them_on() {
    let f = fixture();
    f.train("quiet", 1, &["--no-tensorboard"]);
    let run = f.root.join("quiet");
    assert!(run.join("history.csv").exists());
    assert!(!run.join("logs").exists());
    let resume = |epochs: &str, extra: &[&str]| {
        let mut args = vec![
            "train",
            "--resume",
            run.to_str().unwrap(),
            "--epochs",
            epochs,
        ];
        args.extend(extra);
        let (code, _, stderr) = f.run(&args);
        assert_eq!(code, Some(0), "{stderr}");
    };
    resume("2", &["--no-tensorboard"]);
    assert!(!run.join("logs").exists());
    // Turned on, the run writes every epoch its history has.
    resume("3", &[]);
    check_points(&run, 3);
}

#[test]
fn the_learning_rate_is_the_one_each_epoch_trained_with() {
    let f = fixture();
    // Patience 1 and an improvement no epoch makes: cuts from the second
    // epoch's end on.
    let plateau = [
        "--reduce-lr-on-plateau",
        "--reduce-lr-patience",
        "1",
        "--reduce-lr-min-delta",
        "100",
        "--reduce-lr-factor",
        "0.5",
    ];
    let stdout = f.train("plateau", 4, &plateau);
    // "Epoch N: ReduceLROnPlateau reducing learning rate to R." sets the
    // rate of epoch N (from 0) on.
    let mut rates = [0.01f64; 4];
    for line in stdout.lines() {
        let Some((epoch, rate)) = line
            .strip_prefix("Epoch ")
            .and_then(|l| l.split_once(": ReduceLROnPlateau reducing learning rate to "))
        else {
            continue;
        };
        let (epoch, rate): (usize, f64) = (
            epoch.parse().unwrap(),
            rate.trim_end_matches('.').parse().unwrap(),
        );
        for later in rates.iter_mut().skip(epoch) {
            *later = rate;
        }
    }
    assert!(rates[3] < rates[0], "the rate was cut: {stdout}");
    let expected: Vec<(i64, f32)> = rates
        .iter()
        .enumerate()
        .map(|(e, r)| (e as i64, *r as f32))
        .collect();
    assert_eq!(split_learning_rate(&f.root.join("plateau")).1, expected);
}
