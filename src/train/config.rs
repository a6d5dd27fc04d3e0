//! The experiment configuration: one JSON file describing a training run completely (model,
//! data, loss, optimiser, schedule, lengths, intervals, seed). It is stored in every
//! checkpoint, so a checkpoint always says how it was made.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::grad_clipping::GradientClippingConfig;
use burn::optim::AdamWConfig;
use serde::{Deserialize, Serialize};

use super::LossConfig;
use crate::degrade::Task;
use crate::model::RestorerConfig;
use crate::{Error, Result};

/// The network: a preset name (`"dppd-small"`, `"dppd-medium"`, `"dppd"`, `"promptir"`,
/// `"restormer"`), a
/// preset with its degradation names replaced (`{"preset": "dppd-small", "degradations":
/// ["noise", "rain", "haze", "clean"]}`: names a spare prototype), or a full
/// [`RestorerConfig`] object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ModelSpec {
    /// A preset by name ([`RestorerConfig::preset`]).
    Preset(String),
    /// A preset whose DPA prototypes carry other names.
    Named(NamedPreset),
    /// A full configuration.
    Config(Box<RestorerConfig>),
}

/// A preset with its own degradation names ([`ModelSpec::Named`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedPreset {
    /// The preset ([`RestorerConfig::preset`]).
    pub preset: String,
    /// The names of the DPA prototypes, in order
    /// ([`RestorerConfig::degradations`]); at most as many as the preset has prototypes.
    pub degradations: Vec<String>,
}

impl ModelSpec {
    /// The configuration this names.
    pub fn resolve(&self) -> Result<RestorerConfig> {
        let c = match self {
            ModelSpec::Preset(name) => RestorerConfig::preset(name)?,
            ModelSpec::Named(n) => RestorerConfig {
                degradations: n.degradations.clone(),
                ..RestorerConfig::preset(&n.preset)?
            },
            ModelSpec::Config(c) => (**c).clone(),
        };
        c.validate()?;
        Ok(c)
    }
}

/// Where the training images come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataLayout {
    /// A folder tree of clean photographs, degraded on the fly by each task's default
    /// degradation ([`crate::data::synthetic_entries`]).
    Photos,
    /// PromptIR's `data/Train/` layout ([`crate::data::promptir_train`]).
    Promptir,
}

/// The data of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// The layout of the data folder.
    pub layout: DataLayout,
    /// The data folder (the `--data` argument of the `train` example overrides it).
    pub root: Option<PathBuf>,
    /// The tasks trained (default: the paper's 3-task setting).
    pub tasks: Vec<Task>,
    /// Repetitions per task (balance); tasks not named keep 1. Photos: entries per photograph;
    /// PromptIR layout: [`crate::data::balance`] weights (PromptIR: each noise ×3, rain ×120).
    pub task_weights: BTreeMap<Task, f32>,
    /// Source images per task held out of training and used for validation: the last
    /// `val_holdout` photographs (sorted by path) for `photos`, the first `val_holdout` entries
    /// of each task for `promptir`. 0 validates on the training images (other crops and noise:
    /// a measure of fit, not of generalisation).
    pub val_holdout: usize,
    /// Side of the validation crops; 0 validates on whole images (centre-cropped to a
    /// multiple of 16, as the papers' tests).
    pub val_patch: usize,
    /// Validation crops per held-out image and task (each at its own seeded place).
    pub val_crops: usize,
    /// Seed of the validation set (its crops and degradations never change with it fixed).
    pub val_seed: u64,
    /// Loading threads.
    pub workers: usize,
    /// Photographs (`photos` layout) whose longer side exceeds this are downscaled to it
    /// before cropping and degrading (training and validation). `null`: used as they are.
    pub max_side: Option<usize>,
    /// Keep the decoded training photographs in memory (`photos` layout): 12 bytes per pixel
    /// each, one decode per photograph instead of one per sample.
    pub cache_images: bool,
    /// Store the synthetic samples as 8-bit files would (`photos` layout;
    /// [`crate::data::RestoreDataset::with_quantization`]): the clean photograph after
    /// downscaling and the degraded image rounded to `k/255`, as every photograph a user
    /// restores is. `false` keeps haze, rain and blur continuous (what runs before this option
    /// trained on).
    pub eight_bit: bool,
}

