//! The backward pass of a training step: autograd through the whole model
//! for libtorch's GRUs; for our kernels, which autograd cannot see,
//! autograd (or the fused binary head) down to the last GRU state, then the
//! kernel's backward through time and the embedding gradient.
use tch::Tensor;

use super::embedding_gradient::EmbeddingGradient;
use super::gradient::{Gradient, PositionGradients, RowGradients};
use super::{KernelPass, Parameters, SentimentModel, Tape, TrainForward};
use crate::gru_cuda::{BinaryHead, HeadGradients, StepKernels};
use crate::profile::{self, Phase};

impl TrainForward {
    /// The gradient of `loss` with respect to each parameter. Returned
    /// rather than accumulated into `.grad`. On the CPU kernel's path the
    /// embedding's is left by position ([`Gradient::ByPosition`]).
    pub fn backward(self, model: &SentimentModel, loss: &Tensor) -> Parameters<Gradient> {
        self.backward_to_kernel(model, loss).finish(model)
    }

    /// The first part of [`TrainForward::backward`], on the calling thread
    /// (autograd's state is per thread): on our kernels' paths autograd
    /// down to the last GRU state, which uses only libtorch; for
    /// libtorch's GRUs all of it. [`KernelBackward::finish`] does the rest.
    pub fn backward_to_kernel(self, model: &SentimentModel, loss: &Tensor) -> KernelBackward {
        let Some(pass) = self.kernel_pass else {
            // Autograd through the whole model, the GRU's steps included.
            let params = model.parameters();
            let inputs: Vec<&Tensor> = params.iter().collect();
            let grads = profile::time(Phase::GruBackward, || {
                Tensor::run_backward(&[loss], &inputs, false, false)
            });
            let mut grads = grads.into_iter();
            let embeddings = Gradient::Rows(RowGradients {
                ids: self.ids,
                sums: grads.next().expect("the embedding's gradient"),
            });
            let grads = std::iter::once(embeddings).chain(grads.map(Gradient::Dense));
            return KernelBackward(Stage::Done(Parameters::from_ordered(grads)));
        };
        let [d_dense_kernel, d_dense_bias, d_h_last]: [Tensor; 3] =
            profile::time(Phase::DenseAndLoss, || {
                Tensor::run_backward(
                    &[loss],
                    &[&model.dense_kernel, &model.dense_bias, &pass.h_last],
                    false,
                    false,
                )
            })
            .try_into()
            .expect("three gradients");
        let head = HeadGradients {
            d_dense_kernel,
            d_dense_bias,
            d_h_last,
        };
        KernelBackward(Stage::AtKernel {
            ids: self.ids,
            pass,
            head,
        })
    }

    /// [`TrainForward::backward_to_kernel`] where `loss` is the batch's
    /// mean binary cross-entropy of these logits against `labels`
    /// (`loss.rs`). On the CPU kernel's path
    /// with one sigmoid unit the head's gradients come from the ops that
    /// autograd's backward runs, called directly (`head_by_hand`): the
    /// same ops on the same tensors, so the same bits (`tests/model.rs`
    /// checks), without autograd's engine, which took 45-65 us of a
    /// training step on the 2-core Zen 5. Elsewhere autograd.
    pub fn backward_to_kernel_for_labels(
        self,
        model: &SentimentModel,
        loss: &Tensor,
        labels: &Tensor,
    ) -> KernelBackward {
        match self.kernel_pass {
            Some(pass) if matches!(pass.tape, Tape::Cpu(_)) && self.logits.dim() == 1 => {
                let head = profile::time(Phase::DenseAndLoss, || {
                    head_by_hand(model, &self.logits, labels, &pass.h_last)
                });
                KernelBackward(Stage::AtKernel {
                    ids: self.ids,
                    pass,
                    head,
                })
            }
            kernel_pass => TrainForward {
                kernel_pass,
                ..self
            }
            .backward_to_kernel(model, loss),
        }
    }

    /// Whether [`TrainForward::fused_head_to_kernel`] can run: on the
    /// CUDA kernel's path with one sigmoid unit.
    pub fn fuses_head(&self) -> bool {
        match &self.kernel_pass {
            Some(pass) => {
                matches!(pass.tape, Tape::Cuda(_))
                    && self.logits.dim() == 1
                    && StepKernels::head_takes(self.logits.size()[0])
            }
            None => false,
        }
    }

