//! A training step as one call: `model.train_step(batch)` runs the
//! forward pass, the head's loss and the backward pass down to every
//! parameter's gradient, whichever GRU runs it, and hands the batch's loss
//! to the caller's totals. The optimiser's update stays with the caller,
//! as the loop owns the optimiser.
//!
//! The head takes one of three paths, chosen here and nowhere else:
//! - the CUDA kernel with one sigmoid unit: the loss, its gradients and
//!   the totals' sums in one launch of the step kernels (the fused head);
//! - the CPU kernel with one sigmoid unit: libtorch's loss, and its
//!   gradients from the ops autograd's backward runs, called directly;
//! - elsewhere: libtorch's loss and autograd.
//!
//! While the calling thread runs the head, the CPU kernel's threads are
//! idle; where it has two or more, a caller's work (the next batch, the
//! optimiser's preparation) runs on one of them
//! ([`SentimentModel::train_step`]'s `beside`).
use anyhow::Result;
use tch::Tensor;

use super::{GruMasks, KernelBackward, MaskDrawer, Parameters, RunningSums, SentimentModel};
use crate::device::GruImpl;
use crate::model::gradient::Gradient;
use crate::model::loss_with_logits;
use crate::pool;
use crate::profile::{self, Phase};

/// A training batch: its dropout masks, token ids `[B, T]` (int64) and
/// labels `[B]` (float).
pub struct TrainBatch {
    pub masks: GruMasks,
    pub ids: Tensor,
    pub labels: Tensor,
}

/// Where a training step puts its batch's loss and hits: the training
/// loop's running totals, which the model does not know.
pub trait StepTotals {
    /// The running loss and hit sums (f64 scalars on the GPU) that the
    /// fused head adds a batch of `batch` samples to.
    fn running_sums(&mut self, batch: usize) -> RunningSums<'_>;

    /// Adds the batch's `logits` and mean `loss` against `labels`. An
    /// error (a loss that is not finite) ends the step before its
    /// backward pass.
    fn add(&mut self, logits: &Tensor, labels: &Tensor, loss: &Tensor) -> Result<()>;
}

/// What a training step returns.
pub struct StepOutput<R> {
    /// The gradient of the batch's mean loss with respect to each parameter.
    pub gradients: Parameters<Gradient>,
    /// What the work beside the head returned, where it ran.
    pub beside: Option<R>,
}

impl SentimentModel {
    /// One training step on `batch`: forward under its masks, the loss
    /// added to `totals`, backward to each parameter's gradient. `beside`,
    /// the caller's work given what draws dropout masks (so that it can
    /// draw the next batch's in the generator's order), runs on a thread
    /// of its own while the head computes, where a thread of the CPU kernel would
    /// otherwise idle (two threads or more); elsewhere it does not run
    /// and [`StepOutput::beside`] is `None`, and the caller does that work
    /// when it comes to it. Either way the generator's draws keep their
    /// order, so the numbers are the same.
    pub fn train_step<R: Send>(
        &self,
        batch: &TrainBatch,
        totals: &mut dyn StepTotals,
        beside: Option<impl FnOnce(MaskDrawer) -> R + Send>,
    ) -> Result<StepOutput<R>> {
        let forward = self.forward_train(&batch.ids, &batch.masks);
        let labels = &batch.labels;
        let head = || -> Result<KernelBackward> {
            if forward.fuses_head() {
                let sums = totals.running_sums(labels.size()[0] as usize);
                return Ok(forward.fused_head_to_kernel(self, labels, sums));
            }
            let loss = profile::time(Phase::DenseAndLoss, || {
                loss_with_logits(&forward.logits, labels)
            });
            totals.add(&forward.logits, labels, &loss)?;
            Ok(forward.backward_to_kernel_for_labels(self, &loss, labels))
        };
        let (head, beside) = match beside.filter(|_| self.works_beside_head()) {
            Some(work) => {
                let drawer = self.mask_drawer();
                let started = std::time::Instant::now();
                let timed_head = || (head(), started.elapsed());
                let ((head, head_time), done) = pool::join(timed_head, move || work(drawer));
                // What the head did not hide of the work beside it.
                profile::add(Phase::Batch, started.elapsed().saturating_sub(head_time));
                (head, Some(done))
            }
            None => (head(), None),
        };
        Ok(StepOutput {
            gradients: head?.finish(self),
            beside,
        })
    }

    /// Whether a training step runs work beside its head: on the CPU
    /// kernel with more than one thread, whose threads are otherwise idle
    /// then, and whose data is on the CPU.
    fn works_beside_head(&self) -> bool {
        self.gru_plan.train == GruImpl::CpuKernel && self.cpu_kernel.threads() > 1
    }
}
