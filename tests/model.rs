//! The GRU implementations compute one function, with Keras's dropout.
use gru_imdb::device::{GruImpl, GruPlan};
use gru_imdb::evaluation::{evaluate, SplitTensors, Totals};
use gru_imdb::model::ModelConfig;
use gru_imdb::model::{loss_with_logits, GruLayer, GruMasks, Parameters, SentimentModel};
use tch::{nn, Device, Kind, Tensor};

/// libtorch's generator is global to the process and tests run in
/// parallel threads: every test that seeds it holds this lock.
static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn lock_rng() -> std::sync::MutexGuard<'static, ()> {
    RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

const B: i64 = 5;
const T: i64 = 7;
const D: i64 = 6;

fn small_config(dropout: f64, recurrent_dropout: f64) -> ModelConfig {
    ModelConfig {
        max_features: 50,
        embedding_dim: D as usize,
        units: 4,
        dropout,
        recurrent_dropout,
        classes: 2,
    }
}

/// A model with non-zero biases, so that every parameter matters.
fn small_model(
    config: ModelConfig,
    gru_impl: GruImpl,
    seed: i64,
) -> (nn::VarStore, SentimentModel) {
    tch::manual_seed(seed);
    let vs = nn::VarStore::new(Device::Cpu);
    let model = SentimentModel::new(&vs.root(), config, GruPlan::only(gru_impl), 2).unwrap();
    let random_bias = Tensor::randn(model.gru.bias.size(), (Kind::Float, Device::Cpu)) * 0.3;
    tch::no_grad(|| model.gru.bias.shallow_clone().copy_(&random_bias));
    (vs, model)
}

fn no_masks() -> GruMasks {
    GruMasks {
        input: None,
        recurrent: None,
    }
}

/// Runs `forward` on an input that requires grad; returns the output and the
/// gradients of a fixed random projection of it w.r.t. the input and the
/// GRU parameters: [output, d_input, d_kernel, d_recurrent_kernel, d_bias].
fn output_and_grads(
    gru: &GruLayer,
    x: &Tensor,
    forward: impl Fn(&Tensor) -> Tensor,
) -> Vec<Tensor> {
    for p in [&gru.kernel, &gru.recurrent_kernel, &gru.bias] {
        let mut p = p.shallow_clone();
        p.zero_grad();
    }
    let x = x.detach().copy().set_requires_grad(true);
    let out = forward(&x);
    tch::manual_seed(99);
    let weights = Tensor::randn(out.size(), (Kind::Float, Device::Cpu));
    (&out * weights).sum(Kind::Float).backward();
    vec![
        out.detach(),
        x.grad(),
        gru.kernel.grad(),
        gru.recurrent_kernel.grad(),
        gru.bias.grad(),
    ]
}

/// Each pair of tensors agrees to `tol` relative to the first's largest
/// magnitude (floored at 1e-3, so near-zero tensors need near-equality).
fn assert_close(a: &[Tensor], b: &[Tensor], tol: f64) {
    assert_eq!(a.len(), b.len());
    for (i, (a, b)) in a.iter().zip(b).enumerate() {
        let diff = (a - b).abs().max().double_value(&[]);
        let scale = a.abs().max().double_value(&[]).max(1e-3);
        assert!(
            diff <= tol * scale,
            "tensor {i}: max difference {diff} (scale {scale})"
        );
    }
}

fn input(seed: i64) -> Tensor {
    tch::manual_seed(seed);
    Tensor::randn([B, T, D], (Kind::Float, Device::Cpu))
}

#[test]
fn op_by_op_and_fused_gru_agree_in_outputs_and_gradients() {
    let _rng = lock_rng();
    let (_vs, model) = small_model(small_config(0.0, 0.0), GruImpl::OpByOp, 1);
    let x = input(2);
    let op_by_op = output_and_grads(&model.gru, &x, |x| {
        model.gru.forward_op_by_op(x, &no_masks())
    });
    let fused = output_and_grads(&model.gru, &x, |x| {
        model.gru.forward_fused(x, &no_masks(), true)
    });
    assert_close(&op_by_op, &fused, 1e-5);
}

