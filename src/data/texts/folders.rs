//! Keras `text_dataset_from_directory`'s layout: one sub-folder per class,
//! named after it, holding one `.txt` file per text. Classes are the
//! sub-folders; files are read in the order of the number their name starts
//! with, then of their name (so aclImdb's `train/` comes in the archive's
//! order). Other files are skipped, as Keras skips them, and so are hidden
//! folders (`.git`, `.ipynb_checkpoints`): they are no classes. A symbolic
//! link to a class folder or a `.txt` file outside the folder is refused:
//! the texts would not be the folder's own.
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
    let root_inside = Inside::new(root)?;
    let mut classes = Vec::new();
    for entry in read_dir_sorted(root)? {
        if entry.is_hidden() || !entry.path.is_dir() {
            continue;
        }
        root_inside.check(&entry)?;
        let name = entry
            .path
            .file_name()
            .and_then(|n| n.to_str())
            .with_context(|| format!("the folder name of {} is not UTF-8", entry.path.display()))?
            .to_owned();
        let mut files = Vec::new();
        for file in read_dir_sorted(&entry.path)? {
            if file.path.extension().is_some_and(|e| e == "txt") && file.path.is_file() {
                root_inside.check(&file)?;
                files.push(file.path);
            }
        }
        files.sort_by_cached_key(|f| reading_order(f));
        if files.is_empty() {
            bail!(
                "the class folder {} holds no .txt files",
                entry.path.display()
            );
        }
        classes.push((name, files));
    }
    if classes.is_empty() {
        bail!("no class sub-folders in it (expected one folder of .txt files per class)");
    }
    Ok(classes)
}

/// A name in a folder, and whether it is a symbolic link.
struct Entry {
    path: PathBuf,
    symlink: bool,
}

impl Entry {
    fn is_hidden(&self) -> bool {
        let name = self.path.file_name().unwrap_or_default();
        name.as_encoded_bytes().first() == Some(&b'.')
    }
}

/// The data folder, as what symbolic links in it must stay inside.
struct Inside {
    root: PathBuf,
    canonical: PathBuf,
}

impl Inside {
    fn new(root: &Path) -> Result<Inside> {
        let canonical =
            fs::canonicalize(root).with_context(|| format!("cannot resolve {}", root.display()))?;
        Ok(Inside {
            root: root.to_path_buf(),
            canonical,
        })
    }

    /// Refuses a symbolic link that leads out of the data folder.
    fn check(&self, entry: &Entry) -> Result<()> {
        if !entry.symlink {
            return Ok(());
        }
        let target = fs::canonicalize(&entry.path)
            .with_context(|| format!("cannot resolve the link {}", entry.path.display()))?;
        if !target.starts_with(&self.canonical) {
            bail!(
                "{} is a symbolic link to {}, outside {}: class folders and their .txt files \
                 must be inside the folder given (copy them in)",
                entry.path.display(),
                target.display(),
                self.root.display()
            );
        }
        Ok(())
    }
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<Entry>> {
    let mut entries = fs::read_dir(dir)
        .and_then(|entries| {
            entries
                .map(|e| {
                    let e = e?;
                    Ok(Entry {
                        path: e.path(),
                        symlink: e.file_type()?.is_symlink(),
                    })
                })
                .collect::<std::io::Result<Vec<_>>>()
        })
        .with_context(|| format!("cannot list {}", dir.display()))?;
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(entries)
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
