//! Datasets of (degraded, clean, label) samples: synthetic or paired, training or test mode.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::augment::{Dihedral, random_crop_origin};
use super::{Image, read_depth, read_image};
use crate::degrade::{
    Degradation, DepthMap, Quantization, Task, derive_seed, name_hash, relative_depth,
    rng_from_seed,
};
use crate::{Error, Result};

/// Where a sample comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// A degraded file and its clean target (Rain100L, SOTS, PromptIR's rain and haze sets).
    Pair {
        /// The degraded image file.
        degraded: PathBuf,
        /// The clean image file.
        clean: PathBuf,
    },
    /// A clean file degraded on the fly.
    Synthetic {
        /// The clean image file.
        clean: PathBuf,
        /// An optional depth map file for haze ([`read_depth`] format).
        depth: Option<PathBuf>,
        /// The degradation to synthesise.
        degradation: Arc<Degradation>,
    },
}

/// One item of a dataset: where its images come from, its task and a name.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// Files and, for synthetic entries, the degradation.
    pub source: Source,
    /// The task (and so the label) of the sample.
    pub task: Task,
    /// A name for reports and test-mode seeds (by default the degraded file's name).
    pub name: String,
}

impl Entry {
    /// A paired entry, named after the degraded file.
    pub fn pair(degraded: PathBuf, clean: PathBuf, task: Task) -> Self {
        Self {
            name: file_name(&degraded),
            source: Source::Pair { degraded, clean },
            task,
        }
    }

    /// A synthetic entry with the task's default degradation, named `<file>#<task>`.
    pub fn synthetic(clean: PathBuf, depth: Option<PathBuf>, task: Task) -> Self {
        Self::synthetic_with(clean, depth, task, Arc::new(task.degradation()))
    }

    /// A synthetic entry with a given degradation, named `<file>#<task>`.
    pub fn synthetic_with(
        clean: PathBuf,
        depth: Option<PathBuf>,
        task: Task,
        degradation: Arc<Degradation>,
    ) -> Self {
        Self {
            name: format!("{}#{}", file_name(&clean), task.name()),
            source: Source::Synthetic {
                clean,
                depth,
                degradation,
            },
            task,
        }
    }
}

pub(crate) fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

/// A loaded sample.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The degraded image (network input).
    pub degraded: Image,
    /// The clean image (target), the same size as `degraded`.
    pub clean: Image,
    /// The task; `task.label()` is the integer label.
    pub task: Task,
    /// The entry's name.
    pub name: String,
}

/// How a dataset turns an entry into a sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    /// Training: a random `patch × patch` crop and a random flip/rotation, both applied to the
    /// degraded and clean images alike; a fresh random draw for every `(epoch, index)`.
    Train {
        /// Crop side in pixels (PromptIR: 128).
        patch: usize,
        /// Which flips/rotations to draw from.
        augment: Augment,
    },
    /// Evaluation: the whole image, centre-cropped to a multiple of `multiple` (PromptIR: 16);
    /// synthetic degradations seeded per image from the base seed and the entry's name, so
    /// every run, order and epoch gives the same test set.
    Test {
        /// Both sides are cropped to a multiple of this.
        multiple: usize,
    },
}

/// The flips/rotations drawn in [`Mode::Train`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Augment {
    /// None.
    None,
    /// One of all 8 elements of the dihedral group.
    All8,
    /// One of the 7 non-identity elements, as PromptIR's `random_augmentation` (the default).
    #[default]
    NonIdentity7,
}

/// A dataset of [`Entry`]s read and degraded on demand.
///
/// Randomness: every sample draws from its own generator seeded with
/// `derive_seed(seed, [epoch, index])` in training mode and
/// `derive_seed(seed, [name_hash(name)])` in test mode, so a sample does not depend on which
/// thread loads it or in which order.
///
/// A synthetic sample is made as if its images were 8-bit files
/// ([`with_quantization`](Self::with_quantization)): the clean photograph (after any
/// downscaling) and the degraded image are rounded to the grid `k/255`.
#[derive(Clone, Debug)]
pub struct RestoreDataset {
    entries: Vec<Entry>,
    mode: Mode,
    seed: u64,
    max_side: Option<usize>,
    cache: Option<Arc<CleanCache>>,
    quantization: Quantization,
}

