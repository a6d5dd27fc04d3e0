//! Restoring photographs end to end: an [`Image`], a file or a folder in; the restored image,
//! the degradation the network recognised and (on request) an uncertainty map out — on any
//! size, within a memory budget, never leaving a partial output behind.
//!
//! ```no_run
//! use dppd::model::Restorer;
//! use dppd::restore::{RestoreOptions, restore_file};
//!
//! let device = burn::prelude::Device::flex();
//! let model = Restorer::pretrained(&device)?;
//! let r = restore_file(&model, "rainy.jpg", "restored.png", &RestoreOptions::default(), &device, |_, _| {})?;
//! if let Some(d) = r.degradation {
//!     println!("{} (p = {:.2})", d.name, d.probability);
//! }
//! # Ok::<(), dppd::Error>(())
//! ```

use std::path::{Path, PathBuf};

use burn::prelude::*;

use crate::base::io::{FileFormat, output_format, same_file};
use crate::data::{Image, list_images, read_image_with_info, write_image_as};
use crate::model::{
    DegradationPrediction, Restorer, TileConfig, blend_tiles, mean_site_probabilities,
};
use crate::prompt::PromptSampling;
use crate::{Error, Result};

/// How to restore.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RestoreOptions {
    /// Explicit tiling; `None` restores the whole image at once unless it would not fit
    /// [`memory_budget`](Self::memory_budget), in which case tiles are chosen by
    /// [`TileConfig::for_budget`].
    pub tiles: Option<TileConfig>,
    /// Peak memory allowed for one restoration, in bytes (default 2 GiB). Used only to choose
    /// tiles automatically.
    pub memory_budget: u64,
    /// Restorations averaged (default 1). With more than one, every restoration samples the
    /// DPPD prompts from their distributions, and the per-pixel standard deviation is returned
    /// as [`Restoration::uncertainty`]. Works with tiles too.
    pub samples: usize,
    /// Allow an output to replace its own input (default `false`: [`restore_file`] and
    /// [`restore_folder`] refuse with [`Error::Refused`] and leave the input untouched). Even
    /// then the input is replaced atomically, only once its restoration is complete.
    pub in_place: bool,
    /// Keep what the network recognises as clean (default `true`): for a network with a
    /// prototype named `clean`, an image whose most probable degradation is `clean` comes
    /// back unchanged, and the change the restoration makes to any other image is scaled by
    /// `1 − p(clean)` (a degraded image, p(clean) ≈ 0, is restored in full). No effect on
    /// networks without such a prototype. The project's choice, not the paper's
    /// (`docs/dppd.md`).
    pub keep_clean: bool,
    /// Geometric self-ensemble (default 1, off): restore the image under this many of the
    /// eight flips and quarter turns (1, 2, 4 or 8, taken in the order of
    /// [`ENSEMBLE_ORDER`]), undo each on its restoration and average them. Each view costs one
    /// more restoration (8 views take 8 times as long) and about the same memory; with the
    /// built-in weights 8 views gain 0.2–0.3 dB on noise and 0.9 dB on rain, and on haze
    /// 0.01 of SSIM for 0.1 dB of PSNR (the README's table, `docs/performance.md`). A whole
    /// image's degradation is then predicted from the probabilities averaged over the views; a
    /// tiled image's is predicted once, on its centre crop, as without the ensemble. With
    /// [`samples`](Self::samples) `> 1` every view is sampled that often and
    /// [`Restoration::uncertainty`] is the mean of the views' standard deviations.
    pub ensemble: usize,
    /// Compute the network's attention maps in local windows of this size (default
    /// [`LOCAL_ATTENTION`]; [`Restorer::set_local_attention`]); `None` computes them over the
    /// whole image. MDTA takes each attention map over all the pixels of its input, and a
    /// network trained on small crops (the built-in weights: 128²) meets other statistics on a
    /// whole photograph: on the README's held-out hazy photographs the stretch-12 weights remove
    /// far less haze with global attention (14.50 dB) than with windows of the training crop
    /// size (18.05 dB), while noise gains 0.07–0.15 dB and rain loses 0.09 dB
    /// (`docs/default-weights.md`). One pass either way; the windows cost 0–15% more time.
    /// In windows the network alone also changes clean photographs more, as it does on its
    /// training crops (stretch 13, 1280 px: 29.7 dB against 41.7 with global attention);
    /// [`keep_clean`](Self::keep_clean) returns those it recognises as clean unchanged.
    pub local_attention: Option<TileConfig>,
    /// Restore what the network recognises as haze in tiles of this size (default `None`;
    /// [`HAZE_TILES`] is the tiling measured best for the built-in weights): on the README's
    /// hazy photographs it scores 0.4–0.8 dB above [`local_attention`](Self::local_attention)
    /// alone, at about 2.5 times the time of one pass. The degradation comes from a first pass
    /// over the whole image, and an image taken for haze is then restored again in these
    /// tiles. For an image restored in tiles anyway ([`tiles`](Self::tiles) or the memory
    /// budget), these are used instead when they are smaller. The reported degradation, and
    /// [`keep_clean`](Self::keep_clean), stay those of the whole image (or of its centre crop,
    /// when tiled). No effect on networks without a prototype named `haze`.
    pub haze_tiles: Option<TileConfig>,
}

