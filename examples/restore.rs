//! Restores photographs: noise, rain and haze are recognised and removed without being named.
//!
//! ```text
//! cargo run --release --example restore -- INPUT OUTPUT [options]
//! ```
//! INPUT is an image (PNG, JPEG, WebP, TIFF or BMP; 8 or 16 bit, grey, RGB or RGBA; turned
//! upright by its EXIF orientation) or a folder; OUTPUT is then an image (`.png`, `.jpg`,
//! `.webp`, `.tif`, `.bmp`) or a folder that receives every image of INPUT under the same
//! relative name (in the input's format). A grey input gives a grey output, a 16-bit input a
//! 16-bit PNG or TIFF. A file that cannot be read is reported and skipped, the others are
//! restored, and the exit status is non-zero if any failed. An output is written only when
//! complete, and an existing one is replaced atomically: a failure never leaves a partial or
//! truncated file. OUTPUT may not be INPUT itself (nor, for folders, hold INPUT's own files):
//! that is refused before any work, and the originals are left untouched, unless
//! `--in-place` asks for exactly that.
//!
//! Options:
//! - `--weights FILE`: other weights than the built-in default ones: `.bpk` (this crate's, with
//!   their configuration), `.ckpt`/`.pth` (PromptIR PyTorch) or `.safetensors`;
//! - `--promptir-config FILE`: the official PromptIR constructor arguments as JSON for
//!   `--weights` (without it, a configuration stored in the file is used, else the official
//!   PromptIR default); `--config FILE`: a dppd `RestorerConfig` JSON instead;
//! - `--device NAME`: `flex` (default), `ndarray`, `wgpu`, `cuda` — those enabled at build time;
//! - `--samples N` [`--uncertainty FILE`]: average N restorations with prompts sampled from
//!   their distributions (DPPD networks) and write the per-pixel standard deviation as an
//!   image, scaled so that the largest deviation is white (the scale is printed);
//! - `--tile N [--overlap M]`: restore in N×N tiles (N a multiple of 8) cross-faded over M
//!   pixels (default N/8); without `--tile`, tiles are chosen automatically when the image
//!   would not fit `--memory-budget MB` (default 2048);
//! - `--in-place`: allow OUTPUT to be INPUT (`restore photo.png photo.png --in-place`, or a
//!   folder onto itself): each original is replaced, atomically, by its restoration.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use burn::prelude::*;
use dppd::data::io::same_file;
use dppd::data::{Image, read_image, write_image};
use dppd::model::{PromptIrConfig, Restorer, RestorerConfig, TileConfig};
use dppd::restore::{
    FolderEvent, Restoration, RestoreOptions, check_folder_output, check_output, restore_file,
    restore_folder,
};
use dppd::{Error, Result, device_from_name};

struct Args {
    input: PathBuf,
    output: PathBuf,
    weights: Option<PathBuf>,
    promptir_config: Option<PathBuf>,
    config: Option<PathBuf>,
    device: String,
    samples: usize,
    uncertainty: Option<PathBuf>,
    tile: Option<usize>,
    overlap: Option<usize>,
    budget_mb: u64,
    in_place: bool,
}

const USAGE: &str = "usage: restore INPUT OUTPUT [--weights FILE [--promptir-config FILE | --config FILE]] \
[--device flex|ndarray|wgpu|cuda] [--samples N [--uncertainty FILE]] [--tile N [--overlap M]] \
[--memory-budget MB] [--in-place]";

fn parse() -> std::result::Result<Args, String> {
    let mut pos = Vec::new();
    let (mut weights, mut promptir_config, mut config, mut uncertainty) = (None, None, None, None);
    let mut device = "flex".to_string();
    let mut samples = 1usize;
    let (mut tile, mut overlap, mut budget_mb) = (None, None, 2048u64);
    let mut in_place = false;
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
            "--in-place" => in_place = true,
            "-h" | "--help" => return Err(USAGE.into()),
            s if s.starts_with("--") => return Err(format!("unknown option {s}\n{USAGE}")),
            _ => pos.push(PathBuf::from(a)),
        }
    }
    let [input, output]: [PathBuf; 2] = pos
        .try_into()
        .map_err(|_| format!("expected INPUT and OUTPUT\n{USAGE}"))?;
    if promptir_config.is_some() && config.is_some() {
        return Err("give --promptir-config or --config, not both".into());
    }
    if (promptir_config.is_some() || config.is_some()) && weights.is_none() {
        return Err("--promptir-config and --config describe --weights FILE".into());
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
        in_place,
    })
}

