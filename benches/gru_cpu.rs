//! Per-call times of the fused GRU kernel at the tutorial's sizes
//! (T = 100, D = 128, H = 64). `cargo bench --bench gru_cpu`; set
//! `GRU_BENCH_THREADS` (default 2) and `GRU_BENCH_REPS` (default 30) to
//! vary, `GRU_BENCH_ONLY` to run only the rows whose name contains it, and
//! `GRU_BENCH_ISA` (`avx2+fma`, `scalar`, ...) to time another instruction
//! set than the best this CPU has.
//! Prints the best and the median of the repetitions (the machine is shared:
//! the best is the one to compare), GFLOP/s counted from the matrix
//! products alone, and that as a share of the machine's FMA peak, measured
//! first in the same run (a register-only loop of fused multiply-adds on as
//! many threads, with the same instruction set), since these machines are
//! shared and a peak from another day says little.
//!
//! Best of 40 calls on the 2-core AMD EPYC (Zen 5) VM, AVX-512 kernels,
//! 2 threads, no other builds (the host is shared; `docs/cpu.md` has the
//! same sitting's epoch):
//!
//! | call                                   | best     | GFLOP/s | share | reviews/s |
//! |----------------------------------------|----------|---------|-------|-----------|
//! | train fwd+bwd B=32, per-gate masks     | 1.72 ms  | 411     | 76%   |  18,600   |
//! | train forward B=32 (taped)             | 0.638 ms | 370     | 69%   |           |
//! | train backward B=32                    | 1.12 ms  | 423     | 78%   |           |
//! | train fwd+bwd B=8 (last batch)         | 0.457 ms | 387     | 72%   |           |
//! | eval forward B=32, no masks            | 0.572 ms | 412     | 76%   |  55,900   |
//! | eval forward B=1024, no masks          | 20.5 ms  | 368     | 68%   |  49,900   |
//! | projection_table V=10000               | 1.06 ms  | 465     | 86%   |           |
//! | eval forward_from_table B=32           | 0.257 ms | 306     | 57%   | 124,600   |
//! | eval forward_from_table B=1024         | 7.72 ms  | 326     | 60%   | 132,700   |
//!
//! The two cores peaked at 539 GFLOP/s in the same run (a register-only FMA
//! loop); with AVX2 forced, 264-268, and train fwd+bwd B=32 took 3.12 ms
//! (85-86%).
use gru_imdb::gru_cpu::{Engine, GruWeights, InputMasks, Masks, Sequences, Tape, TokenIds};
use std::time::{Duration, Instant};

const T: usize = 100;
const D: usize = 128;
const H: usize = 64;
const VOCAB: usize = 10_000;
/// Floating-point operations of one review's forward pass.
const PER_REVIEW_FWD: f64 = 2.0 * T as f64 * (D * 3 * H + H * 3 * H) as f64;
/// And of its backward pass: twice the forward's.
const PER_REVIEW_BWD: f64 = 2.0 * PER_REVIEW_FWD;

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

/// What every row of the bench shares.
struct Bench<'a> {
    engine: Engine,
    w: GruWeights<'a>,
    /// Runs only the rows whose name contains this.
    only: String,
    reps: usize,
    /// GFLOP/s of the FMA loop, for the share column.
    peak: f64,
}

/// One row's name and what its work counts for.
struct Row {
    name: String,
    reps: usize,
    /// Floating-point operations of the matrix products of one call.
    flop: f64,
    /// Reviews one call processes (0: not a per-review call).
    reviews: usize,
}

