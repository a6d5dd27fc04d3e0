//! The CPU engine: the crate's own kernels for the CPU backends (flex, ndarray).
//!
//! burn's CPU backends run each tensor operation as its own pass over memory and hand every
//! matrix product to `gemm` with one shape-dependent parallel split; for this network's
//! shapes (few channels, many pixels) that split leaves one of two cores idle in most
//! 1×1 convolutions and attention products, and element-wise chains (LayerNorm, the GELU
//! gate, residual additions) cost a full read and write each. The kernels here work on
//! plain `f32` buffers in burn's NCHW layout:
//!
//! - [`matmul_wide`]: `out (+)= W · X (+ bias)` for a small `W` and a wide `X` (1×1
//!   convolutions), split over column blocks so every core has work, with the residual
//!   addition folded into the product;
//! - [`layer_norm`]: both LayerNorm variants in one pass over pixel blocks that stay in cache;
//! - [`channel_attention`]: MDTA's attention map from per-block partial products, folded
//!   into the output projection (`W_out · blockdiag(A) · V` as one product);
//! - [`depthwise_gate`]: the GDFN's depthwise 3×3 convolution and GELU gate in one pass, in
//!   place (and [`depthwise3x3`] alone, in place, for MDTA);
//! - [`conv3x3`]: dense 3×3 convolutions as nine accumulated products on a zero-padded copy
//!   of the input, without an im2col buffer.
//!
//! The element-wise loops run compiled for AVX2 and FMA where the processor has them
//! ([`simd`]); every kernel splits its work over rayon's pool (burn's), and releases its input
//! as soon as it is consumed, so that a transformer block holds at most its residual stream
//! and one expanded tensor.
//!
//! Layers ask [`route`] which path a tensor takes: the kernels for inference on a plain CPU
//! device, burn's operations otherwise (autodiff, GPUs, other float types), which compute the
//! same function. The unit tests compare the two paths.
//!
//! Layout: [`engine`] holds the generic machinery (tensors in and out, the SIMD switch,
//! `gemm` calls, wide products); [`conv`], [`norm`] and [`attention`] the kernels.

mod attention;
mod block;
mod conv;
mod engine;
mod norm;
#[cfg(feature = "flex")]
pub(crate) mod train;

pub(crate) use attention::{channel_attention, local_attention};
pub(crate) use block::BlockShape;
pub(crate) use conv::{
    conv3x3_tensor, depthwise_gate, depthwise3x3, is_dense_3x3, is_pointwise, pointwise,
    pointwise_tensor,
};
pub(crate) use engine::{Columns, Out, batched_matmul, fresh, from_vec, into_vec, map_tensor};
pub(crate) use norm::layer_norm;

use burn::prelude::*;

/// Which implementation a layer runs for a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// The kernels of this module (inference on flex or ndarray, `f32`, no autodiff).
    Kernels,
    /// The kernels as autodiff nodes with their own backward pass ([`train`]): training on
    /// flex in `f32`.
    Train,
    /// burn's tensor operations (GPUs, ndarray's autodiff, other float types).
    Burn,
}

#[cfg(test)]
thread_local! {
    static BURN_ONLY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with every layer on burn's operations (the reference the kernels are tested
/// against), on this thread.
#[cfg(test)]
pub(crate) fn with_burn_ops<R>(f: impl FnOnce() -> R) -> R {
    BURN_ONLY.set(true);
    let r = f();
    BURN_ONLY.set(false);
    r
}

/// The path `x` takes through a layer.
pub(crate) fn route<const D: usize>(x: &Tensor<D>) -> Route {
    #[cfg(test)]
    if BURN_ONLY.get() {
        return Route::Burn;
    }
    if engine::plain_cpu(x) {
        Route::Kernels
    } else if engine::flex_autodiff(x) {
        Route::Train
    } else {
        Route::Burn
    }
}

#[cfg(test)]
mod tests {
    use super::engine::plain_cpu;
    use super::*;
    use crate::test_util::device;

    #[test]
    fn only_plain_cpu_f32_tensors_take_the_kernels() {
        let d = device();
        assert!(plain_cpu(&Tensor::<2>::zeros([2, 2], &d)));
        assert!(!plain_cpu(&Tensor::<2>::zeros(
            [2, 2],
            &d.clone().autodiff()
        )));
        let half = Tensor::<2>::zeros([2, 2], &d).cast(burn::tensor::FloatDType::F16);
        assert!(!plain_cpu(&half));
    }
}

/// The kernels the layer modules' tests check against burn's autodiff
/// (`backbone/engine_tests.rs`).
#[cfg(test)]
pub(crate) mod testing {
    pub(crate) use super::attention::{attention_backward, attention_maps, fold};
    pub(crate) use super::conv::{
        depthwise_backward, depthwise_into, gate, gate_backward, pointwise_backward, pointwise_raw,
    };
    pub(crate) use super::engine::{Weights, from_vec, into_vec, matmul_items};
    pub(crate) use super::norm::layer_norm_backward;
}
