//! Keras `text_dataset_from_directory`'s layout: one sub-folder per class,
//! named after it, holding one `.txt` file per text. Classes are the
//! sub-folders; files are read in the order of the number their name starts
//! with, then of their name (so aclImdb's `train/` comes in the archive's
//! order). Other files are skipped, as Keras skips them.
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::{Place, Row};

/// Streams the texts under `root` to `sink`; `progress` is told the bytes
/// of each file read.
pub(super) fn read(
    root: &Path,
    progress: &dyn Fn(u64),
    sink: &mut dyn FnMut(Row) -> Result<()>,
) -> Result<()> {
    for (class, files) in class_folders(root)? {
        for file in files {
            let bytes =
                fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            progress(bytes.len() as u64);
            let text = String::from_utf8(bytes).map_err(|e| {
                anyhow::anyhow!(
                    "{}: not valid UTF-8 (byte {}); save the file as UTF-8",
                    file.display(),
                    e.utf8_error().valid_up_to()
                )
            })?;
            sink(Row {
                place: Place::File(file),
                text,
                label: class.clone(),
            })?;
        }
    }
    Ok(())
}

/// The class folders by name, each with its `.txt` files in reading order.
pub(super) fn class_folders(root: &Path) -> Result<Vec<(String, Vec<PathBuf>)>> {
    let mut classes = Vec::new();
    for entry in read_dir_sorted(root)? {
        if !entry.is_dir() {
            continue;
        }
        let name = entry
            .file_name()
            .and_then(|n| n.to_str())
            .with_context(|| format!("the folder name of {} is not UTF-8", entry.display()))?
            .to_owned();
        let mut files: Vec<PathBuf> = read_dir_sorted(&entry)?
            .into_iter()
            .filter(|f| f.is_file() && f.extension().is_some_and(|e| e == "txt"))
            .collect();
        files.sort_by_cached_key(|f| reading_order(f));
        if files.is_empty() {
            bail!("the class folder {} holds no .txt files", entry.display());
        }
        classes.push((name, files));
    }
    if classes.is_empty() {
        bail!("no class sub-folders in it (expected one folder of .txt files per class)");
    }
    Ok(classes)
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut paths = fs::read_dir(dir)
        .and_then(|entries| {
            entries
                .map(|e| e.map(|e| e.path()))
                .collect::<Result<Vec<_>, _>>()
        })
        .with_context(|| format!("cannot list {}", dir.display()))?;
    paths.sort();
    Ok(paths)
}

/// The number a file name starts with (none sorts first), then the name.
fn reading_order(file: &Path) -> (Option<u64>, String) {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let digits: String = name.chars().take_while(char::is_ascii_digit).collect();
    (digits.parse().ok(), name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_read_by_their_leading_number() {
        let mut names = ["10_1.txt", "9_3.txt", "b.txt", "100_2.txt", "a.txt"]
            .map(|n| PathBuf::from("pos").join(n))
            .to_vec();
        names.sort_by_cached_key(|f| reading_order(f));
        let names: Vec<_> = names.iter().map(|f| f.file_name().unwrap()).collect();
        assert_eq!(
            names,
            ["a.txt", "b.txt", "9_3.txt", "10_1.txt", "100_2.txt"]
        );
    }
}
