//! The GRU layer on our CUDA kernels (`gru_cuda`): the recurrence forward
//! and backward in one launch each, and around them the batched products
//! that need no recurrence (input projection, weight gradients, input
//! gradient), as libtorch ops that are deterministic on CUDA.
use anyhow::Result;
use tch::{Device, Kind, Tensor};

use super::cpu_kernel::KernelGradients;
use super::gru::{GruLayer, GruMasks};
use crate::gru_cuda::{ForwardTape, GruKernels, StepKernels, Weights};

/// The kernels of the model's GPU and layer size, and the GPU's step
/// kernels (the fused head).
pub(super) struct CudaKernel {
    kernels: &'static GruKernels,
    pub step: &'static StepKernels,
}

/// What a training forward leaves for the backward.
pub(super) struct CudaTape {
    /// `[gates_in, B * T, D]`: the inputs under each gate's input mask (one
    /// shared mask, or none: `gates_in` is 1).
    masked_inputs: Tensor,
    input_masks: Option<Tensor>,
    recurrent_masks: Option<Tensor>,
    tape: ForwardTape,
}

impl GruLayer {
    fn cuda_weights(&self) -> Weights<'_> {
        Weights {
            recurrent_kernel: &self.recurrent_kernel,
            bias: &self.bias,
        }
    }
}

/// `sum over b, t of x[g, b, t]^T d[g, b, t]` for each gate `g`: `x
/// [1 or 3, B, T, P]`, `d [3, B, T, Q]` -> `[3, P, Q]`. As one product per
/// gate over all `B T` positions, cuBLAS ran about three thread blocks
/// through `K = B T` (~8 ms a step at batch 1024 on an H100, measured); as
/// one `[P, T] x [T, Q]` product per gate and row, summed over the rows in
/// a fixed order, the work is spread over `3 B` pieces and stays
/// deterministic.
fn summed_over_rows(x: &Tensor, d: &Tensor) -> Tensor {
    x.transpose(2, 3)
        .matmul(d)
        .sum_dim_intlist(1, false, Kind::Float)
}

impl CudaKernel {
    /// The kernels for a layer of `units` on `device` and the device's step
    /// kernels, compiled (or taken from the cache) and loaded.
    pub fn new(device: Device, units: usize) -> Result<CudaKernel> {
        let Device::Cuda(ordinal) = device else {
            anyhow::bail!("the CUDA kernel runs on a CUDA device, not {device:?}");
        };
        Ok(CudaKernel {
            kernels: GruKernels::get(ordinal, units)?,
            step: StepKernels::get(ordinal)?,
        })
    }

    /// Training forward of `embedded [B, T, D]` under `masks`: the last
    /// state `[B, H]` and what the backward needs. Outside autograd.
    pub fn forward_train(
        &self,
        gru: &GruLayer,
        embedded: &Tensor,
        masks: &GruMasks,
    ) -> Result<(Tensor, CudaTape)> {
        let (b, t, d) = embedded.size3()?;
        tch::no_grad(|| {
            let x = embedded.unsqueeze(0);
            let masked_inputs = match &masks.input {
                None => x,
                Some(m) => x * m.unsqueeze(2), // [gates_in, B, T, D]
            };
            let masked_inputs = masked_inputs.reshape([-1, b * t, d]);
            // [gates_in, BT, D] x [3, D, H] -> [3, BT, H] = [3, B, T, H].
            let projected = masked_inputs
                .matmul(&gru.per_gate(&gru.kernel))
                .view([3, b, t, gru.units]);
            let recurrent_masks = masks.recurrent.as_ref().map(Tensor::contiguous);
            let (h_last, tape) = self.kernels.forward_train(
                &gru.cuda_weights(),
                &projected,
                recurrent_masks.as_ref(),
            )?;
            Ok((
                h_last,
                CudaTape {
                    masked_inputs,
                    input_masks: masks.input.as_ref().map(Tensor::shallow_clone),
                    recurrent_masks,
                    tape,
                },
            ))
        })
    }

