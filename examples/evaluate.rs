//! Evaluates a model: PSNR and SSIM per task, next to the degraded inputs' own scores, as
//! Markdown and CSV, plus a side-by-side picture (degraded | restored | clean) per image.
//!
//! ```text
//! cargo run --release --features ndarray --example evaluate -- \
//!     --model FILE --data DIR --out DIR [--tasks denoise_15,denoise_25,denoise_50,derain,dehaze]
//!     [--pairs TASK:DEGRADED_DIR:CLEAN_DIR]... [--seed N] [--crop N] [--max-side N]
//!     [--save-inputs] [--device flex]
//! ```
//! - `--model`: a `.bpk` written by this crate (its configuration inside), a training
//!   checkpoint `.ckpt`, or PromptIR weights (`.ckpt`/`.pth`/`.safetensors`) with `--config
//!   RESTORER_JSON` or `--promptir-config PROMPTIR_JSON` (default: PromptIR's own defaults);
//!   a `.ckpt` is tried as a training checkpoint first;
//! - `--data DIR`: clean photographs, each degraded per task with a fixed seed (`--seed`,
//!   default 0; the same image and seed give the same noise on every run);
//! - `--pairs TASK:DEGRADED_DIR:CLEAN_DIR`: paired folders with identical file names
//!   (repeatable), e.g. `derain:Rain100L/input:Rain100L/target`;
//! - `--crop N`: centre-crop every image to at most N×N first (CPU time); otherwise whole
//!   images, centre-cropped to a multiple of 16 as PromptIR's tests;
//! - `--max-side N`: downscale (area average) `--data` photographs whose longer side exceeds
//!   N before degrading them, as training's `data.max_side` does;
//! - `--save-inputs`: also write each degraded input and its clean target as
//!   `OUT/inputs/TASK/NAME.png` and `OUT/clean/TASK/NAME.png`, for scoring other methods on
//!   exactly the same images.
//!
//! Writes `OUT/results.md`, `OUT/results.csv`, `OUT/images/TASK/NAME.png`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use burn::prelude::*;
use dppd::data::{Entry, RestoreDataset, TaskMix, same_name_pairs, synthetic_entries, write_image};
use dppd::degrade::Task;
use dppd::eval::{benchmark, side_by_side};
use dppd::model::{PromptIrConfig, Restorer, RestorerConfig};
use dppd::train::Checkpoint;
use dppd::{Error, Result, device_from_name};

const USAGE: &str = "usage: evaluate --model FILE [--config JSON | --promptir-config JSON] \
(--data DIR [--tasks T1,T2,..] | --pairs TASK:DEGRADED_DIR:CLEAN_DIR ...) --out DIR \
[--seed N] [--crop N] [--max-side N] [--save-inputs] [--device NAME]";

fn load_model(
    path: &Path,
    config: Option<&Path>,
    promptir: Option<&Path>,
    d: &Device,
) -> Result<Restorer> {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    if ext == "ckpt"
        && let Ok(m) = Checkpoint::load_model(path, d)
    {
        return Ok(m);
    }
    if ext == "bpk" && config.is_none() {
        return Restorer::load(path, d);
    }
    let cfg = match (config, promptir) {
        (Some(c), _) => RestorerConfig::load(c)?,
        (None, Some(p)) => PromptIrConfig::load(p)?.to_restorer()?,
        (None, None) => RestorerConfig::promptir(),
    };
    Restorer::load_weights(&cfg, path, d)
}

/// A side length option's value: an integer ≥ 16.
fn side(value: String, option: &str) -> Result<usize> {
    value
        .parse::<usize>()
        .ok()
        .filter(|&n| n >= 16)
        .ok_or_else(|| Error::Config(format!("{option}: an integer ≥ 16")))
}

fn run() -> Result<()> {
    let mut a = std::env::args().skip(1);
    let (mut model, mut config, mut promptir, mut data, mut out) = (None, None, None, None, None);
    let mut tasks: Vec<Task> = Task::THREE_TASK.to_vec();
    let mut pairs: Vec<(Task, PathBuf, PathBuf)> = Vec::new();
    let (mut seed, mut crop, mut device) = (0u64, None, "flex".to_string());
    let (mut max_side, mut save_inputs) = (None, false);
    while let Some(k) = a.next() {
        let mut v = || {
            a.next()
                .ok_or_else(|| Error::Config(format!("{k} needs a value\n{USAGE}")))
        };
        match k.as_str() {
            "--model" => model = Some(PathBuf::from(v()?)),
            "--config" => config = Some(PathBuf::from(v()?)),
            "--promptir-config" => promptir = Some(PathBuf::from(v()?)),
            "--data" => data = Some(PathBuf::from(v()?)),
            "--out" => out = Some(PathBuf::from(v()?)),
            "--tasks" => {
                tasks = v()?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<Vec<Task>>>()?
            }
            "--pairs" => {
                let s = v()?;
                let p: Vec<&str> = s.splitn(3, ':').collect();
                if p.len() != 3 {
                    return Err(Error::Config(format!(
                        "--pairs {s:?}: expected TASK:DEGRADED:CLEAN"
                    )));
                }
                pairs.push((p[0].parse()?, p[1].into(), p[2].into()));
            }
            "--seed" => {
                seed = v()?
                    .parse()
                    .map_err(|_| Error::Config("--seed: an integer".into()))?
            }
            "--crop" => crop = Some(side(v()?, &k)?),
            "--max-side" => max_side = Some(side(v()?, &k)?),
            "--save-inputs" => save_inputs = true,
            "--device" => device = v()?,
            other => {
                return Err(Error::Config(format!(
                    "unknown argument {other:?}\n{USAGE}"
                )));
            }
        }
    }
    let need = |o: Option<PathBuf>, n: &str| {
        o.ok_or_else(|| Error::Config(format!("{n} is required\n{USAGE}")))
    };
    let (model_path, out) = (need(model, "--model")?, need(out, "--out")?);
    let d = device_from_name(&device)?;
    let net = load_model(&model_path, config.as_deref(), promptir.as_deref(), &d)?.valid();

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
        return Err(Error::Config(format!(
            "no test images: give --data or --pairs\n{USAGE}"
        )));
    }
    let set = RestoreDataset::test(entries, seed).with_max_side(max_side);
    let options = dppd::restore::RestoreOptions::default();
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
    let md = format!(
        "# Evaluation of `{}`\n\nPSNR/SSIM on RGB in [0, 1] (scikit-image's definitions), images \
         centre-cropped to a multiple of 16{}; test seed {seed}. \"input\" is the degraded image \
         itself.\n\n{}{classification}",
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
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
