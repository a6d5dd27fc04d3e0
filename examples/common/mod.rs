//! What the examples share: how a network is loaded from the command line's options and how
//! their `--ensemble`, `--local-attention` and `--haze-tile` are read (restore and evaluate),
//! and how a training run is shown on the terminal (train and campaign).

// each example uses a part of this module
#![allow(dead_code)]

use std::io::IsTerminal;
use std::path::Path;

use burn::prelude::Device;
use dppd::model::{PromptIrConfig, Restorer, RestorerConfig};
use dppd::train::{Checkpoint, TrainEvent};
use dppd::{Error, Result};
use indicatif::{ProgressBar, ProgressStyle};

/// Parses `--ensemble N`: the number of views of a geometric self-ensemble
/// (`RestoreOptions::ensemble`), one of `ENSEMBLE_VIEWS` (1, 2, 4 and 8).
pub fn ensemble_views(value: &str) -> std::result::Result<usize, String> {
    match value.parse::<usize>() {
        Ok(n) if dppd::restore::ENSEMBLE_VIEWS.contains(&n) => Ok(n),
        _ => Err(format!(
            "{value:?} views: a self-ensemble takes 1, 2, 4 or 8 (mirrored, flipped, turned, transposed)"
        )),
    }
}

/// Parses `--haze-tile N`: the side of the tiles an image taken for haze is restored in
/// (`RestoreOptions::haze_tiles`, overlap N/4), or 0 for none.
pub fn haze_tile(value: &str) -> std::result::Result<usize, String> {
    side_or_zero(value, "or 0 to restore haze like any other image")
}

/// Parses `--local-attention N`: the side of the windows the attention maps are computed in
/// (`RestoreOptions::local_attention`, overlap N/4), or 0 for the whole image.
pub fn local_window(value: &str) -> std::result::Result<usize, String> {
    side_or_zero(value, "or 0 for attention over the whole image")
}

/// A square side checked by the library's rule (`TileConfig::validate`), or 0 (`zero` says
/// what 0 means, for the message).
fn side_or_zero(value: &str, zero: &str) -> std::result::Result<usize, String> {
    let n = value
        .parse::<usize>()
        .map_err(|_| format!("{value:?}: a side (a multiple of 8, at least 16), {zero}"))?;
    match square(n) {
        None => Ok(0),
        Some(t) => t
            .validate()
            .map(|()| n)
            .map_err(|e| format!("{value:?}: {e}; {zero}")),
    }
}

/// The `TileConfig` of `--haze-tile N` or `--local-attention N` (already checked): N×N,
/// overlap N/4; `None` for 0.
pub fn square(n: usize) -> Option<dppd::model::TileConfig> {
    (n > 0).then_some(dppd::model::TileConfig {
        tile: n,
        overlap: n / 4,
    })
}

/// The network the options name, and where it came from (for a message). The one rule of the
/// examples:
///
/// 1. no weights: the built-in default network ([`Restorer::pretrained`]);
/// 2. `config` (a `RestorerConfig` JSON) or `promptir_config` (the official PromptIR
///    constructor arguments), when given, describe the weights;
/// 3. otherwise a `.ckpt` that is one of this crate's training checkpoints gives its network;
/// 4. otherwise the configuration stored in the file (`.bpk`, this crate's `.safetensors`, or
///    PromptIR arguments in a safetensors file's metadata);
/// 5. otherwise the official PromptIR default (`.ckpt`/`.pth`/`.safetensors` of the official
///    code).
pub fn load_model(
    weights: Option<&Path>,
    config: Option<&Path>,
    promptir_config: Option<&Path>,
    device: &Device,
) -> Result<(Restorer, String)> {
    let Some(weights) = weights else {
        if config.is_some() || promptir_config.is_some() {
            return Err(Error::Config(
                "a configuration describes weights: give the weights file too".into(),
            ));
        }
        return Ok((
            Restorer::pretrained(device)?,
            "built-in default weights".into(),
        ));
    };
    let (config, origin) = match (config, promptir_config) {
        (Some(_), Some(_)) => {
            return Err(Error::Config(
                "give a RestorerConfig or PromptIR arguments, not both".into(),
            ));
        }
        (Some(p), None) => (RestorerConfig::load(p)?, format!("{}", p.display())),
        (None, Some(p)) => (
            PromptIrConfig::load(p)?.to_restorer()?,
            format!("{} (PromptIR arguments)", p.display()),
        ),
        (None, None) => {
            let is_ckpt = weights
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("ckpt"));
            if is_ckpt && let Ok(model) = Checkpoint::load_model(weights, device) {
                let origin = format!("{} (a training checkpoint)", weights.display());
                return Ok((model, origin));
            }
            match Restorer::config_in_file(weights)? {
                Some(c) => (c, "stored in the weights file".into()),
                None => (
                    RestorerConfig::promptir(),
                    "official PromptIR default".into(),
                ),
            }
        }
    };
    let model = Restorer::load_weights(&config, weights, device)?;
    Ok((model, format!("{} (config: {origin})", weights.display())))
}

