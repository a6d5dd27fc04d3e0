//! Training through the engine's kernels: operations that burn's autodiff records as one node
//! each, with a backward pass of the crate's own ([`super::block`]), registered through burn's
//! backend-extension API for the flex backend.
//!
//! A transformer block is one node: its forward pass runs the kernels and the node keeps only
//! the block's input and parameters; its backward pass recomputes the intermediate values and
//! returns the gradients of the input and of all parameters at once. A dense 3×3 convolution
//! (patch embedding, down- and upsampling, output) or 1×1 convolution outside the blocks
//! (channel reductions, prompt fusion) is one node too, keeping its input and kernels
//! ([`super::conv::conv3x3_backward`], [`super::conv::pointwise_backward`]).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, NodeGuard, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, ExtensionType, Flex, backend_extension};
use burn::prelude::*;
use burn::tensor::TensorData;

use std::sync::{Arc, Mutex};

use super::block::{BlockGrads, BlockParams, BlockShape, Stash, block_backward, block_forward};
use super::conv::{conv3x3_backward, conv3x3_raw, pointwise_backward, pointwise_raw};

/// The sizes and options of a block node.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct BlockSpec {
    pub shape: BlockShape,
    /// Whether the LayerNorms are WithBias (their bias inputs are used).
    pub norm_bias: bool,
    /// Whether the convolutions have biases (their bias inputs are used).
    pub conv_bias: bool,
}

/// A block's input and parameters (absent biases as any tensor: they are not read).
#[derive(ExtensionType)]
pub(crate) struct BlockInputs<B: Backend> {
    pub x: FloatTensor<B>,
    pub norm1_w: FloatTensor<B>,
    pub norm1_b: FloatTensor<B>,
    pub qkv_w: FloatTensor<B>,
    pub qkv_b: FloatTensor<B>,
    pub qkv_dw_w: FloatTensor<B>,
    pub qkv_dw_b: FloatTensor<B>,
    pub temperature: FloatTensor<B>,
    pub attn_out_w: FloatTensor<B>,
    pub attn_out_b: FloatTensor<B>,
    pub norm2_w: FloatTensor<B>,
    pub norm2_b: FloatTensor<B>,
    pub ffn_in_w: FloatTensor<B>,
    pub ffn_in_b: FloatTensor<B>,
    pub ffn_dw_w: FloatTensor<B>,
    pub ffn_dw_b: FloatTensor<B>,
    pub ffn_out_w: FloatTensor<B>,
    pub ffn_out_b: FloatTensor<B>,
}

const INPUTS: usize = 18;

impl<B: Backend> BlockInputs<B> {
    fn into_array(self) -> [FloatTensor<B>; INPUTS] {
        [
            self.x,
            self.norm1_w,
            self.norm1_b,
            self.qkv_w,
            self.qkv_b,
            self.qkv_dw_w,
            self.qkv_dw_b,
            self.temperature,
            self.attn_out_w,
            self.attn_out_b,
            self.norm2_w,
            self.norm2_b,
            self.ffn_in_w,
            self.ffn_in_b,
            self.ffn_dw_w,
            self.ffn_dw_b,
            self.ffn_out_w,
            self.ffn_out_b,
        ]
    }

    fn from_array(a: [FloatTensor<B>; INPUTS]) -> Self {
        let [
            x,
            norm1_w,
            norm1_b,
            qkv_w,
            qkv_b,
            qkv_dw_w,
            qkv_dw_b,
            temperature,
            attn_out_w,
            attn_out_b,
            norm2_w,
            norm2_b,
            ffn_in_w,
            ffn_in_b,
            ffn_dw_w,
            ffn_dw_b,
            ffn_out_w,
            ffn_out_b,
        ] = a;
        BlockInputs {
            x,
            norm1_w,
            norm1_b,
            qkv_w,
            qkv_b,
            qkv_dw_w,
            qkv_dw_b,
            temperature,
            attn_out_w,
            attn_out_b,
            norm2_w,
            norm2_b,
            ffn_in_w,
            ffn_in_b,
            ffn_dw_w,
            ffn_dw_b,
            ffn_out_w,
            ffn_out_b,
        }
    }
}

