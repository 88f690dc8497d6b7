//! Our CUDA kernels compute what the other implementations compute: the
//! logits and every parameter's gradient equal the op-by-op step's on the
//! GPU and the CPU kernel's on the same masks, for a full and a last
//! partial batch, with and without dropout; several Adam steps stay
//! together; a seed gives the same history twice. Each test passes
//! trivially, saying so, on a machine without a GPU (CI has none): the
//! device check (`scripts/cuda-check`) runs them where there is one.
mod common;

use std::path::Path;

use common::runs::{fixture, read_history};
use gru_imdb::device::{GruImpl, GruPlan};
use gru_imdb::evaluation::Totals;
use gru_imdb::model::ModelConfig;
use gru_imdb::model::{GruMasks, RunningSums, SentimentModel};
use gru_imdb::optim::{Adam, AdamConfig, Optimizer};
use tch::{nn, Device, Kind, Tensor};

/// libtorch's generators are global and tests run in parallel threads.
static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn lock_rng() -> std::sync::MutexGuard<'static, ()> {
    RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn gpu() -> Option<Device> {
    if gru_imdb::cuda::try_load() && tch::Cuda::is_available() {
        return Some(Device::Cuda(0));
    }
    eprintln!("no CUDA device: skipped");
    None
}

const T: i64 = 30;
const VOCABULARY: i64 = 300;

fn config(units: usize, dropout: f64, recurrent_dropout: f64) -> ModelConfig {
    ModelConfig {
        max_features: VOCABULARY as usize,
        embedding_dim: 32,
        units,
        dropout,
        recurrent_dropout,
        classes: 2,
    }
}

/// A model with `gru_impl` on `device`, its parameters copied from `like`
/// (or drawn, with random biases so that every parameter matters).
fn model(
    config: ModelConfig,
    gru_impl: GruImpl,
    device: Device,
    like: Option<&SentimentModel>,
) -> (nn::VarStore, SentimentModel) {
    let vs = nn::VarStore::new(device);
    let model = SentimentModel::new(&vs.root(), config, GruPlan::only(gru_impl), 2).unwrap();
    tch::no_grad(|| {
        let bias = Tensor::randn(model.gru.bias.size(), (Kind::Float, device)) * 0.3;
        model.gru.bias.shallow_clone().copy_(&bias);
        if let Some(like) = like {
            for (mine, theirs) in model.parameters().iter().zip(like.parameters().iter()) {
                mine.shallow_clone().copy_(&theirs.to_device(device));
            }
        }
    });
    (vs, model)
}

fn masks_on(masks: &GruMasks, device: Device) -> GruMasks {
    GruMasks {
        input: masks.input.as_ref().map(|m| m.to_device(device)),
        recurrent: masks.recurrent.as_ref().map(|m| m.to_device(device)),
    }
}

/// The batch's mean binary cross-entropy, as training computes it.
fn mean_loss(logits: &Tensor, labels: &Tensor) -> Tensor {
    logits.binary_cross_entropy_with_logits::<Tensor>(labels, None, None, tch::Reduction::Mean)
}

/// Logits and every parameter's gradient of one training step on `ids`
/// and `labels` under `masks`, on the CPU for comparison.
fn training_step(
    model: &SentimentModel,
    ids: &Tensor,
    labels: &Tensor,
    masks: &GruMasks,
) -> Vec<Tensor> {
    let device = model.device;
    let forward = model.forward_train(&ids.to_device(device), &masks_on(masks, device));
    let loss = mean_loss(&forward.logits, &labels.to_device(device));
    let logits = forward.logits.detach();
    let grads = forward.backward(model, &loss);
    let grads = grads.to_dense(&model.parameters());
    std::iter::once(logits)
        .chain(grads.iter().map(Tensor::shallow_clone))
        .map(|t| t.to_device(Device::Cpu))
        .collect()
}

/// Each pair agrees to `tol` relative to the first's largest magnitude,
/// floored at 1e-2: some gradients are small sums of terms of order 0.1 to
/// 1 that cancel (the dense bias's, `mean(p - y)`, was 0.0018 in one
/// case), and f32 rounding of those terms, not the GRU, sets their error
/// (measured 2.2e-8 there, 1e-8 of the terms).
/// Each case's differences are gathered, so that one run on a GPU shows
/// them all.
fn differences(what: &str, a: &[Tensor], b: &[Tensor], tol: f64) -> Vec<String> {
    let mut found = Vec::new();
    for (i, (a, b)) in a.iter().zip(b).enumerate() {
        let diff = (a - b).abs().max().double_value(&[]);
        let scale = a.abs().max().double_value(&[]).max(1e-2);
        if diff.is_nan() || diff > tol * scale {
            found.push(format!(
                "{what}, tensor {i}: max difference {diff} (scale {scale})"
            ));
        }
    }
    found
}

