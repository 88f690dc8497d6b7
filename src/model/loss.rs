//! The model's loss, as Keras compiles it for the head's units.
use tch::{Kind, Reduction, Tensor};

/// The batch mean of Keras's loss: binary cross-entropy for one sigmoid
/// unit (logits `[B]`), sparse categorical cross-entropy for softmax units
/// (logits `[B, classes]`, labels the class numbers).
pub fn loss_with_logits(logits: &Tensor, labels: &Tensor) -> Tensor {
    match logits.dim() {
        1 => logits.binary_cross_entropy_with_logits::<Tensor>(labels, None, None, Reduction::Mean),
        _ => logits.cross_entropy_for_logits(&labels.to_kind(Kind::Int64)),
    }
}
