//! The CPU image type and its conversion to and from burn tensors.

use burn::tensor::{Device, Int, Tensor, TensorData};

use super::error::{Error, Result};

/// An RGB image on the CPU: planar (channel-major, `C×H×W`) `f32` samples, nominally in `[0, 1]`.
///
/// `data[c * width * height + y * width + x]` is channel `c` (0 = red, 1 = green, 2 = blue) of
/// the pixel in column `x`, row `y`. This is the layout of one item of a `B×3×H×W` tensor, so
/// conversion to a tensor is a copy without reordering. Values may leave `[0, 1]` in
/// intermediate results; [`write_image`](super::io::write_image) clamps.
#[derive(Clone, Debug, PartialEq)]
pub struct Image {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `3 × height × width` samples, planar RGB.
    pub data: Vec<f32>,
}

impl Image {
    /// An image of the given size filled with one colour.
    pub fn filled(width: usize, height: usize, rgb: [f32; 3]) -> Self {
        let n = width * height;
        let mut data = Vec::with_capacity(3 * n);
        for v in rgb {
            data.extend(std::iter::repeat_n(v, n));
        }
        Self {
            width,
            height,
            data,
        }
    }

    /// Wraps planar RGB samples; fails unless `data.len() == 3 · width · height`.
    pub fn from_planar(width: usize, height: usize, data: Vec<f32>) -> Result<Self> {
        if data.len() != 3 * width * height {
            return Err(Error::Config(format!(
                "image {width}×{height} needs {} samples, got {}",
                3 * width * height,
                data.len()
            )));
        }
        Ok(Self {
            width,
            height,
            data,
        })
    }

    /// Number of pixels (`width · height`).
    pub fn pixels(&self) -> usize {
        self.width * self.height
    }

    /// One channel plane (`0` red, `1` green, `2` blue), row-major.
    pub fn channel(&self, c: usize) -> &[f32] {
        let n = self.pixels();
        &self.data[c * n..(c + 1) * n]
    }

    /// The mutable plane of channel `c`.
    pub fn channel_mut(&mut self, c: usize) -> &mut [f32] {
        let n = self.pixels();
        &mut self.data[c * n..(c + 1) * n]
    }

    /// The sample of channel `c` at column `x`, row `y`.
    pub fn get(&self, c: usize, x: usize, y: usize) -> f32 {
        self.data[c * self.pixels() + y * self.width + x]
    }

    /// A copy of the rectangle with top-left corner `(x, y)` and size `width × height`.
    ///
    /// Fails if the rectangle does not lie inside the image.
    pub fn crop(&self, x: usize, y: usize, width: usize, height: usize) -> Result<Self> {
        if x + width > self.width || y + height > self.height {
            return Err(Error::Config(format!(
                "crop {width}×{height} at ({x}, {y}) does not fit in a {}×{} image",
                self.width, self.height
            )));
        }
        let mut data = Vec::with_capacity(3 * width * height);
        for c in 0..3 {
            let plane = self.channel(c);
            for row in y..y + height {
                let start = row * self.width + x;
                data.extend_from_slice(&plane[start..start + width]);
            }
        }
        Ok(Self {
            width,
            height,
            data,
        })
    }

    /// The centred crop whose sides are the largest multiples of `multiple` that fit (PromptIR's
    /// `crop_img(.., base)`: the odd pixel of an odd margin goes to the bottom/right).
    ///
    /// Fails if a side is shorter than `multiple`.
    pub fn crop_to_multiple(&self, multiple: usize) -> Result<Self> {
        let multiple = multiple.max(1);
        let w = self.width / multiple * multiple;
        let h = self.height / multiple * multiple;
        if w == 0 || h == 0 {
            return Err(Error::Config(format!(
                "a {}×{} image is smaller than the crop multiple {multiple}",
                self.width, self.height
            )));
        }
        self.crop((self.width - w) / 2, (self.height - h) / 2, w, h)
    }

