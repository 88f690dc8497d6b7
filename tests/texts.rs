//! A user's own texts (`data::texts`): every format gives the arrays of the
//! IMDB rules, labels become classes, the cache notices a changed file, and
//! every bad input is an error naming the file, the line and the problem,
//! with nothing cached.
mod common;

use std::path::{Path, PathBuf};

use common::{read_npy_i32, run_cli};
use gru_imdb::data::texts::{
    load_texts, Column, EmptyTexts, Header, TableOptions, TextFiles, TextsConfig, TextsDataset,
    MAX_CLASSES,
};
use gru_imdb::data::{pad_sequences, Tokenizer, TokenizerChoice, Vocabulary};

/// Texts and labels used in several formats.
const ROWS: [(&str, &str); 6] = [
    ("A great film, truly great", "pos"),
    ("Awful. Just \"awful\", and long", "neg"),
    ("great acting<br />great story", "pos"),
    ("so boring", "neg"),
    ("It's not bad; it's good", "pos"),
    ("Une œuvre ÉNORME", "neutral"),
];

fn config(dir: &Path, train: &Path, test: Option<&Path>) -> TextsConfig {
    TextsConfig {
        data_dir: dir.join("cache"),
        files: TextFiles {
            train_file: train.to_path_buf(),
            test_file: test.map(Path::to_path_buf),
            table: TableOptions::default(),
            empty_texts: EmptyTexts::Warn,
            tokenizer: TokenizerChoice::Auto,
        },
        max_features: 20,
        maxlen: 6,
        progress: false,
    }
}

fn write(dir: &Path, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

fn csv_of(rows: &[(&str, &str)]) -> String {
    let mut out = String::from("text,label\n");
    for (text, label) in rows {
        out.push_str(&format!("\"{}\",{label}\n", text.replace('"', "\"\"")));
    }
    out
}

/// What the IMDB rules make of `ROWS`: vocabulary from the training texts,
/// `[1, ids...]`, pre-padded and pre-truncated.
fn expected_x(train: &[&str], texts: &[&str], num_words: usize, maxlen: usize) -> Vec<i32> {
    let vocab = Vocabulary::build(Tokenizer::Imdb, train.iter().copied());
    let seqs: Vec<Vec<i32>> = texts
        .iter()
        .map(|t| vocab.encode(Tokenizer::Imdb, t, num_words))
        .collect();
    pad_sequences(&seqs, maxlen)
}

fn load(cfg: &TextsConfig) -> TextsDataset {
    load_texts(cfg).unwrap_or_else(|e| panic!("{e:#}"))
}

#[test]
fn csv_tsv_jsonl_and_class_folders_give_the_arrays_of_the_imdb_rules() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let csv = write(dir, "t.csv", csv_of(&ROWS));
    let tsv_rows: String = ROWS
        .iter()
        .map(|(t, l)| format!("{l}\t\"{}\"\n", t.replace('"', "\"\"")))
        .collect();
    let tsv = write(dir, "t.tsv", format!("label\ttext\n{tsv_rows}"));
    let jsonl_rows: String = ROWS
        .iter()
        .map(|(t, l)| {
            format!(
                "{}\n\n",
                serde_json::json!({"label": l, "text": t, "id": 3})
            )
        })
        .collect();
    let jsonl = write(dir, "t.jsonl", jsonl_rows);
    // Folders are read class by class, so their rows come grouped.
    let folders = dir.join("folders");
    let mut grouped: Vec<(usize, &(&str, &str))> = ROWS.iter().enumerate().collect();
    grouped.sort_by_key(|(i, (_, l))| (*l, *i));
    for (i, (text, label)) in &grouped {
        std::fs::create_dir_all(folders.join(label)).unwrap();
        write(&folders.join(label), &format!("{i}_0.txt"), text);
    }
    write(&folders, "README.md", "not a class");

    let texts: Vec<&str> = ROWS.iter().map(|r| r.0).collect();
    let want = expected_x(&texts, &texts, 20, 6);
    for file in [&csv, &tsv, &jsonl] {
        let got = load(&config(dir, file, Some(file)));
        assert_eq!(got.class_names, ["neg", "neutral", "pos"], "{file:?}");
        assert_eq!(got.dataset.train.x, want, "{file:?}");
        assert_eq!(got.dataset.train.y, [2, 0, 2, 0, 2, 1], "{file:?}");
        assert_eq!(got.dataset.test, got.dataset.train, "{file:?}");
        assert_eq!(
            got.dataset.vocab,
            Vocabulary::build(Tokenizer::Imdb, texts.iter().copied())
        );
    }
    let got = load(&config(dir, &folders, None));
    let grouped_texts: Vec<&str> = grouped.iter().map(|(_, r)| r.0).collect();
    assert_eq!(
        got.dataset.train.x,
        expected_x(&texts, &grouped_texts, 20, 6)
    );
    assert_eq!(got.dataset.train.y, [0, 0, 1, 2, 2, 2]);
    assert!(got.dataset.test.is_empty());
}