/// The default of [`RestoreOptions::local_attention`]: windows of 128 pixels at full
/// resolution, the size of the crops the built-in weights were trained on, sharing 32 (a
/// quarter; without overlap haze loses 0.2 dB).
pub const LOCAL_ATTENTION: TileConfig = TileConfig {
    tile: 128,
    overlap: 32,
};

/// The tiles measured best for [`RestoreOptions::haze_tiles`] with the built-in weights:
/// 128-pixel tiles, the size of the training crops, cross-faded over 32 pixels (a quarter of
/// the tile: 0.3 dB better on haze than an eighth, at 1.4 times the tiles).
pub const HAZE_TILES: TileConfig = TileConfig {
    tile: 128,
    overlap: 32,
};

/// The numbers of views [`RestoreOptions::ensemble`] takes (the first 1, 2, 4 or all 8 of
/// [`ENSEMBLE_ORDER`]); the command line and the restoration page check theirs against it.
pub const ENSEMBLE_VIEWS: [usize; 4] = [1, 2, 4, 8];

/// The transforms of [`RestoreOptions::ensemble`], in the order they are taken: the identity,
/// the mirror image (left–right), upside down, turned by 180°, then each of these four after
/// swapping rows and columns (a transposition).
pub const ENSEMBLE_ORDER: [&str; 8] = [
    "identity",
    "mirrored",
    "upside down",
    "turned 180°",
    "transposed",
    "transposed, mirrored",
    "transposed, upside down",
    "transposed, turned 180°",
];

/// Transform `k` of [`ENSEMBLE_ORDER`] applied to `x` (`[B, C, H, W]`), or undone (`inverse`).
/// Each flip and the transposition is its own inverse, so undoing reverses their order.
fn ensemble_transform(x: Tensor<4>, k: usize, inverse: bool) -> Tensor<4> {
    let flip = |x: Tensor<4>| match k % 4 {
        0 => x,
        1 => x.flip([3]),
        2 => x.flip([2]),
        _ => x.flip([2, 3]),
    };
    let transpose = |x: Tensor<4>| if k >= 4 { x.swap_dims(2, 3) } else { x };
    if inverse {
        transpose(flip(x))
    } else {
        flip(transpose(x))
    }
}

impl Default for RestoreOptions {
    fn default() -> Self {
        Self {
            tiles: None,
            memory_budget: 2 << 30,
            samples: 1,
            in_place: false,
            keep_clean: true,
            ensemble: 1,
            local_attention: Some(LOCAL_ATTENTION),
            haze_tiles: None,
        }
    }
}

/// The outcome of one restoration.
#[derive(Debug, Clone)]
pub struct Restoration {
    /// The restored image (same size as the input).
    pub image: Image,
    /// Per-pixel standard deviation between the samples (only with `samples > 1`), unscaled.
    pub uncertainty: Option<Image>,
    /// The degradation the network's prototype assignment recognised (DPPD networks only). A
    /// tiled image is classified on its centre [`PREDICTION_CROP`]² crop, at full resolution.
    pub degradation: Option<DegradationPrediction>,
    /// The tiling used, `None` for whole-image inference.
    pub tiles: Option<TileConfig>,
}

/// Side of the centre crop on which a tiled image's degradation is predicted.
pub const PREDICTION_CROP: usize = 512;

