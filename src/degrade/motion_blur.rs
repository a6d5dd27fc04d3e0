//! Camera-shake style linear motion blur.

use rand::Rng;

use super::kernel::Kernel;
use crate::base::image::Image;
use crate::base::rng::uniform;

/// Linear motion blur: the image convolved with a normalised, anti-aliased line of length
/// `L ~ U(length)` pixels (1 px wide) at angle `θ ~ U(angle)` degrees (0° horizontal, counter-
/// clockwise); borders replicated. Default: `L ∈ [9, 31]`, `θ ∈ [0, 180)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MotionBlur {
    /// Kernel length in pixels, a range.
    pub length: (f32, f32),
    /// Direction in degrees, a range.
    pub angle: (f32, f32),
}

impl Default for MotionBlur {
    fn default() -> Self {
        Self {
            length: (9.0, 31.0),
            angle: (0.0, 180.0),
        }
    }
}

impl MotionBlur {
    /// A fixed length and angle.
    pub fn fixed(length: f32, angle_deg: f32) -> Self {
        Self {
            length: (length, length),
            angle: (angle_deg, angle_deg),
        }
    }

    /// Returns a blurred copy of `image`.
    pub fn apply<R: Rng + ?Sized>(&self, image: &Image, rng: &mut R) -> Image {
        let length = uniform(rng, self.length);
        let angle = uniform(rng, self.angle);
        Kernel::line(length, angle, 1.0, |_| 1.0).convolve(image)
    }
}
