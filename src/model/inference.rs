//! What users ask of a trained network beyond `forward`: which degradation it sees, and how
//! sure it is of each restored pixel.

use burn::prelude::*;

use super::{Restorer, SiteOutput};
use crate::prompt::PromptSampling;

/// The DPA probabilities averaged over the DPPD sites of one forward pass (`None` without
/// any).
pub(crate) fn mean_site_probabilities(sites: Vec<SiteOutput>) -> Option<Tensor<2>> {
    let n = sites.len();
    sites
        .into_iter()
        .map(|s| s.aux.probs)
        .reduce(|a, b| a + b)
        .map(|sum| sum / n as f64)
}

/// The degradation a DPPD network recognises in one image.
#[derive(Debug, Clone, PartialEq)]
pub struct DegradationPrediction {
    /// Name of the most probable prototype (from [`RestorerConfig::degradations`](super::RestorerConfig)).
    pub name: String,
    /// Its probability.
    pub probability: f32,
    /// Every prototype's name and probability, in prototype order.
    pub all: Vec<(String, f32)>,
}

/// A Monte-Carlo restoration: the mean of several restorations with sampled prompts, and the
/// per-pixel standard deviation between them.
#[derive(Debug, Clone)]
pub struct UncertainRestoration {
    /// Mean restoration. Shape `[B, C, H, W]`.
    pub mean: Tensor<4>,
    /// Per-pixel standard deviation over the samples. Shape `[B, C, H, W]`.
    pub std: Tensor<4>,
}

impl Restorer {
    /// The DPA assignment probabilities averaged over the network's DPPD sites, or `None` for a
    /// network without DPPD sites.
    ///
    /// # Shapes
    /// - input `[B, C, H, W]`
    /// - output `[B, K]`
    pub fn degradation_probabilities(&self, x: Tensor<4>) -> Option<Tensor<2>> {
        mean_site_probabilities(self.forward_with(x, Some(PromptSampling::Mean)).sites)
    }

    /// The predicted degradation of every image of the batch, with probabilities; `None` for a
    /// network without DPPD sites.
    pub fn predict_degradation(&self, x: Tensor<4>) -> Option<Vec<DegradationPrediction>> {
        self.predictions(self.degradation_probabilities(x)?)
    }

    /// Names the most probable prototype of each row of `probs` (`[B, K]`).
    pub(crate) fn predictions(&self, probs: Tensor<2>) -> Option<Vec<DegradationPrediction>> {
        let [b, k] = probs.dims();
        let v: Vec<f32> = probs
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .ok()?;
        Some(
            (0..b)
                .map(|i| {
                    let row = &v[i * k..(i + 1) * k];
                    let all: Vec<(String, f32)> = row
                        .iter()
                        .enumerate()
                        .map(|(j, &p)| (self.config().degradation_name(j), p))
                        .collect();
                    let best = all
                        .iter()
                        .max_by(|a, b| a.1.total_cmp(&b.1))
                        .cloned()
                        .expect("K > 0");
                    DegradationPrediction {
                        name: best.0,
                        probability: best.1,
                        all,
                    }
                })
                .collect(),
        )
    }

    /// Restores `x` `samples` times with prompts sampled from their distributions and returns
    /// the mean and the per-pixel standard deviation — an uncertainty map. With no DPPD site
    /// (or `samples == 1`) the deviation is zero.
    ///
    /// # Panics
    /// If `samples == 0`.
    pub fn restore_with_uncertainty(&self, x: Tensor<4>, samples: usize) -> UncertainRestoration {
        assert!(samples > 0, "at least one sample is needed");
        let mut sum: Option<Tensor<4>> = None;
        let mut sum_sq: Option<Tensor<4>> = None;
        for _ in 0..samples {
            let y = self
                .forward_with(x.clone(), Some(PromptSampling::Sample))
                .image;
            let sq = y.clone().square();
            sum = Some(match sum {
                Some(s) => s + y,
                None => y,
            });
            sum_sq = Some(match sum_sq {
                Some(s) => s + sq,
                None => sq,
            });
        }
        let n = samples as f64;
        let mean = sum.expect("samples > 0") / n;
        let var = (sum_sq.expect("samples > 0") / n - mean.clone().square()).clamp_min(0.0);
        UncertainRestoration {
            mean,
            std: var.sqrt(),
        }
    }
}
