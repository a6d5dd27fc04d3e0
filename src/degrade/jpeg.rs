//! JPEG compression artefacts.

use rand::Rng;

use crate::base::image::Image;
use crate::base::io::encode;

/// JPEG compression: the image is encoded by the `image` crate's baseline JPEG encoder at
/// quality `q ~ U{quality.0 ..= quality.1}` (4:2:0 chroma subsampling) and decoded again, giving
/// blocking, ringing and colour bleeding. Default `q ∈ [10, 40]`. The result is 8-bit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Jpeg {
    /// Quality range, inclusive, within `1..=100`.
    pub quality: (u8, u8),
}

impl Default for Jpeg {
    fn default() -> Self {
        Self { quality: (10, 40) }
    }
}

impl Jpeg {
    /// A fixed quality.
    pub fn fixed(quality: u8) -> Self {
        Self {
            quality: (quality, quality),
        }
    }

    /// Returns a compressed copy of `image` (unchanged if it is empty).
    pub fn apply<R: Rng + ?Sized>(&self, image: &Image, rng: &mut R) -> Image {
        let (lo, hi) = (self.quality.0.clamp(1, 100), self.quality.1.clamp(1, 100));
        let q = if hi > lo {
            rng.random_range(lo..=hi)
        } else {
            lo
        };
        let Ok(bytes) = encode(image, true, q) else {
            return image.clone();
        };
        let decoded = image::load_from_memory_with_format(&bytes, image::ImageFormat::Jpeg)
            .expect("the image crate decodes its own JPEG")
            .to_rgb32f();
        let n = image.pixels();
        let mut data = vec![0.0f32; 3 * n];
        for (i, px) in decoded.pixels().enumerate() {
            for c in 0..3 {
                data[c * n + i] = px.0[c];
            }
        }
        Image {
            width: image.width,
            height: image.height,
            data,
        }
    }
}
