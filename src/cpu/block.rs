//! Restormer's transformer block as one forward and one backward function on buffers, for
//! training: `x1 = x + MDTA(LN1(x))`, `out = x1 + GDFN(LN2(x1))`.
//!
//! The backward pass recomputes the block's intermediate values from its input (so training
//! stores one tensor per block, its input, instead of every intermediate one) and then runs
//! the hand-derived gradient of every stage ([`super::conv`], [`super::norm`],
//! [`super::attention`]) in reverse order.

use super::attention::{attention_backward, attention_maps, fold};
use super::conv::{
    depthwise_backward, depthwise_into, gate, gate_backward, pointwise_backward, pointwise_raw,
};
use super::engine::{Weights, matmul_items};
use super::norm::{layer_norm, layer_norm_backward};

/// The sizes of a block.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct BlockShape {
    /// Channels in and out.
    pub c: usize,
    /// Attention heads.
    pub heads: usize,
    /// GDFN hidden width (the depthwise convolution has twice as many channels).
    pub hidden: usize,
    /// LayerNorm epsilon.
    pub epsilon: f32,
}

/// A block's parameters as `f32` slices in PyTorch's layouts (`[C_out, C_in]` for 1×1
/// kernels, `[C, 9]` for depthwise ones). `None` biases are absent (zero).
#[derive(Debug, Clone, Copy)]
pub(crate) struct BlockParams<'a> {
    pub norm1_w: &'a [f32],
    /// WithBias LayerNorm: its bias; BiasFree: `None`.
    pub norm1_b: Option<&'a [f32]>,
    pub qkv_w: &'a [f32],
    pub qkv_b: Option<&'a [f32]>,
    pub qkv_dw_w: &'a [f32],
    pub qkv_dw_b: Option<&'a [f32]>,
    pub temperature: &'a [f32],
    pub attn_out_w: &'a [f32],
    pub attn_out_b: Option<&'a [f32]>,
    pub norm2_w: &'a [f32],
    pub norm2_b: Option<&'a [f32]>,
    pub ffn_in_w: &'a [f32],
    pub ffn_in_b: Option<&'a [f32]>,
    pub ffn_dw_w: &'a [f32],
    pub ffn_dw_b: Option<&'a [f32]>,
    pub ffn_out_w: &'a [f32],
    pub ffn_out_b: Option<&'a [f32]>,
}

/// The gradients of a block's input and parameters, in the order and layouts of
/// [`BlockParams`] (bias gradients are computed for every bias, present or not).
#[derive(Debug, Clone)]
pub(crate) struct BlockGrads {
    pub x: Vec<f32>,
    pub norm1_w: Vec<f32>,
    pub norm1_b: Vec<f32>,
    pub qkv_w: Vec<f32>,
    pub qkv_b: Vec<f32>,
    pub qkv_dw_w: Vec<f32>,
    pub qkv_dw_b: Vec<f32>,
    pub temperature: Vec<f32>,
    pub attn_out_w: Vec<f32>,
    pub attn_out_b: Vec<f32>,
    pub norm2_w: Vec<f32>,
    pub norm2_b: Vec<f32>,
    pub ffn_in_w: Vec<f32>,
    pub ffn_in_b: Vec<f32>,
    pub ffn_dw_w: Vec<f32>,
    pub ffn_dw_b: Vec<f32>,
    pub ffn_out_w: Vec<f32>,
    pub ffn_out_b: Vec<f32>,
}

/// The attention half's intermediate values.
pub(crate) struct AttentionPass {
    y1: Vec<f32>,
    /// `qkv` before its depthwise convolution.
    t: Vec<f32>,
    /// `qkv` after it (`q`, `k`, `v`).
    u: Vec<f32>,
    maps: Vec<super::attention::Maps>,
    x1: Vec<f32>,
}

