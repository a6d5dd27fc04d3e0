//! Training: losses (and, in later steps, schedules, the loop and checkpoints).

mod loss;

pub use loss::{LossConfig, LossParts, restoration_loss};
