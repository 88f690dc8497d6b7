//! The prepared arrays, stats and vocabulary in one binary file, keyed by
//! the archive's sha256 and the options, so a second run skips the archive.
//!
//! Layout (little-endian): magic, format version, archive sha256, num_words,
//! maxlen, train and test row counts, vocabulary byte length, the four
//! stats; then x_train (i32), y_train (u8), x_test, y_test, the vocabulary
//! text; then the sha256 of everything before it. A file that is short,
//! long, for other options or fails the checksum is refused, never trusted.
use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, ensure, Context, Result};
use sha2::{Digest, Sha256};

use super::prepare::Prepared;
use super::printout::Stats;
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

/// Writes the cache file for `key` atomically, streaming the arrays through
/// the checksum rather than copying them into one buffer first (a million
/// texts make arrays of 400 MB).
pub(crate) fn save(path: &Path, key: &CacheKey, prepared: &Prepared) -> Result<()> {
    let ds = &prepared.dataset;
    let vocab = ds.vocab.to_text();
    let mut header = Vec::with_capacity(HEADER_LEN);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    header.extend_from_slice(&key.sha_bytes()?);
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
        header.extend_from_slice(&v.to_le_bytes());
    }
    write_atomically(path, |out| {
        let mut hashing = Hashing {
            out,
            hasher: Sha256::new(),
        };
        hashing.write_all(&header)?;
        for split in [&ds.train, &ds.test] {
            for chunk in split.x.chunks(1 << 16) {
                let bytes: Vec<u8> = chunk.iter().flat_map(|v| v.to_le_bytes()).collect();
                hashing.write_all(&bytes)?;
            }
            hashing.write_all(&split.y)?;
        }
        hashing.write_all(vocab.as_bytes())?;
        let checksum = hashing.hasher.finalize();
        hashing.out.write_all(&checksum)
    })
    .with_context(|| format!("cannot write the cache {}", path.display()))
}

/// Writes through to `out` and hashes what it wrote.
struct Hashing<'a, W: Write> {
    out: &'a mut W,
    hasher: Sha256,
}

impl<W: Write> Hashing<'_, W> {
    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.hasher.update(bytes);
        self.out.write_all(bytes)
    }
}

/// Reads the cache file for `key`: `Ok(None)` if there is none, an error
/// if it exists but is not a complete, intact cache for exactly `key`. The
/// file is streamed into the arrays while its checksum is computed, and
/// nothing is returned unless the checksum matches.
pub(crate) fn load(path: &Path, key: &CacheKey) -> Result<Option<Prepared>> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let read = |file: File| -> Result<Prepared> {
        let len = file.metadata()?.len();
        parse(BufReader::with_capacity(1 << 20, file), len, key)
    };
    read(file)
        .map(Some)
        .with_context(|| format!("bad cache file {}", path.display()))
}

fn parse(input: impl Read, file_len: u64, key: &CacheKey) -> Result<Prepared> {
    let mut r = Reader {
        input,
        hasher: Sha256::new(),
    };
    ensure!(&r.array::<8>()? == MAGIC, "not a gru-imdb cache file");
    let version = u32::from_le_bytes(r.array()?);
    ensure!(
        version == FORMAT_VERSION,
        "format version {version}, expected {FORMAT_VERSION}"
    );
    ensure!(
        r.array::<32>()?.as_slice() == key.sha_bytes()?,
        "made from another archive"
    );
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
    if expected != Some(file_len) {
        bail!("{file_len} bytes long, the header promises {expected:?} (truncated?)");
    }
    let maxlen = key.maxlen;
    let train = r.split(n_train as usize, maxlen)?;
    let test = r.split(n_test as usize, maxlen)?;
    let vocab = r.bytes(vocab_len as usize)?;
    let computed = r.hasher.finalize();
    let mut stored = [0u8; CHECKSUM_LEN];
    r.input
        .read_exact(&mut stored)
        .context("unexpected end of file")?;
    ensure!(
        computed.as_slice() == stored,
        "checksum mismatch (corrupt file)"
    );
    let vocab = std::str::from_utf8(&vocab).context("the vocabulary is not UTF-8")?;
    let vocab = Vocabulary::from_text(vocab)?;
    Ok(Prepared {
        dataset: Dataset { train, test, vocab },
        stats,
    })
}

/// Reads fields off the front of the file, hashing every byte it reads and
/// failing cleanly at its end.
struct Reader<R> {
    input: R,
    hasher: Sha256,
}

impl<R: Read> Reader<R> {
    fn fill(&mut self, buf: &mut [u8]) -> Result<()> {
        self.input.read_exact(buf).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => anyhow!("unexpected end of file"),
            _ => anyhow!("cannot read it: {e}"),
        })?;
        self.hasher.update(&*buf);
        Ok(())
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0; N];
        self.fill(&mut out)?;
        Ok(out)
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn bytes(&mut self, n: usize) -> Result<Vec<u8>> {
        let mut out = vec![0; n];
        self.fill(&mut out)?;
        Ok(out)
    }

    /// `n` rows of `maxlen` ids, then their `n` labels; the ids in chunks,
    /// so no second copy of them is ever held as bytes.
    fn split(&mut self, n: usize, maxlen: usize) -> Result<Split> {
        let mut x = Vec::with_capacity(n * maxlen);
        let mut chunk = vec![0u8; 4 << 16];
        let mut left = n * maxlen * 4;
        while left > 0 {
            let part = &mut chunk[..left.min(4 << 16)];
            self.fill(part)?;
            x.extend(
                part.chunks_exact(4)
                    .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            );
            left -= part.len();
        }
        let y = self.bytes(n)?;
        Ok(Split { x, y, maxlen })
    }
}
