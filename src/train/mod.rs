//! Training: the experiment configuration, losses, the learning-rate schedule, the loop with
//! validation, checkpoints and resumption, and the training-curve plot. See
//! `docs/training.md`.

pub mod checkpoint;
mod config;
mod ema;
#[cfg(all(test, feature = "flex"))]
mod engine_tests;
mod loss;
mod parallel;
pub mod plot;
mod run_dir;
mod split;
mod trainer;
mod validate;

pub use checkpoint::{BestScore, Checkpoint, TrainState};
pub use config::{
    DataConfig, DataLayout, EmaConfig, ExperimentConfig, GradClip, ModelSpec, NamedPreset,
    OptimizerConfig, ScheduleConfig,
};
pub use loss::{LossConfig, LossParts, restoration_loss};
pub use run_dir::{RunDir, TrainRow, ValRow};
pub use split::{SplitData, split_data};
pub use trainer::{TrainEvent, TrainOptions, TrainSummary, list_checkpoints, train, train_with};
pub use validate::{TaskScore, Validation};