/// The operations the engine runs for training.
#[backend_extension(Flex, Autodiff)]
pub(crate) trait TrainKernels: Backend {
    /// A transformer block ([`super::block`]); `x: [B, C, H, W]`.
    fn transformer_block(
        #[extension_type] inputs: BlockInputs<Self>,
        spec: BlockSpec,
    ) -> FloatTensor<Self>;

    /// A dense 3×3 convolution with zero padding 1 ([`super::conv::conv3x3_raw`]) or a 1×1
    /// convolution ([`super::conv::pointwise_raw`]); `x: [B, C_in, H, W]`, kernels `[C_out,
    /// C_in, k, k]`, biases `[C_out]` (read only when the spec says so).
    fn conv(#[extension_type] inputs: ConvInputs<Self>, spec: ConvSpec) -> FloatTensor<Self>;
}

/// What a convolution node computes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ConvSpec {
    /// A 1×1 convolution; else a dense 3×3 one with zero padding 1.
    pub pointwise: bool,
    /// Whether the biases input is used.
    pub bias: bool,
}

/// A convolution's input, kernels and biases (any tensor when it has none).
#[derive(ExtensionType)]
pub(crate) struct ConvInputs<B: Backend> {
    pub x: FloatTensor<B>,
    pub weight: FloatTensor<B>,
    pub bias: FloatTensor<B>,
}

/// A contiguous `f32` copy-free view of a flex tensor's values (a copy when it is strided).
fn values(t: &FlexTensor) -> std::borrow::Cow<'_, [f32]> {
    match t.as_slice::<f32>() {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(
            t.to_contiguous()
                .as_slice::<f32>()
                .expect("contiguous f32")
                .to_vec(),
        ),
    }
}

fn flex(v: Vec<f32>, shape: Vec<usize>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(v, shape))
}