/// A photograph and its depth map file, if any: what a relative depth is kept under.
type DepthKey = (PathBuf, Option<PathBuf>);

/// What a dataset keeps of its synthetic entries' photographs, shared by the loader's threads.
#[derive(Debug, Default)]
struct CleanCache {
    /// Decoded (and downscaled) clean photographs.
    photos: Mutex<HashMap<PathBuf, Arc<Image>>>,
    /// The relative depth haze gives each photograph ([`relative_depth`], as a map of the
    /// photograph's size), by photograph and depth map file.
    depths: Mutex<HashMap<DepthKey, Arc<DepthMap>>>,
    /// Depth map files as read and resampled to a photograph's size, by file and size.
    depth_files: Mutex<HashMap<(PathBuf, usize, usize), Arc<DepthMap>>>,
}

/// The value under `key`, made by `make` and kept on first use.
fn cached<K: std::hash::Hash + Eq, V>(
    map: &Mutex<HashMap<K, Arc<V>>>,
    key: K,
    make: impl FnOnce() -> Result<V>,
) -> Result<Arc<V>> {
    let hit = map
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&key)
        .cloned();
    if let Some(v) = hit {
        return Ok(v);
    }
    let v = Arc::new(make()?);
    map.lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key, v.clone());
    Ok(v)
}

impl RestoreDataset {
    /// A training dataset: random `patch`² crops with [`Augment::NonIdentity7`].
    pub fn train(entries: Vec<Entry>, patch: usize, seed: u64) -> Self {
        Self {
            entries,
            mode: Mode::Train {
                patch,
                augment: Augment::default(),
            },
            seed,
            max_side: None,
            cache: None,
            quantization: Quantization::Round,
        }
    }

    /// A test dataset: whole images cropped to a multiple of 16, fixed seeds per image.
    pub fn test(entries: Vec<Entry>, seed: u64) -> Self {
        Self {
            entries,
            mode: Mode::Test { multiple: 16 },
            seed,
            max_side: None,
            cache: None,
            quantization: Quantization::Round,
        }
    }

    /// The same dataset with another [`Mode`].
    pub fn with_mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// The same dataset, downscaling (area average) every clean photograph of a synthetic
    /// entry whose longer side exceeds `max_side` to that side before it is cropped and
    /// degraded. Large photographs then give crops with as much structure as the small ones,
    /// and whole-frame haze (test mode) costs less. Paired entries are left alone.
    pub fn with_max_side(mut self, max_side: Option<usize>) -> Self {
        self.max_side = max_side;
        self
    }

    /// The same dataset, storing its synthetic samples with `quantization` (default
    /// [`Quantization::Round`]: as 8-bit files, the form of every photograph a user restores
    /// and of the degraded files of the benchmarks). The clean photograph is stored so after it
    /// is downscaled (one read from an 8-bit file and not downscaled stays on its grid) and the
    /// degraded image after its degradation; noise, low light and JPEG already produce
    /// 8-bit values, haze, rain and blur continuous ones. A network trained on continuous haze
    /// reacts to the 8-bit rounding of a real file (`docs/data.md`). A 16-bit photograph is
    /// rounded too; [`Quantization::None`] keeps every value continuous (clamped to `[0, 1]`).
    /// Paired entries are read as their files hold them.
    pub fn with_quantization(mut self, quantization: Quantization) -> Self {
        self.quantization = quantization;
        self
    }

    /// The [`Quantization`] of the synthetic samples.
    pub fn quantization(&self) -> Quantization {
        self.quantization
    }

    /// The same dataset, keeping every decoded (and downscaled) clean photograph of a
    /// synthetic entry in memory after its first use, shared by all clones (and loader
    /// threads). Costs `12 × pixels` bytes per photograph; saves a decode per sample. Hazed
    /// photographs also keep their relative depth (`4 × pixels` bytes), which then costs
    /// nothing per training crop, and a depth map file is read once (per size), not once per
    /// whole-frame or test sample.
    pub fn with_cache(mut self, cache: bool) -> Self {
        self.cache = cache.then(|| Arc::new(CleanCache::default()));
        self
    }

