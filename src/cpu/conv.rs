//! Convolution kernels: 1×1 (pointwise) and dense 3×3 convolutions as matrix products, the
//! depthwise 3×3 convolution and GDFN's GELU gate as vectorised row walks.

use burn::nn::conv::Conv2d;
use burn::prelude::*;
use rayon::prelude::*;

use super::engine::{
    Columns, Out, SharedMut, View, Weights, batched_matmul, column_block, filled, fresh, gemm1,
    into_vec, map_tensor, matmul_items_raw, outer_sum, outer_sum_rows, row_sums, simd, sum8,
};

/// A 1×1 convolution (`Conv2d` with a `[C_out, C_in, 1, 1]` kernel, stride 1, no padding)
/// of `x: [B, C_in, N]` into `out` (`[B, C_out, N]`).
pub(crate) fn pointwise(conv: &Conv2d, x: &[f32], b: usize, n: usize, out: Out<'_>) {
    let [c_out, c_in, _, _] = conv.weight.dims();
    assert!(
        is_pointwise(conv),
        "pointwise: not a 1×1 convolution with stride 1 and no padding"
    );
    assert_eq!(x.len(), b * c_in * n, "pointwise: input size");
    let w = into_vec(conv.weight.val());
    let bias = conv.bias.as_ref().map(|b| into_vec(b.val()));
    let weight = |_| std::borrow::Cow::Borrowed(&w[..]);
    let x = Columns {
        data: x,
        items: b,
        stride: c_in * n,
        n,
    };
    batched_matmul(weight, bias.as_deref(), c_out, c_in, x, out);
}

/// [`pointwise`] on a tensor that [`plain_cpu`] accepted.
pub(crate) fn pointwise_tensor(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    map_tensor(x, conv.weight.dims()[0], |x, b, h, w| {
        fresh(|out| pointwise(conv, &x, b, h * w, out))
    })
}

/// Whether `conv` is a 1×1 convolution with stride 1, no padding and one group, the case
/// [`pointwise`] computes.
pub(crate) fn is_pointwise(conv: &Conv2d) -> bool {
    use burn::nn::PaddingConfig2d;
    conv.kernel_size == [1, 1]
        && conv.stride == [1, 1]
        && conv.groups == 1
        && matches!(
            conv.padding,
            PaddingConfig2d::Valid | PaddingConfig2d::Same | PaddingConfig2d::Explicit(0, 0, 0, 0)
        )
}

/// Whether `conv` is a dense 3×3 convolution with stride 1, dilation 1 and zero padding 1,
/// the case [`conv3x3`] computes.
pub(crate) fn is_dense_3x3(conv: &Conv2d) -> bool {
    use burn::nn::PaddingConfig2d;
    conv.kernel_size == [3, 3]
        && conv.stride == [1, 1]
        && conv.dilation == [1, 1]
        && conv.groups == 1
        && matches!(conv.padding, PaddingConfig2d::Explicit(1, 1, 1, 1))
}

/// A dense 3×3 convolution (stride 1, zero padding 1; [`is_dense_3x3`]) of `x: [B, C_in, H,
/// W]`, as nine accumulated matrix products on a zero-padded copy of the input instead of an
/// im2col buffer nine times its size. With each padded row `W + 2` values long, tap
/// `(dy, dx)` of the output at padded position `p` reads the input at `p + dy·(W + 2) + dx`,
/// so every tap is one product `W_tap · X` over contiguous columns; the two extra columns of
/// each row are computed and dropped. Tasks own runs of whole output rows.
pub(crate) fn conv3x3(conv: &Conv2d, x: &[f32], b: usize, h: usize, w: usize) -> Vec<f32> {
    let [c_out, c_in, _, _] = conv.weight.dims();
    assert!(
        is_dense_3x3(conv),
        "conv3x3: not a dense 3×3 convolution with padding 1"
    );
    let k = into_vec(conv.weight.val());
    let bias = conv.bias.as_ref().map(|b| into_vec(b.val()));
    conv3x3_raw(&k, bias.as_deref(), (c_out, c_in), x, b, (h, w))
}

/// The length of one zero-padded `h × w` plane in [`padded_planes`]: rows `w + 2` long, and
/// two spare values so that the last tap of the last pixel stays inside it.
fn padded_plane(h: usize, w: usize) -> usize {
    (h + 2) * (w + 2) + 2
}

