//! Adam exactly as Keras writes it.
//!
//! Keras folds the bias corrections into the step size and adds epsilon to
//! the *uncorrected* `sqrt(v)`:
//!
//! ```text
//! m     = m + (1 - beta_1) * (g - m)
//! v     = v + (1 - beta_2) * (g^2 - v)
//! alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)
//! p     = p - alpha * m / (sqrt(v) + epsilon)
//! ```
//!
//! libtorch's Adam adds epsilon to the corrected `sqrt(v_hat)` instead, a
//! different step early in training, hence our own.
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::gru_cuda::{AdamConstants, AdamTensors, StepKernels};
use crate::model::tensor_slice::{as_mut_slice, as_slice};
use crate::model::Parameters;
use crate::pool::run_parallel;

/// Adam's hyper-parameters (Keras's defaults are in `settings::defaults`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamConfig {
    pub learning_rate: f64,
    pub beta_1: f64,
    pub beta_2: f64,
    pub epsilon: f64,
}

struct Slot {
    param: Tensor,
    m: Tensor,
    v: Tensor,
}

pub struct Adam {
    config: AdamConfig,
    slots: Parameters<Slot>,
    iterations: u64,
    /// Threads of the CPU update.
    threads: usize,
}

/// What a checkpoint keeps of Adam to continue exactly: the step count,
/// the current learning rate and both moments of every parameter.
pub struct AdamState {
    pub iterations: u64,
    pub learning_rate: f64,
    pub m: Parameters<Tensor>,
    pub v: Parameters<Tensor>,
}

impl Adam {
    /// Adam over `params` (the model's trainable tensors); `threads` for
    /// the update of CPU tensors.
    pub fn new(params: &Parameters<Tensor>, config: AdamConfig, threads: usize) -> Adam {
        let slots = params.map(|param| Slot {
            m: param.zeros_like(),
            v: param.zeros_like(),
            param: param.shallow_clone(),
        });
        Adam {
            config,
            slots,
            iterations: 0,
            threads,
        }
    }

    pub fn learning_rate(&self) -> f64 {
        self.config.learning_rate
    }

    /// For schedules such as reduce-on-plateau; takes effect at the next step.
    pub fn set_learning_rate(&mut self, learning_rate: f64) {
        self.config.learning_rate = learning_rate;
    }

    /// The optimiser's state (shallow copies of the moments).
    pub fn state(&self) -> AdamState {
        AdamState {
            iterations: self.iterations,
            learning_rate: self.config.learning_rate,
            m: self.slots.map(|s| s.m.shallow_clone()),
            v: self.slots.map(|s| s.v.shallow_clone()),
        }
    }

    /// Continues from a saved state: copies its moments in place.
    pub fn restore(&mut self, state: &AdamState) {
        self.iterations = state.iterations;
        self.config.learning_rate = state.learning_rate;
        tch::no_grad(|| {
            let saved = state.m.iter().zip(state.v.iter());
            for (slot, (m, v)) in self.slots.iter_mut().zip(saved) {
                slot.m.copy_(m);
                slot.v.copy_(v);
            }
        });
    }

    /// One update with `grads`, the gradient of each parameter.
    pub fn step(&mut self, grads: &Parameters<Tensor>) {
        self.iterations += 1;
        let AdamConfig {
            learning_rate,
            beta_1,
            beta_2,
            epsilon,
        } = self.config;
        let t = self.iterations as i32;
        let alpha = learning_rate * (1.0 - beta_2.powi(t)).sqrt() / (1.0 - beta_1.powi(t));
        let threads = self.threads;
        let constants = AdamConstants {
            alpha: alpha as f32,
            one_minus_beta_1: (1.0 - beta_1) as f32,
            one_minus_beta_2: (1.0 - beta_2) as f32,
            epsilon: epsilon as f32,
        };
        if self.step_on_gpu(grads, constants) {
            return;
        }
        tch::no_grad(|| {
            let mut cpu = Vec::new();
            for (Slot { param, m, v }, g) in self.slots.iter_mut().zip(grads.iter()) {
                let g = g.contiguous();
                if param.device() == Device::Cpu && g.kind() == Kind::Float {
                    cpu.push((
                        param.shallow_clone(),
                        m.shallow_clone(),
                        v.shallow_clone(),
                        g,
                    ));
                } else {
                    let _ = m.lerp_(&g, 1.0 - beta_1);
                    let _ = v.lerp_(&(&g * &g), 1.0 - beta_2);
                    let update = &*m / (v.sqrt() + epsilon) * alpha;
                    *param -= &update;
                }
            }
            // SAFETY: param, m, v and g are contiguous f32 CPU tensors of
            // the same size (checked in `update_cpu`); only this optimiser
            // writes param, m and v, and no graph holds them during the step.
            unsafe { update_cpu(&cpu, constants, threads) };
        });
    }

