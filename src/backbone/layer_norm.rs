//! Layer normalisation over the channels of each pixel (Restormer's `LayerNorm`).

use burn::module::Param;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// Which of Restormer's two channel LayerNorms to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum LayerNormType {
    /// `(x − mean) / sqrt(var + ε) · w + b` (PromptIR's default).
    #[default]
    WithBias,
    /// `x / sqrt(var + ε) · w`: the variance is taken around the mean, but the mean is
    /// **not** subtracted from `x`, and there is no bias.
    BiasFree,
}

/// Configuration of a [`ChannelLayerNorm`].
#[derive(Config, Debug)]
pub struct ChannelLayerNormConfig {
    /// Number of channels normalised together.
    pub channels: usize,
    /// The variant.
    #[config(default = "LayerNormType::WithBias")]
    pub kind: LayerNormType,
    /// Added to the variance before the square root.
    #[config(default = 1e-5)]
    pub epsilon: f64,
}

/// The learned affine parameters (PyTorch keys `<name>.body.weight`, `<name>.body.bias`).
#[derive(Module, Debug)]
pub struct LayerNormBody {
    /// Per-channel scale, initialised to ones. Shape `[C]`.
    pub weight: Param<Tensor<1>>,
    /// Per-channel shift, initialised to zeros (absent for BiasFree). Shape `[C]`.
    pub bias: Option<Param<Tensor<1>>>,
}

/// LayerNorm over channels with the biased variance, applied to every pixel independently.
#[derive(Module, Debug)]
pub struct ChannelLayerNorm {
    /// Parameters, named like PyTorch's `body`.
    pub body: LayerNormBody,
    epsilon: f64,
}

impl ChannelLayerNormConfig {
    /// Builds the module with weight 1 and bias 0.
    pub fn init(&self, device: &Device) -> ChannelLayerNorm {
        let c = self.channels;
        let bias = match self.kind {
            LayerNormType::WithBias => Some(Param::from_tensor(Tensor::zeros([c], device))),
            LayerNormType::BiasFree => None,
        };
        ChannelLayerNorm {
            body: LayerNormBody {
                weight: Param::from_tensor(Tensor::ones([c], device)),
                bias,
            },
            epsilon: self.epsilon,
        }
    }
}

impl ChannelLayerNorm {
    /// The epsilon added to the variance.
    pub fn epsilon(&self) -> f64 {
        self.epsilon
    }

    /// Normalises over the channel axis.
    ///
    /// # Shapes
    /// - input `[B, C, H, W]`
    /// - output `[B, C, H, W]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        if crate::cpu::route(&x) == crate::cpu::Route::Kernels {
            let c = x.dims()[1];
            return crate::cpu::map_tensor(x, c, |x, b, h, w| self.apply_cpu(&x, b, c, h * w));
        }
        self.forward_ops(x)
    }

    /// The normalisation of `x: [B, C, N]` on plain `f32` buffers (see [`crate::cpu`]).
    pub(crate) fn apply_cpu(&self, x: &[f32], b: usize, c: usize, n: usize) -> Vec<f32> {
        use crate::cpu::into_vec;
        let weight = into_vec(self.body.weight.val());
        let bias = self.body.bias.as_ref().map(|b| into_vec(b.val()));
        crate::cpu::layer_norm(x, b, c, n, &weight, bias.as_deref(), self.epsilon as f32)
    }

    /// The normalisation with burn's tensor operations (every backend, autodiff).
    fn forward_ops(&self, x: Tensor<4>) -> Tensor<4> {
        let c = x.dims()[1];
        let (var, mean) = x.clone().var_mean_bias(1);
        let inv_std = (var + self.epsilon).sqrt().recip();
        let w = self.body.weight.val().reshape([1, c, 1, 1]);
        match &self.body.bias {
            Some(b) => (x - mean) * inv_std * w + b.val().reshape([1, c, 1, 1]),
            None => x * inv_std * w,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{device, max_abs_diff, tensor};
    use burn::tensor::Distribution;

    #[test]
    fn with_bias_normalises_each_pixel_over_channels() {
        let d = device();
        // One pixel with channels [1, 2, 3] and one with [−2, 0, 8]: [1, 3, 1, 2].
        let x = tensor(vec![1.0, -2.0, 2.0, 0.0, 3.0, 8.0], [1, 3, 1, 2], &d);
        let mut ln = ChannelLayerNormConfig::new(3).init(&d);
        ln.body.weight = Param::from_tensor(tensor(vec![1.0, 2.0, 0.5], [3], &d));
        ln.body.bias = Some(Param::from_tensor(tensor(vec![0.0, 1.0, -1.0], [3], &d)));
        let y = ln.forward(x);
        // pixel 0: mean 2, var 2/3 -> (x-2)/sqrt(2/3+1e-5)
        let s0 = (2.0f32 / 3.0 + 1e-5).sqrt();
        // pixel 1: mean 2, var (16+4+36)/3
        let s1 = (56.0f32 / 3.0 + 1e-5).sqrt();
        let expect = vec![
            -1.0 / s0,
            -4.0 / s1,
            0.0 * 2.0 + 1.0,
            (-2.0 / s1) * 2.0 + 1.0,
            (1.0 / s0) * 0.5 - 1.0,
            (6.0 / s1) * 0.5 - 1.0,
        ];
        assert!(max_abs_diff(y, tensor(expect, [1, 3, 1, 2], &d)) < 1e-5);
    }

    /// The fused CPU path against burn's operations, both variants, with pixel counts that
    /// split into several blocks and a partial one.
    #[test]
    fn the_cpu_path_equals_burns_ops() {
        let d = device();
        for kind in [LayerNormType::WithBias, LayerNormType::BiasFree] {
            let mut ln = ChannelLayerNormConfig::new(5).with_kind(kind).init(&d);
            ln.body.weight =
                Param::from_tensor(Tensor::random([5], Distribution::Normal(1.0, 0.3), &d));
            if let Some(b) = &mut ln.body.bias {
                *b = Param::from_tensor(Tensor::random([5], Distribution::Normal(0.0, 0.3), &d));
            }
            let x = Tensor::<4>::random([2, 5, 31, 45], Distribution::Normal(0.5, 2.0), &d);
            assert!(
                max_abs_diff(ln.forward(x.clone()), ln.forward_ops(x)) < 1e-5,
                "{kind:?}"
            );
        }
    }

    #[test]
    fn bias_free_keeps_the_mean() {
        let d = device();
        let x = tensor(vec![1.0, 2.0, 3.0], [1, 3, 1, 1], &d);
        let ln = ChannelLayerNormConfig::new(3)
            .with_kind(LayerNormType::BiasFree)
            .init(&d);
        assert!(ln.body.bias.is_none());
        let s = (2.0f32 / 3.0 + 1e-5).sqrt();
        let expect = tensor(vec![1.0 / s, 2.0 / s, 3.0 / s], [1, 3, 1, 1], &d);
        assert!(max_abs_diff(ln.forward(x), expect) < 1e-5);
    }
}
