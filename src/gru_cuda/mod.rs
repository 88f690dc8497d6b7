//! The Keras GRU (`reset_after`, with its three recurrent dropout masks) as
//! persistent CUDA kernels, and Keras's Adam in one launch.
//!
//! # Why
//! Written as libtorch ops, a Keras step with recurrent dropout is ~15
//! launches per time step, ~1.5k per batch, forward and backward: 61 s an
//! epoch on an H100. cuDNN cannot apply per-gate recurrent masks. The layer
//! is small: the recurrent kernel (`H x 3H`, 48 KB at H = 64) fits in the
//! registers of one block, and each block owns whole batch rows, so the
//! whole recurrence is one launch with no grid-wide synchronisation.
//!
//! # Kernels (`gru.cu`, compiled by NVRTC for the card, `-DUNITS=H`)
//! A block has `3H` threads; thread `j` owns gate column `j` (gate `j / H`,
//! unit `j % H`) and holds that column of `U` (forward) or that row of
//! `U_gate` (backward) in `H` registers. `ROWS` (1, 2, 4 or 8) batch rows
//! share a block, so a weight read from a register serves `ROWS` products;
//! [`rows_per_block`] picks the fewest rows that keep the grid within two
//! blocks per multiprocessor. Per time step: the products `h U` from the
//! masked states in shared memory, a barrier, the gates of each (row, unit)
//! pair, a barrier. With `z, r, hh` the gates, `m_g` the recurrent masks:
//!
//! ```text
//! forward   z  = sigmoid(x W_z + b_z + (h m_z) U_z + b'_z)
//!           r  = sigmoid(x W_r + b_r + (h m_r) U_r + b'_r)
//!           hh = tanh(x W_h + b_h + r * ((h m_h) U_h + b'_h))
//!           h  = hh + z * (h - hh)
//! backward  dz = dh (h_prev - hh) z (1 - z)
//!           da = dh (1 - z) (1 - hh^2)            (hh's pre-activation)
//!           dr = da ((h m_h) U_h + b'_h) r (1 - r)
//!           dh_prev = dh z + sum_g (d_g U_g^T) m_g, with d_h = da r
//! ```
//!
//! # Layouts (row-major, f32, on the GPU)
//! - `projected [3, B, T, H]`: the input projections `(x m_in_g) W_g` of
//!   all steps, one batched product before the launch (cuBLAS); the input
//!   bias is added in the kernel. In evaluation a table `[N, 3H]` of
//!   `E W` replaces it: without dropout the projection depends on the
//!   token alone.
//! - tape `gates [B, T, 5, H]`: `z, r, hh, (h m_h) U_h + b'_h, h_prev`;
//!   tape `masked_states [3, B, T, H]`: `h_prev m_g`.
//! - gradients out: `d_gates_input [3, B, T, H]` (of the pre-activations,
//!   what the input projection and bias saw) and `d_gates_recurrent`
//!   (what the recurrent product saw: the h gate's is multiplied by `r`).
//!   The weight and bias gradients are then batched products and sums
//!   (`model/cuda_kernel.rs`): deterministic, no atomics.
//!
//! # Numerics
//! f32 throughout, precise `expf`/`tanhf`, FMA contraction allowed; a
//! step's dot products are summed in a fixed order (up to four partial
//! chains), so a run is deterministic but not bit-equal to the CPU kernel
//! or to cuBLAS: they agree to ~1e-6 relative.
//!
//! # The rest of a step (`step.cu`, `step_kernels.rs`)
//! Keras's Adam for all parameters in one launch; the binary head's loss,
//! running totals and gradients in one launch instead of ~25 libtorch ops
//! and autograd; the embedding gradient in two launches instead of
//! libtorch's sort-based backward (its path above 3,072 positions: a batch
//! of 32 reviews of 100 steps has 3,200), about ten.
mod driver;
mod loaded;
mod nvrtc;
mod step_kernels;

use std::ffi::c_void;

use anyhow::{bail, ensure, Result};
use tch::{Device, Kind, Tensor};

pub use driver::Gpu;
use driver::{Geometry, Kernel};
use loaded::LoadedOnce;
pub use step_kernels::{AdamConstants, AdamTensors, BinaryHead, HeadGradients, StepKernels};

const GRU_SOURCE: &str = include_str!("gru.cu");

/// The largest layer the kernels take: each of the `3H` threads of a block
/// keeps `H` weights in registers, and a block has 64K registers (at 80
/// units the 8-row variants spill, measured with `--ptxas-options=-v`).
pub const MAX_UNITS: usize = 64;

/// The rows-per-block variants compiled (`GRU_KERNELS(ROWS)` in `gru.cu`).
const ROW_VARIANTS: [usize; 4] = [1, 2, 4, 8];

