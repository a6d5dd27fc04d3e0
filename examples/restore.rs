//! Restores a photograph with a PromptIR-family or DPPD network.
//!
//! ```text
//! cargo run --release --example restore -- INPUT OUTPUT --weights FILE [options]
//! ```
//! Options:
//! - `--weights FILE`: `.ckpt`/`.pth` (PromptIR PyTorch), `.safetensors` or `.bpk`;
//! - `--promptir-config FILE`: the official PromptIR constructor arguments as JSON (the format
//!   of PromptIR's `config.json`); without it, a configuration stored in the weights file is
//!   used, else the official PromptIR default;
//! - `--config FILE`: a dppd `RestorerConfig` JSON instead (e.g. a DPPD network);
//! - `--device NAME`: `flex` (default), `ndarray`, `wgpu`, `cuda` — those enabled at build time;
//! - `--samples N` with `--uncertainty FILE`: for a DPPD network, average N restorations with
//!   sampled prompts and write the per-pixel standard deviation as an image (scaled so that the
//!   largest deviation is white; the scale is printed).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use burn::prelude::*;
use dppd::data::{Image, read_image, write_image};
use dppd::model::{PromptIrConfig, Restorer, RestorerConfig};
use dppd::{Error, Result, device_from_name};

struct Args {
    input: PathBuf,
    output: PathBuf,
    weights: PathBuf,
    promptir_config: Option<PathBuf>,
    config: Option<PathBuf>,
    device: String,
    samples: usize,
    uncertainty: Option<PathBuf>,
}

const USAGE: &str = "usage: restore INPUT OUTPUT --weights FILE [--promptir-config FILE | --config FILE] \
[--device flex|ndarray|wgpu|cuda] [--samples N --uncertainty FILE]";

fn parse() -> std::result::Result<Args, String> {
    let mut pos = Vec::new();
    let (mut weights, mut promptir_config, mut config, mut uncertainty) = (None, None, None, None);
    let mut device = "flex".to_string();
    let mut samples = 1usize;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or(format!("{a} needs a value\n{USAGE}"));
        match a.as_str() {
            "--weights" => weights = Some(PathBuf::from(value()?)),
            "--promptir-config" => promptir_config = Some(PathBuf::from(value()?)),
            "--config" => config = Some(PathBuf::from(value()?)),
            "--device" => device = value()?,
            "--samples" => {
                samples = value()?
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or("--samples needs a positive integer")?
            }
            "--uncertainty" => uncertainty = Some(PathBuf::from(value()?)),
            "-h" | "--help" => return Err(USAGE.into()),
            s if s.starts_with("--") => return Err(format!("unknown option {s}\n{USAGE}")),
            _ => pos.push(PathBuf::from(a)),
        }
    }
    let [input, output]: [PathBuf; 2] = pos
        .try_into()
        .map_err(|_| format!("expected INPUT and OUTPUT\n{USAGE}"))?;
    let weights = weights.ok_or(format!("--weights FILE is required\n{USAGE}"))?;
    if promptir_config.is_some() && config.is_some() {
        return Err("give --promptir-config or --config, not both".into());
    }
    if uncertainty.is_some() && samples < 2 {
        return Err("--uncertainty needs --samples N with N ≥ 2".into());
    }
    Ok(Args {
        input,
        output,
        weights,
        promptir_config,
        config,
        device,
        samples,
        uncertainty,
    })
}

/// The configuration: explicit file, else stored in the weights, else PromptIR's default.
fn resolve_config(a: &Args) -> Result<(RestorerConfig, String)> {
    if let Some(p) = &a.config {
        return Ok((RestorerConfig::load(p)?, format!("{}", p.display())));
    }
    if let Some(p) = &a.promptir_config {
        let c = PromptIrConfig::load(p)?.to_restorer()?;
        return Ok((c, format!("{} (PromptIR arguments)", p.display())));
    }
    if let Some(c) = Restorer::config_in_file(&a.weights)? {
        return Ok((c, "stored in the weights file".into()));
    }
    Ok((
        RestorerConfig::promptir(),
        "official PromptIR default".into(),
    ))
}

fn run(a: Args) -> Result<()> {
    let device = device_from_name(&a.device)?;
    // Read the input first: a bad image is reported before any heavy work.
    let image = read_image(&a.input)?;
    let (config, origin) = resolve_config(&a)?;
    let t = Instant::now();
    let model = Restorer::load_weights(&config, &a.weights, &device)?;
    println!(
        "loaded {} ({} parameters; config: {origin}) on {} in {:.2} s",
        a.weights.display(),
        model.num_params(),
        a.device,
        t.elapsed().as_secs_f64()
    );
    let x = image.to_batch_tensor(&device);
    let t = Instant::now();
    if let Some(pred) = model.predict_degradation(x.clone()) {
        let p = &pred[0];
        let all: Vec<String> = p.all.iter().map(|(n, v)| format!("{n} {v:.3}")).collect();
        println!(
            "degradation: {} (p = {:.3}; {})",
            p.name,
            p.probability,
            all.join(", ")
        );
    }
    let (restored, std) = if a.samples > 1 {
        let r = model.restore_with_uncertainty(x, a.samples);
        (r.mean, Some(r.std))
    } else {
        (model.forward(x), None)
    };
    let restored = Image::from_tensor(restored.squeeze_dim::<3>(0))?;
    println!(
        "restored {}×{} in {:.2} s",
        image.width,
        image.height,
        t.elapsed().as_secs_f64()
    );
    write_image(&a.output, &restored)?;
    println!("wrote {}", a.output.display());
    if let (Some(path), Some(std)) = (&a.uncertainty, std) {
        let max = std.clone().max().into_scalar::<f32>();
        let scaled = if max > 0.0 { std / max } else { std };
        write_image(path, &Image::from_tensor(scaled.squeeze_dim::<3>(0))?)?;
        println!(
            "wrote {} (per-pixel std over {} samples; white = {max:.4})",
            path.display(),
            a.samples
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            if let Error::Config(_) = e {
                eprintln!("{USAGE}");
            }
            ExitCode::FAILURE
        }
    }
}
