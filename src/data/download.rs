//! Getting a verified archive: from an http(s) URL (kept in the data
//! folder, resumed with a range request after a broken connection, with
//! growing waits between attempts) or from a local path. Nothing is used
//! before its size (when known) and sha256 check out, and a download whose
//! sha256 is not known is kept only once it has been read end to end; a
//! file that fails is moved aside to `<name>.bad`.
use std::fs::{self, File};
use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use reqwest::blocking::{Client, Response};
use reqwest::header::{CONTENT_RANGE, RANGE};
use reqwest::{StatusCode, Url};
use sha2::{Digest, Sha256};

use super::{CANONICAL_SHA256, CANONICAL_URL};
use crate::atomic::write_atomically;
use crate::disk;
use crate::progress::can_draw_bars;

/// Size of the canonical `aclImdb_v1.tar.gz`.
pub const CANONICAL_SIZE: u64 = 84_125_825;
/// Connections that die mid-body are resumed up to this many times in all.
const MAX_ATTEMPTS: usize = 5;
/// The wait before the first resume; it doubles before each next one, up to
/// `MAX_RETRY_DELAY`, so a struggling server gets time to recover.
const RETRY_DELAY: Duration = Duration::from_millis(500);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(8);
/// Replaces `RETRY_DELAY` (in milliseconds): the tests set it, to exercise
/// the retries without waiting seconds for them.
const RETRY_DELAY_VAR: &str = "GRU_IMDB_RETRY_DELAY_MS";
/// The name the archive is kept under when the URL's path names no file.
const DEFAULT_NAME: &str = "aclImdb_v1.tar.gz";

/// Where the archive comes from.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    Remote(Url),
    Local(PathBuf),
}

impl Source {
    /// `--data-url`: an http(s) URL, a `file://` URL, or a local path.
    pub fn parse(url: &str) -> Result<Source> {
        if !url.contains("://") {
            return Ok(Source::Local(PathBuf::from(url)));
        }
        let parsed = Url::parse(url).with_context(|| format!("bad --data-url {url}"))?;
        match parsed.scheme() {
            "http" | "https" => Ok(Source::Remote(parsed)),
            "file" => parsed
                .to_file_path()
                .map(Source::Local)
                .map_err(|()| anyhow!("bad --data-url {url}: not a local file path")),
            other => bail!("bad --data-url {url}: scheme {other} is not http, https or file"),
        }
    }
}

/// The sha256 the archive must have: `--data-sha256` if given (checked by
/// the settings; lower-cased here), else the canonical one for the
/// canonical URL, else none.
pub(crate) fn expected_sha256(url: &str, pinned: Option<&str>) -> Option<String> {
    match pinned {
        Some(sha) => Some(sha.to_ascii_lowercase()),
        None if url == CANONICAL_URL => Some(CANONICAL_SHA256.to_owned()),
        None => None,
    }
}

/// Obtains the archive and hands it, with its sha256, to `read`, which
/// reads it end to end (or finds the cache of a file with that sha256, read
/// before) and returns what it read. An archive whose sha256 is known is
/// checked against it before `read` sees it. One whose sha256 is not known
/// has only `read` to vouch for it: a download is kept under its final name,
/// and its sha256 offered for pinning, only once `read` succeeded on it, and
/// a download or kept file that `read` fails on is moved aside to
/// `<name>.bad`, so that a truncated file or an error page never sticks.
pub(crate) fn obtain<T>(
    source: &Source,
    data_dir: &Path,
    expected: Option<&str>,
    progress: bool,
    mut read: impl FnMut(&Path, &str) -> Result<T>,
) -> Result<T> {
    let (out, sha) = match source {
        Source::Local(path) => match check(path, None, expected)
            .with_context(|| format!("cannot read --data-url {}", path.display()))?
        {
            Check::Good(sha) => (read(path, &sha)?, sha),
            Check::Bad(why) => bail!("--data-url {}: {why}", path.display()),
        },
        Source::Remote(url) => {
            // The canonical size is known only for the canonical file.
            let size = (url.as_str() == CANONICAL_URL && expected == Some(CANONICAL_SHA256))
                .then_some(CANONICAL_SIZE);
            let wanted = Wanted {
                url,
                dest: data_dir.join(file_name(url)),
                size,
                expected,
            };
            kept_or_downloaded(&wanted, progress, &mut read)?
        }
    };
    if expected.is_none() {
        let what = match source {
            Source::Local(path) => path.display().to_string(),
            Source::Remote(url) => url.to_string(),
        };
        eprintln!("sha256 of {what}: {sha} (pass --data-sha256 {sha} to pin it)");
    }
    Ok(out)
}

