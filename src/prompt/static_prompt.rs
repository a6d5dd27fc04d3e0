//! PromptIR's `PromptGenBlock`: a fixed bank of learned prompts mixed by softmax weights.

use burn::module::{Initializer, Param};
use burn::nn::conv::Conv2d;
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::softmax;

use crate::backbone::resize_bilinear;

/// Configuration of a [`PromptGenBlock`].
#[derive(Config, Debug)]
pub struct PromptGenBlockConfig {
    /// Number of prompts in the bank (PromptIR: 5).
    #[config(default = 5)]
    pub prompt_len: usize,
    /// Channels of each prompt, `D`.
    pub prompt_dim: usize,
    /// Spatial size `S` of each (square) prompt before resizing.
    pub prompt_size: usize,
    /// Channels of the features that choose the mixing weights, `C`.
    pub lin_dim: usize,
}

/// A bank of `N` prompts `[D, S, S]`; the pooled features choose softmax weights over them,
/// the weighted sum is resized bilinearly to the feature map and passed through a 3×3 conv.
#[derive(Module, Debug)]
pub struct PromptGenBlock {
    /// The prompt bank, initialised U[0, 1). Shape `[1, N, D, S, S]`.
    pub prompt_param: Param<Tensor<5>>,
    /// `C → N`, with bias.
    pub linear_layer: Linear,
    /// 3×3 convolution `D → D`, no bias.
    pub conv3x3: Conv2d,
}

impl PromptGenBlockConfig {
    /// Builds the block.
    pub fn init(&self, device: &Device) -> PromptGenBlock {
        let (n, d, s) = (self.prompt_len, self.prompt_dim, self.prompt_size);
        PromptGenBlock {
            prompt_param: Initializer::Uniform { min: 0.0, max: 1.0 }.init([1, n, d, s, s], device),
            linear_layer: LinearConfig::new(self.lin_dim, n).init(device),
            conv3x3: crate::backbone::conv(d, d, 3, false, device),
        }
    }
}

impl PromptGenBlock {
    /// The softmax weights over the bank chosen by the features.
    ///
    /// # Shapes
    /// - input `[B, C, H, W]`
    /// - output `[B, N]`
    pub fn weights(&self, x: Tensor<4>) -> Tensor<2> {
        let [b, c, _, _] = x.dims();
        let emb = x.mean_dims(&[2, 3]).reshape([b, c]);
        softmax(self.linear_layer.forward(emb), 1)
    }

    /// # Shapes
    /// - input `[B, C, H, W]`
    /// - output `[B, D, H, W]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, _, h, w] = x.dims();
        let [_, n, d, s, _] = self.prompt_param.dims();
        let bank = self.prompt_param.val().reshape([n, d * s * s]);
        let prompt = self.weights(x).matmul(bank).reshape([b, d, s, s]);
        crate::backbone::conv3x3(&self.conv3x3, resize_bilinear(prompt, [h, w]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{device, max_abs_diff};
    use burn::tensor::Distribution;

    #[test]
    fn output_is_conv_of_the_weighted_resized_bank() {
        let d = device();
        let block = PromptGenBlockConfig::new(4, 3, 6)
            .with_prompt_len(2)
            .init(&d);
        let x = Tensor::<4>::random([2, 6, 5, 7], Distribution::Normal(0.0, 1.0), &d);
        let wts = block.weights(x.clone());
        // weights are a distribution over the bank
        let sums = wts.clone().sum_dim(1);
        assert!(max_abs_diff(sums, Tensor::ones([2, 1], &d)) < 1e-6);
        // sample 1 by hand: w0·P0 + w1·P1, then resize, then conv
        let w: Vec<f32> = wts.into_data().try_into_vec::<f32>().unwrap();
        let p = block.prompt_param.val();
        let p0 = p.clone().narrow(1, 0, 1).reshape([1, 4, 3, 3]);
        let p1 = p.narrow(1, 1, 1).reshape([1, 4, 3, 3]);
        let mixed = p0 * w[2] + p1 * w[3];
        let expect = block.conv3x3.forward(resize_bilinear(mixed, [5, 7]));
        let got = block.forward(x).narrow(0, 1, 1);
        assert!(max_abs_diff(got, expect) < 1e-5);
    }

    #[test]
    fn gradients_reach_the_prompt_bank() {
        // PromptIR's early releases detached the bank; here it must train.
        let d = device().autodiff();
        let block = PromptGenBlockConfig::new(4, 3, 6).init(&d);
        let x = Tensor::<4>::random([1, 6, 4, 4], Distribution::Normal(0.0, 1.0), &d);
        let grads = block.forward(x).square().mean().backward();
        let g = block
            .prompt_param
            .grad(&grads)
            .expect("prompt bank has a gradient");
        assert!(g.abs().sum().into_scalar::<f32>() > 0.0);
    }
}
