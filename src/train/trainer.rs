//! The training loop.
//!
//! Determinism: every random draw of step `s` is a function of the experiment seed and `s`:
//! - the data order of epoch `e` is a permutation seeded by `(seed, e)`, and step `s` takes
//!   batch `s mod B` of epoch `s div B` (`B` batches per epoch, the last short one dropped);
//! - each sample's crop, flip and degradation are seeded by `(seed, e, index)`;
//! - the backend generator (prompt sampling) is re-seeded with `(seed, s)` before step `s`.
//!
//! So a checkpoint needs to store only the step besides the tensors, and a resumed run repeats
//! the uninterrupted run's losses exactly (tested in `tests/resume.rs`).

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;

use super::checkpoint::{self, BestScore, Checkpoint, TrainState};
use super::config::{DataLayout, ExperimentConfig};
use super::{LossParts, plot, restoration_loss};
use crate::data::{
    Augment, Entry, Loader, LoaderConfig, Mode, RestoreDataset, Sample, Source, TaskMix, balance,
    images_to_tensor, list_images, promptir_train, synthetic_entries, tensor_to_images,
};
use crate::degrade::{Task, derive_seed};
use crate::eval::restoration_scores;
use crate::model::{PromptSiteConfig, Restorer, RestorerConfig};
use crate::{Error, Result};

const STREAM_INIT: u64 = 0x1417;
const STREAM_ORDER: u64 = 0x0bde;
const STREAM_CROPS: u64 = 0xc409;
const STREAM_STEP: u64 = 0x57e9;

/// How to run a training (besides the experiment configuration).
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// The run folder (checkpoints, CSV logs, plot, models).
    pub run_dir: PathBuf,
    /// The data folder; overrides `data.root` of the configuration.
    pub data_root: Option<PathBuf>,
    /// The device (not autodiff: the trainer adds it).
    pub device: Device,
    /// Continue from the newest valid checkpoint in `run_dir/checkpoints`.
    pub resume: bool,
    /// Stop (as if killed: no final checkpoint, no final model) once this many steps of the
    /// whole run are done. For tests of resumption.
    pub stop_at: Option<u64>,
    /// Print progress on stderr.
    pub progress: bool,
    /// A fresh run starts from the network in this model file (`.bpk` written by
    /// [`Restorer::save`]) instead of a random initialisation; the optimiser starts fresh.
    /// The file's network must have the shapes of the experiment's (its degradation names may
    /// differ: the experiment's are kept, so a spare prototype can be given a name). Ignored
    /// on resume (the checkpoint holds the network).
    pub init: Option<PathBuf>,
    /// End the run cleanly after the first step that finishes this long after the call
    /// started: a checkpoint and `final.bpk` are written, and [`TrainSummary::time_limited`]
    /// says so. `--resume` continues the schedule from there.
    pub time_limit: Option<Duration>,
}

impl TrainOptions {
    /// Options for a fresh run in `run_dir` on `device`, data from the configuration, quiet.
    pub fn new(run_dir: impl Into<PathBuf>, device: Device) -> Self {
        Self {
            run_dir: run_dir.into(),
            data_root: None,
            device,
            resume: false,
            stop_at: None,
            progress: false,
            init: None,
            time_limit: None,
        }
    }
}

/// One task's validation scores (means over its validation images).
#[derive(Debug, Clone, PartialEq)]
pub struct TaskScore {
    /// The task.
    pub task: Task,
    /// Mean PSNR of the restored images (dB).
    pub psnr: f64,
    /// Mean SSIM of the restored images.
    pub ssim: f64,
    /// Mean PSNR of the degraded inputs.
    pub input_psnr: f64,
    /// Mean SSIM of the degraded inputs.
    pub input_ssim: f64,
    /// Images averaged.
    pub images: usize,
}

/// A validation pass.
#[derive(Debug, Clone, PartialEq)]
pub struct Validation {
    /// Steps done when it ran.
    pub step: u64,
    /// Per task, in task-label order.
    pub tasks: Vec<TaskScore>,
    /// Mean over tasks of the task PSNRs (the papers' "average" column).
    pub mean_psnr: f64,
    /// Mean over tasks of the task SSIMs.
    pub mean_ssim: f64,
}