#[test]
fn the_vocabulary_comes_from_the_training_file_only() {
    let tmp = tempfile::tempdir().unwrap();
    let train = write(tmp.path(), "train.csv", csv_of(&ROWS[..4]));
    let test = write(
        tmp.path(),
        "test.csv",
        csv_of(&[("unseen words great", "neg")]),
    );
    let got = load(&config(tmp.path(), &train, Some(&test)));
    let train_texts: Vec<&str> = ROWS[..4].iter().map(|r| r.0).collect();
    assert_eq!(
        got.dataset.test.x,
        expected_x(&train_texts, &["unseen words great"], 20, 6)
    );
    assert_eq!(got.dataset.test.y, [0]);
}

#[test]
fn integer_labels_are_classes_in_numeric_order() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write(
        tmp.path(),
        "stars.csv",
        "review,stars\na,10\nb,2\nc,1\nd,2\n",
    );
    let got = load(&config(tmp.path(), &file, None));
    assert_eq!(got.class_names, ["1", "2", "10"]);
    assert_eq!(got.dataset.train.y, [2, 1, 0, 1]);
    // JSON numbers and strings are the same labels.
    let jsonl = write(
        tmp.path(),
        "stars.jsonl",
        "{\"text\":\"a\",\"label\":10}\n{\"text\":\"b\",\"label\":\"2\"}\n",
    );
    let got = load(&config(tmp.path(), &jsonl, None));
    assert_eq!(got.class_names, ["2", "10"]);
    assert_eq!(got.dataset.train.y, [1, 0]);
}

#[test]
fn columns_are_found_by_name_by_position_or_as_the_only_two() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let wide = write(
        dir,
        "wide.csv",
        "id,body,verdict\n1,good film,yes\n2,bad film,no\n",
    );
    let mut cfg = config(dir, &wide, None);
    let err = format!("{:#}", load_texts(&cfg).unwrap_err());
    assert!(err.contains("--text-column and --label-column"), "{err}");
    cfg.files.table.text_column = Some(Column::Name("body".into()));
    cfg.files.table.label_column = Some(Column::Position(2));
    let by_name = load(&cfg);
    cfg.files.table.label_column = Some(Column::Name("stars".into()));
    let err = format!("{:#}", load_texts(&cfg).unwrap_err());
    assert!(
        err.contains("wide.csv")
            && err.contains("no column 'stars' in the header (its columns: id, body, verdict)"),
        "{err}"
    );
    assert_eq!(by_name.class_names, ["no", "yes"]);
    assert_eq!(by_name.dataset.train.y, [1, 0]);

    let two = write(dir, "two.csv", "good film,yes\nbad film,no\n");
    let mut cfg = config(dir, &two, None);
    cfg.files.table.header = Header::Absent;
    let headless = load(&cfg);
    assert_eq!(headless.dataset, by_name.dataset);
    cfg.files.table.delimiter = Some(b';');
    let err = format!("{:#}", load_texts(&cfg).unwrap_err());
    assert!(err.contains("1 columns"), "{err}");
}

/// The error of loading `cfg`, which must also leave no cache behind.
fn refused(cfg: &TextsConfig) -> String {
    let err = format!("{:#}", load_texts(cfg).expect_err("must be refused"));
    let left: Vec<_> = std::fs::read_dir(&cfg.data_dir)
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "cached from a failed file: {left:?}");
    err
}

