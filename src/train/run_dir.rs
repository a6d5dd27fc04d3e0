//! A run folder: what a training run writes and reads back.
//!
//! ```text
//! RUN/config.json          the experiment configuration
//! RUN/train.csv            one TrainRow per step
//! RUN/val.csv              one ValRow per task per validation (task `average`: the mean)
//! RUN/curves.png           the training curves (plot.rs)
//! RUN/checkpoints/ckpt-STEP.ckpt, best.ckpt
//! RUN/best.bpk, final.bpk  the best validated and the final network
//! RUN/final-raw.bpk        with a moving average: the optimiser's own final weights
//! RUN/branch.bpk           with a cool-down: the weights where it started
//! ```
//!
//! The logs are CSV files with a header, written and read through `serde` (the `csv` crate),
//! so a column is named, never counted.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// One training step in `train.csv`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrainRow {
    /// Steps done after this one (from 1).
    pub step: u64,
    /// The epoch the step belonged to.
    pub epoch: u64,
    /// Its learning rate.
    pub lr: f64,
    /// The total loss.
    pub loss: f64,
    /// Its L1 part.
    pub l1: f64,
    /// Its DPA cross-entropy part (NaN without).
    pub dpa_ce: f64,
    /// Its PDL KL part (NaN without).
    pub pdl_kl: f64,
    /// The step's throughput.
    pub images_per_s: f64,
}

/// One task's scores of a validation in `val.csv`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValRow {
    /// Steps done when it ran.
    pub step: u64,
    /// The task's name, or `average` for the mean over tasks.
    pub task: String,
    /// Mean PSNR of the restored images (dB).
    pub psnr: f64,
    /// Mean SSIM of the restored images.
    pub ssim: f64,
    /// Mean PSNR of the degraded inputs (infinite for clean inputs).
    pub input_psnr: f64,
    /// Mean SSIM of the degraded inputs.
    pub input_ssim: f64,
}

/// The paths of a run folder and its logs.
#[derive(Debug, Clone)]
pub struct RunDir {
    root: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn csv_err(path: &Path, e: csv::Error) -> Error {
    Error::Training(format!("{}: {e}", path.display()))
}

impl RunDir {
    /// The run folder `root` (nothing is created).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `config.json`.
    pub fn config(&self) -> PathBuf {
        self.root.join("config.json")
    }

    /// `train.csv`.
    pub fn train_log(&self) -> PathBuf {
        self.root.join("train.csv")
    }

    /// `val.csv`.
    pub fn val_log(&self) -> PathBuf {
        self.root.join("val.csv")
    }

    /// `checkpoints/`.
    pub fn checkpoints(&self) -> PathBuf {
        self.root.join("checkpoints")
    }

    /// The checkpoint file of step `step`.
    pub fn checkpoint(&self, step: u64) -> PathBuf {
        self.checkpoints().join(format!("ckpt-{step:08}.ckpt"))
    }

    /// `checkpoints/best.ckpt`.
    pub fn best_checkpoint(&self) -> PathBuf {
        self.checkpoints().join("best.ckpt")
    }

    /// `best.bpk`.
    pub fn best_model(&self) -> PathBuf {
        self.root.join("best.bpk")
    }

    /// `final.bpk`: the network the run produces (the moving average of the weights when the
    /// experiment keeps one).
    pub fn final_model(&self) -> PathBuf {
        self.root.join("final.bpk")
    }

    /// `final-raw.bpk`: with a moving average, the optimiser's own weights after the last step.
    pub fn final_raw_model(&self) -> PathBuf {
        self.root.join("final-raw.bpk")
    }

    /// `branch.bpk`: with a cool-down (`schedule.cooldown`), the optimiser's weights when it
    /// starts — or at the run's end when a time limit ended it before — from which a later run
    /// can continue at the peak rate.
    pub fn branch_model(&self) -> PathBuf {
        self.root.join("branch.bpk")
    }

    /// `curves.png`.
    pub fn curves(&self) -> PathBuf {
        self.root.join("curves.png")
    }

    /// Creates the folder and its `checkpoints/`.
    pub fn create(&self) -> Result<()> {
        let c = self.checkpoints();
        std::fs::create_dir_all(&c).map_err(io(&c))
    }

    /// The step checkpoints `ckpt-STEP.ckpt`, newest first.
    pub fn list_checkpoints(&self) -> Vec<(u64, PathBuf)> {
        list_checkpoints(&self.checkpoints())
    }

    /// Deletes all step checkpoints but the `keep` newest.
    pub fn rotate_checkpoints(&self, keep: usize) {
        for (_, old) in self.list_checkpoints().iter().skip(keep) {
            let _ = std::fs::remove_file(old);
        }
    }