/// At most this many blocks per multiprocessor: two let one block's
/// barriers and special functions overlap the other's products.
const BLOCKS_PER_MULTIPROCESSOR: usize = 2;

/// The fields of one time step in the forward tape (`gru.cu`).
const TAPE_FIELDS: i64 = 5;

/// The options every compile gets: the kernels' register report (read by
/// the tests for spills) comes with the log.
fn gru_options(units: usize) -> Vec<String> {
    vec![format!("-DUNITS={units}"), "--ptxas-options=-v".into()]
}

/// Refuses a layer the kernels cannot hold, saying why.
pub fn check_layer(units: usize) -> Result<()> {
    if units == 0 || units > MAX_UNITS {
        bail!(
            "the CUDA GRU kernel holds at most {MAX_UNITS} units (each thread keeps one \
             column of the recurrent kernel in registers); this layer has {units}"
        );
    }
    Ok(())
}

/// Rows per block for a batch: the fewest that keep the grid within
/// `BLOCKS_PER_MULTIPROCESSOR` blocks per multiprocessor, so all blocks
/// are resident at once.
pub fn rows_per_block(batch: usize, multiprocessors: u32) -> usize {
    let resident = multiprocessors as usize * BLOCKS_PER_MULTIPROCESSOR;
    ROW_VARIANTS
        .into_iter()
        .find(|&rows| batch.div_ceil(rows) <= resident)
        .unwrap_or(ROW_VARIANTS[ROW_VARIANTS.len() - 1])
}

/// Compiles the GRU kernels for `sm_<arch>` (no GPU needed): the CUBIN and
/// the compiler's log with each kernel's registers and spills.
pub fn compile_gru(arch: u32, units: usize) -> Result<(Vec<u8>, String)> {
    check_layer(units)?;
    let compiled = nvrtc::compile(GRU_SOURCE, "gru.cu", arch, &gru_options(units))?;
    Ok((compiled.cubin, compiled.log))
}

/// `source` compiled for `gpu` and loaded into its context for the life of
/// the process: from the disk cache when an earlier run compiled it; a
/// cached CUBIN that is damaged (checked by its sha256 before the driver
/// sees it) or that the driver refuses is compiled again and replaced, so
/// it can neither crash a run nor keep the kernels off for good.
fn load_program(
    gpu: &Gpu,
    source: &str,
    name: &str,
    options: &[String],
) -> Result<&'static driver::Module> {
    let arch = gpu.compute_capability;
    let cached = nvrtc::cache_path(source, name, arch, options)?;
    let from_cache = cached
        .as_ref()
        .and_then(|path| nvrtc::read_cached(path))
        .and_then(|cubin| gpu.load_module(&cubin).ok());
    let module = match from_cache {
        Some(module) => module,
        None => {
            let compiled = nvrtc::compile(source, name, arch, options)?;
            if let Some(path) = &cached {
                nvrtc::store(path, &compiled.cubin);
            }
            gpu.load_module(&compiled.cubin)?
        }
    };
    Ok(Box::leak(Box::new(module)))
}

/// The GRU kernels of one GPU and layer size, compiled and loaded.
#[derive(Clone)]
pub struct GruKernels {
    gpu: Gpu,
    units: usize,
    /// Rows per block for every batch, instead of [`rows_per_block`]'s
    /// rule (benchmarks compare the variants with it).
    fixed_rows: Option<usize>,
    forward_train: Vec<Kernel>,
    forward_table: Vec<Kernel>,
    backward: Vec<Kernel>,
}

/// One kernel function per variant of [`ROW_VARIANTS`].
fn variants(module: &driver::Module, name: &str) -> Result<Vec<Kernel>> {
    ROW_VARIANTS
        .iter()
        .map(|rows| module.function(&format!("{name}_{rows}")))
        .collect()
}

impl GruKernels {
    fn load(ordinal: usize, units: usize) -> Result<GruKernels> {
        check_layer(units)?;
        let gpu = Gpu::open(ordinal)?;
        let module = load_program(&gpu, GRU_SOURCE, "gru", &gru_options(units))?;
        Ok(GruKernels {
            gpu,
            units,
            fixed_rows: None,
            forward_train: variants(module, "gru_forward_train")?,
            forward_table: variants(module, "gru_forward_table")?,
            backward: variants(module, "gru_backward")?,
        })
    }

