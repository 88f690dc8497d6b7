//! Which characters belong to scripts written without spaces between words,
//! by code point block: what `unicode` cuts one character at a time (CJK
//! ideographs, as BERT's basic tokenizer does), what `jieba` hands to its
//! dictionary (Han), and what `auto` counts.
//!
//! Blocks, not the Unicode Script property: the blocks below hold only
//! letters of their scripts (and a few of their marks), which is all the
//! counting needs, without a table of the whole character database.

/// A CJK ideograph (Han): the unified ideographs and their extensions, the
/// compatibility ideographs, and `〇`.
pub(crate) fn is_ideograph(c: char) -> bool {
    matches!(c as u32,
        0x3007
        | 0x3400..=0x4DBF   // Extension A
        | 0x4E00..=0x9FFF   // Unified Ideographs
        | 0xF900..=0xFAFF   // Compatibility Ideographs
        | 0x20000..=0x2FA1F // Extensions B-F and the supplement
        | 0x30000..=0x323AF // Extensions G-H
    )
}

/// A script written without spaces between its words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unspaced {
    Han,
    Kana,
    Thai,
    Lao,
    Khmer,
    Myanmar,
}

impl Unspaced {
    /// Every variant, in the order `auto` names them.
    pub const ALL: [Unspaced; 6] = [
        Unspaced::Han,
        Unspaced::Kana,
        Unspaced::Thai,
        Unspaced::Lao,
        Unspaced::Khmer,
        Unspaced::Myanmar,
    ];

    pub fn of(c: char) -> Option<Unspaced> {
        if is_ideograph(c) {
            return Some(Unspaced::Han);
        }
        Some(match c as u32 {
            // Hiragana, Katakana, their phonetic extensions and half-width
            // katakana.
            0x3040..=0x30FF | 0x31F0..=0x31FF | 0xFF66..=0xFF9D => Unspaced::Kana,
            0x0E00..=0x0E7F => Unspaced::Thai,
            0x0E80..=0x0EFF => Unspaced::Lao,
            0x1780..=0x17FF | 0x19E0..=0x19FF => Unspaced::Khmer,
            0x1000..=0x109F | 0xA9E0..=0xA9FF | 0xAA60..=0xAA7F => Unspaced::Myanmar,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Unspaced::Han => "Chinese characters",
            Unspaced::Kana => "Japanese kana",
            Unspaced::Thai => "Thai",
            Unspaced::Lao => "Lao",
            Unspaced::Khmer => "Khmer",
            Unspaced::Myanmar => "Myanmar",
        }
    }
}

/// An emoji or pictograph: kept as a token by `unicode`, which otherwise
/// keeps only words with a letter or a digit.
pub(crate) fn is_pictograph(c: char) -> bool {
    matches!(c as u32,
        0x2300..=0x23FF     // Miscellaneous Technical (⌚, ⏰)
        | 0x2600..=0x27BF   // Miscellaneous Symbols, Dingbats (☀, ✂, ❤)
        | 0x2B00..=0x2BFF   // arrows and stars (⭐)
        | 0x1F000..=0x1FAFF // the emoji blocks
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_script_is_told_by_its_letters() {
        let cases = [
            ('中', Some(Unspaced::Han)),
            ('〇', Some(Unspaced::Han)),
            ('𠀀', Some(Unspaced::Han)),
            ('の', Some(Unspaced::Kana)),
            ('カ', Some(Unspaced::Kana)),
            ('ｶ', Some(Unspaced::Kana)),
            ('ก', Some(Unspaced::Thai)),
            ('ກ', Some(Unspaced::Lao)),
            ('ក', Some(Unspaced::Khmer)),
            ('က', Some(Unspaced::Myanmar)),
            ('한', None),
            ('a', None),
            ('я', None),
            ('，', None),
            ('。', None),
        ];
        for (c, script) in cases {
            assert_eq!(Unspaced::of(c), script, "{c}");
        }
        assert!(is_pictograph('😀') && is_pictograph('❤') && !is_pictograph('a'));
    }
}
