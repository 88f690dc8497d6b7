//! The GRU layer on our fused CPU kernel (`gru_cpu`): tensors in, tensors
//! out, through the slice bridge of `tensor_slice`.
use std::cell::RefCell;

use tch::{Kind, Tensor};

use super::gru::{GruLayer, GruMasks};
use super::tensor_slice::{as_mut_slice, as_slice};
use crate::gru_cpu::{Engine, GruWeights, InputMasks, Masks, Sequences, Tape, TokenIds};

/// The kernel for this CPU and thread count, and the tape and input buffer
/// that training steps reuse (so they are not allocated again at every
/// step).
pub(super) struct CpuKernel {
    engine: Engine,
    spare_tape: RefCell<Option<Tape>>,
    spare_inputs: RefCell<Option<Tensor>>,
}

/// What a training forward leaves for the backward: the tape, and the
/// inputs (the kernel does not copy them).
pub(super) struct KernelTape {
    /// `[B, T, D]`, outside any graph.
    pub embedded: Tensor,
    tape: Tape,
}

/// The layer's gradients, as tensors in the parameters' shapes.
pub(super) struct KernelGradients {
    /// `[B, T, D]`, of the layer's inputs.
    pub d_inputs: Tensor,
    pub d_kernel: Tensor,
    pub d_recurrent_kernel: Tensor,
    pub d_bias: Tensor,
}

/// Borrowed views of the layer's parameters, in the kernel's terms.
///
/// # Safety
/// Nothing may write the parameters while the views are in use.
unsafe fn weights(gru: &GruLayer, input_dim: usize) -> GruWeights<'_> {
    let units = gru.units as usize;
    let bias = as_slice(&gru.bias);
    GruWeights {
        input_dim,
        units,
        kernel: as_slice(&gru.kernel),
        bias: &bias[..3 * units],
        recurrent_kernel: as_slice(&gru.recurrent_kernel),
        recurrent_bias: &bias[3 * units..],
    }
}

impl CpuKernel {
    pub fn new(threads: usize) -> CpuKernel {
        CpuKernel {
            engine: Engine::new(threads),
            spare_tape: RefCell::new(None),
            spare_inputs: RefCell::new(None),
        }
    }

    /// Threads the kernel's calls use, the calling one included.
    pub fn threads(&self) -> usize {
        self.engine.threads()
    }

    /// The rows of `embeddings [N, D]` for `ids [B, T]`: `[B, T, D]`, in
    /// the buffer of an earlier step when it has that size. libtorch's
    /// lookup on one thread took 0.17 ms a step at batch 32, most of it
    /// page faults on a fresh 1.6 MB tensor.
    pub fn embed(&self, embeddings: &Tensor, ids: &Tensor) -> Tensor {
        let (b, t) = ids.size2().expect("ids must be [B, T]");
        let d = embeddings.size()[1];
        let ids = ids.to_kind(Kind::Int64).contiguous();
        let inputs = match self.spare_inputs.take() {
            Some(spare) if spare.size() == [b, t, d] => spare,
            _ => Tensor::empty([b, t, d], (Kind::Float, tch::Device::Cpu)),
        };
        // SAFETY: `inputs` is this call's own buffer (the spare is handed
        // out once); `embeddings` and `ids` are only read, and nothing
        // writes them during the call.
        unsafe {
            self.engine.gather_rows(
                as_slice(embeddings),
                d as usize,
                as_slice(&ids),
                as_mut_slice(&inputs),
            );
        }
        inputs
    }

