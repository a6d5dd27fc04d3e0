//! What the examples share: how a training run is shown on the terminal.

use std::io::IsTerminal;

use dppd::train::TrainEvent;
use indicatif::{ProgressBar, ProgressStyle};

/// Shows a training run's events on stderr: a progress bar over the steps on a terminal (a
/// line every `log_interval` steps otherwise), one line per validation, checkpoint skips and
/// the time limit.
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
        }
    }

    /// Ends the progress bar.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
