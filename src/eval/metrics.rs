//! PSNR and SSIM exactly as PromptIR's `utils/val_utils.py` computes them with scikit-image:
//! RGB in `[0, 1]`, `data_range = 1`, no luminance conversion.
//!
//! - [`psnr`]: `10·log10(1 / MSE)`, the MSE over every sample of every channel
//!   (`skimage.metrics.peak_signal_noise_ratio(clean, restored, data_range=1)`).
//! - [`ssim`]: `skimage.metrics.structural_similarity(clean, restored, data_range=1,
//!   channel_axis=-1)` with its defaults: a 7×7 uniform window, `K1 = 0.01`, `K2 = 0.03`,
//!   sample covariances (`use_sample_covariance=True`, the factor `N/(N−1)` with `N = 49`),
//!   the SSIM map averaged over the pixels at least 3 from every border (skimage crops
//!   `(win_size − 1)/2` so that no window reaches the padding), then over the channels.
//! - [`restoration_scores`]: what the papers report for one image: the restored image clipped
//!   to `[0, 1]`, both images centre-cropped to a multiple of 16 (PromptIR's `crop_img`), then
//!   PSNR and SSIM.
//!
//! Everything is computed in `f64`.

use crate::base::image::Image;
use crate::{Error, Result};

/// SSIM window side (skimage's default `win_size`).
pub const SSIM_WINDOW: usize = 7;
/// SSIM `K1` (skimage's default).
pub const SSIM_K1: f64 = 0.01;
/// SSIM `K2` (skimage's default).
pub const SSIM_K2: f64 = 0.03;
/// The side multiple PromptIR's evaluation centre-crops test images to.
pub const EVAL_CROP_MULTIPLE: usize = 16;

fn same_size(a: &Image, b: &Image) -> Result<()> {
    if (a.width, a.height) != (b.width, b.height) || a.data.len() != b.data.len() {
        return Err(Error::Config(format!(
            "metric needs images of one size, got {}×{} and {}×{}",
            a.width, a.height, b.width, b.height
        )));
    }
    Ok(())
}

/// Mean squared error over all samples.
pub fn mse(a: &Image, b: &Image) -> Result<f64> {
    same_size(a, b)?;
    if a.data.is_empty() {
        return Err(Error::Config("metric of an empty image".into()));
    }
    let s: f64 = a
        .data
        .iter()
        .zip(&b.data)
        .map(|(&x, &y)| {
            let d = x as f64 - y as f64;
            d * d
        })
        .sum();
    Ok(s / a.data.len() as f64)
}

/// Peak signal-to-noise ratio in dB for `data_range = 1`: `10·log10(1 / MSE)`; `+∞` for
/// identical images.
pub fn psnr(a: &Image, b: &Image) -> Result<f64> {
    let m = mse(a, b)?;
    Ok(10.0 * (1.0 / m).log10())
}

/// Structural similarity, scikit-image's default (see the module docs), averaged over the
/// three channels. Both sides must be at least 7 pixels.
pub fn ssim(a: &Image, b: &Image) -> Result<f64> {
    same_size(a, b)?;
    if a.width < SSIM_WINDOW || a.height < SSIM_WINDOW {
        return Err(Error::Config(format!(
            "SSIM needs images of at least {SSIM_WINDOW}×{SSIM_WINDOW}, got {}×{}",
            a.width, a.height
        )));
    }
    let channels = a.data.len() / a.pixels();
    let total: f64 = (0..channels)
        .map(|c| ssim_plane(a.channel(c), b.channel(c), a.width, a.height))
        .sum();
    Ok(total / channels as f64)
}

/// Windowed sums of a plane over every full `SSIM_WINDOW`² window, by a summed-area table.
/// Output `(h − 6) × (w − 6)`, entry `(y, x)` the window centred at `(y + 3, x + 3)`.
fn window_sums(v: &[f64], w: usize, h: usize) -> Vec<f64> {
    let mut sat = vec![0.0f64; (w + 1) * (h + 1)];
    for y in 0..h {
        let mut row = 0.0;
        for x in 0..w {
            row += v[y * w + x];
            sat[(y + 1) * (w + 1) + x + 1] = sat[y * (w + 1) + x + 1] + row;
        }
    }
    let k = SSIM_WINDOW;
    let (ow, oh) = (w + 1 - k, h + 1 - k);
    let mut out = Vec::with_capacity(ow * oh);
    for y in 0..oh {
        for x in 0..ow {
            let at = |yy: usize, xx: usize| sat[yy * (w + 1) + xx];
            out.push(at(y + k, x + k) - at(y, x + k) - at(y + k, x) + at(y, x));
        }
    }
    out
}

