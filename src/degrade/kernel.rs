//! Small 2-D kernels (line, disk) and a sparse convolution with replicated borders.

use crate::base::image::Image;

/// A kernel as a list of non-zero taps `(dx, dy, weight)` around its centre.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Kernel {
    pub taps: Vec<(i32, i32, f32)>,
}

impl Kernel {
    /// A motion-blur line of `length` pixels through the centre at `angle_deg` (0° = horizontal,
    /// 90° = vertical, counter-clockwise), anti-aliased: each tap weighs
    /// `max(0, 1 − distance to the segment / (thickness / 2 + 0.5))`, times an along-line
    /// profile `taper(t)`, `t ∈ [−1, 1]` the position along the segment. Normalised to sum 1.
    pub fn line(length: f32, angle_deg: f32, thickness: f32, taper: impl Fn(f32) -> f32) -> Self {
        let length = length.max(1.0);
        let half = (length - 1.0) / 2.0;
        let (s, c) = angle_deg.to_radians().sin_cos();
        // image rows grow downwards: a counter-clockwise angle moves up (−y)
        let (ux, uy) = (c, -s);
        let reach = thickness / 2.0 + 0.5;
        let r = (half + reach).ceil() as i32;
        let mut taps = Vec::new();
        for dy in -r..=r {
            for dx in -r..=r {
                let (x, y) = (dx as f32, dy as f32);
                let along = x * ux + y * uy;
                let clamped = along.clamp(-half, half);
                let (px, py) = (x - clamped * ux, y - clamped * uy);
                let dist = (px * px + py * py).sqrt();
                let w = (1.0 - dist / reach).max(0.0);
                let t = if half > 0.0 { clamped / half } else { 0.0 };
                let w = w * taper(t);
                if w > 1e-4 {
                    taps.push((dx, dy, w));
                }
            }
        }
        Self { taps }.normalized()
    }

    /// A uniform disk (defocus / out-of-focus blur) of `radius` pixels, anti-aliased at the rim
    /// (`clamp(radius + 0.5 − distance, 0, 1)`), normalised to sum 1.
    pub fn disk(radius: f32) -> Self {
        let radius = radius.max(0.0);
        let r = (radius + 0.5).ceil() as i32;
        let mut taps = Vec::new();
        for dy in -r..=r {
            for dx in -r..=r {
                let d = ((dx * dx + dy * dy) as f32).sqrt();
                let w = (radius + 0.5 - d).clamp(0.0, 1.0);
                if w > 0.0 {
                    taps.push((dx, dy, w));
                }
            }
        }
        Self { taps }.normalized()
    }

    fn normalized(mut self) -> Self {
        let sum: f32 = self.taps.iter().map(|t| t.2).sum();
        if sum > 0.0 {
            for t in &mut self.taps {
                t.2 /= sum;
            }
        } else {
            self.taps = vec![(0, 0, 1.0)];
        }
        self
    }

    /// Convolves one plane (`w × h`, row-major) with replicated borders.
    pub fn convolve_plane(&self, plane: &[f32], w: usize, h: usize) -> Vec<f32> {
        let mut out = vec![0.0f32; w * h];
        let (wi, hi) = (w as i32, h as i32);
        for &(dx, dy, k) in &self.taps {
            for y in 0..hi {
                let sy = (y - dy).clamp(0, hi - 1) as usize;
                let src = &plane[sy * w..(sy + 1) * w];
                let dst = &mut out[y as usize * w..(y as usize + 1) * w];
                // interior columns without clamping, edges clamped
                let x0 = dx.clamp(0, wi) as usize;
                let x1 = (wi + dx).clamp(0, wi) as usize;
                for x in 0..x0.min(w) {
                    dst[x] += k * src[(x as i32 - dx).clamp(0, wi - 1) as usize];
                }
                if x1 > x0 {
                    let shift = (x0 as i32 - dx) as usize;
                    for (d, s) in dst[x0..x1].iter_mut().zip(&src[shift..shift + (x1 - x0)]) {
                        *d += k * s;
                    }
                }
                for x in x1.max(x0)..w {
                    dst[x] += k * src[(x as i32 - dx).clamp(0, wi - 1) as usize];
                }
            }
        }
        out
    }

    /// Convolves every channel of an image.
    pub fn convolve(&self, image: &Image) -> Image {
        let (w, h) = (image.width, image.height);
        let mut data = Vec::with_capacity(image.data.len());
        for c in 0..3 {
            data.extend(self.convolve_plane(image.channel(c), w, h));
        }
        Image {
            width: w,
            height: h,
            data,
        }
    }

    /// Adds `gain · kernel` centred at `(x, y)` into `plane` (taps outside are dropped).
    pub fn splat(&self, plane: &mut [f32], w: usize, h: usize, x: i32, y: i32, gain: f32) {
        for &(dx, dy, k) in &self.taps {
            let (px, py) = (x + dx, y + dy);
            if px >= 0 && py >= 0 && (px as usize) < w && (py as usize) < h {
                plane[py as usize * w + px as usize] += gain * k;
            }
        }
    }

    /// The largest tap weight.
    pub fn peak(&self) -> f32 {
        self.taps.iter().map(|t| t.2).fold(0.0, f32::max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_sum_to_one_and_have_the_right_shape() {
        let k = Kernel::line(9.0, 0.0, 1.0, |_| 1.0);
        let sum: f32 = k.taps.iter().map(|t| t.2).sum();
        assert!((sum - 1.0).abs() < 1e-5);
        // horizontal: all weight on row 0, from -4 to 4
        assert!(k.taps.iter().all(|t| t.1 == 0 && t.0.abs() <= 4));
        let v = Kernel::line(9.0, 90.0, 1.0, |_| 1.0);
        assert!(v.taps.iter().all(|t| t.0 == 0 && t.1.abs() <= 4));
        let d = Kernel::disk(3.0);
        let sum: f32 = d.taps.iter().map(|t| t.2).sum();
        assert!((sum - 1.0).abs() < 1e-5);
        assert!(d.taps.iter().all(|t| t.0 * t.0 + t.1 * t.1 <= 16));
        // inside: full weight; on the rim (distance = radius): half
        assert!(d.taps.contains(&(2, 0, d.peak())));
        assert!(d.taps.contains(&(3, 0, d.peak() / 2.0)));
    }

    #[test]
    fn convolution_matches_a_direct_sum_with_clamped_borders() {
        let (w, h) = (7, 5);
        let plane: Vec<f32> = (0..w * h).map(|i| ((i * 37) % 11) as f32).collect();
        let k = Kernel {
            taps: vec![(2, -1, 0.5), (-3, 1, 0.25), (0, 0, 0.25)],
        };
        let out = k.convolve_plane(&plane, w, h);
        for y in 0..h as i32 {
            for x in 0..w as i32 {
                let mut s = 0.0;
                for &(dx, dy, kw) in &k.taps {
                    let sx = (x - dx).clamp(0, w as i32 - 1) as usize;
                    let sy = (y - dy).clamp(0, h as i32 - 1) as usize;
                    s += kw * plane[sy * w + sx];
                }
                assert!((out[y as usize * w + x as usize] - s).abs() < 1e-5);
            }
        }
    }
}