    /// Training forward of `embedded [B, T, D]` under `masks`: the last
    /// state `[B, H]` and what the backward needs.
    pub fn forward_train(
        &self,
        gru: &GruLayer,
        embedded: Tensor,
        masks: &GruMasks,
    ) -> (Tensor, KernelTape) {
        let (b, t, d) = embedded.size3().expect("GRU input must be [B, T, D]");
        let embedded = embedded.contiguous();
        let input_masks = masks.input.as_ref().map(Tensor::contiguous);
        let recurrent_masks = masks.recurrent.as_ref().map(Tensor::contiguous);
        let mut tape = self.spare_tape.take().unwrap_or_default();
        // SAFETY: the tensors are owned by this frame or by the layer, and
        // nothing writes them during the call.
        let h_last = unsafe {
            let input_masks = match &input_masks {
                None => InputMasks::None,
                Some(m) if m.size()[0] == 1 => InputMasks::Shared(as_slice(m)),
                Some(m) => InputMasks::PerGate(as_slice(m)),
            };
            let masks = Masks {
                input: input_masks,
                recurrent: recurrent_masks.as_ref().map(|m| as_slice(m)),
            };
            let x = Sequences {
                data: as_slice(&embedded),
                batch: b as usize,
                steps: t as usize,
            };
            self.engine
                .forward(&weights(gru, d as usize), x, masks, Some(&mut tape))
        };
        let h_last = Tensor::from_slice(&h_last).view([b, gru.units]);
        (h_last, KernelTape { embedded, tape })
    }

    /// Backward through time of the batch that `pass` recorded, from the
    /// gradient of the loss at the last state.
    pub fn backward(&self, gru: &GruLayer, pass: KernelTape, d_h_last: &Tensor) -> KernelGradients {
        let KernelTape { embedded, mut tape } = pass;
        let (b, t, d) = embedded.size3().expect("embedded is [B, T, D]");
        let d_h_last = d_h_last.contiguous();
        // The kernel writes it in place: copying its 1.6 MB out of the tape
        // made the backward phase 1.10-1.20 s an epoch instead of
        // 1.00-1.02 s (batch 32, measured).
        let d_inputs = Tensor::empty([b, t, d], (Kind::Float, tch::Device::Cpu));
        // SAFETY: as in `forward_train`; the tape belongs to this pass, and
        // `d_inputs` is this call's own tensor.
        let grads = unsafe {
            self.engine.backward(
                &weights(gru, d as usize),
                as_slice(&embedded),
                &mut tape,
                as_slice(&d_h_last),
                as_mut_slice(&d_inputs),
            )
        };
        let from = |v: &[f32], shape: &[i64]| Tensor::from_slice(v).view(shape);
        let h = gru.units;
        let gradients = KernelGradients {
            d_inputs,
            d_kernel: from(&grads.d_kernel, &gru.kernel.size()),
            d_recurrent_kernel: from(&grads.d_recurrent_kernel, &gru.recurrent_kernel.size()),
            d_bias: Tensor::cat(
                &[
                    from(&grads.d_bias, &[1, 3 * h]),
                    from(&grads.d_recurrent_bias, &[1, 3 * h]),
                ],
                0,
            ),
        };
        self.spare_tape.replace(Some(tape));
        self.spare_inputs.replace(Some(embedded));
        gradients
    }

    /// The evaluation input projection of every vocabulary row,
    /// `embeddings [N, D] W + b` (`[N, 3H]`): without dropout it depends on
    /// the token alone.
    pub fn projection_table(&self, gru: &GruLayer, embeddings: &Tensor) -> Vec<f32> {
        let embeddings = embeddings.detach().contiguous();
        let d = embeddings.size()[1] as usize;
        // SAFETY: contiguous f32 CPU tensors alive for the call, not written meanwhile.
        unsafe {
            self.engine
                .projection_table(&weights(gru, d), as_slice(&embeddings))
        }
    }

    /// Evaluation forward of `ids [B, T]` through a
    /// [`CpuKernel::projection_table`]: the last state `[B, H]`.
    pub fn forward_from_table(
        &self,
        gru: &GruLayer,
        input_dim: usize,
        table: &[f32],
        ids: &Tensor,
    ) -> Tensor {
        let (b, t) = ids.size2().expect("ids must be [B, T]");
        let ids = ids.to_kind(Kind::Int64).contiguous();
        // SAFETY: contiguous CPU tensors alive for the call, not written meanwhile.
        let h_last = unsafe {
            let ids = TokenIds {
                ids: as_slice(&ids),
                batch: b as usize,
                steps: t as usize,
            };
            self.engine
                .forward_from_table(&weights(gru, input_dim), table, ids)
        };
        Tensor::from_slice(&h_last).view([b, gru.units])
    }
}
