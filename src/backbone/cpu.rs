//! Fused CPU kernels for inference on the CPU backends (flex, ndarray) without autodiff.
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
//! Modules take this path only for inference on a plain CPU device (see [`plain_cpu`]); with
//! autodiff, on a GPU, or for another float type they run burn's operations, which compute
//! the same function. The unit tests compare the two paths.

use burn::nn::conv::Conv2d;
use burn::prelude::*;
use burn::tensor::DType;
use rayon::prelude::*;

/// Whether `x` lives on a CPU backend whose inference can use this module's kernels: flex or
/// ndarray, not tracked by autodiff, stored as `f32`.
pub(crate) fn plain_cpu<const D: usize>(x: &Tensor<D>) -> bool {
    let d = x.device();
    if d.is_autodiff() || x.dtype() != DType::F32 {
        return false;
    }
    #[allow(unused_mut)]
    let mut cpu = false;
    #[cfg(feature = "flex")]
    {
        cpu |= d == Device::flex();
    }
    #[cfg(feature = "ndarray")]
    #[allow(deprecated)]
    {
        cpu |= d == Device::ndarray();
    }
    cpu
}

/// The tensor's values as a vector (no copy on flex when the tensor is not shared).
pub(crate) fn into_vec<const D: usize>(x: Tensor<D>) -> Vec<f32> {
    x.into_data()
        .try_into_vec::<f32>()
        .expect("plain_cpu checked the f32 dtype")
}

/// A tensor over `v` (no copy on flex).
pub(crate) fn from_vec<const D: usize>(
    v: Vec<f32>,
    shape: [usize; D],
    device: &Device,
) -> Tensor<D> {
    Tensor::from_data(TensorData::new(v, shape), device)
}

/// A raw pointer that parallel tasks may share: each writes a disjoint part of the buffer.
#[derive(Clone, Copy)]
struct SharedMut(*mut f32);
unsafe impl Send for SharedMut {}
unsafe impl Sync for SharedMut {}

impl SharedMut {
    fn at(self, offset: usize) -> *mut f32 {
        // Dereferencing is the caller's business: offsets stay inside the buffer.
        self.0.wrapping_add(offset)
    }

    fn shift(self, offset: usize) -> Self {
        SharedMut(self.at(offset))
    }
}

/// Columns per parallel task: enough tasks to balance the cores, each wide enough that its
/// share of `X` amortises `gemm`'s packing (measured: 2048–4096 columns are best here).
fn column_block(n: usize) -> usize {
    let tasks = 4 * rayon::current_num_threads().max(1);
    n.div_ceil(tasks).clamp(256, 4096).min(n.max(1))
}

/// Runs `f` compiled for AVX2 and FMA when the processor has them (the crate is built for
/// the x86-64 baseline, SSE2). `f` and what it calls must be `#[inline(always)]` for the
/// wider instructions to reach them; elsewhere, or on other processors, `f` runs as built.
#[inline(always)]
fn simd<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2,fma")]
        fn avx2<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // Safety: the processor has the features `avx2` was compiled with.
            return unsafe { avx2(f) };
        }
    }
    f()
}

/// Where a kernel's result goes: a fresh buffer or an existing one it is added to (a
/// residual connection).
pub(crate) enum Out<'a> {
    /// Allocate the result here.
    Fresh(&'a mut Vec<f32>),
    /// `buffer += result`.
    Add(&'a mut [f32]),
}

impl Out<'_> {
    /// Runs `write(dst, accumulate)` on a buffer of `len` values: a freshly reserved one
    /// (`accumulate` false) that is given its length afterwards, or the existing slice.
    ///
    /// # Safety
    /// With `accumulate` false, `write` must write all `len` values and read none of them;
    /// in both cases it must stay inside `len` values from `dst`.
    unsafe fn run(self, len: usize, write: impl FnOnce(SharedMut, bool)) {
        match self {
            Out::Fresh(v) => {
                v.clear();
                v.reserve(len);
                write(SharedMut(v.as_mut_ptr()), false);
                // Safety: `write` initialised all `len` values (the caller's contract).
                unsafe { v.set_len(len) };
            }
            Out::Add(s) => {
                assert!(s.len() >= len, "output buffer too short");
                write(SharedMut(s.as_mut_ptr()), true);
            }
        }
    }
}

