//! The DPPD prompt module: DPA → PDL → CrossFusion, one block per prompt site.

use burn::module::{Flag, Param};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::{
    Assignment, CrossFusion, CrossFusionConfig, Dpa, DpaConfig, FusionMode, Pdl, PdlConfig,
    PromptSampling,
};
use crate::backbone::LayerNormType;

/// Settings of a [`DppdPrompt`]; the channel count comes from where it is plugged in.
/// Every field has a default (see [`Default`]), so a JSON config may give only what it changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DppdPromptConfig {
    /// Prototypes `K` (degradation types plus spares).
    pub prototypes: usize,
    /// Embedding width `d` of the DPA block.
    pub embed_dim: usize,
    /// Hidden width of the DPA embedding MLP.
    pub hidden_dim: usize,
    /// DPA softmax temperature `τ`.
    pub temperature: f64,
    /// Hard (top-1, straight-through) instead of soft assignment.
    pub hard: bool,
    /// Seed of the fixed prototypes.
    pub seed: u64,
    /// Prompt tokens `N` per prototype.
    pub tokens: usize,
    /// Token width `D`; `0` means "the site's channel count".
    pub token_dim: usize,
    /// Initial log-variance of the prompt distributions.
    pub init_log_var: f64,
    /// CrossFusion heads (must divide the site's channels).
    pub heads: usize,
    /// Per-pixel or pooled queries.
    pub mode: FusionMode,
    /// After CrossFusion, also concatenate and run PromptIR's transformer block + 1×1
    /// reduction (`noise_levelK`, `reduce_noise_levelK`). The DPPD figure shows no such block.
    pub fuse_block: bool,
}

impl Default for DppdPromptConfig {
    fn default() -> Self {
        Self {
            prototypes: 4,
            embed_dim: 64,
            hidden_dim: 128,
            temperature: 0.1,
            hard: false,
            seed: 0,
            tokens: 8,
            token_dim: 0,
            init_log_var: -4.0,
            heads: 4,
            mode: FusionMode::PerPixel,
            fuse_block: false,
        }
    }
}

/// What a prompt module reports besides the features, for the losses and for users.
#[derive(Debug, Clone)]
pub struct PromptAux {
    /// DPA logits (apply a cross-entropy on the degradation label). Shape `[B, K]`.
    pub logits: Tensor<2>,
    /// DPA assignment probabilities. Shape `[B, K]`.
    pub probs: Tensor<2>,
    /// PDL KL term, batch mean. Shape `[1]`.
    pub kl: Tensor<1>,
}

/// DPA → PDL → CrossFusion: assigns the features to a prototype, draws prompts from the
/// assigned Gaussians and fuses them into the features by cross-attention (with a residual).
#[derive(Module, Debug)]
pub struct DppdPrompt {
    /// Degradation Prototype Assignment.
    pub dpa: Dpa,
    /// Prompt Distribution Learning.
    pub pdl: Pdl,
    /// CrossFusion.
    pub fusion: CrossFusion,
    /// Whether to sample prompts (while training, on an autodiff device); cleared by `valid()`.
    pub training: Param<Flag>,
}

impl DppdPromptConfig {
    /// The token width used at a site with `channels` channels.
    pub fn token_dim_for(&self, channels: usize) -> usize {
        if self.token_dim == 0 {
            channels
        } else {
            self.token_dim
        }
    }

    /// Builds the module for features with `channels` channels.
    pub fn init(&self, channels: usize, layer_norm: LayerNormType, device: &Device) -> DppdPrompt {
        let d = self.token_dim_for(channels);
        DppdPrompt {
            dpa: DpaConfig::new(channels)
                .with_embed_dim(self.embed_dim)
                .with_hidden_dim(self.hidden_dim)
                .with_prototypes(self.prototypes)
                .with_temperature(self.temperature)
                .with_hard(self.hard)
                .with_seed(self.seed)
                .init(device),
            pdl: PdlConfig::new(self.prototypes, d)
                .with_tokens(self.tokens)
                .with_init_log_var(self.init_log_var)
                .init(device),
            fusion: CrossFusionConfig::new(channels, d)
                .with_heads(self.heads)
                .with_mode(self.mode)
                .with_layer_norm(layer_norm)
                .init(device),
            training: Param::from_bool(true),
        }
    }
}

impl DppdPrompt {
    /// The sampling used when none is asked for: sample while training on an autodiff device,
    /// use the mean otherwise.
    pub fn default_sampling(&self, x: &Tensor<4>) -> PromptSampling {
        if self.training.is_enabled() && x.device().is_autodiff() {
            PromptSampling::Sample
        } else {
            PromptSampling::Mean
        }
    }

    /// # Shapes
    /// - input `[B, C, H, W]`
    /// - output `[B, C, H, W]` and [`PromptAux`] with `[B, K]` tensors
    pub fn forward(
        &self,
        x: Tensor<4>,
        sampling: Option<PromptSampling>,
    ) -> (Tensor<4>, PromptAux) {
        let sampling = sampling.unwrap_or_else(|| self.default_sampling(&x));
        let Assignment { logits, probs, .. } = self.dpa.forward(x.clone());
        let draw = self.pdl.forward(probs.clone(), sampling);
        let kl = Pdl::kl(&draw);
        let y = self.fusion.forward(x, draw.prompts);
        (y, PromptAux { logits, probs, kl })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{device, max_abs_diff};
    use burn::tensor::Distribution;

    #[test]
    fn shapes_and_sampling_modes() {
        let d = device();
        let m = DppdPromptConfig {
            tokens: 3,
            ..Default::default()
        }
        .init(16, LayerNormType::WithBias, &d);
        let x = Tensor::<4>::random([2, 16, 5, 7], Distribution::Normal(0.0, 1.0), &d);
        let (y, aux) = m.forward(x.clone(), None);
        assert_eq!(y.dims(), [2, 16, 5, 7]);
        assert_eq!(aux.probs.dims(), [2, 4]);
        // not autodiff: the default is the mean, which is deterministic
        let (y2, _) = m.forward(x.clone(), None);
        assert_eq!(max_abs_diff(y.clone(), y2), 0.0);
        let (s1, _) = m.forward(x.clone(), Some(PromptSampling::Sample));
        let (s2, _) = m.forward(x, Some(PromptSampling::Sample));
        assert!(max_abs_diff(s1, s2) > 0.0);
    }
}
