//! One enum over every degradation.

use rand::Rng;

use super::{
    Composite, DefocusBlur, DepthMap, GaussianNoise, Haze, Jpeg, LowLight, MotionBlur, Rain,
};
use crate::base::image::Image;
use crate::base::rng::rng_from_seed;

/// Any degradation of this module, with its parameters.
///
/// Every `apply*` is pure: the input is untouched and a new image returned; the result depends
/// only on the input, the parameters and the random generator (or seed).
#[derive(Clone, Debug, PartialEq)]
pub enum Degradation {
    /// Additive Gaussian noise, 8-bit quantised.
    Noise(GaussianNoise),
    /// Rain streaks.
    Rain(Rain),
    /// Haze (atmospheric scattering).
    Haze(Haze),
    /// Linear motion blur.
    MotionBlur(MotionBlur),
    /// Defocus (disk) blur.
    Defocus(DefocusBlur),
    /// Under-exposure with Poisson–Gaussian noise.
    LowLight(LowLight),
    /// JPEG compression.
    Jpeg(Jpeg),
    /// Several of the above in a fixed order.
    Composite(Composite),
}

impl Degradation {
    /// Applies the degradation, drawing its random parameters from `rng`.
    pub fn apply<R: Rng + ?Sized>(&self, image: &Image, rng: &mut R) -> Image {
        self.apply_with_depth(image, None, rng)
    }

    /// [`apply`](Self::apply) with a generator seeded by `seed`
    /// ([`rng_from_seed`](super::rng_from_seed)): same seed, same image.
    pub fn apply_seeded(&self, image: &Image, seed: u64) -> Image {
        self.apply(image, &mut rng_from_seed(seed))
    }

    /// Applies the degradation; a haze stage uses `depth` when given (other stages ignore it).
    pub fn apply_with_depth<R: Rng + ?Sized>(
        &self,
        image: &Image,
        depth: Option<&DepthMap>,
        rng: &mut R,
    ) -> Image {
        match self {
            Self::Noise(d) => d.apply(image, rng),
            Self::Rain(d) => d.apply(image, rng),
            Self::Haze(d) => d.apply_with_depth(image, depth, rng),
            Self::MotionBlur(d) => d.apply(image, rng),
            Self::Defocus(d) => d.apply(image, rng),
            Self::LowLight(d) => d.apply(image, rng),
            Self::Jpeg(d) => d.apply(image, rng),
            Self::Composite(d) => d.apply_with_depth(image, depth, rng),
        }
    }

    /// Whether the degradation should see the whole picture rather than a training crop: haze
    /// (its depth proxy and depth map are defined on the whole frame), or a composite with haze.
    pub fn needs_full_image(&self) -> bool {
        match self {
            Self::Haze(_) => true,
            Self::Composite(c) => c.stages().iter().any(Self::needs_full_image),
            _ => false,
        }
    }

    /// Position in the fixed order of a [`Composite`]: low light 0, haze 1, rain 2,
    /// motion blur 3, defocus 4, noise 5, JPEG 6 (a composite: 7).
    pub fn stage_rank(&self) -> u8 {
        match self {
            Self::LowLight(_) => 0,
            Self::Haze(_) => 1,
            Self::Rain(_) => 2,
            Self::MotionBlur(_) => 3,
            Self::Defocus(_) => 4,
            Self::Noise(_) => 5,
            Self::Jpeg(_) => 6,
            Self::Composite(_) => 7,
        }
    }
}
