//! Restormer's channel LayerNorm.

use rayon::prelude::*;

use super::engine::{SharedMut, simd, sum_in_order};

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

/// The gradients of [`layer_norm`] given the output's gradient `dy`: `(dx, dweight, dbias)`
/// (`dbias` is computed for the WithBias form, `bias` given, and is zero otherwise).
///
/// Per pixel, with `r = 1/√(var + ε)` over the `C` channels and `ĝ = dy·w`:
/// - WithBias, `y = (x − μ)·r·w + b`, `x̂ = (x − μ)·r`:
///   `dx = r·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂))`, `dw = Σ dy·x̂`, `db = Σ dy`;
/// - BiasFree, `y = x·r·w`: `dx = r·ĝ − r³·(x − μ)·mean(ĝ·x)`, `dw = Σ dy·x·r`.
pub(crate) fn layer_norm_backward(
    x: &[f32],
    dy: &[f32],
    (b, c, n): (usize, usize, usize),
    weight: &[f32],
    with_bias: bool,
    epsilon: f32,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    assert_eq!(x.len(), b * c * n, "layer_norm_backward: input size");
    assert_eq!(dy.len(), x.len(), "layer_norm_backward: gradient size");
    let mut dx: Vec<f32> = vec![0.0; x.len()];
    let dst = SharedMut(dx.as_mut_ptr());
    let blocks = n.div_ceil(LN_PIXELS);
    let partials = (0..b * blocks)
        .into_par_iter()
        .map(|t| {
            simd(
                #[inline(always)]
                || {
                    let (i, p0) = (t / blocks, (t % blocks) * LN_PIXELS);
                    let len = LN_PIXELS.min(n - p0);
                    let plane = |buf, ch| pixels(buf, (i * c + ch) * n + p0, len);
                    let cf = c as f32;
                    let mut mean = vec![0.0f32; len];
                    for ch in 0..c {
                        mean.iter_mut().zip(plane(x, ch)).for_each(|(m, v)| *m += v);
                    }
                    mean.iter_mut().for_each(|m| *m /= cf);
                    let mut var = vec![0.0f32; len];
                    for ch in 0..c {
                        for ((s, v), m) in var.iter_mut().zip(plane(x, ch)).zip(&mean) {
                            *s += (v - m) * (v - m);
                        }
                    }
                    let r: Vec<f32> = var
                        .iter()
                        .map(|s| 1.0 / (s / cf + epsilon).sqrt())
                        .collect();
                    // Per pixel: mean of ĝ (WithBias) and mean of ĝ·x̂ (or ĝ·x).
                    let mut sum_g = vec![0.0f32; len];
                    let mut sum_gx = vec![0.0f32; len];
                    let mut dw = vec![0.0f32; c];
                    let mut db = vec![0.0f32; c];
                    for ch in 0..c {
                        let wc = weight[ch];
                        let (xs, gs) = (plane(x, ch), plane(dy, ch));
                        let (mut dwc, mut dbc) = (0.0f32, 0.0f32);
                        for p in 0..len {
                            let g = gs[p];
                            let xh = if with_bias {
                                (xs[p] - mean[p]) * r[p]
                            } else {
                                xs[p] * r[p]
                            };
                            dwc += g * xh;
                            dbc += g;
                            sum_g[p] += g * wc;
                            sum_gx[p] += g * wc * if with_bias { xh } else { xs[p] };
                        }
                        dw[ch] = dwc;
                        db[ch] = dbc;
                    }
                    for (ch, &wc) in weight.iter().enumerate().take(c) {
                        let (xs, gs) = (plane(x, ch), plane(dy, ch));
                        // Safety: task t writes pixels p0..p0+len of every channel of item i.
                        let o = unsafe {
                            std::slice::from_raw_parts_mut(dst.at((i * c + ch) * n + p0), len)
                        };
                        for p in 0..len {
                            let g = gs[p] * wc;
                            o[p] = if with_bias {
                                let xh = (xs[p] - mean[p]) * r[p];
                                r[p] * (g - sum_g[p] / cf - xh * sum_gx[p] / cf)
                            } else {
                                r[p] * g - r[p] * r[p] * r[p] * (xs[p] - mean[p]) * sum_gx[p] / cf
                            };
                        }
                    }
                    [dw, db].concat()
                },
            )
        })
        .collect::<Vec<_>>();
    // Summed in task order: reproducible whatever the scheduling.
    let sums = sum_in_order(partials, 2 * c);
    let (dw, db) = (sums[..c].to_vec(), sums[c..].to_vec());
    let db = if with_bias { db } else { vec![0.0; c] };
    (dx, dw, db)
}

#[inline(always)]
fn pixels(buf: &[f32], start: usize, len: usize) -> &[f32] {
    &buf[start..start + len]
}
