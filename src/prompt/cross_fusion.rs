//! CrossFusion: cross-attention from image features (queries) to prompt tokens (keys, values).

use burn::nn::conv::Conv2d;
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::softmax;
use serde::{Deserialize, Serialize};

use crate::backbone::{ChannelLayerNorm, ChannelLayerNormConfig, LayerNormType, conv, conv1x1};

/// Which feature queries the prompts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FusionMode {
    /// Every pixel's feature queries the `N` prompt tokens: a spatially varying fusion whose
    /// cost is `O(H·W·N·C)`, small because `N` is small. The presets use this: degradations
    /// such as rain and haze vary over the image, and a per-pixel readout can follow them.
    #[default]
    PerPixel,
    /// One pooled feature vector per image queries the prompts; the fused vector is added to
    /// every pixel. Cheaper, spatially uniform.
    Pooled,
}

/// Configuration of a [`CrossFusion`] block.
#[derive(Config, Debug)]
pub struct CrossFusionConfig {
    /// Feature channels `C` (queries, output).
    pub dim: usize,
    /// Prompt token width `D` (keys and values are projected from it).
    pub token_dim: usize,
    /// Attention heads; must divide `dim`.
    #[config(default = 4)]
    pub heads: usize,
    /// Per-pixel or pooled queries.
    #[config(default = "FusionMode::PerPixel")]
    pub mode: FusionMode,
    /// Whether the projections have biases.
    #[config(default = false)]
    pub bias: bool,
    /// LayerNorm variant applied to the features before the query projection.
    #[config(default = "LayerNormType::WithBias")]
    pub layer_norm: LayerNormType,
}

/// `F' = F + W_O · softmax(Q Kᵀ / √(C/heads)) V`, with `Q = W_Q · LN(F)`, `K = W_K p`,
/// `V = W_V p`.
#[derive(Module, Debug)]
pub struct CrossFusion {
    /// LayerNorm over the feature channels.
    pub norm: ChannelLayerNorm,
    /// 1×1 conv `C → C` for the queries.
    pub to_q: Conv2d,
    /// `D → C` for the keys.
    pub to_k: Linear,
    /// `D → C` for the values.
    pub to_v: Linear,
    /// 1×1 conv `C → C` output projection.
    pub project_out: Conv2d,
    heads: usize,
    pooled: bool,
}

impl CrossFusionConfig {
    /// Builds the block.
    pub fn init(&self, device: &Device) -> CrossFusion {
        assert!(
            self.heads > 0 && self.dim.is_multiple_of(self.heads),
            "CrossFusion heads ({}) must divide dim ({})",
            self.heads,
            self.dim
        );
        CrossFusion {
            norm: ChannelLayerNormConfig::new(self.dim)
                .with_kind(self.layer_norm)
                .init(device),
            to_q: conv(self.dim, self.dim, 1, self.bias, device),
            to_k: LinearConfig::new(self.token_dim, self.dim)
                .with_bias(self.bias)
                .init(device),
            to_v: LinearConfig::new(self.token_dim, self.dim)
                .with_bias(self.bias)
                .init(device),
            project_out: conv(self.dim, self.dim, 1, self.bias, device),
            heads: self.heads,
            pooled: self.mode == FusionMode::Pooled,
        }
    }
}

