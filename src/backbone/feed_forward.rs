//! GDFN: Restormer's gated-Dconv feed-forward network.

use burn::nn::conv::Conv2d;
use burn::prelude::*;
use burn::tensor::activation::gelu;

use super::{conv, depthwise3x3};

/// Configuration of a [`FeedForward`] block.
#[derive(Config, Debug)]
pub struct FeedForwardConfig {
    /// Channels in and out.
    pub dim: usize,
    /// Hidden width is `floor(dim · expansion)` (PromptIR: 2.66).
    #[config(default = 2.66)]
    pub expansion: f64,
    /// Whether the convolutions have biases (PromptIR: false).
    #[config(default = false)]
    pub bias: bool,
}

impl FeedForwardConfig {
    /// The hidden width, `floor(dim · expansion)` computed in f64 as Python's `int()` does.
    pub fn hidden(&self) -> usize {
        (self.dim as f64 * self.expansion) as usize
    }

    /// Builds the block.
    pub fn init(&self, device: &Device) -> FeedForward {
        let hidden = self.hidden();
        FeedForward {
            project_in: conv(self.dim, hidden * 2, 1, self.bias, device),
            dwconv: depthwise3x3(hidden * 2, self.bias, device),
            project_out: conv(hidden, self.dim, 1, self.bias, device),
        }
    }
}

/// `project_out(gelu(x1) · x2)` where `x1, x2` are the two halves of
/// `dwconv(project_in(x))`; GELU is the exact (erf) form.
#[derive(Module, Debug)]
pub struct FeedForward {
    /// 1×1 convolution `C → 2·hidden`.
    pub project_in: Conv2d,
    /// Depthwise 3×3 convolution over `2·hidden` channels.
    pub dwconv: Conv2d,
    /// 1×1 convolution `hidden → C`.
    pub project_out: Conv2d,
}

impl FeedForward {
    /// # Shapes
    /// - input `[B, C, H, W]`
    /// - output `[B, C, H, W]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        if crate::cpu::route(&x) == crate::cpu::Route::Kernels {
            let c = x.dims()[1];
            return crate::cpu::map_tensor(x, c, |x, b, h, w| {
                crate::cpu::fresh(|out| self.apply_cpu(x, b, h, w, out))
            });
        }
        self.forward_ops(x)
    }

    /// The block on plain `f32` buffers (see [`crate::cpu`]): `x: [B, C, H·W]` in, the
    /// result written to or added to `out`. The depthwise convolution and the gate run as
    /// one pass, in place: the convolution's `2·hidden` channels are never stored.
    pub(crate) fn apply_cpu(
        &self,
        x: Vec<f32>,
        b: usize,
        h: usize,
        w: usize,
        out: crate::cpu::Out<'_>,
    ) {
        use crate::cpu;
        let mut hidden = Vec::new();
        cpu::pointwise(&self.project_in, &x, b, h * w, cpu::Out::Fresh(&mut hidden));
        drop(x);
        cpu::depthwise_gate(&self.dwconv, &mut hidden, b, h, w);
        cpu::pointwise(&self.project_out, &hidden, b, h * w, out);
    }

    /// The block with burn's tensor operations (every backend, autodiff).
    fn forward_ops(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.dwconv.forward(self.project_in.forward(x));
        let hidden = x.dims()[1] / 2;
        let x1 = x.clone().narrow(1, 0, hidden);
        let x2 = x.narrow(1, hidden, hidden);
        self.project_out.forward(gelu(x1) * x2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{device, max_abs_diff};
    use burn::tensor::Distribution;

    /// The fused CPU path (1×1 products, depthwise convolution and gate in one pass) against
    /// burn's operations, with biases, two batch items and an odd-sized image.
    #[test]
    fn the_cpu_path_equals_burns_ops() {
        let d = device();
        let ffn = FeedForwardConfig::new(8).with_bias(true).init(&d);
        let x = Tensor::<4>::random([2, 8, 33, 47], Distribution::Normal(0.0, 1.0), &d);
        assert!(max_abs_diff(ffn.forward(x.clone()), ffn.forward_ops(x)) < 1e-5);
    }

    #[test]
    fn hidden_width_truncates_like_python_int() {
        // Values from the official code: int(48*2.66)=127, int(16*2.66)=42, int(40*2.66)=106.
        for (dim, hidden) in [(48, 127), (16, 42), (40, 106), (160, 425), (96, 255)] {
            assert_eq!(FeedForwardConfig::new(dim).hidden(), hidden, "dim {dim}");
        }
    }

    #[test]
    fn gates_gelu_of_the_first_half_with_the_second() {
        let d = device();
        let ffn = FeedForwardConfig::new(6).init(&d);
        let x = Tensor::<4>::random([2, 6, 4, 5], Distribution::Normal(0.0, 1.0), &d);
        let h = ffn.dwconv.forward(ffn.project_in.forward(x.clone()));
        let hidden = FeedForwardConfig::new(6).hidden();
        assert_eq!(h.dims()[1], 2 * hidden);
        // gelu computed from its definition, 0.5·x·(1 + erf(x/√2)).
        let x1 = h.clone().narrow(1, 0, hidden);
        let gelu_ref = x1.clone() * ((x1 / std::f32::consts::SQRT_2).erf() + 1.0) * 0.5;
        let expect = ffn
            .project_out
            .forward(gelu_ref * h.narrow(1, hidden, hidden));
        assert!(max_abs_diff(ffn.forward(x), expect) < 1e-5);
    }
}