impl DataConfig {
    /// How the synthetic samples are stored ([`eight_bit`](Self::eight_bit)).
    pub(crate) fn quantization(&self) -> crate::degrade::Quantization {
        if self.eight_bit {
            crate::degrade::Quantization::Round
        } else {
            crate::degrade::Quantization::None
        }
    }
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            layout: DataLayout::Photos,
            root: None,
            tasks: Task::THREE_TASK.to_vec(),
            task_weights: BTreeMap::new(),
            val_holdout: 1,
            val_patch: 128,
            val_crops: 4,
            val_seed: 1234,
            workers: 2,
            max_side: None,
            cache_images: false,
            eight_bit: true,
        }
    }
}

/// Gradient clipping, as burn applies it: per parameter tensor.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GradClip {
    /// Rescale each parameter's gradient to at most this L2 norm.
    Norm(f32),
    /// Clamp each gradient element to `[-v, v]`.
    Value(f32),
}

/// AdamW, with PyTorch's defaults written out (burn's own defaults differ: ε 1e-5, weight
/// decay 1e-4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimizerConfig {
    /// Peak learning rate (PromptIR: 2e-4).
    pub lr: f64,
    /// β₁ (0.9).
    pub beta1: f32,
    /// β₂ (0.999).
    pub beta2: f32,
    /// ε (1e-8, PyTorch's).
    pub epsilon: f32,
    /// Decoupled weight decay (0.01, PyTorch's AdamW default).
    pub weight_decay: f32,
    /// Optional gradient clipping (PromptIR: none).
    pub grad_clip: Option<GradClip>,
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        Self {
            lr: 2e-4,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            weight_decay: 0.01,
            grad_clip: None,
        }
    }
}

impl OptimizerConfig {
    /// The burn optimiser configuration.
    pub fn adamw(&self) -> AdamWConfig {
        AdamWConfig::new()
            .with_beta_1(self.beta1)
            .with_beta_2(self.beta2)
            .with_epsilon(self.epsilon)
            .with_weight_decay(self.weight_decay)
            .with_grad_clipping(self.grad_clip.map(|c| match c {
                GradClip::Norm(v) => GradientClippingConfig::Norm(v),
                GradClip::Value(v) => GradientClippingConfig::Value(v),
            }))
    }
}

/// Linear warm-up, then cosine decay, per optimisation step (PromptIR's
/// `LinearWarmupCosineAnnealingLR`, there per epoch); or, with a `cooldown`, warm-up, a
/// constant rate and a cosine cool-down over the run's last steps (warmup–stable–decay, Hu et
/// al. 2024, "MiniCPM"; Hägele et al. 2024). The constant phase's end is the run's *branch*: a
/// later run can continue from its weights ([`ExperimentConfig::cooldown_start`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Warm-up steps: step `s < warmup_steps` uses
    /// `warmup_start_lr + (lr − warmup_start_lr)·(s + 1)/warmup_steps`.
    pub warmup_steps: u64,
    /// Learning rate the warm-up starts from (PromptIR: 0).
    pub warmup_start_lr: f64,
    /// The step at which the cosine reaches `min_lr` (default: the run's `steps`; PromptIR
    /// decays toward epoch 150 and stops at 120, i.e. `decay_steps = 1.25·steps`).
    pub decay_steps: Option<u64>,
    /// The floor of the cosine (PromptIR: 0).
    pub min_lr: f64,
    /// The share of the run's steps, in (0, 1], spent cooling down: with it the rate stays at
    /// the peak from the warm-up's end to [`ExperimentConfig::cooldown_start`], then falls by
    /// a cosine to `min_lr` at the run's last step. The trainer writes the weights at the
    /// cool-down's start as `branch.bpk` (`RunDir::branch_model`). Excludes `decay_steps`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cooldown: Option<f64>,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self {
            warmup_steps: 0,
            warmup_start_lr: 0.0,
            decay_steps: None,
            min_lr: 0.0,
            cooldown: None,
        }
    }
}

/// An exponential moving average of the weights (`train::ema`): after every optimiser step,
/// `average ← decay·average + (1 − decay)·weights`. The run validates the average and writes
/// it as `best.bpk` and `final.bpk` (the optimiser's weights as `final-raw.bpk`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmaConfig {
    /// The weight of the previous average, in (0, 1): the average spans about
    /// `1 / (1 − decay)` steps (BasicSR: 0.999).
    pub decay: f64,
}

