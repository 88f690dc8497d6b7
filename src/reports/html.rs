//! The report: one self-contained HTML file (inline CSS and SVG; no
//! scripts, fonts, images or links to fetch) that says what a run is, how
//! it learned, and how its weights do on the test set and where they fail.
//! Every metric cell carries its full-precision value in `data-value`, so
//! tools and tests can read the numbers back.
use std::fmt::Write;

use anyhow::Result;

use super::charts::{bucket_name, calibration_svg, length_svg};
use super::comparison::{best, flat_settings, Better};
use super::curves::{history_svg, PlotRun};
use super::html_classes::multiclass_sections;
use super::metrics::{
    accuracy_by_length, calibration, most_confidently_wrong, BinaryMetrics, Predictions, Threshold,
    LOG_LOSS_EPSILON,
};
use super::model_summary::{layers, thousands, total_parameters};
use super::multiclass::ClassMetrics;
use super::run_record::RunRecord;
use super::test_predictions::TestPredictions;
use crate::model::ModelConfig;

/// How many of the most confidently wrong reviews the report quotes.
pub const WRONG_REVIEWS_SHOWN: usize = 10;
/// Characters of a quoted review shown before it is cut.
const QUOTE_CHARS: usize = 1000;
const CALIBRATION_BINS: usize = 10;

/// What the report says about the data, besides the test predictions.
#[derive(Debug, Clone, PartialEq)]
pub struct DataSummary {
    /// URL or path of the archive, or the user's training and test files.
    pub source: String,
    /// Training texts of each class.
    pub train_per_class: Vec<usize>,
    /// Words in the run's vocabulary file.
    pub vocabulary_words: usize,
}

/// Everything the report is made of.
pub struct ReportInput<'a> {
    pub run: &'a RunRecord,
    /// Which of the run's weights made the predictions, in words (e.g.
    /// "the weights after epoch 5").
    pub weights: &'a str,
    pub data: &'a DataSummary,
    pub predictions: &'a TestPredictions,
    pub threshold: Threshold,
}