impl CrossFusion {
    /// # Shapes
    /// - features `[B, C, H, W]`, prompts `[B, N, D]`
    /// - output `[B, C, H, W]`
    pub fn forward(&self, x: Tensor<4>, prompts: Tensor<3>) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        let n = prompts.dims()[1];
        let hd = c / self.heads;
        let q = self.norm.forward(x.clone());
        let q = if self.pooled { q.mean_dims(&[2, 3]) } else { q };
        let q = conv1x1(&self.to_q, q);
        let [_, _, qh, qw] = q.dims();
        // [B, heads, pixels, hd]
        let q = q.reshape([b, self.heads, hd, qh * qw]).swap_dims(2, 3);
        // [B, heads, N, hd]
        let split = |t: Tensor<3>| t.reshape([b, n, self.heads, hd]).swap_dims(1, 2);
        let k = split(self.to_k.forward(prompts.clone()));
        let v = split(self.to_v.forward(prompts));
        let attn = softmax(q.matmul(k.swap_dims(2, 3)) / (hd as f64).sqrt(), 3);
        let out = attn.matmul(v).swap_dims(2, 3).reshape([b, c, qh, qw]);
        let out = conv1x1(&self.project_out, out);
        if self.pooled {
            x + out.expand([b, c, h, w])
        } else {
            x + out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{device, max_abs_diff};
    use burn::module::Param;
    use burn::tensor::Distribution;

    #[test]
    fn one_token_passes_its_value_to_every_pixel() {
        // With a single prompt token, softmax over it is 1: out = x + W_O·(W_V p) everywhere.
        let d = device();
        for mode in [FusionMode::PerPixel, FusionMode::Pooled] {
            let cf = CrossFusionConfig::new(8, 5)
                .with_heads(2)
                .with_mode(mode)
                .init(&d);
            let x = Tensor::<4>::random([2, 8, 3, 4], Distribution::Normal(0.0, 1.0), &d);
            let p = Tensor::<3>::random([2, 1, 5], Distribution::Normal(0.0, 1.0), &d);
            let v = cf.to_v.forward(p.clone()).reshape([2, 8, 1, 1]);
            let expect = x.clone() + cf.project_out.forward(v).expand([2, 8, 3, 4]);
            assert!(max_abs_diff(cf.forward(x, p), expect) < 1e-5, "{mode:?}");
        }
    }

    #[test]
    fn per_pixel_attention_matches_a_direct_computation() {
        let d = device();
        let cf = CrossFusionConfig::new(4, 3).with_heads(1).init(&d);
        let x = Tensor::<4>::random([1, 4, 2, 2], Distribution::Normal(0.0, 1.0), &d);
        let p = Tensor::<3>::random([1, 3, 3], Distribution::Normal(0.0, 1.0), &d);
        let q: Vec<f32> = cf
            .to_q
            .forward(cf.norm.forward(x.clone()))
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        let k: Vec<f32> = cf
            .to_k
            .forward(p.clone())
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        let v: Vec<f32> = cf
            .to_v
            .forward(p.clone())
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        let mut out = vec![0.0f32; 16];
        for px in 0..4 {
            let logits: Vec<f32> = (0..3)
                .map(|t| (0..4).map(|ch| q[ch * 4 + px] * k[t * 4 + ch]).sum::<f32>() / 2.0)
                .collect();
            let m = logits.iter().cloned().fold(f32::MIN, f32::max);
            let e: Vec<f32> = logits.iter().map(|l| (l - m).exp()).collect();
            let s: f32 = e.iter().sum();
            for ch in 0..4 {
                out[ch * 4 + px] = (0..3).map(|t| e[t] / s * v[t * 4 + ch]).sum();
            }
        }
        let out = Tensor::<4>::from_data(TensorData::new(out, [1, 4, 2, 2]), &d);
        let expect = x.clone() + cf.project_out.forward(out);
        assert!(max_abs_diff(cf.forward(x, p), expect) < 1e-5);
    }

    #[test]
    fn zero_output_projection_is_the_identity() {
        let d = device();
        let mut cf = CrossFusionConfig::new(8, 5).init(&d);
        cf.project_out.weight = Param::from_tensor(cf.project_out.weight.val().zeros_like());
        let x = Tensor::<4>::random([1, 8, 3, 3], Distribution::Normal(0.0, 1.0), &d);
        let p = Tensor::<3>::random([1, 4, 5], Distribution::Normal(0.0, 1.0), &d);
        assert_eq!(max_abs_diff(cf.forward(x.clone(), p), x), 0.0);
    }
}