/// A whole training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// The network.
    pub model: ModelSpec,
    /// The data.
    #[serde(default)]
    pub data: DataConfig,
    /// Loss weights.
    #[serde(default)]
    pub loss: LossConfig,
    /// The optimiser.
    #[serde(default)]
    pub optimizer: OptimizerConfig,
    /// The learning-rate schedule.
    #[serde(default)]
    pub schedule: ScheduleConfig,
    /// An exponential moving average of the weights; none by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ema: Option<EmaConfig>,
    /// Optimisation steps in the whole run.
    pub steps: u64,
    /// Images per step.
    pub batch_size: usize,
    /// Side of the square training crops (PromptIR: 128).
    pub patch_size: usize,
    /// Validate every this many steps (and after the last); 0: only after the last.
    #[serde(default = "default_interval")]
    pub val_interval: u64,
    /// Write a checkpoint every this many steps (and after the last); 0: only after the last.
    #[serde(default = "default_interval")]
    pub checkpoint_interval: u64,
    /// Periodic checkpoints kept (the newest); `best.ckpt` is kept besides them.
    #[serde(default = "default_keep_last")]
    pub keep_last: usize,
    /// Seed of everything random: initial weights, data order, crops, degradations, prompt
    /// sampling.
    #[serde(default)]
    pub seed: u64,
    /// Print a progress line every this many steps when stderr is not a terminal.
    #[serde(default = "default_log_interval")]
    pub log_interval: u64,
}

fn default_interval() -> u64 {
    500
}
fn default_keep_last() -> usize {
    3
}
fn default_log_interval() -> u64 {
    10
}