/// `<`, `>`, `&` and quotes made safe for HTML text and attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1240px;margin:24px auto;padding:0 16px;color:#222;line-height:1.45}
h1{font-size:26px;margin-bottom:4px}h2{font-size:20px;margin-top:36px;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:4px 10px;text-align:left;vertical-align:top}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}th{background:#f5f5f5}
pre{background:#f7f7f7;padding:10px;overflow-x:auto;font-size:13px}
svg{max-width:100%;height:auto}.figures{display:grid;grid-template-columns:repeat(auto-fit,minmax(480px,1fr));gap:24px;align-items:start}
.note{color:#555;font-size:14px}.review{white-space:pre-wrap;font-size:14px;max-width:760px}
.columns{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:32px;align-items:start}
.columns>*{min-width:0}.columns td+td{overflow-wrap:anywhere}
.columns table,.figures table{font-size:14px}";

/// The whole HTML document.
pub fn render_report(input: &ReportInput) -> Result<String> {
    let name = escape(&input.run.name());
    let mut html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>gru-imdb run {name}</title><style>{STYLE}</style></head><body>\n\
         <h1>gru-imdb run {name}</h1>\n<p class=\"note\">{}</p>\n",
        escape(&input.run.dir.display().to_string())
    );
    let p = input.predictions;
    let (headline, sections) = match p.class_names.len() {
        2 => {
            let predictions = Predictions::new(&p.probabilities, &p.labels)?;
            let metrics = BinaryMetrics::compute(&predictions, input.threshold);
            let headline = headline_section(input, &binary_headline(&metrics));
            let sections = metrics_section(&metrics, input.weights, &p.class_names)
                + &analysis_section(input, &predictions)?
                + &wrong_section(input, &predictions);
            (headline, sections)
        }
        n => {
            let metrics = ClassMetrics::compute(&p.class_probabilities, &p.labels, n)?;
            let headline = headline_section(input, &multiclass_headline(&metrics));
            (headline, multiclass_sections(input, &metrics))
        }
    };
    html += &headline;
    html += &run_section(input)?;
    html += &curves_section(input.run)?;
    html += &sections;
    html += "</body></html>\n";
    Ok(html)
}

/// The first thing a reader wants: how good, how long, where.
fn headline_section(input: &ReportInput, figures: &[(&str, &str, f64)]) -> String {
    let run = input.run;
    let best = best(run, |e| e.val_accuracy, Better::Higher);
    let seconds: f64 = run.epochs.iter().map(|e| e.seconds).sum();
    let mut html = String::from("<h2 id=\"headline\">Headline</h2>\n<table>\n");
    for &(key, name, value) in figures {
        html += &metric_row(key, name, value, 4);
    }
    html += &row(&[
        "best epoch (validation accuracy)".to_owned(),
        format!("{} of {} ({:.4})", best.epoch, run.epochs.len(), best.value),
    ]);
    html += &row(&["training time".to_owned(), format!("{seconds:.1} s")]);
    html += &row(&["device".to_owned(), escape(&run.config.device)]);
    html += &row(&[
        "test texts".to_owned(),
        thousands(input.predictions.labels.len()),
    ]);
    html += &row(&["weights".to_owned(), escape(input.weights)]);
    html + "</table>\n"
}

fn binary_headline(m: &BinaryMetrics) -> Vec<(&'static str, &'static str, f64)> {
    let mut figures = vec![
        ("headline_accuracy", "test accuracy", m.accuracy),
        ("headline_f1", "F1", m.f1),
    ];
    if let Some(auc) = m.roc_auc {
        figures.push(("headline_roc_auc", "ROC AUC", auc));
    }
    figures.push(("headline_log_loss", "log loss", m.log_loss));
    figures
}

fn multiclass_headline(m: &ClassMetrics) -> Vec<(&'static str, &'static str, f64)> {
    vec![
        ("headline_accuracy", "test accuracy", m.accuracy),
        ("headline_macro_f1", "macro F1", m.macro_avg.f1),
        ("headline_top2_accuracy", "top-2 accuracy", m.top2_accuracy),
        ("headline_log_loss", "log loss", m.log_loss),
    ]
}

pub(super) fn row(cells: &[String]) -> String {
    let mut out = String::from("<tr>");
    for c in cells {
        out += &format!("<td>{c}</td>");
    }
    out + "</tr>\n"
}

/// A metric row: name, shown value, and the value in full in `data-value`.
pub(super) fn metric_row(key: &str, name: &str, value: f64, digits: usize) -> String {
    format!(
        "<tr><td>{name}</td><td class=\"num\" data-metric=\"{key}\" data-value=\"{value}\">{value:.digits$}</td></tr>\n"
    )
}

fn share(part: usize, whole: usize) -> String {
    format!("{:.1}%", 100.0 * part as f64 / whole.max(1) as f64)
}

/// `25,000 (negative 50.0%, positive 50.0%)`.
fn class_balance(per_class: &[usize], names: &[String]) -> String {
    let total: usize = per_class.iter().sum();
    let shares: Vec<String> = names
        .iter()
        .zip(per_class)
        .map(|(name, &n)| format!("{} {}", escape(name), share(n, total)))
        .collect();
    format!("{} ({})", thousands(total), shares.join(", "))
}

fn run_section(input: &ReportInput) -> Result<String> {
    let run = input.run;
    let config = &run.config;
    let p = input.predictions;
    let mut test_per_class = vec![0usize; p.class_names.len()];
    for &y in &p.labels {
        test_per_class[usize::from(y)] += 1;
    }
    let cut = p.words.iter().filter(|&&w| w >= config.maxlen).count();
    let mut words = p.words.clone();
    words.sort_unstable();
    let median = words.get(words.len() / 2).copied().unwrap_or(0);
    let d = input.data;
    let mut html = String::from(
        "<h2 id=\"run\">Run</h2>\n<div class=\"columns\"><div><h3>Settings</h3><table>\n",
    );
    for (key, value) in flat_settings(&run.config_json()) {
        html += &row(&[escape(&key), escape(&value)]);
    }
    html += "</table></div><div><h3>Data</h3><table>\n";
    for (what, value) in [
        ("source", escape(&d.source)),
        (
            "training texts",
            class_balance(&d.train_per_class, &p.class_names),
        ),
        ("test texts", class_balance(&test_per_class, &p.class_names)),
        ("tokenizer", config.tokenizer().to_string()),
        (
            "vocabulary kept (num_words)",
            thousands(config.model.max_features),
        ),
        (
            "words in the vocabulary file",
            thousands(d.vocabulary_words),
        ),
        ("maxlen (ids per review)", config.maxlen.to_string()),
        ("median test text", format!("{median} tokens")),
        (
            "test texts cut to maxlen",
            format!("{} ({})", thousands(cut), share(cut, p.labels.len())),
        ),
    ] {
        html += &row(&[what.to_owned(), value]);
    }
    html += "</table>";
    html += &model_table(&config.model, config.maxlen)?;
    Ok(html + "</div></div>\n")
}

/// Keras's `model.summary()` as an HTML table: box-drawing text needs a
/// font that has those characters, a table does not.
fn model_table(model: &ModelConfig, maxlen: usize) -> Result<String> {
    let layers = layers(model, maxlen)?;
    let total = total_parameters(&layers)?;
    let mut html = String::from(
        "<h3>Model (Keras model.summary)</h3><table><tr><th>Layer (type)</th><th>Output Shape</th>\
         <th class=\"num\">Param #</th></tr>\n",
    );
    for l in &layers {
        html += &format!(
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td></tr>\n",
            escape(&l.layer),
            escape(&l.output_shape),
            thousands(l.parameters)
        );
    }
    Ok(html
        + &format!(
            "<tr><th colspan=\"2\">Total params (all trainable)</th><th class=\"num\" data-metric=\"parameters\" \
         data-value=\"{total}\">{}</th></tr></table>\n",
            thousands(total)
        ))
}

fn curves_section(run: &RunRecord) -> Result<String> {
    let plotted = PlotRun {
        label: "",
        epochs: &run.epochs,
        steps: &run.steps,
    };
    let mut html = String::from("<h2 id=\"curves\">Learning curves</h2>\n");
    html += &history_svg(&[plotted])?;
    html += "\n<table><tr><th>epoch</th><th class=\"num\">accuracy</th><th class=\"num\">loss</th>\
             <th class=\"num\">val_accuracy</th><th class=\"num\">val_loss</th><th class=\"num\">seconds</th>\
             <th class=\"num\">samples/s</th></tr>\n";
    for e in &run.epochs {
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td class=\"num\">{:.4}</td><td class=\"num\">{:.4}</td><td class=\"num\">{:.4}</td>\
             <td class=\"num\">{:.4}</td><td class=\"num\">{:.1}</td><td class=\"num\">{:.0}</td></tr>",
            e.epoch + 1,
            e.accuracy,
            e.loss,
            e.val_accuracy,
            e.val_loss,
            e.seconds,
            e.samples_per_second
        );
    }
    Ok(html + "</table>\n")
}

fn metrics_section(m: &BinaryMetrics, weights: &str, class_names: &[String]) -> String {
    let (negative, positive) = (escape(&class_names[0]), escape(&class_names[1]));
    let c = &m.confusion;
    let mut html = format!(
        "<h2 id=\"metrics\">Test metrics</h2>\n<p>Computed by this program from {} on all {} test reviews. \
         Threshold: a review is predicted positive when its probability is above \
         <b data-metric=\"threshold\" data-value=\"{t}\">{t}</b>.</p>\n\
         <div class=\"columns\"><table>\n",
        escape(weights),
        thousands(m.count),
        t = m.threshold.0
    );
    html += &metric_row("accuracy", "accuracy", m.accuracy, 4);
    html += &metric_row("precision", "precision", m.precision, 4);
    html += &metric_row("recall", "recall", m.recall, 4);
    html += &metric_row("f1", "F1", m.f1, 4);
    match m.roc_auc {
        Some(auc) => html += &metric_row("roc_auc", "ROC AUC", auc, 4),
        None => html += "<tr><td>ROC AUC</td><td>undefined: one class only</td></tr>\n",
    }
    html += &metric_row(
        "log_loss",
        &format!("log loss (probabilities clipped to [{LOG_LOSS_EPSILON:e}, 1 &minus; {LOG_LOSS_EPSILON:e}])"),
        m.log_loss,
        4,
    );
    let cell = |key: &str, n: usize| {
        format!(
            "<td class=\"num\" data-metric=\"{key}\" data-value=\"{n}\">{}</td>",
            thousands(n)
        )
    };
    let _ = write!(
        html,
        "</table><table><tr><th>confusion matrix</th><th class=\"num\">predicted {negative}</th>\
         <th class=\"num\">predicted {positive}</th></tr>\n\
         <tr><th>true {negative}</th>{}{}</tr>\n<tr><th>true {positive}</th>{}{}</tr></table></div>\n",
        cell("true_negatives", c.true_negatives),
        cell("false_positives", c.false_positives),
        cell("false_negatives", c.false_negatives),
        cell("true_positives", c.true_positives)
    );
    html
}

fn analysis_section(input: &ReportInput, predictions: &Predictions) -> Result<String> {
    let bins = calibration(predictions, CALIBRATION_BINS);
    let maxlen = input.run.config.maxlen;
    let buckets = accuracy_by_length(
        predictions,
        &input.predictions.words,
        maxlen,
        input.threshold,
    );
    let mut html = String::from(
        "<h2 id=\"analysis\">Where the model is right and wrong</h2>\n<div class=\"figures\"><div>",
    );
    html += &calibration_svg(&bins)?;
    html += "<table><tr><th>probability</th><th class=\"num\">reviews</th><th class=\"num\">mean predicted</th>\
             <th class=\"num\">fraction positive</th></tr>\n";
    for b in bins.iter().filter(|b| b.count > 0) {
        let _ = writeln!(
            html,
            "<tr><td>{:.1}&ndash;{:.1}</td><td class=\"num\">{}</td><td class=\"num\">{:.3}</td><td class=\"num\">{:.3}</td></tr>",
            b.low, b.high, thousands(b.count), b.mean_probability, b.positive_fraction
        );
    }
    html += "</table></div><div>";
    html += &length_svg(&buckets)?;
    let _ = writeln!(
        html,
        "<p class=\"note\">The model sees the last {maxlen} ids of a review (Keras's pad_sequences \
         cuts at the front): a review of {maxlen} words or more loses its beginning.</p>\
         <table><tr><th>words</th><th class=\"num\">reviews</th>\
         <th class=\"num\">accuracy</th><th>seen</th></tr>"
    );
    for b in buckets.iter().filter(|b| b.count > 0) {
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\" data-metric=\"accuracy_words_{}\" data-value=\"{}\">{:.4}</td><td>{}</td></tr>",
            bucket_name(b),
            thousands(b.count),
            b.min_words,
            b.accuracy,
            b.accuracy,
            if b.truncated { "cut" } else { "whole" }
        );
    }
    Ok(html + "</table></div></div>\n")
}

