//! # dppd — all-in-one image restoration on burn
//!
//! One model removes noise, rain and haze from a photograph without being told which.
//! See the README for an overview.

pub mod backbone;
pub mod data;
pub mod degrade;
mod error;
pub mod model;
pub mod prompt;

pub use error::{Error, Result};
