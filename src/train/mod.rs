//! Training: the experiment configuration, losses, the learning-rate schedule, the loop with
//! validation, checkpoints and resumption, and the training-curve plot. See
//! `docs/training.md`.

pub mod checkpoint;
mod config;
mod loss;
pub mod plot;
mod trainer;

pub use checkpoint::{BestScore, Checkpoint, TrainState};
pub use config::{
    DataConfig, DataLayout, ExperimentConfig, GradClip, ModelSpec, NamedPreset, OptimizerConfig,
    ScheduleConfig,
};
pub use loss::{LossConfig, LossParts, restoration_loss};
pub use trainer::{
    SplitData, TRAIN_CSV_HEADER, TaskScore, TrainOptions, TrainSummary, VAL_CSV_HEADER, Validation,
    list_checkpoints, split_data, train,
};
