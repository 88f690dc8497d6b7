//! The kernels of `step.cu` for one GPU: Adam, the binary head and the
//! embedding gradient, each one launch.
use std::ffi::c_void;

use anyhow::{ensure, Result};
use tch::{Device, Kind, Tensor};

use super::driver::{Geometry, Gpu, Kernel};
use super::loaded::LoadedOnce;
use super::{check_tensor, launch, load_program, tensor_arg, Arg};

pub(super) const SOURCE: &str = include_str!("step.cu");

/// The most parameters one Adam launch updates (`MAX_PARAMETERS`).
const ADAM_MAX_PARAMETERS: usize = 8;
/// The largest batch the binary head takes (`HEAD_MAX_BATCH`).
const HEAD_MAX_BATCH: i64 = 4096;
const HEAD_THREADS: u32 = 256;
/// Threads per block, and at most this many blocks, of the element-wise
/// launches: enough to fill the GPU on the 1.28M-element embedding.
const THREADS: u32 = 256;
const MAX_BLOCKS: u32 = 1024;

/// `Slot` of `step.cu`.
#[repr(C)]
#[derive(Clone, Copy)]
struct AdamSlot {
    parameter: *mut c_void,
    m: *mut c_void,
    v: *mut c_void,
    gradient: *mut c_void,
    len: u64,
}

/// `AdamStep` of `step.cu`, passed by value.
#[repr(C)]
struct AdamStepArgs {
    slots: [AdamSlot; ADAM_MAX_PARAMETERS],
    alpha: f32,
    one_minus_beta_1: f32,
    one_minus_beta_2: f32,
    epsilon: f32,
}

/// One Adam update's tensors: parameter, moments, gradient.
pub struct AdamTensors<'a> {
    pub parameter: &'a Tensor,
    pub m: &'a Tensor,
    pub v: &'a Tensor,
    pub gradient: &'a Tensor,
}

/// One Adam update's constants (see `optim/mod.rs`).
#[derive(Clone, Copy)]
pub struct AdamConstants {
    pub alpha: f32,
    pub one_minus_beta_1: f32,
    pub one_minus_beta_2: f32,
    pub epsilon: f32,
}

/// The binary head's inputs and outputs for one batch.
pub struct BinaryHead<'a> {
    /// `[B]`.
    pub logits: &'a Tensor,
    /// `[B]`, 0 or 1.
    pub labels: &'a Tensor,
    /// `[B, H]`.
    pub h_last: &'a Tensor,
    /// `[H, 1]`.
    pub dense_kernel: &'a Tensor,
    /// Running sums (f64 scalars), added to.
    pub loss_sum: &'a Tensor,
    pub hits: &'a Tensor,
}

/// The gradients above the GRU: of the dense layer and of the last state
/// (from the binary head's launch, or from autograd on the other paths).
pub struct HeadGradients {
    pub d_h_last: Tensor,
    pub d_dense_kernel: Tensor,
    pub d_dense_bias: Tensor,
}

/// The step kernels of one GPU, compiled and loaded.
pub struct StepKernels {
    ordinal: usize,
    adam: Kernel,
    binary_head: Kernel,
    embedding_scatter: Kernel,
    embedding_gather: Kernel,
}

/// A grid of `THREADS`-thread blocks over `n` elements (grid-stride loops).
fn elementwise(n: i64, rows: u32) -> Geometry {
    let blocks = (n.max(1) as u64)
        .div_ceil(THREADS as u64)
        .min(MAX_BLOCKS as u64);
    Geometry {
        grid: (blocks as u32, rows),
        block: THREADS,
    }
}

impl StepKernels {
    fn load(ordinal: usize) -> Result<StepKernels> {
        let module = load_program(&Gpu::open(ordinal)?, SOURCE, "step", &[])?;
        Ok(StepKernels {
            ordinal,
            adam: module.function("adam_step")?,
            binary_head: module.function("binary_head")?,
            embedding_scatter: module.function("embedding_scatter")?,
            embedding_gather: module.function("embedding_gather")?,
        })
    }

