//! Evaluates a model: PSNR and SSIM per task, next to the degraded inputs' own scores, the
//! predicted degradation against the truth (a confusion table, for DPPD networks), as Markdown
//! and CSV, plus a side-by-side picture (degraded | restored | clean) per image.
//!
//! ```text
//! cargo run --release --example evaluate -- --model FILE --data DIR --out DIR \
//!     [--tasks denoise_15,denoise_25,denoise_50,derain,dehaze,clean] [--max-side 1280] [--save-inputs]
//!     [--ensemble 8]
//! ```
//! `--help` lists every option. Writes `OUT/results.md`, `OUT/results.csv`,
//! `OUT/images/TASK/NAME.png`. Every image is restored as `restore` does (whole, or in tiles
//! when it exceeds the default memory budget; what it takes for haze in 128-pixel tiles, as
//! `--haze-tile` says; with `--ensemble N`, as `restore --ensemble N` does). Photographs of
//! `--data` are degraded and stored as 8-bit files would hold them (docs/data.md, "8-bit
//! samples"), so `--save-inputs` writes exactly what the network read.

mod common;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use burn::prelude::*;
use clap::Parser;
use dppd::data::{Entry, RestoreDataset, TaskMix, same_name_pairs, synthetic_entries, write_image};
use dppd::degrade::Task;
use dppd::eval::{benchmark, side_by_side};
use dppd::{Error, Result, device_from_name};

/// Evaluates a model: PSNR and SSIM per task next to the degraded inputs' own scores, the
/// predicted degradation against the truth, and a degraded | restored | clean picture per image.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// A .bpk written by this crate (its configuration inside), a training checkpoint .ckpt,
    /// or PromptIR weights (.ckpt/.pth/.safetensors) with --config or --promptir-config
    /// (default: a configuration stored in the file, else PromptIR's own defaults); a .ckpt
    /// is tried as a training checkpoint first. The same rule as restore's --weights.
    #[arg(long)]
    model: PathBuf,
    /// A RestorerConfig JSON for weights that carry none.
    #[arg(long, conflicts_with = "promptir_config")]
    config: Option<PathBuf>,
    /// The official PromptIR constructor arguments (JSON) for PromptIR weights.
    #[arg(long)]
    promptir_config: Option<PathBuf>,
    /// Clean photographs, each degraded per task with a fixed seed (--seed).
    #[arg(long, required_unless_present = "pairs")]
    data: Option<PathBuf>,
    /// The tasks --data photographs are degraded with.
    #[arg(long, value_delimiter = ',', default_values_t = Task::THREE_TASK.to_vec())]
    tasks: Vec<Task>,
    /// Paired folders with identical file names, TASK:DEGRADED_DIR:CLEAN_DIR (repeatable),
    /// e.g. derain:Rain100L/input:Rain100L/target.
    #[arg(long, value_parser = pair)]
    pairs: Vec<(Task, PathBuf, PathBuf)>,
    /// Where results.md, results.csv and the pictures go.
    #[arg(long)]
    out: PathBuf,
    /// The seed of the test degradations (the same image and seed give the same noise).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Centre-crop every image to at most N×N first (CPU time); otherwise whole images,
    /// centre-cropped to a multiple of 16 as PromptIR's tests.
    #[arg(long, value_parser = side)]
    crop: Option<usize>,
    /// Downscale (area average) --data photographs whose longer side exceeds N before
    /// degrading them, as training's data.max_side does.
    #[arg(long, value_parser = side)]
    max_side: Option<usize>,
    /// Also write each degraded input and its clean target (OUT/inputs/TASK/NAME.png,
    /// OUT/clean/TASK/NAME.png; 8-bit, as the network read them), for scoring other methods on
    /// exactly the same images.
    #[arg(long)]
    save_inputs: bool,
    /// Score the network's own restorations of what it takes for clean too (by default those
    /// images come back unchanged: RestoreOptions::keep_clean, docs/dppd.md).
    #[arg(long)]
    restore_clean: bool,
    /// Geometric self-ensemble: score the average of the restorations of N views of each
    /// image (mirrored, flipped, turned, transposed; 1, 2, 4 or 8; RestoreOptions::ensemble).
    #[arg(long, default_value_t = 1, value_parser = common::ensemble_views)]
    ensemble: usize,
    /// Compute the attention maps in windows of N×N pixels (overlap N/4), as restore does
    /// (RestoreOptions::local_attention); 0 computes them over the whole image.
    #[arg(long, default_value_t = 128, value_parser = common::local_window)]
    local_attention: usize,
    /// Restore what the network takes for haze in N×N tiles cross-faded over N/4 pixels, as
    /// restore --haze-tile N does (RestoreOptions::haze_tiles); 0 (the default) restores haze
    /// like any other image.
    #[arg(long, default_value_t = 0, value_parser = common::haze_tile)]
    haze_tile: usize,
    /// flex (default), ndarray, wgpu, cuda: as built.
    #[arg(long, default_value = "flex")]
    device: String,
}

/// A side length: an integer ≥ 16.
fn side(value: &str) -> std::result::Result<usize, String> {
    value
        .parse::<usize>()
        .ok()
        .filter(|&n| n >= 16)
        .ok_or_else(|| format!("{value:?}: an integer ≥ 16"))
}

