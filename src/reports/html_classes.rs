//! The report's test sections for a model of more than two classes: the
//! figures of `multiclass`, as tables whose cells carry their full values
//! in `data-value`, and each class's worst errors quoted.
use std::fmt::Write;

use super::html::{escape, metric_row, probability_text, quote, row, ReportInput};
use super::model_summary::thousands;
use super::multiclass::{predicted_class, worst_errors, ClassFigures, ClassMetrics};

/// Confused pairs listed, and errors quoted per class.
const PAIRS_SHOWN: usize = 10;
const ERRORS_PER_CLASS: usize = 3;

pub(super) fn multiclass_sections(input: &ReportInput, m: &ClassMetrics) -> String {
    let names: Vec<String> = input
        .predictions
        .class_names
        .iter()
        .map(|n| escape(n))
        .collect();
    let mut html = format!(
        "<h2 id=\"metrics\">Test metrics</h2>\n<p>Computed by this program from {} on all {} test \
         texts; a text's class is its most probable one.</p>\n<div class=\"columns\"><table>\n",
        escape(input.weights),
        thousands(m.count)
    );
    html += &metric_row("accuracy", "accuracy", m.accuracy, 4);
    html += &metric_row("top2_accuracy", "top-2 accuracy", m.top2_accuracy, 4);
    html += &metric_row("log_loss", "log loss (p clipped to 1e-7)", m.log_loss, 4);
    html += "</table>";
    html += &per_class_table(m, &names);
    html += "</div>\n";
    html += &confusion_table(m, &names);
    html += &confused_pairs(m, &names);
    html + &worst_errors_section(input, &names)
}

fn figures_cells(key: &str, f: &ClassFigures) -> String {
    let cell = |metric: &str, v: f64| {
        format!("<td class=\"num\" data-metric=\"{metric}_{key}\" data-value=\"{v}\">{v:.4}</td>")
    };
    format!(
        "{}{}{}<td class=\"num\" data-metric=\"support_{key}\" data-value=\"{}\">{}</td>",
        cell("precision", f.precision),
        cell("recall", f.recall),
        cell("f1", f.f1),
        f.support,
        thousands(f.support)
    )
}

fn per_class_table(m: &ClassMetrics, names: &[String]) -> String {
    let mut html = String::from(
        "<table><tr><th>class</th><th class=\"num\">precision</th><th class=\"num\">recall</th>\
         <th class=\"num\">F1</th><th class=\"num\">support</th></tr>\n",
    );
    for (c, f) in m.per_class.iter().enumerate() {
        let _ = writeln!(
            html,
            "<tr><td>{}</td>{}</tr>",
            names[c],
            figures_cells(&c.to_string(), f)
        );
    }
    for (key, name, f) in [
        ("macro", "macro average", &m.macro_avg),
        ("weighted", "weighted average", &m.weighted_avg),
    ] {
        let _ = writeln!(html, "<tr><th>{name}</th>{}</tr>", figures_cells(key, f));
    }
    html + "</table>"
}

fn confusion_table(m: &ClassMetrics, names: &[String]) -> String {
    let mut html = String::from(
        "<h3>Confusion matrix (rows: true class, columns: predicted)</h3><table><tr><th></th>",
    );
    for name in names {
        let _ = write!(html, "<th class=\"num\">{name}</th>");
    }
    html += "</tr>\n";
    for (t, counts) in m.confusion.iter().enumerate() {
        let _ = write!(html, "<tr><th>{}</th>", names[t]);
        for (p, &n) in counts.iter().enumerate() {
            let _ = write!(
                html,
                "<td class=\"num\" data-metric=\"confusion_{t}_{p}\" data-value=\"{n}\">{}</td>",
                thousands(n)
            );
        }
        html += "</tr>\n";
    }
    html + "</table>\n"
}

fn confused_pairs(m: &ClassMetrics, names: &[String]) -> String {
    let pairs = m.most_confused(PAIRS_SHOWN);
    let mut html = String::from(
        "<h3>Most confused pairs</h3><table><tr><th>true class</th><th>predicted as</th>\
         <th class=\"num\">texts</th><th class=\"num\">of the true class</th></tr>\n",
    );
    for (t, p, n) in pairs {
        let support = m.per_class[t].support.max(1);
        html += &row(&[
            names[t].clone(),
            names[p].clone(),
            thousands(n),
            format!("{:.1}%", 100.0 * n as f64 / support as f64),
        ]);
    }
    html + "</table>\n"
}

fn worst_errors_section(input: &ReportInput, names: &[String]) -> String {
    let p = input.predictions;
    let mut html = format!(
        "<h2 id=\"mistakes\">The worst errors of each class (up to {ERRORS_PER_CLASS})</h2>\n\
         <table><tr><th>true class</th><th class=\"num\">P(true class)</th><th>predicted</th>\
         <th class=\"num\">tokens</th><th>text</th></tr>\n"
    );
    for (class, name) in names.iter().enumerate() {
        for i in worst_errors(&p.class_probabilities, &p.labels, class, ERRORS_PER_CLASS) {
            let probabilities = &p.class_probabilities[i];
            let _ = writeln!(
                html,
                "<tr><td>{name}</td><td class=\"num\" data-wrong=\"{i}\" data-value=\"{}\">{}</td><td>{}</td>\
                 <td class=\"num\">{}</td><td class=\"review\">{}</td></tr>",
                probabilities[class],
                probability_text(probabilities[class]),
                names[predicted_class(probabilities)],
                p.words[i],
                quote(&p.texts[i])
            );
        }
    }
    html + "</table>\n"
}
