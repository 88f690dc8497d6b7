//! Reads the reviews straight out of `aclImdb_v1.tar.gz`: one pass over the
//! gzip stream, nothing unpacked to disk. Only
//! `aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt` is read; the rest
//! (`unsup/`, `*.feat`, url lists) is skipped. The archive is untrusted
//! input: escaping paths and links are refused, and what one review and the
//! whole archive may decompress to is capped, so a gzip bomb is an error
//! rather than an out-of-memory kill.
use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use anyhow::{bail, Context, Result};
use flate2::bufread::GzDecoder;

/// Real reviews are under 14 KB; anything near this is not a review.
pub const MAX_REVIEW_BYTES: u64 = 1 << 20;
/// The original archive decompresses to about 0.3 GB of tar.
pub const MAX_ARCHIVE_BYTES: u64 = 1 << 30;

/// The four folders that are read, in the order of the prepared arrays:
/// within a split, `neg` comes before `pos`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Folder {
    TrainNeg,
    TrainPos,
    TestNeg,
    TestPos,
}

impl Folder {
    pub const ALL: [Folder; 4] = [
        Folder::TrainNeg,
        Folder::TrainPos,
        Folder::TestNeg,
        Folder::TestPos,
    ];

    fn from_names(split: &[u8], label: &[u8]) -> Option<Folder> {
        match (split, label) {
            (b"train", b"neg") => Some(Folder::TrainNeg),
            (b"train", b"pos") => Some(Folder::TrainPos),
            (b"test", b"neg") => Some(Folder::TestNeg),
            (b"test", b"pos") => Some(Folder::TestPos),
            _ => None,
        }
    }

    pub fn is_train(self) -> bool {
        matches!(self, Folder::TrainNeg | Folder::TrainPos)
    }

    /// `pos` = 1, `neg` = 0.
    pub fn label(self) -> u8 {
        matches!(self, Folder::TrainPos | Folder::TestPos) as u8
    }

    pub fn path(self) -> &'static str {
        match self {
            Folder::TrainNeg => "aclImdb/train/neg",
            Folder::TrainPos => "aclImdb/train/pos",
            Folder::TestNeg => "aclImdb/test/neg",
            Folder::TestPos => "aclImdb/test/pos",
        }
    }
}

/// One review file as stored: its folder, the numeric id its file name
/// starts with (the sort key within a folder), the name, and the raw bytes.
#[derive(Debug)]
pub struct RawReview {
    pub folder: Folder,
    pub id: u64,
    pub name: String,
    pub text: Vec<u8>,
}

/// Streams every review of the archive at `path` to `sink`, in archive
/// order, and checks that each of the four folders has at least one.
pub fn read_reviews(path: &Path, sink: impl FnMut(RawReview) -> Result<()>) -> Result<()> {
    read_all(path, sink).with_context(|| format!("cannot read the archive {}", path.display()))
}

