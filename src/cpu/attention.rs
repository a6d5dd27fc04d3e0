//! MDTA's channel attention maps, folded into the output projection.

use rayon::prelude::*;

use super::conv::dot;
use super::engine::{
    SharedMut, View, Weights, column_block, gemm1, matmul_items, outer_sum, simd, sum_in_order,
};
use crate::model::{TileConfig, window_weights};

/// Sum of squares with eight independent accumulators (so it vectorises).
#[inline(always)]
pub(crate) fn sum_squares(v: &[f32]) -> f32 {
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

/// One item's attention maps and what their backward pass needs.
pub(crate) struct Maps {
    /// Per head, the `hd × hd` map `A_h` (softmax rows), heads one after another.
    pub attn: Vec<f32>,
    /// Per head, the cosine similarities `q̂_i·k̂_j` (the logits before the temperature).
    pub cos: Vec<f32>,
    /// The L2 norms of the query rows (`C`) then of the key rows (`C`), at least 1e-12.
    pub norms: Vec<f32>,
}

/// MDTA after its depthwise convolution, for one batch item: from `qkv: [3C, N]` (queries,
/// keys, values; only the queries and keys are read), the per-head attention maps
/// `A_h = softmax(τ_h · q̂_h·k̂_hᵀ)` with L2 normalised rows (norms at least 1e-12, as
/// `F.normalize`). The products over the pixels are accumulated per column block (one `gemm`
/// call per head and block) and summed.
pub(crate) fn attention_maps(
    qkv: &[f32],
    c: usize,
    heads: usize,
    n: usize,
    temperature: &[f32],
) -> Maps {
    assert!(qkv.len() >= 2 * c * n && temperature.len() == heads);
    let hd = c / heads;
    let (q, k) = (&qkv[..c * n], &qkv[c * n..2 * c * n]);
    // Per column block: every head's hd×hd partial products, then |q_i|² and |k_j|².
    let len = heads * hd * hd + 2 * c;
    let block = column_block(n.max(1));
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
    // Summed in block order: reproducible whatever the scheduling.
    let partials: Vec<Vec<f32>> = (0..n.div_ceil(block))
        .into_par_iter()
        .map(partial)
        .collect();
    let sums = sum_in_order(partials, len);
    let (dots, sq) = sums.split_at(heads * hd * hd);
    let norms: Vec<f32> = sq.iter().map(|s| s.sqrt().max(1e-12)).collect();
    let mut cos = vec![0.0f32; heads * hd * hd];
    let mut attn = vec![0.0f32; heads * hd * hd];
    for (head, &tau) in temperature.iter().enumerate() {
        for i in 0..hd {
            let qi = head * hd + i;
            let at = (head * hd + i) * hd;
            for j in 0..hd {
                let kj = head * hd + j;
                cos[at + j] = dots[at + j] / (norms[qi] * norms[c + kj]);
            }
            let row = &mut attn[at..at + hd];
            for (r, g) in row.iter_mut().zip(&cos[at..at + hd]) {
                *r = g * tau;
            }
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            row.iter_mut().for_each(|r| *r = (*r - max).exp());
            let sum: f32 = row.iter().sum();
            row.iter_mut().for_each(|r| *r /= sum);
        }
    }
    Maps { attn, cos, norms }
}

/// `M = W_out · blockdiag(A_1 … A_heads)` (`[C, C]`): the output projection with the
/// attention maps folded in, so that MDTA's output is `M · V + bias`.
pub(crate) fn fold(w_out: &[f32], attn: &[f32], c: usize, heads: usize) -> Vec<f32> {
    let hd = c / heads;
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

/// MDTA after its depthwise convolution, for one batch item: [`attention_maps`] folded into
/// the output projection ([`fold`]); returns `M` (`[C, C]`), so that the block's output is
/// `M · V + bias`.
pub(crate) fn channel_attention(
    qkv: &[f32],
    c: usize,
    heads: usize,
    n: usize,
    temperature: &[f32],
    w_out: &[f32],
) -> Vec<f32> {
    assert!(w_out.len() == c * c);
    let maps = attention_maps(qkv, c, heads, n, temperature);
    fold(w_out, &maps.attn, c, heads)
}

/// MDTA in local windows, for one item (TLC, Chu et al., ECCV 2022): the attention maps of
/// [`channel_attention`] are computed over each window of `window.tile` pixels (sharing
/// `window.overlap`), and each pixel's output is the average of its windows' `M_w · v`,
/// weighted by [`window_weights`] (the tiles' cross-fade, normalised per axis). Adds the
/// result to `out: [C, H·W]` (the bias is not included).
///
/// The weight of window `w` at pixel `(y, x)` is `ay_w(y) · ax_w(x)`, so each image row
/// accumulates `M_w · (α_w ∘ v)` over the windows that cover it directly into `out`
/// (one `gemm` per window and row), the rows in parallel, each in the windows' fixed order.
pub(crate) fn local_attention(
    qkv: &[f32],
    (c, heads): (usize, usize),
    (h, w): (usize, usize),
    window: TileConfig,
    temperature: &[f32],
    w_out: &[f32],
    out: &mut [f32],
) {
    let n = h * w;
    assert!(qkv.len() >= 3 * c * n && out.len() >= c * n);
    let (th, tw) = (window.tile.min(h), window.tile.min(w));
    let wn = th * tw;
    let ((ys, ay), (xs, ax)) = (window_weights(h, window), window_weights(w, window));
    // every window's M_w = W_out · blockdiag(A_w), row-major windows (y, then x)
    let mixing: Vec<Vec<f32>> = ys
        .iter()
        .flat_map(|&y0| xs.iter().map(move |&x0| (x0, y0)))
        .collect::<Vec<_>>()
        .par_iter()
        .map(|&(x0, y0)| {
            let mut part = Vec::with_capacity(2 * c * wn);
            for ch in 0..2 * c {
                for ty in 0..th {
                    part.extend_from_slice(&qkv[ch * n + (y0 + ty) * w + x0..][..tw]);
                }
            }
            let maps = attention_maps(&part, c, heads, wn, temperature);
            fold(w_out, &maps.attn, c, heads)
        })
        .collect();
    let v = &qkv[2 * c * n..3 * c * n];
    let dst = SharedMut(out.as_mut_ptr());
    (0..h).into_par_iter().for_each_init(
        || vec![0.0f32; c * tw],
        |scaled, y| {
            for (i, &y0) in ys.iter().enumerate() {
                if y < y0 || y >= y0 + th {
                    continue;
                }
                let wy = ay[i][y - y0];
                for (j, &x0) in xs.iter().enumerate() {
                    let row = y * w + x0;
                    simd(
                        #[inline(always)]
                        || {
                            for ch in 0..c {
                                let src = &v[ch * n + row..][..tw];
                                let dst = &mut scaled[ch * tw..][..tw];
                                for ((d, s), a) in dst.iter_mut().zip(src).zip(&ax[j]) {
                                    *d = s * a * wy;
                                }
                            }
                        },
                    );
                    // Safety: this task alone writes row y of every channel of `out` (c rows of
                    // tw values from `row`, n apart, inside `out` as asserted); the operands
                    // are this window's c×c map and the c×tw scaled values.
                    unsafe {
                        gemm1(
                            (c, tw, c),
                            dst.at(row),
                            n,
                            true,
                            View::rows(mixing[i * xs.len() + j].as_ptr(), c),
                            View::rows(scaled.as_ptr(), tw),
                        );
                    }
                }
            }
        },
    );
}

/// What the backward pass of one item's attention gives back.
pub(crate) struct AttentionGrads {
    /// The gradient of `qkv` (`[3C, N]`).
    pub dqkv: Vec<f32>,
    /// This item's share of the output projection's gradient (`[C, C]`).
    pub dw_out: Vec<f32>,
    /// This item's share of the temperatures' gradient (`[heads]`).
    pub dtemperature: Vec<f32>,
}

/// The backward pass of MDTA's attention for one item: given `qkv` (`[3C, N]`), its `maps`,
/// the output projection `w_out` and the gradient `da` (`[C, N]`) of `a = M·V` (`M` =
/// [`fold`]), the gradients of `qkv`, of `w_out` and of the temperatures.
///
/// With `D = blockdiag(A)`: `dM = da·Vᵀ`, `dV = Mᵀ·da`, `dW_out = dM·Dᵀ`, `dA_h` the diagonal
/// blocks of `W_outᵀ·dM`; the softmax gives `dS = A⊙(dA − rowsum(dA⊙A))`; with `S = τ·G`,
/// `G_ij = P_ij/(|q_i||k_j|)`: `dτ = Σ dS⊙G`, `dP = τ·dS/(|q_i||k_j|)`, and the norms
/// `d|q_i| = −Σ_j dS_ij·S_ij/|q_i|` (likewise for keys), so that
/// `dq_i = Σ_j dP_ij·k_j + d|q_i|·q_i/|q_i|` and `dk_j = Σ_i dP_ij·q_i + d|k_j|·k_j/|k_j|`
/// (no norm term where the norm was clamped at 1e-12).
pub(crate) fn attention_backward(
    qkv: &[f32],
    maps: &Maps,
    w_out: &[f32],
    temperature: &[f32],
    da: &[f32],
    (c, heads, n): (usize, usize, usize),
) -> AttentionGrads {
    let hd = c / heads;
    let v = &qkv[2 * c * n..3 * c * n];
    let m = fold(w_out, &maps.attn, c, heads);
    // dM = da·Vᵀ
    let dm = outer_sum(da, 0, v, 0, (c, c, n), 1);
    let mut dqkv = vec![0.0f32; 3 * c * n];
    // dV = Mᵀ·da
    matmul_items(
        Weights::transpose_of(&m, c, c),
        da,
        0,
        &mut dqkv[2 * c * n..],
        0,
        1,
        n,
        false,
    );
    let mut dw_out = vec![0.0f32; c * c];
    let mut dtemperature = vec![0.0f32; heads];
    let mut dp = vec![0.0f32; heads * hd * hd];
    let mut alpha = vec![0.0f32; 2 * c];
    for head in 0..heads {
        let a = &maps.attn[head * hd * hd..][..hd * hd];
        let g = &maps.cos[head * hd * hd..][..hd * hd];
        let tau = temperature[head];
        // dW_out[o, h·hd + i] = Σ_j dM[o, h·hd + j]·A[i, j]
        // dA[i, j] = Σ_o W_out[o, h·hd + i]·dM[o, h·hd + j]
        let mut d_a = vec![0.0f32; hd * hd];
        for o in 0..c {
            let dmr = &dm[o * c + head * hd..][..hd];
            let wr = &w_out[o * c + head * hd..][..hd];
            for i in 0..hd {
                let ar = &a[i * hd..(i + 1) * hd];
                dw_out[o * c + head * hd + i] += dot(dmr, ar);
                let wv = wr[i];
                d_a[i * hd..(i + 1) * hd]
                    .iter_mut()
                    .zip(dmr)
                    .for_each(|(d, x)| *d += wv * x);
            }
        }
        for i in 0..hd {
            let (ar, dar) = (&a[i * hd..(i + 1) * hd], &d_a[i * hd..(i + 1) * hd]);
            let inner = dot(ar, dar);
            let qi = head * hd + i;
            for j in 0..hd {
                let kj = head * hd + j;
                let ds = ar[j] * (dar[j] - inner);
                let gij = g[i * hd + j];
                dtemperature[head] += ds * gij;
                dp[(head * hd + i) * hd + j] = ds * tau / (maps.norms[qi] * maps.norms[c + kj]);
                // d|q_i| and d|k_j| through S_ij = τ·G_ij ∝ 1/(|q_i||k_j|)
                let ds_s = ds * tau * gij;
                alpha[qi] -= ds_s;
                alpha[c + kj] -= ds_s;
            }
        }
    }
    // α → d|·| / |·|², zero where the norm was clamped (no gradient through the clamp).
    let sq = |x: f32| x * x;
    for (ch, a) in alpha.iter_mut().enumerate() {
        let nrm = maps.norms[ch];
        *a = if nrm > 1e-12 { *a / sq(nrm) } else { 0.0 };
    }
    let (q, k) = (&qkv[..c * n], &qkv[c * n..2 * c * n]);
    for head in 0..heads {
        let dph = &dp[head * hd * hd..][..hd * hd];
        let rows = head * hd * n..(head + 1) * hd * n;
        // dq_h = dP_h·k_h; dk_h = dP_hᵀ·q_h
        matmul_items(
            Weights::new(dph, None, hd, hd),
            &k[rows.clone()],
            0,
            &mut dqkv[rows.clone()],
            0,
            1,
            n,
            false,
        );
        let krows = c * n + rows.start..c * n + rows.end;
        matmul_items(
            Weights::transpose_of(dph, hd, hd),
            &q[rows.clone()],
            0,
            &mut dqkv[krows],
            0,
            1,
            n,
            false,
        );
    }
    // the norm terms
    let (dq, rest) = dqkv.split_at_mut(c * n);
    let dk = &mut rest[..c * n];
    dq.par_chunks_mut(n.max(1))
        .zip(dk.par_chunks_mut(n.max(1)))
        .enumerate()
        .for_each(|(ch, (dqr, dkr))| {
            let (aq, ak) = (alpha[ch], alpha[c + ch]);
            let (qr, kr) = (&q[ch * n..(ch + 1) * n], &k[ch * n..(ch + 1) * n]);
            simd(
                #[inline(always)]
                || {
                    dqr.iter_mut().zip(qr).for_each(|(d, x)| *d += aq * x);
                    dkr.iter_mut().zip(kr).for_each(|(d, x)| *d += ak * x);
                },
            )
        });
    AttentionGrads {
        dqkv,
        dw_out,
        dtemperature,
    }
}
