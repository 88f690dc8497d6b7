//! Test fixtures shared by the integration tests: small `aclImdb`-layout
//! archives (hand-written or synthetic, with learnable sentiment words), raw
//! tar entries for hostile archives, and a local HTTP server (`http`).
//! Each test binary uses only part of this.
#![allow(dead_code)]

pub mod http;
pub mod runs;
pub mod tfevents;

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use flate2::Compression;
use tar::{EntryType, Header};

/// One tar entry, written as is: the name is not checked, so tests can
/// build archives that try to escape or hold links.
pub struct RawEntry<'a> {
    pub name: &'a [u8],
    pub kind: EntryType,
    pub link: &'a [u8],
    pub data: &'a [u8],
}

impl<'a> RawEntry<'a> {
    pub fn file(name: &'a str, data: &'a [u8]) -> Self {
        RawEntry {
            name: name.as_bytes(),
            kind: EntryType::Regular,
            link: b"",
            data,
        }
    }

    pub fn dir(name: &'a str) -> Self {
        RawEntry {
            name: name.as_bytes(),
            kind: EntryType::Directory,
            link: b"",
            data: b"",
        }
    }
}

/// Writes `entries` as a `.tar.gz` at `path`.
pub fn write_raw_archive(path: &Path, entries: &[RawEntry]) {
    write_tar_gz(path, |tar| {
        for e in entries {
            append_raw(tar, e.name, e.kind, e.link, e.data.len() as u64, e.data)?;
        }
        Ok(())
    })
}

/// Writes a `.tar.gz` at `path` whose entries `fill` appends.
pub fn write_tar_gz(
    path: &Path,
    fill: impl FnOnce(&mut tar::Builder<GzEncoder<File>>) -> io::Result<()>,
) {
    let file = File::create(path).expect("create archive");
    let mut tar = tar::Builder::new(GzEncoder::new(file, Compression::default()));
    fill(&mut tar).expect("write tar entries");
    tar.into_inner()
        .and_then(|gz| gz.finish())
        .and_then(|mut f| f.flush())
        .expect("finish archive");
}

/// Appends one entry with a raw (unchecked) old-style name.
pub fn append_raw<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &[u8],
    kind: EntryType,
    link: &[u8],
    size: u64,
    data: impl Read,
) -> io::Result<()> {
    let mut header = Header::new_gnu();
    let old = header.as_old_mut();
    old.name[..name.len()].copy_from_slice(name);
    old.linkname[..link.len()].copy_from_slice(link);
    header.set_entry_type(kind);
    header.set_mode(if kind.is_dir() { 0o755 } else { 0o644 });
    header.set_size(size);
    header.set_cksum();
    tar.append(&header, data)
}

/// Writes an `aclImdb`-layout `.tar.gz`: each review is (split, label, file
/// name, text), e.g. `("train", "pos", "3_7.txt", b"Great film")`, stored as
/// `aclImdb/<split>/<label>/<name>`, after the folder entries.
pub fn write_imdb_archive(path: &Path, reviews: &[(&str, &str, &str, &[u8])]) {
    let names: Vec<String> = reviews
        .iter()
        .map(|(split, label, name, _)| format!("aclImdb/{split}/{label}/{name}"))
        .collect();
    // Folder entries first, like tar writes them; only folders that hold
    // reviews, so an archive can lack one.
    let mut dirs = vec!["aclImdb/".to_owned()];
    for (split, label, _, _) in reviews {
        let dir = format!("aclImdb/{split}/{label}/");
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    let mut entries: Vec<RawEntry> = dirs.iter().map(|d| RawEntry::dir(d)).collect();
    entries.extend(
        names
            .iter()
            .zip(reviews)
            .map(|(name, (_, _, _, text))| RawEntry::file(name, text)),
    );
    write_raw_archive(path, &entries);
}

/// Words that carry no sentiment.
const NEUTRAL: &[&str] = &[
    "the",
    "movie",
    "film",
    "plot",
    "actor",
    "scene",
    "story",
    "was",
    "it",
    "and",
    "a",
    "of",
    "director",
    "music",
    "ending",
    "characters",
    "script",
    "this",
    "i",
    "watched",
];
const POSITIVE: &[&str] = &[
    "great",
    "wonderful",
    "excellent",
    "loved",
    "brilliant",
    "superb",
];
const NEGATIVE: &[&str] = &["awful", "boring", "terrible", "waste", "worst", "dull"];

/// `n` synthetic reviews per folder (train/test x neg/pos), as owned
/// (split, label, file name, text). Deterministic for a `seed`. Each review
/// has 20-60 neutral words, a few words of its own sentiment and, rarely,
/// one of the other, so a model can learn the labels but not perfectly.
/// File names are `<id>_<rating>.txt` with ids 0..n, shuffled in archive
/// order like the real tarball.
pub fn synthetic_reviews(n: usize, seed: u64) -> Vec<(String, String, String, Vec<u8>)> {
    let mut rng = Lcg(seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407));
    let mut out = Vec::with_capacity(4 * n);
    for split in ["train", "test"] {
        for label in ["neg", "pos"] {
            let (own, other) = if label == "pos" {
                (POSITIVE, NEGATIVE)
            } else {
                (NEGATIVE, POSITIVE)
            };
            let mut ids: Vec<usize> = (0..n).collect();
            for i in (1..ids.len()).rev() {
                ids.swap(i, rng.below(i + 1));
            }
            for id in ids {
                let len = 20 + rng.below(41);
                let mut words: Vec<&str> = (0..len)
                    .map(|_| NEUTRAL[rng.below(NEUTRAL.len())])
                    .collect();
                for _ in 0..2 + rng.below(3) {
                    let at = rng.below(words.len() + 1);
                    words.insert(at, own[rng.below(own.len())]);
                }
                if rng.below(10) == 0 {
                    let at = rng.below(words.len() + 1);
                    words.insert(at, other[rng.below(other.len())]);
                }
                let rating = if label == "pos" {
                    7 + rng.below(4)
                } else {
                    1 + rng.below(4)
                };
                let mut text = words.join(" ");
                text.push_str(".<br /><br />The End.");
                out.push((
                    split.to_owned(),
                    label.to_owned(),
                    format!("{id}_{rating}.txt"),
                    text.into_bytes(),
                ));
            }
        }
    }
    out
}

