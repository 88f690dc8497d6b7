//! The `jieba` rule: Chinese words from `jieba-rs` with its embedded
//! dictionary (no download), HMM on for words the dictionary lacks. Only
//! runs of Han characters go to jieba; everything between them is cut by
//! the `unicode` rule, so ASCII words stay whole (`iphone`, `don't`,
//! `2.5`) and punctuation, full-width or not, is dropped.
use std::sync::OnceLock;

use jieba_rs::Jieba;

use super::scripts::is_ideograph;
use super::unicode;

/// The dictionary, built on first use and then shared by every thread
/// (the others wait for the first): it never changes, like a constant of
/// the program.
fn dictionary() -> &'static Jieba {
    static JIEBA: OnceLock<Jieba> = OnceLock::new();
    JIEBA.get_or_init(Jieba::new)
}

/// Calls `f` with each token of `lower` (already lower-cased), in order.
pub(super) fn for_each_token(lower: &str, mut f: impl FnMut(&str)) {
    let mut rest = lower;
    while !rest.is_empty() {
        let han = rest.starts_with(is_ideograph);
        let end = rest
            .find(|c: char| is_ideograph(c) != han)
            .unwrap_or(rest.len());
        let (run, after) = rest.split_at(end);
        if han {
            for word in dictionary().cut(run, true) {
                f(word.word);
            }
        } else {
            unicode::for_each_token(run, &mut f);
        }
        rest = after;
    }
}