/// The last segment of the URL's path, if it is a plain file name.
fn file_name(url: &Url) -> String {
    let last = url.path_segments().and_then(|mut s| s.next_back());
    match last {
        Some(name)
            if !name.is_empty()
                && !name.starts_with('.')
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) =>
        {
            name.to_owned()
        }
        _ => DEFAULT_NAME.to_owned(),
    }
}

/// A remote archive: where it comes from, where it is kept, and what is
/// known about it.
struct Wanted<'a> {
    url: &'a Url,
    dest: PathBuf,
    size: Option<u64>,
    expected: Option<&'a str>,
}

/// `read`'s result and the sha256 of the archive it read.
type ReadArchive<T> = (T, String);

fn kept_or_downloaded<T>(
    wanted: &Wanted,
    progress: bool,
    read: &mut impl FnMut(&Path, &str) -> Result<T>,
) -> Result<ReadArchive<T>> {
    let part = with_suffix(&wanted.dest, ".part");
    // Without a sha256 to check them by, a kept file or a partial download
    // of another URL is not this archive. (One kept by an earlier version,
    // with no note, is still tried: reading it vouches for it, as then.)
    let note = fs::read_to_string(source_note(&wanted.dest)).ok();
    let noted = note.as_deref().map(str::trim_end);
    let same_source =
        wanted.expected.is_some() || noted.is_none_or(|noted| noted == wanted.url.as_str());
    if !same_source && part.exists() {
        disk::remove_file(&part).with_context(|| format!("cannot remove {}", part.display()))?;
    }
    if wanted.dest.exists() && same_source {
        if let Some(done) = kept(wanted, read)? {
            return Ok(done);
        }
    }
    if wanted.expected.is_none() && noted != Some(wanted.url.as_str()) {
        write_atomically(&source_note(&wanted.dest), |out| {
            writeln!(out, "{}", wanted.url)
        })?;
    }
    let sha = downloaded(wanted, &part, progress).inspect_err(|_| {
        // The note is only worth keeping beside a file it describes.
        if !part.exists() && !wanted.dest.exists() {
            let _ = disk::remove_file(&source_note(&wanted.dest));
        }
    })?;
    if wanted.expected.is_some() {
        publish(&part, &wanted.dest)?;
        return Ok((read(&wanted.dest, &sha)?, sha));
    }
    match read(&part, &sha) {
        Ok(out) => {
            publish(&part, &wanted.dest)?;
            Ok((out, sha))
        }
        Err(e) => {
            let bad = move_aside(&part)?;
            Err(e.context(format!(
                "the download of {} is not a readable archive; it was moved to {} \
                 and the next run downloads it again",
                wanted.url,
                bad.display()
            )))
        }
    }
}

/// `<name>.url` beside an archive kept without a pinned sha256: the URL it
/// (or its `.part`) was downloaded from. Another URL whose file has the
/// same name is not the same archive, and is downloaded anew.
fn source_note(dest: &Path) -> PathBuf {
    with_suffix(dest, ".url")
}

/// The kept archive, read, if it checks out and (when nothing vouches for
/// it but reading) reads; `None` once it has been moved aside.
fn kept<T>(
    wanted: &Wanted,
    read: &mut impl FnMut(&Path, &str) -> Result<T>,
) -> Result<Option<ReadArchive<T>>> {
    let dest = &wanted.dest;
    let why = match check(dest, wanted.size, wanted.expected)? {
        Check::Good(sha) if wanted.expected.is_some() => return Ok(Some((read(dest, &sha)?, sha))),
        Check::Good(sha) => match read(dest, &sha) {
            Ok(out) => return Ok(Some((out, sha))),
            Err(e) => format!("not a readable archive ({e:#})"),
        },
        Check::Bad(why) => why,
    };
    let bad = move_aside(dest)?;
    eprintln!(
        "{}: {why}; moved to {}, downloading again",
        dest.display(),
        bad.display()
    );
    Ok(None)
}

/// Downloads into `part` and checks the size and sha256 (if known); returns
/// the sha256. A file that fails is moved aside.
fn downloaded(wanted: &Wanted, part: &Path, progress: bool) -> Result<String> {
    let url = wanted.url;
    let size = download(url, part, wanted.size, progress)?;
    match check(part, size, wanted.expected)? {
        Check::Good(sha) => Ok(sha),
        Check::Bad(why) => {
            let bad = move_aside(part)?;
            bail!(
                "download of {url} failed verification: {why}; the file was moved to {}",
                bad.display()
            )
        }
    }
}