/// Each of the `planes` `h × w` planes of `x` zero-padded by one pixel, rows `w + 2` apart,
/// each plane [`padded_plane`] values long.
fn padded_planes(x: &[f32], planes: usize, h: usize, w: usize) -> Vec<f32> {
    let (wp, plane, n) = (w + 2, padded_plane(h, w), h * w);
    let mut padded = vec![0.0f32; planes * plane];
    padded
        .par_chunks_mut(plane)
        .zip(x[..planes * n].par_chunks(n))
        .for_each(|(p, src)| {
            for (y, row) in src.chunks_exact(w).enumerate() {
                p[(y + 1) * wp + 1..][..w].copy_from_slice(row);
            }
        });
    padded
}

/// [`conv3x3`] with the kernels `k: [C_out, C_in, 3, 3]` and optional biases as slices.
pub(crate) fn conv3x3_raw(
    k: &[f32],
    bias: Option<&[f32]>,
    (c_out, c_in): (usize, usize),
    x: &[f32],
    b: usize,
    (h, w): (usize, usize),
) -> Vec<f32> {
    assert_eq!(x.len(), b * c_in * h * w, "conv3x3: input size");
    assert_eq!(k.len(), c_out * c_in * 9, "conv3x3: kernel size");
    assert!(bias.is_none_or(|b| b.len() == c_out), "conv3x3: bias size");
    // taps[t] = W[:, :, dy, dx] as a [C_out, C_in] matrix, t = 3·dy + dx.
    let mut taps = vec![0.0f32; 9 * c_out * c_in];
    for (oi, kernel) in k.chunks_exact(9).enumerate() {
        for (t, &v) in kernel.iter().enumerate() {
            taps[t * c_out * c_in + oi] = v;
        }
    }
    let wp = w + 2;
    let plane = padded_plane(h, w);
    let n = h * w;
    let rows_per_task = (column_block(h * wp) / wp).max(1);
    let mut out: Vec<f32> = Vec::with_capacity(b * c_out * n);
    let dst = SharedMut(out.as_mut_ptr());
    for i in 0..b {
        let padded = padded_planes(&x[i * c_in * n..(i + 1) * c_in * n], c_in, h, w);
        (0..h.div_ceil(rows_per_task))
            .into_par_iter()
            .for_each(|task| {
                let y0 = task * rows_per_task;
                let rows = rows_per_task.min(h - y0);
                let cols = rows * wp;
                let mut block = vec![0.0f32; c_out * cols];
                for (t, tap) in taps.chunks_exact(c_out * c_in).enumerate() {
                    let shift = y0 * wp + (t / 3) * wp + t % 3;
                    // Safety: `block` is this task's [C_out, cols] buffer; the right operand reads
                    // C_in rows (stride `plane`) of `cols` values from `shift`, and shift + cols ≤
                    // (h + 2)·wp + 2 = plane.
                    unsafe {
                        gemm1(
                            (c_out, cols, c_in),
                            block.as_mut_ptr(),
                            cols,
                            t > 0,
                            View::rows(tap.as_ptr(), c_in),
                            View::rows(padded.as_ptr().add(shift), plane),
                        );
                    }
                }
                for (o, src) in block.chunks_exact(cols).enumerate() {
                    let bb = bias.map_or(0.0, |b| b[o]);
                    for r in 0..rows {
                        // Safety: this task writes rows y0..y0+rows of every output channel.
                        let row = unsafe {
                            std::slice::from_raw_parts_mut(
                                dst.at(((i * c_out + o) * h + y0 + r) * w),
                                w,
                            )
                        };
                        for (d, v) in row.iter_mut().zip(&src[r * wp..r * wp + w]) {
                            *d = v + bb;
                        }
                    }
                }
            });
    }
    // Safety: every (item, channel, row) was written by one task.
    unsafe { out.set_len(b * c_out * n) };
    out
}

