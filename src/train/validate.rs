//! Validation: a fixed set of held-out crops (or whole images), loaded once, and the scores of
//! a network on it.

use std::collections::BTreeMap;

use burn::prelude::*;

use super::config::ExperimentConfig;
use crate::Result;
use crate::data::{
    Augment, Entry, Mode, RestoreDataset, Sample, images_to_tensor, tensor_to_images,
};
use crate::degrade::Task;
use crate::eval::restoration_scores;
use crate::model::Restorer;

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

/// The fixed validation set, loaded once, with the degraded inputs' own scores.
pub(crate) struct ValSet {
    pub(crate) samples: Vec<Sample>,
    input_scores: Vec<(f64, f64)>,
}

pub(crate) fn build_val(config: &ExperimentConfig, entries: Vec<Entry>) -> Result<ValSet> {
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
    }
    .with_quantization(d.quantization());
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

pub(crate) fn validate(
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
