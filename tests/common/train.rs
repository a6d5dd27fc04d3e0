//! A tiny training set-up shared by the training tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use burn::prelude::Device;
use dppd::data::{Image, write_image};
use dppd::train::{ExperimentConfig, TrainOptions};

/// A fresh temporary folder for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dppd-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Writes three small textured photographs into `dir/photos`.
pub fn photos(dir: &Path) -> PathBuf {
    let p = dir.join("photos");
    std::fs::create_dir_all(&p).unwrap();
    for k in 0..3usize {
        let (w, h) = (64, 56);
        let mut data = Vec::new();
        for c in 0..3 {
            for y in 0..h {
                for x in 0..w {
                    let v = ((x * (k + 2) + y * 3 + c * 40) % 64) as f32 / 80.0
                        + 0.1 * ((x / 8 + y / 8 + k) % 2) as f32;
                    data.push(v);
                }
            }
        }
        write_image(
            p.join(format!("p{k}.png")),
            &Image::from_planar(w, h, data).unwrap(),
        )
        .unwrap();
    }
    p
}

/// The tiny configuration: the small DPPD preset, 32×32 crops, batches of 2.
pub fn tiny_config(steps: u64) -> ExperimentConfig {
    serde_json::from_str(&format!(
        r#"{{
            "model": "dppd-small",
            "data": {{"tasks": ["denoise_25", "derain", "dehaze"], "val_holdout": 1,
                      "val_patch": 32, "val_crops": 1, "workers": 1}},
            "schedule": {{"warmup_steps": 2}},
            "optimizer": {{"lr": 1e-3}},
            "steps": {steps}, "batch_size": 2, "patch_size": 32,
            "val_interval": 3, "checkpoint_interval": 2, "keep_last": 2, "seed": 7
        }}"#
    ))
    .unwrap()
}

/// Options for a run in `run` on flex with data from `data`.
pub fn opts(run: &Path, data: &Path, resume: bool, stop_at: Option<u64>) -> TrainOptions {
    TrainOptions {
        data_root: Some(data.to_path_buf()),
        resume,
        stop_at,
        ..TrainOptions::new(run, Device::flex())
    }
}

/// The rows of a run's CSV log without the throughput column (a timing); none if it is
/// absent.
pub fn csv_rows(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let mut f: Vec<&str> = l.split(',').collect();
            if f.len() == 8 {
                f.pop();
            }
            f.join(",")
        })
        .collect()
}

/// Every float parameter of `m`, in order (the values, bit for bit: a `.bpk` file also holds
/// parameter ids, which differ by run).
pub fn values(m: &dppd::model::Restorer) -> Vec<f32> {
    use burn::module::{Module, ModuleVisitor, Param};
    use burn::tensor::Tensor;
    struct Collect(Vec<f32>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0.extend(param.val().into_data().iter::<f32>());
        }
    }
    let mut c = Collect(Vec::new());
    m.visit(&mut c);
    c.0
}
