//! PDL — Prompt Distribution Learning.
//!
//! Each prototype `k` owns a diagonal Gaussian over `N` prompt tokens of width `D`: a mean
//! `μ_k` and a log-variance `log σ²_k`, both learned. For an image with assignment `a`, the
//! prompt distribution is the assignment-weighted Gaussian with mean `Σ_k a_k μ_k` and variance
//! `Σ_k a_k σ²_k` (this crate's choice: the mixture's within-component variance; the spread
//! between component means is left out so that a one-hot assignment gives exactly that
//! prototype's Gaussian). Prompts are *sampled* with the reparameterisation trick
//! `p = μ + σ ⊙ ε`, so gradients reach both `μ` and `log σ²`.

use burn::module::{Initializer, Param};
use burn::prelude::*;
use burn::tensor::Distribution;

/// How prompts are drawn from their distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PromptSampling {
    /// `p = μ`: deterministic (the default at inference).
    #[default]
    Mean,
    /// `p = μ + σ ⊙ ε`, `ε ~ N(0, I)` (the default while training).
    Sample,
}

/// Configuration of a [`Pdl`] block.
#[derive(Config, Debug)]
pub struct PdlConfig {
    /// Number of prototypes `K` (must match the DPA block).
    pub prototypes: usize,
    /// Prompt tokens `N` per prototype.
    #[config(default = 8)]
    pub tokens: usize,
    /// Width `D` of each token.
    pub token_dim: usize,
    /// Standard deviation of the initial means (normal around 0).
    #[config(default = 0.02)]
    pub init_mean_std: f64,
    /// Initial log-variance (−4 gives σ ≈ 0.135).
    #[config(default = -4.0)]
    pub init_log_var: f64,
}

/// What a [`Pdl`] block computes for a batch.
#[derive(Debug, Clone)]
pub struct PromptDraw {
    /// The prompts handed to the fusion. Shape `[B, N, D]`.
    pub prompts: Tensor<3>,
    /// The mixed mean `Σ a_k μ_k`. Shape `[B, N, D]`.
    pub mean: Tensor<3>,
    /// The mixed variance `Σ a_k σ²_k`. Shape `[B, N, D]`.
    pub variance: Tensor<3>,
}

/// Per-prototype Gaussians over prompt tokens.
#[derive(Module, Debug)]
pub struct Pdl {
    /// Means `μ_k`. Shape `[K, N, D]`.
    pub mean: Param<Tensor<3>>,
    /// Log-variances `log σ²_k`. Shape `[K, N, D]`.
    pub log_var: Param<Tensor<3>>,
}

impl PdlConfig {
    /// Builds the block.
    pub fn init(&self, device: &Device) -> Pdl {
        let shape = [self.prototypes, self.tokens, self.token_dim];
        Pdl {
            mean: Initializer::Normal {
                mean: 0.0,
                std: self.init_mean_std,
            }
            .init(shape, device),
            log_var: Initializer::Constant {
                value: self.init_log_var,
            }
            .init(shape, device),
        }
    }
}

impl Pdl {
    /// Mixes the prototypes' Gaussians by `assignment` and draws prompts.
    ///
    /// # Shapes
    /// - assignment `[B, K]` (rows sum to 1)
    /// - output: [`PromptDraw`] with `[B, N, D]` tensors
    pub fn forward(&self, assignment: Tensor<2>, sampling: PromptSampling) -> PromptDraw {
        let [k, n, d] = self.mean.dims();
        let b = assignment.dims()[0];
        let mean = assignment
            .clone()
            .matmul(self.mean.val().reshape([k, n * d]))
            .reshape([b, n, d]);
        let variance = assignment
            .matmul(self.log_var.val().exp().reshape([k, n * d]))
            .reshape([b, n, d]);
        let prompts = match sampling {
            PromptSampling::Mean => mean.clone(),
            PromptSampling::Sample => {
                let eps = mean.random_like(Distribution::Normal(0.0, 1.0));
                mean.clone() + variance.clone().sqrt() * eps
            }
        };
        PromptDraw {
            prompts,
            mean,
            variance,
        }
    }

