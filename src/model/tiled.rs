//! Tiled inference: restore an image of any size in overlapping tiles, blended without seams,
//! so that memory stays bounded by the tile size rather than the image size.

use burn::prelude::*;

use super::{Restorer, RestorerConfig};
use crate::base::image::Image;
use crate::{Error, Result};

/// How to cut an image into tiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TileConfig {
    /// Side of a square tile in pixels (a multiple of 8, at least 16).
    pub tile: usize,
    /// Pixels shared by neighbouring tiles (less than `tile`); the outputs are cross-faded
    /// over this band.
    pub overlap: usize,
}

impl TileConfig {
    /// Checks the tile geometry.
    pub fn validate(&self) -> Result<()> {
        if self.tile < 16 || !self.tile.is_multiple_of(8) {
            return Err(Error::Config(format!(
                "tile size {} must be a multiple of 8 and at least 16",
                self.tile
            )));
        }
        if self.overlap >= self.tile {
            return Err(Error::Config(format!(
                "overlap {} must be smaller than the tile size {}",
                self.overlap, self.tile
            )));
        }
        Ok(())
    }
}

/// Bytes a CPU forward pass needs per input pixel and per unit of `dim`: measured peak resident
/// memory on flex grows by 86–107 bytes per pixel per unit of width (PromptIR, DPPD at width 48;
/// the small DPPD preset at 16), rounded up.
const BYTES_PER_PIXEL_PER_DIM: u64 = 110;
/// Resident memory that does not grow with the image (program, allocator, buffers).
const BASE_BYTES: u64 = 64 << 20;

impl RestorerConfig {
    /// A conservative estimate of the peak memory of one CPU forward pass on an `h × w` input,
    /// weights included (calibrated on flex; see `docs/performance.md`).
    pub fn estimated_peak_bytes(&self, params: usize, h: usize, w: usize) -> u64 {
        let (h, w) = (h.next_multiple_of(8) as u64, w.next_multiple_of(8) as u64);
        BASE_BYTES + 4 * params as u64 + BYTES_PER_PIXEL_PER_DIM * self.dim as u64 * h * w
    }
}

impl TileConfig {
    /// The tiling that keeps the restoration of a `w × h` image within `budget` bytes, or
    /// `None` when the whole image fits. Tiles are the largest multiple of 64 that fits (at
    /// least 64), with an overlap of an eighth of the tile.
    pub fn for_budget(model: &Restorer, w: usize, h: usize, budget: u64) -> Option<Self> {
        let cfg = model.config();
        let params = model.num_params();
        // input, blended sum, weights and output: ten f32 planes of the whole image
        let images = 40 * (w * h) as u64;
        if cfg.estimated_peak_bytes(params, h, w) + images <= budget {
            return None;
        }
        let mut tile = 64;
        while tile + 64 <= w.max(h)
            && cfg.estimated_peak_bytes(params, tile + 64, tile + 64) + images <= budget
        {
            tile += 64;
        }
        Some(Self {
            tile,
            overlap: tile / 8,
        })
    }
}

/// Start positions of tiles of size `tile` covering `0..len` with at least `overlap` shared
/// pixels; the last tile ends exactly at `len`. A side shorter than a tile is one tile.
pub(crate) fn tile_origins(len: usize, tile: usize, overlap: usize) -> Vec<usize> {
    if len <= tile {
        return vec![0];
    }
    let step = tile - overlap;
    let mut v: Vec<usize> = (0..)
        .map(|i| i * step)
        .take_while(|&o| o + tile < len)
        .collect();
    v.push(len - tile);
    v
}

/// Blending weight along one axis of a tile of length `n` starting at `start` in an axis of
/// length `len`: a linear ramp over `overlap` pixels on each side that borders another tile,
/// 1 elsewhere (and at the image border). Always positive.
fn ramp(n: usize, start: usize, len: usize, overlap: usize) -> Vec<f32> {
    let rise = |i: usize| ((i + 1) as f32 / (overlap + 1) as f32).min(1.0);
    (0..n)
        .map(|i| {
            let left = if start > 0 { rise(i) } else { 1.0 };
            let right = if start + n < len {
                rise(n - 1 - i)
            } else {
                1.0
            };
            left.min(right)
        })
        .collect()
}

/// The windows of `window` along an axis of length `len` (their origins, from
/// [`tile_origins`], each `window.tile.min(len)` long) and each one's weights: its cross-fade
/// ramp ([`ramp`]) divided by the sum of all the windows' ramps at each position, so that the
/// weights at a position sum to 1. On a grid of windows, `ay(y) · ax(x)` then sums to 1 at
/// every pixel: local windows inside the network (TLC, [`Restorer::set_local_attention`])
/// blend their outputs with these, on both the CPU kernels and burn's operations.
pub(crate) fn window_weights(len: usize, window: TileConfig) -> (Vec<usize>, Vec<Vec<f32>>) {
    let t = window.tile.min(len);
    let origins = tile_origins(len, t, window.overlap);
    let ramps: Vec<Vec<f32>> = origins
        .iter()
        .map(|&o| ramp(t, o, len, window.overlap))
        .collect();
    let mut sum = vec![0.0f32; len];
    for (&o, r) in origins.iter().zip(&ramps) {
        sum[o..o + t].iter_mut().zip(r).for_each(|(s, v)| *s += v);
    }
    let weights = origins
        .iter()
        .zip(ramps)
        .map(|(&o, r)| r.iter().zip(&sum[o..o + t]).map(|(v, s)| v / s).collect())
        .collect();
    (origins, weights)
}