impl ExperimentConfig {
    /// Reads a JSON file; unknown fields are errors.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = crate::model::config::read_config_text(path)?;
        let c: Self = serde_json::from_str(&text)
            .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        c.validate().map_err(|e| {
            Error::Config(format!(
                "{}: {}",
                path.display(),
                crate::model::config::config_reason(e)
            ))
        })?;
        Ok(c)
    }

    /// Checks the values that the types cannot.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::Config(m.into()));
        if self.steps == 0 || self.batch_size == 0 || self.patch_size == 0 {
            return bad("steps, batch_size and patch_size must be positive");
        }
        if self.data.tasks.is_empty() {
            return bad("data.tasks is empty");
        }
        if !(self.optimizer.lr > 0.0 && self.optimizer.lr.is_finite()) {
            return bad("optimizer.lr must be positive");
        }
        if self.keep_last == 0 {
            return bad("keep_last must be at least 1");
        }
        if let Some(ema) = self.ema
            && !(ema.decay > 0.0 && ema.decay < 1.0)
        {
            return Err(Error::Config(format!(
                "ema.decay must lie strictly between 0 and 1 (e.g. 0.999), not {}",
                ema.decay
            )));
        }
        if self.data.val_crops == 0 {
            return bad("data.val_crops must be at least 1");
        }
        // A configuration may come from an untrusted file: counts that would make the run
        // allocate without bound (a batch of inputs beyond 8 GiB, a million worker threads)
        // are refused here, before anything is built.
        let samples =
            |batch: usize, side: usize| 3u128 * batch as u128 * side as u128 * side as u128;
        if samples(self.batch_size, self.patch_size) > 1 << 31
            || samples(self.batch_size, self.data.val_patch) > 1 << 31
        {
            return Err(Error::Config(format!(
                "a batch of {} patches of {}² (validation: {}²) takes more than 8 GiB of input \
                 alone; refusing",
                self.batch_size, self.patch_size, self.data.val_patch
            )));
        }
        if self.data.workers > 1024 || self.data.val_crops > 1 << 16 {
            return bad("data.workers (at most 1024) or data.val_crops (at most 65536) too large");
        }
        if !(self.optimizer.epsilon.is_finite()
            && self.optimizer.weight_decay.is_finite()
            && self.schedule.warmup_start_lr.is_finite()
            && self.schedule.min_lr.is_finite())
        {
            return bad("optimizer and schedule values must be finite");
        }
        if let Some(f) = self.schedule.cooldown {
            if !(f > 0.0 && f <= 1.0) {
                return Err(Error::Config(format!(
                    "schedule.cooldown is the share of the steps spent cooling down, in (0, 1] \
                     (e.g. 0.2), not {f}"
                )));
            }
            if self.schedule.decay_steps.is_some() {
                return bad("schedule.cooldown and schedule.decay_steps exclude each other");
            }
        }
        self.model.resolve().map(|_| ())
    }

    /// With `schedule.cooldown`: the number of steps done when the cool-down starts — the
    /// last `round(cooldown · steps)` steps cool down, never the warm-up's. The weights after
    /// this many steps are the run's branch (`branch.bpk`).
    pub fn cooldown_start(&self) -> Option<u64> {
        let f = self.schedule.cooldown?;
        let cooling = (f * self.steps as f64).round() as u64;
        Some(
            self.steps
                .saturating_sub(cooling)
                .max(self.schedule.warmup_steps.min(self.steps)),
        )
    }

    /// With `schedule.cooldown` (a share below 1): the length to which a run that has done
    /// `step` steps, past its warm-up, shortens its schedule to start cooling down now — the
    /// shortest run whose last `round(cooldown · steps)` steps start at `step` or later, so
    /// that the cool-down is still the configured share of it
    /// (`TrainOptions::fit_cooldown`). `None` without a cool-down, or with a share of 1 (the
    /// whole run cools down: there is no constant phase to end early).
    pub fn steps_cooling_from(&self, step: u64) -> Option<u64> {
        let f = self.schedule.cooldown.filter(|f| *f < 1.0)?;
        let starts = |steps: u64| steps - (f * steps as f64).round() as u64;
        // `starts` grows by 0 or 1 with each step added (so the answer starts its cool-down
        // at `step` exactly), `starts(t) <= t`, and `starts(hi) >= (1 − f)·hi − ½ > step`:
        // the answer is in [step, hi]
        let (mut lo, mut hi) = (step, ((step + 1) as f64 / (1.0 - f)).ceil() as u64 + 1);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if starts(mid) >= step {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        Some(lo)
    }

    /// The learning rate of step `step` (0-based).
    pub fn lr_at(&self, step: u64) -> f64 {
        let s = &self.schedule;
        let base = self.optimizer.lr;
        if step < s.warmup_steps {
            return s.warmup_start_lr
                + (base - s.warmup_start_lr) * (step + 1) as f64 / s.warmup_steps as f64;
        }
        // the decay's first step (at the peak) and its end (at the floor)
        let (start, end) = match self.cooldown_start() {
            Some(b) if step < b => return base,
            Some(b) => (b, self.steps),
            None => (s.warmup_steps, s.decay_steps.unwrap_or(self.steps)),
        };
        if end <= start {
            return base;
        }
        let t = ((step - start) as f64 / (end - start) as f64).min(1.0);
        s.min_lr + 0.5 * (base - s.min_lr) * (1.0 + (std::f64::consts::PI * t).cos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ExperimentConfig {
        serde_json::from_str(
            r#"{"model": "dppd-small", "steps": 100, "batch_size": 4, "patch_size": 64,
                "schedule": {"warmup_steps": 10, "min_lr": 1e-6}}"#,
        )
        .unwrap()
    }

    #[test]
    fn synthetic_samples_are_8_bit_unless_the_config_says_otherwise() {
        use crate::degrade::Quantization;
        assert_eq!(config().data.quantization(), Quantization::Round);
        let data: DataConfig = serde_json::from_str(r#"{"eight_bit": false}"#).unwrap();
        assert_eq!(data.quantization(), Quantization::None);
    }

    #[test]
    fn defaults_are_pytorchs_adamw_and_promptirs_lr() {
        let c = config();
        assert_eq!(c.optimizer.lr, 2e-4);
        assert_eq!(c.optimizer.epsilon, 1e-8);
        assert_eq!(c.optimizer.weight_decay, 0.01);
        assert_eq!((c.optimizer.beta1, c.optimizer.beta2), (0.9, 0.999));
        assert_eq!(c.data.tasks, Task::THREE_TASK.to_vec());
        c.validate().unwrap();
        let round: ExperimentConfig =
            serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(round, c);
        assert!(serde_json::from_str::<ExperimentConfig>(r#"{"model":"x","stepz":1}"#).is_err());
    }

    #[test]
    fn an_ema_decay_outside_0_1_is_refused() {
        let mut c = config();
        assert_eq!(c.ema, None);
        for decay in [0.0, 1.0, -0.5, 1.5, f64::NAN] {
            c.ema = Some(EmaConfig { decay });
            let err = c.validate().unwrap_err().to_string();
            assert!(err.contains("ema.decay"), "{err}");
        }
        c.ema = Some(EmaConfig { decay: 0.999 });
        c.validate().unwrap();
        let round: ExperimentConfig =
            serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(round, c);
    }

    #[test]
    fn warmup_then_cosine() {
        let c = config();
        assert!((c.lr_at(0) - 2e-5).abs() < 1e-15);
        assert!((c.lr_at(9) - 2e-4).abs() < 1e-15);
        assert!((c.lr_at(10) - 2e-4).abs() < 1e-15);
        // half way through the cosine: the mean of peak and floor
        assert!((c.lr_at(55) - (2e-4 + 1e-6) / 2.0).abs() < 1e-12);
        assert!((c.lr_at(100) - 1e-6).abs() < 1e-15);
        for s in 10..99 {
            assert!(c.lr_at(s + 1) < c.lr_at(s));
        }
    }

    #[test]
    fn warmup_then_constant_then_cooldown() {
        let mut c = config();
        c.schedule.cooldown = Some(0.2);
        c.validate().unwrap();
        assert_eq!(c.cooldown_start(), Some(80));
        // the warm-up is the cosine schedule's
        assert!((c.lr_at(0) - 2e-5).abs() < 1e-15);
        // the peak until the cool-down starts
        for s in 10..=80 {
            assert_eq!(c.lr_at(s), 2e-4, "step {s}");
        }
        // half way through the cool-down: the mean of peak and floor
        assert!((c.lr_at(90) - (2e-4 + 1e-6) / 2.0).abs() < 1e-12);
        for s in 80..99 {
            assert!(c.lr_at(s + 1) < c.lr_at(s), "step {s}");
        }
        assert!((c.lr_at(100) - 1e-6).abs() < 1e-15);
        // a cool-down longer than what follows the warm-up starts after the warm-up
        c.schedule.cooldown = Some(1.0);
        assert_eq!(c.cooldown_start(), Some(10));
        assert_eq!(c.lr_at(10), 2e-4);
        assert!(c.lr_at(11) < 2e-4);
        let round: ExperimentConfig =
            serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(round, c);
    }

    #[test]
    fn a_schedule_shortened_to_cool_down_now_starts_its_cooldown_there() {
        let mut c = config();
        assert_eq!(
            c.steps_cooling_from(40),
            None,
            "no cool-down: nothing to bring forward"
        );
        for f in [0.1, 0.2, 0.25, 0.5, 0.9] {
            c.schedule.cooldown = Some(f);
            for step in 11..400 {
                let steps = c.steps_cooling_from(step).unwrap();
                let at = |steps| {
                    ExperimentConfig { steps, ..c.clone() }
                        .cooldown_start()
                        .unwrap()
                };
                // the cool-down starts now
                assert_eq!(at(steps), step, "f {f} step {step}");
                // and no shorter run's starts here or later
                assert!(at(steps - 1) < step, "f {f} step {step}");
                // the cool-down is the configured share of the shortened run
                let cooling = (steps - at(steps)) as f64;
                assert!(
                    (cooling - f * steps as f64).abs() <= 0.5,
                    "f {f} step {step}"
                );
            }
        }
        // 20% of the planned 100 steps cool down from step 80; shortened at step 40, the run
        // ends at 50 and cools down over its last 10
        c.schedule.cooldown = Some(0.2);
        assert_eq!(c.steps_cooling_from(80), Some(100));
        assert_eq!(c.steps_cooling_from(40), Some(50));
        c.schedule.cooldown = Some(1.0);
        assert_eq!(
            c.steps_cooling_from(40),
            None,
            "all cool-down: no constant phase"
        );
    }

    #[test]
    fn a_cooldown_outside_0_1_or_beside_decay_steps_is_refused() {
        let mut c = config();
        assert_eq!(c.cooldown_start(), None);
        for f in [0.0, -0.1, 1.5, f64::NAN] {
            c.schedule.cooldown = Some(f);
            let err = c.validate().unwrap_err().to_string();
            assert!(err.contains("schedule.cooldown"), "{err}");
        }
        c.schedule.cooldown = Some(0.2);
        c.schedule.decay_steps = Some(120);
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("exclude each other"), "{err}");
    }
}
