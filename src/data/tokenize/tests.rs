//! Each rule on fixed strings in several scripts, and `auto`'s choice.
use std::borrow::Cow;

use super::*;

/// The tokens of `text` by `tokenizer`, as `&str`s for short assertions.
fn cut(tokenizer: Tokenizer, text: &str) -> Vec<String> {
    tokenizer.tokenize(text)
}

#[test]
fn line_breaks_are_found_in_any_case_and_only_whole() {
    assert_eq!(replace_line_breaks("a<br />b<BR/>c<Br>d"), "a b c d");
    assert_eq!(replace_line_breaks("a<b>c<br d"), "a<b>c<br d");
    assert!(matches!(replace_line_breaks("no breaks"), Cow::Borrowed(_)));
    assert_eq!(replace_line_breaks("é<br>ü<"), "é ü<");
}

#[test]
fn imdb_splits_at_anything_but_letters_digits_and_apostrophes() {
    let imdb = Tokenizer::Imdb;
    assert_eq!(
        cut(imdb, "It's <br />NOT bad; 'don't'"),
        ["it's", "not", "bad", "don't"]
    );
    assert_eq!(cut(imdb, "3.5 stars"), ["3", "5", "stars"]);
    // Chinese has no spaces, so a clause is one token: what `auto` avoids.
    assert_eq!(
        cut(imdb, "这家酒店的服务很好，房间很大！"),
        ["这家酒店的服务很好", "房间很大"]
    );
}

#[test]
fn unicode_keeps_words_of_spaced_scripts_and_cuts_ideographs_alone() {
    let unicode = Tokenizer::Unicode;
    let cases: [(&str, &[&str]); 9] = [
        (
            "这家酒店很好，房间很大！",
            &["这", "家", "酒", "店", "很", "好", "房", "间", "很", "大"],
        ),
        (
            "東京は素晴らしい。カタカナ",
            &["東", "京", "は", "素", "晴", "ら", "し", "い", "カタカナ"],
        ),
        (
            "서울은 아름다운 도시입니다",
            &["서울은", "아름다운", "도시입니다"],
        ),
        ("مرحبا بالعالم الجميل", &["مرحبا", "بالعالم", "الجميل"]),
        (
            "Привет, мир! Это ХОРОШО",
            &["привет", "мир", "это", "хорошо"],
        ),
        (
            "Die Straße ist schön, ÜBER alles",
            &["die", "straße", "ist", "schön", "über", "alles"],
        ),
        ("नमस्ते दुनिया", &["नमस्ते", "दुनिया"]),
        (
            "great 😀👍🏽 ❤️ love",
            &["great", "😀", "👍🏽", "❤\u{fe0f}", "love"],
        ),
        (
            "iPhone 12 真的好用，don't buy 3.5 stars",
            &[
                "iphone", "12", "真", "的", "好", "用", "don't", "buy", "3.5", "stars",
            ],
        ),
    ];
    for (text, tokens) in cases {
        assert_eq!(cut(unicode, text), tokens, "{text}");
    }
    // Thai has no word boundaries in UAX #29: a character (with its marks)
    // at a time.
    assert_eq!(
        cut(unicode, "ง่ายมาก"),
        ["ง\u{e48}", "า", "ย", "ม", "า", "ก"]
    );
    assert_eq!(cut(unicode, "Σ ΟΔΟΣ"), ["σ", "οδος"]);
}

#[test]
fn chars_makes_every_visible_character_a_token() {
    let chars = Tokenizer::Chars;
    assert_eq!(cut(chars, "很好！ Ok"), ["很", "好", "！", "o", "k"]);
    assert_eq!(cut(chars, "ง่าย 👍🏽"), ["ง\u{e48}", "า", "ย", "👍🏽"]);
    assert_eq!(cut(chars, "a<br />b"), ["a", "b"]);
}

#[test]
fn jieba_cuts_chinese_into_words_and_leaves_the_rest_to_unicode() {
    let jieba = Tokenizer::Jieba;
    assert_eq!(
        cut(jieba, "这家酒店的服务很好，房间很大！"),
        ["这家", "酒店", "的", "服务", "很", "好", "房间", "很大"]
    );
    assert_eq!(
        cut(jieba, "iPhone 12 真的很好用，don't buy 3.5 stars"),
        ["iphone", "12", "真的", "很", "好", "用", "don't", "buy", "3.5", "stars"]
    );
    assert_eq!(cut(jieba, "Привет, мир"), ["привет", "мир"]);
}

