//! Texts in any language: a run records the rule its texts were cut by, and
//! every command that reads the run cuts by it; `auto` takes `unicode` for
//! Chinese and `imdb` for English; a two-column file is read the right way
//! round whatever its order.
mod common;

use std::path::Path;

use common::{run_cli, Lcg};
use gru_imdb::data::texts::{load_texts, EmptyTexts, TableOptions, TextFiles, TextsConfig};
use gru_imdb::data::{pad_sequences, Tokenizer, TokenizerChoice, START_ID};
use gru_imdb::device::DeviceAndThreads;
use gru_imdb::run_dir::{RunDir, WeightsChoice};
use gru_imdb::trained::TrainedModel;
use tch::{Kind, Tensor};

const PRAISE: [&str; 5] = [
    "房间很干净",
    "服务很好",
    "非常满意",
    "下次还会再来",
    "性价比很高",
];
const COMPLAINTS: [&str; 5] = ["房间很脏", "服务太差", "非常失望", "再也不来了", "隔音很差"];
const FILLER: [&str; 6] = ["酒店", "前台", "早餐", "位置", "这次", "总体来说"];

/// Hotel reviews in Chinese, `label,review` (the label first), from a fixed
/// LCG so the set is the same every time.
fn chinese_reviews(path: &Path, rows: usize, seed: u64) {
    let mut rng = Lcg::seeded(seed);
    let mut next = |n: usize| rng.below(n);
    let mut csv = String::from("label,review\n");
    for _ in 0..rows {
        let (label, phrases) = match next(2) {
            0 => ("差评", COMPLAINTS),
            _ => ("好评", PRAISE),
        };
        let review = [
            FILLER[next(FILLER.len())],
            phrases[next(5)],
            phrases[next(5)],
            FILLER[next(FILLER.len())],
        ]
        .join("，");
        csv.push_str(&format!("{label},{review}！\n"));
    }
    std::fs::write(path, csv).unwrap();
}

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_owned()
}

/// The probabilities `predict --json` prints for `texts`, in order.
fn predicted(run: &Path, texts: &[&str]) -> Vec<f64> {
    let mut args = vec!["predict", "--run-dir", run.to_str().unwrap(), "--json"];
    args.extend(texts);
    let (code, stdout, stderr) = run_cli(&args);
    assert_eq!(code, Some(0), "{stderr}");
    stdout
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            v["probability"].as_f64().unwrap()
        })
        .collect()
}

/// The positive class's probability for `texts`, from ids computed here:
/// the texts cut by `tokenizer`, looked up in the run's vocabulary, padded.
fn by_hand(trained: &TrainedModel, tokenizer: Tokenizer, texts: &[&str]) -> Vec<f64> {
    let num_words = trained.config.model.max_features;
    let rows: Vec<Vec<i32>> = texts
        .iter()
        .map(|text| {
            let tokens = tokenizer.tokenize(text);
            let ids = tokens.iter().map(|t| trained.vocab.id(t, num_words));
            std::iter::once(START_ID).chain(ids).collect()
        })
        .collect();
    let maxlen = trained.config.maxlen;
    let x = Tensor::from_slice(&pad_sequences(&rows, maxlen))
        .view([texts.len() as i64, maxlen as i64])
        .to_kind(Kind::Int64);
    let rows = trained.model.inference().probabilities_by_row(&x);
    rows.iter().map(|row| f64::from(row[0])).collect()
}

