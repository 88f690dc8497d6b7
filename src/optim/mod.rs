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
//! different step early in training, hence our own. On the CPU the update
//! is ours too (`dense.rs`), and takes the embedding's gradient by position
//! without materialising it (`embedding_rows.rs`).
//!
//! # `lazy-adam`
//!
//! Keras's Adam moves every embedding row at every step: a row that no
//! review of the batch looked up has a zero gradient, yet its moments
//! decay and it moves, so the update costs what the table costs (43% of
//! an epoch at 80,000 words on a 2-core Zen 4). [`Optimizer::LazyAdam`]
//! is TensorFlow Addons' `LazyAdam` (and, but for where epsilon goes,
//! PyTorch's `SparseAdam`): the formula above, `t` the global step, applied
//! only to the rows the batch looked up, each with its positions'
//! gradients summed; the other rows, and their moments, stay as they are.
//! Every other parameter is updated as `adam` does. The arithmetic of a
//! moved element is `adam`'s, so a row that every batch looks up takes
//! the same bits under both.
//!
//! Where the gradient comes by position on the CPU, the rows are updated
//! in place in one pass over the batch's distinct rows (`embedding_rows.rs`).
//! Elsewhere (the CUDA kernel's path, libtorch's GRUs) they are gathered
//! with their moments and gradient, updated as one more dense parameter (on
//! a GPU by the same launch of our kernel as the others) and scattered back.
mod denormals;
mod dense;
mod embedding_rows;

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::gru_cuda::{AdamConstants, AdamTensors, StepKernels};
use crate::model::tensor_slice::{as_mut_slice, as_slice};
use crate::model::{Gradient, Parameters, PositionGradients};
use dense::update_cpu;
use embedding_rows::{update_table, ByPosition, RowGroups, Table, TableStep};

/// Which embedding rows a step moves (`--optimizer`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Optimizer {
    /// Keras's Adam: every row, every step.
    #[default]
    Adam,
    /// TensorFlow Addons' LazyAdam: only the rows the batch looked up.
    LazyAdam,
}