    /// The kernels for GPU `ordinal` and a layer of `units`, compiled (or
    /// read from the cache) and loaded once per process; a failure is
    /// remembered too.
    pub fn get(ordinal: usize, units: usize) -> Result<&'static GruKernels> {
        static LOADED: LoadedOnce<(usize, usize), GruKernels> = LoadedOnce::new();
        LOADED.get((ordinal, units), || GruKernels::load(ordinal, units))
    }

    /// These kernels with `rows` batch rows per block whatever the batch.
    pub fn with_rows_per_block(&self, rows: usize) -> Result<GruKernels> {
        ensure!(
            ROW_VARIANTS.contains(&rows),
            "rows per block must be one of {ROW_VARIANTS:?}, not {rows}"
        );
        Ok(GruKernels {
            fixed_rows: Some(rows),
            ..self.clone()
        })
    }

    /// The GPU's multiprocessors.
    pub fn multiprocessors(&self) -> u32 {
        self.gpu.multiprocessors
    }

    fn geometry(&self, batch: usize) -> (usize, Geometry) {
        let rows = self
            .fixed_rows
            .unwrap_or_else(|| rows_per_block(batch, self.gpu.multiprocessors));
        let variant = ROW_VARIANTS.iter().position(|&r| r == rows).unwrap();
        let geometry = Geometry {
            grid: (batch.div_ceil(rows) as u32, 1),
            block: 3 * self.units as u32,
        };
        (variant, geometry)
    }

    fn device(&self) -> Device {
        Device::Cuda(self.gpu.ordinal)
    }
}

/// A kernel argument: a device pointer, an `int` or a `long long`.
#[derive(Clone, Copy)]
enum Arg {
    Pointer(*mut c_void),
    Int(i32),
    Long(i64),
}

/// Launches `kernel` with `args` in order.
///
/// # Safety
/// As [`Kernel::launch`]: the args are the kernel's parameters, and the
/// pointers stay valid until the work completes (libtorch's caching
/// allocator keeps a freed block for later work on the same stream, so
/// tensors dropped after the launch are safe).
unsafe fn launch(kernel: &Kernel, geometry: Geometry, args: &[Arg]) -> Result<()> {
    let mut values = args.to_vec();
    let mut pointers: Vec<*mut c_void> = values
        .iter_mut()
        .map(|arg| match arg {
            Arg::Pointer(p) => (p as *mut *mut c_void).cast(),
            Arg::Int(i) => (i as *mut i32).cast(),
            Arg::Long(i) => (i as *mut i64).cast(),
        })
        .collect();
    kernel.launch(geometry, &mut pointers)
}

/// A contiguous f32 tensor of `shape` on `device`, as a kernel argument.
fn tensor_arg(name: &str, t: &Tensor, shape: &[i64], device: Device) -> Result<Arg> {
    check_tensor(name, t, Kind::Float, shape, device)?;
    Ok(Arg::Pointer(t.data_ptr()))
}

/// Refuses a tensor the kernels cannot read as given.
pub fn check_tensor(
    name: &str,
    t: &Tensor,
    kind: Kind,
    shape: &[i64],
    device: Device,
) -> Result<()> {
    ensure!(
        t.size() == shape,
        "{name}: expected shape {shape:?}, got {:?}",
        t.size()
    );
    ensure!(
        t.kind() == kind,
        "{name}: expected {kind:?}, got {:?}",
        t.kind()
    );
    ensure!(
        t.device() == device,
        "{name}: expected it on {device:?}, got {:?}",
        t.device()
    );
    ensure!(t.is_contiguous(), "{name}: must be contiguous");
    Ok(())
}

/// The layer's parameters in Keras's layout, on the kernels' GPU.
pub struct Weights<'a> {
    /// `[H, 3H]`.
    pub recurrent_kernel: &'a Tensor,
    /// `[2, 3H]`: input bias, recurrent bias.
    pub bias: &'a Tensor,
}

/// What a training forward records for the backward.
pub struct ForwardTape {
    /// `[3, B, T, H]`.
    pub masked_states: Tensor,
    /// `[B, T, 5, H]`.
    pub gates: Tensor,
}

/// The gate gradients of a backward pass.
pub struct GateGradients {
    /// `[3, B, T, H]`, of the input-side pre-activations.
    pub input: Tensor,
    /// `[3, B, T, H]`, of the recurrent products.
    pub recurrent: Tensor,
}

impl GruKernels {
    fn weight_args(&self, weights: &Weights) -> Result<[Arg; 2]> {
        let (h, device) = (self.units as i64, self.device());
        Ok([
            tensor_arg(
                "recurrent kernel",
                weights.recurrent_kernel,
                &[h, 3 * h],
                device,
            )?,
            tensor_arg("bias", weights.bias, &[2, 3 * h], device)?,
        ])
    }

    fn masks_arg(&self, masks: Option<&Tensor>, batch: i64) -> Result<Arg> {
        let h = self.units as i64;
        match masks {
            None => Ok(Arg::Pointer(std::ptr::null_mut())),
            Some(m) => tensor_arg("recurrent masks", m, &[3, batch, h], self.device()),
        }
    }

