//! Per-step times of Adam on the tutorial's embedding (10,000 x 128) at
//! batch 32 x 100 positions, with the embedding's gradient by position
//! (`optim/embedding_rows.rs`, the CPU kernel's path) under `adam` and
//! `lazy-adam` and, for comparison, summed into a dense `[N, D]` gradient
//! first (the sum timed too, as libtorch's `index_add`). Between steps, a
//! pass over a 6 MB buffer stands for the GRU's forward and backward,
//! which push the table out of the core's cache. `cargo bench --bench
//! adam`; `ADAM_BENCH_ROWS` (default 10,000), `ADAM_BENCH_THREADS`
//! (default 2), `ADAM_BENCH_STEPS` (default 300).
use std::time::{Duration, Instant};

use gru_imdb::model::{Gradient, Parameters, PositionGradients};
use gru_imdb::optim::{Adam, AdamConfig, Optimizer};
use tch::{Device, Kind, Tensor};

const D: i64 = 128;
const B: i64 = 32;
const T: i64 = 100;

/// Token ids with the skew of word counts: row r drawn with weight
/// 1 / (r + 10), as frequent words fill most positions.
fn batch_ids(step: i64, rows: i64) -> Tensor {
    tch::manual_seed(step);
    let u = Tensor::rand([B, T], (Kind::Double, Device::Cpu));
    // Inverse of the cumulative 1 / (r + 10) weights: r = 10 (R/10)^u - 10.
    let ratio = (rows as f64 + 10.0) / 10.0;
    ((u * ratio.ln()).exp() * 10.0 - 10.0)
        .floor()
        .clamp(0.0, (rows - 1) as f64)
        .to_kind(Kind::Int64)
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn parameters(rows: i64) -> Parameters<Tensor> {
    let shapes: [&[i64]; 6] = [&[rows, D], &[D, 192], &[64, 192], &[2, 192], &[64, 1], &[1]];
    Parameters::from_ordered(
        shapes
            .iter()
            .map(|&s| Tensor::randn(s, (Kind::Float, Device::Cpu)) * 0.05),
    )
}

fn gradients(embeddings: Gradient) -> Parameters<Gradient> {
    let rest = [&[D, 192][..], &[64, 192], &[2, 192], &[64, 1], &[1]]
        .map(|s| Gradient::Dense(Tensor::randn(s, (Kind::Float, Device::Cpu)) * 1e-3));
    Parameters::from_ordered(std::iter::once(embeddings).chain(rest))
}

/// What the GRU does to the cache between steps, ending with the input
/// gradient of the next step.
fn other_work(buffer: &mut [f32], d_inputs: &Tensor) {
    for x in buffer.iter_mut() {
        *x += 1.0;
    }
    let _ = d_inputs.shallow_clone().f_normal_(0.0, 1e-3);
}

fn main() {
    let rows = env("ADAM_BENCH_ROWS", 10_000) as i64;
    let threads = env("ADAM_BENCH_THREADS", 2);
    let steps = env("ADAM_BENCH_STEPS", 300) as i64;
    let config = AdamConfig {
        learning_rate: 1e-3,
        beta_1: 0.9,
        beta_2: 0.999,
        epsilon: 1e-7,
    };
    // As training sets it (`device.rs`): libtorch's own threads would spin
    // on the cores the optimiser's threads use.
    tch::set_num_threads(1);
    let mut buffer = vec![0.0f32; 6 << 18];
    let inputs: Vec<(Tensor, Tensor)> = (0..steps)
        .map(|s| {
            (
                batch_ids(s, rows),
                Tensor::randn([B, T, D], (Kind::Float, Device::Cpu)) * 1e-3,
            )
        })
        .collect();
    let unique: f64 = inputs
        .iter()
        .map(|(ids, _)| {
            ids.reshape([-1])
                .unique_dim(0, false, false, false)
                .0
                .size()[0] as f64
        })
        .sum::<f64>();
    println!(
        "adam bench: {rows} x {D} embedding, batch {B} x {T} ({:.0} distinct rows a step), {threads} threads, {steps} steps",
        unique / steps as f64
    );
    for run in 0..3 {
        let by_position = [Optimizer::Adam, Optimizer::LazyAdam].map(|optimizer| {
            let params = parameters(rows);
            let mut adam = Adam::new(&params, config, optimizer, threads);
            let mut time = Duration::ZERO;
            for (ids, d_inputs) in &inputs {
                other_work(&mut buffer, d_inputs);
                let grads = gradients(Gradient::ByPosition(PositionGradients {
                    ids: ids.shallow_clone(),
                    d_inputs: d_inputs.shallow_clone(),
                }));
                let started = Instant::now();
                adam.step(&grads);
                time += started.elapsed();
            }
            time
        });
        let params = parameters(rows);
        let mut dense_adam = Adam::new(&params, config, Optimizer::Adam, threads);
        let (mut summing, mut dense) = (Duration::ZERO, Duration::ZERO);
        for (ids, d_inputs) in &inputs {
            other_work(&mut buffer, d_inputs);
            let started = Instant::now();
            let summed = Gradient::ByPosition(PositionGradients {
                ids: ids.shallow_clone(),
                d_inputs: d_inputs.shallow_clone(),
            })
            .to_dense(rows);
            summing += started.elapsed();
            let grads = gradients(Gradient::Dense(summed));
            let started = Instant::now();
            dense_adam.step(&grads);
            dense += started.elapsed();
        }
        let per_step = |d: Duration| d.as_secs_f64() * 1e3 / steps as f64;
        println!(
            "run {run}: by position {:.3} ms a step, lazy-adam {:.3} ms; summed first {:.3} ms + dense {:.3} ms a step",
            per_step(by_position[0]),
            per_step(by_position[1]),
            per_step(summing),
            per_step(dense)
        );
    }
}
