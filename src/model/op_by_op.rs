//! The Keras step written out in libtorch ops, one time step at a time: the
//! reference the other implementations are tested against, and the only
//! one that runs Keras's recurrent dropout on a GPU.
use tch::{Kind, Tensor};

use super::gru::{GruLayer, GruMasks};

impl GruLayer {
    /// The Keras step, op by op. `x`: `[B, T, D]`; returns the last state `[B, H]`.
    ///
    /// ```text
    /// z  = sigmoid(x W_z + b_z + h U_z + b'_z)
    /// r  = sigmoid(x W_r + b_r + h U_r + b'_r)
    /// hh = tanh(x W_h + b_h + r * (h U_h + b'_h))
    /// h  = z * h + (1 - z) * hh
    /// ```
    ///
    /// Masked copies of x and h feed only the products; the carried h is
    /// unmasked. The three gates are stacked on a leading axis so that a step
    /// is a handful of ops (each op is a kernel launch on a GPU).
    pub fn forward_op_by_op(&self, x: &Tensor, masks: &GruMasks) -> Tensor {
        let (b, t, d) = x.size3().expect("GRU input must be [B, T, D]");
        let u = self.units;
        let kernel = self.per_gate(&self.kernel); // [3, D, H]
        let recurrent_kernel = self.per_gate(&self.recurrent_kernel); // [3, H, H]
        let input_bias = self.bias.get(0).view([3, 1, u]);
        let recurrent_bias = self.bias.get(1).view([3, 1, u]);
        // Input projections of all steps at once, per gate: [3, B, T, H].
        let x_in = match &masks.input {
            None => x.unsqueeze(0),
            Some(m) => x.unsqueeze(0) * m.unsqueeze(2), // [1 or 3, B, T, D]
        };
        let gates_in = x_in.size()[0];
        let xp =
            (x_in.reshape([gates_in, b * t, d]).matmul(&kernel) + input_bias).view([3, b, t, u]);
        let mut h = Tensor::zeros([b, u], (Kind::Float, x.device()));
        for step in 0..t {
            let x_t = xp.select(2, step); // [3, B, H]
            let h_in = match &masks.recurrent {
                None => h.unsqueeze(0).expand([3, b, u], false),
                Some(m) => h.unsqueeze(0) * m,
            };
            let rec = recurrent_bias.baddbmm(&h_in, &recurrent_kernel, 1.0, 1.0); // [3, B, H]
            let zr = (x_t.narrow(0, 0, 2) + rec.narrow(0, 0, 2)).sigmoid();
            let (z, r) = (zr.get(0), zr.get(1));
            let hh = (x_t.get(2) + r * rec.get(2)).tanh();
            // z * h + (1 - z) * hh, in three ops instead of four.
            h = &hh + z * (&h - &hh);
        }
        h
    }
}