#[test]
fn a_run_trained_with_jieba_predicts_from_the_ids_jieba_cuts() {
    let tmp = tempfile::tempdir().unwrap();
    let (train, test) = (tmp.path().join("train.csv"), tmp.path().join("test.csv"));
    chinese_reviews(&train, 400, 1);
    chinese_reviews(&test, 100, 2);
    let mut with_markup = std::fs::read_to_string(&test).unwrap();
    with_markup.push_str("好评,\"<b>服务很好</b> & 满意\"\n");
    std::fs::write(&test, with_markup).unwrap();
    let run = tmp.path().join("run");
    let (data, run_arg) = (s(&tmp.path().join("data")), s(&run));
    let train_args = [
        "--train-file",
        &s(&train),
        "--test-file",
        &s(&test),
        "--tokenizer",
        "jieba",
        "--data-dir",
        &data,
        "--run-dir",
        &run_arg,
        "--device",
        "cpu",
        "--verbose",
        "2",
        "--epochs",
        "2",
        "--maxlen",
        "16",
        "--embedding-dim",
        "8",
        "--units",
        "8",
        "--max-features",
        "40",
    ];
    let (code, _, stderr) = run_cli(&train_args);
    assert_eq!(code, Some(0), "{stderr}");
    for said in [
        "texts from column 'review' and labels from column 'label'",
        "tokenizer: jieba\n",
        "vocabulary: ",
        "cover 100.0% of the training tokens",
        "lengths: ",
    ] {
        assert!(stderr.contains(said), "no '{said}' in:\n{stderr}");
    }
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["texts"]["tokenizer"], "jieba");
    assert_eq!(config["texts"]["files"]["tokenizer"], "jieba");

    let texts = ["服务很好，非常满意", "房间很脏，非常失望！", "前台 ok"];
    let trained = TrainedModel::load(
        &RunDir::open(&run),
        WeightsChoice::Last,
        &DeviceAndThreads::cpu(1),
    )
    .unwrap();
    let jieba = by_hand(&trained, Tokenizer::Jieba, &texts);
    assert_eq!(predicted(&run, &texts), jieba);
    // The texts cut another way are other ids, and give other answers: the
    // equality above is the tokenizer's doing.
    assert_ne!(by_hand(&trained, Tokenizer::Imdb, &texts), jieba);

    // The report shows the user's test texts as they are, escaped.
    let out = tmp.path().join("report.html");
    let (code, _, stderr) = run_cli(&["report", &run_arg, "-o", &s(&out)]);
    assert_eq!(code, Some(0), "{stderr}");
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(
        html.contains("<td>tokenizer</td><td>jieba</td>"),
        "the report names the tokenizer"
    );
    assert!(
        html.contains("101 (好评"),
        "the test texts and their classes"
    );
    assert!(
        !html.contains("<b>服务"),
        "a text's markup is shown, not obeyed"
    );
    if html.contains("服务很好</b>") {
        panic!("unescaped text in the report");
    }

    // A resumed run is cut the same way, and may not be cut another.
    let (code, _, stderr) = run_cli(&[
        "train",
        "--resume",
        &run_arg,
        "--epochs",
        "3",
        "--tokenizer",
        "chars",
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--tokenizer"), "{stderr}");
    let (code, _, stderr) = run_cli(&["train", "--resume", &run_arg, "--epochs", "3"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("tokenizer: jieba\n"), "{stderr}");
}

fn texts_config(dir: &Path, train: &Path, tokenizer: TokenizerChoice) -> TextsConfig {
    TextsConfig {
        data_dir: dir.join("cache"),
        files: TextFiles {
            train_file: train.to_path_buf(),
            test_file: None,
            table: TableOptions::default(),
            empty_texts: EmptyTexts::Warn,
            tokenizer,
        },
        max_features: 1000,
        maxlen: 20,
        progress: false,
    }
}

#[test]
fn auto_cuts_chinese_by_unicode_and_english_by_imdb() {
    let tmp = tempfile::tempdir().unwrap();
    let chinese = tmp.path().join("zh.csv");
    chinese_reviews(&chinese, 50, 3);
    let english = tmp.path().join("en.csv");
    std::fs::write(
        &english,
        "review,sentiment\nA great film,pos\nso boring,neg\n",
    )
    .unwrap();
    let cut =
        |file: &Path| load_texts(&texts_config(tmp.path(), file, TokenizerChoice::Auto)).unwrap();
    let zh = cut(&chinese);
    assert_eq!(zh.tokenizer, Tokenizer::Unicode);
    // One token per character: the vocabulary is the reviews' characters.
    assert!(zh.dataset.vocab.rank("房").is_some() && zh.dataset.vocab.rank("房间").is_none());
    // Read the right way round: `label,review`.
    assert_eq!(zh.class_names, ["好评", "差评"]);
    let en = cut(&english);
    assert_eq!(en.tokenizer, Tokenizer::Imdb);
    assert_eq!(en.class_names, ["neg", "pos"]);
    assert_eq!(
        en.dataset.vocab.tokens(),
        ["a", "boring", "film", "great", "so"]
    );
}

#[test]
fn data_says_which_tokenizer_auto_took_and_warns_of_a_coarse_vocabulary() {
    let tmp = tempfile::tempdir().unwrap();
    let chinese = tmp.path().join("zh.csv");
    chinese_reviews(&chinese, 200, 4);
    let (file, data) = (s(&chinese), s(&tmp.path().join("data")));
    let run = |tokenizer: &str| {
        let (code, _, stderr) = run_cli(&[
            "data",
            "--train-file",
            &file,
            "--data-dir",
            &data,
            "--tokenizer",
            tokenizer,
            "--max-features",
            "10",
        ]);
        assert_eq!(code, Some(0), "{stderr}");
        stderr
    };
    let auto = run("auto");
    assert!(auto.contains("tokenizer: unicode (auto: 100.0% of the training texts' letters (Chinese characters 100.0%) are in scripts written without spaces"), "{auto}");
    assert!(auto.contains("--tokenizer jieba"), "{auto}");
    // Whole clauses as tokens, and room for 6 of them: most tokens are OOV.
    let imdb = run("imdb");
    assert!(imdb.contains("tokenizer: imdb\n"), "{imdb}");
    assert!(
        imdb.contains("warning: the vocabulary covers only"),
        "{imdb}"
    );
    assert!(imdb.contains("try a larger --max-features"), "{imdb}");
}