    /// Reads a clean photograph of a synthetic entry (through the cache, downscaled); shared,
    /// not copied, when it comes from the cache.
    fn clean_photo(&self, path: &Path) -> Result<Arc<Image>> {
        let load = || -> Result<Image> {
            let img = read_image(path)?;
            let img = match self.max_side {
                Some(m) if img.width.max(img.height) > m && m > 0 => {
                    let scale = m as f64 / img.width.max(img.height) as f64;
                    let w = ((img.width as f64 * scale).round() as usize).max(1);
                    let h = ((img.height as f64 * scale).round() as usize).max(1);
                    img.resized(w, h)
                }
                _ => img,
            };
            Ok(self.quantization.apply(&img))
        };
        match &self.cache {
            Some(cache) => cached(&cache.photos, path.to_path_buf(), load),
            None => load().map(Arc::new),
        }
    }

    /// The relative depth haze gives the clean photograph `image` read from `path` (with the
    /// depth map file `depth`, resampled to it, or the depth proxy): through the cache.
    fn photo_depth(
        &self,
        path: &Path,
        image: &Image,
        depth: Option<&Path>,
    ) -> Result<Arc<DepthMap>> {
        let make = || -> Result<DepthMap> {
            let map = depth.map(read_depth).transpose()?;
            DepthMap::new(
                image.width,
                image.height,
                relative_depth(image, map.as_ref()),
            )
        };
        match &self.cache {
            Some(cache) => cached(
                &cache.depths,
                (path.to_path_buf(), depth.map(Path::to_path_buf)),
                make,
            ),
            None => make().map(Arc::new),
        }
    }

