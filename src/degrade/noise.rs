//! Additive white Gaussian noise on the 8-bit scale, quantised like the benchmarks.

use rand::Rng;

use crate::base::image::Image;
use crate::base::rng::{fill_normal, uniform};

/// How noisy values are stored after the noise is added.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Quantization {
    /// `round(clamp(v, 0, 255))`: an 8-bit image written correctly (the default).
    #[default]
    Round,
    /// `floor(clamp(v, 0, 255))`: what PromptIR's numpy code does
    /// (`np.clip(x + n·σ, 0, 255).astype(np.uint8)` truncates), about −0.5 grey levels of bias.
    Truncate,
    /// Clamp to `[0, 255]` only, no rounding (continuous values).
    None,
}

impl Quantization {
    /// One value on the 0–255 scale, already clamped to `[0, 255]`, as this quantization
    /// stores it.
    fn store(self, v: f32) -> f32 {
        match self {
            Self::Round => v.round(),
            // tolerate 8-bit inputs stored as k/255 with float error
            Self::Truncate => (v + 1e-3).floor().min(255.0),
            Self::None => v,
        }
    }

    /// `image` (values in `[0, 1]`) as an 8-bit file stores it: every value clamped to
    /// `[0, 1]` and put on the grid `k/255` this way ([`None`](Self::None): clamped only).
    /// Idempotent on an image already on the grid.
    pub fn apply(self, image: &Image) -> Image {
        Image {
            width: image.width,
            height: image.height,
            data: image
                .data
                .iter()
                .map(|&x| self.store((x * 255.0).clamp(0.0, 255.0)) / 255.0)
                .collect(),
        }
    }
}

/// The noise level σ, on the 0–255 scale.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Sigma {
    /// One fixed σ (benchmarks: 15, 25, 50).
    Fixed(f32),
    /// "Blind" σ, drawn uniformly from `[min, max]` per image (e.g. `0..=55`).
    Uniform {
        /// Smallest σ.
        min: f32,
        /// Largest σ.
        max: f32,
    },
}

/// Additive white Gaussian noise: `y = Q(255·x + σ·n) / 255`, `n ~ N(0, 1)` i.i.d. per sample
/// and channel, `Q` the [`Quantization`] (default: clip to `[0, 255]` and round, as 8-bit test
/// sets such as CBSD68 σ = 15/25/50 are made).
///
/// Expected PSNR against the clean image before clipping: `20·log10(255/σ)` = 24.61 / 20.17 /
/// 14.15 dB for σ = 15 / 25 / 50 (clipping raises it a little).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GaussianNoise {
    /// Noise level on the 0–255 scale.
    pub sigma: Sigma,
    /// Storage of the result.
    pub quantization: Quantization,
}

impl GaussianNoise {
    /// Fixed σ (0–255 scale), rounded 8-bit output.
    pub fn new(sigma: f32) -> Self {
        Self {
            sigma: Sigma::Fixed(sigma),
            quantization: Quantization::Round,
        }
    }

    /// Blind noise: σ uniform in `[min, max]` per image, rounded 8-bit output.
    pub fn blind(min: f32, max: f32) -> Self {
        Self {
            sigma: Sigma::Uniform { min, max },
            quantization: Quantization::Round,
        }
    }

    /// The same noise with another [`Quantization`].
    pub fn with_quantization(self, quantization: Quantization) -> Self {
        Self {
            quantization,
            ..self
        }
    }

    /// Returns a noisy copy of `image`.
    pub fn apply<R: Rng + ?Sized>(&self, image: &Image, rng: &mut R) -> Image {
        let sigma = match self.sigma {
            Sigma::Fixed(s) => s,
            Sigma::Uniform { min, max } => uniform(rng, (min, max)),
        };
        let mut noise = vec![0.0f32; image.data.len()];
        fill_normal(rng, &mut noise);
        let q = self.quantization;
        let data = image
            .data
            .iter()
            .zip(&noise)
            .map(|(&x, &n)| q.store((x * 255.0 + sigma * n).clamp(0.0, 255.0)) / 255.0)
            .collect();
        Image {
            width: image.width,
            height: image.height,
            data,
        }
    }
}