    /// `KL(N(μ, σ²) ‖ N(0, I))` of the mixed distributions, summed over tokens and channels
    /// and averaged over the batch: `½ Σ (σ² + μ² − 1 − log σ²)`. A small weight on it keeps
    /// the prompt distributions from collapsing to points or drifting far from the origin.
    ///
    /// # Shapes
    /// - output `[1]`
    pub fn kl(draw: &PromptDraw) -> Tensor<1> {
        let b = draw.mean.dims()[0] as f64;
        let v = draw.variance.clone();
        ((v.clone() + draw.mean.clone().square() - 1.0 - v.log()).sum() * 0.5) / b
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{device, max_abs_diff, tensor};

    fn pdl(d: &Device) -> Pdl {
        PdlConfig::new(3, 4).with_tokens(2).init(d)
    }

    #[test]
    fn one_hot_assignment_selects_that_prototype() {
        let d = device();
        let p = pdl(&d);
        let a = tensor(vec![0.0, 1.0, 0.0], [1, 3], &d);
        let draw = p.forward(a, PromptSampling::Mean);
        let mu1 = p.mean.val().narrow(0, 1, 1);
        assert!(max_abs_diff(draw.prompts, mu1) < 1e-7);
        let var1 = p.log_var.val().narrow(0, 1, 1).exp();
        assert!(max_abs_diff(draw.variance, var1) < 1e-7);
    }

    #[test]
    fn sampling_differs_between_calls_and_collapses_to_the_mean_as_sigma_vanishes() {
        let d = device();
        let mut p = pdl(&d);
        let a = tensor(vec![0.2, 0.5, 0.3, 1.0, 0.0, 0.0], [2, 3], &d);
        let s1 = p.forward(a.clone(), PromptSampling::Sample).prompts;
        let s2 = p.forward(a.clone(), PromptSampling::Sample).prompts;
        assert!(max_abs_diff(s1, s2) > 1e-3, "two draws must differ");
        let m1 = p.forward(a.clone(), PromptSampling::Mean).prompts;
        let m2 = p.forward(a.clone(), PromptSampling::Mean).prompts;
        assert_eq!(
            max_abs_diff(m1.clone(), m2),
            0.0,
            "the mean is deterministic"
        );
        // σ → 0: log σ² = −60 gives σ ≈ 1e-13.
        p.log_var = Param::from_tensor(p.log_var.val().zeros_like() - 60.0);
        let s = p.forward(a, PromptSampling::Sample).prompts;
        assert!(max_abs_diff(s, m1) < 1e-9);
    }

    #[test]
    fn kl_is_zero_at_the_standard_normal_and_positive_elsewhere() {
        let d = device();
        let mut p = pdl(&d);
        let a = tensor(vec![1.0, 0.0, 0.0], [1, 3], &d);
        p.mean = Param::from_tensor(p.mean.val().zeros_like());
        p.log_var = Param::from_tensor(p.log_var.val().zeros_like());
        let kl = Pdl::kl(&p.forward(a.clone(), PromptSampling::Mean));
        assert!(kl.into_scalar::<f32>().abs() < 1e-6);
        let p = pdl(&d);
        let kl: f32 = Pdl::kl(&p.forward(a, PromptSampling::Mean)).into_scalar::<f32>();
        // log σ² = −4 on 8 values: ½·8·(e⁻⁴ − 1 + 4) ≈ 12.07, plus the small μ² term
        assert!(
            (kl - 0.5 * 8.0 * ((-4.0f32).exp() + 3.0)).abs() < 0.1,
            "{kl}"
        );
    }

    #[test]
    fn gradients_reach_mean_and_log_variance() {
        let d = device().autodiff();
        let p = pdl(&d);
        let a = Tensor::<2>::from_data(TensorData::new(vec![0.3f32, 0.3, 0.4], [1, 3]), &d);
        let draw = p.forward(a, PromptSampling::Sample);
        let loss = draw.prompts.clone().square().sum() + Pdl::kl(&draw);
        let g = loss.backward();
        for (name, grad) in [("mean", p.mean.grad(&g)), ("log_var", p.log_var.grad(&g))] {
            let s: f32 = grad.expect(name).abs().sum().into_scalar::<f32>();
            assert!(s > 0.0, "{name} has no gradient");
        }
    }
}
