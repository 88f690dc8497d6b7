//! The contract of docs/keras-parity.md, section 1, rule by rule: tokenising,
//! ranking, Keras ids, padding; plus the vocabulary file's format.
use super::{pad_sequences, Tokenizer, Vocabulary};

fn toks(text: &str) -> Vec<String> {
    Tokenizer::Imdb.tokenize(text)
}

#[test]
fn tokenize_contract_examples() {
    assert_eq!(toks("Don't!"), ["don't"]);
    assert_eq!(toks("'Hello'"), ["hello"]);
    assert_eq!(toks("10/10"), ["10", "10"]);
    assert_eq!(toks("well-known"), ["well", "known"]);
}

#[test]
fn tokenize_replaces_line_breaks_in_any_case() {
    assert_eq!(
        toks("one<br />two<BR/>three<Br>four<bR />five"),
        ["one", "two", "three", "four", "five"]
    );
    // Only whole line breaks go; the word "br" and other tags stay words.
    assert_eq!(toks("br <b>bold</b> <br"), ["br", "b", "bold", "b", "br"]);
}

#[test]
fn tokenize_trims_apostrophes_and_drops_empty_pieces() {
    assert_eq!(
        toks("''quoted'' ' '' rock'n'roll"),
        ["quoted", "rock'n'roll"]
    );
    // Only the ASCII apostrophe joins; a typographic one splits.
    assert_eq!(toks("don\u{2019}t"), ["don", "t"]);
    assert!(toks("  ...  !!! ").is_empty());
}

#[test]
fn tokenize_lowercases_unicode_and_keeps_unicode_alphanumerics() {
    assert_eq!(toks("ÉCOLE Straße NAÏVE"), ["école", "straße", "naïve"]);
    // Whole-text lower-casing: a final capital sigma becomes 'ς'.
    assert_eq!(toks("ΟΔΟΣ ΣΟΦΟΣ"), ["οδος", "σοφος"]);
    assert_eq!(toks("東京 ½ x²"), ["東京", "½", "x²"]);
    assert_eq!(toks("a\u{FFFD}b"), ["a", "b"]);
}

#[test]
fn vocabulary_ranks_by_count_then_code_points() {
    let v = Vocabulary::build(Tokenizer::Imdb, ["b a c", "A b z", "é z y"]);
    // Counts: a 2, b 2, z 2, c 1, y 1, é 1; 'é' (U+E9) sorts after 'z'.
    assert_eq!(v.tokens(), ["a", "b", "z", "c", "y", "é"]);
    assert_eq!(v.len(), 6);
    assert_eq!(v.rank("a"), Some(1));
    assert_eq!(v.rank("é"), Some(6));
    assert_eq!(v.rank("nope"), None);
}

#[test]
fn vocabulary_counts_training_texts_only() {
    let v = Vocabulary::build(Tokenizer::Imdb, ["good good bad"]);
    assert_eq!(v.tokens(), ["good", "bad"]);
    // A token seen only outside the training texts is out of vocabulary.
    assert_eq!(
        v.encode(Tokenizer::Imdb, "good unseen bad", 10_000),
        [1, 4, 2, 5]
    );
}

#[test]
fn encode_starts_with_1_and_maps_rank_r_to_r_plus_3() {
    let v = Vocabulary::build(Tokenizer::Imdb, ["the the the movie movie great"]);
    assert_eq!(
        v.encode(Tokenizer::Imdb, "great movie, the end", 10_000),
        [1, 6, 5, 4, 2]
    );
    assert_eq!(v.encode(Tokenizer::Imdb, "", 10_000), [1]);
}

#[test]
fn num_words_boundary_rank_9996_kept_rank_9997_oov() {
    // 10,000 tokens seen once each rank by code points: w0000 has rank 1.
    let text: String = (0..10_000).map(|i| format!("w{i:04} ")).collect();
    let v = Vocabulary::build(Tokenizer::Imdb, [text.as_str()]);
    assert_eq!(v.rank("w9995"), Some(9996));
    assert_eq!(
        v.encode(Tokenizer::Imdb, "w0000 w9995 w9996 w9999", 10_000),
        [1, 4, 9999, 2, 2]
    );
    assert_eq!(v.id("w9995", 10_000), 9999);
    assert_eq!(v.id("w9996", 10_000), 2);
    // A smaller num_words moves the boundary with it.
    assert_eq!(v.encode(Tokenizer::Imdb, "w0000 w0001", 5), [1, 4, 2]);
}