/// The gradients of [`conv3x3_raw`] (kernels `k: [C_out, C_in, 3, 3]`, input `x: [B, C_in,
/// H, W]`) given the output's gradient `dy: [B, C_out, H, W]`: `(dx, dk, dbias)`, `dx` only
/// when asked.
/// - `dx` is the convolution of `dy` with the kernels turned by 180° and transposed
///   (`[C_in, C_out, 3, 3]`), computed by [`conv3x3_raw`];
/// - `dk[:, :, dy, dx] = Σ_items dY · X_tapᵀ`: with `dY` laid out in rows `W + 2` long (the
///   two extra values zero) and `X` zero-padded as in the forward pass, tap `(dy, dx)` reads
///   the padded input at `p + dy·(W + 2) + dx` for output position `p`, so each tap is one
///   [`outer_sum_rows`] over contiguous columns;
/// - `dbias` sums `dy` over items and pixels.
pub(crate) fn conv3x3_backward(
    k: &[f32],
    (c_out, c_in): (usize, usize),
    x: &[f32],
    dy: &[f32],
    b: usize,
    (h, w): (usize, usize),
    want_dx: bool,
) -> (Option<Vec<f32>>, Vec<f32>, Vec<f32>) {
    let n = h * w;
    assert_eq!(x.len(), b * c_in * n, "conv3x3_backward: input size");
    assert_eq!(dy.len(), b * c_out * n, "conv3x3_backward: gradient size");
    assert_eq!(k.len(), c_out * c_in * 9, "conv3x3_backward: kernel size");
    let dx = want_dx.then(|| {
        // turned[i][o][8 − t] = k[o][i][t]
        let mut turned = vec![0.0f32; c_in * c_out * 9];
        for o in 0..c_out {
            for i in 0..c_in {
                for t in 0..9 {
                    turned[(i * c_out + o) * 9 + 8 - t] = k[(o * c_in + i) * 9 + t];
                }
            }
        }
        conv3x3_raw(&turned, None, (c_in, c_out), dy, b, (h, w))
    });
    let (wp, plane) = (w + 2, padded_plane(h, w));
    let cols = h * wp;
    let padded = padded_planes(x, b * c_in, h, w);
    // dy in rows w + 2 long, the two extra values zero
    let mut wide = vec![0.0f32; b * c_out * cols];
    wide.par_chunks_mut(cols)
        .zip(dy.par_chunks(n))
        .for_each(|(d, src)| {
            for (y, row) in src.chunks_exact(w).enumerate() {
                d[y * wp..][..w].copy_from_slice(row);
            }
        });
    let mut dk = vec![0.0f32; c_out * c_in * 9];
    for t in 0..9 {
        let shift = (t / 3) * wp + t % 3;
        let tap = outer_sum_rows(
            (&wide, c_out * cols, cols),
            (&padded[shift..], c_in * plane, plane),
            (c_out, c_in, cols),
            b,
        );
        for (oi, v) in tap.into_iter().enumerate() {
            dk[oi * 9 + t] = v;
        }
    }
    let db = row_sums(dy, c_out, n, b);
    (dx, dk, db)
}

/// [`conv3x3`] on a tensor that [`plain_cpu`] accepted.
pub(crate) fn conv3x3_tensor(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    map_tensor(x, conv.weight.dims()[0], |x, b, h, w| {
        conv3x3(conv, &x, b, h, w)
    })
}

/// One output row of a depthwise 3×3 convolution from the three input rows around it
/// (`rows[1]` at the output row; all-zero rows stand for the padding outside the plane):
/// `out[x] = bias + Σ k[3·dy + dx]·rows[dy][x + dx − 1]`, zero outside the row, in one pass.
#[inline(always)]
pub(crate) fn depthwise_row(rows: [&[f32]; 3], k: &[f32], bias: f32, out: &mut [f32]) {
    let w = out.len();
    let k: &[f32; 9] = k.try_into().expect("nine taps");
    let (a, m, c) = (&rows[0][..w], &rows[1][..w], &rows[2][..w]);
    if w == 1 {
        out[0] = bias + k[1] * a[0] + k[4] * m[0] + k[7] * c[0];
        return;
    }
    out[0] =
        bias + k[1] * a[0] + k[2] * a[1] + k[4] * m[0] + k[5] * m[1] + k[7] * c[0] + k[8] * c[1];
    out[w - 1] = bias
        + k[0] * a[w - 2]
        + k[1] * a[w - 1]
        + k[3] * m[w - 2]
        + k[4] * m[w - 1]
        + k[6] * c[w - 2]
        + k[7] * c[w - 1];
    // Equal-length shifted views, so the loop runs without bounds checks and vectorises.
    let len = w - 2;
    let o = &mut out[1..w - 1];
    let (a0, a1, a2) = (&a[..len], &a[1..len + 1], &a[2..len + 2]);
    let (m0, m1, m2) = (&m[..len], &m[1..len + 1], &m[2..len + 2]);
    let (c0, c1, c2) = (&c[..len], &c[1..len + 1], &c[2..len + 2]);
    for i in 0..len {
        o[i] = bias
            + k[0] * a0[i]
            + k[1] * a1[i]
            + k[2] * a2[i]
            + k[3] * m0[i]
            + k[4] * m1[i]
            + k[5] * m2[i]
            + k[6] * c0[i]
            + k[7] * c1[i]
            + k[8] * c2[i];
    }
}

/// The three input rows around output row `y` of an `h × w` plane, `zero` (`w` zeros) for
/// rows outside it.
#[inline(always)]
pub(crate) fn rows_around<'a>(
    plane: &'a [f32],
    zero: &'a [f32],
    w: usize,
    h: usize,
    y: usize,
) -> [&'a [f32]; 3] {
    let row = |yy: usize| match yy.checked_sub(1) {
        Some(r) if r < h => &plane[r * w..(r + 1) * w],
        _ => zero,
    };
    [row(y), row(y + 1), row(y + 2)]
}

