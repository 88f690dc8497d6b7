//! `--tokenizer auto`: `unicode` when a noticeable share of the training
//! texts' letters belong to scripts written without spaces (Chinese, Japanese,
//! Thai, ...), where the `imdb` rule would make each clause one token;
//! `imdb` otherwise, so English texts are cut as the contract cuts them.
use super::scripts::Unspaced;
use super::Tokenizer;

/// The share of letters in unspaced scripts from which `auto` takes
/// `unicode`. A tenth is already one clause-sized "word" in every few
/// tokens under `imdb`; mostly-English texts quoting a Chinese name now and
/// then stay far below it.
const UNSPACED_SHARE: f64 = 0.10;

/// Letters of the training texts, by script.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScriptCounts {
    /// Alphabetic characters (letters and ideographs).
    letters: u64,
    /// Of those, by [`Unspaced`] script, in [`Unspaced::ALL`]'s order.
    unspaced: [u64; Unspaced::ALL.len()],
}

impl ScriptCounts {
    pub fn add(&mut self, text: &str) {
        for c in text.chars().filter(|c| c.is_alphabetic()) {
            self.letters += 1;
            if let Some(script) = Unspaced::of(c) {
                self.unspaced[script as usize] += 1;
            }
        }
    }

    fn share(&self, letters: u64) -> f64 {
        letters as f64 / self.letters.max(1) as f64
    }

    /// `auto`'s choice and why.
    pub fn choose(&self) -> AutoChoice {
        let unspaced: u64 = self.unspaced.iter().sum();
        let share = self.share(unspaced);
        let mut scripts: Vec<(Unspaced, u64)> = Unspaced::ALL
            .into_iter()
            .zip(self.unspaced)
            .filter(|&(_, n)| n > 0)
            .collect();
        scripts.sort_by_key(|&(_, n)| std::cmp::Reverse(n));
        let named: Vec<String> = scripts
            .iter()
            .map(|&(script, n)| format!("{} {:.1}%", script.name(), 100.0 * self.share(n)))
            .collect();
        let tokenizer = match share >= UNSPACED_SHARE {
            true => Tokenizer::Unicode,
            false => Tokenizer::Imdb,
        };
        let found = match named.is_empty() {
            true => "none of the training texts' letters are".to_owned(),
            false => format!(
                "{:.1}% of the training texts' letters ({}) are",
                100.0 * share,
                named.join(", ")
            ),
        };
        let hint = match (tokenizer, scripts.first()) {
            (Tokenizer::Unicode, Some((Unspaced::Han, _))) => {
                "; --tokenizer jieba cuts Chinese into words, --tokenizer chars into characters"
            }
            _ => "; --tokenizer chooses another",
        };
        AutoChoice {
            tokenizer,
            reason: format!(
                "{found} in scripts written without spaces (the threshold is {:.0}%){hint}",
                100.0 * UNSPACED_SHARE
            ),
        }
    }
}

/// What `auto` took, and the line that says why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoChoice {
    pub tokenizer: Tokenizer,
    pub reason: String,
}