fn assert_has(err: &str, needles: &[&str]) {
    for n in needles {
        assert!(err.contains(n), "'{n}' missing from: {err}");
    }
}

#[test]
fn every_bad_table_is_refused_with_its_file_line_and_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let cases: [(&str, &[u8], &[&str]); 9] = [
        (
            "missing.csv",
            b"body,stars,id\na,1,7\n",
            &[
                "missing.csv",
                "3 columns",
                "--text-column and --label-column",
            ],
        ),
        (
            "few.csv",
            b"text,label\na,1\nb\nc,0\n",
            &["few.csv", "line 3", "1 fields, fewer than the 2"],
        ),
        (
            "quote.csv",
            b"text,label\na,1\n\"b,0\nc,1\n",
            &["quote.csv", "line 3", "quote is never closed"],
        ),
        (
            "utf8.csv",
            b"text,label\na,1\nb\xff,0\n",
            &["utf8.csv", "line 3", "not valid UTF-8"],
        ),
        (
            "label.csv",
            b"text,label\na,1\nb, \n",
            &["label.csv", "line 3", "label is empty"],
        ),
        (
            "one.csv",
            b"text,label\na,1\nb,1\n",
            &["one.csv", "'1'", "at least two classes"],
        ),
        ("none.csv", b"text,label\n", &["none.csv", "no rows"]),
        ("empty.csv", b"", &["empty.csv", "no rows"]),
        ("what.txt", b"a,1\n", &["what.txt", "--delimiter"]),
    ];
    for (name, content, needles) in cases {
        let file = write(dir, name, content);
        assert_has(&refused(&config(dir, &file, None)), needles);
    }
}

#[test]
fn every_bad_json_line_is_refused_with_its_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let cases: [(&[u8], &[&str]); 6] = [
        (
            b"{\"text\":\"a\",\"label\":1}\n{\"text\":\"b\"}\n",
            &["line 2", "label is empty or missing"],
        ),
        (
            b"{\"text\":\"a\",\"label\":1}\n{\"label\":0}\n",
            &["line 2", "no key 'text'"],
        ),
        (
            b"{\"text\":\"a\",\"label\":1}\n{\"text\":\"b\",\"label\":0.5}\n",
            &["line 2", "a number"],
        ),
        (
            b"{\"text\":\"a\",\"label\":1}\n[1]\n",
            &["line 2", "not a JSON object"],
        ),
        (
            b"{\"text\":\"a\",\"label\":1}\n{\"text\":\"b\xfe\",\"label\":0}\n",
            &["line 2", "UTF-8"],
        ),
        (
            b"{\"text\":3,\"label\":1}\n",
            &["line 1", "'text' is a number"],
        ),
    ];
    for (content, needles) in cases {
        let file = write(dir, "bad.jsonl", content);
        assert_has(
            &refused(&config(dir, &file, None)),
            &[&["bad.jsonl"], needles].concat(),
        );
    }
}

#[test]
fn a_class_folder_with_a_bad_file_is_refused_by_its_name() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("train");
    for class in ["neg", "pos"] {
        std::fs::create_dir_all(root.join(class)).unwrap();
        write(&root.join(class), "1_1.txt", "fine");
    }
    write(&root.join("pos"), "2_9.txt", b"bad \xc3");
    assert_has(
        &refused(&config(tmp.path(), &root, None)),
        &["2_9.txt", "not valid UTF-8"],
    );
    std::fs::create_dir_all(root.join("unsup")).unwrap();
    assert_has(
        &refused(&config(tmp.path(), &root, None)),
        &["unsup", "holds no .txt files"],
    );
}

#[test]
fn a_label_past_the_last_class_or_a_missing_file_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let rows: String = (0..=MAX_CLASSES)
        .map(|i| format!("text {i},{i}\n"))
        .collect();
    let file = write(tmp.path(), "ids.csv", format!("text,label\n{rows}"));
    assert_has(
        &refused(&config(tmp.path(), &file, None)),
        &[
            "ids.csv",
            &format!("line {}", MAX_CLASSES + 2),
            "past the 256",
        ],
    );
    let absent = tmp.path().join("absent.csv");
    assert_has(
        &refused(&config(tmp.path(), &absent, None)),
        &["--train-file", "absent.csv", "no such file"],
    );
}