/// The weights (`[C, 9]`) and biases of a depthwise 3×3 `Conv2d`.
pub(crate) fn depthwise_params(conv: &Conv2d) -> (Vec<f32>, Option<Vec<f32>>) {
    let [c, per_group, kh, kw] = conv.weight.dims();
    assert!(
        per_group == 1
            && kh == 3
            && kw == 3
            && conv.groups == c
            && conv.stride == [1, 1]
            && conv.dilation == [1, 1]
            && matches!(
                conv.padding,
                burn::nn::PaddingConfig2d::Explicit(1, 1, 1, 1)
            ),
        "depthwise: kernel [{c}, {per_group}, {kh}, {kw}] is not a depthwise 3×3 convolution \
         with stride 1 and padding 1"
    );
    let bias = conv.bias.as_ref().map(|b| into_vec(b.val()));
    (into_vec(conv.weight.val()), bias)
}

/// Scratch rows for walking a plane in place ([`in_place_rows`]).
pub(crate) struct RowScratch {
    above: Vec<f32>,
    here: Vec<f32>,
    out: Vec<f32>,
}

impl RowScratch {
    fn new(w: usize) -> Self {
        RowScratch {
            above: vec![0.0; w],
            here: vec![0.0; w],
            out: vec![0.0; w],
        }
    }
}

/// Replaces each row `y` of an `h × w` plane by `f(y, rows, out)`, where `rows` are the
/// plane's *original* rows `y − 1, y, y + 1` (`zero`, `w` zeros, outside it): walking from
/// the top, the two rows that the walk has already overwritten are kept in `scratch`.
#[inline(always)]
pub(crate) fn in_place_rows(
    plane: &mut [f32],
    (w, h): (usize, usize),
    zero: &[f32],
    s: &mut RowScratch,
    mut f: impl FnMut(usize, [&[f32]; 3], &mut [f32]),
) {
    s.here.copy_from_slice(&plane[..w]);
    for y in 0..h {
        {
            let below = if y + 1 < h {
                &plane[(y + 1) * w..(y + 2) * w]
            } else {
                zero
            };
            let above = if y == 0 { zero } else { &s.above[..] };
            f(y, [above, &s.here, below], &mut s.out);
        }
        plane[y * w..(y + 1) * w].copy_from_slice(&s.out);
        std::mem::swap(&mut s.above, &mut s.here);
        if y + 1 < h {
            s.here.copy_from_slice(&plane[(y + 1) * w..(y + 2) * w]);
        }
    }
}

/// A depthwise 3×3 convolution with zero padding 1 of `x: [B, C, H, W]`, in place.
pub(crate) fn depthwise3x3(conv: &Conv2d, x: &mut [f32], b: usize, h: usize, w: usize) {
    let (k, bias) = depthwise_params(conv);
    let c = k.len() / 9;
    let n = h * w;
    assert_eq!(x.len(), b * c * n, "depthwise3x3: input size");
    if n == 0 {
        return;
    }
    x.par_chunks_mut(n).enumerate().for_each(|(t, plane)| {
        simd(
            #[inline(always)]
            || {
                let ch = t % c;
                let kc = &k[ch * 9..ch * 9 + 9];
                let bb = bias.as_ref().map_or(0.0, |b| b[ch]);
                let zero = vec![0.0f32; w];
                let mut scratch = RowScratch::new(w);
                in_place_rows(
                    plane,
                    (w, h),
                    &zero,
                    &mut scratch,
                    #[inline(always)]
                    |_, rows, out| depthwise_row(rows, kc, bb, out),
                );
            },
        )
    });
}