#[test]
fn shared_input_mask_is_the_same_in_op_by_op_and_fused() {
    let _rng = lock_rng();
    let (_vs, model) = small_model(small_config(0.5, 0.0), GruImpl::OpByOp, 3);
    let masks = model.gru.draw_masks(B, D, Device::Cpu);
    assert_eq!(masks.input.as_ref().map(Tensor::size), Some(vec![1, B, D]));
    assert!(masks.recurrent.is_none());
    let x = input(4);
    let op_by_op = output_and_grads(&model.gru, &x, |x| model.gru.forward_op_by_op(x, &masks));
    let fused = output_and_grads(&model.gru, &x, |x| model.gru.forward_fused(x, &masks, true));
    assert_close(&op_by_op, &fused, 1e-5);
}

#[test]
fn cpu_masks_are_libtorchs_bernoulli_draws_and_leave_the_generator_alike() {
    let _rng = lock_rng();
    let cpu = (Kind::Float, Device::Cpu);
    // 333 samples draw 9,990 numbers a step: the generator regenerates
    // its state (every 624 draws) many times, inside and between masks.
    for batch in [B, 333] {
        for (dropout, recurrent_dropout) in [(0.2, 0.2), (0.5, 0.1), (0.25, 0.7)] {
            let (_vs, model) =
                small_model(small_config(dropout, recurrent_dropout), GruImpl::OpByOp, 1);
            tch::manual_seed(7);
            let drawn: Vec<GruMasks> = (0..3)
                .map(|_| model.gru.draw_masks(batch, D, Device::Cpu))
                .collect();
            let next = Tensor::rand([8], cpu);
            // What the masks were drawn as at first: libtorch's bernoulli
            // on a tensor of probabilities, input masks first.
            tch::manual_seed(7);
            let bernoulli =
                |shape: [i64; 3], p: f64| Tensor::full(shape, 1.0 - p, cpu).bernoulli() / (1.0 - p);
            for masks in &drawn {
                let input = bernoulli([3, batch, D], dropout);
                let recurrent = bernoulli([3, batch, 4], recurrent_dropout);
                assert!(
                    masks.input.as_ref().unwrap().equal(&input),
                    "{batch}, {dropout}: input masks"
                );
                assert!(
                    masks.recurrent.as_ref().unwrap().equal(&recurrent),
                    "{batch}, {recurrent_dropout}: recurrent masks"
                );
            }
            assert!(
                next.equal(&Tensor::rand([8], cpu)),
                "{batch}: the generator moved apart"
            );
        }
    }
}

#[test]
fn masks_are_drawn_per_gate_per_sample_and_scaled() {
    let _rng = lock_rng();
    let (_vs, model) = small_model(small_config(0.25, 0.5), GruImpl::OpByOp, 5);
    let masks = model.gru.draw_masks(400, D, Device::Cpu);
    let input = masks.input.expect("dropout > 0 draws input masks");
    let recurrent = masks
        .recurrent
        .expect("recurrent_dropout > 0 draws recurrent masks");
    // No time axis: one row per sample, reused at every step.
    assert_eq!(input.size(), [3, 400, D]);
    assert_eq!(recurrent.size(), [3, 400, 4]);
    for (mask, p) in [(&input, 0.25), (&recurrent, 0.5)] {
        let scaled = 1.0 / (1.0 - p);
        let is_zero = mask.eq(0.0);
        let is_scaled = (mask - scaled).abs().lt(1e-6);
        assert!(
            bool::try_from(is_zero.logical_or(&is_scaled).all()).unwrap(),
            "values are 0 or 1/(1-p)"
        );
        let kept = f64::try_from(is_scaled.to_kind(Kind::Float).mean(Kind::Float)).unwrap();
        assert!(
            (kept - (1.0 - p)).abs() < 0.05,
            "kept fraction {kept} for p {p}"
        );
        // Three independent masks, not one repeated.
        assert!(!bool::try_from(mask.get(0).eq_tensor(&mask.get(1)).all()).unwrap());
        assert!(!bool::try_from(mask.get(1).eq_tensor(&mask.get(2)).all()).unwrap());
    }
}

