//! Random crops and the eight flips/rotations (the dihedral group of the square).

use rand::Rng;

use super::Image;
use crate::degrade::DepthMap;
use crate::{Error, Result};

/// One of the 8 symmetries of the square: an optional horizontal mirror followed by `rot`
/// counter-clockwise quarter turns. Applied identically to a degraded image and its clean
/// target, it keeps the pair aligned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Dihedral {
    /// Mirror left↔right first.
    pub flip: bool,
    /// Then rotate by `rot × 90°` counter-clockwise (0–3).
    pub rot: u8,
}

impl Dihedral {
    /// The identity.
    pub const IDENTITY: Dihedral = Dihedral {
        flip: false,
        rot: 0,
    };

    /// All 8 elements; index 0 is the identity.
    pub const ALL: [Dihedral; 8] = [
        Dihedral {
            flip: false,
            rot: 0,
        },
        Dihedral {
            flip: false,
            rot: 1,
        },
        Dihedral {
            flip: false,
            rot: 2,
        },
        Dihedral {
            flip: false,
            rot: 3,
        },
        Dihedral { flip: true, rot: 0 },
        Dihedral { flip: true, rot: 1 },
        Dihedral { flip: true, rot: 2 },
        Dihedral { flip: true, rot: 3 },
    ];

    /// A uniformly random element of all 8.
    pub fn random<R: Rng + ?Sized>(rng: &mut R) -> Self {
        Self::ALL[rng.random_range(0..8)]
    }

    /// A uniformly random element of the 7 non-identity ones (PromptIR's `random_augmentation`).
    pub fn random_non_identity<R: Rng + ?Sized>(rng: &mut R) -> Self {
        Self::ALL[rng.random_range(1..8)]
    }

    /// The transform that undoes this one.
    pub fn inverse(self) -> Self {
        if self.flip {
            self // mirror-then-rotate is a reflection: its own inverse
        } else {
            Self {
                flip: false,
                rot: (4 - self.rot % 4) % 4,
            }
        }
    }

    /// Where input pixel `(x, y)` of a `w × h` plane lands, and the output size.
    fn map(self, x: usize, y: usize, w: usize, h: usize) -> (usize, usize, usize, usize) {
        let (mut x, mut y, mut w, mut h) = (x, y, w, h);
        if self.flip {
            x = w - 1 - x;
        }
        for _ in 0..self.rot % 4 {
            // one quarter turn counter-clockwise: (x, y) -> (y, w-1-x), size h × w
            (x, y) = (y, w - 1 - x);
            (w, h) = (h, w);
        }
        (x, y, w, h)
    }

    /// Transforms one row-major plane; returns it with its new width and height.
    pub(crate) fn apply_plane<T: Copy + Default>(
        self,
        plane: &[T],
        w: usize,
        h: usize,
    ) -> (Vec<T>, usize, usize) {
        if w == 0 || h == 0 {
            return (Vec::new(), if self.rot % 2 == 1 { h } else { w }, h);
        }
        let (_, _, ow, oh) = self.map(0, 0, w, h);
        let mut out = vec![T::default(); w * h];
        for y in 0..h {
            for x in 0..w {
                let (ox, oy, _, _) = self.map(x, y, w, h);
                out[oy * ow + ox] = plane[y * w + x];
            }
        }
        (out, ow, oh)
    }

    /// A transformed copy of `image`.
    pub fn apply(self, image: &Image) -> Image {
        let (w, h) = (image.width, image.height);
        let mut data = Vec::with_capacity(image.data.len());
        let (mut ow, mut oh) = (w, h);
        for c in 0..3 {
            let (p, pw, ph) = self.apply_plane(image.channel(c), w, h);
            data.extend(p);
            (ow, oh) = (pw, ph);
        }
        Image {
            width: ow,
            height: oh,
            data,
        }
    }

    /// A transformed copy of a depth map.
    pub fn apply_depth(self, depth: &DepthMap) -> DepthMap {
        let (data, width, height) = self.apply_plane(&depth.data, depth.width, depth.height);
        DepthMap {
            width,
            height,
            data,
        }
    }
}

/// The top-left corner of a random `size × size` crop of a `w × h` image (uniform over all
/// positions). Fails if the image is smaller than the crop.
pub fn random_crop_origin<R: Rng + ?Sized>(
    w: usize,
    h: usize,
    size: usize,
    rng: &mut R,
) -> Result<(usize, usize)> {
    if w < size || h < size {
        return Err(Error::Config(format!(
            "image {w}×{h} is smaller than the {size}×{size} crop"
        )));
    }
    Ok((
        rng.random_range(0..=w - size),
        rng.random_range(0..=h - size),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::degrade::rng_from_seed;

    fn numbered(w: usize, h: usize) -> Image {
        Image::from_planar(w, h, (0..3 * w * h).map(|i| i as f32).collect()).unwrap()
    }

    #[test]
    fn all_eight_are_distinct_and_inverses_round_trip() {
        let img = numbered(5, 3);
        let outs: Vec<Image> = Dihedral::ALL.iter().map(|d| d.apply(&img)).collect();
        for i in 0..8 {
            for j in i + 1..8 {
                assert_ne!(
                    outs[i],
                    outs[j],
                    "{:?} == {:?}",
                    Dihedral::ALL[i],
                    Dihedral::ALL[j]
                );
            }
            let d = Dihedral::ALL[i];
            assert_eq!(d.inverse().apply(&outs[i]), img, "{d:?}");
            let swapped = d.rot % 2 == 1;
            assert_eq!(
                (outs[i].width, outs[i].height),
                if swapped { (3, 5) } else { (5, 3) }
            );
        }
        assert_eq!(outs[0], img);
    }

    #[test]
    fn quarter_turn_is_counter_clockwise_and_flip_mirrors() {
        // 2×2 plane [a b; c d]
        let plane = [1, 2, 3, 4];
        let rot = Dihedral {
            flip: false,
            rot: 1,
        };
        assert_eq!(rot.apply_plane(&plane, 2, 2).0, vec![2, 4, 1, 3]);
        let flip = Dihedral { flip: true, rot: 0 };
        assert_eq!(flip.apply_plane(&plane, 2, 2).0, vec![2, 1, 4, 3]);
    }

    #[test]
    fn pairs_stay_aligned() {
        // the degraded image is a pixel-wise function of the clean one, so any spatial
        // transform applied to both must commute with that function
        let clean = numbered(6, 4);
        let degraded = clean.map(|v| 2.0 * v + 1.0);
        let mut rng = rng_from_seed(3);
        for d in Dihedral::ALL {
            let (x, y) = random_crop_origin(6, 4, 3, &mut rng).unwrap();
            let c = d.apply(&clean.crop(x, y, 3, 3).unwrap());
            let g = d.apply(&degraded.crop(x, y, 3, 3).unwrap());
            assert_eq!(g, c.map(|v| 2.0 * v + 1.0));
        }
    }

    #[test]
    fn a_crop_larger_than_the_image_is_an_error() {
        let mut rng = rng_from_seed(0);
        let e = random_crop_origin(100, 200, 128, &mut rng).unwrap_err();
        assert!(
            e.to_string()
                .contains("100×200 is smaller than the 128×128"),
            "{e}"
        );
        assert_eq!(random_crop_origin(128, 128, 128, &mut rng).unwrap(), (0, 0));
    }
}
