//! Training on a user's texts: more than two classes get a softmax head of
//! one unit per class whose CPU-kernel gradients are the reference's, a
//! generated three-class set trains well above chance, evaluate reads the
//! run's test file, and predict prints the class names;
//! `--validation-split` holds out the last rows; a run stopped anywhere and
//! resumed ends as one never stopped, and a changed file is refused on
//! resuming.
mod common;

use std::path::{Path, PathBuf};

use common::runs::read_history;
use common::{run_cli, Lcg};
use gru_imdb::device::{DeviceAndThreads, GruImpl, GruPlan};
use gru_imdb::model::ModelConfig;
use gru_imdb::model::SentimentModel;
use gru_imdb::run_dir::{RunDir, WeightsChoice};
use gru_imdb::trained::TrainedModel;
use tch::{nn, Device, Kind, Tensor};

/// Three topics, each with its own words, in texts padded with shared
/// filler words; a fixed LCG makes it the same set every time.
fn three_topic_csv(path: &Path, rows: usize, seed: u64) {
    const TOPICS: [(&str, [&str; 5]); 3] = [
        ("sports", ["goal", "match", "team", "coach", "score"]),
        ("tech", ["code", "chip", "cloud", "server", "app"]),
        ("food", ["pizza", "bread", "soup", "spice", "cake"]),
    ];
    const FILLER: [&str; 8] = ["the", "a", "today", "really", "new", "big", "again", "with"];
    let mut rng = Lcg::seeded(seed);
    let mut next = |n: usize| rng.below(n);
    let mut csv = String::from("label,text\n");
    for _ in 0..rows {
        let (topic, words) = TOPICS[next(3)];
        let mut text: Vec<&str> = (0..4).map(|_| FILLER[next(FILLER.len())]).collect();
        for _ in 0..2 {
            text.insert(next(text.len() + 1), words[next(words.len())]);
        }
        csv.push_str(&format!("{topic},{}\n", text.join(" ")));
    }
    std::fs::write(path, csv).unwrap();
}

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_owned()
}

/// Trains on the CPU from `source` with `shape` flags, into `dir/run`
/// unless they name a --run-dir, caching in `dir/data`; returns (exit
/// code, stdout, stderr).
fn train_cli(dir: &Path, source: &[&str], shape: &[&str]) -> (Option<i32>, String, String) {
    let (data, run) = (s(&dir.join("data")), s(&dir.join("run")));
    let fixed = ["--data-dir", &data, "--device", "cpu", "--verbose", "2"];
    let mut args: Vec<&str> = fixed.into_iter().chain(source.iter().copied()).collect();
    args.extend(shape);
    if !shape.contains(&"--run-dir") {
        args.extend(["--run-dir", &run]);
    }
    run_cli(&args)
}

/// `evaluate` of the run in `run`, one pass at batch 32, caching in
/// `dir/data`.
fn evaluate(run: &Path, dir: &Path) -> (Option<i32>, String, String) {
    let (run, data) = (s(run), s(&dir.join("data")));
    run_cli(&[
        "evaluate",
        "--run-dir",
        &run,
        "--data-dir",
        &data,
        "--repeats",
        "1",
        "--batch-size",
        "32",
        "--device",
        "cpu",
    ])
}

/// libtorch's generator is global to the process and tests run in
/// parallel threads: building a model draws from it (its initial weights),
/// so a test that seeds it holds this lock, and so does every load.
static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn lock_rng() -> std::sync::MutexGuard<'static, ()> {
    RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The last weights of the run in `run`, on the CPU.
fn trained(run: &Path) -> TrainedModel {
    let _rng = lock_rng();
    TrainedModel::load(
        &RunDir::open(run),
        WeightsChoice::Last,
        &DeviceAndThreads::cpu(1),
    )
    .unwrap()
}

