//! The results commands end to end through the binary, on runs trained on a
//! generated dataset: the step history and plot that training leaves, plot,
//! compare, summary, report and predict --json, and their refusals of bad
//! input.
mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::{run_cli, sha256_hex, synthetic_reviews, write_synthetic_imdb_archive};

const REVIEWS_PER_FOLDER: usize = 60;
const ARCHIVE_SEED: u64 = 11;
const EPOCHS: usize = 3;

/// Two runs that differ in `--units`, trained once for all the tests.
struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    archive: PathBuf,
    small: PathBuf,
    large: PathBuf,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().to_path_buf();
        let archive = root.join("aclImdb_v1.tar.gz");
        write_synthetic_imdb_archive(&archive, REVIEWS_PER_FOLDER, ARCHIVE_SEED);
        let fixture = Fixture {
            small: root.join("run-small"),
            large: root.join("run-large"),
            _dir: dir,
            root,
            archive,
        };
        fixture.train(&fixture.small, "8");
        fixture.train(&fixture.large, "16");
        fixture
    })
}

impl Fixture {
    fn data_flags(&self) -> Vec<String> {
        vec![
            "--data-url".into(),
            self.archive.display().to_string(),
            "--data-sha256".into(),
            sha256_hex(&self.archive),
            "--data-dir".into(),
            self.root.join("data").display().to_string(),
        ]
    }

    fn train(&self, run_dir: &Path, units: &str) {
        self.train_with(run_dir, units, EPOCHS, &[]);
    }

    fn train_with(&self, run_dir: &Path, units: &str, epochs: usize, extra: &[&str]) {
        let args = self.train_args(run_dir, units, epochs, extra);
        let (code, stdout, stderr) = run(&args);
        assert_eq!(code, Some(0), "training failed:\n{stdout}\n{stderr}");
    }

    fn train_args(
        &self,
        run_dir: &Path,
        units: &str,
        epochs: usize,
        extra: &[&str],
    ) -> Vec<String> {
        let epochs = epochs.to_string();
        let mut args: Vec<String> = [
            "--epochs",
            &epochs,
            "--run-dir",
            run_dir.to_str().unwrap(),
            "--max-features",
            "200",
            "--maxlen",
            "30",
            "--embedding-dim",
            "16",
            "--units",
            units,
            "--batch-size",
            "16",
            "--learning-rate",
            "0.01",
            "--seed",
            "5",
            "--verbose",
            "2",
            "--threads",
            "1",
        ]
        .map(String::from)
        .to_vec();
        args.extend(extra.iter().map(|a| a.to_string()));
        args.extend(self.data_flags());
        args
    }
}

fn run<S: AsRef<str>>(args: &[S]) -> (Option<i32>, String, String) {
    let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
    run_cli(&args)
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A copy of `run`'s files under `name`, for tests that damage them: the
/// links into the latest checkpoint become plain copies of their files,
/// and the checkpoints themselves are left out.
fn copy_run(run: &Path, name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join(name);
    std::fs::create_dir(&copy).unwrap();
    for entry in std::fs::read_dir(run).unwrap() {
        let entry = entry.unwrap();
        if entry.path().is_file() {
            std::fs::copy(entry.path(), copy.join(entry.file_name())).unwrap();
        }
    }
    (dir, copy)
}

fn csv_rows(path: &Path) -> Vec<Vec<f64>> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(|f| f.parse().unwrap()).collect())
        .collect()
}

/// The coloured polylines of an SVG (the axes are black), as point counts.
fn svg_curves(path: &Path) -> Vec<usize> {
    let text = std::fs::read_to_string(path).unwrap();
    let doc = roxmltree::Document::parse(&text).expect("the SVG is XML");
    doc.descendants()
        .filter(|n| n.has_tag_name("polyline") && n.attribute("stroke") != Some("#000000"))
        .map(|n| n.attribute("points").unwrap().split_whitespace().count())
        .collect()
}

fn svg_texts(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap();
    doc.descendants()
        .filter_map(|n| n.text())
        .collect::<Vec<_>>()
        .join("\n")
}