    /// [`TrainForward::backward_to_kernel`] for the batch's mean binary
    /// cross-entropy against `labels`, its loss and hits added to `sums`:
    /// the loss, its autograd and the sums' ops in one launch of the step
    /// kernels. Only where [`TrainForward::fuses_head`].
    pub fn fused_head_to_kernel(
        self,
        model: &SentimentModel,
        labels: &Tensor,
        sums: RunningSums,
    ) -> KernelBackward {
        let pass = self.kernel_pass.expect("fuses_head was checked");
        let kernels = model.cuda_kernel().step;
        let head = profile::time(Phase::DenseAndLoss, || {
            let RunningSums { loss_sum, hits } = sums;
            let logits = self.logits.detach();
            let h_last = pass.h_last.detach();
            kernels
                .binary_head(&BinaryHead {
                    logits: &logits,
                    labels,
                    h_last: &h_last,
                    dense_kernel: &model.dense_kernel,
                    loss_sum,
                    hits,
                })
                .expect("the head's inputs are the model's own tensors")
        });
        KernelBackward(Stage::AtKernel {
            ids: self.ids,
            pass,
            head,
        })
    }
}

/// A caller's running loss and hit sums (f64 scalars on the GPU), which
/// the fused head adds the batch to.
pub struct RunningSums<'a> {
    pub loss_sum: &'a Tensor,
    pub hits: &'a Tensor,
}

/// The gradients of the mean binary cross-entropy of `logits [B]` against
/// `labels` with respect to the dense head's parameters and the last GRU
/// state, as autograd's backward computes them from `loss_with_logits`
/// and `SentimentModel::dense`: `binary_cross_entropy_with_logits`'s
/// backward, `(sigmoid(x) - y) * 1` then divided by B; `squeeze`'s,
/// `unsqueeze`; the bias's broadcast, `sum_to_size`; `mm`'s, `h^T g` and
/// `g K^T` for the dense kernel K (for a row-major `h`, as the kernel's
/// is: a column-major one would take another product order).
fn head_by_hand(
    model: &SentimentModel,
    logits: &Tensor,
    labels: &Tensor,
    h_last: &Tensor,
) -> HeadGradients {
    tch::no_grad(|| {
        let d_out = ((logits.sigmoid() - labels) / logits.size()[0]).unsqueeze(-1);
        HeadGradients {
            d_dense_kernel: h_last.tr().mm(&d_out),
            d_dense_bias: d_out.sum_to_size(model.dense_bias.size()),
            d_h_last: d_out.mm(&model.dense_kernel.tr()),
        }
    })
}

/// A training step's backward as far as [`TrainForward::backward_to_kernel`]
/// took it.
pub struct KernelBackward(Stage);

enum Stage {
    /// libtorch's GRUs: autograd gave every gradient.
    Done(Parameters<Gradient>),
    /// Our kernels: the head's gradients, the kernel's backward to come.
    AtKernel {
        ids: Tensor,
        pass: KernelPass,
        head: HeadGradients,
    },
}

impl KernelBackward {
    /// The gradient of the loss with respect to each parameter (see
    /// [`TrainForward::backward`]).
    pub fn finish(self, model: &SentimentModel) -> Parameters<Gradient> {
        match self.0 {
            Stage::Done(grads) => grads,
            Stage::AtKernel { ids, pass, head } => through_kernel(model, ids, pass, head),
        }
    }
}

/// The kernel's backward through time from the last state's gradient, and
/// the embedding gradient from the inputs' gradient: summed into rows on a
/// GPU, left by position for the optimiser on the CPU; `ids` are the
/// batch's.
fn through_kernel(
    model: &SentimentModel,
    ids: Tensor,
    pass: KernelPass,
    head: HeadGradients,
) -> Parameters<Gradient> {
    let on_cpu = matches!(pass.tape, Tape::Cpu(_));
    let grads = profile::time(Phase::GruBackward, || match pass.tape {
        Tape::Cpu(tape) => model.cpu_kernel.backward(&model.gru, *tape, &head.d_h_last),
        Tape::Cuda(tape) => model
            .cuda_kernel()
            .backward(&model.gru, tape, &head.d_h_last)
            .expect("the CUDA kernel's inputs are the model's own tensors"),
    });
    let embeddings = if on_cpu {
        Gradient::ByPosition(PositionGradients {
            ids,
            d_inputs: grads.d_inputs,
        })
    } else {
        let sums = profile::time(Phase::EmbeddingGradient, || {
            model
                .embedding_gradient
                .borrow_mut()
                .get_or_insert_with(|| {
                    EmbeddingGradient::new(&model.embeddings, model.cuda_kernel().step)
                })
                .compute(&ids, &grads.d_inputs)
        });
        Gradient::Rows(RowGradients { ids, sums })
    };
    Parameters {
        embeddings,
        gru_kernel: Gradient::Dense(grads.d_kernel),
        gru_recurrent_kernel: Gradient::Dense(grads.d_recurrent_kernel),
        gru_bias: Gradient::Dense(grads.d_bias),
        dense_kernel: Gradient::Dense(head.d_dense_kernel),
        dense_bias: Gradient::Dense(head.d_dense_bias),
    }
}
