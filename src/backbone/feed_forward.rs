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