/// Renames a finished download to its final name, durably: its bytes are
/// synced before the rename and the rename after it, so that a crash never
/// leaves the final name over bytes that did not reach the disk. (A `.part`
/// finished by an earlier run may never have been synced.)
fn publish(part: &Path, dest: &Path) -> Result<()> {
    crate::atomic::sync(part)?;
    disk::rename(part, dest)
        .with_context(|| format!("cannot rename {} to {}", part.display(), dest.display()))?;
    crate::atomic::sync_parent(dest)
}

/// Fetches `url` into `part`, resuming what is already there, and retrying
/// when a connection dies after delivering some bytes. Returns the file's
/// size as far as it is known: `size`, else what the server said.
fn download(url: &Url, part: &Path, mut size: Option<u64>, progress: bool) -> Result<Option<u64>> {
    let client = Client::builder()
        .user_agent(concat!("gru-imdb/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(30))
        // Per read: a stalled server fails instead of hanging forever.
        .timeout(Duration::from_secs(60))
        .build()
        .context("cannot start the HTTP client")?;
    let first_delay = first_retry_delay()?;
    let mut bar = Progress::new(progress && can_draw_bars(io::stderr().is_terminal()));
    let started = Instant::now();
    let mut attempt = 1;
    loop {
        match fetch_once(&client, url, part, &mut size, &mut bar)? {
            Fetched::Complete => {
                bar.finish(url, part, started.elapsed());
                return Ok(size);
            }
            Fetched::Interrupted(err) if attempt < MAX_ATTEMPTS => {
                let delay = retry_delay(first_delay, attempt);
                bar.note(&format!(
                    "download of {url} interrupted ({err:#}); resuming in {delay:?}"
                ));
                thread::sleep(delay);
                attempt += 1;
            }
            Fetched::Interrupted(err) => {
                return Err(err).with_context(|| {
                    format!(
                    "cannot download {url} ({MAX_ATTEMPTS} attempts; {} is kept for the next run)",
                    part.display()
                )
                })
            }
        }
    }
}

/// `RETRY_DELAY`, or what `RETRY_DELAY_VAR` says.
fn first_retry_delay() -> Result<Duration> {
    match std::env::var(RETRY_DELAY_VAR) {
        Err(_) => Ok(RETRY_DELAY),
        Ok(ms) => ms
            .parse()
            .map(Duration::from_millis)
            .with_context(|| format!("{RETRY_DELAY_VAR}={ms} is not a number of milliseconds")),
    }
}

/// The wait after failed attempt `attempt` (1-based): `first`, doubling
/// with each attempt, capped at `MAX_RETRY_DELAY`.
fn retry_delay(first: Duration, attempt: usize) -> Duration {
    let doublings = u32::try_from(attempt.saturating_sub(1)).unwrap_or(u32::MAX);
    first
        .saturating_mul(2u32.saturating_pow(doublings))
        .min(MAX_RETRY_DELAY)
}

enum Fetched {
    Complete,
    /// The connection broke after some progress: worth another attempt.
    Interrupted(anyhow::Error),
}

fn fetch_once(
    client: &Client,
    url: &Url,
    part: &Path,
    size: &mut Option<u64>,
    bar: &mut Progress,
) -> Result<Fetched> {
    let mut have = match fs::metadata(part) {
        Ok(meta) => meta.len(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", part.display())),
    };
    match *size {
        Some(total) if have == total => return Ok(Fetched::Complete),
        Some(total) if have > total => have = 0, // not a prefix of this file
        _ => {}
    }
    let mut request = client.get(url.clone());
    if have > 0 {
        request = request.header(RANGE, format!("bytes={have}-"));
    }
    let response = request.send().with_context(|| {
        format!(
            "cannot download {url} (offline? --data-url also takes a local copy of the archive)"
        )
    })?;
    let status = response.status();
    let append = match status {
        StatusCode::PARTIAL_CONTENT if have > 0 => {
            let (start, total) = content_range(&response)
                .with_context(|| format!("bad Content-Range from {url}"))?;
            if start != have {
                bail!("{url} answered the range request for byte {have} from byte {start}");
            }
            *size = size.or(total);
            true
        }
        StatusCode::OK => {
            if have > 0 {
                bar.note(&format!(
                    "{url} ignored the range request; downloading from the start"
                ));
            }
            *size = size.or(response.content_length());
            false
        }
        StatusCode::RANGE_NOT_SATISFIABLE if have > 0 => {
            // The partial file is longer than what the server has now.
            disk::remove_file(part).with_context(|| format!("cannot remove {}", part.display()))?;
            return Ok(Fetched::Interrupted(anyhow!(
                "HTTP {status}: {} did not fit",
                part.display()
            )));
        }
        _ => bail!("cannot download {url}: HTTP {status}"),
    };
    let file = if append {
        disk::open_append(part)
    } else {
        disk::create_file(part)
    };
    let mut file = file.with_context(|| format!("cannot write {}", part.display()))?;
    bar.start(url, part, *size, if append { have } else { 0 });
    copy_body(response, &mut file, bar, part)
}

/// Streams the body into `file`. A failed read is an interruption (worth
/// resuming) if it came after some bytes; a failed write is an error.
fn copy_body(
    mut body: Response,
    file: &mut File,
    bar: &mut Progress,
    part: &Path,
) -> Result<Fetched> {
    let mut buf = vec![0u8; 1 << 16];
    let mut received = 0u64;
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if received > 0 => return Ok(Fetched::Interrupted(e.into())),
            Err(e) => return Err(e).context("the connection failed before any data"),
        };
        file.write_all(&buf[..n])
            .with_context(|| format!("cannot write {}", part.display()))?;
        received += n as u64;
        bar.inc(n as u64);
    }
    // Synced by `publish`, once the file is kept: a `.part` is never trusted.
    Ok(Fetched::Complete)
}

/// `Content-Range: bytes <start>-<end>/<total or *>` -> (start, total).
fn content_range(response: &Response) -> Result<(u64, Option<u64>)> {
    let value = response
        .headers()
        .get(CONTENT_RANGE)
        .context("missing")?
        .to_str()?;
    let (range, total) = value
        .strip_prefix("bytes ")
        .and_then(|v| v.split_once('/'))
        .with_context(|| format!("'{value}'"))?;
    let start = range
        .split_once('-')
        .and_then(|(s, _)| s.parse().ok())
        .with_context(|| format!("'{value}'"))?;
    Ok((start, total.parse().ok()))
}

enum Check {
    Good(String),
    Bad(String),
}

/// Checks a file's size (if known) and sha256 (if known); the sha256 is
/// returned either way, since it keys the cache.
fn check(path: &Path, size: Option<u64>, expected: Option<&str>) -> Result<Check> {
    let len = fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    if let Some(size) = size.filter(|&s| s != len) {
        return Ok(Check::Bad(format!(
            "size mismatch: {len} bytes, expected {size}"
        )));
    }
    let sha = sha256_file(path)?;
    Ok(match expected {
        Some(want) if want != sha => {
            Check::Bad(format!("sha256 mismatch: got {sha}, expected {want}"))
        }
        _ => Check::Good(sha),
    })
}

pub(crate) fn sha256_file(path: &Path) -> Result<String> {
    let mut file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            return Ok(hex::encode(hasher.finalize()));
        }
        hasher.update(&buf[..n]);
    }
}