    /// Appends one row to `train.csv` (with the header if the file is new).
    pub fn append_train(&self, row: &TrainRow) -> Result<()> {
        append(&self.train_log(), std::slice::from_ref(row))
    }

    /// Appends rows to `val.csv` (with the header if the file is new).
    pub fn append_val(&self, rows: &[ValRow]) -> Result<()> {
        append(&self.val_log(), rows)
    }

    /// The rows of `train.csv` (none if it does not exist).
    pub fn read_train(&self) -> Result<Vec<TrainRow>> {
        read(&self.train_log())
    }

    /// The rows of `val.csv` (none if it does not exist).
    pub fn read_val(&self) -> Result<Vec<ValRow>> {
        read(&self.val_log())
    }

    /// Keeps the rows of both logs whose step is at most `step` (a resumed run rewrites the
    /// steps after its checkpoint).
    pub fn truncate_logs(&self, step: u64) -> Result<()> {
        let train: Vec<TrainRow> = self
            .read_train()?
            .into_iter()
            .filter(|r| r.step <= step)
            .collect();
        rewrite(&self.train_log(), &train)?;
        let val: Vec<ValRow> = self
            .read_val()?
            .into_iter()
            .filter(|r| r.step <= step)
            .collect();
        rewrite(&self.val_log(), &val)
    }

    /// Removes both logs (a fresh run).
    pub fn clear_logs(&self) {
        for p in [self.train_log(), self.val_log()] {
            let _ = std::fs::remove_file(p);
        }
    }
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

fn append<T: Serialize>(path: &Path, rows: &[T]) -> Result<()> {
    // a missing or empty file gets the header first
    let new = std::fs::metadata(path).map_or(true, |m| m.len() == 0);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io(path))?;
    let mut w = csv::WriterBuilder::new().has_headers(new).from_writer(file);
    for r in rows {
        w.serialize(r).map_err(|e| csv_err(path, e))?;
    }
    w.flush().map_err(io(path))
}

fn rewrite<T: Serialize>(path: &Path, rows: &[T]) -> Result<()> {
    if rows.is_empty() {
        return match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(path)(e)),
            _ => Ok(()),
        };
    }
    let mut w = csv::WriterBuilder::new()
        .has_headers(true)
        .from_writer(Vec::new());
    for r in rows {
        w.serialize(r).map_err(|e| csv_err(path, e))?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| Error::Training(format!("{}: {e}", path.display())))?;
    crate::base::atomic::write_bytes(path, &bytes)
}

fn read<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Vec<T>> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(path)(e)),
    };
    csv::Reader::from_reader(file)
        .deserialize()
        .collect::<std::result::Result<Vec<T>, _>>()
        .map_err(|e| csv_err(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::TempDir;

    #[test]
    fn logs_round_trip_and_truncate() {
        let dir = TempDir::new("rundir");
        let run = RunDir::new(&dir.0);
        run.create().unwrap();
        for step in 1..=4 {
            let row = TrainRow {
                step,
                epoch: 0,
                lr: 1e-4,
                loss: 0.5 / step as f64,
                l1: 0.4,
                dpa_ce: f64::NAN,
                pdl_kl: 1.0,
                images_per_s: 2.0,
            };
            run.append_train(&row).unwrap();
        }
        let val = |step, task: &str| ValRow {
            step,
            task: task.into(),
            psnr: 30.0,
            ssim: 0.9,
            input_psnr: f64::INFINITY,
            input_ssim: 1.0,
        };
        run.append_val(&[val(2, "clean"), val(2, "average")])
            .unwrap();
        run.append_val(&[val(4, "clean"), val(4, "average")])
            .unwrap();
        let rows = run.read_train().unwrap();
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[3].loss, 0.125);
        assert!(rows[0].dpa_ce.is_nan());
        let text = std::fs::read_to_string(run.train_log()).unwrap();
        assert!(
            text.starts_with("step,epoch,lr,loss,l1,dpa_ce,pdl_kl,images_per_s\n"),
            "{text}"
        );
        let v = run.read_val().unwrap();
        assert_eq!(v.len(), 4);
        assert!(v[0].input_psnr.is_infinite());
        run.truncate_logs(3).unwrap();
        assert_eq!(run.read_train().unwrap().len(), 3);
        assert_eq!(run.read_val().unwrap().len(), 2);
        // cut back before the first validation: the next rows get their header again
        run.truncate_logs(1).unwrap();
        assert!(run.read_val().unwrap().is_empty());
        run.append_val(&[val(2, "clean")]).unwrap();
        assert_eq!(run.read_val().unwrap(), [val(2, "clean")]);
        // a log that is not CSV of these rows is an error naming the file
        std::fs::write(run.train_log(), "step,loss\nx,y\n").unwrap();
        let err = run.read_train().unwrap_err().to_string();
        assert!(err.contains("train.csv"), "{err}");
    }
}
