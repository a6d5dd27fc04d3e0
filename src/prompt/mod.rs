//! Everything that conditions the backbone on the degradation.
//!
//! - [`PromptGenBlock`]: PromptIR's static prompt bank (the baseline, checkpoint-compatible).
//! - [`Dpa`]: Degradation Prototype Assignment — pooled features → embedding → soft (or hard)
//!   assignment to fixed prototypes.
//! - [`Pdl`]: Prompt Distribution Learning — a learned diagonal Gaussian over prompt tokens per
//!   prototype, sampled with the reparameterisation trick.
//! - [`CrossFusion`]: cross-attention from the features to the prompt tokens, with a residual.
//! - [`DppdPrompt`]: the three chained, as one prompt site of the DPPD network.
//!
//! Each is usable on its own; see `docs/dppd.md` for how to plug them into another backbone.

mod cross_fusion;
mod dpa;
mod dppd;
mod pdl;
mod static_prompt;

pub use cross_fusion::{CrossFusion, CrossFusionConfig, FusionMode};
pub use dpa::{Assignment, Dpa, DpaConfig};
pub use dppd::{DppdPrompt, DppdPromptConfig, PromptAux};
pub use pdl::{Pdl, PdlConfig, PromptDraw, PromptSampling};
pub use static_prompt::{PromptGenBlock, PromptGenBlockConfig};