#[test]
fn a_test_label_unseen_in_training_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let train = write(tmp.path(), "train.csv", csv_of(&ROWS[..4]));
    let test = write(
        tmp.path(),
        "test.csv",
        csv_of(&[("x", "pos"), ("y", "meh")]),
    );
    assert_has(
        &refused(&config(tmp.path(), &train, Some(&test))),
        &[
            "test file",
            "test.csv",
            "line 3",
            "'meh'",
            "not among the training",
        ],
    );
}

#[test]
fn empty_texts_are_kept_and_counted_or_refused_when_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write(tmp.path(), "e.csv", "text,label\na,1\n  ,0\n,0\n");
    let mut cfg = config(tmp.path(), &file, None);
    let kept = load(&cfg);
    assert_eq!(kept.dataset.train.len(), 3);
    assert_eq!(&kept.dataset.train.x[6..12], [0, 0, 0, 0, 0, 1]);
    cfg.files.empty_texts = EmptyTexts::Refuse;
    cfg.data_dir = tmp.path().join("refusing");
    assert_has(&refused(&cfg), &["e.csv", "line 3", "text is empty"]);
    // The warning is counted, on stderr.
    let (code, _, stderr) = run_cli(&[
        "data",
        "-q",
        "--data-dir",
        tmp.path().join("cli").to_str().unwrap(),
        "--train-file",
        file.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("warning: 2 empty text(s) in the training file"),
        "{stderr}"
    );
}

#[test]
fn the_second_load_comes_from_the_cache_and_a_changed_file_is_noticed() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write(tmp.path(), "t.csv", csv_of(&ROWS));
    let cfg = config(tmp.path(), &file, None);
    let first = load(&cfg);
    let cached = std::fs::read_dir(&cfg.data_dir).unwrap().count();
    assert_eq!(cached, 2, "arrays and class names");
    assert_eq!(load(&cfg), first);
    write(tmp.path(), "t.csv", csv_of(&ROWS[..5]));
    let changed = load(&cfg);
    assert_eq!(changed.dataset.train.len(), 5);
    assert_eq!(changed.class_names, ["neg", "pos"]);
    let other_shape = TextsConfig {
        maxlen: 3,
        ..cfg.clone()
    };
    assert_eq!(load(&other_shape).dataset.train.maxlen, 3);
}

