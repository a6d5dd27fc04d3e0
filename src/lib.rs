//! # dppd — all-in-one image restoration on burn
//!
//! One model removes noise, rain and haze from a photograph without being told which.
//! See the README for an overview.

mod atomic;
pub mod backbone;
mod cpu;
pub mod data;
pub mod degrade;
mod device;
mod error;
pub mod eval;
mod memory;
pub mod model;
mod panic_guard;
pub mod prompt;
pub mod restore;
#[cfg(test)]
mod test_util;
pub mod train;
mod weights;

pub use device::{available_backends, device_from_name, devices_from_names};
pub use memory::retain_freed_memory;
pub use weights::WeightsFormat;

pub use error::{Error, Result};
