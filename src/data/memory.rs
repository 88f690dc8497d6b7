//! What the prepared arrays cost in memory, checked before they are made:
//! a `--maxlen` too long for this machine is refused with the flag named,
//! not killed by the kernel half-way through padding.
use anyhow::{ensure, Result};

/// Reviews in IMDB's two splits, what the memory estimate counts on
/// before a user's texts are read.
pub const IMDB_REVIEWS: usize = 50_000;

/// The arrays of `samples` texts padded to `maxlen`: ids (i32) and what
/// training copies of them.
pub fn padded_texts_bytes(samples: usize, maxlen: usize) -> f64 {
    samples as f64 * maxlen as f64 * (4.0 + 8.0)
}

/// Refuses a `--maxlen` whose padded arrays of `samples` texts alone cannot
/// fit in the memory available now: what `data` checks, which trains
/// nothing, before it pads.
pub fn check_padded_texts_memory(maxlen: usize, samples: usize) -> Result<()> {
    let Some(available) = available_memory() else {
        return Ok(());
    };
    let needed = padded_texts_bytes(samples, maxlen);
    let gib = |bytes: f64| bytes / (1u64 << 30) as f64;
    ensure!(
        needed <= available,
        "{samples} texts padded to --maxlen {maxlen} need about {:.1} GiB, but {:.1} GiB of \
         memory is available: lower --maxlen",
        gib(needed),
        gib(available)
    );
    Ok(())
}

/// `MemAvailable` of /proc/meminfo, in bytes (Linux); `None` elsewhere.
pub fn available_memory() -> Option<f64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024.0)
}