/// A strided matrix operand of [`gemm1`]: element `(r, c)` at `ptr + r·row + c·col`.
#[derive(Clone, Copy)]
struct View {
    ptr: *const f32,
    row: isize,
    col: isize,
}

impl View {
    /// Row-major with rows `stride` values apart.
    fn rows(ptr: *const f32, stride: usize) -> Self {
        View {
            ptr,
            row: stride as isize,
            col: 1,
        }
    }

    /// The transpose of a row-major matrix whose rows are `stride` values apart.
    fn transposed(ptr: *const f32, stride: usize) -> Self {
        View {
            ptr,
            row: 1,
            col: stride as isize,
        }
    }
}

/// One single-threaded `gemm` call, `dst = lhs · rhs` (or `dst += …` when `accumulate`) for
/// sizes `(m, n, k)`, with `dst` row-major, rows `dst_stride` values apart.
///
/// # Safety
/// The operands must hold the `m × k` and `k × n` elements their views address, and `dst` the
/// `m × n` ones (initialised when `accumulate`), with nothing else writing them meanwhile.
unsafe fn gemm1(
    (m, n, k): (usize, usize, usize),
    dst: *mut f32,
    dst_stride: usize,
    accumulate: bool,
    lhs: View,
    rhs: View,
) {
    // Safety: the caller's contract; with `read_dst` false, `gemm` writes every destination
    // element without reading it.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_stride as isize,
            accumulate,
            lhs.ptr,
            lhs.col,
            lhs.row,
            rhs.ptr,
            rhs.col,
            rhs.row,
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

/// A small row-major matrix `W: [m, k]` and an optional bias per row, the left operand of
/// [`matmul_wide`].
#[derive(Clone, Copy)]
struct Weights<'a> {
    w: &'a [f32],
    bias: Option<&'a [f32]>,
    m: usize,
    k: usize,
}

/// The right operands of [`batched_matmul`]: `items` row-major `[k, n]` matrices, item `i`
/// starting at `data[i · stride]`.
#[derive(Clone, Copy)]
pub(crate) struct Columns<'a> {
    pub data: &'a [f32],
    pub items: usize,
    pub stride: usize,
    pub n: usize,
}

/// `dst = W · X + bias` (or `dst += …` when `accumulate`) with `X: [k, n]` and `dst: [m, n]`
/// row-major; `x` may be longer than `k·n`.
///
/// # Safety
/// `dst` must point to `m·n` writable values that nothing else accesses meanwhile (and, when
/// `accumulate`, are initialised).
unsafe fn matmul_wide(dst: SharedMut, accumulate: bool, wts: Weights<'_>, x: &[f32], n: usize) {
    let Weights { w, bias, m, k } = wts;
    assert!(
        w.len() >= m * k && x.len() >= k * n,
        "matmul_wide: operand too short"
    );
    assert!(
        bias.is_none_or(|b| b.len() >= m),
        "matmul_wide: bias too short"
    );
    let block = column_block(n);
    (0..n.div_ceil(block)).into_par_iter().for_each(|i| {
        let c0 = i * block;
        let cols = block.min(n - c0);
        // Safety: task i writes columns c0..c0+cols of every row, disjoint from the other
        // tasks, inside the m·n values the caller vouched for; `gemm` reads `w[..m·k]` and
        // `x[..k·n]` with the strides given, and with `read_dst` false it writes every
        // destination element without reading it.
        unsafe {
            gemm1(
                (m, cols, k),
                dst.at(c0),
                n,
                accumulate,
                View::rows(w.as_ptr(), k),
                View::rows(x.as_ptr().add(c0), n),
            );
            if let Some(bias) = bias {
                for (r, &b) in bias[..m].iter().enumerate() {
                    let row = std::slice::from_raw_parts_mut(dst.at(r * n + c0), cols);
                    row.iter_mut().for_each(|v| *v += b);
                }
            }
        }
    });
}