/// Runs `f` on the block's parameters as slices.
fn with_params<R>(
    t: &[FlexTensor; INPUTS],
    spec: BlockSpec,
    f: impl FnOnce(&[f32], BlockParams<'_>) -> R,
) -> R {
    let v: Vec<std::borrow::Cow<'_, [f32]>> = t.iter().map(values).collect();
    let (nb, cb) = (spec.norm_bias, spec.conv_bias);
    let opt = |used: bool, i: usize| used.then_some(&v[i][..]);
    let p = BlockParams {
        norm1_w: &v[1],
        norm1_b: opt(nb, 2),
        qkv_w: &v[3],
        qkv_b: opt(cb, 4),
        qkv_dw_w: &v[5],
        qkv_dw_b: opt(cb, 6),
        temperature: &v[7],
        attn_out_w: &v[8],
        attn_out_b: opt(cb, 9),
        norm2_w: &v[10],
        norm2_b: opt(nb, 11),
        ffn_in_w: &v[12],
        ffn_in_b: opt(cb, 13),
        ffn_dw_w: &v[14],
        ffn_dw_b: opt(cb, 15),
        ffn_out_w: &v[16],
        ffn_out_b: opt(cb, 17),
    };
    f(&v[0], p)
}

fn dims4(t: &FlexTensor) -> [usize; 4] {
    let s = t.layout().shape();
    [s[0], s[1], s[2], s[3]]
}

fn forward_flex(
    t: &[FlexTensor; INPUTS],
    spec: BlockSpec,
    keep: bool,
) -> (FlexTensor, Option<Stash>) {
    let [b, c, h, w] = dims4(&t[0]);
    let (out, stash) = with_params(t, spec, |x, p| {
        block_forward(&p, spec.shape, x, b, (h, w), keep)
    });
    (flex(out, vec![b, c, h, w]), stash)
}

impl TrainKernels for Flex {
    fn transformer_block(inputs: BlockInputs<Self>, spec: BlockSpec) -> FloatTensor<Self> {
        forward_flex(&inputs.into_array(), spec, false).0
    }

    fn conv(inputs: ConvInputs<Self>, spec: ConvSpec) -> FloatTensor<Self> {
        conv_flex(&[inputs.x, inputs.weight, inputs.bias], spec)
    }
}

fn conv_flex(t: &[FlexTensor; 3], spec: ConvSpec) -> FlexTensor {
    let [b, c_in, h, w] = dims4(&t[0]);
    let c_out = t[1].layout().shape()[0];
    let (x, k) = (values(&t[0]), values(&t[1]));
    let bias = spec.bias.then(|| values(&t[2]));
    let out = if spec.pointwise {
        pointwise_raw(&k, bias.as_deref(), (c_out, c_in), &x, b, h * w)
    } else {
        conv3x3_raw(&k, bias.as_deref(), (c_out, c_in), &x, b, (h, w))
    };
    flex(out, vec![b, c_out, h, w])
}

#[derive(Debug)]
struct ConvBackward;

impl Backward<Flex, 3> for ConvBackward {
    type State = ([FlexTensor; 3], ConvSpec);

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let dout = grads.consume::<Flex>(&ops.node);
        let (t, spec) = ops.state;
        let [b, c_in, h, w] = dims4(&t[0]);
        let kernel = t[1].layout().shape().to_vec();
        let c_out = kernel[0];
        let [px, pk, pb] = &ops.parents;
        let (k, x, dy) = (values(&t[1]), values(&t[0]), values(&dout));
        let (dx, dk, db) = if spec.pointwise {
            pointwise_backward(&k, (c_out, c_in), &x, &dy, b, h * w, px.is_some())
        } else {
            conv3x3_backward(&k, (c_out, c_in), &x, &dy, b, (h, w), px.is_some())
        };
        if let (Some(node), Some(dx)) = (px, dx) {
            grads.register::<Flex>(node.id, flex(dx, vec![b, c_in, h, w]));
        }
        if let Some(node) = pk {
            grads.register::<Flex>(node.id, flex(dk, kernel));
        }
        if let Some(node) = pb
            && spec.bias
        {
            grads.register::<Flex>(node.id, flex(db, vec![c_out]));
        }
    }
}

/// The intermediate values a node keeps for its backward pass (taken once, by it).
#[derive(Debug, Clone)]
struct Kept(Arc<Mutex<Option<Stash>>>);

#[derive(Debug)]
struct BlockBackward;

impl Backward<Flex, INPUTS> for BlockBackward {
    type State = ([FlexTensor; INPUTS], BlockSpec, Option<Kept>);

    fn backward(
        self,
        ops: Ops<Self::State, INPUTS>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let dout = grads.consume::<Flex>(&ops.node);
        let (t, spec, kept) = ops.state;
        let stash = kept.and_then(|k| k.0.lock().ok().and_then(|mut s| s.take()));
        let [b, _, h, w] = dims4(&t[0]);
        let g: BlockGrads = with_params(&t, spec, |x, p| {
            block_backward(&p, spec.shape, x, &values(&dout), b, (h, w), stash)
        });
        let list = [
            g.x,
            g.norm1_w,
            g.norm1_b,
            g.qkv_w,
            g.qkv_b,
            g.qkv_dw_w,
            g.qkv_dw_b,
            g.temperature,
            g.attn_out_w,
            g.attn_out_b,
            g.norm2_w,
            g.norm2_b,
            g.ffn_in_w,
            g.ffn_in_b,
            g.ffn_dw_w,
            g.ffn_dw_b,
            g.ffn_out_w,
            g.ffn_out_b,
        ];
        let used = |i: usize| match i {
            2 | 11 => spec.norm_bias,
            4 | 6 | 9 | 13 | 15 | 17 => spec.conv_bias,
            _ => true,
        };
        for (i, ((parent, grad), tensor)) in ops.parents.iter().zip(list).zip(&t).enumerate() {
            if let Some(node) = parent
                && used(i)
            {
                let shape = tensor.layout().shape().to_vec();
                grads.register::<Flex>(node.id, flex(grad, shape));
            }
        }
    }
}