fn ssim_plane(a: &[f32], b: &[f32], w: usize, h: usize) -> f64 {
    let x: Vec<f64> = a.iter().map(|&v| v as f64).collect();
    let y: Vec<f64> = b.iter().map(|&v| v as f64).collect();
    let prod = |p: &[f64], q: &[f64]| p.iter().zip(q).map(|(u, v)| u * v).collect::<Vec<_>>();
    let np = (SSIM_WINDOW * SSIM_WINDOW) as f64;
    let cov_norm = np / (np - 1.0);
    let (sx, sy) = (window_sums(&x, w, h), window_sums(&y, w, h));
    let sxx = window_sums(&prod(&x, &x), w, h);
    let syy = window_sums(&prod(&y, &y), w, h);
    let sxy = window_sums(&prod(&x, &y), w, h);
    let (c1, c2) = (SSIM_K1 * SSIM_K1, SSIM_K2 * SSIM_K2);
    let mut total = 0.0;
    for i in 0..sx.len() {
        let (ux, uy) = (sx[i] / np, sy[i] / np);
        let vx = cov_norm * (sxx[i] / np - ux * ux);
        let vy = cov_norm * (syy[i] / np - uy * uy);
        let vxy = cov_norm * (sxy[i] / np - ux * uy);
        let num = (2.0 * ux * uy + c1) * (2.0 * vxy + c2);
        let den = (ux * ux + uy * uy + c1) * (vx + vy + c2);
        total += num / den;
    }
    total / sx.len() as f64
}

/// PSNR (dB) and SSIM of one restored image against its clean target, as the papers report
/// them: `restored` clipped to `[0, 1]`, both centre-cropped to a multiple of 16.
pub fn restoration_scores(restored: &Image, clean: &Image) -> Result<(f64, f64)> {
    same_size(restored, clean)?;
    let r = restored.clamped().crop_to_multiple(EVAL_CROP_MULTIPLE)?;
    let c = clean.clamped().crop_to_multiple(EVAL_CROP_MULTIPLE)?;
    Ok((psnr(&r, &c)?, ssim(&r, &c)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(w: usize, h: usize, f: impl Fn(usize, usize, usize) -> f32) -> Image {
        let mut data = Vec::new();
        for c in 0..3 {
            for y in 0..h {
                for x in 0..w {
                    data.push(f(c, x, y));
                }
            }
        }
        Image::from_planar(w, h, data).unwrap()
    }

    #[test]
    fn psnr_of_a_constant_offset() {
        let a = Image::filled(9, 8, [0.5, 0.5, 0.5]);
        let b = Image::filled(9, 8, [0.6, 0.6, 0.6]);
        // MSE 0.01 -> 20 dB (f32 0.6 − 0.5 is 0.1 to ~1e-8)
        assert!((psnr(&a, &b).unwrap() - 20.0).abs() < 1e-5);
        assert!(psnr(&a, &a).unwrap().is_infinite());
    }

    #[test]
    fn ssim_of_identical_images_is_one_and_drops_with_noise() {
        let a = ramp(20, 17, |c, x, y| {
            ((x * 7 + y * 3 + c * 11) % 13) as f32 / 13.0
        });
        assert!((ssim(&a, &a).unwrap() - 1.0).abs() < 1e-12);
        let b = ramp(20, 17, |c, x, y| {
            ((x * 7 + y * 3 + c * 11) % 13) as f32 / 13.0
                + if (x + y) % 2 == 0 { 0.1 } else { -0.1 }
        });
        let s = ssim(&a, &b).unwrap();
        assert!(s < 0.95 && s > 0.0, "{s}");
        assert!(
            ssim(
                &Image::filled(6, 6, [0.0; 3]),
                &Image::filled(6, 6, [0.0; 3])
            )
            .is_err()
        );
    }

    #[test]
    fn ssim_matches_a_direct_window_computation() {
        // one window (7×7 image): skimage's formula evaluated by hand
        let a = ramp(7, 7, |c, x, y| {
            (x as f32 * 0.1 + y as f32 * 0.03 + c as f32 * 0.2) % 1.0
        });
        let b = ramp(7, 7, |c, x, y| ((x * y + c) % 5) as f32 / 5.0);
        let mut want = 0.0;
        for c in 0..3 {
            let (p, q) = (a.channel(c), b.channel(c));
            let n = 49.0f64;
            let mx = p.iter().map(|&v| v as f64).sum::<f64>() / n;
            let my = q.iter().map(|&v| v as f64).sum::<f64>() / n;
            let vx = p.iter().map(|&v| (v as f64 - mx).powi(2)).sum::<f64>() / (n - 1.0);
            let vy = q.iter().map(|&v| (v as f64 - my).powi(2)).sum::<f64>() / (n - 1.0);
            let cxy = p
                .iter()
                .zip(q)
                .map(|(&u, &v)| (u as f64 - mx) * (v as f64 - my))
                .sum::<f64>()
                / (n - 1.0);
            let (c1, c2) = (1e-4, 9e-4);
            want += (2.0 * mx * my + c1) * (2.0 * cxy + c2)
                / ((mx * mx + my * my + c1) * (vx + vy + c2))
                / 3.0;
        }
        assert!((ssim(&a, &b).unwrap() - want).abs() < 1e-12);
    }

    #[test]
    fn scores_clip_and_crop_to_sixteen() {
        let clean = ramp(37, 21, |_, x, y| (x + y) as f32 / 60.0);
        let mut over = clean.clone();
        over.data.iter_mut().for_each(|v| *v += 2.0); // clipped to 1
        let (p, _) = restoration_scores(&over, &clean).unwrap();
        let c = clean.crop_to_multiple(16).unwrap();
        let ones = Image::filled(c.width, c.height, [1.0; 3]);
        assert_eq!((c.width, c.height), (32, 16));
        assert!((p - psnr(&ones, &c).unwrap()).abs() < 1e-12);
    }
}