/// The Keras step written per gate with explicit per-sample loops over
/// state, as an independent check of the masking rules.
fn reference_step(gru: &GruLayer, x: &Tensor, masks: &GruMasks) -> Tensor {
    let u = gru.units;
    let gate = |m: &Tensor, g: i64| m.narrow(-1, g * u, u);
    let (b, t, _) = x.size3().unwrap();
    let mut h = Tensor::zeros([b, u], (Kind::Float, Device::Cpu));
    for step in 0..t {
        let x_t = x.select(1, step);
        let mx = |g: i64| {
            masks
                .input
                .as_ref()
                .map_or_else(|| x_t.shallow_clone(), |m| &x_t * m.get(g))
        };
        let mh = |g: i64| {
            masks
                .recurrent
                .as_ref()
                .map_or_else(|| h.shallow_clone(), |m| &h * m.get(g))
        };
        let pre = |g: i64| mx(g).matmul(&gate(&gru.kernel, g)) + gate(&gru.bias.get(0), g);
        let rec =
            |g: i64| mh(g).matmul(&gate(&gru.recurrent_kernel, g)) + gate(&gru.bias.get(1), g);
        let z = (pre(0) + rec(0)).sigmoid();
        let r = (pre(1) + rec(1)).sigmoid();
        let hh = (pre(2) + r * rec(2)).tanh();
        // The carried state is the unmasked h.
        h = &z * &h + (1.0 - &z) * hh;
    }
    h
}

#[test]
fn op_by_op_applies_three_input_and_three_recurrent_masks_and_carries_unmasked_state() {
    let _rng = lock_rng();
    let (_vs, model) = small_model(small_config(0.3, 0.4), GruImpl::OpByOp, 6);
    let masks = model.gru.draw_masks(B, D, Device::Cpu);
    let x = input(7);
    let ours = tch::no_grad(|| model.gru.forward_op_by_op(&x, &masks));
    let reference = tch::no_grad(|| reference_step(&model.gru, &x, &masks));
    assert_close(&[ours], &[reference], 1e-6);
}

#[test]
fn the_binary_heads_gradients_by_hand_have_the_bits_of_autograd() {
    let _rng = lock_rng();
    let (_vs, model) = small_model(small_config(0.2, 0.2), GruImpl::CpuKernel, 11);
    let cpu = (Kind::Float, Device::Cpu);
    for batch in [5, 8, 1, 32] {
        let ids = Tensor::randint(50, [batch, T], (Kind::Int64, Device::Cpu));
        let labels = Tensor::randint(2, [batch], cpu);
        let masks = model.draw_masks(batch);
        let gradients = |by_hand: bool| {
            let forward = model.forward_train(&ids, &masks);
            assert_eq!(forward.logits.dim(), 1, "one sigmoid unit");
            let loss = loss_with_logits(&forward.logits, &labels);
            let backward = match by_hand {
                true => forward.backward_to_kernel_for_labels(&model, &loss, &labels),
                false => forward.backward_to_kernel(&model, &loss),
            };
            backward.finish(&model).to_dense(&model.parameters())
        };
        let (by_hand, autograd) = (gradients(true), gradients(false));
        let names = Parameters::<Tensor>::NAMES;
        for ((a, b), name) in by_hand.iter().zip(autograd.iter()).zip(names) {
            assert!(a.equal(b), "batch {batch}: {name}");
        }
    }
}

/// Logits and every parameter's gradient after one training step's
/// backward, with masks drawn from `mask_seed`.
fn training_step(model: &SentimentModel, ids: &Tensor, mask_seed: i64) -> Vec<Tensor> {
    tch::manual_seed(mask_seed);
    let forward = model.forward_train(ids, &model.draw_masks(ids.size()[0]));
    let labels = Tensor::from_slice(&[1.0f32, 0.0, 1.0, 1.0, 0.0]);
    let loss = forward.logits.binary_cross_entropy_with_logits::<Tensor>(
        &labels,
        None,
        None,
        tch::Reduction::Mean,
    );
    let logits = forward.logits.detach();
    // One gradient per parameter, matched by name.
    let grads = forward.backward(model, &loss);
    let params = model.parameters();
    let grads = grads.to_dense(&params);
    for (grad, param) in grads.iter().zip(params.iter()) {
        assert_eq!(grad.size(), param.size());
    }
    std::iter::once(logits)
        .chain(grads.iter().map(Tensor::shallow_clone))
        .collect()
}

