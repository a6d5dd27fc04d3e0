//! DPA — Degradation Prototype Assignment.
//!
//! The pooled features of an image are embedded and assigned to `K` *fixed* prototypes
//! (orthonormal unit vectors drawn from a seed, never trained): cosine similarity over a
//! temperature, then softmax. Anchoring the representation to fixed points makes degradation
//! types separate into clusters, one per prototype, and a spare prototype leaves room to learn
//! a new degradation type later without disturbing the others.

use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::{gelu, softmax};

use crate::backbone::l2_normalize_last;
use crate::base::rng::SplitMix64;

/// Configuration of a [`Dpa`] block.
#[derive(Config, Debug)]
pub struct DpaConfig {
    /// Channels of the features that are pooled, `C`.
    pub in_channels: usize,
    /// Width of the embedding and of the prototypes, `d`.
    #[config(default = 64)]
    pub embed_dim: usize,
    /// Hidden width of the two-layer embedding MLP.
    #[config(default = 128)]
    pub hidden_dim: usize,
    /// Number of prototypes `K` (degradation types plus spares).
    #[config(default = 4)]
    pub prototypes: usize,
    /// Softmax temperature `τ` applied to the cosine similarities (logits = cos / τ).
    #[config(default = 0.1)]
    pub temperature: f64,
    /// Hard top-1 assignment (one-hot forward, soft gradient backward) instead of soft.
    #[config(default = false)]
    pub hard: bool,
    /// Seed of the prototypes.
    #[config(default = 0)]
    pub seed: u64,
}

/// What a [`Dpa`] block computes for a batch.
#[derive(Debug, Clone)]
pub struct Assignment {
    /// The embedding `e`. Shape `[B, d]`.
    pub embedding: Tensor<2>,
    /// `cos(e, P_k) / τ`: apply a cross-entropy on the degradation label to these. Shape `[B, K]`.
    pub logits: Tensor<2>,
    /// The assignment used to mix the prompt distributions (softmax of the logits, or its
    /// straight-through one-hot when `hard`). Shape `[B, K]`.
    pub probs: Tensor<2>,
}

/// Pool → embed → assign to fixed prototypes.
#[derive(Module, Debug)]
pub struct Dpa {
    /// First embedding layer `C → hidden`.
    pub embed1: Linear,
    /// Second embedding layer `hidden → d`.
    pub embed2: Linear,
    /// The fixed prototypes, row-major `[K, d]`; a constant, not a parameter.
    #[module(skip)]
    prototypes: Vec<f32>,
    #[module(skip)]
    shape: [usize; 2],
    temperature: f64,
    hard: bool,
}

impl DpaConfig {
    /// Builds the block; the prototypes are a function of `(K, d, seed)` alone.
    pub fn init(&self, device: &Device) -> Dpa {
        assert!(
            self.prototypes > 0 && self.embed_dim > 0,
            "DPA needs K > 0 and d > 0"
        );
        assert!(self.temperature > 0.0, "DPA temperature must be positive");
        Dpa {
            embed1: LinearConfig::new(self.in_channels, self.hidden_dim).init(device),
            embed2: LinearConfig::new(self.hidden_dim, self.embed_dim).init(device),
            prototypes: prototypes(self.prototypes, self.embed_dim, self.seed),
            shape: [self.prototypes, self.embed_dim],
            temperature: self.temperature,
            hard: self.hard,
        }
    }
}

/// `K` unit rows of width `d` from a seeded Gaussian matrix, orthonormalised by Gram–Schmidt
/// (the Q of its QR decomposition). When `K > d` only the first `d` can be orthogonal; the
/// rest are normalised Gaussian rows.
fn prototypes(k: usize, d: usize, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix64(seed ^ 0xD99D_0000);
    let mut rows: Vec<Vec<f64>> = Vec::with_capacity(k);
    for i in 0..k {
        let mut v: Vec<f64> = (0..d).map(|_| rng.normal()).collect();
        if i < d {
            for r in &rows {
                let dot: f64 = v.iter().zip(r).map(|(a, b)| a * b).sum();
                v.iter_mut().zip(r).for_each(|(a, b)| *a -= dot * b);
            }
        }
        let n = v.iter().map(|a| a * a).sum::<f64>().sqrt();
        v.iter_mut().for_each(|a| *a /= n);
        rows.push(v);
    }
    rows.into_iter().flatten().map(|a| a as f32).collect()
}

