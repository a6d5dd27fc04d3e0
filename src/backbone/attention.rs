//! MDTA: Restormer's multi-Dconv-head transposed attention.

use burn::module::Param;
use burn::nn::conv::Conv2d;
use burn::prelude::*;
use burn::tensor::activation::softmax;

use super::{conv, depthwise3x3};
use crate::model::{TileConfig, blend_windows};

/// Configuration of an [`Attention`] block.
#[derive(Config, Debug)]
pub struct AttentionConfig {
    /// Channels in and out.
    pub dim: usize,
    /// Number of heads; must divide `dim`.
    pub heads: usize,
    /// Whether the convolutions have biases (PromptIR: false).
    #[config(default = false)]
    pub bias: bool,
}

/// Attention across channels: per head, a `(C/heads)×(C/heads)` attention map computed from
/// L2-normalised queries and keys over all pixels, scaled by a learned temperature.
#[derive(Module, Debug)]
pub struct Attention {
    /// Learned scale of the attention logits, one per head. Shape `[heads, 1, 1]`.
    pub temperature: Param<Tensor<3>>,
    /// 1×1 convolution `C → 3C`.
    pub qkv: Conv2d,
    /// Depthwise 3×3 convolution over the `3C` channels.
    pub qkv_dwconv: Conv2d,
    /// 1×1 convolution `C → C`.
    pub project_out: Conv2d,
    heads: usize,
    /// Local windows for the attention maps at inference (see [`Attention::set_local`]).
    #[module(skip)]
    local: Option<TileConfig>,
}

impl AttentionConfig {
    /// Builds the block (temperature initialised to ones, as in PyTorch).
    pub fn init(&self, device: &Device) -> Attention {
        assert!(
            self.heads > 0 && self.dim.is_multiple_of(self.heads),
            "attention heads ({}) must divide the channel count ({})",
            self.heads,
            self.dim
        );
        Attention {
            temperature: Param::from_tensor(Tensor::ones([self.heads, 1, 1], device)),
            qkv: conv(self.dim, self.dim * 3, 1, self.bias, device),
            qkv_dwconv: depthwise3x3(self.dim * 3, self.bias, device),
            project_out: conv(self.dim, self.dim, 1, self.bias, device),
            heads: self.heads,
            local: None,
        }
    }
}

/// `F.normalize(x, dim=-1)`: divides by the L2 norm along the last axis, at least 1e-12.
pub(crate) fn l2_normalize_last<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let norm = x.clone().square().sum_dim(D - 1).sqrt().clamp_min(1e-12);
    x / norm
}

impl Attention {
    /// The number of heads.
    pub fn heads(&self) -> usize {
        self.heads
    }

    /// Computes the attention maps in local windows of `window.tile` pixels (sharing
    /// `window.overlap`) instead of over the whole input, on inputs larger than a window;
    /// `None` (the default) restores global attention. Each window's output is its maps
    /// applied to its values, and the windows are cross-faded over their overlaps as tiles are.
    ///
    /// This is TLC's local attention (Chu et al., "Improving Image Restoration by Revisiting
    /// Global Information Aggregation", ECCV 2022): a network trained on crops of one size
    /// sees attention statistics of that size at inference, without restoring in tiles.
    pub fn set_local(&mut self, window: Option<TileConfig>) {
        self.local = window;
    }

    /// The local window in use (see [`Attention::set_local`]).
    pub fn local(&self) -> Option<TileConfig> {
        self.local
    }

    /// The local window, when an `h × w` input is larger than it.
    pub(crate) fn local_for(&self, h: usize, w: usize) -> Option<TileConfig> {
        self.local.filter(|t| h > t.tile || w > t.tile)
    }

