//! # dppd — all-in-one image restoration on burn
//!
//! One model removes noise, rain and haze from a photograph without being told which.
//! See the README for an overview.

pub mod backbone;
mod base;
mod cpu;
pub mod data;
pub mod degrade;
mod device;
pub mod eval;
pub mod model;
pub mod prelude;
pub mod prompt;
pub mod restore;
#[cfg(test)]
mod test_util;
pub mod train;
mod weights;

pub use base::memory::retain_freed_memory;
pub use device::{available_backends, device_from_name, devices_from_names};
pub use weights::WeightsFormat;

pub use base::error::{Error, Result};
