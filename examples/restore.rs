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
//!   largest deviation is white; the scale is printed);
//! - `--tile N [--overlap M]`: restore in N×N tiles (N a multiple of 8) cross-faded over M
//!   pixels (default N/8); without `--tile`, tiles are chosen automatically when the image
//!   would not fit `--memory-budget MB` (default 2048).
//!
//! INPUT may be a folder: then OUTPUT is a folder (created if needed) that receives every
//! image of INPUT under the same relative name; a file that cannot be read is reported and
//! skipped, the others are restored, and the exit status is non-zero if any failed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use burn::prelude::*;
use dppd::data::{Image, list_images, read_image, write_image};
use dppd::model::{PromptIrConfig, Restorer, RestorerConfig, TileConfig};
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
    tile: Option<usize>,
    overlap: Option<usize>,
    budget_mb: u64,
}

const USAGE: &str = "usage: restore INPUT OUTPUT --weights FILE [--promptir-config FILE | --config FILE] \
[--device flex|ndarray|wgpu|cuda] [--samples N --uncertainty FILE] [--tile N [--overlap M]] \
[--memory-budget MB]";

fn parse() -> std::result::Result<Args, String> {
    let mut pos = Vec::new();
    let (mut weights, mut promptir_config, mut config, mut uncertainty) = (None, None, None, None);
    let mut device = "flex".to_string();
    let mut samples = 1usize;
    let (mut tile, mut overlap, mut budget_mb) = (None, None, 2048u64);
    let number = |v: String, what: &str| -> std::result::Result<usize, String> {
        v.parse()
            .map_err(|_| format!("{what} needs a non-negative integer, got {v:?}"))
    };
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
            "--tile" => tile = Some(number(value()?, "--tile")?),
            "--overlap" => overlap = Some(number(value()?, "--overlap")?),
            "--memory-budget" => budget_mb = number(value()?, "--memory-budget")? as u64,
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
    if overlap.is_some() && tile.is_none() {
        return Err("--overlap goes with --tile".into());
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
        tile,
        overlap,
        budget_mb,
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

/// Restores one file into `output`; returns the tiling used, if any.
fn restore_file(
    a: &Args,
    model: &Restorer,
    device: &Device,
    input: &Path,
    output: &Path,
) -> Result<()> {
    let image = read_image(input)?;
    let t = Instant::now();
    let tiles = match a.tile {
        Some(tile) => Some(TileConfig {
            tile,
            overlap: a.overlap.unwrap_or(tile / 8),
        }),
        None => TileConfig::for_budget(model, image.width, image.height, a.budget_mb << 20),
    };
    let x = || image.to_batch_tensor(device);
    // The prediction needs a whole-image pass; a tiled image is not classified.
    let prediction = tiles
        .is_none()
        .then(|| model.predict_degradation(x()))
        .flatten();
    if let Some(p) = prediction.as_ref().and_then(|p| p.first()) {
        let all: Vec<String> = p.all.iter().map(|(n, v)| format!("{n} {v:.3}")).collect();
        println!(
            "  degradation: {} (p = {:.3}; {})",
            p.name,
            p.probability,
            all.join(", ")
        );
    }
    let (restored, std) = match tiles {
        Some(tiles) => {
            if a.samples > 1 {
                return Err(Error::Config(
                    "--samples needs whole-image inference; this image is tiled (raise \
                     --memory-budget)"
                        .into(),
                ));
            }
            let restored = model.restore_tiled(&image, tiles, device, |done, total| {
                eprint!("\r  tile {done}/{total}");
            })?;
            eprintln!();
            println!(
                "  tiled: {0}×{0} tiles, overlap {1}",
                tiles.tile, tiles.overlap
            );
            (restored, None)
        }
        None if a.samples > 1 => {
            let r = model.restore_with_uncertainty(x(), a.samples);
            (Image::from_tensor(r.mean.squeeze_dim::<3>(0))?, Some(r.std))
        }
        None => (
            Image::from_tensor(model.forward(x()).squeeze_dim::<3>(0))?,
            None,
        ),
    };
    println!(
        "  restored {}×{} in {:.2} s",
        image.width,
        image.height,
        t.elapsed().as_secs_f64()
    );
    write_image(output, &restored)?;
    println!("  wrote {}", output.display());
    if let (Some(path), Some(std)) = (&a.uncertainty, std) {
        let max = std.clone().max().into_scalar::<f32>();
        let scaled = if max > 0.0 { std / max } else { std };
        write_image(path, &Image::from_tensor(scaled.squeeze_dim::<3>(0))?)?;
        println!(
            "  wrote {} (per-pixel std over {} samples; white = {max:.4})",
            path.display(),
            a.samples
        );
    }
    Ok(())
}

/// The (input, output) pairs: one file, or every image of a folder tree.
fn jobs(a: &Args) -> Result<Vec<(PathBuf, PathBuf)>> {
    if !a.input.is_dir() {
        return Ok(vec![(a.input.clone(), a.output.clone())]);
    }
    if a.uncertainty.is_some() {
        return Err(Error::Config(
            "--uncertainty takes a single input file".into(),
        ));
    }
    let files = list_images(&a.input)?;
    Ok(files
        .into_iter()
        .map(|f| {
            let rel = f.strip_prefix(&a.input).unwrap_or(&f).to_path_buf();
            (f, a.output.join(rel))
        })
        .collect())
}

fn run(a: Args) -> Result<usize> {
    let device = device_from_name(&a.device)?;
    let jobs = jobs(&a)?;
    // A single bad input is reported before any heavy work.
    if let [(input, _)] = jobs.as_slice() {
        read_image(input)?;
    }
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
    let mut failed = 0;
    for (i, (input, output)) in jobs.iter().enumerate() {
        println!("[{}/{}] {}", i + 1, jobs.len(), input.display());
        let result = output
            .parent()
            .filter(|p| !p.as_os_str().is_empty() && jobs.len() > 1)
            .map_or(Ok(()), |p| {
                std::fs::create_dir_all(p).map_err(|source| Error::Io {
                    path: p.into(),
                    source,
                })
            })
            .and_then(|()| restore_file(&a, &model, &device, input, output));
        if let Err(e) = result {
            eprintln!("error: {e}");
            failed += 1;
        }
    }
    if jobs.len() > 1 {
        println!("{} restored, {failed} failed", jobs.len() - failed);
    }
    Ok(failed)
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
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            if let Error::Config(_) = e {
                eprintln!("{USAGE}");
            }
            ExitCode::FAILURE
        }
    }
}