/// Shows a training run's events on stderr: a progress bar over the steps on a terminal (a
/// line every `log_interval` steps otherwise), one line per validation, checkpoint skips, the
/// time limit and a cool-down brought forward.
pub struct TrainReporter {
    bar: Option<ProgressBar>,
    log_interval: u64,
    rate: f64,
}

impl TrainReporter {
    /// A reporter printing a plain line every `log_interval` steps when stderr is no terminal.
    pub fn new(log_interval: u64) -> Self {
        Self {
            bar: None,
            log_interval: log_interval.max(1),
            rate: 0.0,
        }
    }

    fn println(&self, line: String) {
        match &self.bar {
            Some(b) => b.println(line),
            None => eprintln!("{line}"),
        }
    }

    /// Handles one event.
    pub fn event(&mut self, e: TrainEvent<'_>) {
        match e {
            TrainEvent::SkippedCheckpoint { path, error } => self.println(format!(
                "skipping an unusable checkpoint {}: {error}",
                path.display()
            )),
            TrainEvent::Resumed { path, step } => {
                self.println(format!("resuming from {} (step {step})", path.display()))
            }
            TrainEvent::Started {
                from,
                to,
                train_samples,
                batches_per_epoch,
                batch_size,
                val_images,
                params,
            } => {
                eprintln!(
                    "training {from} → {to} steps: {train_samples} training samples \
                     ({batches_per_epoch} batches of {batch_size} per epoch), {val_images} \
                     validation images, {params} parameters"
                );
                if std::io::stderr().is_terminal() {
                    let bar = ProgressBar::new(to.saturating_sub(from));
                    bar.set_style(
                        ProgressStyle::with_template(
                            "{bar:30} {pos}/{len} steps {msg} [{elapsed_precise} < {eta_precise}]",
                        )
                        .expect("a valid template"),
                    );
                    self.bar = Some(bar);
                }
            }
            TrainEvent::Step(r) => {
                self.rate = if self.rate == 0.0 {
                    r.images_per_s
                } else {
                    0.9 * self.rate + 0.1 * r.images_per_s
                };
                let msg = format!(
                    "epoch {} loss {:.5} lr {:.3e} {:.2} img/s",
                    r.epoch, r.loss, r.lr, self.rate
                );
                match &self.bar {
                    Some(b) => {
                        b.inc(1);
                        b.set_message(msg);
                    }
                    None if r.step % self.log_interval == 0 => {
                        eprintln!("step {} {msg}", r.step)
                    }
                    None => {}
                }
            }
            TrainEvent::Validated(v) => {
                let per: Vec<String> = v
                    .tasks
                    .iter()
                    .map(|t| format!("{} {:.2} (in {:.2})", t.task, t.psnr, t.input_psnr))
                    .collect();
                self.println(format!(
                    "validation at step {}: mean PSNR {:.3} dB, SSIM {:.4}; {}",
                    v.step,
                    v.mean_psnr,
                    v.mean_ssim,
                    per.join(", ")
                ));
            }
            TrainEvent::Checkpoint { .. } => {}
            TrainEvent::TimeLimit { step } => {
                self.println(format!("time limit reached after step {step}"))
            }
            TrainEvent::CooldownBroughtForward {
                step,
                steps,
                planned,
            } => {
                if let Some(b) = &self.bar {
                    b.set_length(b.length().unwrap_or(0).saturating_sub(planned - steps));
                }
                self.println(format!(
                    "the cool-down starts after step {step} to end within the time limit: \
                     {steps} steps instead of {planned}"
                ))
            }
        }
    }

    /// Ends the progress bar.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
