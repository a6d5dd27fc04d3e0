//! Restormer building blocks, as used by PromptIR's U-shaped backbone.
//!
//! Every block follows burn's rhythm: a `XConfig` (serde, documented defaults) whose
//! `init(&device)` builds the module `X`, whose `forward` documents its tensor shapes.
//! Field names mirror the official PyTorch attribute names, so checkpoints import with a
//! handful of key remappings.

mod attention;
#[cfg(test)]
mod engine_tests;
mod feed_forward;
mod layer_norm;
mod patch_embed;
mod resize;
mod sampling;
mod transformer_block;

pub(crate) use attention::l2_normalize_last;
pub use attention::{Attention, AttentionConfig};
pub use feed_forward::{FeedForward, FeedForwardConfig};
pub use layer_norm::{ChannelLayerNorm, ChannelLayerNormConfig, LayerNormType};
pub use patch_embed::{OverlapPatchEmbed, OverlapPatchEmbedConfig};
pub use resize::resize_bilinear;
pub use sampling::{Downsample, DownsampleConfig, Upsample, UpsampleConfig};
pub use transformer_block::{TransformerBlock, TransformerBlockConfig};

use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::prelude::*;

use crate::cpu::{self, Route};

/// A `k×k` convolution with "same" zero padding (k odd), as PyTorch's `padding=k/2`.
pub(crate) fn conv(c_in: usize, c_out: usize, k: usize, bias: bool, device: &Device) -> Conv2d {
    let p = k / 2;
    Conv2dConfig::new([c_in, c_out], [k, k])
        .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
        .with_bias(bias)
        .init(device)
}

/// `conv.forward(x)` for a 1×1 convolution made by [`conv`], through the CPU kernels
/// ([`crate::cpu`]) where [`cpu::route`] sends the tensor.
pub(crate) fn conv1x1(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    if cpu::is_pointwise(conv) {
        match cpu::route(&x) {
            Route::Kernels => return cpu::pointwise_tensor(conv, x),
            #[cfg(feature = "flex")]
            Route::Train => return cpu::train::conv(x, conv, true),
            _ => {}
        }
    }
    conv.forward(x)
}

/// `conv.forward(x)` for a 3×3 convolution made by [`conv`], through the CPU kernels
/// ([`crate::cpu`]) where [`cpu::route`] sends the tensor.
pub(crate) fn conv3x3(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    if cpu::is_dense_3x3(conv) {
        match cpu::route(&x) {
            Route::Kernels => return cpu::conv3x3_tensor(conv, x),
            #[cfg(feature = "flex")]
            Route::Train => return cpu::train::conv(x, conv, false),
            _ => {}
        }
    }
    conv.forward(x)
}

/// A depthwise 3×3 convolution over `channels` with zero padding 1.
pub(crate) fn depthwise3x3(channels: usize, bias: bool, device: &Device) -> Conv2d {
    Conv2dConfig::new([channels, channels], [3, 3])
        .with_groups(channels)
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .with_bias(bias)
        .init(device)
}
