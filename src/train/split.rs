//! A run's data: the training and validation entries of a configuration, and the DPA targets
//! of its tasks.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::config::{DataLayout, ExperimentConfig};
use crate::data::{
    Entry, Source, TaskMix, balance, list_images, promptir_train, synthetic_entries,
};
use crate::degrade::Task;
use crate::model::{PromptSiteConfig, RestorerConfig};
use crate::{Error, Result};

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
pub(crate) fn family_labels(
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
