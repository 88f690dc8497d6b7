//! libtorch's fused GRU (cuDNN on CUDA) on the Keras-layout parameters.
use tch::{Kind, Tensor};

use super::gru::{GruLayer, GruMasks};

impl GruLayer {
    /// Gate `g` (0 = z, 1 = r, 2 = h) of a `[..., 3H]` tensor.
    fn gate(&self, t: &Tensor, g: i64) -> Tensor {
        t.narrow(-1, g * self.units, self.units)
    }

    /// libtorch's fused GRU (cuDNN on CUDA) on the same parameters, gates
    /// reordered from Keras's z | r | h to libtorch's r | z | n. It has no
    /// recurrent dropout, so it takes at most one shared input mask.
    pub fn forward_fused(&self, x: &Tensor, masks: &GruMasks, train: bool) -> Tensor {
        self.forward_fused_with(&self.fused_params(), x, masks, train)
    }

    /// The weights in libtorch's GRU layout (`w_ih [3H, D]`, `w_hh [3H, H]`,
    /// `b_ih`, `b_hh`, gates r | z | n), as views of one flat buffer: cuDNN
    /// wants that, and otherwise copies them at every call, with a warning.
    /// Still attached to the Keras-layout parameters for autograd.
    pub fn fused_params(&self) -> Vec<Tensor> {
        let u = self.units;
        let to_torch =
            |m: &Tensor| Tensor::cat(&[self.gate(m, 1), self.gate(m, 0), self.gate(m, 2)], -1);
        let w_ih = to_torch(&self.kernel).tr();
        let w_hh = to_torch(&self.recurrent_kernel).tr();
        let shapes = [w_ih.size(), w_hh.size(), vec![3 * u], vec![3 * u]];
        let flat = Tensor::cat(
            &[
                w_ih.reshape([-1]),
                w_hh.reshape([-1]),
                to_torch(&self.bias.get(0)),
                to_torch(&self.bias.get(1)),
            ],
            0,
        );
        let mut offset = 0;
        shapes
            .iter()
            .map(|shape| {
                let n: i64 = shape.iter().product();
                let view = flat.narrow(0, offset, n).view(shape.as_slice());
                offset += n;
                view
            })
            .collect()
    }

    /// [`GruLayer::forward_fused`] with weights from [`GruLayer::fused_params`],
    /// so inference can prepare them once for many batches.
    pub fn forward_fused_with(
        &self,
        params: &[Tensor],
        x: &Tensor,
        masks: &GruMasks,
        train: bool,
    ) -> Tensor {
        assert!(
            masks.recurrent.is_none(),
            "the fused GRU has no recurrent dropout"
        );
        let x = match &masks.input {
            None => x.shallow_clone(),
            Some(m) => {
                assert_eq!(m.size()[0], 1, "the fused GRU takes one shared input mask");
                x * m.get(0).unsqueeze(1)
            }
        };
        let h0 = Tensor::zeros([1, x.size()[0], self.units], (Kind::Float, x.device()));
        // `train` only tells cuDNN to keep what its backward needs; the
        // dropout argument (between stacked layers) is 0.
        let (_, h_n) = x.gru(&h0, params, true, 1, 0.0, train, false, true);
        h_n.squeeze_dim(0)
    }
}
