//! Generic machinery of the CPU engine: tensors in and out as `f32` buffers, a shared
//! output pointer for parallel tasks, the AVX2/FMA switch, single-threaded `gemm` calls on
//! strided views, and wide matrix products split over column blocks.

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

/// Whether `x` is an `f32` tensor on flex's autodiff device (training on the CPU), the case
/// the engine's training nodes ([`super::train`]) take.
pub(crate) fn flex_autodiff<const D: usize>(x: &Tensor<D>) -> bool {
    #[cfg(feature = "flex")]
    {
        let d = x.device();
        d.is_autodiff() && x.dtype() == DType::F32 && d.without_autodiff() == Device::flex()
    }
    #[cfg(not(feature = "flex"))]
    {
        let _ = x;
        false
    }
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
pub(crate) struct SharedMut(pub(crate) *mut f32);
unsafe impl Send for SharedMut {}
unsafe impl Sync for SharedMut {}

impl SharedMut {
    pub(crate) fn at(self, offset: usize) -> *mut f32 {
        // Dereferencing is the caller's business: offsets stay inside the buffer.
        self.0.wrapping_add(offset)
    }

    pub(crate) fn shift(self, offset: usize) -> Self {
        SharedMut(self.at(offset))
    }
}

/// Columns per parallel task: enough tasks to balance the cores, each wide enough that its
/// share of `X` amortises `gemm`'s packing (measured: 2048–4096 columns are best here).
pub(crate) fn column_block(n: usize) -> usize {
    let tasks = 4 * rayon::current_num_threads().max(1);
    n.div_ceil(tasks).clamp(256, 4096).min(n.max(1))
}

/// Runs `f` compiled for AVX2 and FMA when the processor has them (the crate is built for
/// the x86-64 baseline, SSE2). `f` and what it calls must be `#[inline(always)]` for the
/// wider instructions to reach them; elsewhere, or on other processors, `f` runs as built.
#[inline(always)]
pub(crate) fn simd<R>(f: impl FnOnce() -> R) -> R {
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
    pub(crate) unsafe fn run(self, len: usize, write: impl FnOnce(SharedMut, bool)) {
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
pub(crate) struct View {
    ptr: *const f32,
    row: isize,
    col: isize,
}

// Safety: a view only reads, through pointers the caller vouches for (see `gemm1`).
unsafe impl Send for View {}
unsafe impl Sync for View {}

impl View {
    /// Row-major with rows `stride` values apart.
    pub(crate) fn rows(ptr: *const f32, stride: usize) -> Self {
        View {
            ptr,
            row: stride as isize,
            col: 1,
        }
    }

    /// The transpose of a row-major matrix whose rows are `stride` values apart.
    pub(crate) fn transposed(ptr: *const f32, stride: usize) -> Self {
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
pub(crate) unsafe fn gemm1(
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

/// A small matrix `W: [m, k]` and an optional bias per row, the left operand of
/// [`matmul_wide`]: `w` row-major `[m, k]`, or, with `transposed`, row-major `[k, m]` (the
/// matrix used is then the transpose of the one stored: a backward pass's `Wᵀ`).
#[derive(Clone, Copy)]
pub(crate) struct Weights<'a> {
    pub w: &'a [f32],
    pub bias: Option<&'a [f32]>,
    pub m: usize,
    pub k: usize,
    pub transposed: bool,
}

impl<'a> Weights<'a> {
    /// `W: [m, k]` stored row-major.
    pub(crate) fn new(w: &'a [f32], bias: Option<&'a [f32]>, m: usize, k: usize) -> Self {
        Weights {
            w,
            bias,
            m,
            k,
            transposed: false,
        }
    }

    /// The transpose of the row-major `[k, m]` matrix `w`: an `[m, k]` operand.
    pub(crate) fn transpose_of(w: &'a [f32], m: usize, k: usize) -> Self {
        Weights {
            w,
            bias: None,
            m,
            k,
            transposed: true,
        }
    }

    fn view(&self) -> View {
        if self.transposed {
            View::transposed(self.w.as_ptr(), self.m)
        } else {
            View::rows(self.w.as_ptr(), self.k)
        }
    }
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
pub(crate) unsafe fn matmul_wide(
    dst: SharedMut,
    accumulate: bool,
    wts: Weights<'_>,
    x: &[f32],
    n: usize,
) {
    let Weights { w, bias, m, k, .. } = wts;
    let lhs = wts.view();
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
                lhs,
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
                let wts = Weights::new(&w, bias, m, k);
                matmul_wide(dst.shift(i * m * n), acc, wts, &x.data[i * x.stride..], n);
            }
        });
    }
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

/// `dst (+)= W · X_i` for every item `i`: the products of one small `W` with many wide
/// matrices, `X_i: [k, n]` at `x[i·x_stride..]`, `dst_i: [m, n]` at `dst[i·dst_stride..]`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul_items(
    wts: Weights<'_>,
    x: &[f32],
    x_stride: usize,
    dst: &mut [f32],
    dst_stride: usize,
    items: usize,
    n: usize,
    accumulate: bool,
) {
    assert!(items == 0 || dst.len() >= (items - 1) * dst_stride + wts.m * n);
    // Safety: inside `dst`, as asserted.
    unsafe {
        matmul_items_raw(
            wts,
            x,
            x_stride,
            SharedMut(dst.as_mut_ptr()),
            dst_stride,
            items,
            n,
            accumulate,
        )
    }
}

/// [`matmul_items`] into a raw destination (e.g. a [`filled`] buffer, with `accumulate`
/// false: every value is written).
///
/// # Safety
/// `dst` must hold `(items − 1)·dst_stride + m·n` values that nothing else accesses meanwhile
/// (initialised when `accumulate`), and item destinations must not overlap.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn matmul_items_raw(
    wts: Weights<'_>,
    x: &[f32],
    x_stride: usize,
    dst: SharedMut,
    dst_stride: usize,
    items: usize,
    n: usize,
    accumulate: bool,
) {
    let block = column_block(n.max(1));
    let blocks = n.div_ceil(block);
    let lhs = wts.view();
    let Weights { w, bias, m, k, .. } = wts;
    assert!(w.len() >= m * k, "matmul_items: weights too short");
    assert!(
        bias.is_none_or(|b| b.len() >= m),
        "matmul_items: bias too short"
    );
    assert!(
        items == 0 || x.len() >= (items - 1) * x_stride + k * n,
        "matmul_items: x too short"
    );
    // Items and column blocks as one pool of tasks, so that small items keep every core busy.
    (0..items * blocks).into_par_iter().for_each(|t| {
        let (i, c0) = (t / blocks, (t % blocks) * block);
        let cols = block.min(n - c0);
        let d = dst.shift(i * dst_stride);
        // Safety: task t writes columns c0..c0+cols of item i's rows, disjoint from the other
        // tasks, inside the values the caller vouched for.
        unsafe {
            gemm1(
                (m, cols, k),
                d.at(c0),
                n,
                accumulate,
                lhs,
                View::rows(x.as_ptr().add(i * x_stride + c0), n),
            );
            if let Some(bias) = bias {
                for (r, &bv) in bias[..m].iter().enumerate() {
                    let row = std::slice::from_raw_parts_mut(d.at(r * n + c0), cols);
                    row.iter_mut().for_each(|v| *v += bv);
                }
            }
        }
    });
}

/// `Σ_i A_i · B_iᵀ` over items: `A_i: [m, n]` at `a[i·a_stride..]`, `B_i: [k, n]` at
/// `b[i·b_stride..]`, rows `n` apart; the `[m, k]` result, row-major. This is the weight
/// gradient of a product `Y = W·X` over many pixels (`dW = Σ dY·Xᵀ`): small `m, k`, long `n`,
/// so the pixels are split into column blocks, each task computes a partial `[m, k]` product
/// with one `gemm` call, and the partial sums are added.
pub(crate) fn outer_sum(
    a: &[f32],
    a_stride: usize,
    b: &[f32],
    b_stride: usize,
    (m, k, n): (usize, usize, usize),
    items: usize,
) -> Vec<f32> {
    outer_sum_rows((a, a_stride, n), (b, b_stride, n), (m, k, n), items)
}

/// [`outer_sum`] with the rows of `A_i` and of `B_i` each their own distance apart (`(data,
/// item stride, row stride)`; `n` values are used of each row): e.g. `B_i` a shifted view of
/// a zero-padded plane whose rows are longer than `n`.
pub(crate) fn outer_sum_rows(
    (a, a_stride, a_row): (&[f32], usize, usize),
    (b, b_stride, b_row): (&[f32], usize, usize),
    (m, k, n): (usize, usize, usize),
    items: usize,
) -> Vec<f32> {
    if n == 0 || items == 0 || m == 0 || k == 0 {
        return vec![0.0; m * k];
    }
    assert!(a_row >= n && b_row >= n, "outer_sum: rows shorter than n");
    assert!(
        a.len() >= (items - 1) * a_stride + (m - 1) * a_row + n,
        "outer_sum: a too short"
    );
    assert!(
        b.len() >= (items - 1) * b_stride + (k - 1) * b_row + n,
        "outer_sum: b too short"
    );
    let block = column_block(n);
    let blocks = n.div_ceil(block);
    // One partial product per task, summed in task order: the result does not depend on how
    // rayon schedules the tasks (training must be reproducible bit for bit).
    let partials: Vec<Vec<f32>> = (0..items * blocks)
        .into_par_iter()
        .map(|t| {
            let (i, c0) = (t / blocks, (t % blocks) * block);
            let cols = block.min(n - c0);
            let mut acc = vec![0.0f32; m * k];
            // Safety: the lhs reads m rows of `cols` values from item i's A at column c0 (row
            // stride a_row), the rhs reads Bᵀ (element (p, j) = B[j·b_row + p]) in the same
            // columns of item i's B, inside the lengths asserted; the destination is this
            // task's own [m, k] buffer.
            unsafe {
                gemm1(
                    (m, k, cols),
                    acc.as_mut_ptr(),
                    k,
                    false,
                    View::rows(a.as_ptr().add(i * a_stride + c0), a_row),
                    View::transposed(b.as_ptr().add(i * b_stride + c0), b_row),
                );
            }
            acc
        })
        .collect();
    sum_in_order(partials, m * k)
}

/// The element-wise sum of `parts` (each `len` long), added in their order.
pub(crate) fn sum_in_order(parts: Vec<Vec<f32>>, len: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; len];
    for p in &parts {
        out.iter_mut().zip(p).for_each(|(o, v)| *o += v);
    }
    out
}