/// GDFN's middle: `gelu(d[c]) · d[c + hidden]` for `c < hidden`, where `d` is the depthwise
/// 3×3 convolution of `x: [B, 2·hidden, H, W]`, computed in place: the result (`[B, hidden,
/// H, W]`) replaces `x`, whose second halves are released. The convolution's output is never
/// stored.
pub(crate) fn depthwise_gate(conv: &Conv2d, x: &mut Vec<f32>, b: usize, h: usize, w: usize) {
    let (k, bias) = depthwise_params(conv);
    let c2 = k.len() / 9;
    let hidden = c2 / 2;
    let n = h * w;
    assert_eq!(x.len(), b * c2 * n, "depthwise_gate: input size");
    if n == 0 {
        x.truncate(b * hidden * n);
        return;
    }
    // Each item's planes: the first `hidden` (rewritten with the result) and the gates.
    let items: Vec<(&mut [f32], &mut [f32])> = x
        .chunks_mut(c2 * n)
        .map(|item| item.split_at_mut(hidden * n))
        .collect();
    let tasks: Vec<(usize, &mut [f32], &[f32])> = items
        .into_iter()
        .flat_map(|(a, g)| {
            a.chunks_mut(n)
                .zip(g.chunks(n))
                .enumerate()
                .map(|(ch, (a, g))| (ch, a, g))
        })
        .collect();
    tasks.into_par_iter().for_each(|(ch, pa, pg)| {
        let (ka, kg) = (
            &k[ch * 9..ch * 9 + 9],
            &k[(ch + hidden) * 9..(ch + hidden) * 9 + 9],
        );
        let (ba, bg) = bias
            .as_ref()
            .map_or((0.0, 0.0), |b| (b[ch], b[ch + hidden]));
        simd(
            #[inline(always)]
            || {
                let zero = vec![0.0f32; w];
                let mut scratch = RowScratch::new(w);
                let mut gate = vec![0.0f32; w];
                in_place_rows(
                    pa,
                    (w, h),
                    &zero,
                    &mut scratch,
                    #[inline(always)]
                    |y, rows, out| {
                        depthwise_row(rows, ka, ba, out);
                        depthwise_row(rows_around(pg, &zero, w, h, y), kg, bg, &mut gate);
                        for (o, g) in out.iter_mut().zip(&gate) {
                            *o = gelu(*o) * g;
                        }
                    },
                );
            },
        )
    });
    // Close the gaps the gates leave between items, then give their memory back.
    for i in 1..b {
        x.copy_within(i * c2 * n..(i * c2 + hidden) * n, i * hidden * n);
    }
    x.truncate(b * hidden * n);
    x.shrink_to_fit();
}

/// Exact (erf) GELU with the vectorisable [`erf`].
#[inline(always)]
pub(crate) fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// The error function in f32 as a rational minimax approximation on [-4, 4] (the form Eigen
/// and XLA use for float `erf`): within 1e-6 of `libm::erff`, branch-free, so loops over it
/// vectorise.
#[inline(always)]
pub(crate) fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = x2 * -2.726_142_3e-10 + 2.770_681_4e-8;
    p = x2 * p + -2.101_024e-6;
    p = x2 * p + -5.692_506_4e-5;
    p = x2 * p + -7.349_906_3e-4;
    p = x2 * p + -2.954_600_2e-3;
    p = x2 * p + -1.609_603_3e-2;
    p *= x;
    let mut q = x2 * -1.456_607_2e-5 + -2.133_740_6e-4;
    q = x2 * q + -1.682_827e-3;
    q = x2 * q + -7.373_329_2e-3;
    q = x2 * q + -1.426_474e-2;
    p / q
}

/// A depthwise 3×3 convolution (zero padding 1) of `x: [B, C, H, W]` into a fresh buffer:
/// `k: [C, 9]`, optional `bias: [C]`.
pub(crate) fn depthwise_into(
    k: &[f32],
    bias: Option<&[f32]>,
    x: &[f32],
    b: usize,
    (h, w): (usize, usize),
) -> Vec<f32> {
    let c = k.len() / 9;
    let n = h * w;
    assert_eq!(x.len(), b * c * n, "depthwise_into: input size");
    if n == 0 {
        return Vec::new();
    }
    filled(x.len(), |dst| {
        x.par_chunks(n).enumerate().for_each(|(t, plane)| {
            // Safety: task t writes plane t, every value of it.
            let o = unsafe { std::slice::from_raw_parts_mut(dst.at(t * n), n) };
            simd(
                #[inline(always)]
                || {
                    let ch = t % c;
                    let kc = &k[ch * 9..ch * 9 + 9];
                    let bb = bias.map_or(0.0, |b| b[ch]);
                    let zero = vec![0.0f32; w];
                    for (y, row) in o.chunks_exact_mut(w).enumerate() {
                        depthwise_row(rows_around(plane, &zero, w, h, y), kc, bb, row);
                    }
                },
            )
        })
    })
}

