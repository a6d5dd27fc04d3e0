//! Haze by the atmospheric scattering model.

use rand::Rng;

use super::DepthMap;
use crate::base::image::Image;
use crate::base::rng::uniform;

/// Haze: `I = J·t + A·(1 − t)`, transmission `t = exp(−β·d)`, with `d ∈ [0, 1]` the relative
/// depth, `A` a grey airlight and `β` the scattering coefficient per unit of relative depth.
///
/// - With a depth map ([`Haze::apply_with_depth`]): `d = (D − D_min)/(D_max − D_min)`
///   ([`DepthMap::relative`]; unknown pixels filled by [`DepthMap::filled`]: the farther of
///   their nearest known row neighbours). A map of another size is resampled to the image
///   (nearest neighbour).
/// - Without one, the depth proxy [`depth_proxy`] is used.
///
/// Ranges: `β ~ U(beta)`, `A ~ U(airlight)` per image. The defaults `β ∈ [0.8, 2.8]` and
/// `A ∈ [0.75, 1.0]` mirror RESIDE OTS (`β` 0.04–0.2 per metre over scenes some 15–20 m deep,
/// so `β·D_max ≈ 0.6–4`; `A` 0.8–1.0): at the far plane `t` falls to 0.06–0.45.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Haze {
    /// Scattering coefficient per unit of relative depth, a range.
    pub beta: (f32, f32),
    /// Airlight (grey level of the haze), a range in `[0, 1]`.
    pub airlight: (f32, f32),
}

impl Default for Haze {
    fn default() -> Self {
        Self {
            beta: (0.8, 2.8),
            airlight: (0.75, 1.0),
        }
    }
}

impl Haze {
    /// Fixed `β` and airlight `A`.
    pub fn fixed(beta: f32, airlight: f32) -> Self {
        Self {
            beta: (beta, beta),
            airlight: (airlight, airlight),
        }
    }

    /// Returns a hazy copy of `image`, depth from [`depth_proxy`].
    pub fn apply<R: Rng + ?Sized>(&self, image: &Image, rng: &mut R) -> Image {
        self.apply_with_depth(image, None, rng)
    }

    /// Returns a hazy copy of `image` using `depth` when given (else [`depth_proxy`]).
    pub fn apply_with_depth<R: Rng + ?Sized>(
        &self,
        image: &Image,
        depth: Option<&DepthMap>,
        rng: &mut R,
    ) -> Image {
        self.apply_with_relative_depth(image, &relative_depth(image, depth), rng)
    }

    /// Returns a hazy copy of `image` whose pixel `i` lies at relative depth `depth[i]`
    /// (`[0, 1]`, one value per pixel, row-major; panics on another length).
    ///
    /// With a crop of [`relative_depth`] of a whole photograph this is, bit for bit, the same
    /// crop of that photograph hazed whole ([`apply_with_depth`](Self::apply_with_depth), with
    /// the same generator), at the cost of the crop: the training loader hazes its crops this
    /// way, keeping each photograph's relative depth.
    pub fn apply_with_relative_depth<R: Rng + ?Sized>(
        &self,
        image: &Image,
        depth: &[f32],
        rng: &mut R,
    ) -> Image {
        assert_eq!(
            depth.len(),
            image.pixels(),
            "one relative depth per pixel of the image"
        );
        let beta = uniform(rng, self.beta);
        let a = uniform(rng, self.airlight);
        let t: Vec<f32> = depth.iter().map(|&d| (-beta * d).exp()).collect();
        let mut out = image.clone();
        for c in 0..3 {
            for (v, t) in out.channel_mut(c).iter_mut().zip(&t) {
                *v = *v * t + a * (1.0 - t);
            }
        }
        out
    }
}

/// The relative depth, in `[0, 1]` per pixel (row-major), that [`Haze`] gives `image`: the
/// depth map's ([`DepthMap::relative`], resampled to the image when its size differs), else
/// [`depth_proxy`]'s.
pub fn relative_depth(image: &Image, depth: Option<&DepthMap>) -> Vec<f32> {
    match depth {
        Some(map) => map.resized(image.width, image.height).relative(),
        None => depth_proxy(image),
    }
}

/// The relative depth guessed from a clean image when no depth map exists, in `[0, 1]`.
///
/// `d = normalise(0.6 · (1 − y/(H−1)) + 0.4 · B(DC))`, where
/// - `1 − y/(H−1)` says the top of an outdoor photograph is usually farther than its bottom
///   (sky and horizon above, ground in front);
/// - `DC` is the dark channel (per-pixel minimum over R, G, B, then a minimum filter of radius
///   `max(2, min(W, H)/50)`): bright, colourless regions — sky, distant, already washed-out
///   objects — score high, saturated or dark foreground objects low;
/// - `B` is a box blur of radius `max(2, min(W, H)/12)`, which removes texture so the proxy
///   varies smoothly like depth;
/// - `normalise` maps the result's minimum to 0 and maximum to 1.
///
/// It is a proxy, not an estimate: it puts haze where haze would plausibly be, which is enough
/// for training a dehazer on photographs without depth.
pub fn depth_proxy(image: &Image) -> Vec<f32> {
    let (w, h) = (image.width, image.height);
    if w == 0 || h == 0 {
        return Vec::new();
    }
    let (r, g, b) = (image.channel(0), image.channel(1), image.channel(2));
    let dark: Vec<f32> = (0..w * h).map(|i| r[i].min(g[i]).min(b[i])).collect();
    let side = w.min(h);
    let dark = min_filter(&dark, w, h, (side / 50).max(2));
    let dark = box_blur(&dark, w, h, (side / 12).max(2));
    let mut d: Vec<f32> = (0..w * h)
        .map(|i| {
            let y = (i / w) as f32;
            let vertical = if h > 1 { 1.0 - y / (h - 1) as f32 } else { 0.5 };
            0.6 * vertical + 0.4 * dark[i]
        })
        .collect();
    let lo = d.iter().copied().fold(f32::INFINITY, f32::min);
    let hi = d.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if hi > lo {
        d.iter_mut().for_each(|v| *v = (*v - lo) / (hi - lo));
    }
    d
}

/// Separable running filter over rows then columns (`reduce` over a window of radius `r`).
fn separable(plane: &[f32], w: usize, h: usize, r: usize, reduce: fn(&[f32]) -> f32) -> Vec<f32> {
    let mut tmp = vec![0.0f32; w * h];
    for y in 0..h {
        let row = &plane[y * w..(y + 1) * w];
        for x in 0..w {
            tmp[y * w + x] = reduce(&row[x.saturating_sub(r)..(x + r + 1).min(w)]);
        }
    }
    let mut out = vec![0.0f32; w * h];
    let mut col = vec![0.0f32; h];
    for x in 0..w {
        for y in 0..h {
            col[y] = tmp[y * w + x];
        }
        for y in 0..h {
            out[y * w + x] = reduce(&col[y.saturating_sub(r)..(y + r + 1).min(h)]);
        }
    }
    out
}

fn min_filter(plane: &[f32], w: usize, h: usize, r: usize) -> Vec<f32> {
    separable(plane, w, h, r, |s| {
        s.iter().copied().fold(f32::INFINITY, f32::min)
    })
}

fn box_blur(plane: &[f32], w: usize, h: usize, r: usize) -> Vec<f32> {
    separable(plane, w, h, r, |s| s.iter().sum::<f32>() / s.len() as f32)
}