    /// A resampled copy of size `width × height` by a box (area-averaging) filter: each output
    /// pixel is the overlap-weighted mean of the input pixels under it. Meant for downscaling
    /// (previews, figures); upscaling gives blocky pixels.
    pub fn resized(&self, width: usize, height: usize) -> Self {
        let wx = area_weights(self.width, width);
        let wy = area_weights(self.height, height);
        let mut data = Vec::with_capacity(3 * width * height);
        let mut tmp = vec![0.0f32; width * self.height];
        for c in 0..3 {
            let plane = self.channel(c);
            for y in 0..self.height {
                let row = &plane[y * self.width..(y + 1) * self.width];
                for (x, taps) in wx.iter().enumerate() {
                    tmp[y * width + x] = taps.iter().map(|&(i, w)| w * row[i]).sum();
                }
            }
            for taps in &wy {
                for x in 0..width {
                    data.push(taps.iter().map(|&(i, w)| w * tmp[i * width + x]).sum());
                }
            }
        }
        Self {
            width,
            height,
            data,
        }
    }

    /// A copy with every sample clamped to `[0, 1]`.
    pub fn clamped(&self) -> Self {
        self.map(|v| v.clamp(0.0, 1.0))
    }

    /// A copy quantised to 8 bits the way an 8-bit file stores it: `round(clamp(v)·255)/255`.
    pub fn quantized_u8(&self) -> Self {
        self.map(|v| (v.clamp(0.0, 1.0) * 255.0).round() / 255.0)
    }

    /// A copy with `f` applied to every sample.
    pub fn map(&self, f: impl Fn(f32) -> f32) -> Self {
        Self {
            width: self.width,
            height: self.height,
            data: self.data.iter().map(|&v| f(v)).collect(),
        }
    }

    /// A copy with `f` applied to every sample in storage order, threading a random generator.
    pub(crate) fn map_with_rng<R: ?Sized>(
        &self,
        rng: &mut R,
        mut f: impl FnMut(f32, &mut R) -> f32,
    ) -> Self {
        Self {
            width: self.width,
            height: self.height,
            data: self.data.iter().map(|&v| f(v, rng)).collect(),
        }
    }

    /// Per-pixel luminance (Rec. 601 weights `0.299 R + 0.587 G + 0.114 B`), row-major.
    pub fn luminance(&self) -> Vec<f32> {
        let (r, g, b) = (self.channel(0), self.channel(1), self.channel(2));
        r.iter()
            .zip(g)
            .zip(b)
            .map(|((r, g), b)| 0.299 * r + 0.587 * g + 0.114 * b)
            .collect()
    }

    /// The image as a `3×H×W` tensor on `device`.
    pub fn to_tensor(&self, device: &Device) -> Tensor<3> {
        Tensor::from_data(
            TensorData::new(self.data.clone(), [3, self.height, self.width]),
            device,
        )
    }

    /// The image as a `1×3×H×W` tensor on `device`.
    pub fn to_batch_tensor(&self, device: &Device) -> Tensor<4> {
        Tensor::from_data(
            TensorData::new(self.data.clone(), [1, 3, self.height, self.width]),
            device,
        )
    }

    /// Reads a `3×H×W` tensor back (any float dtype; values are copied as they are).
    pub fn from_tensor(tensor: Tensor<3>) -> Result<Self> {
        let [c, height, width] = tensor.dims();
        if c != 3 {
            return Err(Error::Config(format!(
                "an image tensor needs 3 channels, got {c}"
            )));
        }
        let data = tensor
            .into_data()
            .try_into_vec_as::<f32>()
            .map_err(|e| Error::Config(format!("cannot read the image tensor: {e:?}")))?;
        Self::from_planar(width, height, data)
    }
}

/// For each output index, the input indices and weights of a box filter from `n` to `m`.
fn area_weights(n: usize, m: usize) -> Vec<Vec<(usize, f32)>> {
    let scale = n as f64 / m.max(1) as f64;
    (0..m)
        .map(|o| {
            let (lo, hi) = (o as f64 * scale, (o + 1) as f64 * scale);
            let mut taps = Vec::new();
            let mut i = lo.floor() as usize;
            while (i as f64) < hi && i < n {
                let overlap = (hi.min(i as f64 + 1.0) - lo.max(i as f64)).max(0.0);
                if overlap > 0.0 {
                    taps.push((i, (overlap / (hi - lo)) as f32));
                }
                i += 1;
            }
            taps
        })
        .collect()
}

