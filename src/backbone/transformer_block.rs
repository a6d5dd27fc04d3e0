//! Restormer's transformer block: MDTA and GDFN, each behind a channel LayerNorm and a residual.

use burn::prelude::*;

use super::{
    Attention, AttentionConfig, ChannelLayerNorm, ChannelLayerNormConfig, FeedForward,
    FeedForwardConfig, LayerNormType,
};

/// Configuration of a [`TransformerBlock`].
#[derive(Config, Debug)]
pub struct TransformerBlockConfig {
    /// Channels in and out.
    pub dim: usize,
    /// Attention heads; must divide `dim`.
    pub heads: usize,
    /// GDFN expansion factor.
    #[config(default = 2.66)]
    pub ffn_expansion_factor: f64,
    /// Whether the convolutions have biases.
    #[config(default = false)]
    pub bias: bool,
    /// The LayerNorm variant.
    #[config(default = "LayerNormType::WithBias")]
    pub layer_norm: LayerNormType,
}

/// `x += attn(norm1(x)); x += ffn(norm2(x))`.
#[derive(Module, Debug)]
pub struct TransformerBlock {
    /// Norm before attention.
    pub norm1: ChannelLayerNorm,
    /// MDTA attention.
    pub attn: Attention,
    /// Norm before the feed-forward network.
    pub norm2: ChannelLayerNorm,
    /// GDFN feed-forward network.
    pub ffn: FeedForward,
}

impl TransformerBlockConfig {
    /// Builds the block.
    pub fn init(&self, device: &Device) -> TransformerBlock {
        let norm = ChannelLayerNormConfig::new(self.dim).with_kind(self.layer_norm);
        TransformerBlock {
            norm1: norm.init(device),
            attn: AttentionConfig::new(self.dim, self.heads)
                .with_bias(self.bias)
                .init(device),
            norm2: norm.init(device),
            ffn: FeedForwardConfig::new(self.dim)
                .with_expansion(self.ffn_expansion_factor)
                .with_bias(self.bias)
                .init(device),
        }
    }
}