impl Bench<'_> {
    /// Times `f` (see `time`) and prints a row, if its name contains `only`.
    fn run(&self, row: Row, f: impl FnMut()) {
        let Row {
            name,
            reps,
            flop,
            reviews,
        } = row;
        if !name.contains(&self.only) {
            return;
        }
        let (best, median) = time(reps, f);
        let b = best.as_secs_f64();
        let gflops = flop / b / 1e9;
        println!(
            "{name:<44} best {:>8.3} ms  median {:>8.3} ms  {gflops:>6.1} GFLOP/s {:>4.0}% of peak  {:>9.0} reviews/s",
            b * 1e3,
            median.as_secs_f64() * 1e3,
            100.0 * gflops / self.peak,
            reviews as f64 / b
        );
    }

    /// Fewer repetitions for the long calls of large batches.
    fn reps_for(&self, batch: usize) -> usize {
        if batch > 100 {
            self.reps.div_ceil(5)
        } else {
            self.reps
        }
    }

    /// Training calls, with per-gate input and recurrent masks.
    fn training(&self, b: usize) {
        let (engine, w) = (self.engine, &self.w);
        let x = data(b * T * D, 5, 0.05);
        let x = Sequences {
            data: &x,
            batch: b,
            steps: T,
        };
        let mx = masks(3 * b * D, 6);
        let mh = masks(3 * b * H, 7);
        let dropout = Masks {
            input: InputMasks::PerGate(&mx),
            recurrent: Some(&mh),
        };
        let dh = data(b * H, 8, 1.0);
        let mut d_x = vec![0.0; b * T * D];
        let mut tape = Tape::default();
        let flop = (PER_REVIEW_FWD + PER_REVIEW_BWD) * b as f64;
        let row = Row {
            name: format!("train fwd+bwd B={b}, per-gate masks"),
            reps: self.reps,
            flop,
            reviews: b,
        };
        self.run(row, || {
            engine.forward(w, x, dropout, Some(&mut tape));
            engine.backward(w, x.data, &mut tape, &dh, &mut d_x);
        });
        if b != 32 {
            return;
        }
        let row = Row {
            name: "train forward B=32 (taped)".into(),
            reps: self.reps,
            flop: PER_REVIEW_FWD * b as f64,
            reviews: b,
        };
        self.run(row, || {
            engine.forward(w, x, dropout, Some(&mut tape));
        });
        engine.forward(w, x, dropout, Some(&mut tape));
        let row = Row {
            name: "train backward B=32".into(),
            reps: self.reps,
            flop: PER_REVIEW_BWD * b as f64,
            reviews: b,
        };
        self.run(row, || {
            engine.backward(w, x.data, &mut tape, &dh, &mut d_x);
        });
    }

    /// Evaluation from embedded inputs, without masks.
    fn evaluation(&self, b: usize) {
        let x = data(b * T * D, 9, 0.05);
        let x = Sequences {
            data: &x,
            batch: b,
            steps: T,
        };
        let row = Row {
            name: format!("eval forward B={b}, no masks"),
            reps: self.reps_for(b),
            flop: PER_REVIEW_FWD * b as f64,
            reviews: b,
        };
        self.run(row, || {
            self.engine.forward(&self.w, x, Masks::NONE, None);
        });
    }

    /// The projection table, then evaluation from it.
    fn table_evaluation(&self) {
        let (engine, w) = (self.engine, &self.w);
        let emb = data(VOCAB * D, 10, 0.05);
        let mut table = engine.projection_table(w, &emb);
        let flop = 2.0 * (VOCAB * D * 3 * H) as f64;
        let row = Row {
            name: "eval projection_table V=10000".into(),
            reps: self.reps.div_ceil(5),
            flop,
            reviews: 0,
        };
        self.run(row, || table = engine.projection_table(w, &emb));
        let per_review_table = 2.0 * T as f64 * (H * 3 * H) as f64;
        for b in [32, 1024] {
            let ids: Vec<i64> = data(b * T, 11, 1.0)
                .iter()
                .map(|v| ((v + 1.0) * 4999.0) as i64)
                .collect();
            let ids = TokenIds {
                ids: &ids,
                batch: b,
                steps: T,
            };
            let row = Row {
                name: format!("eval forward_from_table B={b}"),
                reps: self.reps_for(b),
                flop: per_review_table * b as f64,
                reviews: b,
            };
            self.run(row, || {
                engine.forward_from_table(w, &table, ids);
            });
        }
    }
}

/// The FMA peak: register-only fused multiply-adds on independent
/// accumulators (enough to cover the FMA latency on both FMA units), on
/// `threads` threads at once.
mod peak {
    use std::time::Instant;

