//! Where training time goes, phase by phase (`train --profile`): each
//! phase's wall time is summed over an epoch and printed as a table with
//! its share, so the cost around the GRU kernel stays visible as the code
//! changes. Off unless asked for: then a phase costs one relaxed atomic
//! load.
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The phases of a training epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Dropout masks and the batch's rows. Of what the step before
    /// prepared on a second thread beside its head (`train/next_batch.rs`:
    /// the masks, the rows and Adam's grouping), only the time the head
    /// did not hide.
    Batch,
    /// Embedding lookup of the batch's ids.
    Embedding,
    /// The GRU layer's forward pass.
    GruForward,
    /// Dense layer, loss and their gradients (libtorch ops and autograd).
    DenseAndLoss,
    /// The GRU layer's backward pass through time.
    GruBackward,
    /// The embedding gradient: each position's gradient summed into its
    /// token's row.
    EmbeddingGradient,
    Adam,
    /// The end-of-epoch evaluation.
    Validation,
}

impl Phase {
    const ALL: [Phase; 8] = [
        Phase::Batch,
        Phase::Embedding,
        Phase::GruForward,
        Phase::DenseAndLoss,
        Phase::GruBackward,
        Phase::EmbeddingGradient,
        Phase::Adam,
        Phase::Validation,
    ];

    fn name(self) -> &'static str {
        match self {
            Phase::Batch => "batch (masks, rows)",
            Phase::Embedding => "embedding lookup",
            Phase::GruForward => "GRU forward",
            Phase::DenseAndLoss => "dense, loss, autograd",
            Phase::GruBackward => "GRU backward",
            Phase::EmbeddingGradient => "embedding gradient",
            Phase::Adam => "Adam",
            Phase::Validation => "validation",
        }
    }
}

static ENABLED: AtomicBool = AtomicBool::new(false);
static NANOS: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];

/// Starts summing phase times (for this process).
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// A GPU to wait for at the end of each phase (-1: none). Work on a GPU is
/// asynchronous: without the wait a phase's time would be only that of
/// queueing its launches, and the GPU's time would land in whichever phase
/// next reads a result.
static GPU: AtomicI64 = AtomicI64::new(-1);

/// Profiles on GPU `ordinal`: each phase waits for it (which slows the
/// epoch a little, by the lost overlap of host and GPU work).
pub fn synchronize_gpu(ordinal: usize) {
    GPU.store(ordinal as i64, Ordering::Relaxed);
}

/// Runs `f`, adding its wall time to `phase` when profiling.
pub fn time<T>(phase: Phase, f: impl FnOnce() -> T) -> T {
    if !ENABLED.load(Ordering::Relaxed) {
        return f();
    }
    let started = Instant::now();
    let result = f();
    let gpu = GPU.load(Ordering::Relaxed);
    if gpu >= 0 {
        tch::Cuda::synchronize(gpu);
    }
    add(phase, started.elapsed());
    result
}

/// Adds `elapsed` to `phase` when profiling: for time that is not one
/// closure's, such as a wait for work done on another thread.
pub fn add(phase: Phase, elapsed: Duration) {
    if ENABLED.load(Ordering::Relaxed) {
        NANOS[phase as usize].fetch_add(elapsed.as_nanos() as u64, Ordering::Relaxed);
    }
}

/// The phases' table for an epoch of `epoch_seconds`, and resets the sums;
/// `None` when not profiling.
pub fn take_table(epoch_seconds: f64) -> Option<String> {
    if !ENABLED.load(Ordering::Relaxed) {
        return None;
    }
    let mut table = format!("{:<24} {:>9} {:>7}\n", "phase", "seconds", "share");
    let mut counted = 0.0;
    for phase in Phase::ALL {
        let seconds = NANOS[phase as usize].swap(0, Ordering::Relaxed) as f64 * 1e-9;
        counted += seconds;
        let share = 100.0 * seconds / epoch_seconds;
        table += &format!("{:<24} {seconds:>9.3} {share:>6.1}%\n", phase.name());
    }
    let other = epoch_seconds - counted;
    table += &format!(
        "{:<24} {other:>9.3} {:>6.1}%\n{:<24} {epoch_seconds:>9.3} {:>6.1}%",
        "other",
        100.0 * other / epoch_seconds,
        "epoch",
        100.0
    );
    Some(table)
}
