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
        self.project_out.forward(gelu_gate(x))
    }
}

/// `gelu(x1) · x2` for the two channel halves of `x` (`[B, 2·hidden, H, W]` → `[B, hidden, H,
/// W]`). On a plain (not autodiff) CPU device it runs as one fused loop ([`cpu_gelu_gate`]);
/// elsewhere, and whenever gradients may be needed, with burn's ops.
fn gelu_gate(x: Tensor<4>) -> Tensor<4> {
    let d = x.device();
    #[allow(unused_mut)]
    let mut plain_cpu = false;
    #[cfg(feature = "flex")]
    {
        plain_cpu |= d == Device::flex();
    }
    #[cfg(feature = "ndarray")]
    #[allow(deprecated)]
    {
        plain_cpu |= d == Device::ndarray();
    }
    if plain_cpu && !d.is_autodiff() {
        return cpu_gelu_gate(x);
    }
    let hidden = x.dims()[1] / 2;
    let x1 = x.clone().narrow(1, 0, hidden);
    let x2 = x.narrow(1, hidden, hidden);
    gelu(x1) * x2
}

/// The fused CPU gate: one pass over the data with a vectorisable `erf` instead of three
/// tensor operations (two strided half-tensor reads, a scalar `erff` call per element and a
/// product), which took most of a feed-forward block's time on flex.
fn cpu_gelu_gate(x: Tensor<4>) -> Tensor<4> {
    let [b, c2, h, w] = x.dims();
    let hidden = c2 / 2;
    let device = x.device();
    let data = x
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32 data");
    let plane = hidden * h * w;
    let mut out = vec![0.0f32; b * plane];
    for (i, o) in out.chunks_exact_mut(plane).enumerate() {
        let src = &data[i * 2 * plane..(i + 1) * 2 * plane];
        let (a, g) = src.split_at(plane);
        for ((o, &a), &g) in o.iter_mut().zip(a).zip(g) {
            *o = 0.5 * a * (1.0 + erf(a * std::f32::consts::FRAC_1_SQRT_2)) * g;
        }
    }
    Tensor::from_data(TensorData::new(out, [b, hidden, h, w]), &device)
}

/// The error function in f32 as a rational minimax approximation on [-4, 4] (the form Eigen
/// and XLA use for float `erf`): within 1e-6 of `libm::erff`, branch-free, so the loop
/// vectorises.
fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = x2 * -2.726_142_3e-10 + 2.770_681_4e-8;
    p = x2 * p + -2.101_024e-6;
    p = x2 * p + -5.692_506_4e-5;
    p = x2 * p + -7.349_906_3e-4;
    p = x2 * p + -2.954_600_2e-3;
    p = x2 * p + -1.609_603_3e-2;
    p *= x;
    let mut q = x2 * -1.456_607_2e-5 + -2.133_740_6e-4;
    q = x2 * q + -1.682_827e-3;
    q = x2 * q + -7.373_329_2e-3;
    q = x2 * q + -1.426_474e-2;
    p / q
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{device, max_abs_diff};
    use burn::tensor::Distribution;

    #[test]
    fn the_fast_erf_matches_the_exact_one() {
        let mut worst = 0.0f32;
        for i in -6000..=6000 {
            let x = i as f32 / 1000.0;
            let exact = (Tensor::<1>::from_floats([x], &device()).erf()).into_scalar::<f32>();
            worst = worst.max((erf(x) - exact).abs());
        }
        assert!(worst < 1e-6, "max |fast − exact| = {worst:e}");
    }

    #[test]
    fn the_fused_cpu_gate_equals_burns_ops() {
        let d = device();
        let x = Tensor::<4>::random([2, 10, 7, 9], Distribution::Normal(0.0, 2.0), &d);
        let x1 = x.clone().narrow(1, 0, 5);
        let x2 = x.clone().narrow(1, 5, 5);
        let reference = gelu(x1) * x2;
        let fused = cpu_gelu_gate(x);
        assert_eq!(fused.dims(), [2, 5, 7, 9]);
        assert!(max_abs_diff(fused, reference) < 1e-5);
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
