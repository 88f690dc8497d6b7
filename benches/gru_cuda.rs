//! The CUDA kernels' own time per batch of 100-step reviews (training
//! forward with its tape, backward through time, evaluation forward from
//! the projection table) for each rows-per-block variant, at batch 32 and
//! 1024, next to cuDNN's GRU on the same GPU in the same run (training
//! forward + backward, and inference forward). Each figure is the median
//! of individually synchronised calls, launch included.
//!
//!     cargo bench --bench gru_cuda
use std::time::Instant;

use gru_imdb::gru_cuda::{rows_per_block, GruKernels, Weights};
use tch::{Device, Kind, Tensor};

const STEPS: i64 = 100;
const UNITS: i64 = 64;
const INPUT: i64 = 128;
const VOCABULARY: i64 = 10_000;
const REPEATS: usize = 30;

/// Median milliseconds of `f`, each call waited for.
fn median_ms(f: &mut dyn FnMut()) -> f64 {
    for _ in 0..3 {
        f();
    }
    tch::Cuda::synchronize(0);
    let mut times: Vec<f64> = (0..REPEATS)
        .map(|_| {
            let started = Instant::now();
            f();
            tch::Cuda::synchronize(0);
            started.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[REPEATS / 2]
}

fn ours(kernels: &GruKernels, batch: i64, gpu: Device) {
    let options = (Kind::Float, gpu);
    let recurrent_kernel = Tensor::randn([UNITS, 3 * UNITS], options) * 0.1;
    let bias = Tensor::randn([2, 3 * UNITS], options) * 0.1;
    let weights = Weights {
        recurrent_kernel: &recurrent_kernel,
        bias: &bias,
    };
    let projected = Tensor::randn([3, batch, STEPS, UNITS], options);
    let masks = Tensor::full([3, batch, UNITS], 0.8, options).bernoulli() / 0.8;
    let table = Tensor::randn([VOCABULARY, 3 * UNITS], options);
    let ids = Tensor::randint(VOCABULARY, [batch, STEPS], (Kind::Int64, gpu));
    let d_h_last = Tensor::randn([batch, UNITS], options);
    let chosen = rows_per_block(batch as usize, kernels.multiprocessors());
    for rows in [1, 2, 4, 8] {
        let k = kernels.with_rows_per_block(rows).unwrap();
        let (_, tape) = k.forward_train(&weights, &projected, Some(&masks)).unwrap();
        let forward = median_ms(&mut || {
            let _ = k.forward_train(&weights, &projected, Some(&masks)).unwrap();
        });
        let backward = median_ms(&mut || {
            let _ = k
                .backward(&weights, Some(&masks), &tape, &d_h_last)
                .unwrap();
        });
        let table_forward = median_ms(&mut || {
            let _ = k.forward_table(&weights, &table, &ids).unwrap();
        });
        let mark = if rows == chosen {
            " (the rule's choice)"
        } else {
            ""
        };
        println!(
            "ours   batch {batch:>4} rows/block {rows}: forward {forward:.3} ms, backward {backward:.3} ms, \
             evaluation {table_forward:.3} ms ({:.2} M reviews/s){mark}",
            batch as f64 / table_forward / 1e3
        );
    }
}

fn cudnn(batch: i64, gpu: Device) {
    let options = (Kind::Float, gpu);
    let params: Vec<Tensor> = [
        vec![3 * UNITS, INPUT],
        vec![3 * UNITS, UNITS],
        vec![3 * UNITS],
        vec![3 * UNITS],
    ]
    .iter()
    .map(|shape| (Tensor::randn(shape.as_slice(), options) * 0.1).set_requires_grad(true))
    .collect();
    let x = Tensor::randn([batch, STEPS, INPUT], options).set_requires_grad(true);
    let h0 = Tensor::zeros([1, batch, UNITS], options);
    let train = median_ms(&mut || {
        let (_, h) = x.gru(&h0, &params, true, 1, 0.0, true, false, true);
        h.sum(Kind::Float).backward();
    });
    let infer = median_ms(&mut || {
        let _ = tch::no_grad(|| x.gru(&h0, &params, true, 1, 0.0, false, false, true));
    });
    println!(
        "cuDNN  batch {batch:>4}: forward + backward {train:.3} ms, inference forward {infer:.3} ms \
         ({:.2} M reviews/s, input projection included)",
        batch as f64 / infer / 1e3
    );
}

fn main() {
    if !(gru_imdb::cuda::try_load() && tch::Cuda::is_available()) {
        println!("no CUDA device: nothing to measure");
        return;
    }
    let gpu = Device::Cuda(0);
    let kernels = GruKernels::get(0, UNITS as usize).expect("the CUDA kernels load");
    println!(
        "{} multiprocessors; {STEPS} steps, {UNITS} units",
        kernels.multiprocessors()
    );
    for batch in [32, 1024] {
        ours(kernels, batch, gpu);
        cudnn(batch, gpu);
    }
}
