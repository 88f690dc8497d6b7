//! The prepared arrays, stats and vocabulary in one binary file, keyed by
//! the archive's sha256 and the options, so a second run skips the archive.
//!
//! Layout (little-endian): magic, format version, archive sha256, num_words,
//! maxlen, train and test row counts, vocabulary byte length, the four
//! stats; then x_train (i32), y_train (u8), x_test, y_test, the vocabulary
//! text; then the sha256 of everything before it. A file that is short,
//! long, for other options or fails the checksum is refused, never trusted.
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use sha2::{Digest, Sha256};

use super::prepare::Prepared;
use super::report::Stats;
use super::{Dataset, Split, Vocabulary};
use crate::atomic::write_atomically;

const MAGIC: &[u8; 8] = b"GRUIMDB\0";
/// Bump when tokenising, ranking, encoding or this layout changes: older
/// cache files then stop matching and are rebuilt.
const FORMAT_VERSION: u32 = 1;
const HEADER_LEN: usize = 8 + 4 + 32 + 9 * 8;
const CHECKSUM_LEN: usize = 32;

/// What a cache file depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CacheKey {
    /// sha256 of the archive, lower-case hex.
    pub archive_sha256: String,
    pub num_words: usize,
    pub maxlen: usize,
}

impl CacheKey {
    pub fn path(&self, data_dir: &Path) -> PathBuf {
        let short = self
            .archive_sha256
            .get(..16)
            .unwrap_or(&self.archive_sha256);
        data_dir.join(format!(
            "imdb-{short}-w{}-l{}.v{FORMAT_VERSION}.cache",
            self.num_words, self.maxlen
        ))
    }

    fn sha_bytes(&self) -> Result<Vec<u8>> {
        hex::decode(&self.archive_sha256).context("the archive sha256 is not hex")
    }
}

/// Writes the cache file for `key` atomically.
pub(crate) fn save(path: &Path, key: &CacheKey, prepared: &Prepared) -> Result<()> {
    let ds = &prepared.dataset;
    let vocab = ds.vocab.to_text();
    let mut buf = Vec::with_capacity(
        HEADER_LEN + 4 * (ds.train.x.len() + ds.test.x.len()) + vocab.len() + CHECKSUM_LEN,
    );
    buf.extend_from_slice(MAGIC);
    buf.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    buf.extend_from_slice(&key.sha_bytes()?);
    let s = &prepared.stats;
    for v in [
        key.num_words as u64,
        key.maxlen as u64,
        ds.train.len() as u64,
        ds.test.len() as u64,
        vocab.len() as u64,
        s.train_tokens,
        s.train_oov,
        s.train_truncated,
        s.test_truncated,
    ] {
        buf.extend_from_slice(&v.to_le_bytes());
    }
    for split in [&ds.train, &ds.test] {
        buf.extend(split.x.iter().flat_map(|v| v.to_le_bytes()));
        buf.extend_from_slice(&split.y);
    }
    buf.extend_from_slice(vocab.as_bytes());
    let checksum = Sha256::digest(&buf);
    buf.extend_from_slice(&checksum);
    write_atomically(path, |out| std::io::Write::write_all(out, &buf))
        .with_context(|| format!("cannot write the cache {}", path.display()))
}

/// Reads the cache file for `key`: `Ok(None)` if there is none, an error
/// if it exists but is not a complete, intact cache for exactly `key`.
pub(crate) fn load(path: &Path, key: &CacheKey) -> Result<Option<Prepared>> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    parse(&bytes, key)
        .map(Some)
        .with_context(|| format!("bad cache file {}", path.display()))
}

fn parse(bytes: &[u8], key: &CacheKey) -> Result<Prepared> {
    let mut r = Reader { rest: bytes };
    ensure!(r.take(8)? == MAGIC, "not a gru-imdb cache file");
    let version = u32::from_le_bytes(r.array()?);
    ensure!(
        version == FORMAT_VERSION,
        "format version {version}, expected {FORMAT_VERSION}"
    );
    ensure!(r.take(32)? == key.sha_bytes()?, "made from another archive");
    let num_words = r.u64()?;
    let maxlen = r.u64()?;
    ensure!(
        (num_words, maxlen) == (key.num_words as u64, key.maxlen as u64),
        "made for other options"
    );
    let n_train = r.u64()?;
    let n_test = r.u64()?;
    let vocab_len = r.u64()?;
    let stats = Stats {
        train_tokens: r.u64()?,
        train_oov: r.u64()?,
        train_truncated: r.u64()?,
        test_truncated: r.u64()?,
    };
    // The lengths come from the file: check them, with overflow in mind,
    // before anything is allocated from them.
    let expected = [n_train, n_test].iter().try_fold(
        HEADER_LEN as u64 + vocab_len + CHECKSUM_LEN as u64,
        |acc, &n| acc.checked_add(n.checked_mul(maxlen)?.checked_mul(4)?.checked_add(n)?),
    );
    if expected != Some(bytes.len() as u64) {
        bail!(
            "{} bytes long, the header promises {expected:?} (truncated?)",
            bytes.len()
        );
    }
    let (body, checksum) = bytes.split_at(bytes.len() - CHECKSUM_LEN);
    ensure!(
        Sha256::digest(body).as_slice() == checksum,
        "checksum mismatch (corrupt file)"
    );
    let maxlen = key.maxlen;
    let train = r.split(n_train as usize, maxlen)?;
    let test = r.split(n_test as usize, maxlen)?;
    let vocab =
        std::str::from_utf8(r.take(vocab_len as usize)?).context("the vocabulary is not UTF-8")?;
    let vocab = Vocabulary::from_text(vocab)?;
    Ok(Prepared {
        dataset: Dataset { train, test, vocab },
        stats,
    })
}

/// Reads fields off the front of a byte slice, failing cleanly at its end.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        ensure!(n <= self.rest.len(), "unexpected end of file");
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn split(&mut self, n: usize, maxlen: usize) -> Result<Split> {
        let x = self
            .take(n * maxlen * 4)?
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let y = self.take(n)?.to_vec();
        Ok(Split { x, y, maxlen })
    }
}
