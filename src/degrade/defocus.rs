//! Out-of-focus (defocus) blur.

use rand::Rng;

use super::kernel::Kernel;
use crate::base::image::Image;
use crate::base::rng::uniform;

/// Defocus blur: the image convolved with a uniform disk (the thin-lens circle of confusion)
/// of radius `r ~ U(radius)` pixels, anti-aliased at the rim; borders replicated.
/// Default `r ∈ [2, 7]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DefocusBlur {
    /// Disk radius in pixels, a range.
    pub radius: (f32, f32),
}

impl Default for DefocusBlur {
    fn default() -> Self {
        Self { radius: (2.0, 7.0) }
    }
}

impl DefocusBlur {
    /// A fixed radius.
    pub fn fixed(radius: f32) -> Self {
        Self {
            radius: (radius, radius),
        }
    }

    /// Returns a blurred copy of `image`.
    pub fn apply<R: Rng + ?Sized>(&self, image: &Image, rng: &mut R) -> Image {
        Kernel::disk(uniform(rng, self.radius)).convolve(image)
    }
}