/// The gradients of [`depthwise_into`] given the output's gradient `dy`: the input's (a
/// depthwise convolution of `dy` with each kernel turned by 180°), the kernels' (`[C, 9]`:
/// per tap, the sum over items and pixels of `dy` times the input shifted by the tap) and the
/// biases' (`[C]`).
pub(crate) fn depthwise_backward(
    k: &[f32],
    x: &[f32],
    dy: &[f32],
    b: usize,
    (h, w): (usize, usize),
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let c = k.len() / 9;
    let n = h * w;
    assert_eq!(dy.len(), b * c * n, "depthwise_backward: gradient size");
    let turned: Vec<f32> = k
        .chunks_exact(9)
        .flat_map(|t| t.iter().rev().copied())
        .collect();
    let dx = depthwise_into(&turned, None, dy, b, (h, w));
    // Per (item, channel) plane: nine tap sums and the bias sum, then summed over items.
    let per_plane: Vec<[f64; 10]> = x
        .par_chunks(n.max(1))
        .zip(dy.par_chunks(n.max(1)))
        .map(|(xp, gp)| {
            simd(
                #[inline(always)]
                || depthwise_tap_sums(xp, gp, h, w),
            )
        })
        .collect();
    let mut dk = vec![0.0f32; c * 9];
    let mut db = vec![0.0f32; c];
    for ch in 0..c {
        let mut acc = [0.0f64; 10];
        for i in 0..b {
            for (a, v) in acc.iter_mut().zip(&per_plane[i * c + ch]) {
                *a += v;
            }
        }
        for t in 0..9 {
            dk[ch * 9 + t] = acc[t] as f32;
        }
        db[ch] = acc[9] as f32;
    }
    (dx, dk, db)
}

/// For one `h × w` plane: `Σ_p g(p)·x(p + tap offset)` for the nine taps (zero outside the
/// plane), then `Σ_p g(p)`.
#[inline(always)]
fn depthwise_tap_sums(x: &[f32], g: &[f32], h: usize, w: usize) -> [f64; 10] {
    let mut out = [0.0f64; 10];
    if h == 0 || w == 0 {
        return out;
    }
    for y in 0..h {
        let gr = &g[y * w..(y + 1) * w];
        let mut row_sums = [0.0f32; 9];
        for dy in 0..3 {
            let Some(yy) = (y + dy).checked_sub(1).filter(|&r| r < h) else {
                continue;
            };
            let xr = &x[yy * w..(yy + 1) * w];
            // dx = 1: aligned; dx = 0: x shifted right (x[p − 1]); dx = 2: x[p + 1].
            row_sums[dy * 3 + 1] = dot(gr, xr);
            if w > 1 {
                row_sums[dy * 3] = dot(&gr[1..], &xr[..w - 1]);
                row_sums[dy * 3 + 2] = dot(&gr[..w - 1], &xr[1..]);
            }
        }
        for (o, v) in out.iter_mut().zip(row_sums) {
            *o += v as f64;
        }
        out[9] += sum8(gr) as f64;
    }
    out
}

/// `Σ a[i]·b[i]` with eight independent accumulators (so it vectorises).
#[inline(always)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let len = a.len().min(b.len());
    let (a, b) = (&a[..len], &b[..len]);
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for j in 0..8 {
            acc[j] += x[j] * y[j];
        }
    }
    acc.iter().sum::<f32>() + ra.iter().zip(rb).map(|(x, y)| x * y).sum::<f32>()
}

/// GDFN's gate on a stored convolution output `d: [B, 2·hidden, N]`:
/// `gelu(d[c])·d[c + hidden]`, `[B, hidden, N]`.
pub(crate) fn gate(d: &[f32], b: usize, hidden: usize, n: usize) -> Vec<f32> {
    assert_eq!(d.len(), b * 2 * hidden * n, "gate: input size");
    if n == 0 {
        return Vec::new();
    }
    filled(b * hidden * n, |dst| {
        (0..b * hidden).into_par_iter().for_each(|t| {
            // Safety: task t writes plane t, every value of it.
            let o = unsafe { std::slice::from_raw_parts_mut(dst.at(t * n), n) };
            let (i, ch) = (t / hidden, t % hidden);
            let a = &d[(i * 2 * hidden + ch) * n..][..n];
            let g = &d[(i * 2 * hidden + hidden + ch) * n..][..n];
            simd(
                #[inline(always)]
                || {
                    for ((o, a), g) in o.iter_mut().zip(a).zip(g) {
                        *o = gelu(*a) * g;
                    }
                },
            )
        })
    })
}

/// The gradient of [`gate`] with respect to `d`, given the output's gradient `dz`: per
/// channel pair, `dd[c] = dz·d[c + hidden]·gelu′(d[c])` and `dd[c + hidden] = dz·gelu(d[c])`,
/// in one pass.
pub(crate) fn gate_backward(d: &[f32], dz: &[f32], b: usize, hidden: usize, n: usize) -> Vec<f32> {
    assert_eq!(d.len(), b * 2 * hidden * n, "gate_backward: input size");
    assert_eq!(dz.len(), b * hidden * n, "gate_backward: gradient size");
    if n == 0 {
        return Vec::new();
    }
    filled(d.len(), |dst| {
        (0..b * hidden).into_par_iter().for_each(|t| {
            let (i, c) = (t / hidden, t % hidden);
            let (ra, rg) = ((i * 2 * hidden + c) * n, (i * 2 * hidden + hidden + c) * n);
            let (a, g) = (&d[ra..ra + n], &d[rg..rg + n]);
            let dz = &dz[(i * hidden + c) * n..][..n];
            // Safety: task t writes the two planes of its channel pair, every value of them.
            let (da, dg) = unsafe {
                (
                    std::slice::from_raw_parts_mut(dst.at(ra), n),
                    std::slice::from_raw_parts_mut(dst.at(rg), n),
                )
            };
            simd(
                #[inline(always)]
                || {
                    for p in 0..n {
                        let x = a[p];
                        let cdf = 0.5 * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2));
                        let pdf = 0.398_942_3 * exp_neg(0.5 * x * x);
                        da[p] = dz[p] * g[p] * (cdf + x * pdf);
                        dg[p] = dz[p] * x * cdf;
                    }
                },
            )
        })
    })
}

