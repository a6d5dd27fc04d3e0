//! Synthetic rain streaks in the style of Rain100L / Rain100H.

use rand::Rng;

use super::kernel::Kernel;
use crate::base::image::Image;
use crate::base::rng::uniform;

/// Rain streaks: sparse random seeds smeared by a tilted line (motion) kernel, screen-blended
/// onto the image.
///
/// For each of `layers` streak layers:
/// 1. draw `density · W · H` seed points uniformly (over the image plus a margin of one streak
///    length, so streaks enter from the borders), each with a brightness
///    `b · u`, `b ~ U(brightness)`, `u ~ U(0.6, 1)`;
/// 2. stamp at each seed a line kernel of length `L ~ U(length)`, width `thickness`, tilted by
///    `θ = θ₀ + U(−angle_jitter, angle_jitter)` from vertical (`θ₀ ~ U(angle)` once per image,
///    so all layers fall roughly the same way), with ends tapered by `1 − |t|³`, scaled so a
///    lone streak peaks at its seed brightness → layer `Sₗ`, clamped to `[0, 1]`.
///
/// Layers combine as `S = 1 − Πₗ (1 − Sₗ)`. A rain-accumulation veil (Rain100H's fog) mixes
/// the image toward grey `0.8`: `J' = (1 − v)·J + v·0.8`, `v ~ U(veil)`. The result is the screen
/// blend `I = 1 − (1 − J')(1 − S)`, which brightens like light scattered by drops and never
/// leaves `[0, 1]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rain {
    /// Number of streak layers (Rain100L-like: 1, Rain100H-like: 3).
    pub layers: usize,
    /// Seeds per pixel and layer, a range.
    pub density: (f32, f32),
    /// Streak length in pixels, a range.
    pub length: (f32, f32),
    /// Tilt from vertical in degrees (positive leans right at the bottom), a range.
    pub angle: (f32, f32),
    /// Per-layer tilt deviation in degrees.
    pub angle_jitter: f32,
    /// Streak width in pixels, a range.
    pub thickness: (f32, f32),
    /// Peak streak intensity, a range in `[0, 1]`.
    pub brightness: (f32, f32),
    /// Veil strength, a range in `[0, 1]`.
    pub veil: (f32, f32),
}

impl Rain {
    /// Light rain like Rain100L: one layer of sparse, thin streaks.
    pub fn light() -> Self {
        Self {
            layers: 1,
            density: (0.004, 0.008),
            length: (12.0, 28.0),
            angle: (-20.0, 20.0),
            angle_jitter: 0.0,
            thickness: (1.0, 1.3),
            brightness: (0.55, 0.8),
            veil: (0.0, 0.0),
        }
    }

    /// Heavy rain like Rain100H: three dense layers of longer, brighter, wider streaks and a
    /// light veil.
    pub fn heavy() -> Self {
        Self {
            layers: 3,
            density: (0.003, 0.006),
            length: (25.0, 55.0),
            angle: (-25.0, 25.0),
            angle_jitter: 6.0,
            thickness: (1.2, 2.2),
            brightness: (0.6, 0.9),
            veil: (0.08, 0.2),
        }
    }

    /// Returns a rainy copy of `image`.
    pub fn apply<R: Rng + ?Sized>(&self, image: &Image, rng: &mut R) -> Image {
        let (w, h) = (image.width, image.height);
        let n = w * h;
        let mut clear = vec![1.0f32; n]; // Π (1 − Sₗ)
        let base = uniform(rng, self.angle);
        for _ in 0..self.layers {
            let tilt = base + self.angle_jitter * (2.0 * rng.random::<f32>() - 1.0);
            let len = uniform(rng, self.length);
            let kernel = Kernel::line(len, 90.0 + tilt, uniform(rng, self.thickness), |t: f32| {
                1.0 - t.abs().powi(3)
            });
            let scale = 1.0 / kernel.peak().max(1e-6);
            let brightness = uniform(rng, self.brightness);
            let margin = (len / 2.0).ceil() as i32;
            let (aw, ah) = (w as i32 + 2 * margin, h as i32 + 2 * margin);
            let seeds = (uniform(rng, self.density) * (aw * ah) as f32).round() as usize;
            let mut layer = vec![0.0f32; n];
            for _ in 0..seeds {
                let x = rng.random_range(0..aw) - margin;
                let y = rng.random_range(0..ah) - margin;
                let b = brightness * (0.6 + 0.4 * rng.random::<f32>());
                kernel.splat(&mut layer, w, h, x, y, b * scale);
            }
            for (c, s) in clear.iter_mut().zip(&layer) {
                *c *= 1.0 - s.clamp(0.0, 1.0);
            }
        }
        let veil = uniform(rng, self.veil);
        let mut out = image.clone();
        for ch in 0..3 {
            for (v, c) in out.channel_mut(ch).iter_mut().zip(&clear) {
                let j = (1.0 - veil) * *v + veil * 0.8;
                *v = 1.0 - (1.0 - j) * c;
            }
        }
        out
    }
}
