//! What a training step prepares of the next one on a second thread,
//! beside its own head (see `SentimentModel::train_step`).
//!
//! Measured on the 2-core Zen 5 VM at batch 32, in microseconds a step:
//! the head's loss and gradients take 40-60 on the calling thread. Beside
//! them, the second thread used to draw the masks alone, in 50-100 as
//! libtorch ops, while the calling thread also picked the next batch with
//! `index_select` (12-25) and grouped the rows for Adam (10-15). Now the
//! second thread draws the masks (16-25, `model::gru`), picks the next
//! batch by plain copies (8-10) and groups the rows (14-20), and the time
//! both threads spend there went from 70-130 to 55-70.
use tch::{kind::Element, Device, Tensor};

use crate::model::tensor_slice::{as_mut_slice, as_slice};
use crate::model::{MaskDrawer, TrainBatch};

/// The next batch of a CPU training set, for a second thread to prepare.
pub(super) struct NextBatch {
    pub len: i64,
    /// Its indices into the training set, `[len]` int64.
    pub indices: Tensor,
    /// The training set's token ids `[N, T]` int64 and labels `[N]`
    /// float (shallow clones).
    pub x: Tensor,
    pub y: Tensor,
}

impl NextBatch {
    /// Draws its masks, then picks its token ids and labels.
    pub fn pick(self, drawer: MaskDrawer) -> TrainBatch {
        let masks = drawer.draw(self.len);
        let indices = self.indices.contiguous();
        TrainBatch {
            masks,
            ids: select_rows::<i64>(&self.x, &indices),
            labels: select_rows::<f32>(&self.y, &indices),
        }
    }
}

/// `all.index_select(0, indices)` for a contiguous CPU tensor of `T`s and
/// contiguous int64 indices, by copying the rows: the op took 6-12 us a
/// call, most of it dispatch. Panics on an index outside `all`.
fn select_rows<T: Element + Copy>(all: &Tensor, indices: &Tensor) -> Tensor {
    let mut shape = all.size();
    let width = shape[1..].iter().product::<i64>() as usize;
    shape[0] = indices.numel() as i64;
    let picked = Tensor::empty(shape.as_slice(), (T::KIND, Device::Cpu));
    // SAFETY: `all` and `indices` are only read, and no one writes them
    // during training; `picked` is this frame's new tensor.
    let (from, indices, to) = unsafe {
        (
            as_slice::<T>(all),
            as_slice::<i64>(indices),
            as_mut_slice::<T>(&picked),
        )
    };
    if width > 0 {
        for (row, &i) in to.chunks_exact_mut(width).zip(indices) {
            row.copy_from_slice(&from[i as usize * width..][..width]);
        }
    }
    picked
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    #[test]
    fn rows_are_selected_as_index_select_selects_them() {
        let x = Tensor::arange(5 * 3, (Kind::Int64, Device::Cpu)).view([5, 3]);
        let y = Tensor::arange(5, (Kind::Float, Device::Cpu)) * 0.5;
        let indices = Tensor::from_slice(&[4i64, 0, 2, 2]);
        assert!(select_rows::<i64>(&x, &indices).equal(&x.index_select(0, &indices)));
        assert!(select_rows::<f32>(&y, &indices).equal(&y.index_select(0, &indices)));
        let none = Tensor::from_slice::<i64>(&[]);
        assert_eq!(select_rows::<i64>(&x, &none).size(), [0, 3]);
    }
}
