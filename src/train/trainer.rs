//! The training loop.
//!
//! Determinism: every random draw of step `s` is a function of the experiment seed and `s`:
//! - the data order of epoch `e` is a permutation seeded by `(seed, e)`, and step `s` takes
//!   batch `s mod B` of epoch `s div B` (`B` batches per epoch, the last short one dropped);
//! - each sample's crop, flip and degradation are seeded by `(seed, e, index)`;
//! - the backend generator (prompt sampling) is re-seeded with `(seed, s)` before step `s`
//!   (on several devices, shard `i > 0` of the step with `(seed, s, i)`: [`super::parallel`]).
//!
//! So a checkpoint needs to store only the step besides the tensors, and a resumed run repeats
//! the uninterrupted run's losses exactly (tested in `tests/resume.rs`).
//!
//! The loop reports what it does through [`TrainEvent`]s ([`train_with`]); it prints nothing.
//! The run folder's files are [`RunDir`]'s, the validation [`super::validate`]'s, the data
//! split [`super::split`]'s.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use burn::optim::ModuleOptimizer;
use burn::prelude::*;

use super::checkpoint::{self, BestScore, Checkpoint, TrainState};
use super::config::ExperimentConfig;
use super::parallel::{self, StepBatch};
use super::plot;
use super::run_dir::{RunDir, TrainRow, ValRow};
use super::split::{family_labels, split_data};
use super::validate::{Validation, build_val, validate};
use crate::data::{Loader, LoaderConfig, RestoreDataset};
use crate::degrade::derive_seed;
use crate::model::{Restorer, RestorerConfig};
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
    /// The devices to train on (not autodiff: the trainer adds it): one, or several of one
    /// machine for data-parallel training (`train::parallel`: each step's batch is cut into
    /// one shard per device, the gradients summed on the first device, which holds the
    /// optimiser). The batch size and learning rate are the configuration's, whatever the
    /// number of devices. Must not be empty.
    pub devices: Vec<Device>,
    /// Continue from the newest valid checkpoint in `run_dir/checkpoints`.
    pub resume: bool,
    /// Stop (as if killed: no final checkpoint, no final model) once this many steps of the
    /// whole run are done. For tests of resumption.
    pub stop_at: Option<u64>,
    /// Train with gradient checkpointing (`Device::gradient_checkpointing`): intermediate
    /// values are recomputed in the backward pass instead of kept, for less memory and more
    /// time; the results are the same.
    pub gradient_checkpointing: bool,
    /// A fresh run starts from the network in this model file (`.bpk` written by
    /// [`Restorer::save`]) instead of a random initialisation; the optimiser starts fresh.
    /// The file's network must have the shapes of the experiment's (its degradation names may
    /// differ: the experiment's are kept, so a spare prototype can be given a name), or be
    /// the experiment's with fewer blocks per level: it is then deepened
    /// ([`Restorer::grown`]: the added blocks start as identities). Ignored on resume (the
    /// checkpoint holds the network).
    pub init: Option<PathBuf>,
    /// End the run cleanly after the first step that finishes this long after the call
    /// started: a checkpoint and `final.bpk` are written, and [`TrainSummary::time_limited`]
    /// says so. `--resume` continues the schedule from there.
    pub time_limit: Option<Duration>,
    /// With [`Self::time_limit`] and a cool-down (`schedule.cooldown`): when, at the run's
    /// pace (the faster of its last 50 steps' and the whole call's, so that a passing
    /// slowdown does not decide), the rest of the schedule would not end within the time
    /// limit, start the cool-down early, so that the run ends with its cool-down complete instead of being
    /// cut in the middle of it. The schedule is then shortened to the length whose cool-down
    /// (still the configured share of the steps) starts now
    /// ([`ExperimentConfig::steps_cooling_from`]), the run folder's `config.json` records the
    /// new length (so `--resume` continues the shortened schedule), the run reports
    /// [`TrainEvent::CooldownBroughtForward`], and [`TrainSummary::steps`] says how long the
    /// schedule became. The decision is taken after each step of the constant phase once ten
    /// steps of this call are done; the time limit still ends a run that slows down further.
    pub fit_cooldown: bool,
}

