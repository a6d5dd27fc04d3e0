//! Under-exposure with sensor noise.

use rand::Rng;

use crate::base::image::Image;
use crate::base::rng::{normal, poisson, uniform};

/// Low light: darkening by a gain and a gamma, then Poisson–Gaussian sensor noise, then 8 bits.
///
/// `y = g · x^γ`; `y' = Poisson(P · y) / P + σ_r · n`, `n ~ N(0, 1)`; output
/// `round(clamp(y', 0, 1) · 255) / 255`. `P` is the photon count of a white pixel (shot
/// noise: fewer photons, more noise), `σ_r` the read noise. Per image: `γ ~ U(gamma)`,
/// `g ~ U(gain)`, `P ~ U(photons)`, `σ_r ~ U(read_noise)`. The defaults (`γ ∈ [1.8, 3]`,
/// `g ∈ [0.25, 0.6]`, `P ∈ [30, 300]`, `σ_r ∈ [0.002, 0.01]`) bring a mid-grey to 0.03–0.17,
/// about the range of LOL's low-light inputs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LowLight {
    /// Exponent applied to the clean intensities, a range.
    pub gamma: (f32, f32),
    /// Multiplicative exposure after the gamma, a range.
    pub gain: (f32, f32),
    /// Photons collected at full scale (shot noise), a range.
    pub photons: (f32, f32),
    /// Read noise standard deviation on the `[0, 1]` scale, a range.
    pub read_noise: (f32, f32),
}

impl Default for LowLight {
    fn default() -> Self {
        Self {
            gamma: (1.8, 3.0),
            gain: (0.25, 0.6),
            photons: (30.0, 300.0),
            read_noise: (0.002, 0.01),
        }
    }
}

impl LowLight {
    /// Returns a dark, noisy copy of `image`.
    pub fn apply<R: Rng + ?Sized>(&self, image: &Image, rng: &mut R) -> Image {
        let gamma = uniform(rng, self.gamma);
        let gain = uniform(rng, self.gain);
        let photons = uniform(rng, self.photons).max(1.0);
        let read = uniform(rng, self.read_noise);
        image.map_with_rng(rng, |x, rng| {
            let y = gain * x.clamp(0.0, 1.0).powf(gamma);
            let y = poisson(rng, photons * y) / photons + read * normal(rng);
            (y.clamp(0.0, 1.0) * 255.0).round() / 255.0
        })
    }
}
