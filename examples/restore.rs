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
//!   their configuration), a training checkpoint `.ckpt`, `.ckpt`/`.pth` (PromptIR PyTorch) or
//!   `.safetensors` (the rule: `examples/common/mod.rs`, `load_model`; evaluate follows it too);
//! - `--promptir-config FILE`: the official PromptIR constructor arguments as JSON for
//!   `--weights` (without it, a configuration stored in the file is used, else the official
//!   PromptIR default); `--config FILE`: a dppd `RestorerConfig` JSON instead;
//! - `--device NAME`: `flex` (default), `ndarray`, `wgpu`, `cuda` — those enabled at build time;
//! - `--samples N` [`--uncertainty FILE`]: average N restorations with prompts sampled from
//!   their distributions (DPPD networks) and write the per-pixel standard deviation as an
//!   image, scaled so that the largest deviation is white (the scale is printed);
//! - `--ensemble N`: geometric self-ensemble — restore the image mirrored, flipped, turned and
//!   transposed (N = 2, 4 or 8 of those views), undo each and average: better (8 gain 0.3 dB
//!   on noise, 1.0 dB on rain and 0.3 dB on haze with the built-in weights) and N times slower;
//! - `--tile N [--overlap M]`: restore in N×N tiles (N a multiple of 8) cross-faded over M
//!   pixels (default N/8); without `--tile`, tiles are chosen automatically when the image
//!   would not fit `--memory-budget MB` (default 2048);
//! - `--local-attention N`: compute the attention maps in N×N windows sharing N/4 pixels
//!   (default 128, the crops the built-in weights were trained on: +3.5 dB on the README's
//!   hazy photographs against attention over the whole image; `RestoreOptions::local_attention`);
//!   0 takes them over the whole image;
//! - `--haze-tile N`: restore what the network takes for haze again in N×N tiles cross-faded
//!   over N/4 pixels (128: +0.4 dB on the README's hazy photographs, 2.5 times the time;
//!   `RestoreOptions::haze_tiles`); 0 (the default) restores haze like anything else;
//! - `--restore-clean`: restore in full even what the network recognises as clean (by
//!   default the change made is scaled by 1 − p(clean): `RestoreOptions::keep_clean`);
//! - `--in-place`: allow OUTPUT to be INPUT (`restore photo.png photo.png --in-place`, or a
//!   folder onto itself): each original is replaced, atomically, by its restoration.

mod common;

use std::cell::RefCell;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use burn::module::Module;
use clap::Parser;
use dppd::data::io::same_file;
use dppd::data::{Image, read_image, write_image};
use dppd::model::TileConfig;
use dppd::restore::{
    FolderEvent, Restoration, RestoreOptions, check_folder_output, check_output, restore_file,
    restore_folder,
};
use dppd::{Error, Result, device_from_name};
use indicatif::{ProgressBar, ProgressStyle};

