//! The bottom layer: what every other module may use, and which uses none of them.
//!
//! The error type, atomic file writes, containing third-party panics, the allocator setting;
//! the image type and pixel I/O; tasks (names and labels) and depth maps; seeded randomness.
//! Its public items reach users through the modules that present them (`dppd::data::Image`,
//! `dppd::degrade::Task`, `dppd::Error`, …; `docs/design.md` draws the layers).

pub(crate) mod atomic;
pub(crate) mod depth;
pub(crate) mod error;
pub(crate) mod image;
pub mod io;
pub(crate) mod memory;
pub(crate) mod panic_guard;
pub(crate) mod rng;
pub(crate) mod task;