#[test]
fn pad_sequences_pads_in_front() {
    assert_eq!(pad_sequences(&[vec![1, 2, 3]], 5), [0, 0, 1, 2, 3]);
    assert_eq!(pad_sequences(&[vec![]], 3), [0, 0, 0]);
}

#[test]
fn pad_sequences_truncates_in_front_keeping_the_end() {
    assert_eq!(
        pad_sequences(&[vec![1, 2, 3, 4, 5, 6, 7]], 5),
        [3, 4, 5, 6, 7]
    );
    assert_eq!(pad_sequences(&[vec![1, 2, 3]], 3), [1, 2, 3]);
}

#[test]
fn pad_sequences_is_row_major() {
    let rows = [vec![1, 9], vec![1, 8, 7, 6], vec![1]];
    assert_eq!(pad_sequences(&rows, 3), [0, 1, 9, 8, 7, 6, 0, 0, 1]);
    assert!(pad_sequences(&[], 100).is_empty());
}

#[test]
fn vocabulary_file_round_trips_one_token_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vocab.txt");
    let v = Vocabulary::build(Tokenizer::Imdb, ["b a c a don't école"]);
    v.save(&path).unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "a\nb\nc\ndon't\nécole\n"
    );
    assert_eq!(Vocabulary::load(&path).unwrap(), v);
    // Atomic: only the final file is left, no temporary beside it.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn vocabulary_load_refuses_damaged_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vocab.txt");
    for (text, why) in [
        ("a\nb\na\n", "twice"),
        ("a\nb", "not terminated"),
        ("a\n\nb\n", "empty"),
    ] {
        std::fs::write(&path, text).unwrap();
        let err = format!("{:#}", Vocabulary::load(&path).unwrap_err());
        assert!(err.contains(why) && err.contains("vocab.txt"), "{err}");
    }
    let err = format!(
        "{:#}",
        Vocabulary::load(&dir.path().join("missing.txt")).unwrap_err()
    );
    assert!(err.contains("missing.txt"), "{err}");
}

/// `encode_last` keeps what pre-truncation keeps, whatever the cut meets:
/// line breaks cut in two, final sigmas, apostrophes, tabs, other rules.
#[test]
fn encode_last_gives_the_padded_rows_of_encode() {
    const PIECES: &[&str] = &[
        "good",
        "bad",
        "<br />",
        "<BR/>",
        "<br>",
        "ΣΑΣ",
        "Σ",
        "don't",
        "'quoted'",
        "-",
        "İstanbul",
        "\t",
        "\n",
        "  ",
        "film.",
        "a",
        "z9",
        "日本語",
        "''",
        "ς",
    ];
    let mut state = 7u64;
    let mut next = |n: usize| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as usize % n
    };
    let texts: Vec<String> = (0..400)
        .map(|_| {
            let words = next(300);
            (0..words)
                .map(|_| PIECES[next(PIECES.len())])
                .collect::<Vec<_>>()
                .join(if next(2) == 0 { " " } else { "" })
        })
        .collect();
    for tokenizer in [Tokenizer::Imdb, Tokenizer::Unicode, Tokenizer::Chars] {
        let vocab = Vocabulary::build(tokenizer, texts.iter().take(50).map(String::as_str));
        for maxlen in [1, 3, 10, 40, 100] {
            for text in &texts {
                let full = vocab.encode(tokenizer, text, 12);
                let last = vocab.encode_last(tokenizer, text, 12, maxlen);
                assert_eq!(
                    pad_sequences(&[last], maxlen),
                    pad_sequences(&[full], maxlen),
                    "{tokenizer} maxlen {maxlen}: {text:?}"
                );
            }
        }
    }
}