/// `out (+)= W_i · X_i + bias` for each item `i` of `x`, with `W_i` (`[m, k]`) from
/// `weight(i)`; `out: [items, m, n]`.
pub(crate) fn batched_matmul<'w>(
    weight: impl Fn(usize) -> std::borrow::Cow<'w, [f32]>,
    bias: Option<&[f32]>,
    m: usize,
    k: usize,
    x: Columns<'_>,
    out: Out<'_>,
) {
    let n = x.n;
    // Safety: each item's product writes (or adds to) its own m·n values.
    unsafe {
        out.run(x.items * m * n, |dst, acc| {
            for i in 0..x.items {
                let w = weight(i);
                let wts = Weights { w: &w, bias, m, k };
                matmul_wide(dst.shift(i * m * n), acc, wts, &x.data[i * x.stride..], n);
            }
        });
    }
}

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

/// Runs a kernel `apply(x, b, h, w)` that maps the values of `x: [B, C, H, W]` to those of a
/// `[B, c_out, H, W]` tensor, and wraps its result as a tensor on `x`'s device.
pub(crate) fn map_tensor(
    x: Tensor<4>,
    c_out: usize,
    apply: impl FnOnce(Vec<f32>, usize, usize, usize) -> Vec<f32>,
) -> Tensor<4> {
    let [b, _, h, w] = x.dims();
    let device = x.device();
    let out = apply(into_vec(x), b, h, w);
    from_vec(out, [b, c_out, h, w], &device)
}