/// Under gradient checkpointing (`Device::gradient_checkpointing`, burn's `Balanced`
/// strategy) a node keeps only its inputs and recomputes its intermediate values in the
/// backward pass; otherwise it keeps them ([`Stash`]): less computation, more memory.
impl<C: CheckpointStrategy> TrainKernels for Autodiff<Flex, C> {
    fn transformer_block(inputs: BlockInputs<Self>, spec: BlockSpec) -> FloatTensor<Self> {
        use burn::backend::autodiff::checkpoint::strategy::BalancedCheckpointing;
        let recompute =
            std::any::TypeId::of::<C>() == std::any::TypeId::of::<BalancedCheckpointing>();
        let a = inputs.into_array();
        let nodes: [NodeGuard; INPUTS] = std::array::from_fn(|i| a[i].node());
        match BlockBackward.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let prims: [FlexTensor; INPUTS] = std::array::from_fn(|i| a[i].primitive().clone());
                let (out, stash) = forward_flex(&prims, spec, !recompute);
                let kept = stash.map(|s| Kept(Arc::new(Mutex::new(Some(s)))));
                prep.finish((prims, spec, kept), out)
            }
            OpsKind::UnTracked(prep) => {
                let prims = a.map(|t| t.into_primitive());
                prep.finish(forward_flex(&prims, spec, false).0)
            }
        }
    }

    fn conv(inputs: ConvInputs<Self>, spec: ConvSpec) -> FloatTensor<Self> {
        let a = [inputs.x, inputs.weight, inputs.bias];
        let nodes: [NodeGuard; 3] = std::array::from_fn(|i| a[i].node());
        match ConvBackward.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let prims: [FlexTensor; 3] = std::array::from_fn(|i| a[i].primitive().clone());
                let out = conv_flex(&prims, spec);
                prep.finish((prims, spec), out)
            }
            OpsKind::UnTracked(prep) => {
                let prims = a.map(|t| t.into_primitive());
                prep.finish(conv_flex(&prims, spec))
            }
        }
    }
}

/// A dense 3×3 (`pointwise` false; `super::is_dense_3x3`) or 1×1 (`super::is_pointwise`)
/// convolution through its node, for `x` on a flex autodiff device.
pub(crate) fn conv(x: Tensor<4>, conv: &burn::nn::conv::Conv2d, pointwise: bool) -> Tensor<4> {
    let device = x.device();
    let bias = conv.bias.as_ref();
    let inputs = ConvInputs {
        x: x.into_dispatch(),
        weight: conv.weight.val().into_dispatch(),
        bias: bias.map_or_else(
            || Tensor::<1>::zeros([1], &device).into_dispatch(),
            |b| b.val().into_dispatch(),
        ),
    };
    let spec = ConvSpec {
        pointwise,
        bias: bias.is_some(),
    };
    Tensor::from_dispatch(<Dispatch as TrainKernels>::conv(inputs, spec))
}

/// A tensor of any rank as an input of a node.
pub(crate) type Input = FloatTensor<Dispatch>;

/// The block through its node, for `x` on a flex autodiff device; `params` (tensors made
/// inputs with `Tensor::into_dispatch`) in the order of [`BlockInputs`] after `x`, absent
/// biases as any tensor on the device.
pub(crate) fn transformer_block(
    x: Tensor<4>,
    params: [Input; INPUTS - 1],
    spec: BlockSpec,
) -> Tensor<4> {
    let mut rest = params.into_iter();
    let arr: [Input; INPUTS] = std::array::from_fn(|i| {
        if i == 0 {
            x.clone().into_dispatch()
        } else {
            rest.next().expect("INPUTS - 1 parameters")
        }
    });
    let out = <Dispatch as TrainKernels>::transformer_block(BlockInputs::from_array(arr), spec);
    Tensor::from_dispatch(out)
}