    /// The whole update in one launch of our CUDA kernel, when every
    /// parameter is on one GPU and the kernel loads: libtorch's ops take
    /// ~6 launches per parameter. False (nothing done) otherwise.
    fn step_on_gpu(&self, grads: &Parameters<Tensor>, constants: AdamConstants) -> bool {
        let Device::Cuda(ordinal) = self.slots.embeddings.param.device() else {
            return false;
        };
        let on_gpu = |t: &Tensor| t.device() == Device::Cuda(ordinal) && t.kind() == Kind::Float;
        if !self.slots.iter().all(|slot| on_gpu(&slot.param)) || !grads.iter().all(on_gpu) {
            return false;
        }
        let Ok(kernels) = StepKernels::get(ordinal) else {
            return false;
        };
        let grads: Vec<Tensor> = grads.iter().map(Tensor::contiguous).collect();
        let groups: Vec<AdamTensors> = self
            .slots
            .iter()
            .zip(&grads)
            .map(|(slot, gradient)| AdamTensors {
                parameter: &slot.param,
                m: &slot.m,
                v: &slot.v,
                gradient,
            })
            .collect();
        kernels
            .adam(&groups, constants)
            .expect("Adam's tensors are the model's own, checked when it was built");
        true
    }
}

/// Below this many elements a second thread costs more than it saves.
const PARALLEL_MIN: usize = 1 << 16;

/// A parameter's range, its moments' and its gradient's, to update.
struct Part<'a> {
    p: &'a mut [f32],
    m: &'a mut [f32],
    v: &'a mut [f32],
    g: &'a [f32],
}

impl<'a> Part<'a> {
    /// The first `k` elements, and the rest.
    fn split_at(self, k: usize) -> (Part<'a>, Part<'a>) {
        let (p, p_rest) = self.p.split_at_mut(k);
        let (m, m_rest) = self.m.split_at_mut(k);
        let (v, v_rest) = self.v.split_at_mut(k);
        let (g, g_rest) = self.g.split_at(k);
        (
            Part { p, m, v, g },
            Part {
                p: p_rest,
                m: m_rest,
                v: v_rest,
                g: g_rest,
            },
        )
    }
}

/// The whole update of all CPU parameters in one pass over memory, in f32
/// as Keras computes it, with one call to the worker pool: their elements
/// end to end are cut into one contiguous share per thread. On the
/// 1.28M-element embedding, libtorch's op-by-op version makes eight passes
/// and four temporaries per step, a large share of a CPU epoch; and a
/// thread spawned per parameter per step cost 65-95 us each on a loaded
/// machine (see `pool.rs`).
///
/// # Safety
/// Each `(param, m, v, g)` must be contiguous f32 CPU tensors of equal
/// size; nothing else may read or write param, m or v during the call.
unsafe fn update_cpu(
    tensors: &[(Tensor, Tensor, Tensor, Tensor)],
    c: AdamConstants,
    threads: usize,
) {
    let total: usize = tensors.iter().map(|(p, ..)| p.numel()).sum();
    let threads = if total >= PARALLEL_MIN {
        threads.max(1)
    } else {
        1
    };
    let per_share = total.div_ceil(threads);
    let mut shares: Vec<Vec<Part>> = (0..threads).map(|_| Vec::new()).collect();
    let (mut share, mut room) = (0, per_share);
    for (param, m, v, g) in tensors {
        let n = param.numel();
        assert!(
            [m.numel(), v.numel(), g.numel()].iter().all(|&k| k == n),
            "Adam: a gradient or moment differs in size from its parameter"
        );
        let mut part = Part {
            p: as_mut_slice(param),
            m: as_mut_slice(m),
            v: as_mut_slice(v),
            g: as_slice(g),
        };
        while !part.p.is_empty() {
            let k = room.min(part.p.len());
            let (head, rest) = part.split_at(k);
            shares[share].push(head);
            part = rest;
            room -= k;
            if room == 0 && share + 1 < threads {
                (share, room) = (share + 1, per_share);
            }
        }
    }
    run_parallel(shares, |share| {
        for part in share {
            update_slice(part.p, part.m, part.v, part.g, c);
        }
    });
}