/// Writes `synthetic_reviews(n, seed)` as an `aclImdb`-layout archive.
pub fn write_synthetic_imdb_archive(path: &Path, n: usize, seed: u64) {
    let reviews = synthetic_reviews(n, seed);
    let borrowed: Vec<(&str, &str, &str, &[u8])> = reviews
        .iter()
        .map(|(s, l, f, t)| (s.as_str(), l.as_str(), f.as_str(), t.as_slice()))
        .collect();
    write_imdb_archive(path, &borrowed);
}

/// A tiny deterministic generator (PCG-style LCG), so fixtures need no crate.
pub struct Lcg(u64);

impl Lcg {
    /// The generator whose first draw follows `state`.
    pub fn seeded(state: u64) -> Lcg {
        Lcg(state)
    }

    /// A draw in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

/// Lower-case hex sha256 of a file.
pub fn sha256_hex(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(std::fs::read(path).expect("read file")))
}

/// Reads an int32 `.npy` file, asserting what the npy v1.0 spec requires of
/// its header: magic, version, 64-byte alignment, `<i4`, C order, and a
/// data length that matches the shape. Returns (shape, values).
pub fn read_npy_i32(path: &Path) -> (Vec<usize>, Vec<i32>) {
    let bytes = std::fs::read(path).expect("read npy");
    assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00", "magic and version 1.0");
    let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    assert_eq!((10 + len) % 64, 0, "data aligned to 64 bytes");
    let header = std::str::from_utf8(&bytes[10..10 + len]).expect("ASCII header");
    assert!(
        header.starts_with('{') && header.ends_with('\n'),
        "{header:?}"
    );
    assert!(header.contains("'descr': '<i4'"), "{header}");
    assert!(header.contains("'fortran_order': False"), "{header}");
    let at = header.find("'shape': (").expect("shape") + "'shape': (".len();
    let shape: Vec<usize> = header[at..at + header[at..].find(')').expect("shape end")]
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().expect("dimension"))
        .collect();
    let data = &bytes[10 + len..];
    assert_eq!(data.len(), 4 * shape.iter().product::<usize>(), "data size");
    let values = data
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    (shape, values)
}

/// The `gru-imdb` binary with `args`, to be run.
pub fn cli(args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_gru-imdb"));
    command.args(args);
    command
}

/// Runs the `gru-imdb` binary with `args`; returns (exit code, stdout, stderr).
pub fn run_cli(args: &[&str]) -> (Option<i32>, String, String) {
    let out = cli(args).output().expect("run gru-imdb");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The names in `dir`, sorted.
pub fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The labelled IMDB archive shared beside the repository
/// (`../shared/data/aclImdb_labeled.tar.gz`) and its sha256, or `None`
/// with a note when it is absent (the test then skips).
pub fn real_archive() -> Option<(PathBuf, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    let path = dir.join("aclImdb_labeled.tar.gz");
    let sums = std::fs::read_to_string(dir.join("SHA256SUMS")).ok();
    let sha = sums.as_deref().and_then(|sums| {
        sums.lines()
            .find(|l| l.ends_with(" aclImdb_labeled.tar.gz"))
            .and_then(|l| l.split_whitespace().next())
            .map(str::to_owned)
    });
    match sha {
        Some(sha) if path.exists() => Some((path, sha)),
        _ => {
            eprintln!(
                "note: {} (or its SHA256SUMS line) is absent; skipping",
                path.display()
            );
            None
        }
    }
}
