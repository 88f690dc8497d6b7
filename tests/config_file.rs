//! `train --config FILE` and `--print-config`: an experiment's settings as
//! a file, fed back to repeat it, flags on the command line over them.
mod common;

use common::run_cli;
use common::runs::{fixture, read_history, Fixture};

/// Every column of history.csv but the timings.
fn history_of(f: &Fixture, run: &str) -> Vec<Vec<String>> {
    let (_, rows) = read_history(&f.root.join(run).join("history.csv"));
    rows.into_iter().map(|r| r.fields[..5].to_vec()).collect()
}

#[test]
fn a_runs_config_json_fed_back_repeats_it_bit_for_bit_and_a_flag_changes_one_setting() {
    let f = fixture();
    let settings = [
        "--optimizer",
        "lazy-adam",
        "--save-best",
        "--dropout",
        "0.3",
    ];
    f.train("first", 2, &settings);
    let config = f.path("first/config.json");
    let again = f.path("again");
    let (code, _, stderr) = run_cli(&["train", "--config", &config, "--run-dir", &again]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(history_of(&f, "again"), history_of(&f, "first"));
    assert!(
        f.root.join("again/model.best.safetensors").exists(),
        "--save-best"
    );

    let other = f.path("other-seed");
    let args = ["--config", &config, "--seed", "4", "--run-dir", &other];
    let (code, _, stderr) = run_cli(&args);
    assert_eq!(code, Some(0), "{stderr}");
    assert_ne!(history_of(&f, "other-seed"), history_of(&f, "first"));
    let written: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(f.root.join("other-seed/config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(written["seed"], 4);
    assert_eq!(written["train"]["optimizer"], "lazy-adam");
    assert_eq!(written["model"]["dropout"], 0.3);
}

#[test]
fn print_config_prints_a_file_that_config_reads_back_to_the_same_settings() {
    let f = fixture();
    let (code, printed, stderr) = f.run(&["--print-config", "--units", "8", "--save-best"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(printed.contains("units = 8\n"), "{printed}");
    assert!(printed.contains("save_best = true\n"), "{printed}");
    assert!(printed.contains("optimizer = \"adam\"\n"), "{printed}");
    assert!(
        !printed.contains("seed"),
        "no seed given: a random one each run"
    );
    let file = f.root.join("settings.toml");
    std::fs::write(&file, &printed).unwrap();
    let (code, again, stderr) = run_cli(&["--config", file.to_str().unwrap(), "--print-config"]);
    assert_eq!(code, Some(0), "{stderr}");
    let numbers = |text: &str| -> Vec<(String, String)> {
        text.lines()
            .filter_map(|l| l.split_once(" = "))
            .map(|(k, v)| {
                (
                    k.to_owned(),
                    v.parse::<f64>().map_or(v.to_owned(), |x| x.to_string()),
                )
            })
            .collect()
    };
    assert_eq!(numbers(&again), numbers(&printed));
    assert!(
        !f.root.join("runs").exists(),
        "--print-config trains nothing"
    );
}

#[test]
fn a_bad_config_file_is_refused_naming_the_file_and_the_key() {
    let f = fixture();
    let cases = [
        (
            "unknown.toml",
            "unitz = 3\n",
            "\"unitz\" is not a training setting",
        ),
        (
            "value.toml",
            "units = \"many\"\n",
            "invalid value 'many' for '--units",
        ),
        ("switch.json", "{\"save_best\": 1}", "save_best is a switch"),
        (
            "nested.toml",
            "[model]\nunits = 3\n",
            "model: expected a number",
        ),
        ("broken.toml", "units = [\n", "not valid TOML"),
        ("broken.json", "{\"units\": ", "not valid JSON"),
        (
            "run.json",
            "{\"gru_imdb_version\": \"0.1.0\"}",
            "not a gru-imdb run config",
        ),
    ];
    for (name, text, says) in cases {
        let file = f.root.join(name);
        std::fs::write(&file, text).unwrap();
        let (code, _, stderr) = run_cli(&["train", "--config", file.to_str().unwrap()]);
        assert_eq!(code, Some(1), "{name}");
        assert!(stderr.contains(name), "{name}: names the file: {stderr}");
        assert!(stderr.contains(says), "{name}: {stderr}");
    }
    let missing = f.path("missing.toml");
    let (code, _, stderr) = run_cli(&["--config", &missing]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("missing.toml"), "{stderr}");
    let (code, _, stderr) = run_cli(&["--config", &missing, "--resume", &f.path("run")]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("--resume"), "{stderr}");
}

#[test]
fn a_flag_on_the_command_line_may_lean_on_one_the_file_gives_and_the_other_way() {
    let tmp = tempfile::tempdir().unwrap();
    let texts = tmp.path().join("texts.csv");
    std::fs::write(&texts, "text,label\ngood film,pos\nbad film,neg\n").unwrap();
    let texts = texts.to_str().unwrap();
    let print = |file: &str, args: &[&str]| {
        let config = tmp.path().join("settings.toml");
        std::fs::write(&config, file).unwrap();
        let mut all = vec!["--config", config.to_str().unwrap(), "--print-config"];
        all.extend(args);
        let (code, printed, stderr) = run_cli(&all);
        assert_eq!(code, Some(0), "{stderr}");
        printed
    };
    // --tokenizer needs --train-file, which only the file gives.
    let file = format!("train_file = {texts:?}\nvalidation_split = 0.5\n");
    let printed = print(&file, &["--tokenizer", "jieba"]);
    assert!(printed.contains("tokenizer = \"jieba\"\n"), "{printed}");
    assert!(printed.contains("train_file = "), "{printed}");
    // The file's tokenizer needs the command line's --train-file.
    let printed = print(
        "tokenizer = \"chars\"\n",
        &["--train-file", texts, "--validation-split", "0.5"],
    );
    assert!(printed.contains("tokenizer = \"chars\"\n"), "{printed}");
}