/// Restores photographs: noise, rain and haze are recognised and removed without being named
/// (the module documentation above says what INPUT and OUTPUT may be).
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// An image (PNG, JPEG, WebP, TIFF, BMP) or a folder of them.
    input: PathBuf,
    /// The restored image (its extension picks the format), or a folder for a folder INPUT.
    output: PathBuf,
    /// Other weights than the built-in default ones: .bpk (this crate's, with their
    /// configuration), a training checkpoint .ckpt, .ckpt/.pth (PromptIR PyTorch) or
    /// .safetensors.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// The official PromptIR constructor arguments (JSON) for --weights.
    #[arg(long, requires = "weights", conflicts_with = "config")]
    promptir_config: Option<PathBuf>,
    /// A dppd RestorerConfig JSON for --weights (without either, a configuration stored in the
    /// file is used, else the official PromptIR default).
    #[arg(long, requires = "weights")]
    config: Option<PathBuf>,
    /// flex (default), ndarray, wgpu, cuda: those enabled at build time.
    #[arg(long, default_value = "flex")]
    device: String,
    /// Average N restorations with prompts sampled from their distributions (DPPD networks).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    samples: u32,
    /// Geometric self-ensemble: average the restorations of N views of the image (mirrored,
    /// flipped, turned, transposed; 1, 2, 4 or 8), N times slower, better.
    #[arg(long, default_value_t = 1, value_parser = common::ensemble_views)]
    ensemble: usize,
    /// Write the per-pixel standard deviation over --samples (N ≥ 2) as an image, scaled so
    /// that the largest deviation is white (the scale is printed).
    #[arg(long)]
    uncertainty: Option<PathBuf>,
    /// Restore in N×N tiles (N a multiple of 8); without it, tiles are chosen automatically
    /// when the image would not fit --memory-budget.
    #[arg(long)]
    tile: Option<usize>,
    /// Pixels over which neighbouring tiles are cross-faded (default N/8).
    #[arg(long, requires = "tile")]
    overlap: Option<usize>,
    /// Compute the attention maps in windows of N×N pixels sharing N/4 (the size of the
    /// training crops: far more haze is removed); 0 takes them over the whole image.
    #[arg(long, default_value_t = 128, value_parser = common::local_window)]
    local_attention: usize,
    /// Restore what the network takes for haze again in N×N tiles cross-faded over N/4 pixels
    /// (128: a little more haze is removed, in 2.5 times the time); 0 (the default) restores
    /// haze like any other image.
    #[arg(long, default_value_t = 0, value_parser = common::haze_tile)]
    haze_tile: usize,
    /// The memory the restoration of one image may take, in MB.
    #[arg(long = "memory-budget", default_value_t = 2048)]
    budget_mb: u64,
    /// Allow OUTPUT to be INPUT (a file or a folder onto itself): each original is replaced,
    /// atomically, by its restoration.
    #[arg(long)]
    in_place: bool,
    /// Restore in full even what the network recognises as clean (by default the change made
    /// to an image is scaled by 1 − p(clean), so a clean photo comes back nearly unchanged).
    #[arg(long)]
    restore_clean: bool,
}

/// A progress bar over one image's tiles on standard error (indicatif: drawn only on a
/// terminal), started afresh for each image.
struct Bar(RefCell<Option<ProgressBar>>);

impl Bar {
    fn draw(&self, done: usize, total: usize) {
        if total < 2 {
            return;
        }
        let mut slot = self.0.borrow_mut();
        let bar = slot.get_or_insert_with(|| {
            let bar = ProgressBar::new(total as u64);
            if let Ok(style) = ProgressStyle::with_template("  [{bar:30}] {pos}/{len} tiles") {
                bar.set_style(style.progress_chars("#>-"));
            }
            bar
        });
        bar.set_position(done as u64);
        if done >= total {
            bar.finish_and_clear();
            *slot = None;
        }
    }
}

/// Prints what happened to one image.
fn report(r: &Restoration, options: &RestoreOptions, seconds: f64) {
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
        let for_haze = r.degradation.as_ref().is_some_and(|d| d.name == "haze");
        let why = if for_haze && options.haze_tiles == Some(t) && options.tiles != Some(t) {
            " (haze: --haze-tile)"
        } else {
            ""
        };
        println!(
            "  tiled: {0}×{0} tiles, overlap {1}{why}",
            t.tile, t.overlap
        );
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
        samples: a.samples as usize,
        in_place: a.in_place,
        keep_clean: !a.restore_clean,
        ensemble: a.ensemble,
        local_attention: common::square(a.local_attention),
        haze_tiles: common::square(a.haze_tile),
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
    if a.uncertainty.is_some() && a.samples < 2 {
        return Err(Error::Config(
            "--uncertainty needs --samples N with N ≥ 2".into(),
        ));
    }
    let t = Instant::now();
    let (model, origin) = common::load_model(
        a.weights.as_deref(),
        a.config.as_deref(),
        a.promptir_config.as_deref(),
        &device,
    )?;
    println!(
        "loaded {origin}: {} parameters, on {} in {:.2} s",
        model.num_params(),
        a.device,
        t.elapsed().as_secs_f64()
    );
    let bar = Bar(RefCell::new(None));
    if !folder {
        let t = Instant::now();
        let r = restore_file(&model, &a.input, &a.output, &options, &device, |d, n| {
            bar.draw(d, n)
        })?;
        report(&r, &options, t.elapsed().as_secs_f64());
        println!("  wrote {}", a.output.display());
        if let (Some(path), Some(std)) = (&a.uncertainty, &r.uncertainty) {
            write_uncertainty(path, std, a.samples as usize)?;
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
            FolderEvent::Tile { done, total } => bar.draw(done, total),
            FolderEvent::Finished { output, result, .. } => match result {
                Ok(r) => {
                    report(r, &options, started.elapsed().as_secs_f64());
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
    match run(Args::parse()) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
