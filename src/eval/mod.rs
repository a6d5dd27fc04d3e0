//! Evaluation: the metrics the papers report ([`psnr`], [`ssim`], as scikit-image computes
//! them) and per-task score tables.

mod metrics;

pub use metrics::{
    EVAL_CROP_MULTIPLE, SSIM_K1, SSIM_K2, SSIM_WINDOW, mse, psnr, restoration_scores, ssim,
};