#[test]
fn every_rule_makes_nothing_of_an_empty_or_blank_text() {
    for tokenizer in Tokenizer::ALL {
        assert!(cut(tokenizer, "").is_empty());
        assert!(cut(tokenizer, " \t\n<br />").is_empty(), "{tokenizer}");
    }
}

#[test]
fn names_and_choices_parse_back_to_themselves() {
    for tokenizer in Tokenizer::ALL {
        assert_eq!(tokenizer.name().parse(), Ok(tokenizer));
        let given = TokenizerChoice::Given(tokenizer);
        assert_eq!(given.to_string().parse(), Ok(given));
        let json = serde_json::to_string(&given).unwrap();
        assert_eq!(
            serde_json::from_str::<TokenizerChoice>(&json).unwrap(),
            given
        );
    }
    assert_eq!("auto".parse(), Ok(TokenizerChoice::Auto));
    let err = "bert".parse::<TokenizerChoice>().unwrap_err();
    assert!(err.contains("auto, imdb, unicode, chars, jieba"), "{err}");
}

/// `auto`'s choice for one text.
fn auto(text: &str) -> AutoChoice {
    let mut letters = ScriptCounts::default();
    letters.add(text);
    letters.choose()
}

#[test]
fn auto_takes_unicode_for_scripts_written_without_spaces_and_imdb_otherwise() {
    use Tokenizer::{Imdb, Unicode};
    let cases = [
        ("这家酒店的服务很好", Unicode),
        ("東京は素晴らしい街です", Unicode),
        ("ภาษาไทยง่ายมาก", Unicode),
        ("iPhone 12 真的很好用，推荐购买", Unicode),
        ("ខ្ញុំស្រលាញ់អ្នក", Unicode),
        ("မြန်မာစာ", Unicode),
        ("A great film, truly great", Imdb),
        ("서울은 아름다운 도시입니다", Imdb),
        ("مرحبا بالعالم الجميل", Imdb),
        ("Привет, мир! Это хорошо", Imdb),
        ("Die Straße ist schön", Imdb),
        ("great 😀👍🏽", Imdb),
        (
            "a long English review that quotes one name, 李白, and goes on and on",
            Imdb,
        ),
        ("", Imdb),
    ];
    for (text, tokenizer) in cases {
        assert_eq!(auto(text).tokenizer, tokenizer, "{text}");
    }
}

#[test]
fn auto_says_why_and_what_else_to_try() {
    let chinese = auto("这家酒店的服务很好 ok");
    assert!(
        chinese
            .reason
            .contains("81.8% of the training texts' letters (Chinese characters 81.8%)"),
        "{}",
        chinese.reason
    );
    assert!(
        chinese.reason.contains("--tokenizer jieba"),
        "{}",
        chinese.reason
    );
    let english = auto("fine");
    assert!(
        english
            .reason
            .starts_with("none of the training texts' letters are"),
        "{}",
        english.reason
    );
}

#[test]
fn the_table_of_docs_tokenizers_md_holds() {
    let text = "服务很好，iPhone 12 don't 😀";
    let cases: [(Tokenizer, &[&str]); 4] = [
        (Tokenizer::Imdb, &["服务很好", "iphone", "12", "don't"]),
        (
            Tokenizer::Unicode,
            &["服", "务", "很", "好", "iphone", "12", "don't", "😀"],
        ),
        (
            Tokenizer::Chars,
            &[
                "服", "务", "很", "好", "，", "i", "p", "h", "o", "n", "e", "1", "2", "d", "o",
                "n", "'", "t", "😀",
            ],
        ),
        (
            Tokenizer::Jieba,
            &["服务", "很", "好", "iphone", "12", "don't", "😀"],
        ),
    ];
    for (tokenizer, tokens) in cases {
        assert_eq!(cut(tokenizer, text), tokens, "{tokenizer}");
    }
}