/// Renames a file that failed verification to `<name>.bad`, replacing an
/// older one: it is never used, but kept for a look.
fn move_aside(path: &Path) -> Result<PathBuf> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let name = name.strip_suffix(".part").unwrap_or(&name);
    let bad = path.with_file_name(format!("{name}.bad"));
    disk::rename(path, &bad)
        .with_context(|| format!("cannot move {} to {}", path.display(), bad.display()))?;
    Ok(bad)
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

/// A progress bar (bytes, rate, ETA) on a terminal, plain lines elsewhere.
struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    fn new(show_bar: bool) -> Self {
        let bar = show_bar.then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar
        });
        Progress { bar }
    }

    fn start(&mut self, url: &Url, part: &Path, size: Option<u64>, from: u64) {
        match &self.bar {
            Some(bar) => {
                if let Some(size) = size {
                    bar.set_length(size);
                }
                bar.set_message("downloading");
                bar.set_position(from);
                bar.reset_eta();
            }
            None => {
                let size = size.map_or("size unknown".to_owned(), |s| format!("{s} bytes"));
                let from = if from > 0 {
                    format!(", resuming at byte {from}")
                } else {
                    String::new()
                };
                eprintln!("downloading {url} to {} ({size}{from})", part.display());
            }
        }
    }

    fn inc(&mut self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(n);
        }
    }

    fn note(&mut self, message: &str) {
        match &self.bar {
            Some(bar) => bar.println(message),
            None => eprintln!("{message}"),
        }
    }

    fn finish(&mut self, url: &Url, part: &Path, elapsed: Duration) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        let len = fs::metadata(part).map(|m| m.len()).unwrap_or_default();
        eprintln!(
            "downloaded {url}: {len} bytes in {:.1} s",
            elapsed.as_secs_f64()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_wait_twice_as_long_each_time_up_to_a_cap() {
        let waits: Vec<f64> = (1..=7)
            .map(|attempt| retry_delay(RETRY_DELAY, attempt).as_secs_f64())
            .collect();
        assert_eq!(waits, [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]);
        assert_eq!(retry_delay(RETRY_DELAY, usize::MAX), MAX_RETRY_DELAY);
    }
}
