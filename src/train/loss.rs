//! The training objective: L1 reconstruction, plus the DPA cross-entropy on the degradation
//! label and the PDL KL term, each with its own weight (zero disables it).

use burn::nn::loss::CrossEntropyLossConfig;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::model::RestorerOutput;

/// Weights of the loss terms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LossConfig {
    /// Weight of the L1 loss between the restored and the clean image (PromptIR: 1).
    pub l1: f64,
    /// Weight of the cross-entropy between each DPPD site's DPA logits and the degradation
    /// label, averaged over sites (default 0.1: the assignment is a guide, not the goal).
    pub dpa_ce: f64,
    /// Weight of the PDL KL term, averaged over sites (default 1e-4: a gentle pull toward
    /// N(0, I) that keeps the variances from collapsing).
    pub pdl_kl: f64,
}

impl Default for LossConfig {
    fn default() -> Self {
        Self {
            l1: 1.0,
            dpa_ce: 0.1,
            pdl_kl: 1e-4,
        }
    }
}

/// The total loss and its parts (each `[1]`; the parts are unweighted).
#[derive(Debug, Clone)]
pub struct LossParts {
    /// `l1·L1 + dpa_ce·CE + pdl_kl·KL`: call `backward` on this.
    pub total: Tensor<1>,
    /// Mean absolute error.
    pub l1: Tensor<1>,
    /// DPA cross-entropy averaged over the DPPD sites (absent without sites or labels).
    pub dpa_ce: Option<Tensor<1>>,
    /// PDL KL averaged over the DPPD sites (absent without sites).
    pub pdl_kl: Option<Tensor<1>>,
}

/// Computes the loss of a forward pass against the clean images and, when given, the
/// degradation labels (indices into the DPA prototypes).
///
/// # Shapes
/// - `out.image`, `clean`: `[B, C, H, W]`; `labels`: `[B]`
pub fn restoration_loss(
    out: &RestorerOutput,
    clean: Tensor<4>,
    labels: Option<Tensor<1, Int>>,
    weights: &LossConfig,
) -> LossParts {
    let l1 = (out.image.clone() - clean).abs().mean();
    let mut total = l1.clone() * weights.l1;
    let n = out.sites.len();
    let mean_over_sites =
        |terms: Vec<Tensor<1>>| terms.into_iter().reduce(|a, b| a + b).map(|s| s / n as f64);
    let dpa_ce = match &labels {
        Some(labels) if n > 0 => {
            let ce = CrossEntropyLossConfig::new().init(&labels.device());
            mean_over_sites(
                out.sites
                    .iter()
                    .map(|s| ce.forward(s.aux.logits.clone(), labels.clone()))
                    .collect(),
            )
        }
        _ => None,
    };
    let pdl_kl = mean_over_sites(out.sites.iter().map(|s| s.aux.kl.clone()).collect());
    if let Some(ce) = dpa_ce.as_ref().filter(|_| weights.dpa_ce != 0.0) {
        total = total + ce.clone() * weights.dpa_ce;
    }
    if let Some(kl) = pdl_kl.as_ref().filter(|_| weights.pdl_kl != 0.0) {
        total = total + kl.clone() * weights.pdl_kl;
    }
    LossParts {
        total,
        l1,
        dpa_ce,
        pdl_kl,
    }
}
