//! Restormer's transformer block: MDTA and GDFN, each behind a channel LayerNorm and a residual.

use burn::prelude::*;

use super::{
    Attention, AttentionConfig, ChannelLayerNorm, ChannelLayerNormConfig, FeedForward,
    FeedForwardConfig, LayerNormType,
};

/// Configuration of a [`TransformerBlock`].
#[derive(Config, Debug)]
pub struct TransformerBlockConfig {
    /// Channels in and out.
    pub dim: usize,
    /// Attention heads; must divide `dim`.
    pub heads: usize,
    /// GDFN expansion factor.
    #[config(default = 2.66)]
    pub ffn_expansion_factor: f64,
    /// Whether the convolutions have biases.
    #[config(default = false)]
    pub bias: bool,
    /// The LayerNorm variant.
    #[config(default = "LayerNormType::WithBias")]
    pub layer_norm: LayerNormType,
}

/// `x += attn(norm1(x)); x += ffn(norm2(x))`.
#[derive(Module, Debug)]
pub struct TransformerBlock {
    /// Norm before attention.
    pub norm1: ChannelLayerNorm,
    /// MDTA attention.
    pub attn: Attention,
    /// Norm before the feed-forward network.
    pub norm2: ChannelLayerNorm,
    /// GDFN feed-forward network.
    pub ffn: FeedForward,
}

impl TransformerBlockConfig {
    /// Builds the block.
    pub fn init(&self, device: &Device) -> TransformerBlock {
        let norm = ChannelLayerNormConfig::new(self.dim).with_kind(self.layer_norm);
        TransformerBlock {
            norm1: norm.init(device),
            attn: AttentionConfig::new(self.dim, self.heads)
                .with_bias(self.bias)
                .init(device),
            norm2: norm.init(device),
            ffn: FeedForwardConfig::new(self.dim)
                .with_expansion(self.ffn_expansion_factor)
                .with_bias(self.bias)
                .init(device),
        }
    }
}

impl TransformerBlock {
    /// # Shapes
    /// - input `[B, C, H, W]`
    /// - output `[B, C, H, W]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        #[cfg(any(feature = "flex", feature = "ndarray"))]
        if super::cpu::plain_cpu(&x) {
            // One buffer carries the residual stream: each branch adds its output into it.
            use super::cpu::{Out, from_vec, into_vec};
            let [b, c, h, w] = x.dims();
            let device = x.device();
            let mut stream = into_vec(x);
            let y = self.norm1.apply_cpu(&stream, b, c, h * w);
            self.attn.apply_cpu(y, b, h, w, Out::Add(&mut stream));
            let y = self.norm2.apply_cpu(&stream, b, c, h * w);
            self.ffn.apply_cpu(y, b, h, w, Out::Add(&mut stream));
            return from_vec(stream, [b, c, h, w], &device);
        }
        self.forward_ops(x)
    }

    /// The block with burn's tensor operations (every backend, autodiff).
    fn forward_ops(&self, x: Tensor<4>) -> Tensor<4> {
        let x = x.clone() + self.attn.forward(self.norm1.forward(x));
        x.clone() + self.ffn.forward(self.norm2.forward(x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{device, max_abs_diff};
    use burn::module::Param;
    use burn::tensor::Distribution;

    #[test]
    fn is_the_sum_of_its_two_residual_branches() {
        let d = device();
        let tb = TransformerBlockConfig::new(8, 2).init(&d);
        let x = Tensor::<4>::random([1, 8, 6, 4], Distribution::Normal(0.0, 1.0), &d);
        let y1 = x.clone() + tb.attn.forward(tb.norm1.forward(x.clone()));
        let expect = y1.clone() + tb.ffn.forward(tb.norm2.forward(y1));
        assert!(max_abs_diff(tb.forward(x), expect) < 1e-6);
    }

    /// The fused CPU path (one residual buffer, fused kernels) against burn's operations.
    #[test]
    fn the_cpu_path_equals_burns_ops() {
        let d = device();
        let tb = TransformerBlockConfig::new(12, 3).with_bias(true).init(&d);
        let x = Tensor::<4>::random([2, 12, 37, 29], Distribution::Normal(0.0, 1.0), &d);
        assert!(max_abs_diff(tb.forward(x.clone()), tb.forward_ops(x)) < 1e-4);
    }

    #[test]
    fn zero_output_projections_make_it_the_identity() {
        let d = device();
        let mut tb = TransformerBlockConfig::new(8, 2).init(&d);
        let zero = |w: &Param<Tensor<4>>| Param::from_tensor(w.val().zeros_like());
        tb.attn.project_out.weight = zero(&tb.attn.project_out.weight);
        tb.ffn.project_out.weight = zero(&tb.ffn.project_out.weight);
        let x = Tensor::<4>::random([2, 8, 5, 7], Distribution::Normal(0.0, 1.0), &d);
        assert_eq!(max_abs_diff(tb.forward(x.clone()), x), 0.0);
    }
}
