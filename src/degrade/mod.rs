//! Synthetic degradations: noise, rain, haze, blur, low light, JPEG, and composites.
//!
//! Every degradation is a small parameter struct (ranges are sampled per image) with a pure
//! `apply(&image, &mut rng) -> Image`; [`Degradation`] wraps them all and adds
//! [`Degradation::apply_seeded`]. One seed gives one image on every platform
//! ([`DegradeRng`] is ChaCha8). [`Task`] names the restoration tasks with stable labels.
//! Formulas, parameters and ranges: each type's documentation and `docs/data.md`.

mod composite;
mod defocus;
mod degradation;
mod haze;
mod jpeg;
pub(crate) mod kernel;
mod low_light;
mod motion_blur;
mod noise;
mod rain;
mod task;

pub use crate::base::depth::DepthMap;
pub use crate::base::rng::{DegradeRng, derive_seed, name_hash, rng_from_seed};
pub use composite::Composite;
pub use defocus::DefocusBlur;
pub use degradation::Degradation;
pub use haze::{Haze, depth_proxy, relative_depth};
pub use jpeg::Jpeg;
pub use low_light::LowLight;
pub use motion_blur::MotionBlur;
pub use noise::{GaussianNoise, Quantization, Sigma};
pub use rain::Rain;
pub use task::Task;

#[cfg(test)]
mod tests;
