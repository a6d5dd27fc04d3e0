//! Evaluation: the metrics the papers report ([`psnr`], [`ssim`], as scikit-image computes
//! them), per-task score tables and side-by-side pictures.

mod benchmark;
mod metrics;
mod report;

pub use benchmark::{Benchmark, Confusion, SampleResult, benchmark};
pub use metrics::{
    EVAL_CROP_MULTIPLE, SSIM_K1, SSIM_K2, SSIM_WINDOW, mse, psnr, restoration_scores, ssim,
};
pub use report::{ScoreTable, TaskSums, side_by_side};