/// TASK:DEGRADED_DIR:CLEAN_DIR.
fn pair(s: &str) -> std::result::Result<(Task, PathBuf, PathBuf), String> {
    let p: Vec<&str> = s.splitn(3, ':').collect();
    if p.len() != 3 {
        return Err(format!("{s:?}: expected TASK:DEGRADED:CLEAN"));
    }
    let task = p[0].parse::<Task>().map_err(|e| e.to_string())?;
    Ok((task, p[1].into(), p[2].into()))
}

fn run(a: Args) -> Result<()> {
    let Args {
        model: model_path,
        config,
        promptir_config: promptir,
        data,
        tasks,
        pairs,
        out,
        seed,
        crop,
        max_side,
        save_inputs,
        restore_clean,
        ensemble,
        haze_tile,
        local_attention,
        device,
    } = a;
    let d = device_from_name(&device)?;
    let (net, origin) = common::load_model(
        Some(&model_path),
        config.as_deref(),
        promptir.as_deref(),
        &d,
    )?;
    let net = net.valid();
    eprintln!("loaded {origin}");
    std::fs::create_dir_all(&out).map_err(|source| Error::Io {
        path: out.clone(),
        source,
    })?;

    let mut entries: Vec<Entry> = Vec::new();
    if let Some(dir) = &data {
        entries.extend(synthetic_entries(dir, &TaskMix::uniform(&tasks))?);
    }
    for (task, deg, clean) in &pairs {
        entries.extend(same_name_pairs(
            Path::new("/"),
            &abs(deg)?,
            &abs(clean)?,
            *task,
        )?);
    }
    if entries.is_empty() {
        return Err(Error::Config(
            "no test images: give --data or --pairs".into(),
        ));
    }
    let set = RestoreDataset::test(entries, seed).with_max_side(max_side);
    let options = dppd::restore::RestoreOptions {
        keep_clean: !restore_clean,
        ensemble,
        local_attention: common::square(local_attention),
        haze_tiles: common::square(haze_tile),
        ..Default::default()
    };
    let bench = benchmark(&net, &set, crop, &options, &d, |i, n, r| {
        let s = &r.sample;
        let stem = s.name.split('#').next().unwrap_or(&s.name);
        let stem = Path::new(stem)
            .file_stem()
            .map(|x| x.to_string_lossy().into_owned())
            .unwrap_or_default();
        let file = |kind: &str| -> Result<PathBuf> {
            let p = out
                .join(kind)
                .join(s.task.name())
                .join(format!("{stem}.png"));
            let dir = p.parent().expect("has a parent");
            std::fs::create_dir_all(dir).map_err(|source| Error::Io {
                path: dir.to_path_buf(),
                source,
            })?;
            Ok(p)
        };
        write_image(
            file("images")?,
            &side_by_side(&[&s.degraded, &r.restored, &s.clean], 4),
        )?;
        if save_inputs {
            write_image(file("inputs")?, &s.degraded)?;
            write_image(file("clean")?, &s.clean)?;
        }
        let predicted = r
            .predicted
            .as_ref()
            .map(|p| format!(", seen as {} (p {:.2})", p.name, p.probability))
            .unwrap_or_default();
        eprintln!(
            "[{}/{n}] {} {}: {:.2} dB / {:.4} (input {:.2} dB / {:.4}){predicted}, {:.1} s",
            i + 1,
            s.task,
            stem,
            r.scores.0,
            r.scores.1,
            r.input_scores.0,
            r.input_scores.1,
            r.seconds
        );
        Ok(())
    })?;
    let classification = match bench.confusion.accuracy() {
        Some(a) => {
            let (right, total) = bench.confusion.right_of(false);
            format!(
                "\n## Predicted degradation\n\n{right} of {total} degraded images ({:.1}%) are \
                 assigned to their own family (the clean images are not counted).\n\n{}",
                100.0 * a,
                bench.confusion.to_markdown()
            )
        }
        None if bench.confusion.counts.is_empty() => String::new(),
        None => format!(
            "\n## Predicted degradation\n\n{}",
            bench.confusion.to_markdown()
        ),
    };
    let views = if ensemble > 1 {
        format!("; restored as the mean of {ensemble} flipped and turned views (--ensemble)")
    } else {
        String::new()
    };
    let haze = match haze_tile {
        0 => "images taken for haze restored whole (--haze-tile 0)".to_string(),
        n => format!(
            "images taken for haze restored in {n}×{n} tiles, overlap {} (--haze-tile)",
            n / 4
        ),
    };
    let md = format!(
        "# Evaluation of `{}`\n\nPSNR/SSIM on RGB in [0, 1] (scikit-image's definitions), images \
         centre-cropped to a multiple of 16{}; test seed {seed}{views}; {haze}. \"input\" is the \
         degraded image itself.\n\n{}{classification}",
        model_path.display(),
        crop.map(|n| format!(" after a centre crop to at most {n}×{n}"))
            .unwrap_or_default(),
        bench.table.to_markdown()
    );
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| Error::Io { path: p, source }
    };
    std::fs::write(out.join("results.md"), &md).map_err(io(&out.join("results.md")))?;
    std::fs::write(out.join("results.csv"), bench.table.to_csv())
        .map_err(io(&out.join("results.csv")))?;
    println!("{md}");
    Ok(())
}

fn abs(p: &Path) -> Result<String> {
    std::path::absolute(p)
        .map(|p| p.to_string_lossy().trim_start_matches('/').to_string())
        .map_err(|source| Error::Io {
            path: p.to_path_buf(),
            source,
        })
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