    /// The step kernels of GPU `ordinal`, loaded once per process; a
    /// failure is remembered too.
    pub fn get(ordinal: usize) -> Result<&'static StepKernels> {
        static LOADED: LoadedOnce<usize, StepKernels> = LoadedOnce::new();
        LOADED.get(ordinal, || StepKernels::load(ordinal))
    }

    fn device(&self) -> Device {
        Device::Cuda(self.ordinal)
    }

    /// One Adam update of every tensor group, in one launch.
    pub fn adam(&self, groups: &[AdamTensors], constants: AdamConstants) -> Result<()> {
        ensure!(
            (1..=ADAM_MAX_PARAMETERS).contains(&groups.len()),
            "Adam's kernel takes 1 to {ADAM_MAX_PARAMETERS} parameters, got {}",
            groups.len()
        );
        let empty = AdamSlot {
            parameter: std::ptr::null_mut(),
            m: std::ptr::null_mut(),
            v: std::ptr::null_mut(),
            gradient: std::ptr::null_mut(),
            len: 0,
        };
        let mut slots = [empty; ADAM_MAX_PARAMETERS];
        let mut longest = 0;
        for (slot, group) in slots.iter_mut().zip(groups) {
            let shape = group.parameter.size();
            for (name, t) in [
                ("parameter", group.parameter),
                ("first moment", group.m),
                ("second moment", group.v),
                ("gradient", group.gradient),
            ] {
                check_tensor(name, t, Kind::Float, &shape, self.device())?;
            }
            longest = longest.max(group.parameter.numel() as i64);
            *slot = AdamSlot {
                parameter: group.parameter.data_ptr(),
                m: group.m.data_ptr(),
                v: group.v.data_ptr(),
                gradient: group.gradient.data_ptr(),
                len: group.parameter.numel() as u64,
            };
        }
        let mut args = AdamStepArgs {
            slots,
            alpha: constants.alpha,
            one_minus_beta_1: constants.one_minus_beta_1,
            one_minus_beta_2: constants.one_minus_beta_2,
            epsilon: constants.epsilon,
        };
        // SAFETY: one parameter, the `AdamStep` struct, laid out as in C;
        // every pointer was checked to be a contiguous f32 tensor of its
        // slot's length on this GPU. The driver copies the struct at launch.
        unsafe {
            self.adam.launch(
                elementwise(longest, groups.len() as u32),
                &mut [(&mut args as *mut AdamStepArgs).cast()],
            )
        }
    }

    /// Whether [`StepKernels::binary_head`] takes a batch of `batch`.
    pub fn head_takes(batch: i64) -> bool {
        (1..=HEAD_MAX_BATCH).contains(&batch)
    }

    /// Loss, running totals and gradients of `Dense(1)` + sigmoid
    /// cross-entropy (mean over the batch), in one launch.
    pub fn binary_head(&self, head: &BinaryHead) -> Result<HeadGradients> {
        let (b, h) = head.h_last.size2()?;
        ensure!(
            Self::head_takes(b),
            "the binary head takes 1 to {HEAD_MAX_BATCH} rows, got {b}"
        );
        let device = self.device();
        let options = (Kind::Float, device);
        let gradients = HeadGradients {
            d_h_last: Tensor::empty([b, h], options),
            d_dense_kernel: Tensor::empty([h, 1], options),
            d_dense_bias: Tensor::empty([1], options),
        };
        let sum = |name, t: &Tensor| -> Result<Arg> {
            check_tensor(name, t, Kind::Double, &[], device)?;
            Ok(Arg::Pointer(t.data_ptr()))
        };
        let args = [
            tensor_arg("logits", head.logits, &[b], device)?,
            tensor_arg("labels", head.labels, &[b], device)?,
            tensor_arg("last state", head.h_last, &[b, h], device)?,
            tensor_arg("dense kernel", head.dense_kernel, &[h, 1], device)?,
            Arg::Int(b as i32),
            Arg::Int(h as i32),
            sum("loss sum", head.loss_sum)?,
            sum("hits", head.hits)?,
            Arg::Pointer(gradients.d_h_last.data_ptr()),
            Arg::Pointer(gradients.d_dense_kernel.data_ptr()),
            Arg::Pointer(gradients.d_dense_bias.data_ptr()),
        ];
        let geometry = Geometry {
            grid: (1, 1),
            block: HEAD_THREADS,
        };
        // SAFETY: the args match `binary_head` and were checked; the
        // outputs are fresh tensors.
        unsafe { launch(&self.binary_head, geometry, &args)? };
        Ok(gradients)
    }

    /// The embedding gradient `[N, D]`: each position's row of `d_inputs
    /// [B, T, D]` summed into row `ids[b, t]` (int64, below N), in any
    /// order to the same sum. `sums` (`[N, D]` int64, zero) is the kernels'
    /// scratch, left zero again.
    pub fn embedding_gradient(
        &self,
        ids: &Tensor,
        d_inputs: &Tensor,
        sums: &Tensor,
    ) -> Result<Tensor> {
        let (b, t, d) = d_inputs.size3()?;
        let rows = sums.size()[0];
        let device = self.device();
        check_tensor("token ids", ids, Kind::Int64, &[b, t], device)?;
        check_tensor("embedding sums", sums, Kind::Int64, &[rows, d], device)?;
        let gradient = Tensor::empty([rows, d], (Kind::Float, device));
        let positions = b * t;
        let scatter = [
            Arg::Pointer(ids.data_ptr()),
            tensor_arg("input gradient", d_inputs, &[b, t, d], device)?,
            Arg::Long(positions),
            Arg::Int(d as i32),
            Arg::Pointer(sums.data_ptr()),
        ];
        let gather = [
            Arg::Pointer(sums.data_ptr()),
            Arg::Pointer(gradient.data_ptr()),
            Arg::Long(rows * d),
        ];
        // SAFETY: the args match the kernels and were checked; the ids
        // index rows below N (they come from a vocabulary of N entries).
        unsafe {
            launch(
                &self.embedding_scatter,
                elementwise(positions * d, 1),
                &scatter,
            )?;
            launch(&self.embedding_gather, elementwise(rows * d, 1), &gather)?;
        }
        Ok(gradient)
    }
}