/// `Σ v` with eight independent accumulators (so it vectorises).
#[inline(always)]
pub(crate) fn sum8(v: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let chunks = v.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for (a, x) in acc.iter_mut().zip(c) {
            *a += x;
        }
    }
    acc.iter().sum::<f32>() + rest.iter().sum::<f32>()
}

/// Per row `r` of each item's `[rows, n]` matrix, the sum over the items and the `n` columns:
/// a bias gradient.
pub(crate) fn row_sums(x: &[f32], rows: usize, n: usize, items: usize) -> Vec<f32> {
    if n == 0 {
        return vec![0.0; rows];
    }
    let per: Vec<f64> = x[..items * rows * n]
        .par_chunks(n)
        .map(|row| simd(|| sum8(row)) as f64)
        .collect();
    (0..rows)
        .map(|r| (0..items).map(|i| per[i * rows + r]).sum::<f64>() as f32)
        .collect()
}

/// A vector of `len` values that `fill` must write completely (through the pointer it is
/// given, from parallel tasks if it likes) before it is read: the output buffers of kernels
/// that write every value, which need no zeroing pass.
pub(crate) fn filled(len: usize, fill: impl FnOnce(SharedMut)) -> Vec<f32> {
    let mut v: Vec<f32> = Vec::with_capacity(len);
    fill(SharedMut(v.as_mut_ptr()));
    // Safety: `fill` wrote all `len` values (the caller's contract).
    unsafe { v.set_len(len) };
    v
}
