//! Down- and up-sampling between the U-Net levels: a 3×3 convolution and a pixel (un)shuffle.

use burn::nn::conv::Conv2d;
use burn::nn::{PixelShuffle, PixelShuffleConfig, PixelUnshuffle, PixelUnshuffleConfig};
use burn::prelude::*;

use super::conv;

/// Configuration of a [`Downsample`].
#[derive(Config, Debug)]
pub struct DownsampleConfig {
    /// Input channels `n` (even). The output has `2n` channels at half the resolution.
    pub channels: usize,
}

/// 3×3 convolution `n → n/2`, then PixelUnshuffle(2): `[B, n, H, W] → [B, 2n, H/2, W/2]`.
/// PyTorch key: `<name>.body.0.weight` (this crate's `<name>.conv.weight`).
#[derive(Module, Debug)]
pub struct Downsample {
    /// The convolution.
    pub conv: Conv2d,
    unshuffle: PixelUnshuffle,
}

impl DownsampleConfig {
    /// Builds the module.
    pub fn init(&self, device: &Device) -> Downsample {
        assert!(
            self.channels.is_multiple_of(2),
            "Downsample needs an even channel count"
        );
        Downsample {
            conv: conv(self.channels, self.channels / 2, 3, false, device),
            unshuffle: PixelUnshuffleConfig::new(2).init(),
        }
    }
}

impl Downsample {
    /// # Shapes
    /// - input `[B, n, H, W]`, H and W even
    /// - output `[B, 2n, H/2, W/2]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.unshuffle.forward(super::conv3x3(&self.conv, x))
    }
}

/// Configuration of an [`Upsample`].
#[derive(Config, Debug)]
pub struct UpsampleConfig {
    /// Input channels `n` (even). The output has `n/2` channels at twice the resolution.
    pub channels: usize,
}

/// 3×3 convolution `n → 2n`, then PixelShuffle(2): `[B, n, H, W] → [B, n/2, 2H, 2W]`.
/// PyTorch key: `<name>.body.0.weight` (this crate's `<name>.conv.weight`).
#[derive(Module, Debug)]
pub struct Upsample {
    /// The convolution.
    pub conv: Conv2d,
    shuffle: PixelShuffle,
}

impl UpsampleConfig {
    /// Builds the module.
    pub fn init(&self, device: &Device) -> Upsample {
        assert!(
            self.channels.is_multiple_of(2),
            "Upsample needs an even channel count"
        );
        Upsample {
            conv: conv(self.channels, self.channels * 2, 3, false, device),
            shuffle: PixelShuffleConfig::new(2).init(),
        }
    }
}

impl Upsample {
    /// # Shapes
    /// - input `[B, n, H, W]`
    /// - output `[B, n/2, 2H, 2W]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.shuffle.forward(super::conv3x3(&self.conv, x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{device, tensor};
    use burn::module::Param;

    /// An identity 3×3 kernel makes the module a pure pixel (un)shuffle, whose channel order
    /// must be PyTorch's: out[c·4 + i·2 + j][y][x] = in[c][2y + i][2x + j].
    fn identity_kernel(c_in: usize, c_out: usize, d: &Device) -> Param<Tensor<4>> {
        let mut k = vec![0.0; c_out * c_in * 9];
        for o in 0..c_out {
            k[(o * c_in + o % c_in) * 9 + 4] = 1.0;
        }
        Param::from_tensor(tensor(k, [c_out, c_in, 3, 3], d))
    }

    #[test]
    fn downsample_unshuffles_in_pytorch_order() {
        let d = device();
        let mut ds = DownsampleConfig::new(2).init(&d);
        ds.conv.weight = identity_kernel(2, 1, &d);
        // channel 0 of the input: a 4×4 ramp 0..16
        let mut v: Vec<f32> = (0..16).map(|i| i as f32).collect();
        v.extend(std::iter::repeat_n(100.0, 16));
        let y = ds.forward(tensor(v, [1, 2, 4, 4], &d));
        assert_eq!(y.dims(), [1, 4, 2, 2]);
        let y: Vec<f32> = y.into_data().try_into_vec::<f32>().unwrap();
        // channel (i=0, j=1) at (0, 1) is in[0][0][3]
        assert_eq!(y[4 + 1], 3.0);
        // channel (i=1, j=0) at (1, 0) is in[0][3][0]
        assert_eq!(y[2 * 4 + 2], 12.0);
        assert_eq!(y[0..4], [0.0, 2.0, 8.0, 10.0]);
    }

    #[test]
    fn upsample_inverts_the_unshuffle_order() {
        let d = device();
        let mut us = UpsampleConfig::new(2).init(&d);
        us.conv.weight = identity_kernel(2, 4, &d);
        // 4 conv outputs = channels [0, 1, 0, 1] of the input; input ch0 = 1s, ch1 = 2s.
        let mut v = vec![1.0f32; 4];
        v.extend([2.0f32; 4]);
        let y = us.forward(tensor(v, [1, 2, 2, 2], &d));
        assert_eq!(y.dims(), [1, 1, 4, 4]);
        let y: Vec<f32> = y.into_data().try_into_vec::<f32>().unwrap();
        // out[0][2y+i][2x+j] = conv[i·2+j][y][x]: rows alternate 1,2,1,2 along x.
        assert_eq!(y[0..4], [1.0, 2.0, 1.0, 2.0]);
        assert_eq!(y[4..8], [1.0, 2.0, 1.0, 2.0]);
    }
}