/// What a call of [`train`] did.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    /// Steps done in the whole run when it returned.
    pub step: u64,
    /// `(step, total loss)` of each step run by this call (step counted from 1).
    pub losses: Vec<(u64, f64)>,
    /// Validations run by this call.
    pub validations: Vec<Validation>,
    /// The best validation score of the run.
    pub best: Option<BestScore>,
    /// Mean training throughput of this call (images per second, validation excluded).
    pub images_per_second: f64,
    /// Whether the run ended at [`TrainOptions::time_limit`] before `steps`.
    pub time_limited: bool,
}

/// The training and validation entries of a data configuration.
pub struct SplitData {
    /// Training entries (balanced).
    pub train: Vec<Entry>,
    /// Validation entries (one per held-out source image and task).
    pub val: Vec<Entry>,
}

fn clean_path(e: &Entry) -> &Path {
    match &e.source {
        Source::Pair { clean, .. } => clean,
        Source::Synthetic { clean, .. } => clean,
    }
}

/// Builds the training and validation entries (see [`super::DataConfig::val_holdout`]).
pub fn split_data(config: &ExperimentConfig, root: &Path) -> Result<SplitData> {
    let d = &config.data;
    let weights: Vec<(Task, f32)> = d.task_weights.iter().map(|(&t, &w)| (t, w)).collect();
    match d.layout {
        DataLayout::Photos => {
            let images = list_images(root)?;
            if d.val_holdout >= images.len() {
                return Err(Error::Config(format!(
                    "{}: {} photographs, so val_holdout = {} leaves none to train on",
                    root.display(),
                    images.len(),
                    d.val_holdout
                )));
            }
            let held: Vec<PathBuf> = images[images.len() - d.val_holdout..].to_vec();
            let mut mix = TaskMix::uniform(&d.tasks);
            for (t, w) in &weights {
                mix = mix.weight(*t, *w);
            }
            let train: Vec<Entry> = synthetic_entries(root, &mix)?
                .into_iter()
                .filter(|e| !held.iter().any(|h| h == clean_path(e)))
                .collect();
            let val: Vec<Entry> = synthetic_entries(root, &TaskMix::uniform(&d.tasks))?
                .into_iter()
                .filter(|e| held.is_empty() || held.iter().any(|h| h == clean_path(e)))
                .collect();
            Ok(SplitData { train, val })
        }
        DataLayout::Promptir => {
            let all = promptir_train(root, &d.tasks, None)?;
            let mut per_task: BTreeMap<Task, usize> = BTreeMap::new();
            let (mut train, mut val) = (Vec::new(), Vec::new());
            for e in all {
                let n = per_task.entry(e.task).or_default();
                *n += 1;
                if *n <= d.val_holdout.max(1) {
                    val.push(e.clone());
                }
                if *n > d.val_holdout {
                    train.push(e);
                }
            }
            Ok(SplitData {
                train: balance(train, &weights),
                val,
            })
        }
    }
}

/// The DPA target of each task: the index of its family in the network's `degradations`.
/// `None` when the run trains no DPA cross-entropy (no DPPD site, or weight 0); an error
/// naming the missing families when a trained task's family has no prototype.
fn family_labels(
    network: &RestorerConfig,
    config: &ExperimentConfig,
) -> Result<Option<BTreeMap<Task, usize>>> {
    let has_dppd = network
        .prompt_sites
        .iter()
        .any(|s| matches!(s, PromptSiteConfig::Dppd(_)));
    if !has_dppd || config.loss.dpa_ce == 0.0 {
        return Ok(None);
    }
    let mut map = BTreeMap::new();
    let mut missing = Vec::new();
    for &t in &config.data.tasks {
        match network.degradations.iter().position(|d| d == t.family()) {
            Some(k) => {
                map.insert(t, k);
            }
            None => missing.push(format!("{t} (family {:?})", t.family())),
        }
    }
    if !missing.is_empty() {
        return Err(Error::Config(format!(
            "the DPA cross-entropy needs a prototype for every trained task's family, but the \
             network's degradations {:?} lack: {}; add them to `degradations` (the network \
             needs as many prototypes) or set loss.dpa_ce to 0",
            network.degradations,
            missing.join(", ")
        )));
    }
    Ok(Some(map))
}

/// The fixed validation set, loaded once, with the degraded inputs' own scores.
struct ValSet {
    samples: Vec<Sample>,
    input_scores: Vec<(f64, f64)>,
}