#[test]
fn a_generated_three_class_set_trains_above_chance_and_predict_names_the_classes() {
    let tmp = tempfile::tempdir().unwrap();
    let (train, test) = (tmp.path().join("train.csv"), tmp.path().join("test.csv"));
    three_topic_csv(&train, 900, 1);
    three_topic_csv(&test, 300, 2);
    let run = tmp.path().join("run");
    let (code, stdout, stderr) = train_cli(
        tmp.path(),
        &["--train-file", &s(&train), "--test-file", &s(&test)],
        &[
            "--maxlen",
            "12",
            "--embedding-dim",
            "16",
            "--units",
            "16",
            "--epochs",
            "4",
            "--seed",
            "1",
            "--threads",
            "2",
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("Classes (train): food "), "{stderr}");
    let accuracy: f64 = test_accuracy(&stdout).parse().unwrap();
    assert!(accuracy > 0.8, "chance is 1/3, got {accuracy}");
    let evaluated = evaluate(&run, tmp.path());
    assert_eq!(evaluated.0, Some(0), "{}", evaluated.2);
    assert!(
        evaluated
            .1
            .contains(&format!("accuracy {}", test_accuracy(&stdout))),
        "evaluate reads the run's test file: {}",
        evaluated.1
    );

    let trained = trained(&run);
    assert_eq!(trained.class_names, ["food", "sports", "tech"]);
    assert_eq!(trained.model.dense_kernel.size(), [16, 3]);
    let (code, stdout, stderr) = run_cli(&[
        "predict",
        "--run-dir",
        &s(&run),
        "pizza soup and cake",
        "the team scored a goal",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let labels: Vec<&str> = stdout
        .lines()
        .map(|l| l.split('\t').nth(1).unwrap())
        .collect();
    assert_eq!(labels, ["food", "sports"], "{stdout}");
    report_has_every_class(&run, accuracy);
}

/// The value of each `data-metric="{prefix}..."` cell of `html`, in order.
fn metric_values(html: &str, prefix: &str) -> Vec<f64> {
    let marker = format!("data-metric=\"{prefix}");
    html.split(&marker)
        .skip(1)
        .map(|rest| {
            let value = rest.split("data-value=\"").nth(1).unwrap();
            value[..value.find('"').unwrap()].parse().unwrap()
        })
        .collect()
}

/// `report` of a three-class run: a 3 x 3 confusion matrix over the 300
/// test texts whose diagonal is the test accuracy, per-class figures and
/// averages, the headline first.
fn report_has_every_class(run: &Path, accuracy: f64) {
    let out = run.with_file_name("report.html");
    let (code, _, stderr) = run_cli(&["report", &s(run), "-o", &s(&out)]);
    assert_eq!(code, Some(0), "{stderr}");
    let html = std::fs::read_to_string(&out).unwrap();
    let cells = metric_values(&html, "confusion_");
    assert_eq!(cells.len(), 9);
    assert_eq!(cells.iter().sum::<f64>(), 300.0);
    let diagonal = cells[0] + cells[4] + cells[8];
    assert!(
        (diagonal / 300.0 - accuracy).abs() < 5e-5,
        "{diagonal} vs {accuracy}"
    );
    assert_eq!(
        metric_values(&html, "headline_accuracy"),
        [diagonal / 300.0]
    );
    assert_eq!(
        metric_values(&html, "support_").len(),
        5,
        "3 classes, 2 averages"
    );
    for needle in [
        "Headline",
        "top-2 accuracy",
        "macro average",
        "Most confused pairs",
        "food",
    ] {
        assert!(html.contains(needle), "no {needle} in the report");
    }
    assert!(html.find("Headline").unwrap() < html.find("Settings").unwrap());
}

#[test]
fn two_string_classes_keep_one_sigmoid_unit_and_validation_split_needs_no_test_file() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("reviews.jsonl");
    let rows: String = (0..40)
        .map(|i| {
            let (text, label) = if i % 2 == 0 {
                ("good fine", "yes")
            } else {
                ("bad awful", "no")
            };
            format!("{{\"text\":\"{text} {i}\",\"label\":\"{label}\"}}\n")
        })
        .collect();
    std::fs::write(&file, rows).unwrap();
    let run = tmp.path().join("run");
    let (code, stdout, stderr) = train_cli(
        tmp.path(),
        &["--train-file", &s(&file), "--validation-split", "0.25"],
        &[
            "--maxlen",
            "4",
            "--embedding-dim",
            "4",
            "--units",
            "4",
            "--epochs",
            "1",
            "--seed",
            "1",
            "--threads",
            "1",
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stdout.contains("Test accuracy"), "{stdout}");
    assert!(
        stderr.contains("Classes (validation): no 5 (50.0%), yes 5 (50.0%)"),
        "{stderr}"
    );
    // 30 of 40 rows train: one step of 32.
    assert!(stdout.contains("1/1 - "), "{stdout}");
    let trained = trained(&run);
    assert_eq!(trained.model.dense_kernel.size(), [4, 1]);
    assert_eq!(trained.class_names, ["no", "yes"]);
    let (code, _, stderr) = evaluate(&run, tmp.path());
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("no test set to evaluate on"), "{stderr}");
    let (code, stdout, _) = run_cli(&["predict", "--run-dir", &s(&run), "good"]);
    assert_eq!(code, Some(0));
    let label = stdout.split('\t').nth(1).unwrap();
    assert!(["no", "yes"].contains(&label), "{stdout}");
}

#[test]
fn a_softmax_head_has_the_same_gradients_through_the_cpu_kernel_as_op_by_op() {
    let config = ModelConfig {
        max_features: 30,
        embedding_dim: 6,
        units: 5,
        dropout: 0.0,
        recurrent_dropout: 0.0,
        classes: 4,
    };
    let _rng = lock_rng();
    let gradients = |gru_impl| {
        tch::manual_seed(7);
        let vs = nn::VarStore::new(Device::Cpu);
        let model = SentimentModel::new(&vs.root(), config, GruPlan::only(gru_impl), 2).unwrap();
        let ids = Tensor::randint(30, [3, 8], (Kind::Int64, Device::Cpu));
        let labels = Tensor::from_slice(&[0i64, 3, 2]);
        let forward = model.forward_train(&ids, &model.draw_masks(3));
        assert_eq!(forward.logits.size(), [3, 4]);
        let loss = forward.logits.cross_entropy_for_logits(&labels);
        forward
            .backward(&model, &loss)
            .to_dense(&model.parameters())
    };
    let kernel = gradients(GruImpl::CpuKernel);
    let reference = gradients(GruImpl::OpByOp);
    for (i, (a, b)) in kernel.iter().zip(reference.iter()).enumerate() {
        assert_eq!(a.size(), b.size(), "gradient {i}");
        let diff = (a - b).abs().max().double_value(&[]);
        let scale = b.abs().max().double_value(&[]).max(1e-3);
        assert!(diff <= 1e-4 * scale, "gradient {i}: {diff} of {scale}");
    }
}

/// A small three-topic training and test file in `dir`.
struct TopicFiles {
    dir: PathBuf,
    train: PathBuf,
    test: PathBuf,
}

fn topic_files(dir: &Path) -> TopicFiles {
    let (train, test) = (dir.join("train.csv"), dir.join("test.csv"));
    three_topic_csv(&train, 200, 3);
    three_topic_csv(&test, 60, 4);
    TopicFiles {
        dir: dir.to_path_buf(),
        train,
        test,
    }
}

impl TopicFiles {
    /// Trains 3 epochs into `run` with `extra` flags.
    fn train(&self, run: &str, extra: &[&str]) -> (Option<i32>, String, String) {
        let (train, test, run) = (s(&self.train), s(&self.test), s(&self.dir.join(run)));
        let mut shape = vec![
            "--maxlen",
            "12",
            "--embedding-dim",
            "8",
            "--units",
            "8",
            "--batch-size",
            "16",
            "--epochs",
            "3",
            "--seed",
            "5",
            "--threads",
            "1",
            "--run-dir",
            &run,
        ];
        shape.extend(extra);
        let source = ["--train-file", &train, "--test-file", &test];
        train_cli(&self.dir, &source, &shape)
    }

    fn resume(&self, run: &str, extra: &[&str]) -> (Option<i32>, String, String) {
        let run = s(&self.dir.join(run));
        let mut args = vec!["train", "--resume", &run, "--verbose", "2"];
        args.extend(extra);
        run_cli(&args)
    }

    /// The history's metrics (no timings).
    fn history(&self, run: &str) -> Vec<Vec<String>> {
        let (_, rows) = read_history(&self.dir.join(run).join("history.csv"));
        rows.iter().map(|r| r.fields[..5].to_vec()).collect()
    }
}

fn test_accuracy(stdout: &str) -> &str {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("Test accuracy: "))
        .unwrap_or_else(|| panic!("no test accuracy in {stdout}"))
}

#[test]
fn a_run_on_own_texts_stopped_anywhere_and_resumed_ends_as_one_never_stopped() {
    let tmp = tempfile::tempdir().unwrap();
    let files = topic_files(tmp.path());
    let (code, whole, stderr) = files.train("whole", &[]);
    assert_eq!(code, Some(0), "{stderr}");
    // 200 rows at batch 16: 13 steps an epoch.
    for stop in ["4", "13", "20"] {
        let run = format!("stopped-at-{stop}");
        let (code, _, stderr) = files.train(&run, &["--stop-after-steps", stop]);
        assert_eq!(code, Some(130), "{stderr}");
        let (code, stdout, stderr) = files.resume(&run, &[]);
        assert_eq!(code, Some(0), "{stderr}");
        assert_eq!(
            files.history(&run),
            files.history("whole"),
            "stopped at {stop}"
        );
        assert_eq!(test_accuracy(&stdout), test_accuracy(&whole));
        assert_eq!(
            trained(&tmp.path().join(&run)).class_names,
            ["food", "sports", "tech"]
        );
    }
}

#[test]
fn resuming_on_a_changed_or_other_training_file_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let files = topic_files(tmp.path());
    let (code, _, stderr) = files.train("run", &["--stop-after-steps", "4"]);
    assert_eq!(code, Some(130), "{stderr}");
    let other = tmp.path().join("other.csv");
    three_topic_csv(&other, 200, 9);
    let (code, _, stderr) = files.resume("run", &["--train-file", &s(&other)]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("--train-file would change"), "{stderr}");

    three_topic_csv(&files.train, 200, 9);
    let (code, _, stderr) = files.resume("run", &[]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("train.csv") && stderr.contains("changed since this run started"),
        "{stderr}"
    );
}

#[test]
fn a_maxlen_too_long_for_memory_is_refused_before_the_texts_are_padded() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("small.csv");
    three_topic_csv(&file, 4, 1);
    // 10^13 ids a text: one padded text alone is more memory than any
    // machine has, so padding before the check aborts or is killed.
    let (code, _, stderr) = train_cli(
        tmp.path(),
        &["--train-file", &s(&file), "--validation-split", "0.5"],
        &["--maxlen", "10000000000000"],
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("most of it for --maxlen (") && stderr.contains("lower --maxlen"),
        "{stderr}"
    );
    assert!(!tmp.path().join("run").exists(), "no run folder");
}