/// The feed-forward half's intermediate values.
pub(crate) struct FeedForwardPass {
    y2: Vec<f32>,
    /// `project_in`'s output.
    h: Vec<f32>,
    /// The depthwise convolution's output.
    g: Vec<f32>,
    /// The gate's output.
    z: Vec<f32>,
}

fn attention_pass(
    p: &BlockParams<'_>,
    s: BlockShape,
    x: &[f32],
    b: usize,
    hw: (usize, usize),
) -> AttentionPass {
    let BlockShape {
        c, heads, epsilon, ..
    } = s;
    let n = hw.0 * hw.1;
    let y1 = layer_norm(x, b, c, n, p.norm1_w, p.norm1_b, epsilon);
    let t = pointwise_raw(p.qkv_w, p.qkv_b, (3 * c, c), &y1, b, n);
    let u = depthwise_into(p.qkv_dw_w, p.qkv_dw_b, &t, b, hw);
    let maps: Vec<_> = (0..b)
        .map(|i| {
            attention_maps(
                &u[i * 3 * c * n..(i + 1) * 3 * c * n],
                c,
                heads,
                n,
                p.temperature,
            )
        })
        .collect();
    let mut x1 = x.to_vec();
    for (i, m) in maps.iter().enumerate() {
        let mixing = fold(p.attn_out_w, &m.attn, c, heads);
        matmul_items(
            Weights::new(&mixing, p.attn_out_b, c, c),
            &u[(i * 3 + 2) * c * n..],
            0,
            &mut x1[i * c * n..(i + 1) * c * n],
            0,
            1,
            n,
            true,
        );
    }
    AttentionPass { y1, t, u, maps, x1 }
}

fn feed_forward_pass(
    p: &BlockParams<'_>,
    s: BlockShape,
    x1: &[f32],
    b: usize,
    hw: (usize, usize),
) -> FeedForwardPass {
    let BlockShape {
        c, hidden, epsilon, ..
    } = s;
    let n = hw.0 * hw.1;
    let y2 = layer_norm(x1, b, c, n, p.norm2_w, p.norm2_b, epsilon);
    let h = pointwise_raw(p.ffn_in_w, p.ffn_in_b, (2 * hidden, c), &y2, b, n);
    let g = depthwise_into(p.ffn_dw_w, p.ffn_dw_b, &h, b, hw);
    let z = gate(&g, b, hidden, n);
    FeedForwardPass { y2, h, g, z }
}

/// A block's intermediate values, kept from the forward pass for the backward pass (the
/// alternative to recomputing them: faster, and as much memory as the intermediate values).
pub(crate) struct Stash {
    att: AttentionPass,
    ffn: FeedForwardPass,
}

impl std::fmt::Debug for Stash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let values = self.att.y1.len()
            + self.att.t.len()
            + self.att.u.len()
            + self.att.x1.len()
            + self.ffn.y2.len()
            + self.ffn.h.len()
            + self.ffn.g.len()
            + self.ffn.z.len();
        write!(f, "Stash({values} values)")
    }
}

/// The block's output for `x: [B, C, H, W]` (`hw = (H, W)`), and its intermediate values
/// when `keep` (see [`Stash`]).
pub(crate) fn block_forward(
    p: &BlockParams<'_>,
    s: BlockShape,
    x: &[f32],
    b: usize,
    hw: (usize, usize),
    keep: bool,
) -> (Vec<f32>, Option<Stash>) {
    let n = hw.0 * hw.1;
    let att = attention_pass(p, s, x, b, hw);
    let ffn = feed_forward_pass(p, s, &att.x1, b, hw);
    let mut out = att.x1.clone();
    matmul_items(
        Weights::new(p.ffn_out_w, p.ffn_out_b, s.c, s.hidden),
        &ffn.z,
        s.hidden * n,
        &mut out,
        s.c * n,
        b,
        n,
        true,
    );
    (out, keep.then_some(Stash { att, ffn }))
}