    /// # Shapes
    /// - input `[B, C, H, W]`
    /// - output `[B, C, H, W]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        if crate::cpu::route(&x) == crate::cpu::Route::Kernels {
            let c = x.dims()[1];
            return crate::cpu::map_tensor(x, c, |x, b, h, w| {
                crate::cpu::fresh(|out| self.apply_cpu(x, b, h, w, out))
            });
        }
        self.forward_ops(x)
    }

    /// The block on plain `f32` buffers (see [`crate::cpu`]): `x: [B, C, H·W]` in, the
    /// result written to or added to `out`.
    pub(crate) fn apply_cpu(
        &self,
        x: Vec<f32>,
        b: usize,
        h: usize,
        w: usize,
        out: crate::cpu::Out<'_>,
    ) {
        use crate::cpu;
        let n = h * w;
        let c = self.project_out.weight.dims()[0];
        let mut qkv = Vec::new();
        cpu::pointwise(&self.qkv, &x, b, n, cpu::Out::Fresh(&mut qkv));
        drop(x);
        cpu::depthwise3x3(&self.qkv_dwconv, &mut qkv, b, h, w);
        let temperature = cpu::into_vec(self.temperature.val());
        let w_out = cpu::into_vec(self.project_out.weight.val());
        let bias = self
            .project_out
            .bias
            .as_ref()
            .map(|b| cpu::into_vec(b.val()));
        if let Some(window) = self.local_for(h, w) {
            let dst: &mut [f32] = match out {
                cpu::Out::Fresh(v) => {
                    *v = vec![0.0; b * c * n];
                    v
                }
                cpu::Out::Add(v) => v,
            };
            for (item, dst) in qkv.chunks(3 * c * n).zip(dst.chunks_mut(c * n)) {
                cpu::local_attention(
                    item,
                    (c, self.heads),
                    (h, w),
                    window,
                    &temperature,
                    &w_out,
                    dst,
                );
                if let Some(bias) = &bias {
                    for (plane, &b) in dst.chunks_mut(n).zip(bias) {
                        plane.iter_mut().for_each(|v| *v += b);
                    }
                }
            }
            return;
        }
        let mixing = |i: usize| {
            let item = &qkv[i * 3 * c * n..(i + 1) * 3 * c * n];
            std::borrow::Cow::Owned(cpu::channel_attention(
                item,
                c,
                self.heads,
                n,
                &temperature,
                &w_out,
            ))
        };
        // out = M_i · V_i + bias, V_i the last third of item i's qkv.
        let values = cpu::Columns {
            data: &qkv[2 * c * n..],
            items: b,
            stride: 3 * c * n,
            n,
        };
        cpu::batched_matmul(mixing, bias.as_deref(), c, c, values, out);
    }

    /// The block with burn's tensor operations (every backend, autodiff).
    fn forward_ops(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, c, h, w] = x.dims();
        let qkv = self.qkv_dwconv.forward(self.qkv.forward(x));
        let out = match self.local_for(h, w) {
            None => self.attend(qkv),
            Some(window) => blend_windows(&qkv, c, window, |part| self.attend(part)),
        };
        match &self.project_out.bias {
            Some(bias) => out + bias.val().reshape([1, c, 1, 1]),
            None => out,
        }
    }

    /// MDTA's attention on `qkv: [B, 3C, H, W]` (after the depthwise convolution), with the
    /// output projection and without its bias: `[B, C, H, W]`.
    fn attend(&self, qkv: Tensor<4>) -> Tensor<4> {
        let [b, c3, h, w] = qkv.dims();
        let c = c3 / 3;
        let mut parts = qkv.chunk(3, 1).into_iter();
        let hd = c / self.heads;
        let mut heads = || parts.next().unwrap().reshape([b, self.heads, hd, h * w]);
        let (q, k, v) = (heads(), heads(), heads());
        // (q/|q|)·(k/|k|)ᵀ computed as (q·kᵀ) / (|q|·|k|ᵀ): the same logits, but the division
        // acts on the small [B, heads, hd, hd] matrix instead of two full-size tensors.
        let norm = |t: &Tensor<4>| t.clone().square().sum_dim(3).sqrt().clamp_min(1e-12);
        let scale = norm(&q) * norm(&k).swap_dims(2, 3);
        let logits = q.matmul(k.swap_dims(2, 3)) / scale * self.temperature.val().unsqueeze::<4>();
        let attn = softmax(logits, 3);
        // project_out(attn · v) computed as (W_out · blockdiag(attn_1 … attn_heads)) · v: the
        // same function, with the output projection folded into the small attention maps, so
        // one product runs over the pixels instead of two.
        let w_out = self
            .project_out
            .weight
            .val()
            .reshape([1, c, self.heads, hd]);
        let w_out = w_out.swap_dims(1, 2).expand([b, self.heads, c, hd]);
        let mixing = w_out.matmul(attn).swap_dims(1, 2).reshape([b, c, c]);
        mixing
            .matmul(v.reshape([b, c, h * w]))
            .reshape([b, c, h, w])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{device, max_abs_diff, tensor};
    use burn::tensor::Distribution;

    #[test]
    fn normalize_matches_definition() {
        let d = device();
        let x = tensor(vec![3.0, 4.0, 0.0, 0.0], [2, 2], &d);
        let y = l2_normalize_last(x);
        assert!(max_abs_diff(y, tensor(vec![0.6, 0.8, 0.0, 0.0], [2, 2], &d)) < 1e-7);
    }

    /// With one channel per head the attention map is 1×1, so softmax gives exactly 1 and the
    /// output is `project_out(v)` whatever q, k and the temperature are.
    #[test]
    fn single_channel_heads_pass_values_through() {
        let d = device();
        let att = AttentionConfig::new(4, 4).init(&d);
        let x = Tensor::<4>::random([2, 4, 5, 3], Distribution::Normal(0.0, 1.0), &d);
        let qkv = att.qkv_dwconv.forward(att.qkv.forward(x.clone()));
        let v = qkv.narrow(1, 8, 4);
        let expect = att.project_out.forward(v);
        assert!(max_abs_diff(att.forward(x), expect) < 1e-5);
    }

    /// The fused CPU path against burn's operations: one and several heads, biases, two
    /// batch items, a pixel count that splits into several column blocks.
    #[test]
    fn the_cpu_path_equals_burns_ops() {
        let d = device();
        for heads in [1, 3] {
            let mut att = AttentionConfig::new(12, heads).with_bias(true).init(&d);
            att.temperature = Param::from_tensor(Tensor::random(
                [heads, 1, 1],
                Distribution::Uniform(0.5, 3.0),
                &d,
            ));
            let x = Tensor::<4>::random([2, 12, 41, 53], Distribution::Normal(0.0, 1.0), &d);
            let diff = max_abs_diff(att.forward(x.clone()), att.forward_ops(x));
            assert!(diff < 1e-5, "heads {heads}: {diff}");
        }
    }

    fn random_attention(c: usize, heads: usize, d: &Device) -> Attention {
        let mut att = AttentionConfig::new(c, heads).with_bias(true).init(d);
        att.temperature = Param::from_tensor(Tensor::random(
            [heads, 1, 1],
            Distribution::Uniform(0.5, 3.0),
            d,
        ));
        att
    }

    /// Local windows: the CPU kernels against burn's operations, over several windows in both
    /// directions (the last ones shifted to end at the border), two items, one and several
    /// heads.
    #[test]
    fn local_windows_on_the_cpu_path_equal_burns_ops() {
        let d = device();
        for (heads, tile, overlap) in [(1, 16, 4), (3, 24, 8), (2, 16, 0)] {
            let mut att = random_attention(12, heads, &d);
            att.set_local(Some(TileConfig { tile, overlap }));
            let x = Tensor::<4>::random([2, 12, 41, 53], Distribution::Normal(0.0, 1.0), &d);
            let diff = max_abs_diff(att.forward(x.clone()), att.forward_ops(x));
            assert!(diff < 1e-5, "heads {heads}, {tile}/{overlap}: {diff}");
        }
    }

    /// Windows that tile the input without overlap give, in each window, the attention of
    /// that window alone (with the depthwise convolution before the attention made the
    /// identity, which would otherwise see across a window's border but not across a crop's);
    /// a window as large as the input changes nothing.
    #[test]
    fn local_windows_are_the_attention_of_each_window() {
        let d = device();
        let mut att = random_attention(8, 2, &d);
        let mut centre = vec![0.0f32; 24 * 9];
        (0..24).for_each(|ch| centre[ch * 9 + 4] = 1.0);
        att.qkv_dwconv.weight = Param::from_tensor(tensor(centre, [24, 1, 3, 3], &d));
        att.qkv_dwconv.bias = None;
        let x = Tensor::<4>::random([1, 8, 32, 48], Distribution::Normal(0.0, 1.0), &d);
        let global = att.forward(x.clone());
        att.set_local(Some(TileConfig {
            tile: 16,
            overlap: 0,
        }));
        let local = att.forward(x.clone());
        assert!(max_abs_diff(local.clone(), global.clone()) > 1e-3);
        att.set_local(None);
        for (y0, x0) in [(0, 0), (16, 0), (0, 32), (16, 16)] {
            let r = [0..1, 0..8, y0..y0 + 16, x0..x0 + 16];
            let alone = att.forward(x.clone().slice(r.clone()));
            let diff = max_abs_diff(local.clone().slice(r), alone);
            assert!(diff < 1e-5, "window at ({y0}, {x0}): {diff}");
        }
        att.set_local(Some(TileConfig {
            tile: 48,
            overlap: 8,
        }));
        assert_eq!(max_abs_diff(att.forward(x), global), 0.0);
    }

    /// Against a direct loop implementation of the same formula on a small case.
    #[test]
    fn matches_a_direct_computation() {
        let d = device();
        let (b, c, heads, h, w) = (1, 4, 2, 3, 2);
        let mut att = AttentionConfig::new(c, heads).init(&d);
        att.temperature = Param::from_tensor(tensor(vec![0.7, 1.9], [heads, 1, 1], &d));
        let x = Tensor::<4>::random([b, c, h, w], Distribution::Normal(0.0, 1.0), &d);
        let qkv: Vec<f32> = att
            .qkv_dwconv
            .forward(att.qkv.forward(x.clone()))
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        let n = h * w;
        let hd = c / heads;
        let at = |t: usize, ch: usize, p: usize| qkv[(t * c + ch) * n + p];
        let mut out = vec![0.0f32; c * n];
        for head in 0..heads {
            let temp = [0.7f32, 1.9][head];
            let norm =
                |t: usize, ch: usize| (0..n).map(|p| at(t, ch, p).powi(2)).sum::<f32>().sqrt();
            for i in 0..hd {
                let qi = head * hd + i;
                let logits: Vec<f32> = (0..hd)
                    .map(|j| {
                        let kj = head * hd + j;
                        let dot: f32 = (0..n).map(|p| at(0, qi, p) * at(1, kj, p)).sum();
                        dot / (norm(0, qi) * norm(1, kj)) * temp
                    })
                    .collect();
                let m = logits.iter().cloned().fold(f32::MIN, f32::max);
                let e: Vec<f32> = logits.iter().map(|l| (l - m).exp()).collect();
                let s: f32 = e.iter().sum();
                for p in 0..n {
                    out[qi * n + p] = (0..hd).map(|j| e[j] / s * at(2, head * hd + j, p)).sum();
                }
            }
        }
        let expect = att.project_out.forward(tensor(out, [b, c, h, w], &d));
        assert!(max_abs_diff(att.forward(x), expect) < 1e-5);
    }
}