fn png_size(path: &Path) -> (u32, u32) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut pixels = vec![0; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut pixels).expect("the PNG decodes");
    (frame.width, frame.height)
}

#[test]
fn training_records_steps_that_end_on_each_epochs_history_row() {
    let f = fixture();
    let history = csv_rows(&f.small.join("history.csv"));
    let steps = csv_rows(&f.small.join("steps.csv"));
    assert_eq!(history.len(), EPOCHS);
    // 120 training reviews at batch 16: 8 steps an epoch, all recorded.
    assert_eq!(steps.len(), EPOCHS * 8);
    for (epoch, row) in history.iter().enumerate() {
        let last = steps
            .iter()
            .rfind(|s| s[0] == epoch as f64)
            .expect("steps of every epoch");
        assert_eq!((last[1], last[2]), (8.0, 8.0));
        assert_eq!((last[3], last[4]), (row[1], row[2]), "accuracy and loss");
    }
}

#[test]
fn the_step_interval_is_a_training_flag() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    f.train_with(&run_dir, "8", 2, &["--history-every-steps", "3"]);
    let steps: Vec<(f64, f64)> = csv_rows(&run_dir.join("steps.csv"))
        .iter()
        .map(|r| (r[0], r[1]))
        .collect();
    // Every third of 8 steps, and the last.
    let expected = [
        (0.0, 3.0),
        (0.0, 6.0),
        (0.0, 8.0),
        (1.0, 3.0),
        (1.0, 6.0),
        (1.0, 8.0),
    ];
    assert_eq!(steps, expected);
}

#[test]
fn a_run_stopped_in_its_first_epoch_keeps_its_steps_but_has_nothing_to_plot_yet() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    let args = f.train_args(&run_dir, "8", 2, &["--stop-after-steps", "3"]);
    let (code, _, stderr) = run(&args);
    assert_eq!(code, Some(130), "{stderr}");
    let steps: Vec<(f64, f64)> = csv_rows(&run_dir.join("steps.csv"))
        .iter()
        .map(|r| (r[0], r[1]))
        .collect();
    assert_eq!(steps, [(0.0, 1.0), (0.0, 2.0), (0.0, 3.0)]);
    assert!(!run_dir.join("history.svg").exists());
    let (code, _, stderr) = run(&["plot", path_str(&run_dir)]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("no finished epoch") && stderr.contains("history.csv"),
        "{stderr}"
    );

    // Resumed, it goes on from step 3 and draws its curves.
    let mut resume = vec!["train".to_owned(), "--resume".to_owned()];
    resume.push(path_str(&run_dir).to_owned());
    resume.extend(f.data_flags());
    let (code, _, stderr) = run(&resume);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(csv_rows(&run_dir.join("steps.csv")).len(), 2 * 8);
    assert_eq!(svg_curves(&run_dir.join("history.svg")).len(), 6);
}

#[test]
fn training_leaves_a_current_plot_with_a_curve_per_series() {
    let f = fixture();
    // Running, training and validation curves in both panels.
    assert_eq!(
        svg_curves(&f.small.join("history.svg")),
        [24, 3, 3, 24, 3, 3]
    );
}

#[test]
fn plot_writes_an_svg_and_a_png_of_one_run() {
    let f = fixture();
    let (_dir, copy) = copy_run(&f.small, "run");
    std::fs::remove_file(copy.join("history.svg")).unwrap();
    let (code, stdout, stderr) = run(&["plot", path_str(&copy)]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("history.png"), "{stdout}");
    assert_eq!(svg_curves(&copy.join("history.svg")).len(), 6);
    assert_eq!(png_size(&copy.join("history.png")), (1200, 500));
}

