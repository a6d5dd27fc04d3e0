//! Trains a restoration network.
//!
//! ```text
//! cargo run --release --example train -- \
//!     --config CONFIG --data DIR --out RUN_DIR [--resume] [--device flex | --devices cuda:0,cuda:1]
//! cargo run --release --example train -- --export CHECKPOINT OUT.bpk
//! ```
//! `--help` lists every option. The run folder receives `train.csv`, `val.csv`, `curves.png`,
//! `config.json`, `checkpoints/`, `best.bpk` and `final.bpk` (with a moving average of the
//! weights, `ema`: the average, and the trained weights in `final-raw.bpk`;
//! `docs/training.md`). `--export` writes the network a checkpoint's run validates (the
//! average when it keeps one).

mod common;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use dppd::train::{Checkpoint, ExperimentConfig, ModelSpec, TrainOptions, train_with};
use dppd::{Error, Result, devices_from_names};

/// Trains a restoration network (or continues a run), or exports a checkpoint's network.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// An experiment JSON file (`configs/*.json`, reference in docs/training.md) or a preset
    /// name (dppd-small, dppd-medium, dppd, promptir, restormer) trained with the default settings (3-task
    /// photos, 1000 steps, batch 8, 128² crops); with --resume it may be left out (the run's
    /// own config.json is used).
    #[arg(long)]
    config: Option<String>,
    /// A folder of clean photographs, or PromptIR's data/Train (with "data": {"layout":
    /// "promptir"} in the configuration); overrides data.root.
    #[arg(long)]
    data: Option<PathBuf>,
    /// The run folder.
    #[arg(long, required_unless_present = "export")]
    out: Option<PathBuf>,
    /// Continue from the newest valid checkpoint in RUN_DIR/checkpoints.
    #[arg(long)]
    resume: bool,
    /// flex, ndarray, wgpu, wgpu:N, cuda, cuda:N (as built; default: the first backend of the
    /// build, flex in a default build); several, separated by commas (e.g. cuda:0,cuda:1),
    /// train data-parallel: each batch is shared among them (docs/scaling.md).
    #[arg(long, visible_alias = "devices")]
    device: Option<String>,
    /// Override the configuration's step count (the only change a resumed run accepts).
    #[arg(long)]
    steps: Option<u64>,
    /// Override the batch size.
    #[arg(long)]
    batch: Option<usize>,
    /// Override the crop size.
    #[arg(long)]
    patch: Option<usize>,
    /// End the run after step N as an interruption would (the schedule still spans `steps`;
    /// the checkpoint at N, if N is a multiple of checkpoint_interval, holds it; --resume
    /// continues).
    #[arg(long)]
    stop_at: Option<u64>,
    /// A fresh run starts from this network (e.g. weights/default.bpk) with a fresh
    /// optimiser; its shapes must be the configuration's, or the configuration's network must
    /// be it with more blocks per level (it is then deepened: the added blocks start as
    /// identities, e.g. dppd-small weights into a dppd-medium run).
    #[arg(long)]
    init: Option<PathBuf>,
    /// End the run cleanly (checkpoint, final.bpk) after the first step that finishes M
    /// minutes after the start; --resume continues it.
    #[arg(long)]
    minutes: Option<f64>,
    /// With --minutes and a cool-down in the configuration (schedule.cooldown): when the rest
    /// of the schedule would not end within the time at the pace of the last steps, start the
    /// cool-down early, so that the run ends with it complete (the schedule is shortened, and
    /// the run's config.json records the new length).
    #[arg(long, requires = "minutes")]
    fit_cooldown: bool,
    /// Recompute intermediate values in the backward pass instead of keeping them: less
    /// memory, more time, the same results.
    #[arg(long)]
    gradient_checkpointing: bool,
    /// Write the network of a training checkpoint as a .bpk file (configuration included)
    /// that restore and evaluate load: --export CHECKPOINT OUT.bpk.
    #[arg(long, num_args = 2, value_names = ["CHECKPOINT", "OUT_BPK"])]
    export: Option<Vec<PathBuf>>,
}

fn run(a: Args) -> Result<()> {
    let backend = dppd::available_backends()
        .first()
        .copied()
        .unwrap_or("flex");
    // never empty: devices_from_names refuses empty names
    let devices = devices_from_names(a.device.as_deref().unwrap_or(backend))?;
    if let Some(paths) = &a.export {
        let (ckpt, target) = (&paths[0], &paths[1]);
        let model = Checkpoint::load_model(ckpt, &devices[0])?;
        model.save(target)?;
        eprintln!(
            "wrote {} (the network of {})",
            target.display(),
            ckpt.display()
        );
        return Ok(());
    }
    let out = a.out.clone().expect("clap requires --out without --export");
    let mut config = match &a.config {
        Some(c) if std::path::Path::new(c).is_file() => ExperimentConfig::load(c)?,
        Some(name) => serde_json::from_value(serde_json::json!({
            "model": name, "steps": 1000, "batch_size": 8, "patch_size": 128
        }))
        .map_err(|e| Error::Config(e.to_string()))?,
        None if a.resume => ExperimentConfig::load(out.join("config.json"))?,
        None => {
            return Err(Error::Config(
                "--config is required (a JSON file or a preset name) unless --resume".into(),
            ));
        }
    };
    if let ModelSpec::Preset(p) = &config.model {
        dppd::model::RestorerConfig::preset(p)?;
    }
    if let Some(s) = a.steps {
        config.steps = s;
    }
    if let Some(b) = a.batch {
        config.batch_size = b;
    }
    if let Some(p) = a.patch {
        config.patch_size = p;
    }
    if a.minutes.is_some_and(|m| !(m > 0.0 && m.is_finite())) {
        return Err(Error::Config("--minutes: a positive number".into()));
    }
    let opts = TrainOptions {
        data_root: a.data,
        resume: a.resume,
        stop_at: a.stop_at,
        init: a.init,
        time_limit: a.minutes.map(|m| Duration::from_secs_f64(m * 60.0)),
        fit_cooldown: a.fit_cooldown,
        gradient_checkpointing: a.gradient_checkpointing,
        devices: devices.clone(),
        ..TrainOptions::new(&out, devices[0].clone())
    };
    let mut reporter = common::TrainReporter::new(config.log_interval);
    let result = train_with(config, &opts, |e| reporter.event(e));
    reporter.finish();
    let s = result?;
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
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