fn ids(seed: i64) -> Tensor {
    tch::manual_seed(seed);
    Tensor::randint(50, [B, T], (Kind::Int64, Device::Cpu))
}

#[test]
fn cpu_kernel_equals_op_by_op_in_logits_and_all_gradients_with_and_without_dropout() {
    let _rng = lock_rng();
    for (dropout, recurrent_dropout) in [(0.0, 0.0), (0.3, 0.0), (0.0, 0.4), (0.3, 0.4)] {
        let config = small_config(dropout, recurrent_dropout);
        let (_vs_k, kernel) = small_model(config, GruImpl::CpuKernel, 11);
        let (_vs_o, op_by_op) = small_model(config, GruImpl::OpByOp, 11);
        let x = ids(12);
        // The same seed draws the same masks in both.
        let ours = training_step(&kernel, &x, 13);
        let reference = training_step(&op_by_op, &x, 13);
        assert_close(&ours, &reference, 1e-5);
    }
}

#[test]
fn fused_equals_op_by_op_in_the_model_without_recurrent_dropout() {
    let _rng = lock_rng();
    let config = small_config(0.3, 0.0);
    let (_vs_f, fused) = small_model(config, GruImpl::Fused, 21);
    let (_vs_o, op_by_op) = small_model(config, GruImpl::OpByOp, 21);
    let x = ids(22);
    assert_close(
        &training_step(&fused, &x, 23),
        &training_step(&op_by_op, &x, 23),
        1e-5,
    );
}

#[test]
fn inference_drops_nothing_and_every_implementation_agrees() {
    let _rng = lock_rng();
    let config = small_config(0.5, 0.5);
    let x = ids(31);
    let logits: Vec<Tensor> = [GruImpl::CpuKernel, GruImpl::OpByOp, GruImpl::Fused]
        .into_iter()
        .map(|gru_impl| {
            let (_vs, model) = small_model(config, gru_impl, 32);
            let inference = model.inference();
            let first = inference.logits(&x);
            // No dropout: the same input gives the same output every time.
            assert_close(&[first.shallow_clone()], &[inference.logits(&x)], 0.0);
            first
        })
        .collect();
    assert_close(&logits[..1], &logits[1..2], 1e-5);
    assert_close(&logits[..1], &logits[2..3], 1e-5);
}

#[test]
fn training_forward_applies_dropout() {
    let _rng = lock_rng();
    let (_vs, model) = small_model(small_config(0.5, 0.5), GruImpl::CpuKernel, 41);
    let x = ids(42);
    tch::manual_seed(1);
    let a = model
        .forward_train(&x, &model.draw_masks(B))
        .logits
        .detach();
    tch::manual_seed(2);
    let b = model
        .forward_train(&x, &model.draw_masks(B))
        .logits
        .detach();
    assert!(
        (a - b).abs().max().double_value(&[]) > 1e-4,
        "different masks give different outputs"
    );
}

#[test]
fn evaluation_gives_the_bits_of_going_batch_by_batch() {
    let _rng = lock_rng();
    let (_vs, model) = small_model(small_config(0.3, 0.3), GruImpl::CpuKernel, 51);
    tch::manual_seed(52);
    // More samples than one call of the GRU takes, in batches of 32 that
    // do not divide them.
    let n = 2100;
    let data = SplitTensors {
        x: Tensor::randint(50, [n, T], (Kind::Int64, Device::Cpu)),
        y: Tensor::randint(2, [n], (Kind::Float, Device::Cpu)),
    };
    let inference = model.inference();
    let mut totals = Totals::new(Device::Cpu);
    for start in (0..n).step_by(32) {
        let len = 32.min(n - start);
        let logits = inference.logits(&data.x.narrow(0, start, len));
        let labels = data.y.narrow(0, start, len);
        totals.add(&logits, &labels, &loss_with_logits(&logits, &labels));
    }
    let (expected, got) = (totals.means(), evaluate(&model, &data, 32));
    assert_eq!(got.loss.to_bits(), expected.loss.to_bits());
    assert_eq!(got.accuracy, expected.accuracy);
}
