//! Depth maps for the haze model.

use crate::{Error, Result};

/// A per-pixel depth map (row-major, `width × height`), in any unit (metres, millimetres,
/// arbitrary): the haze model only uses relative depth. Non-finite or non-positive values mean
/// *unknown* and are treated as the farthest known depth.
#[derive(Clone, Debug, PartialEq)]
pub struct DepthMap {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `width · height` depths, row-major.
    pub data: Vec<f32>,
}

impl DepthMap {
    /// Wraps row-major depths; fails unless `data.len() == width · height`.
    pub fn new(width: usize, height: usize, data: Vec<f32>) -> Result<Self> {
        if data.len() != width * height {
            return Err(Error::Config(format!(
                "depth map {width}×{height} needs {} values, got {}",
                width * height,
                data.len()
            )));
        }
        Ok(Self {
            width,
            height,
            data,
        })
    }

    fn known(v: f32) -> bool {
        v.is_finite() && v > 0.0
    }

    /// Relative depth in `[0, 1]`: `(d − d_min) / (d_max − d_min)` over the known values,
    /// unknown pixels set to 1 (the far plane). A constant or wholly unknown map gives all 1.
    pub fn relative(&self) -> Vec<f32> {
        let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
        for &v in self.data.iter().filter(|v| Self::known(**v)) {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        let span = hi - lo;
        self.data
            .iter()
            .map(|&v| {
                if Self::known(v) && span > 0.0 {
                    (v - lo) / span
                } else {
                    1.0
                }
            })
            .collect()
    }

    /// The map resampled to `width × height` (nearest neighbour), e.g. to follow an image that
    /// was resized. Returns a clone when the size already matches.
    pub fn resized(&self, width: usize, height: usize) -> Self {
        if (width, height) == (self.width, self.height) {
            return self.clone();
        }
        let mut data = Vec::with_capacity(width * height);
        for y in 0..height {
            let sy = ((y as f32 + 0.5) * self.height as f32 / height as f32) as usize;
            let sy = sy.min(self.height.saturating_sub(1));
            for x in 0..width {
                let sx = ((x as f32 + 0.5) * self.width as f32 / width as f32) as usize;
                data.push(self.data[sy * self.width + sx.min(self.width.saturating_sub(1))]);
            }
        }
        Self {
            width,
            height,
            data,
        }
    }

    /// The rectangle with top-left corner `(x, y)` and size `width × height`.
    pub fn crop(&self, x: usize, y: usize, width: usize, height: usize) -> Result<Self> {
        if x + width > self.width || y + height > self.height {
            return Err(Error::Config(format!(
                "crop {width}×{height} at ({x}, {y}) does not fit in a {}×{} depth map",
                self.width, self.height
            )));
        }
        let mut data = Vec::with_capacity(width * height);
        for row in y..y + height {
            let s = row * self.width + x;
            data.extend_from_slice(&self.data[s..s + width]);
        }
        Ok(Self {
            width,
            height,
            data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_depth_spans_zero_to_one_and_unknown_is_far() {
        let d = DepthMap::new(4, 1, vec![2.0, 4.0, f32::NAN, 0.0]).unwrap();
        assert_eq!(d.relative(), vec![0.0, 1.0, 1.0, 1.0]);
        let r = DepthMap::new(2, 2, vec![1.0, 2.0, 3.0, 4.0])
            .unwrap()
            .resized(4, 4);
        assert_eq!(r.data[..4], [1.0, 1.0, 2.0, 2.0]);
        assert_eq!(r.data[12..], [3.0, 3.0, 4.0, 4.0]);
    }
}
