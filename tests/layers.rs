//! The layers of `docs/architecture.md` hold in the code: every top-level
//! module of `src/` imports (names as `crate::<module>`, in code or doc
//! comments, outside test modules) only modules of the layers below its
//! own, and every module is in the list. The list is read from the doc, so
//! the doc and the code cannot drift apart.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const DOC: &str = "docs/architecture.md";
const MARKER: &str = "<!-- layers:";

/// Layer of each module, 0 at the top, from the doc's fenced block.
fn layers(root: &Path) -> BTreeMap<String, usize> {
    let doc = std::fs::read_to_string(root.join(DOC)).expect("docs/architecture.md");
    let after = doc.split_once(MARKER).expect("the layers marker").1;
    let block = after
        .split("```")
        .nth(1)
        .expect("a fenced block after the marker");
    block
        .lines()
        .skip(1) // the fence's info string
        .filter(|line| !line.trim().is_empty())
        .enumerate()
        .flat_map(|(rank, line)| line.split_whitespace().map(move |m| (m.to_owned(), rank)))
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The text of a file before its first `#[cfg(test)] mod`, and test-only
/// files (`tests.rs`) not at all: tests may reach anywhere.
fn code_of(path: &Path) -> String {
    if path.file_name().is_some_and(|n| n == "tests.rs") {
        return String::new();
    }
    let text = std::fs::read_to_string(path).unwrap();
    let mut code = text.as_str();
    let mut from = 0;
    while let Some(at) = code[from..].find("#[cfg(test)]") {
        let start = from + at;
        let rest = code[start + "#[cfg(test)]".len()..].trim_start();
        if rest.starts_with("mod ") {
            code = &code[..start];
            break;
        }
        from = start + 1;
    }
    code.to_owned()
}

/// The modules a piece of code names as `crate::x`, or inside `use crate::{...}`.
fn named_modules(code: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let inner = &group[..group.find(';').unwrap_or(group.len())];
            for part in inner.split([',', '{', '}']) {
                let name = part.trim().split("::").next().unwrap_or("").trim();
                if modules.contains(name) {
                    names.insert(name.to_owned());
                }
            }
            continue;
        }
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if modules.contains(&name) {
            names.insert(name);
        }
    }
    names
}

#[test]
fn every_module_imports_only_the_layers_below_its_own() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let layers = layers(root);
    let src = root.join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let module_of = |path: &Path| -> String {
        let relative = path.strip_prefix(&src).unwrap();
        let first = relative.components().next().unwrap().as_os_str();
        first.to_string_lossy().trim_end_matches(".rs").to_owned()
    };
    let modules: BTreeSet<String> = files
        .iter()
        .map(|f| module_of(f))
        .filter(|m| m != "main" && m != "lib" && !m.ends_with(".cpp"))
        .collect();
    let unlisted: Vec<&String> = modules
        .iter()
        .filter(|m| !layers.contains_key(*m))
        .collect();
    assert!(
        unlisted.is_empty(),
        "modules missing from {DOC}: {unlisted:?}"
    );

    let mut wrong = Vec::new();
    for file in &files {
        let module = module_of(file);
        let Some(&rank) = layers.get(&module) else {
            continue;
        };
        for named in named_modules(&code_of(file), &modules) {
            if named != module && layers[&named] <= rank {
                let relative = file.strip_prefix(root).unwrap().display().to_string();
                wrong.push(format!("{relative}: {module} -> {named}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports that point up or sideways (see {DOC}):\n{}",
        wrong.join("\n")
    );
}