/// `e^(−y)` for `y ≥ 0` in f32 (relative error below 2e-7 where the result is normal; 0 below
/// e^(−87)): range reduction to `2^k·e^r`, `|r| ≤ ln2/2`, and a degree-6 polynomial; no
/// branches or calls, so loops over it vectorise.
#[inline(always)]
pub(crate) fn exp_neg(y: f32) -> f32 {
    let x = (-y).max(-87.0);
    let k = (x * std::f32::consts::LOG2_E + 0.5).floor();
    let r = x - k * 0.693_145_75 - k * 1.428_606_8e-6;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 0.166_666_66;
    p = p * r + 0.5;
    p = p * r * r + r + 1.0;
    f32::from_bits(((k as i32 + 127) as u32) << 23) * p
}

/// The gradients of a 1×1 convolution `y = W·x + bias` (`W: [C_out, C_in]`) over
/// `x: [B, C_in, N]`, given `dy: [B, C_out, N]`: `(dx, dW, dbias)`; `dx` only when asked.
pub(crate) fn pointwise_backward(
    w: &[f32],
    (c_out, c_in): (usize, usize),
    x: &[f32],
    dy: &[f32],
    b: usize,
    n: usize,
    want_dx: bool,
) -> (Option<Vec<f32>>, Vec<f32>, Vec<f32>) {
    assert_eq!(x.len(), b * c_in * n, "pointwise_backward: input size");
    assert_eq!(dy.len(), b * c_out * n, "pointwise_backward: gradient size");
    let dw = outer_sum(dy, c_out * n, x, c_in * n, (c_out, c_in, n), b);
    let db = row_sums(dy, c_out, n, b);
    let dx = want_dx.then(|| {
        filled(b * c_in * n, |dst| {
            // Safety: the items' products write all b·c_in·n values.
            unsafe {
                matmul_items_raw(
                    Weights::transpose_of(w, c_in, c_out),
                    dy,
                    c_out * n,
                    dst,
                    c_in * n,
                    b,
                    n,
                    false,
                )
            }
        })
    });
    (dx, dw, db)
}

/// `y = W·x + bias` for every item of `x: [B, C_in, N]` (`W: [C_out, C_in]` row-major).
pub(crate) fn pointwise_raw(
    w: &[f32],
    bias: Option<&[f32]>,
    (c_out, c_in): (usize, usize),
    x: &[f32],
    b: usize,
    n: usize,
) -> Vec<f32> {
    assert_eq!(x.len(), b * c_in * n, "pointwise_raw: input size");
    filled(b * c_out * n, |dst| {
        // Safety: the items' products write all b·c_out·n values.
        unsafe {
            matmul_items_raw(
                Weights::new(w, bias, c_out, c_in),
                x,
                c_in * n,
                dst,
                c_out * n,
                b,
                n,
                false,
            )
        }
    })
}

#[cfg(test)]
mod tests {
    use super::super::engine::from_vec;
    use super::*;
    use crate::test_util::{device, max_abs_diff};
    use burn::module::Param;
    use burn::nn::PaddingConfig2d;
    use burn::nn::conv::{Conv2d, Conv2dConfig};
    use burn::tensor::Distribution;

    /// A `k`×`k` convolution with "same" zero padding, as the backbone builds them.
    fn conv(c_in: usize, c_out: usize, k: usize, bias: bool, device: &Device) -> Conv2d {
        let p = k / 2;
        Conv2dConfig::new([c_in, c_out], [k, k])
            .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
            .with_bias(bias)
            .init(device)
    }

    /// A depthwise 3×3 convolution with zero padding 1.
    fn dw_conv(channels: usize, bias: bool, device: &Device) -> Conv2d {
        Conv2dConfig::new([channels, channels], [3, 3])
            .with_groups(channels)
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .with_bias(bias)
            .init(device)
    }