/// The network: the built-in default, or `--weights` with its configuration (explicit file,
/// else stored in the weights, else PromptIR's default).
fn load_model(a: &Args, device: &Device) -> Result<(Restorer, String)> {
    let Some(weights) = &a.weights else {
        return Ok((
            Restorer::pretrained(device)?,
            "built-in default weights".into(),
        ));
    };
    let (config, origin) = if let Some(p) = &a.config {
        (RestorerConfig::load(p)?, format!("{}", p.display()))
    } else if let Some(p) = &a.promptir_config {
        let c = PromptIrConfig::load(p)?.to_restorer()?;
        (c, format!("{} (PromptIR arguments)", p.display()))
    } else if let Some(c) = Restorer::config_in_file(weights)? {
        (c, "stored in the weights file".into())
    } else {
        (
            RestorerConfig::promptir(),
            "official PromptIR default".into(),
        )
    };
    let model = Restorer::load_weights(&config, weights, device)?;
    Ok((model, format!("{} (config: {origin})", weights.display())))
}

/// A progress bar on standard error, drawn only on a terminal.
struct Bar {
    tty: bool,
}

impl Bar {
    fn draw(&self, what: &str, done: usize, total: usize) {
        if !self.tty || total < 2 {
            return;
        }
        let width = 30;
        let full = done * width / total;
        eprint!(
            "\r  [{}{}] {done}/{total} {what}\x1b[K",
            "#".repeat(full),
            "-".repeat(width - full)
        );
        if done == total {
            eprint!("\r\x1b[K");
        }
    }
}

/// Prints what happened to one image.
fn report(r: &Restoration, seconds: f64) {
    if let Some(d) = &r.degradation {
        let all: Vec<String> = d.all.iter().map(|(n, p)| format!("{n} {p:.3}")).collect();
        println!(
            "  degradation: {} (p = {:.3}; {})",
            d.name,
            d.probability,
            all.join(", ")
        );
    }
    if let Some(t) = r.tiles {
        println!("  tiled: {0}×{0} tiles, overlap {1}", t.tile, t.overlap);
    }
    println!(
        "  restored {}×{} in {seconds:.2} s",
        r.image.width, r.image.height
    );
}

fn write_uncertainty(path: &PathBuf, std: &Image, samples: usize) -> Result<()> {
    let max = std.data.iter().fold(0.0f32, |m, &v| m.max(v));
    let scaled = if max > 0.0 {
        std.map(|v| v / max)
    } else {
        std.clone()
    };
    write_image(path, &scaled)?;
    println!(
        "  wrote {} (per-pixel std over {samples} samples; white = {max:.4})",
        path.display()
    );
    Ok(())
}

fn run(a: Args) -> Result<usize> {
    let device = device_from_name(&a.device)?;
    let folder = a.input.is_dir();
    if folder && a.uncertainty.is_some() {
        return Err(Error::Config(
            "--uncertainty takes a single input file".into(),
        ));
    }
    let options = RestoreOptions {
        tiles: a.tile.map(|tile| TileConfig {
            tile,
            overlap: a.overlap.unwrap_or(tile / 8),
        }),
        memory_budget: a.budget_mb << 20,
        samples: a.samples,
        in_place: a.in_place,
    };
    // A bad single input, or an output that would replace an input, is reported before the
    // network is loaded.
    if folder {
        check_folder_output(&a.input, &a.output, &options)?;
    } else {
        check_output(&a.input, &a.output, &options)?;
        read_image(&a.input)?;
    }
    if let Some(u) = &a.uncertainty
        && (same_file(u, &a.input) || u == &a.output)
    {
        return Err(Error::Config(format!(
            "--uncertainty {} would replace the input or the output",
            u.display()
        )));
    }
    let t = Instant::now();
    let (model, origin) = load_model(&a, &device)?;
    println!(
        "loaded {origin}: {} parameters, on {} in {:.2} s",
        model.num_params(),
        a.device,
        t.elapsed().as_secs_f64()
    );
    let bar = Bar {
        tty: std::io::stderr().is_terminal(),
    };
    if !folder {
        let t = Instant::now();
        let r = restore_file(&model, &a.input, &a.output, &options, &device, |d, n| {
            bar.draw("tiles", d, n)
        })?;
        report(&r, t.elapsed().as_secs_f64());
        println!("  wrote {}", a.output.display());
        if let (Some(path), Some(std)) = (&a.uncertainty, &r.uncertainty) {
            write_uncertainty(path, std, a.samples)?;
        }
        return Ok(0);
    }
    let mut started = Instant::now();
    let report_run = restore_folder(
        &model,
        &a.input,
        &a.output,
        &options,
        &device,
        |e| match e {
            FolderEvent::Started {
                index,
                total,
                input,
            } => {
                started = Instant::now();
                println!("[{}/{total}] {}", index + 1, input.display());
            }
            FolderEvent::Tile { done, total } => bar.draw("tiles", done, total),
            FolderEvent::Finished { output, result, .. } => match result {
                Ok(r) => {
                    report(r, started.elapsed().as_secs_f64());
                    println!("  wrote {}", output.display());
                }
                Err(e) => eprintln!("  error: {e}"),
            },
        },
    )?;
    println!(
        "{} restored, {} failed",
        report_run.restored.len(),
        report_run.failed.len()
    );
    for (_, e) in &report_run.failed {
        eprintln!("failed: {e}");
    }
    Ok(report_run.failed.len())
}

fn main() -> ExitCode {
    dppd::retain_freed_memory();
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