fn update_slice(p: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32], c: AdamConstants) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F, checked just above.
        return unsafe { update_slice_avx512(p, m, v, g, c) };
    }
    update_slice_portable(p, m, v, g, c)
}

/// The same loop compiled for AVX-512: 16 square roots and divisions per
/// instruction instead of 4: 0.69 -> 0.34 ms per step on the embedding
/// with two threads (measured).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn update_slice_avx512(
    p: &mut [f32],
    m: &mut [f32],
    v: &mut [f32],
    g: &[f32],
    c: AdamConstants,
) {
    update_slice_portable(p, m, v, g, c)
}

#[inline(always)]
fn update_slice_portable(p: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32], c: AdamConstants) {
    for (((p, m), v), &g) in p.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(g) {
        *m += (g - *m) * c.one_minus_beta_1;
        *v += (g * g - *v) * c.one_minus_beta_2;
        *p -= c.alpha * *m / (v.sqrt() + c.epsilon);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::defaults;

    /// Keras's formula in f64, straight from its source.
    fn keras_adam(p: &mut [f64], grads: &[Vec<f64>], c: AdamConfig) {
        let (mut m, mut v) = (vec![0.0; p.len()], vec![0.0; p.len()]);
        for (t, g) in grads.iter().enumerate() {
            let t = t as i32 + 1;
            let alpha =
                c.learning_rate * (1.0 - c.beta_2.powi(t)).sqrt() / (1.0 - c.beta_1.powi(t));
            for i in 0..p.len() {
                m[i] += (g[i] - m[i]) * (1.0 - c.beta_1);
                v[i] += (g[i] * g[i] - v[i]) * (1.0 - c.beta_2);
                p[i] -= m[i] * alpha / (v[i].sqrt() + c.epsilon);
            }
        }
    }

    #[test]
    fn adam_follows_keras_formula_on_small_and_threaded_tensors() {
        let to_f64 = |t: &Tensor| Vec::<f64>::try_from(t.to_kind(Kind::Double)).unwrap();
        let random = |n: i64, scale: f64| {
            Parameters::from_ordered(
                (0..6).map(|_| Tensor::randn([n], (Kind::Float, Device::Cpu)) * scale),
            )
        };
        for n in [7usize, PARALLEL_MIN + 3] {
            tch::manual_seed(n as i64);
            let start = random(n as i64, 1.0);
            let grads: Vec<Parameters<Tensor>> = (0..4).map(|_| random(n as i64, 1e-3)).collect();
            let params = start.map(Tensor::copy);
            let config = AdamConfig {
                learning_rate: 0.01,
                beta_1: defaults::BETA_1,
                beta_2: defaults::BETA_2,
                epsilon: defaults::EPSILON,
            };
            let mut adam = Adam::new(&params, config, 2);
            for g in &grads {
                adam.step(g);
            }
            assert_eq!(adam.iterations, 4);
            for (k, (start, got)) in start.iter().zip(params.iter()).enumerate() {
                let mut expected = to_f64(start);
                let grads_k: Vec<Vec<f64>> = grads
                    .iter()
                    .map(|g| to_f64(g.iter().nth(k).unwrap()))
                    .collect();
                keras_adam(&mut expected, &grads_k, config);
                let worst = to_f64(&got.detach())
                    .iter()
                    .zip(&expected)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f64::max);
                assert!(
                    worst < 1e-6,
                    "n = {n}, parameter {k}: max deviation {worst}"
                );
            }
        }
    }
}