/// Applies `f` to every window of `x: [B, C, H, W]` and blends its outputs (`[B, c_out, th,
/// tw]` for a `th × tw` window) with the weights of [`window_weights`], with burn's tensor
/// operations.
pub(crate) fn blend_windows(
    x: &Tensor<4>,
    c_out: usize,
    window: TileConfig,
    mut f: impl FnMut(Tensor<4>) -> Tensor<4>,
) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    let device = x.device();
    let (th, tw) = (window.tile.min(h), window.tile.min(w));
    let ((ys, ay), (xs, ax)) = (window_weights(h, window), window_weights(w, window));
    let mut acc = Tensor::<4>::zeros([b, c_out, h, w], &device);
    for (&y0, wy) in ys.iter().zip(&ay) {
        for (&x0, wx) in xs.iter().zip(&ax) {
            let r: Vec<f32> = wy
                .iter()
                .flat_map(|ry| wx.iter().map(move |rx| ry * rx))
                .collect();
            let r = Tensor::<4>::from_data(TensorData::new(r, [1, 1, th, tw]), &device);
            let part = f(x.clone().slice([0..b, 0..c, y0..y0 + th, x0..x0 + tw]));
            let ranges = [0..b, 0..c_out, y0..y0 + th, x0..x0 + tw];
            let sum = acc.clone().slice(ranges.clone()) + part * r;
            acc = acc.slice_assign(ranges, sum);
        }
    }
    acc
}

impl Restorer {
    /// Restores `image` in overlapping tiles and blends them (linear cross-fade over the
    /// overlap), calling `progress(done, total)` after each tile. Peak memory is that of one
    /// tile's forward pass plus three image-sized buffers.
    ///
    /// The network's attention and prompts use statistics of the whole input, so a tiled result
    /// differs slightly from a whole-image one; a larger tile and overlap bring it closer.
    pub fn restore_tiled(
        &self,
        image: &Image,
        tiles: TileConfig,
        device: &Device,
        progress: impl FnMut(usize, usize),
    ) -> Result<Image> {
        let mut out = blend_tiles(image, tiles, device, progress, |x| {
            Ok(vec![self.forward(x)])
        })?;
        Ok(out.remove(0))
    }
}

/// Tiles at most this large (in pixels) are restored several at once, one per thread of
/// rayon's pool: a small tile alone leaves cores idle in the network's low-resolution levels
/// (a 128² tile restores at about 5.5 µs per pixel against 3.3 for a whole photograph on 2
/// cores). Larger tiles go one at a time, so that the memory they were chosen for holds.
const PARALLEL_TILE_PIXELS: usize = 256 * 256;