fn assert_none(differences: &[String]) {
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}

fn batch(n: i64) -> (Tensor, Tensor) {
    let ids = Tensor::randint(VOCABULARY, [n, T], (Kind::Int64, Device::Cpu));
    let labels = Tensor::randint(2, [n], (Kind::Float, Device::Cpu));
    (ids, labels)
}

const DROPOUTS: [(f64, f64); 4] = [(0.0, 0.0), (0.2, 0.0), (0.0, 0.2), (0.2, 0.2)];

#[test]
fn the_cuda_kernel_equals_op_by_op_and_the_cpu_kernel_in_logits_and_all_gradients() {
    let Some(gpu) = gpu() else { return };
    let _rng = lock_rng();
    let mut found = Vec::new();
    // 64 units is the default layer; 5 puts two gates in one warp.
    for units in [64, 5] {
        for (dropout, recurrent_dropout) in DROPOUTS {
            // A full batch and the last batch of an epoch (25,000 = 781 x 32 + 8).
            for n in [32, 8] {
                tch::manual_seed(7);
                let config = config(units, dropout, recurrent_dropout);
                let (_vs, cuda) = model(config, GruImpl::CudaKernel, gpu, None);
                let (_vs_o, op_by_op) = model(config, GruImpl::OpByOp, gpu, Some(&cuda));
                let (_vs_c, cpu) = model(config, GruImpl::CpuKernel, Device::Cpu, Some(&cuda));
                let (ids, labels) = batch(n);
                let masks = cuda.draw_masks(n);
                let what =
                    format!("units {units}, dropout {dropout}/{recurrent_dropout}, batch {n}");
                let ours = training_step(&cuda, &ids, &labels, &masks);
                let reference = training_step(&op_by_op, &ids, &labels, &masks);
                found.extend(differences(
                    &format!("{what}, op by op"),
                    &ours,
                    &reference,
                    1e-5,
                ));
                let on_cpu = training_step(&cpu, &ids, &labels, &masks);
                found.extend(differences(
                    &format!("{what}, CPU kernel"),
                    &ours,
                    &on_cpu,
                    1e-5,
                ));
            }
        }
    }
    assert_none(&found);
}

#[test]
fn the_cuda_kernel_evaluates_as_cudnn_and_the_cpu_kernel_do() {
    let Some(gpu) = gpu() else { return };
    let _rng = lock_rng();
    tch::manual_seed(8);
    let config = config(64, 0.2, 0.2);
    let (_vs, cuda) = model(config, GruImpl::CudaKernel, gpu, None);
    let (_vs_f, fused) = model(config, GruImpl::Fused, gpu, Some(&cuda));
    let (_vs_c, cpu) = model(config, GruImpl::CpuKernel, Device::Cpu, Some(&cuda));
    let mut found = Vec::new();
    for n in [1024, 8] {
        let (ids, _) = batch(n);
        let logits = |m: &SentimentModel| {
            m.inference()
                .logits(&ids.to_device(m.device))
                .to_device(Device::Cpu)
        };
        let ours = [logits(&cuda)];
        // cuDNN runs its products in TF32 (libtorch's default for cuDNN),
        // with a 10-bit mantissa: measured 1.0e-4 of the logits' scale.
        found.extend(differences("cuDNN", &ours, &[logits(&fused)], 5e-4));
        found.extend(differences("CPU kernel", &ours, &[logits(&cpu)], 1e-5));
    }
    assert_none(&found);
}

#[test]
fn the_fused_binary_head_gives_autograds_gradients_and_totals() {
    let Some(gpu) = gpu() else { return };
    let _rng = lock_rng();
    tch::manual_seed(10);
    let (_vs, cuda) = model(config(64, 0.2, 0.2), GruImpl::CudaKernel, gpu, None);
    let mut found = Vec::new();
    for n in [32, 8] {
        let (ids, labels) = batch(n);
        let (ids, labels) = (ids.to_device(gpu), labels.to_device(gpu));
        let masks = cuda.draw_masks(n);
        let mut reference_totals = Totals::new(gpu);
        let forward = cuda.forward_train(&ids, &masks);
        let loss = mean_loss(&forward.logits, &labels);
        reference_totals.add(&forward.logits, &labels, &loss);
        let reference: Vec<Tensor> = forward
            .backward(&cuda, &loss)
            .to_dense(&cuda.parameters())
            .iter()
            .map(Tensor::copy)
            .collect();
        let mut totals = Totals::new(gpu);
        let forward = cuda.forward_train(&ids, &masks);
        assert!(forward.fuses_head());
        let (loss_sum, hits) = totals.sums_for_kernel(labels.size()[0] as usize);
        let fused: Vec<Tensor> = forward
            .fused_head_to_kernel(&cuda, &labels, RunningSums { loss_sum, hits })
            .finish(&cuda)
            .to_dense(&cuda.parameters())
            .iter()
            .map(Tensor::copy)
            .collect();
        found.extend(differences(&format!("batch {n}"), &reference, &fused, 1e-5));
        let (a, b) = (reference_totals.means(), totals.means());
        assert_eq!(a.accuracy, b.accuracy, "batch {n}");
        assert!(
            (a.loss - b.loss).abs() <= 1e-6 * a.loss,
            "batch {n}: {} vs {}",
            a.loss,
            b.loss
        );
    }
    assert_none(&found);
}