impl Restorer {
    /// Restores one image (see [`RestoreOptions`]). `progress(done, total)` is called after
    /// every tile (once, `(1, 1)`, without tiling).
    pub fn restore_image(
        &self,
        image: &Image,
        options: &RestoreOptions,
        device: &Device,
        progress: impl FnMut(usize, usize),
    ) -> Result<Restoration> {
        if self.local_attention() != options.local_attention {
            let mut model = self.clone();
            model.set_local_attention(options.local_attention)?;
            return model.restore_image(image, options, device, progress);
        }
        let mut r = self.restore_unguarded(image, options, device, progress)?;
        if !options.keep_clean {
            return Ok(r);
        }
        let Some(keep) = r.degradation.as_ref().and_then(clean_keep) else {
            return Ok(r);
        };
        for (out, &inp) in r.image.data.iter_mut().zip(&image.data) {
            *out = inp + keep * (*out - inp);
        }
        if let Some(u) = &mut r.uncertainty {
            u.data.iter_mut().for_each(|v| *v *= keep);
        }
        Ok(r)
    }

    /// [`restore_image`](Self::restore_image) without [`RestoreOptions::keep_clean`].
    fn restore_unguarded(
        &self,
        image: &Image,
        options: &RestoreOptions,
        device: &Device,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<Restoration> {
        if options.samples == 0 {
            return Err(Error::Config("samples must be at least 1".into()));
        }
        if !ENSEMBLE_VIEWS.contains(&options.ensemble) {
            return Err(Error::Config(format!(
                "ensemble must be 1, 2, 4 or 8 transforms, not {}",
                options.ensemble
            )));
        }
        for t in options.tiles.iter().chain(&options.haze_tiles) {
            t.validate()?;
        }
        let (w, h) = (image.width, image.height);
        let tiles = match options.tiles {
            Some(t) if t.tile < w.max(h) => Some(t),
            Some(_) => None,
            None => TileConfig::for_budget(self, w, h, options.memory_budget),
        };
        let (samples, n) = (options.samples, options.ensemble);
        // one restoration of `x`: [mean, std] with samples, else [image] and the DPA
        // probabilities of the same forward pass
        let once = |x: Tensor<4>| -> (Vec<Tensor<4>>, Option<Tensor<2>>) {
            if samples > 1 {
                let r = self.restore_with_uncertainty(x, samples);
                (vec![r.mean, r.std], None)
            } else {
                let out = self.forward_with(x, Some(PromptSampling::Mean));
                (vec![out.image], mean_site_probabilities(out.sites))
            }
        };
        // the same, averaged over the ensemble's transforms
        let ensembled = |x: Tensor<4>| -> (Vec<Tensor<4>>, Option<Tensor<2>>) {
            if n == 1 {
                return once(x);
            }
            let mut sum: Option<(Vec<Tensor<4>>, Option<Tensor<2>>)> = None;
            for k in 0..n {
                let (outs, probs) = once(ensemble_transform(x.clone(), k, false));
                let outs: Vec<_> = outs
                    .into_iter()
                    .map(|t| ensemble_transform(t, k, true))
                    .collect();
                sum = Some(match sum {
                    None => (outs, probs),
                    Some((acc, p)) => (
                        acc.into_iter().zip(outs).map(|(a, b)| a + b).collect(),
                        p.zip(probs).map(|(a, b)| a + b),
                    ),
                });
            }
            let (acc, probs) = sum.expect("n ≥ 1");
            (
                acc.into_iter().map(|t| t / n as f64).collect(),
                probs.map(|p| p / n as f64),
            )
        };
        let single = |t: Tensor<4>| Image::from_tensor(t.squeeze_dim::<3>(0));
        // the tiling that replaces one with tiles of `current` pixels (the whole image: its
        // longer side) for an image predicted to be hazy
        let for_haze = |current: usize, d: &Option<DegradationPrediction>| {
            let h = options.haze_tiles?;
            (d.as_ref()?.name == "haze" && h.tile < current).then_some(h)
        };
        let tiled = |t: TileConfig, degradation, progress| -> Result<Restoration> {
            let per_tile = |x: Tensor<4>| Ok(ensembled(x).0);
            let mut out = blend_tiles(image, t, device, progress, per_tile)?.into_iter();
            Ok(Restoration {
                image: out.next().expect("one output per tile"),
                uncertainty: out.next(),
                degradation,
                tiles: Some(t),
            })
        };
        match tiles {
            Some(t) => {
                let side = PREDICTION_CROP.min(w).min(h);
                let crop = image.crop((w - side) / 2, (h - side) / 2, side, side)?;
                let degradation = self
                    .predict_degradation(crop.to_batch_tensor(device))
                    .and_then(|v| v.into_iter().next());
                let t = for_haze(t.tile, &degradation).unwrap_or(t);
                tiled(t, degradation, progress)
            }
            None => {
                let x = image.to_batch_tensor(device);
                let (outs, probs) = ensembled(x.clone());
                let probs = match probs {
                    Some(p) => Some(p),
                    // sampled prompts: the probabilities of a pass with the mean prompts
                    None if samples > 1 => self.degradation_probabilities(x),
                    None => None,
                };
                let degradation = probs
                    .and_then(|p| self.predictions(p))
                    .and_then(|v| v.into_iter().next());
                if let Some(t) = for_haze(w.max(h), &degradation) {
                    return tiled(t, degradation, progress);
                }
                progress(1, 1);
                let mut outs = outs.into_iter();
                Ok(Restoration {
                    image: single(outs.next().expect("a restored image"))?,
                    uncertainty: outs.next().map(single).transpose()?,
                    degradation,
                    tiles: None,
                })
            }
        }
    }
}

/// The share of its change to the input that a restoration keeps under
/// [`RestoreOptions::keep_clean`]: 0 when `clean` is the most probable degradation,
/// `1 − p(clean)` otherwise; `None` (all of it) for a network without a `clean` prototype.
pub(crate) fn clean_keep(d: &DegradationPrediction) -> Option<f32> {
    let (_, p) = d.all.iter().find(|(name, _)| name == "clean")?;
    Some(if d.name == "clean" {
        0.0
    } else {
        1.0 - p.clamp(0.0, 1.0)
    })
}

/// Checks, before any work, that `output` may receive the restoration of `input`: its
/// extension names a format this crate writes, and it is not `input` itself (the same file, by
/// any path or hard link) unless [`RestoreOptions::in_place`] asks for exactly that. Returns
/// the output's format.
pub fn check_output(input: &Path, output: &Path, options: &RestoreOptions) -> Result<FileFormat> {
    let format = output_format(output)?;
    if !options.in_place && same_file(input, output) {
        return Err(Error::Refused {
            path: output.to_path_buf(),
            reason: format!(
                "this is the input file itself ({}); refusing to write the restoration over the \
                 original, which is left untouched (choose another output, or ask for it \
                 explicitly: --in-place, RestoreOptions::in_place)",
                input.display()
            ),
        });
    }
    Ok(format)
}

/// Reads `input`, restores it and writes the result to `output`, in the format its extension
/// names (`.png`, `.jpg`/`.jpeg`, `.webp`, `.tif`/`.tiff`, `.bmp`).
///
/// The output keeps what the input stored as far as its format allows: a grey input gives a
/// grey output (the mean of the restored channels), a 16-bit input a 16-bit PNG or TIFF. The
/// input is read upright (its EXIF orientation applied), so the output is upright too.
///
/// Nothing is written unless the whole job succeeds, and the output is replaced atomically
/// (a temporary file renamed over it): an unreadable input, an unsupported output extension
/// or a failed restoration leaves an existing `output` untouched. The output is checked
/// before any work ([`check_output`]): an `output` that is the input itself is refused unless
/// [`RestoreOptions::in_place`] is set. The uncertainty map, if any, is returned, not written.
pub fn restore_file(
    model: &Restorer,
    input: impl AsRef<Path>,
    output: impl AsRef<Path>,
    options: &RestoreOptions,
    device: &Device,
    progress: impl FnMut(usize, usize),
) -> Result<Restoration> {
    let (input, output) = (input.as_ref(), output.as_ref());
    check_output(input, output, options)?;
    let (image, info) = read_image_with_info(input)?;
    let r = model.restore_image(&image, options, device, progress)?;
    write_image_as(output, &r.image, info.pixel)?;
    Ok(r)
}

/// Checks, before any work, that the folder `output` may receive the restorations of the
/// images of the folder `input`, and returns those images (as [`restore_folder`] would visit
/// them). Refused ([`Error::Refused`]) unless [`RestoreOptions::in_place`] is set: any
/// restoration that would land on an input file itself (`output` is `input`, or a link to it).
pub fn check_folder_output(
    input: &Path,
    output: &Path,
    options: &RestoreOptions,
) -> Result<Vec<PathBuf>> {
    if output.is_file() {
        return Err(Error::Config(format!(
            "{} is a file; a folder input needs an output folder",
            output.display()
        )));
    }
    let in_place = same_file(input, output);
    let files: Vec<PathBuf> = list_images(input)?
        .into_iter()
        .filter(|f| in_place || !f.starts_with(output))
        .collect();
    let clashes: Vec<&PathBuf> = files
        .iter()
        .filter(|f| same_file(f, &output.join(f.strip_prefix(input).unwrap_or(f))))
        .collect();
    if !clashes.is_empty() && !options.in_place {
        let shown: Vec<String> = clashes
            .iter()
            .take(3)
            .map(|f| f.display().to_string())
            .collect();
        let more = if clashes.len() > 3 { ", …" } else { "" };
        return Err(Error::Refused {
            path: output.to_path_buf(),
            reason: format!(
                "the output folder holds the input files themselves: {} of them ({}{more}) \
                 would be written over by their restorations; refusing, nothing was restored \
                 and the originals are left untouched (choose another output folder, or ask \
                 for it explicitly: --in-place, RestoreOptions::in_place)",
                clashes.len(),
                shown.join(", ")
            ),
        });
    }
    Ok(files)
}

/// What [`restore_folder`] reports while it works.
#[derive(Debug)]
pub enum FolderEvent<'a> {
    /// File `index` (from 0) of `total` is starting.
    Started {
        /// Position in the run.
        index: usize,
        /// Files in the run.
        total: usize,
        /// The input file.
        input: &'a Path,
    },
    /// A tile of the current file is done.
    Tile {
        /// Tiles done.
        done: usize,
        /// Tiles of this file.
        total: usize,
    },
    /// The current file is done (restored and written) or failed.
    Finished {
        /// The input file.
        input: &'a Path,
        /// Where its restoration goes.
        output: &'a Path,
        /// The restoration, or why it failed.
        result: std::result::Result<&'a Restoration, &'a Error>,
    },
}