/// The buffer that `write` fills through [`Out::Fresh`].
pub(crate) fn fresh(write: impl FnOnce(Out<'_>)) -> Vec<f32> {
    let mut out = Vec::new();
    write(Out::Fresh(&mut out));
    out
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
    assert_eq!(x.len(), b * c_in * h * w, "conv3x3: input size");
    let k = into_vec(conv.weight.val());
    let bias = conv.bias.as_ref().map(|b| into_vec(b.val()));
    // taps[t] = W[:, :, dy, dx] as a [C_out, C_in] matrix, t = 3·dy + dx.
    let mut taps = vec![0.0f32; 9 * c_out * c_in];
    for (oi, kernel) in k.chunks_exact(9).enumerate() {
        for (t, &v) in kernel.iter().enumerate() {
            taps[t * c_out * c_in + oi] = v;
        }
    }
    let wp = w + 2;
    // Two spare values so that the last tap of the last pixel stays inside the plane.
    let plane = (h + 2) * wp + 2;
    let n = h * w;
    let rows_per_task = (column_block(h * wp) / wp).max(1);
    let mut out: Vec<f32> = Vec::with_capacity(b * c_out * n);
    let dst = SharedMut(out.as_mut_ptr());
    for i in 0..b {
        let mut padded = vec![0.0f32; c_in * plane];
        padded
            .par_chunks_mut(plane)
            .zip(x[i * c_in * n..(i + 1) * c_in * n].par_chunks(n))
            .for_each(|(p, src)| {
                for (y, row) in src.chunks_exact(w).enumerate() {
                    p[(y + 1) * wp + 1..][..w].copy_from_slice(row);
                }
            });
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
                    let bb = bias.as_ref().map_or(0.0, |b| b[o]);
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

/// [`conv3x3`] on a tensor that [`plain_cpu`] accepted.
pub(crate) fn conv3x3_tensor(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    map_tensor(x, conv.weight.dims()[0], |x, b, h, w| {
        conv3x3(conv, &x, b, h, w)
    })
}

/// Pixels per LayerNorm task: a `C × PIXELS` block stays in the core's cache between the
/// mean, variance and output passes.
const LN_PIXELS: usize = 512;

/// Restormer's channel LayerNorm of `x: [B, C, N]`: per pixel, the mean and biased variance
/// over the `C` channels, then `(x − mean)/√(var + ε)·w + b` (`bias` given) or
/// `x/√(var + ε)·w` (BiasFree, `bias` none).
pub(crate) fn layer_norm(
    x: &[f32],
    b: usize,
    c: usize,
    n: usize,
    weight: &[f32],
    bias: Option<&[f32]>,
    epsilon: f32,
) -> Vec<f32> {
    assert_eq!(x.len(), b * c * n, "layer_norm: input size");
    let mut out: Vec<f32> = Vec::with_capacity(x.len());
    let dst = SharedMut(out.as_mut_ptr());
    let blocks = n.div_ceil(LN_PIXELS);
    (0..b * blocks).into_par_iter().for_each(|t| {
        simd(
            #[inline(always)]
            || {
                let (i, p0) = (t / blocks, (t % blocks) * LN_PIXELS);
                let len = LN_PIXELS.min(n - p0);
                let plane = |ch: usize| &x[(i * c + ch) * n + p0..][..len];
                let mut mean = vec![0.0f32; len];
                for ch in 0..c {
                    mean.iter_mut().zip(plane(ch)).for_each(|(m, v)| *m += v);
                }
                mean.iter_mut().for_each(|m| *m /= c as f32);
                let mut var = vec![0.0f32; len];
                for ch in 0..c {
                    for ((s, v), m) in var.iter_mut().zip(plane(ch)).zip(&mean) {
                        *s += (v - m) * (v - m);
                    }
                }
                let inv_std: Vec<f32> = var
                    .iter()
                    .map(|s| 1.0 / (s / c as f32 + epsilon).sqrt())
                    .collect();
                for ch in 0..c {
                    // Safety: task t writes pixels p0..p0+len of every channel of batch item i.
                    let o = unsafe {
                        std::slice::from_raw_parts_mut(dst.at((i * c + ch) * n + p0), len)
                    };
                    let w = weight[ch];
                    match bias {
                        Some(bias) => {
                            let bb = bias[ch];
                            for (((o, v), m), r) in
                                o.iter_mut().zip(plane(ch)).zip(&mean).zip(&inv_std)
                            {
                                *o = (v - m) * r * w + bb;
                            }
                        }
                        None => {
                            for ((o, v), r) in o.iter_mut().zip(plane(ch)).zip(&inv_std) {
                                *o = v * r * w;
                            }
                        }
                    }
                }
            },
        )
    });
    // Safety: the tasks cover every (batch item, channel, pixel).
    unsafe { out.set_len(x.len()) };
    out
}

/// One output row of a depthwise 3×3 convolution from the three input rows around it
/// (`rows[1]` at the output row; all-zero rows stand for the padding outside the plane):
/// `out[x] = bias + Σ k[3·dy + dx]·rows[dy][x + dx − 1]`, zero outside the row, in one pass.
#[inline(always)]
fn depthwise_row(rows: [&[f32]; 3], k: &[f32], bias: f32, out: &mut [f32]) {
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
fn rows_around<'a>(
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
fn depthwise_params(conv: &Conv2d) -> (Vec<f32>, Option<Vec<f32>>) {
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
struct RowScratch {
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
fn in_place_rows(
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

/// Sum of squares with eight independent accumulators (so it vectorises).
#[inline(always)]
fn sum_squares(v: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let chunks = v.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for (a, x) in acc.iter_mut().zip(c) {
            *a += x * x;
        }
    }
    acc.iter().sum::<f32>() + rest.iter().map(|x| x * x).sum::<f32>()
}

/// MDTA after its depthwise convolution, for one batch item: from `qkv: [3C, N]` (queries,
/// keys, values), the per-head attention maps `A_h = softmax(τ_h · q̂_h·k̂_hᵀ)` with L2
/// normalised rows (norms at least 1e-12, as `F.normalize`), folded into the output
/// projection: returns `M = W_out · blockdiag(A_1 … A_heads)` (`[C, C]`), so that the block's
/// output is `M · V + bias`.
pub(crate) fn channel_attention(
    qkv: &[f32],
    c: usize,
    heads: usize,
    n: usize,
    temperature: &[f32],
    w_out: &[f32],
) -> Vec<f32> {
    assert!(qkv.len() >= 3 * c * n && temperature.len() == heads && w_out.len() == c * c);
    let hd = c / heads;
    let (q, k) = (&qkv[..c * n], &qkv[c * n..2 * c * n]);
    // Per column block: every head's hd×hd partial products, then |q_i|² and |k_j|².
    let len = heads * hd * hd + 2 * c;
    let block = column_block(n);
    let partial = |i: usize| {
        let c0 = i * block;
        let cols = block.min(n - c0);
        let mut acc = vec![0.0f32; len];
        for head in 0..heads {
            let r0 = head * hd * n + c0;
            // Safety: the lhs reads hd rows of `cols` values of q from r0 with row stride n;
            // the rhs reads kᵀ (element (p, j) = k[r0 + j·n + p]) in the same range of k;
            // the destination is this task's own hd×hd block of `acc`.
            unsafe {
                gemm1(
                    (hd, hd, cols),
                    acc.as_mut_ptr().add(head * hd * hd),
                    hd,
                    false,
                    View::rows(q.as_ptr().add(r0), n),
                    View::transposed(k.as_ptr().add(r0), n),
                );
            }
        }
        let norms = &mut acc[heads * hd * hd..];
        simd(
            #[inline(always)]
            || {
                for ch in 0..c {
                    norms[ch] = sum_squares(&q[ch * n + c0..][..cols]);
                    norms[c + ch] = sum_squares(&k[ch * n + c0..][..cols]);
                }
            },
        );
        acc
    };
    let sums = (0..n.div_ceil(block)).into_par_iter().map(partial).reduce(
        || vec![0.0f32; len],
        |mut a, b| {
            a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
            a
        },
    );
    let (dots, norms) = sums.split_at(heads * hd * hd);
    let norm = |i: usize| norms[i].sqrt().max(1e-12);
    // Softmax over each row of each head's logits.
    let mut attn = vec![0.0f32; heads * hd * hd];
    for head in 0..heads {
        for i in 0..hd {
            let qi = head * hd + i;
            let row = &mut attn[(head * hd + i) * hd..][..hd];
            for (j, r) in row.iter_mut().enumerate() {
                let kj = head * hd + j;
                *r = dots[(head * hd + i) * hd + j] / (norm(qi) * norm(c + kj)) * temperature[head];
            }
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            row.iter_mut().for_each(|r| *r = (*r - max).exp());
            let sum: f32 = row.iter().sum();
            row.iter_mut().for_each(|r| *r /= sum);
        }
    }
    // M[o, head·hd + j] = Σ_i W_out[o, head·hd + i] · A_head[i, j].
    let mut m = vec![0.0f32; c * c];
    for o in 0..c {
        for head in 0..heads {
            for i in 0..hd {
                let wv = w_out[o * c + head * hd + i];
                let a = &attn[(head * hd + i) * hd..][..hd];
                let dst = &mut m[o * c + head * hd..][..hd];
                dst.iter_mut().zip(a).for_each(|(d, a)| *d += wv * a);
            }
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backbone::{conv, depthwise3x3 as dw_conv};
    use crate::test_util::{device, max_abs_diff};
    use burn::module::Param;
    use burn::tensor::Distribution;

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