    /// The depth map file `depth` resampled to `width × height`: through the cache, so that
    /// whole-frame degradations and test mode read it once, not once per sample.
    fn depth_file(&self, depth: &Path, width: usize, height: usize) -> Result<Arc<DepthMap>> {
        let make = || Ok(read_depth(depth)?.resized(width, height));
        match &self.cache {
            Some(cache) => cached(
                &cache.depth_files,
                (depth.to_path_buf(), width, height),
                make,
            ),
            None => make().map(Arc::new),
        }
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The entries, in index order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The seed sample `index` uses in `epoch` (test mode ignores `epoch` and `index`).
    pub fn sample_seed(&self, index: usize, epoch: u64) -> u64 {
        match self.mode {
            Mode::Train { .. } => derive_seed(self.seed, &[epoch, index as u64]),
            Mode::Test { .. } => derive_seed(self.seed, &[name_hash(&self.entries[index].name)]),
        }
    }

    /// Loads sample `index` for `epoch`. Errors name the file involved.
    pub fn get(&self, index: usize, epoch: u64) -> Result<Sample> {
        let entry = self.entries.get(index).ok_or_else(|| {
            Error::Dataset(format!(
                "index {index} out of range for {} entries",
                self.entries.len()
            ))
        })?;
        let mut rng = rng_from_seed(self.sample_seed(index, epoch));
        let at = |path: &Path, e: Error| match e {
            Error::Config(msg) => Error::Image {
                path: path.to_path_buf(),
                reason: msg,
            },
            other => other,
        };
        let (degraded, clean) = match &entry.source {
            Source::Pair { degraded, clean } => {
                let d = read_image(degraded)?;
                let c = read_image(clean)?;
                let c = match_sizes(&d, c, degraded, clean)?;
                let (d, c) = self
                    .shape_pair(d, c, &mut rng)
                    .map_err(|e| at(degraded, e))?;
                (d, c)
            }
            Source::Synthetic {
                clean,
                depth,
                degradation,
            } => {
                let c = self.clean_photo(clean)?;
                let (d, c) = self
                    .synthesize(clean, &c, depth.as_deref(), degradation, &mut rng)
                    .map_err(|e| at(clean, e))?;
                // rounding is per value: the same before or after the crop and the flip
                (self.quantization.apply(&d), c)
            }
        };
        Ok(Sample {
            degraded,
            clean,
            task: entry.task,
            name: entry.name.clone(),
        })
    }

    /// Crop (and in training, flip) a loaded pair.
    fn shape_pair(
        &self,
        d: Image,
        c: Image,
        rng: &mut crate::degrade::DegradeRng,
    ) -> Result<(Image, Image)> {
        match self.mode {
            Mode::Train { patch, augment } => {
                let (x, y) = random_crop_origin(d.width, d.height, patch, rng)?;
                let t = draw(augment, rng);
                Ok((
                    t.apply(&d.crop(x, y, patch, patch)?),
                    t.apply(&c.crop(x, y, patch, patch)?),
                ))
            }
            Mode::Test { multiple } => {
                Ok((d.crop_to_multiple(multiple)?, c.crop_to_multiple(multiple)?))
            }
        }
    }

    /// Degrade the clean photograph `clean` (read from `path`, with the depth map file
    /// `depth_file`): crop first (cheap) unless the degradation needs the whole frame. Haze
    /// alone needs only the frame's relative depth, which is cropped with the photograph.
    fn synthesize(
        &self,
        path: &Path,
        clean: &Image,
        depth_file: Option<&Path>,
        degradation: &Degradation,
        rng: &mut crate::degrade::DegradeRng,
    ) -> Result<(Image, Image)> {
        let depth_map = || -> Result<Option<Arc<DepthMap>>> {
            depth_file
                .map(|p| self.depth_file(p, clean.width, clean.height))
                .transpose()
        };
        match self.mode {
            Mode::Train { patch, augment } => {
                let (x, y) = random_crop_origin(clean.width, clean.height, patch, rng)?;
                let t = draw(augment, rng);
                let c = clean.crop(x, y, patch, patch)?;
                let d = match degradation {
                    Degradation::Haze(haze) => {
                        let depth = self.photo_depth(path, clean, depth_file)?;
                        let crop = depth.crop(x, y, patch, patch)?;
                        haze.apply_with_relative_depth(&c, &crop.data, rng)
                    }
                    _ if degradation.needs_full_image() => degradation
                        .apply_with_depth(clean, depth_map()?.as_deref(), rng)
                        .crop(x, y, patch, patch)?,
                    _ => {
                        let dm = depth_map()?
                            .map(|m| m.crop(x, y, patch, patch))
                            .transpose()?;
                        degradation.apply_with_depth(&c, dm.as_ref(), rng)
                    }
                };
                Ok((t.apply(&d), t.apply(&c)))
            }
            Mode::Test { multiple } => {
                let d = degradation.apply_with_depth(clean, depth_map()?.as_deref(), rng);
                Ok((
                    d.crop_to_multiple(multiple)?,
                    clean.crop_to_multiple(multiple)?,
                ))
            }
        }
    }
}

fn draw(augment: Augment, rng: &mut crate::degrade::DegradeRng) -> Dihedral {
    match augment {
        Augment::None => Dihedral::IDENTITY,
        Augment::All8 => Dihedral::random(rng),
        Augment::NonIdentity7 => Dihedral::random_non_identity(rng),
    }
}

/// Pairs must have one size; a clean image larger on both sides is centre-cropped to the
/// degraded one (RESIDE's indoor sets crop the hazy images by 10 pixels per side).
fn match_sizes(d: &Image, c: Image, dp: &Path, cp: &Path) -> Result<Image> {
    if (c.width, c.height) == (d.width, d.height) {
        return Ok(c);
    }
    if c.width >= d.width && c.height >= d.height {
        let (x, y) = ((c.width - d.width) / 2, (c.height - d.height) / 2);
        return c.crop(x, y, d.width, d.height);
    }
    Err(Error::Image {
        path: dp.to_path_buf(),
        reason: format!(
            "degraded image is {}×{} but its clean target {} is {}×{}",
            d.width,
            d.height,
            cp.display(),
            c.width,
            c.height
        ),
    })
}

/// Repeats each task's entries to balance the mix: a task with `n` entries and weight `w`
/// contributes `round(w · n)` entries, cycling through its own (so `w = 3` lists each three
/// times, `w = 0.5` every other one). Tasks missing from `weights` keep weight 1; the order is
/// by task label, then the original order.
pub fn balance(entries: Vec<Entry>, weights: &[(Task, f32)]) -> Vec<Entry> {
    let mut tasks: Vec<Task> = entries.iter().map(|e| e.task).collect();
    tasks.sort();
    tasks.dedup();
    let mut out = Vec::new();
    for task in tasks {
        let group: Vec<&Entry> = entries.iter().filter(|e| e.task == task).collect();
        let w = weights
            .iter()
            .find(|(t, _)| *t == task)
            .map_or(1.0, |(_, w)| *w)
            .max(0.0);
        let count = (w * group.len() as f32).round() as usize;
        out.extend((0..count).map(|i| group[i % group.len()].clone()));
    }
    out
}

/// PromptIR's 3-task balance: each noise level ×3, rain ×120, haze ×1.
pub fn promptir_weights() -> Vec<(Task, f32)> {
    vec![
        (Task::Denoise15, 3.0),
        (Task::Denoise25, 3.0),
        (Task::Denoise50, 3.0),
        (Task::Derain, 120.0),
        (Task::Dehaze, 1.0),
    ]
}

/// A task of a synthetic mix with its degradation and weight.
#[derive(Clone, Debug, PartialEq)]
pub struct MixItem {
    /// The label the samples carry.
    pub task: Task,
    /// What is done to the clean image.
    pub degradation: Arc<Degradation>,
    /// Entries per clean image (see [`balance`]).
    pub weight: f32,
}

/// Which tasks a synthetic dataset makes, how, and how often.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct TaskMix {
    /// The tasks.
    pub items: Vec<MixItem>,
}