#[test]
fn data_export_writes_the_arrays_and_the_class_names() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write(
        tmp.path(),
        "t.jsonl",
        "{\"text\":\"good\",\"label\":\"b\"}\n{\"text\":\"bad\",\"label\":\"a\"}\n",
    );
    let export = tmp.path().join("export");
    let s = |p: &Path| p.to_str().unwrap().to_owned();
    let (code, stdout, stderr) = run_cli(&[
        "data",
        "-q",
        "--data-dir",
        &s(&tmp.path().join("d")),
        "--train-file",
        &s(&file),
        "--test-file",
        &s(&file),
        "--maxlen",
        "3",
        "--export",
        &s(&export),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("y_train labels: 1 a, 1 b"), "{stdout}");
    assert!(stdout.contains("(from text files)"), "{stdout}");
    assert_eq!(
        read_npy_i32(&export.join("y_train.npy")),
        (vec![2], vec![1, 0])
    );
    assert_eq!(read_npy_i32(&export.join("x_test.npy")).0, vec![2, 3]);
    let names = std::fs::read_to_string(export.join("labels.json")).unwrap();
    assert_eq!(names.trim(), r#"["a","b"]"#);
}

#[test]
fn a_bad_file_on_the_command_line_exits_1_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write(tmp.path(), "bad.tsv", "text\tlabel\nok\t1\nno label here\n");
    let (code, _, stderr) = run_cli(&[
        "data",
        "-q",
        "--data-dir",
        tmp.path().join("d").to_str().unwrap(),
        "--train-file",
        file.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_has(&stderr, &["bad.tsv", "line 3", "fewer than the 2"]);
}

#[test]
fn data_refuses_a_maxlen_too_long_for_memory_before_padding() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write(tmp.path(), "t.csv", csv_of(&ROWS));
    // 10^13 ids a text: one padded text alone is more memory than any
    // machine has, so padding before the check aborts or is killed.
    let (code, _, stderr) = run_cli(&[
        "data",
        "-q",
        "--data-dir",
        tmp.path().join("d").to_str().unwrap(),
        "--train-file",
        file.to_str().unwrap(),
        "--maxlen",
        "10000000000000",
    ]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_has(
        &stderr,
        &[
            "6 texts padded to --maxlen 10000000000000",
            "lower --maxlen",
        ],
    );
}

#[test]
fn the_archive_and_a_train_file_are_not_given_together() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write(tmp.path(), "t.csv", csv_of(&ROWS));
    let (code, _, stderr) = run_cli(&[
        "data",
        "-q",
        "--train-file",
        file.to_str().unwrap(),
        "--data-url",
        "aclImdb_v1.tar.gz",
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("'--train-file <FILE>' cannot be used with '--data-url"),
        "{stderr}"
    );
}

#[test]
fn labels_that_are_the_same_number_are_one_class() {
    let tmp = tempfile::tempdir().unwrap();
    let train = write(
        tmp.path(),
        "train.csv",
        "text,label\na,1\nb,1.0\nc,0\nd,0.0\ne,1\n",
    );
    let test = write(tmp.path(), "test.csv", "text,label\nx,1.00\ny,0\n");
    let got = load(&config(tmp.path(), &train, Some(&test)));
    assert_eq!(got.class_names, ["0", "1"]);
    assert_eq!(got.dataset.train.y, [1, 1, 0, 0, 1]);
    assert_eq!(got.dataset.test.y, [1, 0]);
    // How they were read is said, also when the arrays come from the cache.
    let s = |p: &Path| p.to_str().unwrap().to_owned();
    let data = s(&tmp.path().join("cli"));
    let args = [
        "data",
        "-q",
        "--data-dir",
        &data,
        "--train-file",
        &s(&train),
        "--test-file",
        &s(&test),
    ];
    for _ in 0..2 {
        let (code, stdout, stderr) = run_cli(&args);
        assert_eq!(code, Some(0), "{stderr}");
        assert!(
            stderr.contains(
                "note: labels 0 and 0.0 read as the same class 0; labels 1 and 1.0 \
                 read as the same class 1; test label 1.00 read as the class 1\n"
            ),
            "{stderr}"
        );
        assert!(stdout.contains("y_train labels: 2 0, 3 1"), "{stdout}");
    }
}

#[test]
fn a_test_label_finds_the_training_class_of_the_same_number() {
    let tmp = tempfile::tempdir().unwrap();
    let train = write(tmp.path(), "train.csv", "text,label\na,1\nb,2\n");
    let test = write(tmp.path(), "test.csv", "text,label\nx,2.0\ny,1e0\n");
    let got = load(&config(tmp.path(), &train, Some(&test)));
    assert_eq!(got.class_names, ["1", "2"], "no two training labels merged");
    assert_eq!(got.dataset.test.y, [1, 0]);
    // Strings are not numbers: a test label must be one of them as it is.
    let train = write(tmp.path(), "strings.csv", "text,label\na,1\nb,pos\n");
    let test = write(tmp.path(), "one.csv", "text,label\nx,1.0\n");
    let mut cfg = config(tmp.path(), &train, Some(&test));
    cfg.data_dir = tmp.path().join("strings");
    assert_has(&refused(&cfg), &["one.csv", "line 2", "'1.0' is not among"]);
}

/// Each case of `every_bad_table_is_refused_with_its_file_line_and_problem`
/// that names a line, with CRLF line ends, and after a blank line.
#[test]
fn row_errors_of_crlf_files_and_after_blank_lines_name_their_own_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let cases: [(&str, &str); 4] = [
        ("text,label\na,1\nb\nc,0\n", "1 fields, fewer than the 2"),
        ("text,label\na,1\n\"b,0\nc,1\n", "quote is never closed"),
        ("text,label\na,1\nb\u{0},0\n", "NUL byte"),
        ("text,label\na,1\nb, \n", "label is empty"),
    ];
    for (lf, problem) in cases {
        let crlf = lf.replace('\n', "\r\n");
        let blank = lf.replacen("a,1\n", "\na,1\n\n", 1);
        for (name, content, line) in [
            ("lf.csv", lf.to_owned(), "line 3:"),
            ("crlf.csv", crlf, "line 3:"),
            ("blank.csv", blank, "line 5:"),
        ] {
            let file = write(dir, name, content);
            let err = refused(&config(dir, &file, None));
            assert_has(&err, &[name, line, problem]);
        }
    }
    // A record over several lines is named by its first.
    let file = write(dir, "multi.csv", "text,label\r\n\"a\r\nb\",1\r\nc,1,2\r\n");
    assert_has(
        &refused(&config(dir, &file, None)),
        &["multi.csv", "line 4:", "more than the 2 of line 1"],
    );
    let jsonl = write(
        dir,
        "crlf.jsonl",
        "{\"text\":\"a\",\"label\":1}\r\n\r\n{\"text\":\"b\"}\r\n",
    );
    assert_has(
        &refused(&config(dir, &jsonl, None)),
        &["crlf.jsonl", "line 3:", "label is empty or missing"],
    );
}

#[test]
fn a_key_given_twice_in_a_json_line_is_refused_with_its_line() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write(
        tmp.path(),
        "twice.jsonl",
        "{\"text\":\"a\",\"label\":1}\n{\"text\":\"b\",\"label\":0,\"label\":1}\n",
    );
    assert_has(
        &refused(&config(tmp.path(), &file, None)),
        &["twice.jsonl", "line 2:", "the key 'label' is given twice"],
    );
}