/// A probability with enough digits to tell 0.99997 from 1.
pub(super) fn probability_text(p: f64) -> String {
    if (0.001..=0.999).contains(&p) {
        format!("{p:.4}")
    } else {
        format!("{p:.6}")
    }
}

/// A review as plain text: IMDB's `<br />` line breaks become real ones,
/// and a long review is cut with a note.
pub(super) fn quote(text: &str) -> String {
    let text = text.replace("<br />", "\n");
    let mut shown: String = text.chars().take(QUOTE_CHARS).collect();
    if shown.len() < text.len() {
        shown.push_str(" [\u{2026}]");
    }
    escape(&shown)
}

fn wrong_section(input: &ReportInput, predictions: &Predictions) -> String {
    let wrong = most_confidently_wrong(predictions, input.threshold, WRONG_REVIEWS_SHOWN);
    let mut html = format!(
        "<h2 id=\"mistakes\">The {} most confidently wrong test reviews</h2>\n<table><tr><th class=\"num\">#</th>\
         <th class=\"num\">P({})</th><th>true label</th><th class=\"num\">words</th><th>review</th></tr>\n",
        wrong.len(),
        escape(&input.predictions.class_names[1])
    );
    let p = &input.predictions;
    let label = |y: u8| escape(&p.class_names[usize::from(y)]);
    for (rank, &i) in wrong.iter().enumerate() {
        let _ = writeln!(
            html,
            "<tr><td class=\"num\">{}</td><td class=\"num\" data-wrong=\"{i}\" data-value=\"{}\">{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"review\">{}</td></tr>",
            rank + 1,
            p.probabilities[i],
            probability_text(p.probabilities[i]),
            label(p.labels[i]),
            p.words[i],
            quote(&p.texts[i])
        );
    }
    html + "</table>\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run_dir::EpochRecord;

    fn run_record() -> RunRecord {
        let config_json = serde_json::json!({
            "model": {"max_features": 50, "embedding_dim": 4, "units": 2,
                      "dropout": 0.0, "recurrent_dropout": 0.0},
            "train": {"epochs": 1, "batch_size": 2, "validation_batch_size": 2,
                      "adam": {"learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7},
                      "callbacks": {"monitor": "val_loss", "min_delta": 0.0, "save_best": false,
                                    "restore_best_weights": false, "early_stopping_patience": null,
                                    "reduce_lr_on_plateau": null}},
            "maxlen": 5, "data_dir": "data", "data_url": "<archive>", "data_sha256": null, "seed": 1,
            "device": "cpu", "gru_implementation": "CpuKernel", "threads": 1,
            "gru_imdb_version": "0"
        });
        RunRecord {
            dir: "runs/<b>".into(),
            config: serde_json::from_value(config_json).unwrap(),
            epochs: vec![EpochRecord {
                epoch: 0,
                accuracy: 0.5,
                loss: 0.7,
                val_accuracy: 0.5,
                val_loss: 0.7,
                seconds: 1.0,
                samples_per_second: 4.0,
                learning_rate: None,
            }],
            steps: Vec::new(),
        }
    }

    fn render(texts: [&str; 3]) -> String {
        let run = run_record();
        let probabilities = vec![0.9, 0.2, 0.6];
        let predictions = TestPredictions {
            class_probabilities: probabilities.iter().map(|p| vec![1.0 - p, *p]).collect(),
            probabilities,
            labels: vec![0, 1, 1],
            words: vec![3, 9, 4],
            texts: texts.map(String::from).to_vec(),
            class_names: vec!["<neg>".into(), "<pos>".into()],
        };
        let data = DataSummary {
            source: "<archive>".into(),
            train_per_class: vec![1, 2],
            vocabulary_words: 40,
        };
        render_report(&ReportInput {
            run: &run,
            weights: "the weights after epoch 1",
            data: &data,
            predictions: &predictions,
            threshold: Threshold::default(),
        })
        .unwrap()
    }

    #[test]
    fn review_texts_and_names_cannot_inject_markup() {
        let html = render(["<script>alert(1)</script>", "<img src=x onerror=y>", "fine"]);
        assert!(!html.contains("<script"), "a review became a script");
        assert!(!html.contains("<img"), "a review became an image");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!html.contains("<b>") && !html.contains("runs/<b>"));
    }

    #[test]
    fn imdb_line_breaks_become_line_breaks_and_long_reviews_are_cut() {
        let long = "word ".repeat(400);
        let html = render(["one<br /><br />two", &long, "fine"]);
        assert!(
            html.contains("one\n\ntwo"),
            "IMDB's <br /> tags become newlines"
        );
        assert!(
            html.contains("[\u{2026}]"),
            "a review past {QUOTE_CHARS} characters is cut"
        );
    }

    #[test]
    fn the_mistakes_are_listed_most_confident_first() {
        let html = render(["a", "b", "c"]);
        let first = html.find("data-wrong=\"0\"").unwrap();
        let second = html.find("data-wrong=\"1\"").unwrap();
        assert!(
            first < second,
            "p=0.9 for a negative before p=0.2 for a positive"
        );
        assert!(
            !html.contains("data-wrong=\"2\""),
            "0.6 for a positive is right"
        );
    }
}