/// The gradients of the block's input and parameters given its input `x` and the gradient
/// `dout` of its output; the intermediate values come from `stash`, or are recomputed.
pub(crate) fn block_backward(
    p: &BlockParams<'_>,
    s: BlockShape,
    x: &[f32],
    dout: &[f32],
    b: usize,
    hw: (usize, usize),
    stash: Option<Stash>,
) -> BlockGrads {
    let BlockShape {
        c,
        heads,
        hidden,
        epsilon,
    } = s;
    let n = hw.0 * hw.1;
    assert_eq!(x.len(), b * c * n, "block_backward: input size");
    assert_eq!(dout.len(), x.len(), "block_backward: gradient size");
    let Stash { att, ffn } = match stash {
        Some(st) => st,
        None => {
            let att = attention_pass(p, s, x, b, hw);
            let ffn = feed_forward_pass(p, s, &att.x1, b, hw);
            Stash { att, ffn }
        }
    };

    // out = x1 + W_out·z + b
    let (dz, ffn_out_w, ffn_out_b) =
        pointwise_backward(p.ffn_out_w, (c, hidden), &ffn.z, dout, b, n, true);
    let dz = dz.expect("asked for");
    drop(ffn.z);
    let dg = gate_backward(&ffn.g, &dz, b, hidden, n);
    drop((dz, ffn.g));
    let (dh, ffn_dw_w, ffn_dw_b) = depthwise_backward(p.ffn_dw_w, &ffn.h, &dg, b, hw);
    drop((dg, ffn.h));
    let (dy2, ffn_in_w, ffn_in_b) =
        pointwise_backward(p.ffn_in_w, (2 * hidden, c), &ffn.y2, &dh, b, n, true);
    drop((dh, ffn.y2));
    let (dln2, norm2_w, norm2_b) = layer_norm_backward(
        &att.x1,
        &dy2.expect("asked for"),
        (b, c, n),
        p.norm2_w,
        p.norm2_b.is_some(),
        epsilon,
    );
    // dx1 = dout + LN2's share
    let mut dx1 = dln2;
    dx1.iter_mut().zip(dout).for_each(|(d, g)| *d += g);
    drop(att.x1);

    // x1 = x + M·v + b
    let mut du = Vec::with_capacity(b * 3 * c * n);
    let mut attn_out_w = vec![0.0f32; c * c];
    let mut temperature = vec![0.0f32; heads];
    for (i, maps) in att.maps.iter().enumerate() {
        let g = attention_backward(
            &att.u[i * 3 * c * n..(i + 1) * 3 * c * n],
            maps,
            p.attn_out_w,
            p.temperature,
            &dx1[i * c * n..(i + 1) * c * n],
            (c, heads, n),
        );
        du.extend_from_slice(&g.dqkv);
        attn_out_w
            .iter_mut()
            .zip(&g.dw_out)
            .for_each(|(a, d)| *a += d);
        temperature
            .iter_mut()
            .zip(&g.dtemperature)
            .for_each(|(a, d)| *a += d);
    }
    let attn_out_b = super::engine::row_sums(&dx1, c, n, b);
    drop(att.u);
    let (dt, qkv_dw_w, qkv_dw_b) = depthwise_backward(p.qkv_dw_w, &att.t, &du, b, hw);
    drop((du, att.t));
    let (dy1, qkv_w, qkv_b) = pointwise_backward(p.qkv_w, (3 * c, c), &att.y1, &dt, b, n, true);
    drop((dt, att.y1));
    let (dln1, norm1_w, norm1_b) = layer_norm_backward(
        x,
        &dy1.expect("asked for"),
        (b, c, n),
        p.norm1_w,
        p.norm1_b.is_some(),
        epsilon,
    );
    let mut dx = dln1;
    dx.iter_mut().zip(&dx1).for_each(|(d, g)| *d += g);
    BlockGrads {
        x: dx,
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
