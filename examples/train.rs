//! Trains a restoration network.
//!
//! ```text
//! cargo run --release --features ndarray --example train -- \
//!     --config CONFIG --data DIR --out RUN_DIR [--resume] [--device flex]
//! ```
//! - `--config`: an experiment JSON file (`configs/*.json`, reference in `docs/training.md`)
//!   or a preset name (`dppd-small`, `dppd`, `promptir`, `restormer`) trained with the default
//!   settings (3-task photos, 1000 steps, batch 8, 128² crops); with `--resume` it may be
//!   left out (the run's own `RUN_DIR/config.json` is used);
//! - `--data`: a folder of clean photographs, or PromptIR's `data/Train` (with
//!   `"data": {"layout": "promptir"}` in the config); overrides `data.root`;
//! - `--out`: the run folder: `train.csv`, `val.csv`, `curves.png`, `config.json`,
//!   `checkpoints/`, `best.bpk`, `final.bpk`;
//! - `--resume`: continue from the newest valid checkpoint in `RUN_DIR/checkpoints`;
//! - `--device`: `flex` (default), `ndarray`, `wgpu`, `cuda`, as built;
//! - `--steps N`, `--batch N`, `--patch N`: override the config's values (a resumed run may
//!   change only `--steps`);
//! - `--stop-at N`: end the run after step N as an interruption would (the schedule still
//!   spans `steps`; no final model: the checkpoint at N, if N is a multiple of
//!   `checkpoint_interval`, holds it; `--resume` continues);
//! - `--init MODEL.bpk`: a fresh run starts from this network (e.g. `weights/default.bpk`)
//!   with a fresh optimiser; its shapes must be the configuration's;
//! - `--minutes M`: end the run cleanly (checkpoint, `final.bpk`) after the first step that
//!   finishes M minutes after the start; `--resume` continues it;
//! - `train --export CHECKPOINT OUT.bpk`: writes the network of a training checkpoint as a
//!   `.bpk` file (configuration included) that `restore` and `evaluate` load.

use std::path::PathBuf;
use std::process::ExitCode;

use dppd::train::{Checkpoint, ExperimentConfig, ModelSpec, TrainOptions, train};
use dppd::{Error, Result, device_from_name};

const USAGE: &str = "usage: train --config CONFIG|PRESET --data DIR --out RUN_DIR [--resume] \
[--device flex|ndarray|wgpu|cuda] [--steps N] [--batch N] [--patch N] [--stop-at N] \
[--init MODEL.bpk] [--minutes M]
       train --export CHECKPOINT OUT.bpk";

fn run() -> Result<()> {
    let (mut config, mut data, mut out, mut resume, mut device) =
        (None, None, None, false, "flex".to_string());
    let (mut steps, mut batch, mut patch, mut stop_at) = (None, None, None, None);
    let (mut init, mut minutes) = (None, None);
    let mut it = std::env::args().skip(1);
    let num = |v: Option<String>, a: &str| -> Result<u64> {
        v.and_then(|v| v.parse().ok())
            .ok_or_else(|| Error::Config(format!("{a} needs a positive integer\n{USAGE}")))
    };
    while let Some(a) = it.next() {
        match a.as_str() {
            "--config" => config = it.next(),
            "--data" => data = it.next().map(PathBuf::from),
            "--out" => out = it.next().map(PathBuf::from),
            "--resume" => resume = true,
            "--device" => device = it.next().unwrap_or_default(),
            "--steps" => steps = Some(num(it.next(), &a)?),
            "--batch" => batch = Some(num(it.next(), &a)? as usize),
            "--patch" => patch = Some(num(it.next(), &a)? as usize),
            "--stop-at" => stop_at = Some(num(it.next(), &a)?),
            "--init" => init = it.next().map(PathBuf::from),
            "--minutes" => minutes = Some(num(it.next(), &a)? as f64),
            "--export" => {
                let (Some(ckpt), Some(target)) = (it.next(), it.next()) else {
                    return Err(Error::Config(format!(
                        "--export needs CHECKPOINT and OUT.bpk\n{USAGE}"
                    )));
                };
                let model = Checkpoint::load_model(ckpt.as_ref(), &device_from_name("flex")?)?;
                model.save(&target)?;
                eprintln!("wrote {target} (the network of {ckpt})");
                return Ok(());
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => {
                return Err(Error::Config(format!(
                    "unknown argument {other:?}\n{USAGE}"
                )));
            }
        }
    }
    let out = out.ok_or_else(|| Error::Config(format!("--out is required\n{USAGE}")))?;
    let mut config = match config {
        Some(c) if std::path::Path::new(&c).is_file() => ExperimentConfig::load(&c)?,
        Some(name) => serde_json::from_value(serde_json::json!({
            "model": name, "steps": 1000, "batch_size": 8, "patch_size": 128
        }))
        .map_err(|e| Error::Config(e.to_string()))?,
        None if resume => ExperimentConfig::load(out.join("config.json"))?,
        None => return Err(Error::Config(format!("--config is required\n{USAGE}"))),
    };
    if let ModelSpec::Preset(p) = &config.model {
        dppd::model::RestorerConfig::preset(p)?;
    }
    if let Some(s) = steps {
        config.steps = s;
    }
    if let Some(b) = batch {
        config.batch_size = b;
    }
    if let Some(p) = patch {
        config.patch_size = p;
    }
    let opts = TrainOptions {
        data_root: data,
        resume,
        stop_at,
        progress: true,
        init,
        time_limit: minutes.map(|m| std::time::Duration::from_secs_f64(m * 60.0)),
        ..TrainOptions::new(&out, device_from_name(&device)?)
    };
    let s = train(config, &opts)?;
    eprintln!(
        "done: step {}, {:.2} images/s (training steps of this session, validation excluded){}",
        s.step,
        s.images_per_second,
        s.best
            .map(|b| format!(
                ", best mean validation PSNR {:.3} dB at step {}",
                b.psnr, b.step
            ))
            .unwrap_or_default()
    );
    if let Some(v) = s.validations.last() {
        println!("| task | PSNR | SSIM | input PSNR | input SSIM |\n|---|---|---|---|---|");
        for t in &v.tasks {
            println!(
                "| {} | {:.3} | {:.4} | {:.3} | {:.4} |",
                t.task, t.psnr, t.ssim, t.input_psnr, t.input_ssim
            );
        }
        println!("| average | {:.3} | {:.4} | | |", v.mean_psnr, v.mean_ssim);
    }
    eprintln!("run folder: {}", out.display());
    Ok(())
}

fn main() -> ExitCode {
    dppd::retain_freed_memory();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