impl Optimizer {
    pub fn name(self) -> &'static str {
        match self {
            Optimizer::Adam => "adam",
            Optimizer::LazyAdam => "lazy-adam",
        }
    }
}

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
    optimizer: Optimizer,
    slots: Parameters<Slot>,
    iterations: u64,
    /// Threads of the CPU update.
    threads: usize,
    /// The positions of the last gradient by position, grouped by row.
    groups: RowGroups,
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
    /// Adam (or `lazy-adam`, as `optimizer` says) over `params` (the
    /// model's trainable tensors); `threads` for the update of CPU tensors.
    pub fn new(
        params: &Parameters<Tensor>,
        config: AdamConfig,
        optimizer: Optimizer,
        threads: usize,
    ) -> Adam {
        let slots = params.map(|param| Slot {
            m: param.zeros_like(),
            v: param.zeros_like(),
            param: param.shallow_clone(),
        });
        Adam {
            config,
            optimizer,
            slots,
            iterations: 0,
            threads,
            groups: RowGroups::default(),
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

    /// This step's constants, `iterations` counting it.
    fn constants(&self) -> AdamConstants {
        let AdamConfig {
            learning_rate,
            beta_1,
            beta_2,
            epsilon,
        } = self.config;
        let t = self.iterations as i32;
        let alpha = learning_rate * (1.0 - beta_2.powi(t)).sqrt() / (1.0 - beta_1.powi(t));
        AdamConstants {
            alpha: alpha as f32,
            one_minus_beta_1: (1.0 - beta_1) as f32,
            one_minus_beta_2: (1.0 - beta_2) as f32,
            epsilon: epsilon as f32,
        }
    }

    /// Prepares the coming [`Adam::step`] of a CPU embedding whose
    /// gradient comes by position: groups the positions of `ids` (the
    /// batch's token ids) by row, which the step then skips if its
    /// gradient's ids are the same. Training calls it on a second thread
    /// beside the step's head: 10-20 us a step that Adam no longer spends
    /// on one thread while the other waits (2-core Zen 5).
    pub fn group_rows_ahead(&mut self, ids: &Tensor) {
        let param = &self.slots.embeddings.param;
        if param.device() != Device::Cpu || param.kind() != Kind::Float || param.dim() != 2 {
            return;
        }
        let ids = ids.to_kind(Kind::Int64).contiguous();
        // SAFETY: `ids` is a contiguous i64 CPU tensor of this frame, only read.
        let ids = unsafe { as_slice(&ids) };
        self.groups.group(ids, param.size()[0] as usize);
    }

    /// One update with `grads`, the gradient of each parameter.
    pub fn step(&mut self, grads: &Parameters<Gradient>) {
        self.iterations += 1;
        let constants = self.constants();
        tch::no_grad(|| {
            let by_rows = self.step_embedding_by_rows(&grads.embeddings, constants);
            let lazy_rows = (self.optimizer == Optimizer::LazyAdam && !by_rows)
                .then(|| LookedUpRows::gather(&self.slots.embeddings, &grads.embeddings));
            let skip = usize::from(by_rows || lazy_rows.is_some());
            let updates: Vec<Update> = lazy_rows
                .iter()
                .map(|rows| rows.update.shallow_clone())
                .chain(
                    self.slots
                        .iter()
                        .zip(grads.iter())
                        .skip(skip)
                        .map(|(slot, gradient)| Update::of(slot, gradient)),
                )
                .collect();
            if !self.update_on_gpu(&updates, constants) {
                self.update_here(updates, constants);
            }
            if let Some(rows) = lazy_rows {
                rows.scatter(&self.slots.embeddings);
            }
        });
    }

    /// The embedding's update when its gradient is by position and it is
    /// an f32 CPU matrix (`embedding_rows.rs`); false (nothing done)
    /// otherwise.
    fn step_embedding_by_rows(&mut self, gradient: &Gradient, constants: AdamConstants) -> bool {
        let Gradient::ByPosition(PositionGradients { ids, d_inputs }) = gradient else {
            return false;
        };
        let Slot { param, m, v } = &self.slots.embeddings;
        if param.device() != Device::Cpu || param.kind() != Kind::Float || param.dim() != 2 {
            return false;
        }
        let ids = ids.to_kind(Kind::Int64).contiguous();
        let d_inputs = d_inputs.to_kind(Kind::Float).contiguous();
        // SAFETY: param, m and v are contiguous f32 CPU tensors (as_mut_slice
        // checks) that only this optimiser writes, and no graph holds them
        // during the step; `ids` and `d_inputs` are this frame's, only read.
        unsafe {
            let table = Table {
                p: as_mut_slice(param),
                m: as_mut_slice(m),
                v: as_mut_slice(v),
                d: param.size()[1] as usize,
            };
            let gradient = ByPosition {
                ids: as_slice(&ids),
                d_inputs: as_slice(&d_inputs),
            };
            let step = TableStep {
                optimizer: self.optimizer,
                constants,
                threads: self.threads,
            };
            update_table(table, gradient, &mut self.groups, step);
        }
        true
    }

    /// `updates` with our CPU loop where the tensors are f32 on the CPU
    /// and libtorch's ops elsewhere.
    fn update_here(&self, updates: Vec<Update>, constants: AdamConstants) {
        let AdamConfig {
            beta_1,
            beta_2,
            epsilon,
            ..
        } = self.config;
        let alpha = f64::from(constants.alpha);
        let mut cpu = Vec::new();
        for Update {
            param,
            m,
            v,
            gradient: g,
        } in updates
        {
            if param.device() == Device::Cpu && g.kind() == Kind::Float {
                cpu.push((param, m, v, g));
            } else {
                let (mut param, mut m, mut v) = (param, m, v);
                let _ = m.lerp_(&g, 1.0 - beta_1);
                let _ = v.lerp_(&(&g * &g), 1.0 - beta_2);
                let update = &m / (v.sqrt() + epsilon) * alpha;
                param -= &update;
            }
        }
        // SAFETY: param, m, v and g are contiguous f32 CPU tensors of
        // the same size (checked in `update_cpu`); only this optimiser
        // writes param, m and v, and no graph holds them during the step.
        unsafe { update_cpu(&cpu, constants, self.threads) };
    }

    /// `updates` in one launch of our CUDA kernel, when every tensor is
    /// on one GPU and the kernel loads: libtorch's ops take ~6 launches
    /// per parameter. False (nothing done) otherwise.
    fn update_on_gpu(&self, updates: &[Update], constants: AdamConstants) -> bool {
        let Device::Cuda(ordinal) = self.slots.embeddings.param.device() else {
            return false;
        };
        let on_gpu = |t: &Tensor| t.device() == Device::Cuda(ordinal) && t.kind() == Kind::Float;
        let all_on_gpu = updates
            .iter()
            .all(|u| on_gpu(&u.param) && on_gpu(&u.m) && on_gpu(&u.v) && on_gpu(&u.gradient));
        if !all_on_gpu {
            return false;
        }
        let Ok(kernels) = StepKernels::get(ordinal) else {
            return false;
        };
        let groups: Vec<AdamTensors> = updates
            .iter()
            .map(|u| AdamTensors {
                parameter: &u.param,
                m: &u.m,
                v: &u.v,
                gradient: &u.gradient,
            })
            .collect();
        kernels
            .adam(&groups, constants)
            .expect("Adam's tensors are the model's own, checked when it was built");
        true
    }
}

/// A tensor to update, its moments and its whole gradient, contiguous.
struct Update {
    param: Tensor,
    m: Tensor,
    v: Tensor,
    gradient: Tensor,
}

impl Update {
    /// A parameter's update with `gradient`, made whole.
    fn of(slot: &Slot, gradient: &Gradient) -> Update {
        Update {
            param: slot.param.shallow_clone(),
            m: slot.m.shallow_clone(),
            v: slot.v.shallow_clone(),
            gradient: gradient.to_dense(slot.param.size()[0]).contiguous(),
        }
    }

    fn shallow_clone(&self) -> Update {
        Update {
            param: self.param.shallow_clone(),
            m: self.m.shallow_clone(),
            v: self.v.shallow_clone(),
            gradient: self.gradient.shallow_clone(),
        }
    }
}

/// `lazy-adam`'s embedding rows where no by-row pass applies: the rows a
/// batch looked up, gathered with their moments and summed gradient into
/// new tensors, so that the update of a dense parameter updates them, and
/// scattered back after it.
struct LookedUpRows {
    /// The distinct rows, ascending (int64, on the table's device).
    rows: Tensor,
    update: Update,
}

impl LookedUpRows {
    fn gather(slot: &Slot, gradient: &Gradient) -> LookedUpRows {
        let ids = gradient
            .looked_up()
            .expect("lazy-adam: the embedding's gradient names the rows its batch looked up");
        let (rows, row_of_position, _) = ids
            .to_device(slot.param.device())
            .to_kind(Kind::Int64)
            .reshape([-1])
            .unique_dim(0, true, true, false);
        let pick = |t: &Tensor| t.index_select(0, &rows).contiguous();
        // By position, each position's gradient is added into its distinct
        // row, so that no [N, D] sum is made.
        let sums = match gradient {
            Gradient::ByPosition(PositionGradients { d_inputs, .. }) => {
                let d = d_inputs.size()[2];
                d_inputs
                    .new_zeros([rows.size()[0], d], (d_inputs.kind(), d_inputs.device()))
                    .index_add(0, &row_of_position, &d_inputs.reshape([-1, d]))
            }
            _ => pick(&gradient.to_dense(slot.param.size()[0])),
        };
        LookedUpRows {
            update: Update {
                param: pick(&slot.param),
                m: pick(&slot.m),
                v: pick(&slot.v),
                gradient: sums.contiguous(),
            },
            rows,
        }
    }

    /// Writes the updated rows back into the table and its moments.
    fn scatter(self, slot: &Slot) {
        let Update { param, m, v, .. } = &self.update;
        for (table, updated) in [(&slot.param, param), (&slot.m, m), (&slot.v, v)] {
            let _ = table.shallow_clone().index_copy_(0, &self.rows, updated);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::dense::PARALLEL_MIN;
    use super::*;
    use crate::model::RowGradients;
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
            let mut adam = Adam::new(&params, config, Optimizer::Adam, 2);
            for g in &grads {
                adam.step(&g.map(|g| Gradient::Dense(g.shallow_clone())));
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

    /// Each position's gradient added into its row, in position order.
    fn summed_by_row(ids: &Tensor, d_inputs: &Tensor, rows: i64) -> Tensor {
        let d = d_inputs.size()[2];
        let ids = Vec::<i64>::try_from(ids.reshape([-1])).unwrap();
        let d_inputs = Vec::<f32>::try_from(d_inputs.reshape([-1])).unwrap();
        let mut sums = vec![0.0f32; (rows * d) as usize];
        for (&id, g) in ids.iter().zip(d_inputs.chunks_exact(d as usize)) {
            for (sum, g) in sums[id as usize * d as usize..].iter_mut().zip(g) {
                *sum += g;
            }
        }
        Tensor::from_slice(&sums).view([rows, d])
    }

    fn bits(t: &Tensor) -> Vec<u32> {
        let values = Vec::<f32>::try_from(t.to_kind(Kind::Float).reshape([-1])).unwrap();
        values.iter().map(|x| x.to_bits()).collect()
    }

    #[test]
    fn an_embedding_gradient_by_position_updates_with_the_bits_of_its_dense_sum() {
        tch::manual_seed(5);
        // D = 24 is not a multiple of the vector width; 2,731 rows (above
        // PARALLEL_MIN elements) do not cut evenly between the threads.
        let (n, d, b, t) = (2731i64, 24i64, 3i64, 5i64);
        assert!((n * d) as usize > PARALLEL_MIN);
        let shapes: [&[i64]; 6] = [&[n, d], &[d, 6], &[2, 6], &[2, 6], &[2, 1], &[1]];
        let start = Parameters::from_ordered(
            shapes
                .iter()
                .map(|&shape| Tensor::randn(shape, (Kind::Float, Device::Cpu))),
        );
        let config = test_config();
        let (by_rows, dense) = (start.map(Tensor::copy), start.map(Tensor::copy));
        let mut by_position_adam = Adam::new(&by_rows, config, Optimizer::Adam, 2);
        let mut dense_adam = Adam::new(&dense, config, Optimizer::Adam, 2);
        for step in 0..6i64 {
            // Rows repeat within a batch, and some batches leave the
            // first or the last rows out.
            let (low, high) = [(0, 8), (n - 11, n), (0, n)][step as usize % 3];
            let ids = Tensor::randint_low(low, high, [b, t], (Kind::Int64, Device::Cpu));
            let d_inputs = Tensor::randn([b, t, d], (Kind::Float, Device::Cpu)) * 1e-2;
            let others: Vec<Tensor> = shapes[1..]
                .iter()
                .map(|&s| Tensor::randn(s, (Kind::Float, Device::Cpu)))
                .collect();
            let rest = || others.iter().map(|g| Gradient::Dense(g.shallow_clone()));
            let by_position = Gradient::ByPosition(PositionGradients {
                ids: ids.shallow_clone(),
                d_inputs: d_inputs.shallow_clone(),
            });
            let summed = Gradient::Dense(summed_by_row(&ids, &d_inputs, n));
            // Grouping ahead, as training does; once with other ids, which
            // the step must not use.
            match step {
                1 | 2 => by_position_adam.group_rows_ahead(&ids),
                4 => by_position_adam.group_rows_ahead(&ids.flip([1])),
                _ => {}
            }
            by_position_adam.step(&Parameters::from_ordered(
                std::iter::once(by_position).chain(rest()),
            ));
            dense_adam.step(&Parameters::from_ordered(
                std::iter::once(summed).chain(rest()),
            ));
        }
        assert_same_bits(
            &(by_rows, by_position_adam.state()),
            &(dense, dense_adam.state()),
            0,
        );
    }

    /// Two runs' parameters and moments have the same bits, but for the
    /// first `skip` parameters.
    fn assert_same_bits(
        (a, a_state): &(Parameters<Tensor>, AdamState),
        (b, b_state): &(Parameters<Tensor>, AdamState),
        skip: usize,
    ) {
        for (k, name) in Parameters::<Tensor>::NAMES.iter().enumerate().skip(skip) {
            let nth = |p: &Parameters<Tensor>| p.iter().nth(k).unwrap().shallow_clone();
            assert_eq!(bits(&nth(a)), bits(&nth(b)), "{name}");
            assert_eq!(
                bits(&nth(&a_state.m)),
                bits(&nth(&b_state.m)),
                "m of {name}"
            );
            assert_eq!(
                bits(&nth(&a_state.v)),
                bits(&nth(&b_state.v)),
                "v of {name}"
            );
        }
    }

    /// TensorFlow Addons' LazyAdam in f64 on a table of rows of `d`: at
    /// step t only the rows that step's ids look up move, each with its
    /// positions' gradients summed, corrected by the global step t.
    fn lazy_adam_table(p: &mut [f64], d: usize, steps: &[(Vec<i64>, Vec<f64>)], c: AdamConfig) {
        let (mut m, mut v) = (vec![0.0; p.len()], vec![0.0; p.len()]);
        for (t, (ids, d_inputs)) in steps.iter().enumerate() {
            let t = t as i32 + 1;
            let alpha =
                c.learning_rate * (1.0 - c.beta_2.powi(t)).sqrt() / (1.0 - c.beta_1.powi(t));
            let mut sums = std::collections::BTreeMap::<usize, Vec<f64>>::new();
            for (&id, g) in ids.iter().zip(d_inputs.chunks_exact(d)) {
                let sum = sums.entry(id as usize).or_insert_with(|| vec![0.0; d]);
                sum.iter_mut().zip(g).for_each(|(sum, g)| *sum += g);
            }
            for (row, g) in sums {
                for (k, g) in g.into_iter().enumerate() {
                    let i = row * d + k;
                    m[i] = c.beta_1 * m[i] + (1.0 - c.beta_1) * g;
                    v[i] = c.beta_2 * v[i] + (1.0 - c.beta_2) * g * g;
                    p[i] -= alpha * m[i] / (v[i].sqrt() + c.epsilon);
                }
            }
        }
    }

    /// A test's settings: Keras's betas and epsilon, a large step.
    fn test_config() -> AdamConfig {
        AdamConfig {
            learning_rate: 0.01,
            beta_1: defaults::BETA_1,
            beta_2: defaults::BETA_2,
            epsilon: defaults::EPSILON,
        }
    }

    /// A step's embedding ids `[B, T]`, their gradients `[B, T, D]` and
    /// the dense parameters' gradients.
    type TestStep = (Tensor, Tensor, Vec<Tensor>);

    /// Parameters of the model's shapes around a `[n, d]` table, and
    /// batches of `[b, t]` ids: rows 0-7 at steps 0, 3 and 6 (untouched
    /// between), the last 11 once, rows n-20..n-11 never; rows repeat
    /// within a batch.
    fn lazy_adam_problem(n: i64, d: i64, b: i64, t: i64) -> (Parameters<Tensor>, Vec<TestStep>) {
        let randn = |shape: &[i64]| Tensor::randn(shape, (Kind::Float, Device::Cpu));
        let shapes: [&[i64]; 6] = [&[n, d], &[d, 6], &[2, 6], &[2, 6], &[2, 1], &[1]];
        let start = Parameters::from_ordered(shapes.iter().map(|&shape| randn(shape)));
        let ranges = [
            (0, 8),
            (n - 11, n),
            (0, n - 20),
            (0, 8),
            (0, n - 20),
            (n / 2, n - 20),
            (0, 8),
        ];
        let steps = ranges
            .iter()
            .map(|&(low, high)| {
                let ids = Tensor::randint_low(low, high, [b, t], (Kind::Int64, Device::Cpu));
                let others = shapes[1..].iter().map(|&s| randn(s)).collect();
                (ids, randn(&[b, t, d]) * 1e-2, others)
            })
            .collect();
        (start, steps)
    }

    /// The embedding's gradient by position, as the CPU kernel gives it.
    fn by_position(ids: &Tensor, d_inputs: &Tensor, _rows: i64) -> Gradient {
        Gradient::ByPosition(PositionGradients {
            ids: ids.shallow_clone(),
            d_inputs: d_inputs.shallow_clone(),
        })
    }

    /// The embedding's gradient summed into rows in position order, in the
    /// gradient's precision, as the CUDA kernel's path gives it.
    fn by_rows(ids: &Tensor, d_inputs: &Tensor, rows: i64) -> Gradient {
        let sums = match d_inputs.kind() {
            Kind::Float => summed_by_row(ids, d_inputs, rows),
            _ => by_position(ids, d_inputs, rows).to_dense(rows),
        };
        Gradient::Rows(RowGradients {
            ids: ids.shallow_clone(),
            sums,
        })
    }

    /// One optimiser's run over `steps` from `start`, the embedding's
    /// gradient handed over as `embedding` makes it.
    fn run_steps(
        start: &Parameters<Tensor>,
        optimizer: Optimizer,
        steps: &[TestStep],
        embedding: fn(&Tensor, &Tensor, i64) -> Gradient,
    ) -> (Parameters<Tensor>, AdamState) {
        let params = start.map(Tensor::copy);
        let rows = start.embeddings.size()[0];
        let mut adam = Adam::new(&params, test_config(), optimizer, 2);
        for (ids, d_inputs, others) in steps {
            let kind = start.embeddings.kind();
            let rest = others.iter().map(|g| Gradient::Dense(g.to_kind(kind)));
            let first = embedding(ids, &d_inputs.to_kind(kind), rows);
            adam.step(&Parameters::from_ordered(
                std::iter::once(first).chain(rest),
            ));
        }
        let state = adam.state();
        (params, state)
    }

    /// The largest difference between the embeddings `got` and `expected`.
    fn deviation(got: &Tensor, expected: &[f64]) -> f64 {
        Vec::<f64>::try_from(got.to_kind(Kind::Double).reshape([-1]))
            .unwrap()
            .iter()
            .zip(expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max)
    }

    #[test]
    fn lazy_adam_moves_only_the_looked_up_rows_as_lazy_adams_formula_says() {
        // The second table's batches look up more than PARALLEL_MIN
        // elements' rows: the pass over them takes both threads.
        for (n, d, b, t) in [(50i64, 5i64, 2i64, 3i64), (4001, 24, 4, 2000)] {
            tch::manual_seed(n);
            let (start, steps) = lazy_adam_problem(n, d, b, t);
            let lazy = run_steps(&start, Optimizer::LazyAdam, &steps, by_position);
            // In place by position, and gathered from summed rows: the same bits.
            let gathered = run_steps(&start, Optimizer::LazyAdam, &steps, by_rows);
            assert_same_bits(&lazy, &gathered, 0);
            // The dense parameters as adam moves them.
            let adam = run_steps(&start, Optimizer::Adam, &steps, by_position);
            assert_same_bits(&lazy, &adam, 1);
            // Rows never looked up keep their bits and zero moments.
            let (lazy, lazy_state) = lazy;
            let never = |t: &Tensor| bits(&t.narrow(0, n - 20, 9));
            assert_eq!(never(&lazy.embeddings), never(&start.embeddings));
            assert!(never(&lazy_state.m.embeddings).iter().all(|&x| x == 0));
            assert!(never(&lazy_state.v.embeddings).iter().all(|&x| x == 0));
            // The formula in f64, against f32 and against libtorch's ops on
            // f64 tensors (the path of a GPU's gathered rows, from summed
            // rows or from positions summed into the distinct rows), whose
            // step size is the f32 one of every path (a relative 6e-8).
            let reference_steps: Vec<(Vec<i64>, Vec<f64>)> = steps
                .iter()
                .map(|(ids, d_inputs, _)| {
                    let d_inputs = d_inputs.to_kind(Kind::Double).reshape([-1]);
                    let ids = Vec::<i64>::try_from(ids.reshape([-1])).unwrap();
                    (ids, Vec::<f64>::try_from(d_inputs).unwrap())
                })
                .collect();
            let mut expected =
                Vec::<f64>::try_from(start.embeddings.to_kind(Kind::Double).reshape([-1])).unwrap();
            lazy_adam_table(&mut expected, d as usize, &reference_steps, test_config());
            let start_f64 = start.map(|t| t.to_kind(Kind::Double));
            let (by_rows_f64, _) = run_steps(&start_f64, Optimizer::LazyAdam, &steps, by_rows);
            let (by_position_f64, _) =
                run_steps(&start_f64, Optimizer::LazyAdam, &steps, by_position);
            for (got, tolerance) in [
                (&lazy.embeddings, 1e-6),
                (&by_rows_f64.embeddings, 1e-8),
                (&by_position_f64.embeddings, 1e-8),
            ] {
                let worst = deviation(got, &expected);
                assert!(worst < tolerance, "{n} rows: max deviation {worst}");
            }
        }
    }
}