    /// Training forward: `projected [3, B, T, H]`, `recurrent_masks
    /// [3, B, H]` or none; the last state `[B, H]` and the tape.
    pub fn forward_train(
        &self,
        weights: &Weights,
        projected: &Tensor,
        recurrent_masks: Option<&Tensor>,
    ) -> Result<(Tensor, ForwardTape)> {
        let [_, b, t, h] = projected.size()[..] else {
            bail!(
                "projected inputs must be [3, B, T, H], got {:?}",
                projected.size()
            );
        };
        ensure!(t >= 1, "a sequence needs at least one step");
        let options = (Kind::Float, self.device());
        let h_last = Tensor::empty([b, h], options);
        let tape = ForwardTape {
            masked_states: Tensor::empty([3, b, t, h], options),
            gates: Tensor::empty([b, t, TAPE_FIELDS, h], options),
        };
        let [recurrent_kernel, bias] = self.weight_args(weights)?;
        let args = [
            tensor_arg(
                "projected inputs",
                projected,
                &[3, b, t, self.units as i64],
                self.device(),
            )?,
            recurrent_kernel,
            bias,
            self.masks_arg(recurrent_masks, b)?,
            Arg::Int(b as i32),
            Arg::Int(t as i32),
            Arg::Pointer(h_last.data_ptr()),
            Arg::Pointer(tape.masked_states.data_ptr()),
            Arg::Pointer(tape.gates.data_ptr()),
        ];
        let (variant, geometry) = self.geometry(b as usize);
        // SAFETY: the args match `gru_forward_train_*` and were checked
        // for shape, type and device; the outputs are fresh tensors.
        unsafe { launch(&self.forward_train[variant], geometry, &args)? };
        Ok((h_last, tape))
    }

    /// Evaluation forward from a projection `table [N, 3H]` and token
    /// `ids [B, T]` (int64, each below N): the last state `[B, H]`.
    pub fn forward_table(&self, weights: &Weights, table: &Tensor, ids: &Tensor) -> Result<Tensor> {
        let (b, t) = ids.size2()?;
        ensure!(t >= 1, "a sequence needs at least one step");
        let h = self.units as i64;
        let rows = table.size()[0];
        check_tensor("token ids", ids, Kind::Int64, &[b, t], self.device())?;
        let h_last = Tensor::empty([b, h], (Kind::Float, self.device()));
        let [recurrent_kernel, bias] = self.weight_args(weights)?;
        let args = [
            tensor_arg("projection table", table, &[rows, 3 * h], self.device())?,
            Arg::Pointer(ids.data_ptr()),
            recurrent_kernel,
            bias,
            Arg::Int(b as i32),
            Arg::Int(t as i32),
            Arg::Pointer(h_last.data_ptr()),
        ];
        let (variant, geometry) = self.geometry(b as usize);
        // SAFETY: as in `forward_train`; ids index the table's rows (they
        // come from a vocabulary of `rows` entries).
        unsafe { launch(&self.forward_table[variant], geometry, &args)? };
        Ok(h_last)
    }

    /// Backward through time from `d_h_last [B, H]` over a forward's tape.
    pub fn backward(
        &self,
        weights: &Weights,
        recurrent_masks: Option<&Tensor>,
        tape: &ForwardTape,
        d_h_last: &Tensor,
    ) -> Result<GateGradients> {
        let [b, t, _, h] = tape.gates.size()[..] else {
            bail!("the tape must be [B, T, 5, H], got {:?}", tape.gates.size());
        };
        let options = (Kind::Float, self.device());
        let gradients = GateGradients {
            input: Tensor::empty([3, b, t, h], options),
            recurrent: Tensor::empty([3, b, t, h], options),
        };
        let [recurrent_kernel, _] = self.weight_args(weights)?;
        let args = [
            recurrent_kernel,
            self.masks_arg(recurrent_masks, b)?,
            tensor_arg(
                "tape",
                &tape.gates,
                &[b, t, TAPE_FIELDS, self.units as i64],
                self.device(),
            )?,
            tensor_arg("state gradient", d_h_last, &[b, h], self.device())?,
            Arg::Int(b as i32),
            Arg::Int(t as i32),
            Arg::Pointer(gradients.input.data_ptr()),
            Arg::Pointer(gradients.recurrent.data_ptr()),
        ];
        let (variant, geometry) = self.geometry(b as usize);
        // SAFETY: as in `forward_train`.
        unsafe { launch(&self.backward[variant], geometry, &args)? };
        Ok(gradients)
    }
}

#[cfg(test)]
mod tests;
