//! Completions and manual pages, generated from the command that parses
//! the flags: every subcommand and flag is in them.
mod common;

use common::run_cli;

#[test]
fn completions_name_every_subcommand_and_flag_and_bashs_script_parses() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let (code, script, stderr) = run_cli(&["completions", shell]);
        assert_eq!(code, Some(0), "{shell}: {stderr}");
        for word in ["predict", "report", "max-features", "optimizer", "run-dir"] {
            assert!(script.contains(word), "{shell} completes {word}");
        }
        if shell == "bash" {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("gru-imdb.bash");
            std::fs::write(&path, &script).unwrap();
            let check = std::process::Command::new("bash")
                .arg("-n")
                .arg(&path)
                .output()
                .expect("bash");
            assert!(check.status.success(), "{:?}", check);
        }
    }
    let (code, _, stderr) = run_cli(&["completions", "tcsh"]);
    assert_ne!(code, Some(0));
    assert!(
        stderr.contains("bash"),
        "names the shells there are: {stderr}"
    );
}

#[test]
fn man_pages_document_the_training_flags_and_each_subcommand() {
    let (code, page, stderr) = run_cli(&["man"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(page.contains(".TH gru-imdb 1"), "{page}");
    for flag in [
        "max\\-features",
        "recurrent\\-dropout",
        "optimizer",
        "resume",
    ] {
        assert!(
            page.contains(&format!("\\-\\-{flag}")),
            "man documents --{flag}"
        );
    }
    let (code, page, stderr) = run_cli(&["man", "predict"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(page.contains(".TH gru-imdb-predict 1"), "{page}");
    assert!(page.contains("\\-\\-run\\-dir"), "{page}");
    let (code, _, stderr) = run_cli(&["man", "nope"]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("\"nope\"") && stderr.contains("predict"),
        "{stderr}"
    );
}