#[test]
fn several_runs_overlay_named_by_the_setting_that_differs() {
    let f = fixture();
    let out = f.root.join("both.svg");
    let (code, _, stderr) = run(&[
        "plot",
        path_str(&f.small),
        path_str(&f.large),
        "--output",
        path_str(&out),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(svg_curves(&out).len(), 12);
    let texts = svg_texts(&out);
    assert!(texts.contains("units=8: validation"), "{texts}");
    assert!(texts.contains("units=16: validation"), "{texts}");
    assert_eq!(png_size(&out.with_extension("png")), (1200, 500));
}

#[test]
fn compare_lists_what_differs_and_what_each_run_reached() {
    let f = fixture();
    let (code, stdout, stderr) =
        run(&["compare", path_str(&f.small), path_str(&f.large), "--json"]);
    assert_eq!(code, Some(0), "{stderr}");
    let rows: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    for (row, dir) in rows.as_array().unwrap().iter().zip([&f.small, &f.large]) {
        let history = csv_rows(&dir.join("history.csv"));
        let last = history.last().unwrap();
        assert_eq!(row["final_val_accuracy"].as_f64(), Some(last[3]));
        assert_eq!(row["final_val_loss"].as_f64(), Some(last[4]));
        let best = history.iter().map(|r| r[3]).fold(f64::MIN, f64::max);
        assert_eq!(row["best_val_accuracy"]["value"].as_f64(), Some(best));
        let mean_seconds = history.iter().map(|r| r[5]).sum::<f64>() / history.len() as f64;
        assert!((row["seconds_per_epoch"].as_f64().unwrap() - mean_seconds).abs() < 1e-9);
        assert_eq!(row["device"], "cpu");
    }
    assert_eq!(rows[0]["settings"]["model.units"], "8");
    assert_eq!(rows[1]["settings"]["model.units"], "16");
    assert!(rows[0]["settings"].get("maxlen").is_none(), "same in both");
    let (_, table, _) = run(&["compare", path_str(&f.small), path_str(&f.large)]);
    let header = table.lines().next().unwrap();
    assert!(
        header.starts_with("run") && header.contains("units"),
        "{table}"
    );
    assert_eq!(table.lines().count(), 3, "{table}");
}

#[test]
fn summary_of_a_run_counts_its_parameters() {
    let f = fixture();
    let (code, stdout, stderr) = run(&["summary", "--run-dir", path_str(&f.small)]);
    assert_eq!(code, Some(0), "{stderr}");
    // 200 x 16 + 3 x (16 x 8 + 8 x 8 + 2 x 8) + 8 + 1
    assert!(stdout.contains("(None, 30, 16)"), "{stdout}");
    assert!(stdout.contains(" Total params: 3,833 "), "{stdout}");
}

#[test]
fn summary_counts_of_huge_sizes_are_exact_or_refused_naming_the_flags() {
    let max = "2147483647";
    let flags = [
        "summary",
        "--max-features",
        max,
        "--embedding-dim",
        max,
        "--units",
    ];
    let (code, stdout, stderr) = run(&[&flags[..], &[max]].concat());
    assert_eq!(code, Some(0), "{stderr}");
    // (2^31 - 1)^2 + 3 ((2^31 - 1)^2 + (2^31 - 1)^2 + 2 (2^31 - 1)) + 2^31:
    // past usize, and not wrapped.
    assert!(
        stdout.contains(" Total params: 32,281,802,113,959,329,793 ("),
        "{stdout}"
    );
    let (code, _, stderr) = run(&[&flags[..], &["18446744073709551615"]].concat());
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("the GRU layer of --max-features 2147483647, --embedding-dim 2147483647 and --units 18446744073709551615 would have more than 2^128 parameters: lower --embedding-dim or --units")
            && !stderr.contains("panicked"),
        "{stderr}"
    );
}

#[test]
fn a_folder_that_is_not_a_run_is_named() {
    let f = fixture();
    let empty = f.root.join("data");
    for command in ["plot", "compare"] {
        let (code, _, stderr) = run(&[command, path_str(&empty)]);
        assert_eq!(code, Some(1));
        assert!(
            stderr.contains("is not a run folder") && stderr.contains(path_str(&empty)),
            "{stderr}"
        );
    }
}

#[test]
fn a_run_with_no_finished_epoch_is_refused() {
    let f = fixture();
    let (_dir, copy) = copy_run(&f.small, "run");
    let header = std::fs::read_to_string(copy.join("history.csv")).unwrap();
    std::fs::write(copy.join("history.csv"), header.lines().next().unwrap()).unwrap();
    let (code, _, stderr) = run(&["plot", path_str(&copy)]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("no finished epoch"), "{stderr}");
}

#[test]
fn a_malformed_history_row_is_named_by_file_and_line() {
    let f = fixture();
    let (_dir, copy) = copy_run(&f.small, "run");
    let path = copy.join("history.csv");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("\n1,", "\n1,x");
    std::fs::write(&path, text).unwrap();
    let (code, _, stderr) = run(&["compare", path_str(&copy)]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("history.csv: line 3"), "{stderr}");
}

#[test]
fn a_plot_into_a_missing_folder_is_refused_and_writes_nothing() {
    let f = fixture();
    let out = f.root.join("missing").join("plot.svg");
    let (code, _, stderr) = run(&["plot", path_str(&f.small), "--output", path_str(&out)]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains(path_str(&out)), "{stderr}");
    assert!(!f.root.join("missing").exists());
}

/// The fixture's test reviews in the archive's test order (neg then pos,
/// by numeric id), as (label, text).
fn test_reviews() -> Vec<(u8, String)> {
    let mut reviews: Vec<(u8, u64, String)> = synthetic_reviews(REVIEWS_PER_FOLDER, ARCHIVE_SEED)
        .into_iter()
        .filter(|(split, _, _, _)| split == "test")
        .map(|(_, label, name, text)| {
            let id = name.split('_').next().unwrap().parse().unwrap();
            (
                u8::from(label == "pos"),
                id,
                String::from_utf8(text).unwrap(),
            )
        })
        .collect();
    reviews.sort_by_key(|(label, id, _)| (*label, *id));
    reviews
        .into_iter()
        .map(|(label, _, text)| (label, text))
        .collect()
}

/// `predict --json` on `texts`, as parsed lines.
fn predict_json(run_dir: &Path, texts: &[String]) -> Vec<serde_json::Value> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("reviews.txt");
    std::fs::write(&file, texts.join("\n")).unwrap();
    let (code, stdout, stderr) = run(&[
        "predict",
        "--run-dir",
        path_str(run_dir),
        "--file",
        path_str(&file),
        "--json",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

/// The full-precision value the report gives for `metric`.
/// `report` of the small run into `name` under the fixture's root: the
/// HTML, and what the command printed on stderr.
fn write_report(f: &Fixture, name: &str) -> (String, String) {
    let out = f.root.join(name);
    let (code, _, stderr) = run(&[
        "report",
        path_str(&f.small),
        "-o",
        path_str(&out),
        "--data-dir",
        path_str(&f.root.join("data")),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    (std::fs::read_to_string(&out).unwrap(), stderr)
}

fn reported(html: &str, metric: &str) -> f64 {
    let key = format!("data-metric=\"{metric}\" data-value=\"");
    let at = html
        .find(&key)
        .unwrap_or_else(|| panic!("no {metric} in the report"))
        + key.len();
    html[at..at + html[at..].find('"').unwrap()]
        .parse()
        .unwrap()
}

/// AUC by counting every (positive, negative) pair, ties one half.
fn auc_by_pairs(p: &[f64], y: &[u8]) -> f64 {
    let (mut wins, mut pairs) = (0.0, 0.0);
    for (i, &yi) in y.iter().enumerate() {
        for (j, &yj) in y.iter().enumerate() {
            if yi == 1 && yj == 0 {
                pairs += 1.0;
                wins += if p[i] > p[j] {
                    1.0
                } else if p[i] == p[j] {
                    0.5
                } else {
                    0.0
                };
            }
        }
    }
    wins / pairs
}

#[test]
fn predict_json_prints_one_object_per_review() {
    let f = fixture();
    let texts = [
        "a great wonderful film".to_owned(),
        "awful \"dull\" waste".to_owned(),
    ];
    let lines = predict_json(&f.small, &texts);
    assert_eq!(lines.len(), 2);
    for (line, text) in lines.iter().zip(&texts) {
        assert_eq!(line["text"].as_str(), Some(text.as_str()));
        let p = line["probability"].as_f64().unwrap();
        let label = if p > 0.5 { "positive" } else { "negative" };
        assert_eq!(line["label"], label);
    }
}

#[test]
fn every_report_metric_equals_an_independent_computation() {
    let f = fixture();
    let (html, stderr) = write_report(f, "report.html");
    assert!(
        stderr.contains(&format!("Using the weights after epoch {EPOCHS}")),
        "the report says which weights it ran: {stderr}"
    );
    assert!(html.contains(&format!("from the weights after epoch {EPOCHS} on all")));
    let reviews = test_reviews();
    let texts: Vec<String> = reviews.iter().map(|(_, t)| t.clone()).collect();
    let labels: Vec<u8> = reviews.iter().map(|(y, _)| *y).collect();
    let p: Vec<f64> = predict_json(&f.small, &texts)
        .iter()
        .map(|l| l["probability"].as_f64().unwrap())
        .collect();
    let count = |predicted: bool, truth: u8| {
        (0..p.len())
            .filter(|&i| (p[i] > 0.5) == predicted && labels[i] == truth)
            .count() as f64
    };
    let (tp, fp, tn, fn_) = (
        count(true, 1),
        count(true, 0),
        count(false, 0),
        count(false, 1),
    );
    let precision = tp / (tp + fp);
    let recall = tp / (tp + fn_);
    let log_loss = p
        .iter()
        .zip(&labels)
        .map(|(&q, &y)| {
            let q = q.clamp(1e-7, 1.0 - 1e-7);
            if y == 1 {
                -q.ln()
            } else {
                -(1.0 - q).ln()
            }
        })
        .sum::<f64>()
        / p.len() as f64;
    let expected = [
        ("threshold", 0.5),
        ("true_positives", tp),
        ("false_positives", fp),
        ("true_negatives", tn),
        ("false_negatives", fn_),
        ("accuracy", (tp + tn) / p.len() as f64),
        ("precision", precision),
        ("recall", recall),
        ("f1", 2.0 * precision * recall / (precision + recall)),
        ("roc_auc", auc_by_pairs(&p, &labels)),
        ("log_loss", log_loss),
    ];
    for (metric, value) in expected {
        let got = reported(&html, metric);
        assert!(
            (got - value).abs() < 1e-6,
            "{metric}: report {got}, expected {value}"
        );
    }
}

#[test]
fn the_report_quotes_the_most_confident_mistakes_first() {
    let f = fixture();
    let (html, _) = write_report(f, "report-wrong.html");
    let errors: Vec<f64> = html
        .split("data-wrong=\"")
        .skip(1)
        .map(|rest| {
            let index: usize = rest[..rest.find('"').unwrap()].parse().unwrap();
            let at = rest.find("data-value=\"").unwrap() + "data-value=\"".len();
            let p: f64 = rest[at..at + rest[at..].find('"').unwrap()]
                .parse()
                .unwrap();
            (p - f64::from(test_reviews()[index].0)).abs()
        })
        .collect();
    assert!(!errors.is_empty(), "a small model makes mistakes");
    assert!(errors.iter().all(|&e| e > 0.5), "only mistakes: {errors:?}");
    assert!(errors.windows(2).all(|w| w[0] >= w[1]), "{errors:?}");
}

#[test]
fn the_report_references_nothing_outside_itself() {
    let f = fixture();
    let html = write_report(f, "report-self.html").0.to_lowercase();
    for outside in [
        "src=", "href=", "url(", "@import", "<script", "<link", "<img", "<iframe", "<object",
    ] {
        assert!(!html.contains(outside), "the report holds {outside}");
    }
    // The learning curves, calibration and length charts are inline SVG.
    assert_eq!(html.matches("<svg").count(), 3);
}

#[test]
fn a_report_of_a_folder_that_is_not_a_run_is_refused() {
    let f = fixture();
    let (code, _, stderr) = run(&["report", path_str(&f.root.join("data"))]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("is not a run folder"), "{stderr}");
    let out = f.root.join("nowhere").join("r.html");
    let (code, _, stderr) = run(&["report", path_str(&f.small), "-o", path_str(&out)]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains(path_str(&out)) && stderr.contains("does not exist"),
        "{stderr}"
    );
}