/// Runs `f` on every tile of `image` and blends each of the images `f` returns (all of the
/// tile's size, and as many for every tile) over the whole frame, in that order.
pub(crate) fn blend_tiles(
    image: &Image,
    tiles: TileConfig,
    device: &Device,
    mut progress: impl FnMut(usize, usize),
    f: impl Fn(Tensor<4>) -> Result<Vec<Tensor<4>>> + Sync,
) -> Result<Vec<Image>> {
    use rayon::prelude::*;
    tiles.validate()?;
    let (w, h) = (image.width, image.height);
    let (tw, th) = (tiles.tile.min(w), tiles.tile.min(h));
    let xs = tile_origins(w, tw, tiles.overlap);
    let ys = tile_origins(h, th, tiles.overlap);
    let origins: Vec<(usize, usize)> = ys
        .iter()
        .flat_map(|&y| xs.iter().map(move |&x| (x, y)))
        .collect();
    let total = origins.len();
    let at_once = if tw * th <= PARALLEL_TILE_PIXELS {
        rayon::current_num_threads().max(1)
    } else {
        1
    };
    // one tile's outputs, read back as planar RGB
    let run = |&(x0, y0): &(usize, usize)| -> Result<Vec<Vec<f32>>> {
        let crop = image.crop(x0, y0, tw, th)?;
        f(crop.to_batch_tensor(device))?
            .into_iter()
            .map(|out| {
                out.into_data()
                    .convert::<f32>()
                    .try_into_vec::<f32>()
                    .map_err(|e| Error::Config(format!("cannot read a tile back: {e:?}")))
            })
            .collect()
    };
    let mut acc: Vec<Vec<f32>> = Vec::new();
    let mut weight = vec![0.0f32; w * h];
    let mut done = 0;
    for chunk in origins.chunks(at_once) {
        let outs: Vec<Vec<Vec<f32>>> = if chunk.len() == 1 {
            vec![run(&chunk[0])?]
        } else {
            chunk.par_iter().map(run).collect::<Result<_>>()?
        };
        for (&(x0, y0), outs) in chunk.iter().zip(outs) {
            let wx = ramp(tw, x0, w, tiles.overlap);
            let wy = ramp(th, y0, h, tiles.overlap);
            if acc.is_empty() {
                acc = vec![vec![0.0f32; 3 * w * h]; outs.len()];
            }
            for (k, out) in outs.into_iter().enumerate() {
                let acc = &mut acc[k];
                for (ty, &ry) in wy.iter().enumerate() {
                    let row = (y0 + ty) * w + x0;
                    for (tx, &rx) in wx.iter().enumerate() {
                        let r = ry * rx;
                        if k == 0 {
                            weight[row + tx] += r;
                        }
                        for c in 0..3 {
                            acc[c * w * h + row + tx] += r * out[(c * th + ty) * tw + tx];
                        }
                    }
                }
            }
            done += 1;
            progress(done, total);
        }
    }
    acc.into_iter()
        .map(|mut a| {
            for (i, v) in a.iter_mut().enumerate() {
                *v /= weight[i % (w * h)];
            }
            Image::from_planar(w, h, a)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RestorerConfig;
    use crate::test_util::device;
    use burn::module::Param;

    #[test]
    fn origins_cover_the_axis_with_the_overlap() {
        assert_eq!(tile_origins(100, 128, 16), vec![0]);
        assert_eq!(tile_origins(128, 128, 16), vec![0]);
        assert_eq!(tile_origins(300, 128, 32), vec![0, 96, 172]);
        for (len, t, o) in [(1000, 256, 32), (257, 256, 0), (513, 64, 8)] {
            let v = tile_origins(len, t, o);
            assert_eq!(v[0], 0);
            assert_eq!(v[v.len() - 1] + t, len);
            for p in v.windows(2) {
                assert!(p[1] > p[0] && p[0] + t >= p[1] + o, "{len} {t} {o}: {v:?}");
            }
        }
    }

    #[test]
    fn ramps_are_positive_and_flat_at_the_image_border() {
        let r = ramp(8, 0, 20, 3);
        assert_eq!(r[0], 1.0);
        assert_eq!(r[7], 0.25);
        let r = ramp(8, 12, 20, 3);
        assert_eq!((r[0], r[7]), (0.25, 1.0));
        assert!(ramp(8, 6, 20, 3).iter().all(|&v| v > 0.0));
    }

    /// With a zero output convolution the network is the identity (its global residual), so a
    /// tiled restoration must reproduce the input exactly: this checks cutting and blending.
    #[test]
    fn tiles_are_stitched_back_without_seams() {
        let d = device();
        let cfg = RestorerConfig {
            dim: 8,
            num_blocks: [1, 1, 1, 1],
            num_refinement_blocks: 1,
            ..RestorerConfig::restormer()
        };
        let mut m = cfg.init(&d);
        m.output.weight = Param::from_tensor(m.output.weight.val().zeros_like());
        let (w, h) = (70, 45);
        let data: Vec<f32> = (0..3 * w * h)
            .map(|i| ((i * 37) % 101) as f32 / 100.0)
            .collect();
        let img = Image::from_planar(w, h, data.clone()).unwrap();
        let mut calls = Vec::new();
        let out = m
            .restore_tiled(
                &img,
                TileConfig {
                    tile: 32,
                    overlap: 8,
                },
                &d,
                |a, b| calls.push((a, b)),
            )
            .unwrap();
        assert_eq!((out.width, out.height), (w, h));
        let err = out
            .data
            .iter()
            .zip(&data)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(err < 1e-5, "max error {err}");
        assert_eq!(calls.len(), 3 * 2);
        assert_eq!(calls.last(), Some(&(6, 6)));
    }

    #[test]
    fn the_memory_budget_chooses_tiles_only_when_needed() {
        let d = device();
        let m = RestorerConfig::dppd_small().init(&d);
        assert_eq!(TileConfig::for_budget(&m, 640, 480, 2 << 30), None);
        let t = TileConfig::for_budget(&m, 4000, 3000, 2 << 30).expect("12 Mpx needs tiles");
        assert!(t.tile >= 512 && t.tile.is_multiple_of(64), "{t:?}");
        let cfg = m.config();
        let peak = cfg.estimated_peak_bytes(m.num_params(), t.tile, t.tile) + 40 * 12_000_000;
        assert!(peak <= 2 << 30, "{peak}");
        assert_eq!(t.overlap, t.tile / 8);
    }

    #[test]
    fn bad_tile_geometry_is_an_error() {
        let d = device();
        let m = RestorerConfig {
            dim: 8,
            ..RestorerConfig::restormer()
        }
        .init(&d);
        let img = Image::filled(20, 20, [0.5; 3]);
        for (tile, overlap) in [(12, 0), (30, 4), (32, 32)] {
            let err = m.restore_tiled(&img, TileConfig { tile, overlap }, &d, |_, _| {});
            assert!(err.is_err(), "{tile}/{overlap}");
        }
    }
}