    #[test]
    fn the_fast_erf_matches_the_exact_one() {
        let mut worst = 0.0f32;
        for i in -6000..=6000 {
            let x = i as f32 / 1000.0;
            let exact = (Tensor::<1>::from_floats([x], &device()).erf()).into_scalar::<f32>();
            worst = worst.max((erf(x) - exact).abs());
        }
        assert!(worst < 1e-6, "max |fast − exact| = {worst:e}");
    }

    #[test]
    fn the_fast_exp_matches_the_exact_one() {
        let mut worst = 0.0f64;
        for i in 0..=90_000 {
            let y = i as f32 / 1000.0;
            let exact = (-(y as f64)).exp();
            if exact > 1e-37 {
                worst = worst.max(((exp_neg(y) as f64 - exact) / exact).abs());
            }
        }
        assert!(worst < 5e-7, "max relative error {worst:e}");
        assert_eq!(exp_neg(200.0), 0.0f32.max(exp_neg(200.0)));
        assert!(exp_neg(200.0) < 1e-37);
    }

    fn with_random_bias(mut c: Conv2d, out: usize) -> Conv2d {
        let d = device();
        c.bias = Some(Param::from_tensor(Tensor::random(
            [out],
            Distribution::Normal(0.0, 1.0),
            &d,
        )));
        c
    }

    /// 1×1 products against burn's convolution: one pixel, fewer pixels than a column
    /// block, many blocks with a partial last one; fresh and accumulated outputs.
    #[test]
    fn pointwise_equals_burns_convolution() {
        let d = device();
        let c = with_random_bias(conv(5, 7, 1, true, &d), 7);
        for (h, w) in [(1, 1), (3, 7), (61, 83)] {
            let x = Tensor::<4>::random([2, 5, h, w], Distribution::Normal(0.0, 1.0), &d);
            let expect = c.forward(x.clone());
            assert!(max_abs_diff(pointwise_tensor(&c, x.clone()), expect.clone()) < 1e-5);
            let mut acc = vec![1.0f32; 2 * 7 * h * w];
            pointwise(&c, &into_vec(x), 2, h * w, Out::Add(&mut acc));
            let acc = from_vec(acc, [2, 7, h, w], &d);
            assert!(max_abs_diff(acc, expect + 1.0) < 1e-5, "{h}×{w}");
        }
    }

    /// The depthwise convolution, alone and fused with the gate, against burn's, on planes
    /// of one row, one column, a single pixel and an odd size (zero padding on every side).
    #[test]
    fn depthwise_kernels_equal_burns_convolution() {
        let d = device();
        let c = with_random_bias(dw_conv(6, true, &d), 6);
        for (h, w) in [(1, 1), (1, 9), (8, 1), (13, 17)] {
            let x = Tensor::<4>::random([2, 6, h, w], Distribution::Normal(0.0, 1.0), &d);
            let conv_out = c.forward(x.clone());
            let mut ours = into_vec(x.clone());
            depthwise3x3(&c, &mut ours, 2, h, w);
            let ours = from_vec(ours, [2, 6, h, w], &d);
            assert!(max_abs_diff(ours, conv_out.clone()) < 1e-5, "{h}×{w}");
            let gate = burn::tensor::activation::gelu(conv_out.clone().narrow(1, 0, 3))
                * conv_out.narrow(1, 3, 3);
            let mut fused = into_vec(x);
            depthwise_gate(&c, &mut fused, 2, h, w);
            let fused = from_vec(fused, [2, 3, h, w], &d);
            assert!(max_abs_diff(fused, gate) < 1e-5, "gate {h}×{w}");
        }
    }

    /// Dense 3×3 convolutions against burn's: channel counts below and above a gemm tile,
    /// one-pixel, one-row, one-column and odd-sized images, with and without bias.
    #[test]
    fn conv3x3_equals_burns_convolution() {
        let d = device();
        for (c_in, c_out, bias) in [(3, 5, false), (7, 17, true)] {
            let mut c = conv(c_in, c_out, 3, bias, &d);
            if bias {
                c = with_random_bias(c, c_out);
            }
            assert!(is_dense_3x3(&c));
            for (h, w) in [(1, 1), (1, 6), (5, 1), (23, 19)] {
                let x = Tensor::<4>::random([2, c_in, h, w], Distribution::Normal(0.0, 1.0), &d);
                let diff = max_abs_diff(conv3x3_tensor(&c, x.clone()), c.forward(x));
                assert!(diff < 1e-5, "{c_in}→{c_out} {h}×{w}: {diff}");
            }
        }
        assert!(!is_dense_3x3(&conv(4, 4, 1, false, &d)));
        assert!(is_pointwise(&conv(4, 4, 1, false, &d)));
        assert!(!is_pointwise(&conv(4, 4, 3, false, &d)));
    }
}
