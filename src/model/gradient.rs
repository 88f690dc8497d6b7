//! A parameter's gradient as a training step hands it to the optimiser.
use tch::{Kind, Tensor};

use super::Parameters;

/// The gradient of one parameter.
pub enum Gradient {
    /// The whole gradient, in the parameter's shape.
    Dense(Tensor),
    /// An embedding's gradient left unsummed, as the CPU kernel's path
    /// gives it: the optimiser sums each looked-up row's positions itself,
    /// in its one pass over the table (`optim/embedding_rows.rs`).
    ByPosition(PositionGradients),
    /// An embedding's gradient summed into its rows, with the ids that
    /// the batch looked up, as the CUDA kernel's path and libtorch's GRUs
    /// give it: `lazy-adam` moves only those rows (`optim/mod.rs`).
    Rows(RowGradients),
}

/// The gradient of `embeddings [N, D]` as the lookup of a batch saw it.
pub struct PositionGradients {
    /// `[B, T]` int64: the row each position looked up.
    pub ids: Tensor,
    /// `[B, T, D]`: the loss's gradient at each looked-up vector.
    pub d_inputs: Tensor,
}

/// The gradient of `embeddings [N, D]` summed into rows, with the batch's
/// ids.
pub struct RowGradients {
    /// `[B, T]` int64: the row each position looked up.
    pub ids: Tensor,
    /// `[N, D]`: each row's positions' gradients summed, zero in the rows
    /// that `ids` does not name.
    pub sums: Tensor,
}

impl Gradient {
    /// The whole gradient of a parameter of `rows` rows, each position's
    /// gradient added into its row by libtorch's `index_add`: for comparing
    /// paths, and for an optimiser that has no by-row update for the
    /// parameter's device.
    pub fn to_dense(&self, rows: i64) -> Tensor {
        match self {
            Gradient::Dense(gradient) | Gradient::Rows(RowGradients { sums: gradient, .. }) => {
                gradient.shallow_clone()
            }
            Gradient::ByPosition(PositionGradients { ids, d_inputs }) => {
                let d = d_inputs.size()[2];
                let ids = ids.to_kind(Kind::Int64).reshape([-1]);
                d_inputs
                    .new_zeros([rows, d], (d_inputs.kind(), d_inputs.device()))
                    .index_add(0, &ids, &d_inputs.reshape([-1, d]))
            }
        }
    }

    /// The gradient in the parameter's shape, if it comes so.
    pub fn as_dense(&self) -> Option<&Tensor> {
        match self {
            Gradient::Dense(gradient) | Gradient::Rows(RowGradients { sums: gradient, .. }) => {
                Some(gradient)
            }
            Gradient::ByPosition(_) => None,
        }
    }

    /// The ids `[B, T]` of the rows a batch looked up, where the gradient
    /// knows them (an embedding's).
    pub fn looked_up(&self) -> Option<&Tensor> {
        match self {
            Gradient::Dense(_) => None,
            Gradient::ByPosition(PositionGradients { ids, .. })
            | Gradient::Rows(RowGradients { ids, .. }) => Some(ids),
        }
    }
}

impl Parameters<Gradient> {
    /// Every gradient whole, in the shape of its parameter in `params`.
    pub fn to_dense(&self, params: &Parameters<Tensor>) -> Parameters<Tensor> {
        let mut params = params.iter();
        self.map(|gradient| {
            let param = params.next().expect("one parameter per gradient");
            gradient.to_dense(param.size()[0])
        })
    }
}