impl TrainOptions {
    /// Options for a fresh run in `run_dir` on `device`, data from the configuration.
    pub fn new(run_dir: impl Into<PathBuf>, device: Device) -> Self {
        Self {
            run_dir: run_dir.into(),
            data_root: None,
            devices: vec![device],
            resume: false,
            stop_at: None,
            gradient_checkpointing: false,
            init: None,
            time_limit: None,
            fit_cooldown: false,
        }
    }
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
    /// The schedule's length when the call returned: the configuration's `steps`, or less
    /// when [`TrainOptions::fit_cooldown`] brought the cool-down forward.
    pub steps: u64,
}

/// What the training loop reports while it works ([`train_with`]).
#[derive(Debug)]
pub enum TrainEvent<'a> {
    /// A checkpoint could not be used for resuming and was skipped.
    SkippedCheckpoint {
        /// The file.
        path: &'a Path,
        /// Why.
        error: &'a Error,
    },
    /// The run continues from a checkpoint.
    Resumed {
        /// The checkpoint.
        path: &'a Path,
        /// Its step.
        step: u64,
    },
    /// The data is loaded and the steps begin.
    Started {
        /// The step the run starts from (0 unless resumed).
        from: u64,
        /// The step it runs to.
        to: u64,
        /// Training samples per epoch.
        train_samples: usize,
        /// Batches per epoch.
        batches_per_epoch: u64,
        /// Samples per batch.
        batch_size: usize,
        /// Validation images.
        val_images: usize,
        /// Parameters of the network.
        params: usize,
    },
    /// A step is done.
    Step(&'a TrainRow),
    /// A validation ran after `step`.
    Validated(&'a Validation),
    /// A checkpoint was written.
    Checkpoint {
        /// The file.
        path: &'a Path,
        /// Its step.
        step: u64,
    },
    /// The time limit ended the run after this step.
    TimeLimit {
        /// Steps done.
        step: u64,
    },
    /// The cool-down starts after this step instead of later, so that the run ends within
    /// its time limit ([`TrainOptions::fit_cooldown`]).
    CooldownBroughtForward {
        /// Steps done: the cool-down starts now.
        step: u64,
        /// The schedule's new length.
        steps: u64,
        /// Its length before.
        planned: u64,
    },
}

/// The network of `path` in the shapes of `network` (see [`TrainOptions::init`]).
fn init_from(network: &RestorerConfig, path: &Path, device: &Device) -> Result<Restorer> {
    if let Some(stored) = Restorer::config_in_file(path)? {
        let named = RestorerConfig {
            degradations: network.degradations.clone(),
            ..stored
        };
        if &named != network {
            if named.check_grows_into(network).is_ok() {
                // a shallower network of the same kind: deepened, its new blocks identities
                return Restorer::load_weights(&named, path, device)?.grown(network, device);
            }
            return Err(Error::Config(format!(
                "{}: its network is not the experiment's (only the degradation names may \
                 differ, or the experiment's may have more blocks per level); file: {}, \
                 experiment: {}",
                path.display(),
                serde_json::to_string(&named).unwrap_or_default(),
                serde_json::to_string(network).unwrap_or_default()
            )));
        }
    }
    Restorer::load_weights(network, path, device)
}

/// [`train_with`] reporting nothing.
pub fn train(config: ExperimentConfig, opts: &TrainOptions) -> Result<TrainSummary> {
    train_with(config, opts, |_| {})
}

/// The model, the optimiser, the step and the best score to start from: fresh (optionally from
/// [`TrainOptions::init`]) or from the newest valid checkpoint; with the moving average of the
/// weights when the experiment keeps one.
type Start = (
    Restorer,
    ModuleOptimizer,
    u64,
    Option<BestScore>,
    Option<TrainState>,
    Option<Restorer>,
);

fn start_from(
    config: &ExperimentConfig,
    opts: &TrainOptions,
    run: &RunDir,
    ad: &Device,
    events: &mut impl FnMut(TrainEvent<'_>),
) -> Result<Start> {
    let existing = run.list_checkpoints();
    if opts.resume {
        let mut found = None;
        for (_, p) in &existing {
            match checkpoint::read_state(p) {
                Ok(_) => {
                    found = Some(p.clone());
                    break;
                }
                Err(error) => events(TrainEvent::SkippedCheckpoint {
                    path: p,
                    error: &error,
                }),
            }
        }
        let path = found.ok_or_else(|| {
            Error::Training(format!(
                "no valid checkpoint to resume from in {}",
                run.checkpoints().display()
            ))
        })?;
        let c = Checkpoint::load(&path, ad)?;
        let mut stored = c.state.experiment.clone();
        stored.steps = config.steps;
        if &stored != config {
            return Err(Error::Training(format!(
                "{}: the checkpoint was made with another configuration (only `steps` may \
                 change on resume); resume with the run's own {}",
                path.display(),
                run.config().display()
            )));
        }
        events(TrainEvent::Resumed {
            path: &path,
            step: c.state.step,
        });
        let (step, best) = (c.state.step, c.state.best);
        Ok((c.model, c.optimizer, step, best, Some(c.state), c.ema))
    } else {
        if !existing.is_empty() {
            return Err(Error::Training(format!(
                "{} already holds checkpoints: resume the run to continue it, or choose another \
                 run folder",
                run.checkpoints().display()
            )));
        }
        let network = config.model.resolve()?;
        ad.seed(derive_seed(config.seed, &[STREAM_INIT]));
        let model = match &opts.init {
            Some(path) => init_from(&network, path, ad)?,
            None => network.init(ad),
        };
        // the average starts from the weights the run starts from
        let ema = config.ema.map(|_| model.valid());
        Ok((model, config.optimizer.adamw().init(), 0, None, None, ema))
    }
}

/// The scores of a validation as `val.csv` rows, the mean over tasks last (`average`).
fn val_rows(v: &Validation) -> Vec<ValRow> {
    let n = v.tasks.len().max(1) as f64;
    let mut rows: Vec<ValRow> = v
        .tasks
        .iter()
        .map(|t| ValRow {
            step: v.step,
            task: t.task.to_string(),
            psnr: t.psnr,
            ssim: t.ssim,
            input_psnr: t.input_psnr,
            input_ssim: t.input_ssim,
        })
        .collect();
    rows.push(ValRow {
        step: v.step,
        task: "average".into(),
        psnr: v.mean_psnr,
        ssim: v.mean_ssim,
        input_psnr: v.tasks.iter().map(|t| t.input_psnr).sum::<f64>() / n,
        input_ssim: v.tasks.iter().map(|t| t.input_ssim).sum::<f64>() / n,
    });
    rows
}

/// Trains (or continues) a run, reporting through `events`. See the module docs and
/// `docs/training.md`.
pub fn train_with(
    mut config: ExperimentConfig,
    opts: &TrainOptions,
    mut events: impl FnMut(TrainEvent<'_>),
) -> Result<TrainSummary> {
    config.validate()?;
    let run = RunDir::new(&opts.run_dir);
    run.create()?;
    let Some(base) = opts.devices.first().cloned() else {
        return Err(Error::Config("no device to train on".into()));
    };
    if opts.devices.len() > config.batch_size {
        return Err(Error::Config(format!(
            "{} devices need a batch of at least {} (one sample each); the batch is {}",
            opts.devices.len(),
            opts.devices.len(),
            config.batch_size
        )));
    }
    let autodiff = |d: &Device| {
        if opts.gradient_checkpointing {
            d.clone().autodiff().gradient_checkpointing()
        } else {
            d.clone().autodiff()
        }
    };
    let devices: Vec<Device> = opts.devices.iter().map(autodiff).collect();
    let ad = devices[0].clone();
    let (mut model, mut optim, start, mut best, resumed, mut ema) =
        start_from(&config, opts, &run, &ad, &mut events)?;
    let network = model.config().clone();
    let labels_of = family_labels(&network, &config)?;

    // data
    let root = opts
        .data_root
        .clone()
        .or_else(|| config.data.root.clone())
        .ok_or_else(|| {
            Error::Config("no data folder: set data.root or TrainOptions::data_root".into())
        })?;
    let split = split_data(&config, &root)?;
    let dataset = Arc::new(
        RestoreDataset::train(
            split.train,
            config.patch_size,
            derive_seed(config.seed, &[STREAM_CROPS]),
        )
        .with_max_side(config.data.max_side)
        .with_cache(config.data.cache_images)
        .with_quantization(config.data.quantization()),
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
    let state_of = |config: &ExperimentConfig, step: u64, best: Option<BestScore>| TrainState {
        step,
        experiment: config.clone(),
        network: network.clone(),
        best,
        train_samples: dataset.len(),
        val_samples: val.samples.len(),
    };
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
        run.truncate_logs(start)?;
    } else {
        run.clear_logs();
    }
    // the run's configuration as it runs now (a resumed run may have another length)
    let write_config = |config: &ExperimentConfig| {
        let json =
            serde_json::to_string_pretty(config).map_err(|e| Error::Config(e.to_string()))?;
        crate::base::atomic::write_bytes(&run.config(), json.as_bytes())
    };
    write_config(&config)?;
    events(TrainEvent::Started {
        from: start,
        to: config.steps,
        train_samples: dataset.len(),
        batches_per_epoch: per_epoch,
        batch_size: config.batch_size,
        val_images: val.samples.len(),
        params: model.num_params(),
    });

    let mut summary = TrainSummary {
        step: start,
        losses: Vec::new(),
        validations: Vec::new(),
        best,
        images_per_second: 0.0,
        time_limited: false,
        steps: config.steps,
    };
    let started = Instant::now();
    // when the last steps of this call ended, to measure the pace (`fit_cooldown`)
    let mut ends: VecDeque<Instant> = VecDeque::with_capacity(PACE_STEPS + 1);
    let mut iter = None;
    let mut iter_epoch = u64::MAX;
    let mut train_secs = 0.0f64;
    let mut step = start;
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
        let lr = config.lr_at(step);
        let labels = labels_of
            .as_ref()
            .map(|map| batch.tasks.iter().map(|t| map[t]).collect());
        let stepped = parallel::step(
            &model,
            &devices,
            StepBatch {
                degraded: batch.degraded,
                clean: batch.clean,
                labels,
            },
            &config.loss,
            None,
            |shard| match shard {
                0 => derive_seed(config.seed, &[STREAM_STEP, step]),
                i => derive_seed(config.seed, &[STREAM_STEP, step, i as u64]),
            },
        )?;
        let [loss, l1, ce, kl] = stepped.values;
        if !loss.is_finite() {
            return Err(Error::Training(format!(
                "non-finite loss {loss} at step {} (L1 {l1}, DPA CE {ce}, PDL KL {kl}); \
                 stopped without writing a checkpoint; the last good one is {}. Lower the \
                 learning rate or set optimizer.grad_clip, then resume",
                step + 1,
                run.list_checkpoints()
                    .first()
                    .map(|(_, p)| p.display().to_string())
                    .unwrap_or_else(|| "none (no checkpoint was written yet)".into())
            )));
        }
        model = optim.step(lr, model, stepped.grads);
        if let (Some(average), Some(e)) = (ema.take(), config.ema) {
            ema = Some(super::ema::blend(average, &model, e.decay));
        }
        step += 1;
        let secs = t0.elapsed().as_secs_f64();
        train_secs += secs;
        summary.losses.push((step, loss));
        let row = TrainRow {
            step,
            epoch,
            lr,
            loss,
            l1,
            dpa_ce: ce,
            pdl_kl: kl,
            images_per_s: config.batch_size as f64 / secs,
        };
        run.append_train(&row)?;
        events(TrainEvent::Step(&row));
        if opts.fit_cooldown {
            ends.push_back(Instant::now());
            if ends.len() > PACE_STEPS {
                ends.pop_front();
            }
            if let Some(steps) =
                fitted_steps(&config, step, step - start, opts.time_limit, started, &ends)
            {
                let planned = std::mem::replace(&mut config.steps, steps);
                write_config(&config)?;
                summary.steps = steps;
                events(TrainEvent::CooldownBroughtForward {
                    step,
                    steps,
                    planned,
                });
            }
        }
        let out_of_time = opts.time_limit.is_some_and(|t| started.elapsed() >= t);
        if out_of_time && step < config.steps {
            summary.time_limited = true;
            events(TrainEvent::TimeLimit { step });
        }
        let last = step == config.steps || out_of_time;
        let every = |n: u64| n > 0 && step % n == 0;
        // the network the run produces: the moving average when it keeps one
        let product = ema.as_ref().unwrap_or(&model);
        if every(config.val_interval) || last {
            let v = validate(product, &val, config.batch_size, &base, step)?;
            run.append_val(&val_rows(&v))?;
            events(TrainEvent::Validated(&v));
            if best.is_none_or(|b: BestScore| v.mean_psnr > b.psnr) {
                best = Some(BestScore {
                    step,
                    psnr: v.mean_psnr,
                });
                checkpoint::save(
                    &run.best_checkpoint(),
                    &state_of(&config, step, best),
                    &model,
                    &optim,
                    ema.as_ref(),
                )?;
                product.valid().save(run.best_model())?;
            }
            summary.validations.push(v);
            plot::draw_run(run.root())?;
        }
        if config.cooldown_start() == Some(step) {
            model.valid().save(run.branch_model())?;
        }
        if every(config.checkpoint_interval) || last {
            let path = run.checkpoint(step);
            checkpoint::save(
                &path,
                &state_of(&config, step, best),
                &model,
                &optim,
                ema.as_ref(),
            )?;
            run.rotate_checkpoints(config.keep_last);
            events(TrainEvent::Checkpoint { path: &path, step });
        }
        if out_of_time {
            break;
        }
    }
    // a time limit ended the run before its cool-down: its weights are still on the branch
    if config.cooldown_start().is_some_and(|b| step < b) && start < step {
        model.valid().save(run.branch_model())?;
    }
    if start < step || !run.final_model().exists() {
        match &ema {
            Some(average) => {
                average.valid().save(run.final_model())?;
                model.valid().save(run.final_raw_model())?;
            }
            None => model.valid().save(run.final_model())?,
        }
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

/// Steps whose pace `fit_cooldown` measures (and at least how many it waits for).
const PACE_STEPS: usize = 50;
const PACE_MIN_STEPS: usize = 10;

/// The shortened schedule length when the run, `step` steps done in its constant phase
/// (`done` of them by this call, which `started`), must start cooling down now to end within
/// `limit`, else `None` (`TrainOptions::fit_cooldown`). The pace is the faster of the last
/// steps' (`ends`: when they ended, oldest first) and the whole call's, so that neither the
/// call's start-up nor a passing slowdown (a build beside a low-priority run) brings the
/// cool-down forward, which cannot be undone; each counts everything between steps,
/// checkpoints and validations included. A 2% margin is added.
fn fitted_steps(
    config: &ExperimentConfig,
    step: u64,
    done: u64,
    limit: Option<Duration>,
    started: Instant,
    ends: &VecDeque<Instant>,
) -> Option<u64> {
    let limit = limit?;
    let in_constant_phase =
        step >= config.schedule.warmup_steps && config.cooldown_start().is_some_and(|b| step < b);
    if !in_constant_phase || ends.len() < PACE_MIN_STEPS || done == 0 {
        return None;
    }
    let (first, last) = (ends.front()?, ends.back()?);
    let recent = last.duration_since(*first).as_secs_f64() / (ends.len() - 1) as f64;
    let whole = last.duration_since(started).as_secs_f64() / done as f64;
    let pace = recent.min(whole);
    let steps = config.steps_cooling_from(step)?;
    let left = limit.as_secs_f64() - last.duration_since(started).as_secs_f64();
    (steps < config.steps && (steps - step) as f64 * pace * 1.02 >= left).then_some(steps)
}

/// Checkpoint files `ckpt-STEP.ckpt` in `dir`, newest first.
pub fn list_checkpoints(dir: &Path) -> Vec<(u64, PathBuf)> {
    super::run_dir::list_checkpoints(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 100 steps, 10 of warm-up, the last 20% cooling down (from step 80).
    fn config() -> ExperimentConfig {
        serde_json::from_str(
            r#"{"model": "dppd-small", "steps": 100, "batch_size": 4, "patch_size": 64,
                "schedule": {"warmup_steps": 10, "cooldown": 0.2}}"#,
        )
        .unwrap()
    }

    /// The ends of `n` steps one second apart, the last `elapsed` seconds after `started`.
    fn ends(started: Instant, n: usize, elapsed: u64) -> VecDeque<Instant> {
        let last = started + Duration::from_secs(elapsed);
        (0..n)
            .map(|i| last - Duration::from_secs((n - 1 - i) as u64))
            .collect()
    }

    #[test]
    fn the_cooldown_comes_forward_only_when_the_rest_would_not_fit_in_the_time() {
        let c = config();
        let t0 = Instant::now();
        let limit = Some(Duration::from_secs(100));
        // at one second a step, 40 steps done in 40 s: the shortened run (50 steps) needs 10 s
        // more, the planned one 60 s; 60 s are left, so nothing changes
        assert_eq!(fitted_steps(&c, 40, 40, limit, t0, &ends(t0, 40, 40)), None);
        // 40 steps in 90 s (a slow start, then one second a step): 10 s left, the shortened
        // run's 10 steps with the margin do not fit: cool down now, over 50 steps in all
        assert_eq!(
            fitted_steps(&c, 40, 40, limit, t0, &ends(t0, 40, 90)),
            Some(50)
        );
        // one step earlier in the same position (39 steps, 89 s): 11 s left for 10 steps
        // (10.2 with the margin), so not yet; the next step decides
        assert_eq!(fitted_steps(&c, 39, 39, limit, t0, &ends(t0, 39, 89)), None);
        // the pace is that of the steps measured, not of the whole call: after the same
        // 90 s, steps of a tenth of a second leave time for more of the constant phase
        let fast: VecDeque<Instant> = (0..40)
            .map(|i| t0 + Duration::from_millis(86_000 + 100 * i))
            .collect();
        assert_eq!(fitted_steps(&c, 40, 40, limit, t0, &fast), None);
        // nor does a passing slowdown: 60 steps in 70 s, the last ten of them 4 s each (a
        // build beside the run), 30 s left; the run shortened now has 15 steps to go, 61 s at
        // the last steps' pace, 18 s at the whole call's
        let slowed: VecDeque<Instant> = (0..10)
            .map(|i| t0 + Duration::from_secs(34 + 4 * i))
            .collect();
        assert_eq!(fitted_steps(&c, 60, 60, limit, t0, &slowed), None);
        // unless the call is slow as a whole (20 steps of a resumed run in the same 70 s)
        assert_eq!(fitted_steps(&c, 60, 20, limit, t0, &slowed), Some(75));
    }

    #[test]
    fn the_cooldown_does_not_move_outside_the_constant_phase_or_without_a_measure() {
        let c = config();
        let t0 = Instant::now();
        let limit = Some(Duration::from_secs(100));
        let late = |n| ends(t0, n, 99);
        // in the warm-up, in the cool-down already, or with fewer than ten steps measured
        assert_eq!(fitted_steps(&c, 5, 5, limit, t0, &late(5)), None);
        assert_eq!(fitted_steps(&c, 9, 9, limit, t0, &late(9)), None);
        assert_eq!(fitted_steps(&c, 80, 80, limit, t0, &late(50)), None);
        assert_eq!(fitted_steps(&c, 90, 90, limit, t0, &late(50)), None);
        assert_eq!(fitted_steps(&c, 30, 30, limit, t0, &late(9)), None);
        assert_eq!(fitted_steps(&c, 30, 30, limit, t0, &late(10)), Some(37));
        // without a time limit, or without a cool-down
        assert_eq!(fitted_steps(&c, 30, 30, None, t0, &late(50)), None);
        let mut cosine = config();
        cosine.schedule.cooldown = None;
        assert_eq!(fitted_steps(&cosine, 30, 30, limit, t0, &late(50)), None);
        // past the limit already (the time limit ends the run; shortening is still right)
        assert_eq!(
            fitted_steps(&c, 30, 30, limit, t0, &ends(t0, 20, 120)),
            Some(37)
        );
    }
}
