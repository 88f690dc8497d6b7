//! `tokenizer.json`: everything another program needs to turn a text into
//! the ids an exported model takes, as `predict` does. The rule is named
//! (with a version, raised whenever a rule's output changes) and described
//! in `docs/tokenizers.md`; `examples/tokenizer.py` follows this file for
//! the `imdb` rule in plain Python.
//!
//! The file also lists, as code point ranges, the classes of characters
//! the rule reads (`Tokenizer::character_classes`: for `imdb`, the
//! characters a word is made of besides `'`, Rust's `char::is_alphanumeric`),
//! so that another language needs no Unicode tables of its own to agree
//! with us (Python's `str.isalnum` differs on combining marks, for one).
use serde_json::{json, Value};

use crate::data::{INDEX_FROM, OOV_ID, PAD_ID, START_ID};
use crate::trained::TrainedModel;

pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// The version of this file's layout.
const FORMAT_VERSION: u32 = 1;
/// The version of every rule as `docs/tokenizers.md` describes it.
const RULE_VERSION: u32 = 1;

/// The tokenizer of `trained`, as `tokenizer.json` holds it.
pub fn tokenizer_json(trained: &TrainedModel) -> Value {
    let config = &trained.config;
    let num_words = config.model.max_features;
    let rule = trained.tokenizer();
    // In rank order (the first has rank 1, id `1 + INDEX_FROM`), the tokens
    // whose ids are below num_words; the others are all OOV_ID.
    let kept = num_words.saturating_sub(INDEX_FROM + 1);
    let vocabulary: Vec<&String> = trained.vocab.tokens().iter().take(kept).collect();
    let mut file = json!({
        "format": "gru-imdb tokenizer",
        "format_version": FORMAT_VERSION,
        "rule": rule.name(),
        "rule_version": RULE_VERSION,
        "line_breaks": ["<br />", "<br/>", "<br>"],
        "line_breaks_ignore_case": true,
        "lowercase": "unicode full case mapping (Python's str.lower)",
        "vocabulary": vocabulary,
        "index_from": INDEX_FROM,
        "num_words": num_words,
        "start_id": START_ID,
        "oov_id": OOV_ID,
        "pad_id": PAD_ID,
        "maxlen": config.maxlen,
        "padding": "pre",
        "truncating": "pre",
        "classes": trained.class_names,
        "output": match trained.class_names.len() {
            2 => "sigmoid: the probability of the second class",
            _ => "softmax: the probability of each class",
        },
    });
    for class in rule.character_classes() {
        file[class.name] = json!(code_point_ranges(class.contains));
    }
    file
}

/// The inclusive code point ranges of the characters of a class, in
/// order.
fn code_point_ranges(contains: fn(char) -> bool) -> Vec<[u32; 2]> {
    let mut ranges: Vec<[u32; 2]> = Vec::new();
    for c in (0..=char::MAX as u32).filter_map(char::from_u32) {
        if !contains(c) {
            continue;
        }
        let code = c as u32;
        match ranges.last_mut() {
            Some(last) if last[1] + 1 == code => last[1] = code,
            _ => ranges.push([code, code]),
        }
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_point_ranges_are_exactly_the_characters_of_the_class() {
        let ranges = code_point_ranges(char::is_alphanumeric);
        let inside = |c: char| {
            let code = c as u32;
            let at = ranges.partition_point(|&[_, hi]| hi < code);
            ranges.get(at).is_some_and(|&[lo, _]| lo <= code)
        };
        for c in (0..=char::MAX as u32).filter_map(char::from_u32) {
            assert_eq!(inside(c), c.is_alphanumeric(), "{:?}", c);
        }
        assert!(ranges.windows(2).all(|w| w[0][1] + 1 < w[1][0]));
    }
}
