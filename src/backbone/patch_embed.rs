//! Overlapped patch embedding: the 3×3 convolution that lifts the image to feature space.

use burn::nn::conv::Conv2d;
use burn::prelude::*;

use super::conv;

/// Configuration of an [`OverlapPatchEmbed`].
#[derive(Config, Debug)]
pub struct OverlapPatchEmbedConfig {
    /// Input channels (3 for RGB).
    #[config(default = 3)]
    pub in_channels: usize,
    /// Output feature channels (PromptIR: 48).
    #[config(default = 48)]
    pub embed_dim: usize,
    /// Whether the convolution has a bias.
    #[config(default = false)]
    pub bias: bool,
}

/// A 3×3 convolution, stride 1, zero padding 1 (PyTorch key `patch_embed.proj`).
#[derive(Module, Debug)]
pub struct OverlapPatchEmbed {
    /// The convolution.
    pub proj: Conv2d,
}

impl OverlapPatchEmbedConfig {
    /// Builds the module.
    pub fn init(&self, device: &Device) -> OverlapPatchEmbed {
        OverlapPatchEmbed {
            proj: conv(self.in_channels, self.embed_dim, 3, self.bias, device),
        }
    }
}

impl OverlapPatchEmbed {
    /// # Shapes
    /// - input `[B, C_in, H, W]`
    /// - output `[B, embed_dim, H, W]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        super::conv3x3(&self.proj, x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{device, max_abs_diff, tensor};
    use burn::module::Param;

    #[test]
    fn a_centre_tap_kernel_copies_and_zero_pads() {
        let d = device();
        let mut pe = OverlapPatchEmbedConfig::new()
            .with_in_channels(1)
            .with_embed_dim(1)
            .init(&d);
        // Kernel with 1 at the right neighbour: y[i, j] = x[i, j + 1], zero beyond the edge.
        let mut k = vec![0.0; 9];
        k[5] = 1.0;
        pe.proj.weight = Param::from_tensor(tensor(k, [1, 1, 3, 3], &d));
        let x = tensor(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [1, 1, 2, 3], &d);
        let expect = tensor(vec![2.0, 3.0, 0.0, 5.0, 6.0, 0.0], [1, 1, 2, 3], &d);
        assert_eq!(max_abs_diff(pe.forward(x), expect), 0.0);
    }
}