/// Stacks images of one size into a `B×3×H×W` tensor on `device`.
///
/// Fails if `images` is empty or the sizes differ (naming the first image that differs).
pub fn images_to_tensor(images: &[Image], device: &Device) -> Result<Tensor<4>> {
    let first = images
        .first()
        .ok_or_else(|| Error::Config("cannot batch zero images".into()))?;
    let (w, h) = (first.width, first.height);
    let mut data = Vec::with_capacity(images.len() * 3 * w * h);
    for (i, img) in images.iter().enumerate() {
        if (img.width, img.height) != (w, h) {
            return Err(Error::Config(format!(
                "cannot batch images of different sizes: image 0 is {w}×{h}, image {i} is {}×{}",
                img.width, img.height
            )));
        }
        data.extend_from_slice(&img.data);
    }
    Ok(Tensor::from_data(
        TensorData::new(data, [images.len(), 3, h, w]),
        device,
    ))
}

/// Splits a `B×3×H×W` tensor into `B` images.
pub fn tensor_to_images(tensor: Tensor<4>) -> Result<Vec<Image>> {
    let [b, c, h, w] = tensor.dims();
    if c != 3 {
        return Err(Error::Config(format!(
            "an image batch tensor needs 3 channels, got {c}"
        )));
    }
    let data = tensor
        .into_data()
        .try_into_vec_as::<f32>()
        .map_err(|e| Error::Config(format!("cannot read the image tensor: {e:?}")))?;
    let n = 3 * h * w;
    Ok((0..b)
        .map(|i| Image {
            width: w,
            height: h,
            data: data[i * n..(i + 1) * n].to_vec(),
        })
        .collect())
}

/// Integer labels as a `B` Int tensor on `device`.
pub fn labels_to_tensor(labels: &[usize], device: &Device) -> Tensor<1, Int> {
    let data: Vec<i64> = labels.iter().map(|&l| l as i64).collect();
    Tensor::from_data(TensorData::new(data, [labels.len()]), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(w: usize, h: usize) -> Image {
        let data = (0..3 * w * h)
            .map(|i| i as f32 / (3 * w * h) as f32)
            .collect();
        Image::from_planar(w, h, data).unwrap()
    }

    #[test]
    fn tensor_round_trip_keeps_layout() {
        let device = Device::default();
        let img = ramp(5, 3);
        let t = img.to_tensor(&device);
        assert_eq!(t.dims(), [3, 3, 5]);
        // channel 1, row 2, column 4
        let v: Vec<f32> = t
            .clone()
            .slice([1..2, 2..3, 4..5])
            .into_data()
            .try_into_vec_as()
            .unwrap();
        assert_eq!(v[0], img.get(1, 4, 2));
        assert_eq!(Image::from_tensor(t).unwrap(), img);
    }

    #[test]
    fn batch_round_trip_and_size_check() {
        let device = Device::default();
        let a = ramp(4, 2);
        let b = a.map(|v| 1.0 - v);
        let t = images_to_tensor(&[a.clone(), b.clone()], &device).unwrap();
        assert_eq!(t.dims(), [2, 3, 2, 4]);
        assert_eq!(tensor_to_images(t).unwrap(), vec![a.clone(), b]);
        let err = images_to_tensor(&[a, ramp(2, 2)], &device).unwrap_err();
        assert!(err.to_string().contains("image 1 is 2×2"), "{err}");
        let labels = labels_to_tensor(&[3, 1], &device);
        assert_eq!(
            labels.into_data().try_into_vec_as::<i64>().unwrap(),
            vec![3, 1]
        );
    }

    #[test]
    fn box_resize_averages() {
        let img = Image::from_planar(4, 2, (0..24).map(|i| i as f32).collect()).unwrap();
        let half = img.resized(2, 1);
        // red plane rows [0 1 2 3; 4 5 6 7]: 2×2 block means 2.5 and 4.5
        assert_eq!(half.channel(0), &[2.5, 4.5]);
        assert_eq!(img.resized(4, 2), img);
        let third = Image::filled(9, 6, [0.3, 0.6, 0.9]).resized(4, 5);
        assert!(
            third
                .data
                .iter()
                .all(|v| [0.3, 0.6, 0.9].iter().any(|c| (v - c).abs() < 1e-5))
        );
    }

    #[test]
    fn crop_to_multiple_is_centred() {
        let img = ramp(37, 20);
        let c = img.crop_to_multiple(16).unwrap();
        assert_eq!((c.width, c.height), (32, 16));
        // margins 5 and 4: offset (2, 2)
        assert_eq!(c.get(2, 0, 0), img.get(2, 2, 2));
        assert!(ramp(10, 40).crop_to_multiple(16).is_err());
    }
}
