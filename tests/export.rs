//! `gru-imdb export`: the files it writes give `predict`'s answers in the
//! libraries people load them with (onnx's checker, onnxruntime, tract,
//! Keras 3), `examples/tokenizer.py` gives our ids, and the command never
//! harms a file or exports a run it should not.
//!
//! The Python side is `tests/export_check.py`, run with the project's
//! `.venv` (`scripts/setup-export-checks` installs its pinned packages;
//! `make test` runs it). The real-review tests skip with a note when the
//! shared archive is absent, as the other real-data tests do.
mod common;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use common::runs::fixture;
use common::{real_archive, run_cli};
use gru_imdb::device::DeviceAndThreads;
use gru_imdb::run_dir::{RunDir, WeightsChoice};
use gru_imdb::trained::TrainedModel;

const REVIEWS_TO_PREDICT: usize = 2_000;
const REVIEWS_TO_TOKENIZE: usize = 1_000;

/// Texts that test the tokenizer's corners.
const AWKWARD: [&str; 12] = [
    "",
    "   ",
    "A great film<br />Loved it<BR>and<br/>more<Br />end<br >x<br",
    "Don't, 'quoted', ''twice'', rock'n'roll, it's the 90's'",
    "'''",
    "Ünïcödé façade naïve café ÀÉÎÕÜ straße ΣΊΣΥΦΟΣ",
    "中文评论：这部电影很好看！日本語のレビュー",
    "emoji 😀👍🏽 and ① ½ ² Ⅻ numbers 3.5 42",
    "हिन्दी समीक्षा बहुत अच्छी फ़िल्म",
    "tabs\tand\r\nnew\nlines",
    "İstanbul ǅ ﬁ ß",
    "the the the the the the the the the the the the the the the the the the the the the \
     the the the the the the the the the the the the the the the the the the the the the \
     the the the the the the the the the the the the the the the the the the the the the \
     the the the the the the the the the the the the the the the the the the the the the \
     the the the the the the the the the the the the the the the the the the the the the end",
];

/// The project's Python, with the packages of `scripts/setup-export-checks`.
fn python() -> PathBuf {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let probe = Command::new(&python)
        .args([
            "-c",
            "import onnx, onnxruntime, tract, keras, h5py, regex, jieba",
        ])
        .env("KERAS_BACKEND", "torch")
        .output();
    match probe {
        Ok(out) if out.status.success() => python,
        _ => panic!(
            "{} lacks onnx, onnxruntime, tract, keras, regex or jieba: run \
             scripts/setup-export-checks (make test does)",
            python.display()
        ),
    }
}

/// A test review of the archive: its text, its rating, its label folder.
struct Review {
    text: String,
    rating: u32,
    split: String,
}

/// Every review of the archive, in its order.
fn reviews(archive: &Path) -> Vec<Review> {
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(File::open(archive).unwrap()));
    let mut reviews = Vec::new();
    for entry in tar.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let parts: Vec<&str> = path.trim_start_matches("./").split('/').collect();
        let ["aclImdb", split, "neg" | "pos", name] = parts[..] else {
            continue;
        };
        let Some(rating) = name
            .strip_suffix(".txt")
            .and_then(|n| n.split('_').nth(1))
            .and_then(|r| r.parse().ok())
        else {
            continue;
        };
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        reviews.push(Review {
            // predict reads one review per line.
            text: String::from_utf8_lossy(&bytes).replace(['\n', '\r'], " "),
            rating,
            split: split.to_owned(),
        });
    }
    reviews
}

/// `REVIEWS_TO_PREDICT` test reviews, half of each label, and the awkward ones.
fn texts_to_check(reviews: &[Review]) -> Vec<String> {
    let half = REVIEWS_TO_PREDICT / 2;
    let test = reviews.iter().filter(|r| r.split == "test");
    let negative = test.clone().filter(|r| r.rating <= 4).take(half);
    let positive = test.filter(|r| r.rating >= 7).take(half);
    let mut texts: Vec<String> = negative.chain(positive).map(|r| r.text.clone()).collect();
    texts.extend(AWKWARD.iter().map(|t| t.to_string()));
    texts
}