fn build_val(config: &ExperimentConfig, entries: Vec<Entry>) -> Result<ValSet> {
    let d = &config.data;
    let dataset = if d.val_patch > 0 {
        let mut rep = Vec::with_capacity(entries.len() * d.val_crops);
        for _ in 0..d.val_crops {
            rep.extend(entries.iter().cloned());
        }
        RestoreDataset::train(rep, d.val_patch, d.val_seed)
            .with_mode(Mode::Train {
                patch: d.val_patch,
                augment: Augment::None,
            })
            .with_max_side(d.max_side)
            .with_cache(true)
    } else {
        RestoreDataset::test(entries, d.val_seed).with_max_side(d.max_side)
    };
    let samples = (0..dataset.len())
        .map(|i| dataset.get(i, 0))
        .collect::<Result<Vec<_>>>()?;
    let input_scores = samples
        .iter()
        .map(|s| restoration_scores(&s.degraded, &s.clean))
        .collect::<Result<Vec<_>>>()?;
    Ok(ValSet {
        samples,
        input_scores,
    })
}

fn validate(
    model: &Restorer,
    val: &ValSet,
    batch: usize,
    device: &Device,
    step: u64,
) -> Result<Validation> {
    let m = model.valid();
    let mut sums: BTreeMap<Task, [f64; 5]> = BTreeMap::new();
    let mut i = 0;
    while i < val.samples.len() {
        // batch samples of one size
        let (w, h) = (val.samples[i].clean.width, val.samples[i].clean.height);
        let mut j = i;
        while j < val.samples.len()
            && j - i < batch
            && (val.samples[j].clean.width, val.samples[j].clean.height) == (w, h)
        {
            j += 1;
        }
        let chunk = &val.samples[i..j];
        let degraded: Vec<_> = chunk.iter().map(|s| s.degraded.clone()).collect();
        let restored = tensor_to_images(m.forward(images_to_tensor(&degraded, device)?))?;
        for (k, (s, r)) in chunk.iter().zip(&restored).enumerate() {
            let (p, q) = restoration_scores(r, &s.clean)?;
            let (ip, iq) = val.input_scores[i + k];
            let e = sums.entry(s.task).or_default();
            for (acc, v) in e.iter_mut().zip([p, q, ip, iq, 1.0]) {
                *acc += v;
            }
        }
        i = j;
    }
    let tasks: Vec<TaskScore> = sums
        .into_iter()
        .map(|(task, [p, q, ip, iq, n])| TaskScore {
            task,
            psnr: p / n,
            ssim: q / n,
            input_psnr: ip / n,
            input_ssim: iq / n,
            images: n as usize,
        })
        .collect();
    let n = tasks.len().max(1) as f64;
    Ok(Validation {
        step,
        mean_psnr: tasks.iter().map(|t| t.psnr).sum::<f64>() / n,
        mean_ssim: tasks.iter().map(|t| t.ssim).sum::<f64>() / n,
        tasks,
    })
}

/// The network of `path` in the shapes of `network` (see [`TrainOptions::init`]).
fn init_from(network: &RestorerConfig, path: &Path, device: &Device) -> Result<Restorer> {
    if let Some(stored) = Restorer::config_in_file(path)? {
        let named = RestorerConfig {
            degradations: network.degradations.clone(),
            ..stored
        };
        if &named != network {
            return Err(Error::Config(format!(
                "{}: its network is not the experiment's (only the degradation names may \
                 differ); file: {}, experiment: {}",
                path.display(),
                serde_json::to_string(&named).unwrap_or_default(),
                serde_json::to_string(network).unwrap_or_default()
            )));
        }
    }
    Restorer::load_weights(network, path, device)
}

/// Checkpoint files `ckpt-STEP.ckpt` in `dir`, newest first.
pub fn list_checkpoints(dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut v: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let step = name
                .strip_prefix("ckpt-")?
                .strip_suffix(".ckpt")?
                .parse()
                .ok()?;
            Some((step, e.path()))
        })
        .collect();
    v.sort_by_key(|c| std::cmp::Reverse(c.0));
    v
}

/// Keeps the rows of a CSV log whose first field (the step) is at most `step`.
fn truncate_log(path: &Path, step: u64) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let mut out = String::new();
    for (i, line) in text.lines().enumerate() {
        let keep = i == 0
            || line
                .split(',')
                .next()
                .and_then(|s| s.parse::<u64>().ok())
                .is_some_and(|s| s <= step);
        if keep {
            out.push_str(line);
            out.push('\n');
        }
    }
    crate::atomic::write_bytes(path, out.as_bytes())
}

fn append(path: &Path, header: &str, rows: &str) -> Result<()> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let new = !path.exists();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io)?;
    if new {
        writeln!(f, "{header}").map_err(io)?;
    }
    f.write_all(rows.as_bytes()).map_err(io)
}