#[test]
fn several_adam_steps_on_the_cuda_kernel_follow_the_other_paths() {
    let Some(gpu) = gpu() else { return };
    let _rng = lock_rng();
    for optimizer in [Optimizer::Adam, Optimizer::LazyAdam] {
        tch::manual_seed(9);
        steps_on_each_path_agree(gpu, optimizer);
    }
}

/// Five steps of `optimizer` on the CUDA kernel, op by op and on the CPU
/// kernel give the same parameters; after the first step the batches look
/// up only the first half of the vocabulary.
fn steps_on_each_path_agree(gpu: Device, optimizer: Optimizer) {
    let config = config(64, 0.2, 0.2);
    let adam = AdamConfig {
        learning_rate: 1e-3,
        beta_1: 0.9,
        beta_2: 0.999,
        epsilon: 1e-7,
    };
    let (_vs, cuda) = model(config, GruImpl::CudaKernel, gpu, None);
    let (_vs_o, op_by_op) = model(config, GruImpl::OpByOp, gpu, Some(&cuda));
    let (_vs_c, cpu) = model(config, GruImpl::CpuKernel, Device::Cpu, Some(&cuda));
    let mut optimizers: Vec<Adam> = [&cuda, &op_by_op, &cpu]
        .iter()
        .map(|m| Adam::new(&m.parameters(), adam, optimizer, 2))
        .collect();
    let second_half = |m: &SentimentModel| {
        let table = m.parameters().embeddings;
        table
            .narrow(0, VOCABULARY / 2, VOCABULARY / 2)
            .to_device(Device::Cpu)
            .copy()
    };
    let mut after_first_step = None;
    let mut found = Vec::new();
    for step in 0..5 {
        let (ids, labels) = batch(32);
        let ids = if step == 0 {
            ids
        } else {
            ids.remainder(VOCABULARY / 2)
        };
        let masks = cuda.draw_masks(32);
        for (m, optimizer) in [&cuda, &op_by_op, &cpu].iter().zip(&mut optimizers) {
            let device = m.device;
            let forward = m.forward_train(&ids.to_device(device), &masks_on(&masks, device));
            let loss = mean_loss(&forward.logits, &labels.to_device(device));
            let grads = forward.backward(m, &loss);
            optimizer.step(&grads);
        }
        let params = |m: &SentimentModel| -> Vec<Tensor> {
            m.parameters()
                .iter()
                .map(|p| p.to_device(Device::Cpu))
                .collect()
        };
        let ours = params(&cuda);
        if step == 0 {
            after_first_step = Some(second_half(&cuda));
        }
        let what = format!("step {step}");
        found.extend(differences(
            &format!("{what}, op by op"),
            &ours,
            &params(&op_by_op),
            1e-5,
        ));
        found.extend(differences(
            &format!("{what}, CPU kernel"),
            &ours,
            &params(&cpu),
            1e-5,
        ));
    }
    assert_none(&found);
    // Adam's momentum moves rows after their last look-up; lazy-adam's does not.
    let moved = !second_half(&cuda).equal(&after_first_step.unwrap());
    assert_eq!(moved, optimizer == Optimizer::Adam, "{optimizer:?}");
}

#[test]
fn a_seed_gives_the_same_history_twice_on_the_cuda_kernel() {
    if gpu().is_none() {
        return;
    }
    let f = fixture();
    let extra = ["--device", "cuda", "--gru-implementation", "cuda-kernel"];
    for run in ["first", "second"] {
        let args = f.train_args(run, 2, &extra);
        let (code, out, err) = f.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(code, Some(0), "{out}\n{err}");
        let config = std::fs::read_to_string(Path::new(&f.path(run)).join("config.json")).unwrap();
        assert!(
            config.contains(r#""gru_implementation": "CudaKernel""#),
            "{config}"
        );
    }
    let history = |run: &str| read_history(&Path::new(&f.path(run)).join("history.csv")).1;
    let (first, second) = (history("first"), history("second"));
    for (a, b) in first.iter().zip(&second) {
        // Accuracy, loss, val_accuracy, val_loss: bit for bit.
        for column in 1..=4 {
            assert_eq!(a.get(column).to_bits(), b.get(column).to_bits());
        }
    }
    assert_eq!(first.len(), 2);
}
