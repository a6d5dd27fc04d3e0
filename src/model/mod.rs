//! The all-in-one network: a 4-level U-shaped Restormer whose three prompt sites take
//! PromptIR's static prompt, the DPPD prompt module, or nothing.

pub(crate) mod config;
mod grow;
mod inference;
mod network;
mod tiled;

pub use config::{
    MAX_BLOCKS, MAX_CONFIG_BYTES, MAX_PARAMETERS, MAX_WIDTH, PromptIrConfig, PromptSiteConfig,
    RestorerConfig,
};
pub(crate) use inference::mean_site_probabilities;
pub use inference::{DegradationPrediction, UncertainRestoration};
pub use network::{Restorer, RestorerOutput, SiteOutput};
pub use tiled::TileConfig;
pub(crate) use tiled::{blend_tiles, blend_windows, window_weights};