fn read_all(path: &Path, mut sink: impl FnMut(RawReview) -> Result<()>) -> Result<()> {
    let file = File::open(path)?;
    let gz = GzDecoder::new(BufReader::with_capacity(1 << 16, file));
    // tar reads in 512-byte blocks: the outer buffer keeps inflate calls large.
    let limited = Capped {
        inner: gz,
        left: MAX_ARCHIVE_BYTES,
    };
    let mut tar = tar::Archive::new(BufReader::with_capacity(1 << 18, limited));
    let mut seen = HashSet::new();
    let mut per_folder = [0usize; 4];
    for entry in tar.entries()? {
        let mut entry = entry?;
        let raw_path = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw_path).into_owned();
        let Some((folder, name)) = wanted(&raw_path).with_context(|| format!("entry {shown}"))?
        else {
            continue;
        };
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            bail!("entry {shown} is a link; refusing it");
        }
        if !kind.is_file() {
            bail!("entry {shown} is not a regular file");
        }
        let id = review_id(&name)
            .with_context(|| format!("entry {shown}: expected a name like 123_7.txt"))?;
        if !seen.insert((folder, name.clone())) {
            bail!("entry {shown} appears twice");
        }
        let size = entry.size();
        if size > MAX_REVIEW_BYTES {
            bail!(
                "entry {shown} is {size} bytes, more than the {MAX_REVIEW_BYTES} a review may have"
            );
        }
        let mut text = Vec::with_capacity(size as usize);
        entry
            .read_to_end(&mut text)
            .with_context(|| format!("entry {shown}"))?;
        per_folder[folder as usize] += 1;
        sink(RawReview {
            folder,
            id,
            name,
            text,
        })?;
    }
    // tar stops at its end-of-archive block; reading the gzip stream to its
    // end is what checks the CRC and length in the gzip trailer.
    io::copy(&mut tar.into_inner(), &mut io::sink())?;
    for folder in Folder::ALL {
        if per_folder[folder as usize] == 0 {
            bail!(
                "no {}/*.txt reviews in it (is it aclImdb_v1.tar.gz?)",
                folder.path()
            );
        }
    }
    Ok(())
}

/// Where an entry belongs: `Some((folder, file name))` for a review file,
/// `None` for anything else. Paths that could escape the extraction root
/// (absolute or with `..`) are refused wherever they are: an archive that
/// holds one is not a plain copy of the dataset.
fn wanted(path: &[u8]) -> Result<Option<(Folder, String)>> {
    if path.first() == Some(&b'/') {
        bail!("absolute path; refusing it");
    }
    // Empty and `.` components (`./aclImdb/...`, `a//b`) change nothing.
    let parts: Vec<&[u8]> = path
        .split(|&b| b == b'/')
        .filter(|p| !p.is_empty() && *p != b".")
        .collect();
    if parts.iter().any(|p| *p == b"..") {
        bail!("path escapes the archive with '..'; refusing it");
    }
    let [b"aclImdb", split, label, file] = parts[..] else {
        return Ok(None);
    };
    let (Some(folder), true) = (Folder::from_names(split, label), file.ends_with(b".txt")) else {
        return Ok(None);
    };
    let name = std::str::from_utf8(file).context("file name is not UTF-8")?;
    Ok(Some((folder, name.to_owned())))
}

/// The numeric id before the `_` of `<id>_<rating>.txt`.
fn review_id(name: &str) -> Option<u64> {
    let (id, _) = name.split_once('_')?;
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    id.parse().ok()
}

/// A reader that fails once more than `left` bytes have come through it.
struct Capped<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.left = self.left.checked_sub(n as u64).ok_or_else(|| {
            io::Error::other(format!(
                "it decompresses to more than {MAX_ARCHIVE_BYTES} bytes (a gzip bomb?)"
            ))
        })?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn review_paths() {
        let f = |p: &str| wanted(p.as_bytes()).unwrap();
        assert_eq!(
            f("aclImdb/train/pos/0_9.txt"),
            Some((Folder::TrainPos, "0_9.txt".into()))
        );
        assert_eq!(
            f("./aclImdb/test/neg/12_1.txt"),
            Some((Folder::TestNeg, "12_1.txt".into()))
        );
        assert_eq!(f("aclImdb/train/unsup/0_0.txt"), None);
        assert_eq!(f("aclImdb/train/labeledBow.feat"), None);
        assert_eq!(f("aclImdb/train/pos/sub/1_1.txt"), None);
        assert!(wanted(b"aclImdb/train/pos/../../../etc/x.txt").is_err());
        assert!(wanted(b"/aclImdb/train/pos/1_1.txt").is_err());
    }

    #[test]
    fn review_ids() {
        assert_eq!(review_id("12499_1.txt"), Some(12499));
        assert_eq!(review_id("0_3.txt"), Some(0));
        assert_eq!(review_id("x_3.txt"), None);
        assert_eq!(review_id("_3.txt"), None);
        assert_eq!(review_id("3.txt"), None);
    }
}