impl TransformerBlock {
    /// # Shapes
    /// - input `[B, C, H, W]`
    /// - output `[B, C, H, W]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        if crate::cpu::route(&x) == crate::cpu::Route::Kernels {
            // One buffer carries the residual stream: each branch adds its output into it.
            use crate::cpu::{Out, from_vec, into_vec};
            let [b, c, h, w] = x.dims();
            let device = x.device();
            let mut stream = into_vec(x);
            let y = self.norm1.apply_cpu(&stream, b, c, h * w);
            self.attn.apply_cpu(y, b, h, w, Out::Add(&mut stream));
            let y = self.norm2.apply_cpu(&stream, b, c, h * w);
            self.ffn.apply_cpu(y, b, h, w, Out::Add(&mut stream));
            return from_vec(stream, [b, c, h, w], &device);
        }
        #[cfg(feature = "flex")]
        if crate::cpu::route(&x) == crate::cpu::Route::Train && {
            let [_, _, h, w] = x.dims();
            self.attn.local_for(h, w).is_none()
        } {
            return self.forward_node(x);
        }
        self.forward_ops(x)
    }

    /// The block as one autodiff node with the engine's forward and backward kernels
    /// (training on flex; [`crate::cpu::train`]).
    #[cfg(feature = "flex")]
    fn forward_node(&self, x: Tensor<4>) -> Tensor<4> {
        use crate::cpu::train::{BlockSpec, Input, transformer_block};
        let device = x.device();
        let absent = || Tensor::<1>::zeros([1], &device).into_dispatch();
        let vec1 = |p: &burn::module::Param<Tensor<1>>| p.val().into_dispatch();
        let opt = |p: &Option<burn::module::Param<Tensor<1>>>| p.as_ref().map_or_else(absent, vec1);
        let w4 = |c: &burn::nn::conv::Conv2d| c.weight.val().into_dispatch();
        let (a, f) = (&self.attn, &self.ffn);
        let params: [Input; 17] = [
            vec1(&self.norm1.body.weight),
            opt(&self.norm1.body.bias),
            w4(&a.qkv),
            opt(&a.qkv.bias),
            w4(&a.qkv_dwconv),
            opt(&a.qkv_dwconv.bias),
            a.temperature.val().into_dispatch(),
            w4(&a.project_out),
            opt(&a.project_out.bias),
            vec1(&self.norm2.body.weight),
            opt(&self.norm2.body.bias),
            w4(&f.project_in),
            opt(&f.project_in.bias),
            w4(&f.dwconv),
            opt(&f.dwconv.bias),
            w4(&f.project_out),
            opt(&f.project_out.bias),
        ];
        let [c, hidden, _, _] = f.project_out.weight.dims();
        let spec = BlockSpec {
            shape: crate::cpu::BlockShape {
                c,
                heads: a.heads(),
                hidden,
                epsilon: self.norm1.epsilon() as f32,
            },
            norm_bias: self.norm1.body.bias.is_some(),
            conv_bias: a.qkv.bias.is_some(),
        };
        transformer_block(x, params, spec)
    }

    /// The block with burn's tensor operations (every backend, autodiff).
    fn forward_ops(&self, x: Tensor<4>) -> Tensor<4> {
        let x = x.clone() + self.attn.forward(self.norm1.forward(x));
        x.clone() + self.ffn.forward(self.norm2.forward(x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{device, max_abs_diff};
    #[cfg(feature = "flex")]
    use burn::module::Module;
    use burn::module::Param;
    #[cfg(feature = "flex")]
    use burn::optim::GradientsParams;
    use burn::tensor::Distribution;

    #[test]
    fn is_the_sum_of_its_two_residual_branches() {
        let d = device();
        let tb = TransformerBlockConfig::new(8, 2).init(&d);
        let x = Tensor::<4>::random([1, 8, 6, 4], Distribution::Normal(0.0, 1.0), &d);
        let y1 = x.clone() + tb.attn.forward(tb.norm1.forward(x.clone()));
        let expect = y1.clone() + tb.ffn.forward(tb.norm2.forward(y1));
        assert!(max_abs_diff(tb.forward(x), expect) < 1e-6);
    }

    /// The block as one training node (forward and backward kernels of the engine) against
    /// burn's autodiff of its operations: output, input gradient and every parameter gradient,
    /// for both LayerNorm kinds, with and without convolution biases, one and several heads,
    /// odd sizes and batch 2.
    #[cfg(feature = "flex")]
    #[test]
    fn the_training_node_matches_burns_autodiff() {
        // Both ways of running the backward pass: intermediate values kept (the default) and
        // recomputed (gradient checkpointing).
        for (d, ln, bias, heads, (h, w)) in [
            (
                device().autodiff(),
                LayerNormType::WithBias,
                false,
                1,
                (9, 13),
            ),
            (
                device().autodiff(),
                LayerNormType::BiasFree,
                true,
                2,
                (16, 7),
            ),
            (
                device().autodiff().gradient_checkpointing(),
                LayerNormType::WithBias,
                true,
                4,
                (5, 5),
            ),
            (
                device().autodiff().gradient_checkpointing(),
                LayerNormType::BiasFree,
                false,
                2,
                (8, 3),
            ),
        ] {
            let cfg = TransformerBlockConfig::new(8, heads)
                .with_bias(bias)
                .with_layer_norm(ln);
            let mut tb = cfg.init(&d);
            // non-trivial LayerNorm, temperature and bias values
            let rnd = |p: &Param<Tensor<1>>| {
                Param::from_tensor(
                    Tensor::<1>::random(p.dims(), Distribution::Normal(1.0, 0.3), &d)
                        .require_grad(),
                )
            };
            tb.norm1.body.weight = rnd(&tb.norm1.body.weight);
            tb.norm2.body.weight = rnd(&tb.norm2.body.weight);
            if let Some(b) = &tb.norm1.body.bias {
                tb.norm1.body.bias = Some(rnd(b));
            }
            tb.attn.temperature = Param::from_tensor(
                Tensor::<3>::random([heads, 1, 1], Distribution::Normal(1.5, 0.5), &d)
                    .require_grad(),
            );
            if let Some(b) = &tb.ffn.dwconv.bias {
                tb.ffn.dwconv.bias = Some(rnd(b));
            }
            let x = Tensor::<4>::random([2, 8, h, w], Distribution::Normal(0.0, 1.0), &d)
                .require_grad();
            let target = Tensor::<4>::random([2, 8, h, w], Distribution::Normal(0.0, 1.0), &d);
            let loss = |y: Tensor<4>| (y * target.clone()).sum();
            assert_eq!(crate::cpu::route(&x), crate::cpu::Route::Train);
            let ours = tb.forward(x.clone());
            let reference = tb.forward_ops(x.clone());
            assert!(max_abs_diff(ours.clone().inner(), reference.clone().inner()) < 1e-4);
            let g1 = loss(ours).backward();
            let g2 = loss(reference).backward();
            let close = |a: Option<Tensor<4>>, b: Option<Tensor<4>>, what: &str| {
                let (a, b) = (a.expect(what), b.expect(what));
                let scale = b.clone().abs().max().into_scalar::<f32>().max(1.0);
                let diff = max_abs_diff(a, b) / scale;
                assert!(
                    diff < 2e-4,
                    "{what}: {diff} ({ln:?}, bias {bias}, heads {heads})"
                );
            };
            close(x.grad(&g1), x.grad(&g2), "dx");
            let grads1 = GradientsParams::from_grads(g1, &tb);
            let grads2 = GradientsParams::from_grads(g2, &tb);
            let mut checked = 0;
            tb.visit(&mut ParamCompare {
                a: &grads1,
                b: &grads2,
                checked: &mut checked,
            });
            let expected =
                11 + if bias { 6 } else { 0 } - if ln == LayerNormType::BiasFree { 2 } else { 0 };
            assert_eq!(checked, expected, "parameters compared");
            let _ = tb.valid();
        }
    }

    /// Compares the gradients of every parameter in two gradient sets.
    #[cfg(feature = "flex")]
    struct ParamCompare<'a> {
        a: &'a GradientsParams,
        b: &'a GradientsParams,
        checked: &'a mut usize,
    }

    #[cfg(feature = "flex")]
    impl burn::module::ModuleVisitor for ParamCompare<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let (Some(a), Some(b)) = (self.a.get::<D>(param.id), self.b.get::<D>(param.id)) else {
                panic!("no gradient for a parameter of shape {:?}", param.dims());
            };
            let scale = b.clone().abs().max().into_scalar::<f32>().max(1.0);
            let diff = max_abs_diff(a, b) / scale;
            assert!(diff < 2e-4, "parameter {:?}: {diff}", param.dims());
            *self.checked += 1;
        }
    }

    /// The fused CPU path (one residual buffer, fused kernels) against burn's operations.
    #[test]
    fn the_cpu_path_equals_burns_ops() {
        let d = device();
        let tb = TransformerBlockConfig::new(12, 3).with_bias(true).init(&d);
        let x = Tensor::<4>::random([2, 12, 37, 29], Distribution::Normal(0.0, 1.0), &d);
        assert!(max_abs_diff(tb.forward(x.clone()), tb.forward_ops(x)) < 1e-4);
    }

    #[test]
    fn zero_output_projections_make_it_the_identity() {
        let d = device();
        let mut tb = TransformerBlockConfig::new(8, 2).init(&d);
        let zero = |w: &Param<Tensor<4>>| Param::from_tensor(w.val().zeros_like());
        tb.attn.project_out.weight = zero(&tb.attn.project_out.weight);
        tb.ffn.project_out.weight = zero(&tb.ffn.project_out.weight);
        let x = Tensor::<4>::random([2, 8, 5, 7], Distribution::Normal(0.0, 1.0), &d);
        assert_eq!(max_abs_diff(tb.forward(x.clone()), x), 0.0);
    }
}