    /// Backward through time of the batch `pass` recorded, from the
    /// gradient of the loss at the last state.
    pub fn backward(
        &self,
        gru: &GruLayer,
        pass: CudaTape,
        d_h_last: &Tensor,
    ) -> Result<KernelGradients> {
        let (b, t) = (pass.tape.gates.size()[0], pass.tape.gates.size()[1]);
        let (d, h) = (gru.kernel.size()[0], gru.units);
        tch::no_grad(|| {
            let gates = self.kernels.backward(
                &gru.cuda_weights(),
                pass.recurrent_masks.as_ref(),
                &pass.tape,
                &d_h_last.contiguous(),
            )?;
            let d_input = gates.input.view([3, b * t, h]);
            let d_recurrent = gates.recurrent.view([3, b * t, h]);
            // [3, D, H] -> [D, 3H] and [3, H, H] -> [H, 3H]: gate blocks side by side.
            let d_kernel = summed_over_rows(&pass.masked_inputs.view([-1, b, t, d]), &gates.input)
                .permute([1, 0, 2])
                .reshape([d, 3 * h]);
            let d_recurrent_kernel = summed_over_rows(&pass.tape.masked_states, &gates.recurrent)
                .permute([1, 0, 2])
                .reshape([h, 3 * h]);
            let d_bias = Tensor::stack(
                &[
                    d_input
                        .sum_dim_intlist(1, false, Kind::Float)
                        .reshape([3 * h]),
                    d_recurrent
                        .sum_dim_intlist(1, false, Kind::Float)
                        .reshape([3 * h]),
                ],
                0,
            );
            // Each gate's [BT, H] x [H, D], under its input mask, summed.
            let per_gate = d_input
                .matmul(&gru.per_gate(&gru.kernel).transpose(1, 2))
                .view([3, b, t, d]);
            let per_gate = match &pass.input_masks {
                None => per_gate,
                Some(m) => per_gate * m.unsqueeze(2),
            };
            Ok(KernelGradients {
                d_inputs: per_gate.sum_dim_intlist(0, false, Kind::Float),
                d_kernel,
                d_recurrent_kernel,
                d_bias,
            })
        })
    }

    /// The evaluation input projection of every vocabulary row,
    /// `embeddings [N, D] W` (`[N, 3H]`; the kernel adds the bias).
    pub fn projection_table(&self, gru: &GruLayer, embeddings: &Tensor) -> Tensor {
        tch::no_grad(|| embeddings.matmul(&gru.kernel).contiguous())
    }

    /// Evaluation forward of `ids [B, T]` through a
    /// [`CudaKernel::projection_table`]: the last state `[B, H]`.
    pub fn forward_from_table(
        &self,
        gru: &GruLayer,
        table: &Tensor,
        ids: &Tensor,
    ) -> Result<Tensor> {
        let ids = ids.to_kind(Kind::Int64).contiguous();
        self.kernels.forward_table(&gru.cuda_weights(), table, &ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_row_products_summed_equal_one_product_over_all_positions() {
        tch::manual_seed(1);
        let (b, t, p, q) = (5, 7, 6, 4);
        let options = (Kind::Float, Device::Cpu);
        let d = Tensor::randn([3, b, t, q], options);
        for gates_in in [1, 3] {
            let x = Tensor::randn([gates_in, b, t, p], options);
            let whole = x
                .reshape([gates_in, b * t, p])
                .transpose(1, 2)
                .matmul(&d.reshape([3, b * t, q]));
            let by_rows = summed_over_rows(&x, &d);
            assert_eq!(by_rows.size(), [3, p, q]);
            let diff = (&whole - &by_rows).abs().max().double_value(&[]);
            assert!(diff < 1e-5, "{diff}");
        }
    }
}