/// The train log's header.
pub const TRAIN_CSV_HEADER: &str = "step,epoch,lr,loss,l1,dpa_ce,pdl_kl,images_per_s";
/// The validation log's header (`task` = `average` for the mean over tasks).
pub const VAL_CSV_HEADER: &str = "step,task,psnr,ssim,input_psnr,input_ssim";

/// The total loss and its L1, DPA cross-entropy and PDL KL parts (NaN when absent), read from
/// the device in one transfer: one synchronisation per step on a GPU instead of four.
fn loss_values(parts: &LossParts) -> [f64; 4] {
    let terms = [
        Some(&parts.total),
        Some(&parts.l1),
        parts.dpa_ce.as_ref(),
        parts.pdl_kl.as_ref(),
    ];
    let present: Vec<Tensor<1>> = terms.iter().flatten().map(|t| (*t).clone()).collect();
    let values: Vec<f32> = Tensor::cat(present, 0)
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap_or_default();
    let mut it = values.into_iter();
    terms.map(|t| match t {
        Some(_) => it.next().map_or(f64::NAN, f64::from),
        None => f64::NAN,
    })
}

fn hms(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// Trains (or continues) a run. See the module docs and `docs/training.md`.
pub fn train(config: ExperimentConfig, opts: &TrainOptions) -> Result<TrainSummary> {
    config.validate()?;
    let run = &opts.run_dir;
    let ckpt_dir = run.join("checkpoints");
    std::fs::create_dir_all(&ckpt_dir).map_err(|source| Error::Io {
        path: ckpt_dir.clone(),
        source,
    })?;
    let base = opts.device.clone();
    let ad = base.clone().autodiff();
    let existing = list_checkpoints(&ckpt_dir);

    // the model, the optimiser and the step: fresh or from the newest valid checkpoint
    let mut resumed: Option<TrainState> = None;
    let (mut model, mut optim, start, mut best): (Restorer, ModuleOptimizer, u64, _) =
        if opts.resume {
            let mut found = None;
            for (_, p) in &existing {
                match checkpoint::read_state(p) {
                    Ok(_) => {
                        found = Some(p.clone());
                        break;
                    }
                    Err(e) => eprintln!("skipping an unusable checkpoint: {e}"),
                }
            }
            let path = found.ok_or_else(|| {
                Error::Training(format!(
                    "--resume: no valid checkpoint in {}",
                    ckpt_dir.display()
                ))
            })?;
            let c = Checkpoint::load(&path, &ad)?;
            let mut stored = c.state.experiment.clone();
            stored.steps = config.steps;
            if stored != config {
                return Err(Error::Training(format!(
                    "{}: the checkpoint was made with another configuration (only `steps` may \
                     change on resume); resume with the run's own {}",
                    path.display(),
                    run.join("config.json").display()
                )));
            }
            if opts.progress {
                eprintln!("resuming from {} (step {})", path.display(), c.state.step);
            }
            let (step, best) = (c.state.step, c.state.best);
            resumed = Some(c.state);
            (c.model, c.optimizer, step, best)
        } else {
            if !existing.is_empty() {
                return Err(Error::Training(format!(
                    "{} already holds checkpoints: pass --resume to continue, or choose \
                     another run folder",
                    ckpt_dir.display()
                )));
            }
            let network = config.model.resolve()?;
            ad.seed(derive_seed(config.seed, &[STREAM_INIT]));
            let model = match &opts.init {
                Some(path) => init_from(&network, path, &ad)?,
                None => network.init(&ad),
            };
            (model, config.optimizer.adamw().init(), 0, None)
        };
    let network = model.config().clone();
    let labels_of = family_labels(&network, &config)?;

    // data
    let root = opts
        .data_root
        .clone()
        .or_else(|| config.data.root.clone())
        .ok_or_else(|| Error::Config("no data folder: set data.root or pass --data".into()))?;
    let split = split_data(&config, &root)?;
    let dataset = Arc::new(
        RestoreDataset::train(
            split.train,
            config.patch_size,
            derive_seed(config.seed, &[STREAM_CROPS]),
        )
        .with_max_side(config.data.max_side)
        .with_cache(config.data.cache_images),
    );
    let loader = Loader::new(
        dataset.clone(),
        LoaderConfig {
            batch_size: config.batch_size,
            workers: config.data.workers,
            shuffle: true,
            seed: derive_seed(config.seed, &[STREAM_ORDER]),
            drop_last: true,
            prefetch: 2 * config.batch_size,
        },
        ad.clone(),
    );
    let per_epoch = loader.num_batches() as u64;
    if per_epoch == 0 {
        return Err(Error::Config(format!(
            "{} training samples make no batch of {}",
            dataset.len(),
            config.batch_size
        )));
    }
    let val = build_val(&config, split.val)?;
    let state_of = |step: u64, best: Option<BestScore>| TrainState {
        step,
        experiment: config.clone(),
        network: network.clone(),
        best,
        train_samples: dataset.len(),
        val_samples: val.samples.len(),
    };
    let train_csv = run.join("train.csv");
    let val_csv = run.join("val.csv");
    if let Some(stored) = &resumed {
        if (stored.train_samples, stored.val_samples) != (dataset.len(), val.samples.len()) {
            return Err(Error::Training(format!(
                "the data changed since the checkpoint: {} training / {} validation samples \
                 then, {} / {} now",
                stored.train_samples,
                stored.val_samples,
                dataset.len(),
                val.samples.len()
            )));
        }
        truncate_log(&train_csv, start)?;
        truncate_log(&val_csv, start)?;
    } else {
        for p in [&train_csv, &val_csv] {
            let _ = std::fs::remove_file(p);
        }
        let json =
            serde_json::to_string_pretty(&config).map_err(|e| Error::Config(e.to_string()))?;
        crate::atomic::write_bytes(&run.join("config.json"), json.as_bytes())?;
    }
    if opts.progress {
        eprintln!(
            "training {} → {} steps: {} training samples ({} batches of {} per epoch), {} \
             validation images, {} parameters",
            start,
            config.steps,
            dataset.len(),
            per_epoch,
            config.batch_size,
            val.samples.len(),
            model.num_params()
        );
    }

    let tty = std::io::stderr().is_terminal();
    let mut summary = TrainSummary {
        step: start,
        losses: Vec::new(),
        validations: Vec::new(),
        best,
        images_per_second: 0.0,
        time_limited: false,
    };
    let started = Instant::now();
    let mut iter = None;
    let mut iter_epoch = u64::MAX;
    let mut train_secs = 0.0f64;
    let mut ema_rate = 0.0f64;
    let mut step = start;
    let last_ckpt = |dir: &Path| list_checkpoints(dir).first().map(|(_, p)| p.clone());
    while step < config.steps {
        if opts.stop_at.is_some_and(|s| step >= s) {
            summary.step = step;
            return Ok(summary);
        }
        let t0 = Instant::now();
        let epoch = step / per_epoch;
        if iter_epoch != epoch {
            iter = Some(loader.epoch_from(epoch, (step % per_epoch) as usize));
            iter_epoch = epoch;
        }
        let batch = iter
            .as_mut()
            .and_then(|it| it.next())
            .ok_or_else(|| Error::Training(format!("epoch {epoch} ended early")))??;
        ad.seed(derive_seed(config.seed, &[STREAM_STEP, step]));
        let lr = config.lr_at(step);
        let labels = labels_of.as_ref().map(|map| {
            let l: Vec<usize> = batch.tasks.iter().map(|t| map[t]).collect();
            crate::data::labels_to_tensor(&l, &ad)
        });
        let out = model.forward_with(batch.degraded, None);
        let parts: LossParts = restoration_loss(&out, batch.clean, labels, &config.loss);
        let [loss, l1, ce, kl] = loss_values(&parts);
        if !loss.is_finite() {
            return Err(Error::Training(format!(
                "non-finite loss {loss} at step {} (L1 {l1}, DPA CE {ce}, PDL KL {kl}); \
                 stopped without writing a checkpoint; the last good one is {}. Lower the \
                 learning rate or set optimizer.grad_clip, then --resume",
                step + 1,
                last_ckpt(&ckpt_dir)
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "none (no checkpoint was written yet)".into())
            )));
        }
        let grads = GradientsParams::from_grads(parts.total.backward(), &model);
        model = optim.step(lr, model, grads);
        step += 1;
        let secs = t0.elapsed().as_secs_f64();
        train_secs += secs;
        let rate = config.batch_size as f64 / secs;
        ema_rate = if ema_rate == 0.0 {
            rate
        } else {
            0.9 * ema_rate + 0.1 * rate
        };
        summary.losses.push((step, loss));
        append(
            &train_csv,
            TRAIN_CSV_HEADER,
            &format!("{step},{epoch},{lr:e},{loss},{l1},{ce},{kl},{rate:.3}\n"),
        )?;
        if opts.progress && (tty || step % config.log_interval.max(1) == 0 || step == config.steps)
        {
            let eta = (config.steps - step) as f64 * config.batch_size as f64 / ema_rate;
            let line = format!(
                "step {step}/{} epoch {epoch} loss {loss:.5} lr {lr:.3e} {ema_rate:.2} img/s ETA {}",
                config.steps,
                hms(eta)
            );
            if tty {
                eprint!("\r{line}\x1b[K");
            } else {
                eprintln!("{line}");
            }
        }
        let out_of_time = opts.time_limit.is_some_and(|t| started.elapsed() >= t);
        if out_of_time && step < config.steps {
            summary.time_limited = true;
            if opts.progress {
                eprintln!(
                    "{}time limit reached after step {step} of {}",
                    if tty { "\n" } else { "" },
                    config.steps
                );
            }
        }
        let last = step == config.steps || out_of_time;
        let every = |n: u64| n > 0 && step % n == 0;
        if every(config.val_interval) || last {
            let v = validate(&model, &val, config.batch_size, &base, step)?;
            let mut rows = String::new();
            for t in &v.tasks {
                rows += &format!(
                    "{step},{},{},{},{},{}\n",
                    t.task, t.psnr, t.ssim, t.input_psnr, t.input_ssim
                );
            }
            let n = v.tasks.len().max(1) as f64;
            rows += &format!(
                "{step},average,{},{},{},{}\n",
                v.mean_psnr,
                v.mean_ssim,
                v.tasks.iter().map(|t| t.input_psnr).sum::<f64>() / n,
                v.tasks.iter().map(|t| t.input_ssim).sum::<f64>() / n
            );
            append(&val_csv, VAL_CSV_HEADER, &rows)?;
            if opts.progress {
                let per: Vec<String> = v
                    .tasks
                    .iter()
                    .map(|t| format!("{} {:.2} (in {:.2})", t.task, t.psnr, t.input_psnr))
                    .collect();
                eprintln!(
                    "{}validation at step {step}: mean PSNR {:.3} dB, SSIM {:.4}; {}",
                    if tty { "\n" } else { "" },
                    v.mean_psnr,
                    v.mean_ssim,
                    per.join(", ")
                );
            }
            if best.is_none_or(|b: BestScore| v.mean_psnr > b.psnr) {
                best = Some(BestScore {
                    step,
                    psnr: v.mean_psnr,
                });
                checkpoint::save(
                    &ckpt_dir.join("best.ckpt"),
                    &state_of(step, best),
                    &model,
                    &optim,
                )?;
                model.valid().save(run.join("best.bpk"))?;
            }
            summary.validations.push(v);
            plot::draw_run(run)?;
        }
        if every(config.checkpoint_interval) || last {
            let path = ckpt_dir.join(format!("ckpt-{step:08}.ckpt"));
            checkpoint::save(&path, &state_of(step, best), &model, &optim)?;
            for (_, old) in list_checkpoints(&ckpt_dir).iter().skip(config.keep_last) {
                let _ = std::fs::remove_file(old);
            }
        }
        if out_of_time {
            break;
        }
    }
    if start < step || !run.join("final.bpk").exists() {
        model.valid().save(run.join("final.bpk"))?;
    }
    if opts.progress && tty {
        eprintln!();
    }
    summary.step = step;
    summary.best = best;
    summary.images_per_second = if train_secs > 0.0 {
        summary.losses.len() as f64 * config.batch_size as f64 / train_secs
    } else {
        0.0
    };
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_without_a_prototype_is_a_clear_error() {
        let mut c: ExperimentConfig = serde_json::from_str(
            r#"{"model": "dppd-small", "steps": 1, "batch_size": 1, "patch_size": 16,
                "data": {"tasks": ["denoise_25", "derain", "deblur"]}}"#,
        )
        .unwrap();
        let net = c.model.resolve().unwrap();
        let err = family_labels(&net, &c).unwrap_err().to_string();
        assert!(err.contains("deblur") && err.contains("\"blur\""), "{err}");
        c.data.tasks = Task::THREE_TASK.to_vec();
        let map = family_labels(&net, &c).unwrap().unwrap();
        assert_eq!(map[&Task::Denoise50], 0);
        assert_eq!(map[&Task::Derain], 1);
        assert_eq!(map[&Task::Dehaze], 2);
        c.loss.dpa_ce = 0.0;
        c.data.tasks.push(Task::Deblur);
        assert!(family_labels(&net, &c).unwrap().is_none());
    }
}