    /// GFLOP/s of `threads` threads running `isa`'s FMA loop for about
    /// `seconds`; `None` for an instruction set without FMA.
    pub fn gflops(isa: &str, threads: usize, seconds: f64) -> Option<f64> {
        let (flop_per_iter, run): (f64, fn(u64) -> f32) = match isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY (both arms): the engine picked this instruction set
            // because the CPU has it.
            "avx512f" => (2.0 * 16.0 * 12.0, |n| unsafe { avx512(n) }),
            #[cfg(target_arch = "x86_64")]
            "avx2+fma" => (2.0 * 8.0 * 10.0, |n| unsafe { avx2(n) }),
            _ => return None,
        };
        // Calibrate the iteration count on one thread, then time them all.
        let probe = 1_000_000u64;
        let started = Instant::now();
        std::hint::black_box(run(probe));
        let iters = (probe as f64 * seconds / started.elapsed().as_secs_f64()) as u64;
        let started = Instant::now();
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| std::hint::black_box(run(iters)));
            }
        });
        let flop = flop_per_iter * iters as f64 * threads as f64;
        Some(flop / started.elapsed().as_secs_f64() / 1e9)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn avx512(iters: u64) -> f32 {
        use std::arch::x86_64::*;
        let (a, b) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-6));
        let mut acc = [std::hint::black_box(_mm512_set1_ps(1.0)); 12];
        for _ in 0..iters {
            for v in &mut acc {
                *v = _mm512_fmadd_ps(*v, a, b);
            }
        }
        acc.iter().map(|v| _mm512_reduce_add_ps(*v)).sum()
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn avx2(iters: u64) -> f32 {
        use std::arch::x86_64::*;
        let (a, b) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-6));
        let mut acc = [std::hint::black_box(_mm256_set1_ps(1.0)); 10];
        for _ in 0..iters {
            for v in &mut acc {
                *v = _mm256_fmadd_ps(*v, a, b);
            }
        }
        let mut lanes = [0.0f32; 8];
        acc.iter()
            .map(|v| {
                _mm256_storeu_ps(lanes.as_mut_ptr(), *v);
                lanes.iter().sum::<f32>()
            })
            .sum()
    }
}

/// The engine `GRU_BENCH_ISA` names, else the best for this CPU.
fn engine(threads: usize) -> Result<Engine, String> {
    let Ok(wanted) = std::env::var("GRU_BENCH_ISA") else {
        return Ok(Engine::new(threads));
    };
    let all = Engine::all_available(threads);
    let names: Vec<&str> = all.iter().map(Engine::instruction_set).collect();
    all.iter()
        .copied()
        .find(|e| e.instruction_set() == wanted)
        .ok_or(format!("GRU_BENCH_ISA={wanted}: this CPU has {names:?}"))
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
    let engine = engine(threads).unwrap_or_else(|e| {
        eprintln!("gru_cpu bench: {e}");
        std::process::exit(2)
    });
    let isa = engine.instruction_set();
    // The best of three, as for the rows.
    let peak = (0..3)
        .filter_map(|_| peak::gflops(isa, threads, 0.3))
        .fold(f64::NAN, f64::max);
    println!(
        "gru_cpu bench: {isa} kernels, {threads} threads, T={T} D={D} H={H}, {reps} reps; \
         FMA peak {peak:.1} GFLOP/s"
    );
    let kernel = data(D * 3 * H, 1, 0.15);
    let bias = data(3 * H, 2, 0.1);
    let rkernel = data(H * 3 * H, 3, 0.2);
    let rbias = data(3 * H, 4, 0.1);
    let bench = Bench {
        engine,
        w: GruWeights {
            input_dim: D,
            units: H,
            kernel: &kernel,
            bias: &bias,
            recurrent_kernel: &rkernel,
            recurrent_bias: &rbias,
        },
        only: std::env::var("GRU_BENCH_ONLY").unwrap_or_default(),
        reps,
        peak,
    };
    for b in [32, 8] {
        bench.training(b);
    }
    for b in [32, 1024] {
        bench.evaluation(b);
    }
    bench.table_evaluation();
}