impl TaskMix {
    /// Every task with its default degradation and weight 1.
    pub fn uniform(tasks: &[Task]) -> Self {
        Self {
            items: tasks
                .iter()
                .map(|&task| MixItem {
                    task,
                    degradation: Arc::new(task.degradation()),
                    weight: 1.0,
                })
                .collect(),
        }
    }

    /// Adds a task with its own degradation and weight.
    pub fn with(mut self, task: Task, degradation: Degradation, weight: f32) -> Self {
        self.items.push(MixItem {
            task,
            degradation: Arc::new(degradation),
            weight,
        });
        self
    }

    /// Sets the weight of every item of `task`.
    pub fn weight(mut self, task: Task, weight: f32) -> Self {
        for item in self.items.iter_mut().filter(|i| i.task == task) {
            item.weight = weight;
        }
        self
    }
}

/// The image files of a folder tree (`.png`, `.jpg`, `.jpeg`, `.webp`, `.tif`, `.tiff`, `.bmp`,
/// any case), sorted, skipping depth maps (`*_depth.png`) and hidden files.
pub fn list_images(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let rd = std::fs::read_dir(&d).map_err(|source| Error::Io {
            path: d.clone(),
            source,
        })?;
        for item in rd {
            let item = item.map_err(|source| Error::Io {
                path: d.clone(),
                source,
            })?;
            let p = item.path();
            let name = file_name(&p);
            if name.starts_with('.') {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else if is_image_name(&name) && !is_depth_name(&name) {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

pub(crate) fn is_image_name(name: &str) -> bool {
    super::io::FileFormat::from_extension(Path::new(name)).is_some()
}

fn is_depth_name(name: &str) -> bool {
    name.to_lowercase().ends_with("_depth.png")
}

/// Entries degrading every photograph under `dir` by every task of `mix`: for each item,
/// `round(weight · n_images)` entries cycling through the images. A photograph `NAME.ext` with
/// a depth map `NAME_depth.png` beside it hazes with that depth.
///
/// Fails if `dir` holds no image, or the mix is empty.
pub fn synthetic_entries(dir: &Path, mix: &TaskMix) -> Result<Vec<Entry>> {
    let images = list_images(dir)?;
    if images.is_empty() {
        return Err(Error::Dataset(format!(
            "{}: no .png/.jpg/.jpeg image found",
            dir.display()
        )));
    }
    if mix.items.is_empty() {
        return Err(Error::Config("the task mix is empty".into()));
    }
    let depth_of = |p: &PathBuf| {
        let stem = p.file_stem()?.to_string_lossy().into_owned();
        let d = p.with_file_name(format!("{stem}_depth.png"));
        d.is_file().then_some(d)
    };
    let mut out = Vec::new();
    for item in &mix.items {
        let count = (item.weight.max(0.0) * images.len() as f32).round() as usize;
        for i in 0..count {
            let p = &images[i % images.len()];
            out.push(Entry::synthetic_with(
                p.clone(),
                depth_of(p),
                item.task,
                item.degradation.clone(),
            ));
        }
    }
    Ok(out)
}