impl Dpa {
    /// Number of prototypes `K`.
    pub fn num_prototypes(&self) -> usize {
        self.shape[0]
    }

    /// The fixed prototypes. Shape `[K, d]`.
    pub fn prototypes(&self, device: &Device) -> Tensor<2> {
        Tensor::from_data(TensorData::new(self.prototypes.clone(), self.shape), device)
    }

    /// # Shapes
    /// - input: features `[B, C, H, W]`
    /// - output: [`Assignment`] with `[B, d]` and `[B, K]` tensors
    pub fn forward(&self, x: Tensor<4>) -> Assignment {
        let [b, c, _, _] = x.dims();
        let pooled = x.mean_dims(&[2, 3]).reshape([b, c]);
        let embedding = self.embed2.forward(gelu(self.embed1.forward(pooled)));
        let cos = l2_normalize_last(embedding.clone())
            .matmul(self.prototypes(&embedding.device()).transpose());
        let logits = cos / self.temperature;
        let soft = softmax(logits.clone(), 1);
        let probs = if self.hard {
            let k = self.num_prototypes();
            let top = soft.clone().argmax(1).reshape([b]);
            let one_hot: Tensor<2> = top.one_hot::<2>(k).float();
            // Straight-through: the forward value is one-hot, the gradient the soft one's.
            one_hot + soft.clone() - soft.detach()
        } else {
            soft
        };
        Assignment {
            embedding,
            logits,
            probs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{device, max_abs_diff};
    use burn::tensor::Distribution;

    #[test]
    fn prototypes_are_orthonormal_and_fixed_by_the_seed() {
        let p = prototypes(5, 16, 3);
        for i in 0..5 {
            for j in 0..5 {
                let dot: f32 = (0..16).map(|t| p[i * 16 + t] * p[j * 16 + t]).sum();
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((dot - want).abs() < 1e-5, "P{i}·P{j} = {dot}");
            }
        }
        assert_eq!(p, prototypes(5, 16, 3));
        assert_ne!(p, prototypes(5, 16, 4));
    }

    #[test]
    fn soft_assignment_is_the_softmax_of_scaled_cosines() {
        let d = device();
        let dpa = DpaConfig::new(6)
            .with_embed_dim(8)
            .with_prototypes(3)
            .with_temperature(0.5)
            .init(&d);
        let x = Tensor::<4>::random([2, 6, 5, 4], Distribution::Normal(0.0, 1.0), &d);
        let a = dpa.forward(x);
        let e = l2_normalize_last(a.embedding.clone());
        let cos = e.matmul(dpa.prototypes(&d).transpose());
        assert!(max_abs_diff(a.logits.clone(), cos.clone() * 2.0) < 1e-5);
        // cosines are bounded, so logits lie in [−1/τ, 1/τ]
        assert!(cos.abs().max().into_scalar::<f32>() <= 1.0 + 1e-5);
        assert!(max_abs_diff(a.probs.sum_dim(1), Tensor::ones([2, 1], &d)) < 1e-5);
    }

    #[test]
    fn hard_assignment_is_one_hot_at_the_argmax() {
        let d = device();
        let dpa = DpaConfig::new(6).with_hard(true).init(&d);
        let x = Tensor::<4>::random([3, 6, 4, 4], Distribution::Normal(0.0, 1.0), &d);
        let a = dpa.forward(x);
        let probs: Vec<f32> = a.probs.into_data().try_into_vec::<f32>().unwrap();
        let arg: Vec<i64> = a
            .logits
            .argmax(1)
            .into_data()
            .convert::<i64>()
            .try_into_vec::<i64>()
            .unwrap();
        for (i, row) in probs.chunks(4).enumerate() {
            for (k, &v) in row.iter().enumerate() {
                let want = if k as i64 == arg[i] { 1.0 } else { 0.0 };
                assert!((v - want).abs() < 1e-6, "row {i}: {row:?}");
            }
        }
    }

    #[test]
    fn assignment_responds_to_the_input() {
        let d = device();
        let dpa = DpaConfig::new(6).init(&d);
        let a = Tensor::<4>::random([1, 6, 4, 4], Distribution::Normal(0.0, 1.0), &d);
        let b = Tensor::<4>::random([1, 6, 4, 4], Distribution::Normal(3.0, 1.0), &d);
        let pa = dpa.forward(a).probs;
        let pb = dpa.forward(b).probs;
        assert!(max_abs_diff(pa, pb) > 1e-3);
    }
}