/// `predict --json` of `texts`, one object per text.
fn predict(run: &Path, texts: &[String], dir: &Path) -> Vec<Value> {
    let file = dir.join("texts.txt");
    std::fs::write(&file, texts.join("\n") + "\n").unwrap();
    let (code, stdout, stderr) = run_cli(&[
        "predict",
        "--run-dir",
        run.to_str().unwrap(),
        "--json",
        "--file",
        file.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Our ids of `texts`, as `predict` makes them.
fn our_ids(run: &Path, texts: &[String]) -> Vec<Vec<i64>> {
    let trained = TrainedModel::load(
        &RunDir::open(run),
        WeightsChoice::Last,
        &DeviceAndThreads::cpu(1),
    )
    .unwrap();
    let maxlen = trained.config.maxlen;
    let flat = Vec::<i64>::try_from(trained.encode(texts).flatten(0, -1)).unwrap();
    flat.chunks(maxlen).map(<[i64]>::to_vec).collect()
}

fn export(run: &Path, format: &str, output: &Path) {
    let (code, stdout, stderr) = run_cli(&[
        "export",
        run.to_str().unwrap(),
        "--format",
        format,
        "-o",
        output.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("Wrote"), "{stdout}");
}

/// Has tests/export_check.py compare examples/tokenizer.py's ids of
/// `texts` with ours, by `tokenizer` (exported from `run`), and, when
/// `cases` names model files, their predictions with predict's.
fn run_export_check(run: &Path, tokenizer: &Path, texts: &[String], cases: Value) -> Value {
    let mut cases = cases;
    cases["tokenizer"] = json!(tokenizer);
    cases["tokenize"] = json!(texts);
    cases["ids"] = json!(our_ids(run, texts));
    let cases_file = tokenizer.with_file_name("cases.json");
    std::fs::write(&cases_file, cases.to_string()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/export_check.py");
    let checked = Command::new(python())
        .arg(script)
        .arg(&cases_file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&checked.stderr);
    assert!(
        checked.status.success(),
        "export_check.py failed:\n{stderr}"
    );
    let report: Value = serde_json::from_slice(&checked.stdout).unwrap();
    eprintln!("{report}");
    report
}

/// Exports `run` both ways into `out`, and has tests/export_check.py
/// compare the libraries' predictions on the real reviews with predict's.
fn check_exports_of(run: &Path, texts: &[String], out: &Path) -> Value {
    std::fs::create_dir_all(out).unwrap();
    let (onnx, keras) = (out.join("model.onnx"), out.join("model.keras"));
    export(run, "onnx", &onnx);
    // The second export keeps the first's tokenizer.json: the same bytes.
    export(run, "keras", &keras);
    let predicted = predict(run, &texts[..REVIEWS_TO_PREDICT], out);
    let tokenized: Vec<String> = texts[..REVIEWS_TO_TOKENIZE]
        .iter()
        .chain(&texts[REVIEWS_TO_PREDICT..])
        .cloned()
        .collect();
    let cases = json!({
        "onnx": onnx, "keras": keras,
        "texts": texts[..REVIEWS_TO_PREDICT], "predict": predicted,
    });
    run_export_check(run, &out.join("tokenizer.json"), &tokenized, cases)
}

/// 3 classes of the real reviews by rating: 1-2, 3-4 and 7-8, 9-10.
fn three_class_jsonl(reviews: &[Review], path: &Path) {
    let mut file = std::io::BufWriter::new(File::create(path).unwrap());
    for review in reviews.iter().filter(|r| r.split == "train") {
        let label = match review.rating {
            1 | 2 => "bad",
            9 | 10 => "good",
            _ => "mixed",
        };
        writeln!(file, "{}", json!({"text": review.text, "label": label})).unwrap();
    }
}

#[test]
fn onnx_keras_and_the_python_tokenizer_give_predicts_answers_on_real_reviews() {
    let Some((archive, sha)) = real_archive() else {
        return;
    };
    let python_ready = python();
    assert!(python_ready.exists());
    let tmp = tempfile::tempdir().unwrap();
    let reviews = reviews(&archive);
    let texts = texts_to_check(&reviews);
    let data_dir = tmp.path().join("data");
    let data = [
        "--data-url",
        archive.to_str().unwrap(),
        "--data-sha256",
        &sha,
        "--data-dir",
        data_dir.to_str().unwrap(),
    ];
    let train = |run: &str, extra: &[&str]| {
        let run_dir = tmp.path().join(run);
        let mut args = vec!["--epochs", "1", "--seed", "1", "--verbose", "0"];
        args.extend(["--run-dir", run_dir.to_str().unwrap()]);
        args.extend(extra);
        let (code, stdout, stderr) = run_cli(&args);
        assert_eq!(code, Some(0), "{stdout}\n{stderr}");
        run_dir
    };
    let imdb = train("imdb", &data);
    let report = check_exports_of(&imdb, &texts, &tmp.path().join("imdb-export"));
    assert_eq!(report["onnxruntime"]["rows"], REVIEWS_TO_PREDICT);
    assert_eq!(report["keras"]["rows"], REVIEWS_TO_PREDICT);
    assert_eq!(report["ids_checked"], REVIEWS_TO_TOKENIZE + AWKWARD.len());

    let jsonl = tmp.path().join("three.jsonl");
    three_class_jsonl(&reviews, &jsonl);
    let three = train(
        "three",
        &[
            "--train-file",
            jsonl.to_str().unwrap(),
            "--validation-split",
            "0.2",
        ],
    );
    let report = check_exports_of(&three, &texts, &tmp.path().join("three-export"));
    assert_eq!(report["onnxruntime"]["rows"], REVIEWS_TO_PREDICT);
    let labels: BTreeMap<String, usize> = predict(&three, &texts[..50], tmp.path()).iter().fold(
        BTreeMap::new(),
        |mut counts, line| {
            *counts
                .entry(line["label"].as_str().unwrap().to_owned())
                .or_default() += 1;
            counts
        },
    );
    assert!(
        labels.len() > 1,
        "a 3-class model that says one class: {labels:?}"
    );
}

/// Chinese (and mixed) reviews, some as people write them online.
const CHINESE: [&str; 14] = [
    "这部电影真的太好看了，演员的表演非常出色！",
    "剧情拖沓，浪费了我两个小时。",
    "iPhone 15 的拍照效果很棒👍，续航也不错",
    "价格：￥299，性价比一般般……",
    "《流浪地球》是我今年看过最好的科幻片",
    "服务员态度很差，再也不会来了😡",
    "物流很快，包装完好，五星好评⭐⭐⭐⭐⭐",
    "这家店的拉面一般，汤头偏咸。",
    "第一次用这个牌子，感觉还不错～",
    "東京の寿司はとても美味しかった",
    "한국어 리뷰도 있습니다",
    "mixed 中英文 review with 数字 123 和 3.5 分",
    "「推荐」 給朋友們的禮物，繁體字也可以",
    "ok啦，就这样吧 hhh",
];

/// A small run on Chinese reviews cut by `rule`.
fn chinese_run(dir: &Path, rule: &str) -> PathBuf {
    let jsonl = dir.join("zh.jsonl");
    if !jsonl.exists() {
        let mut file = std::io::BufWriter::new(File::create(&jsonl).unwrap());
        for (i, text) in CHINESE.iter().cycle().take(8 * CHINESE.len()).enumerate() {
            let label = ["好评", "差评"][i % 2];
            writeln!(file, "{}", json!({"text": text, "label": label})).unwrap();
        }
    }
    let run = dir.join(rule);
    let (code, stdout, stderr) = run_cli(&[
        "--train-file",
        jsonl.to_str().unwrap(),
        "--validation-split",
        "0.25",
        "--tokenizer",
        rule,
        "--epochs",
        "1",
        "--max-features",
        "120",
        "--maxlen",
        "24",
        "--embedding-dim",
        "8",
        "--units",
        "4",
        "--seed",
        "1",
        "--verbose",
        "0",
        "--run-dir",
        run.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    run
}

#[test]
fn the_python_tokenizer_gives_our_ids_by_every_rule_on_chinese_and_awkward_texts() {
    python();
    let tmp = tempfile::tempdir().unwrap();
    let texts: Vec<String> = CHINESE
        .iter()
        .chain(&AWKWARD)
        .map(|t| t.to_string())
        .collect();
    for rule in ["imdb", "unicode", "chars", "jieba"] {
        let run = chinese_run(tmp.path(), rule);
        let out = tmp.path().join(format!("{rule}-export"));
        std::fs::create_dir(&out).unwrap();
        export(&run, "onnx", &out.join("model.onnx"));
        let tokenizer = out.join("tokenizer.json");
        let report = run_export_check(&run, &tokenizer, &texts, json!({}));
        assert_eq!(report["ids_checked"], texts.len(), "{rule}");
    }
}

/// Runs `export` with `args`; returns (exit code, stderr).
fn export_with(args: &[&str]) -> (Option<i32>, String) {
    let mut all = vec!["export"];
    all.extend(args);
    let (code, _, stderr) = run_cli(&all);
    (code, stderr)
}

#[test]
fn an_export_never_writes_over_a_file_without_force() {
    let fx = fixture();
    fx.train("run", 1, &[]);
    fx.train("other", 1, &["--max-features", "150"]);
    let (run, out) = (fx.path("run"), fx.path("out.onnx"));
    assert_eq!(
        export_with(&[&run, "--format", "onnx", "-o", &out]).0,
        Some(0)
    );
    let first = std::fs::read(&out).unwrap();

    let (code, stderr) = export_with(&[&run, "--format", "onnx", "-o", &out]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("already exists") && stderr.contains("--force"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&out).unwrap(), first);
    let (code, stderr) = export_with(&[&run, "--format", "onnx", "-o", &out, "--force"]);
    assert_eq!(code, Some(0), "{stderr}");

    // Another run's model beside this one's tokenizer.json: refused whole.
    let other_out = fx.path("other.keras");
    let (code, stderr) = export_with(&[&fx.path("other"), "--format", "keras", "-o", &other_out]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("tokenizer.json") && stderr.contains("another tokenizer"),
        "{stderr}"
    );
    assert!(!Path::new(&other_out).exists());

    // Nor into the run's own files, nor a missing folder.
    let own = format!("{run}/model.safetensors");
    let (code, stderr) = export_with(&[&run, "--format", "onnx", "-o", &own]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("one of the run folder's own files"),
        "{stderr}"
    );
    let nowhere = fx.path("missing/model.onnx");
    let (code, stderr) = export_with(&[&run, "--format", "onnx", "-o", &nowhere]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("does not exist"), "{stderr}");
}

#[test]
fn a_run_that_is_training_has_no_epoch_or_was_edited_is_refused() {
    let fx = fixture();
    fx.train("run", 1, &[]);
    let run = fx.path("run");
    let out = fx.path("out.onnx");
    let refused = |args: &[&str], expected: &str| {
        let mut all = vec![run.as_str(), "--format", "onnx", "-o", out.as_str()];
        all.extend(args);
        let (code, stderr) = export_with(&all);
        assert_eq!(code, Some(1), "{stderr}");
        assert!(
            stderr.contains(expected),
            "expected '{expected}' in: {stderr}"
        );
        assert!(!Path::new(&out).exists());
    };

    // A process training into it holds its lock.
    let lock = File::open(Path::new(&run).join(".lock")).unwrap();
    // SAFETY: flock on a file this test opened.
    assert_eq!(
        unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) },
        0
    );
    refused(&[], "is being trained");
    drop(lock);

    refused(&["--weights", "best"], "no best weights");

    let vocab = Path::new(&run).join("vocab.txt");
    let mut edited = std::fs::OpenOptions::new()
        .append(true)
        .open(&vocab)
        .unwrap();
    writeln!(edited, "an_added_word").unwrap();
    refused(&[], "vocab.txt changed after the weights were saved");

    // A run killed before its first epoch: its files, no checkpoint.
    let fresh = Path::new(&fx.root).join("fresh");
    std::fs::create_dir(&fresh).unwrap();
    for name in [".gru-imdb-run", "config.json"] {
        std::fs::copy(Path::new(&run).join(name), fresh.join(name)).unwrap();
    }
    let (code, stderr) = export_with(&[fresh.to_str().unwrap(), "--format", "keras", "-o", &out]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("no finished epoch yet"), "{stderr}");
}

#[test]
fn the_best_epochs_weights_are_exported_when_the_run_kept_them() {
    let fx = fixture();
    fx.train("run", 3, &["--save-best"]);
    let run = fx.path("run");
    let (last, best) = (fx.path("last.onnx"), fx.path("best.onnx"));
    assert_eq!(
        export_with(&[&run, "--format", "onnx", "-o", &last]).0,
        Some(0)
    );
    let (code, stderr) = export_with(&[&run, "--format", "onnx", "-o", &best, "--weights", "best"]);
    assert_eq!(code, Some(0), "{stderr}");
    // The model's metadata says which weights it holds.
    let holds = |path: &str, words: &str| {
        let bytes = std::fs::read(path).unwrap();
        bytes.windows(words.len()).any(|w| w == words.as_bytes())
    };
    assert!(holds(&best, "the best epoch's weights (epoch "));
    assert!(holds(&last, "the weights after epoch 3"));
}
