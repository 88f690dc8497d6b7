//! The model's trainable tensors by name, so that parameters, their
//! gradients and the optimiser's moments are matched by field, not by
//! position in a list.
use tch::Tensor;

/// One `T` per trainable tensor of the model (a tensor, its gradient, an
/// optimiser slot...).
#[derive(Debug)]
pub struct Parameters<T> {
    /// `[N, D]`.
    pub embeddings: T,
    /// `[D, 3H]`, gates z | r | h.
    pub gru_kernel: T,
    /// `[H, 3H]`, gates z | r | h.
    pub gru_recurrent_kernel: T,
    /// `[2, 3H]`: the input bias, then the recurrent bias.
    pub gru_bias: T,
    /// `[H, 1]`.
    pub dense_kernel: T,
    /// `[1]`.
    pub dense_bias: T,
}

impl<T> Parameters<T> {
    /// The fields' names, in the order of [`Parameters::iter`] (as files
    /// that store one tensor per parameter name them).
    pub const NAMES: [&'static str; 6] = [
        "embeddings",
        "gru_kernel",
        "gru_recurrent_kernel",
        "gru_bias",
        "dense_kernel",
        "dense_bias",
    ];

    /// The fields in one fixed order, the inverse of [`Parameters::from_ordered`].
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        [
            &self.embeddings,
            &self.gru_kernel,
            &self.gru_recurrent_kernel,
            &self.gru_bias,
            &self.dense_kernel,
            &self.dense_bias,
        ]
        .into_iter()
    }

    /// The fields in the order of [`Parameters::iter`], to update in place.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        [
            &mut self.embeddings,
            &mut self.gru_kernel,
            &mut self.gru_recurrent_kernel,
            &mut self.gru_bias,
            &mut self.dense_kernel,
            &mut self.dense_bias,
        ]
        .into_iter()
    }

    /// Rebuilds from values in the order of [`Parameters::iter`], e.g. what
    /// autograd returns for the tensors that `iter` listed.
    pub fn from_ordered(values: impl IntoIterator<Item = T>) -> Parameters<T> {
        let mut values = values.into_iter();
        let mut next = || values.next().expect("one value per parameter");
        Parameters {
            embeddings: next(),
            gru_kernel: next(),
            gru_recurrent_kernel: next(),
            gru_bias: next(),
            dense_kernel: next(),
            dense_bias: next(),
        }
    }

    /// A value per field, computed from this one's.
    pub fn map<U>(&self, f: impl FnMut(&T) -> U) -> Parameters<U> {
        Parameters::from_ordered(self.iter().map(f))
    }
}

impl Parameters<Tensor> {
    /// Shallow copies: the same storage, for autograd and in-place updates.
    pub fn shallow_clone(&self) -> Parameters<Tensor> {
        self.map(Tensor::shallow_clone)
    }
}