#[test]
fn a_nul_byte_in_a_text_is_refused_with_its_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let jsonl = write(
        dir,
        "nul.jsonl",
        "{\"text\":\"a\",\"label\":1}\n{\"text\":\"b\\u0000\",\"label\":0}\n",
    );
    assert_has(
        &refused(&config(dir, &jsonl, None)),
        &[
            "nul.jsonl",
            "line 2:",
            "the text holds a NUL byte",
            "UTF-16",
        ],
    );
    // UTF-16 text of ASCII is valid UTF-8, NUL every other byte.
    let root = dir.join("folders");
    for class in ["neg", "pos"] {
        std::fs::create_dir_all(root.join(class)).unwrap();
        write(&root.join(class), "1_1.txt", "fine");
    }
    write(&root.join("pos"), "2_9.txt", b"g\0o\0o\0d\0");
    assert_has(
        &refused(&config(dir, &root, None)),
        &["2_9.txt", "NUL byte"],
    );
}

#[cfg(unix)]
#[test]
fn hidden_folders_are_no_classes_and_links_out_of_the_folder_are_refused() {
    use std::os::unix::fs::symlink;
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("train");
    for class in ["neg", "pos", ".ipynb_checkpoints"] {
        std::fs::create_dir_all(root.join(class)).unwrap();
        write(&root.join(class), "1_1.txt", "fine");
    }
    // A link that stays inside the folder is followed.
    symlink(root.join("pos/1_1.txt"), root.join("pos/2_1.txt")).unwrap();
    let got = load(&config(tmp.path(), &root, None));
    assert_eq!(got.class_names, ["neg", "pos"]);
    assert_eq!(got.dataset.train.len(), 3);

    let outside = tmp.path().join("elsewhere");
    std::fs::create_dir_all(&outside).unwrap();
    write(&outside, "secret.txt", "not the folder's own");
    symlink(outside.join("secret.txt"), root.join("neg/3_1.txt")).unwrap();
    let mut cfg = config(tmp.path(), &root, None);
    cfg.data_dir = tmp.path().join("file-link");
    assert_has(
        &refused(&cfg),
        &["3_1.txt", "is a symbolic link to", "secret.txt", "outside"],
    );
    std::fs::remove_file(root.join("neg/3_1.txt")).unwrap();
    symlink(&outside, root.join("more")).unwrap();
    cfg.data_dir = tmp.path().join("folder-link");
    assert_has(
        &refused(&cfg),
        &["more", "is a symbolic link to", "elsewhere", "outside"],
    );
}