/// The outcome of a folder run.
#[derive(Debug, Default)]
pub struct FolderReport {
    /// `(input, output)` of every restored file.
    pub restored: Vec<(PathBuf, PathBuf)>,
    /// Every file that failed, with the reason; its output was not written.
    pub failed: Vec<(PathBuf, Error)>,
}

/// Restores every image of the folder tree `input` (the files [`list_images`] finds) into
/// `output` under the same relative names, creating folders as needed. A file that fails is
/// reported in [`FolderReport::failed`] and the others are still restored; the function itself
/// fails only when the folders cannot be listed or created, or when `output` is `input`
/// itself (or any path leading to the same files) and [`RestoreOptions::in_place`] is not set:
/// then nothing is restored and no file is touched ([`check_folder_output`]). Files already
/// under `output` (when it lies inside `input`) are skipped, so a rerun does not restore its
/// own results.
pub fn restore_folder(
    model: &Restorer,
    input: impl AsRef<Path>,
    output: impl AsRef<Path>,
    options: &RestoreOptions,
    device: &Device,
    mut events: impl FnMut(FolderEvent<'_>),
) -> Result<FolderReport> {
    let (input, output) = (input.as_ref(), output.as_ref());
    let files = check_folder_output(input, output, options)?;
    let mut report = FolderReport::default();
    let total = files.len();
    for (index, file) in files.iter().enumerate() {
        events(FolderEvent::Started {
            index,
            total,
            input: file,
        });
        let rel = file.strip_prefix(input).unwrap_or(file);
        let target = output.join(rel);
        let result = target
            .parent()
            .map_or(Ok(()), |dir| {
                std::fs::create_dir_all(dir).map_err(|source| Error::Io {
                    path: dir.to_path_buf(),
                    source,
                })
            })
            .and_then(|()| {
                restore_file(model, file, &target, options, device, |done, total| {
                    events(FolderEvent::Tile { done, total })
                })
            });
        events(FolderEvent::Finished {
            input: file,
            output: &target,
            result: result.as_ref(),
        });
        match result {
            Ok(_) => report.restored.push((file.clone(), target)),
            Err(e) => report.failed.push((file.clone(), e)),
        }
    }
    Ok(report)
}
