//! Per-call times of the fused GRU kernel at the tutorial's sizes
//! (T = 100, D = 128, H = 64). `cargo bench --bench gru_cpu`; set
//! `GRU_BENCH_THREADS` (default 2) and `GRU_BENCH_REPS` (default 30) to
//! vary, and `GRU_BENCH_ONLY` to run only the rows whose name contains it.
//! Prints the best and the median of the repetitions (the machine is shared:
//! the best is the one to compare) and GFLOP/s counted from the matrix
//! products alone.
//!
//! Best of 3 x 40 calls on the 2-core AMD EPYC (Zen 4) VM, AVX-512 kernels,
//! 2 threads, quiet machine (no other builds; load from this bench only):
//!
//! | call                                   | best     | GFLOP/s | reviews/s |
//! |----------------------------------------|----------|---------|-----------|
//! | train fwd+bwd B=32, per-gate masks     | 3.85 ms  | 184     |  8,300    |
//! | train forward B=32 (taped)             | 1.31 ms  | 180     |           |
//! | train backward B=32                    | 2.42 ms  | 195     |           |
//! | train fwd+bwd B=8 (last batch)         | 1.02 ms  | 174     |           |
//! | eval forward B=32, no masks            | 1.26 ms  | 187     | 25,400    |
//! | eval forward B=1024, no masks          | 41.8 ms  | 181     | 24,500    |
//! | projection_table V=10000               | 2.54 ms  | 194     |           |
//! | eval forward_from_table B=32           | 0.545 ms | 144     | 58,800    |
//! | eval forward_from_table B=1024         | 16.5 ms  | 153     | 62,200    |
//!
//! The two cores peak at about 232 GFLOP/s (a register-only FMA loop: 116
//! per core); one thread runs fwd+bwd B=32 in 8.6 ms.
use gru_imdb::gru_cpu::{self, GruWeights, InputMasks, Tape};
use std::time::{Duration, Instant};

const T: usize = 100;
const D: usize = 128;
const H: usize = 64;
const VOCAB: usize = 10_000;

/// Deterministic pseudo-random floats in [-scale, scale].
fn data(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

fn masks(n: usize, seed: u64) -> Vec<f32> {
    data(n, seed, 1.0)
        .into_iter()
        .map(|v| if v < -0.6 { 0.0 } else { 1.25 })
        .collect()
}

/// Best and median of `reps` timed calls after one warm-up call.
fn time(reps: usize, mut f: impl FnMut()) -> (Duration, Duration) {
    f();
    let mut ts: Vec<Duration> = (0..reps)
        .map(|_| {
            let t0 = Instant::now();
            f();
            t0.elapsed()
        })
        .collect();
    ts.sort();
    (ts[0], ts[reps / 2])
}

/// Times `f` (see `time`) and prints a row, if `name` contains `only`.
fn bench(only: &str, name: &str, reps: usize, flop: f64, reviews: usize, f: impl FnMut()) {
    if !name.contains(only) {
        return;
    }
    let (best, median) = time(reps, f);
    let b = best.as_secs_f64();
    println!(
        "{name:<44} best {:>8.3} ms  median {:>8.3} ms  {:>6.1} GFLOP/s  {:>9.0} reviews/s",
        b * 1e3,
        median.as_secs_f64() * 1e3,
        flop / b / 1e9,
        reviews as f64 / b
    );
}

fn main() {
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let threads = env("GRU_BENCH_THREADS", 2);
    let reps = env("GRU_BENCH_REPS", 30);
    let only = std::env::var("GRU_BENCH_ONLY").unwrap_or_default();
    println!(
        "gru_cpu bench: {} kernels, {threads} threads, T={T} D={D} H={H}, {reps} reps",
        gru_cpu::instruction_set()
    );
    let kernel = data(D * 3 * H, 1, 0.15);
    let bias = data(3 * H, 2, 0.1);
    let rkernel = data(H * 3 * H, 3, 0.2);
    let rbias = data(3 * H, 4, 0.1);
    let w = GruWeights {
        input_dim: D,
        units: H,
        kernel: &kernel,
        bias: &bias,
        recurrent_kernel: &rkernel,
        recurrent_bias: &rbias,
    };
    let per_review_fwd = 2.0 * T as f64 * (D * 3 * H + H * 3 * H) as f64;
    let per_review_bwd = 2.0 * per_review_fwd;

    for b in [32, 8] {
        let x = data(b * T * D, 5, 0.05);
        let mx = masks(3 * b * D, 6);
        let mh = masks(3 * b * H, 7);
        let dh = data(b * H, 8, 1.0);
        let mut tape = Tape::default();
        let flop = (per_review_fwd + per_review_bwd) * b as f64;
        bench(
            &only,
            &format!("train fwd+bwd B={b}, per-gate masks"),
            reps,
            flop,
            b,
            || {
                gru_cpu::forward(
                    &w,
                    &x,
                    b,
                    T,
                    InputMasks::PerGate(&mx),
                    Some(&mh),
                    Some(&mut tape),
                    threads,
                );
                gru_cpu::backward(&w, &x, &mut tape, &dh, threads);
            },
        );
        if b == 32 {
            let flop = per_review_fwd * b as f64;
            bench(&only, "train forward B=32 (taped)", reps, flop, b, || {
                gru_cpu::forward(
                    &w,
                    &x,
                    b,
                    T,
                    InputMasks::PerGate(&mx),
                    Some(&mh),
                    Some(&mut tape),
                    threads,
                );
            });
            gru_cpu::forward(
                &w,
                &x,
                b,
                T,
                InputMasks::PerGate(&mx),
                Some(&mh),
                Some(&mut tape),
                threads,
            );
            let flop = per_review_bwd * b as f64;
            bench(&only, "train backward B=32", reps, flop, b, || {
                gru_cpu::backward(&w, &x, &mut tape, &dh, threads);
            });
        }
    }
    for b in [32, 1024] {
        let x = data(b * T * D, 9, 0.05);
        let r = if b > 100 { reps.div_ceil(5) } else { reps };
        let flop = per_review_fwd * b as f64;
        bench(
            &only,
            &format!("eval forward B={b}, no masks"),
            r,
            flop,
            b,
            || {
                gru_cpu::forward(&w, &x, b, T, InputMasks::None, None, None, threads);
            },
        );
    }
    let emb = data(VOCAB * D, 10, 0.05);
    let mut table = gru_cpu::projection_table(&w, &emb, threads);
    let flop = 2.0 * (VOCAB * D * 3 * H) as f64;
    bench(
        &only,
        "eval projection_table V=10000",
        reps.div_ceil(5),
        flop,
        0,
        || table = gru_cpu::projection_table(&w, &emb, threads),
    );
    let per_review_table = 2.0 * T as f64 * (H * 3 * H) as f64;
    for b in [32, 1024] {
        let ids: Vec<i64> = data(b * T, 11, 1.0)
            .iter()
            .map(|v| ((v + 1.0) * 4999.0) as i64)
            .collect();
        let r = if b > 100 { reps.div_ceil(5) } else { reps };
        let flop = per_review_table * b as f64;
        bench(
            &only,
            &format!("eval forward_from_table B={b}"),
            r,
            flop,
            b,
            || {
                gru_cpu::forward_from_table(&w, &table, &ids, b, T, threads);
            },
        );
    }
}
