//! The review texts themselves, for a report that quotes them: the test
//! reviews in the contract's order (neg then pos, by numeric id, the order
//! of `Dataset::test`) and the training set's size.
use std::path::Path;

use anyhow::Result;

use super::archive::read_reviews;
use super::dir_lock::DataDirLock;
use super::tokenize::Tokenizer;
use super::{ArchiveSource, DataConfig};

/// One review's text (invalid UTF-8 replaced, as the tokeniser sees it) and label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabeledText {
    pub label: u8,
    pub text: String,
}

impl LabeledText {
    /// Tokens as `tokenizer` counts them, before `maxlen` cuts them.
    pub fn words(&self, tokenizer: Tokenizer) -> usize {
        tokenizer.count(&self.text)
    }
}

/// The test reviews and how many training reviews (and positive ones) the
/// archive holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ArchiveTexts {
    pub train_reviews: usize,
    pub train_positive: usize,
    pub test: Vec<LabeledText>,
}

/// Reads `cfg`'s archive (downloading and verifying it as training does,
/// taking its turn in the data folder).
pub fn read_texts(cfg: &DataConfig) -> Result<ArchiveTexts> {
    cfg.validate()?;
    let archive = ArchiveSource::open(cfg)?;
    let _turn = DataDirLock::acquire(&cfg.data_dir)?;
    archive.obtain(|path, _sha| texts_of(path))
}

fn texts_of(archive: &Path) -> Result<ArchiveTexts> {
    let mut texts = ArchiveTexts::default();
    let mut test = Vec::new();
    read_reviews(archive, |review| {
        let label = review.folder.label();
        if review.folder.is_train() {
            texts.train_reviews += 1;
            texts.train_positive += usize::from(label);
        } else {
            let text = String::from_utf8_lossy(&review.text).into_owned();
            test.push((label, review.id, LabeledText { label, text }));
        }
        Ok(())
    })?;
    test.sort_by_key(|(label, id, _)| (*label, *id));
    texts.test = test.into_iter().map(|(_, _, t)| t).collect();
    Ok(texts)
}
