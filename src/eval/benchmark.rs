//! A test-set run: every sample restored through the path users take
//! ([`Restorer::restore_image`]), scored, and its predicted degradation tallied against the
//! truth — the numbers behind `evaluate`, the README's table and the default-weights campaign.

use std::collections::BTreeMap;
use std::time::Instant;

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::{ScoreTable, restoration_scores};
use crate::data::{Image, RestoreDataset, Sample};
use crate::model::{DegradationPrediction, Restorer};
use crate::restore::RestoreOptions;
use crate::{Error, Result};

/// Counts of (true family, predicted prototype name) over a test set.
///
/// The true family of a sample is its task's [`family`](crate::degrade::Task::family)
/// (`noise`, `rain`, `haze`, `clean`, ...); the prediction is the name of the most probable
/// DPA prototype ([`RestorerConfig::degradations`](crate::model::RestorerConfig)).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Confusion {
    /// `counts[truth][predicted]`.
    pub counts: BTreeMap<String, BTreeMap<String, usize>>,
}

impl Confusion {
    /// Adds one sample.
    pub fn add(&mut self, truth: &str, predicted: &str) {
        *self
            .counts
            .entry(truth.to_string())
            .or_default()
            .entry(predicted.to_string())
            .or_default() += 1;
    }

    /// `(right, total)` over the samples whose true family is not `clean` (the degraded
    /// ones), or over all samples with `with_clean`.
    pub fn right_of(&self, with_clean: bool) -> (usize, usize) {
        let (mut right, mut total) = (0, 0);
        for (truth, row) in &self.counts {
            if truth == "clean" && !with_clean {
                continue;
            }
            for (p, n) in row {
                total += n;
                if p == truth {
                    right += n;
                }
            }
        }
        (right, total)
    }

    /// The share of degraded samples classified right (`None` without any).
    pub fn accuracy(&self) -> Option<f64> {
        let (r, t) = self.right_of(false);
        (t > 0).then(|| r as f64 / t as f64)
    }

    /// A Markdown table: one row per true family, one column per predicted name.
    pub fn to_markdown(&self) -> String {
        let mut cols: Vec<&String> = self.counts.values().flat_map(|r| r.keys()).collect();
        cols.sort();
        cols.dedup();
        let mut s = String::from("| true \\ predicted |");
        for c in &cols {
            s += &format!(" {c} |");
        }
        s += "\n|---|";
        s += &"---|".repeat(cols.len());
        s.push('\n');
        for (truth, row) in &self.counts {
            s += &format!("| {truth} |");
            for c in &cols {
                s += &format!(" {} |", row.get(*c).copied().unwrap_or(0));
            }
            s.push('\n');
        }
        s
    }
}

/// One restored test sample.
#[derive(Debug, Clone)]
pub struct SampleResult {
    /// The sample (degraded input, clean target, task, name).
    pub sample: Sample,
    /// The restoration, clamped to [0, 1].
    pub restored: Image,
    /// `(PSNR, SSIM)` of the restoration.
    pub scores: (f64, f64),
    /// `(PSNR, SSIM)` of the degraded input itself.
    pub input_scores: (f64, f64),
    /// The predicted degradation (DPPD networks).
    pub predicted: Option<DegradationPrediction>,
    /// Seconds the restoration took.
    pub seconds: f64,
}

/// What [`benchmark`] measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Benchmark {
    /// Mean scores per task.
    pub table: ScoreTable,
    /// Predicted against true degradation (empty for networks without DPPD sites).
    pub confusion: Confusion,
    /// Seconds spent restoring.
    pub seconds: f64,
}

impl Benchmark {
    /// The mean over tasks of the per-task mean PSNR and SSIM (the `average` row).
    pub fn mean(&self) -> Option<(f64, f64)> {
        self.table
            .rows()
            .into_iter()
            .find(|r| r.0 == "average")
            .map(|r| (r.2[0], r.2[1]))
    }
}

/// Restores every sample of `set` with `options` (the whole image unless the memory budget
/// asks for tiles, as `restore` does), optionally after a centre crop to at most `crop`² (a
/// multiple of 16), and scores it. `each` sees every result as it is made (progress, pictures).
pub fn benchmark(
    model: &Restorer,
    set: &RestoreDataset,
    crop: Option<usize>,
    options: &RestoreOptions,
    device: &Device,
    mut each: impl FnMut(usize, usize, &SampleResult) -> Result<()>,
) -> Result<Benchmark> {
    let mut out = Benchmark::default();
    let t0 = Instant::now();
    for i in 0..set.len() {
        let mut sample = set.get(i, 0)?;
        if let Some(n) = crop {
            sample.degraded = centre(&sample.degraded, n)?.crop_to_multiple(16)?;
            sample.clean = centre(&sample.clean, n)?.crop_to_multiple(16)?;
        }
        let t = Instant::now();
        let r = model.restore_image(&sample.degraded, options, device, |_, _| {})?;
        let seconds = t.elapsed().as_secs_f64();
        let restored = r.image.clamped();
        let scores = restoration_scores(&restored, &sample.clean)?;
        let input_scores = restoration_scores(&sample.degraded, &sample.clean)?;
        out.table.add(sample.task, scores, input_scores);
        if let Some(p) = &r.degradation {
            out.confusion.add(sample.task.family(), &p.name);
        }
        let result = SampleResult {
            sample,
            restored,
            scores,
            input_scores,
            predicted: r.degradation,
            seconds,
        };
        each(i, set.len(), &result)?;
    }
    out.seconds = t0.elapsed().as_secs_f64();
    Ok(out)
}

fn centre(im: &Image, n: usize) -> Result<Image> {
    if n < 16 {
        return Err(Error::Config(format!("crop {n}: at least 16")));
    }
    let (w, h) = (im.width.min(n), im.height.min(n));
    im.crop((im.width - w) / 2, (im.height - h) / 2, w, h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confusion_counts_accuracy_over_degraded_samples() {
        let mut c = Confusion::default();
        for (t, p) in [
            ("noise", "noise"),
            ("noise", "noise"),
            ("haze", "rain"),
            ("rain", "rain"),
            ("clean", "noise"),
        ] {
            c.add(t, p);
        }
        assert_eq!(c.right_of(false), (3, 4));
        assert_eq!(c.right_of(true), (3, 5));
        assert_eq!(c.accuracy(), Some(0.75));
        let md = c.to_markdown();
        assert!(md.contains("| true \\ predicted | noise | rain |"), "{md}");
        assert!(md.contains("| haze | 0 | 1 |"), "{md}");
        assert!(md.contains("| noise | 2 | 0 |"), "{md}");
        assert!(md.contains("| clean | 1 | 0 |"), "{md}");
        assert_eq!(Confusion::default().accuracy(), None);
    }
}
