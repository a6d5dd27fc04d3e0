//! Depth maps for the haze model.

use super::error::{Error, Result};

/// A per-pixel depth map (row-major, `width × height`), in any unit (metres, millimetres,
/// arbitrary): the haze model only uses relative depth. Non-finite or non-positive values mean
/// *unknown*; [`DepthMap::filled`] says how they are filled.
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

    /// The map with unknown pixels filled: each takes the *farther* of the nearest known
    /// depths to its left and right on the same row — the usual stereo hole filling, since
    /// holes next to an object's edge are background it occludes in the other view. A row
    /// without any known value takes the largest known depth of the map. A map with no known
    /// value at all is returned unchanged.
    pub fn filled(&self) -> Self {
        let far = self
            .data
            .iter()
            .copied()
            .filter(|v| Self::known(*v))
            .fold(f32::NEG_INFINITY, f32::max);
        if !far.is_finite() {
            return self.clone();
        }
        let w = self.width;
        let mut data = self.data.clone();
        for row in data.chunks_mut(w.max(1)) {
            let mut left = vec![None; row.len()];
            let mut last = None;
            for (x, v) in row.iter().enumerate() {
                if Self::known(*v) {
                    last = Some(*v);
                }
                left[x] = last;
            }
            let mut right = None;
            for x in (0..row.len()).rev() {
                if Self::known(row[x]) {
                    right = Some(row[x]);
                    continue;
                }
                row[x] = match (left[x], right) {
                    (Some(a), Some(b)) => a.max(b),
                    (Some(a), None) | (None, Some(a)) => a,
                    (None, None) => far,
                };
            }
        }
        Self {
            width: self.width,
            height: self.height,
            data,
        }
    }

    /// Relative depth in `[0, 1]`: `(d − d_min) / (d_max − d_min)` of the [`filled`](Self::filled)
    /// map. A constant or wholly unknown map gives all 1 (everything at the far plane).
    pub fn relative(&self) -> Vec<f32> {
        let filled = self.filled();
        let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
        for &v in filled.data.iter().filter(|v| Self::known(**v)) {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        let span = hi - lo;
        filled
            .data
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
    fn relative_depth_spans_zero_to_one_and_holes_take_the_farther_side() {
        let d = DepthMap::new(4, 1, vec![2.0, 4.0, f32::NAN, 0.0]).unwrap();
        assert_eq!(d.relative(), vec![0.0, 1.0, 1.0, 1.0]);
        let nan = f32::NAN;
        let holes = DepthMap::new(
            6,
            2,
            vec![nan, 3.0, nan, nan, 5.0, 4.0, nan, nan, nan, nan, nan, nan],
        )
        .unwrap()
        .filled();
        assert_eq!(holes.data[..6], [3.0, 3.0, 5.0, 5.0, 5.0, 4.0]);
        assert_eq!(
            holes.data[6..],
            [5.0; 6],
            "an empty row takes the farthest depth"
        );
        assert!(DepthMap::new(1, 1, vec![nan]).unwrap().relative() == vec![1.0]);
        let r = DepthMap::new(2, 2, vec![1.0, 2.0, 3.0, 4.0])
            .unwrap()
            .resized(4, 4);
        assert_eq!(r.data[..4], [1.0, 1.0, 2.0, 2.0]);
        assert_eq!(r.data[12..], [3.0, 3.0, 4.0, 4.0]);
    }
}
