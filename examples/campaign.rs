//! One stretch of the default-weights training campaign (docs/default-weights.md): trains the
//! built-in network further for a bounded time, evaluates it against the weights it started
//! from on the held-out photographs, and replaces the weights only when it restores better.
//!
//! ```text
//! cargo run --release --example campaign -- --minutes 120 [--device flex|wgpu]
//!     [--config configs/campaign.json] [--weights weights/default.bpk]
//!     [--state weights/campaign.json] [--data data/default] [--runs runs/campaign]
//!     [--rate IMAGES_PER_S] [--steps N] [--batch N] [--lr PEAK]
//!     [--probe 16,32,64,128 [--probe-seconds S]] [--eval-only | --reconsider N | --resume]
//! ```
//! - `--minutes`: wall time of the training; the run stops cleanly at it (checkpoint and model
//!   written), and the evaluation follows. When the training runs slower than planned, its
//!   cool-down starts early so that it still ends complete within the time
//!   (`TrainOptions::fit_cooldown`; the state file records the shortened length);
//! - `--steps`: the stretch's schedule length (warm-up, then cosine to `min_lr`); by default
//!   planned from `--minutes` and the training rate the last stretch of the same network on
//!   the same device and batch measured (0.8 × the last stretch's on that device and batch for
//!   a network not trained yet; or `--rate`), so that the schedule ends inside the time;
//! - `--batch`: the batch size of this stretch (e.g. larger on a GPU); the learning rate is
//!   scaled by `√(batch / configured batch)`;
//! - `--lr`: the stretch's peak learning rate at the configured batch (default: the
//!   configuration's `optimizer.lr`), scaled with `--batch` as above; the state file records
//!   the peak each stretch trained with;
//! - `--probe B1,B2,…`: first train each batch size for `--probe-seconds` (default 60) from the
//!   same weights, on the real data, and run the stretch with the one that trains the most
//!   images per second (median over its steps after the third: start-up and autotuning
//!   excluded);
//! - `--eval-only`: evaluate the current weights and record them in the state file;
//! - `--reconsider N`: decide again, under this build's rule, whether the last stretch (N),
//!   not accepted, replaces the weights (its run folder must still hold its candidate);
//! - `--resume`: continue a stretch interrupted before it was recorded (its process killed,
//!   the session over): the next stretch's run folder from its newest checkpoint, with the
//!   schedule it planned (or `--steps`), for at most `--minutes`; then evaluate and decide
//!   as usual.
//!
//! Each stretch starts from `--weights` (deepened first when the configuration's network has more
//! blocks per level than theirs: `Restorer::grown`) with a fresh optimiser, a seed of its own (the
//! stretch number, so that every stretch sees other crops and degradations) and its own warm-up and
//! decay. With a cool-down in the configuration (`schedule.cooldown`: the rate stays at its peak,
//! then cools down over the stretch's last steps), the weights where the cool-down started are the
//! stretch's *branch*, kept as `RUNS/branch.bpk` and recorded in the state file by hash; the next
//! stretch continues from the branch instead, at the peak rate, so no stretch climbs back from
//! cooled-down weights (a stretch whose branch file is missing or another starts from `--weights`,
//! and says so). When the configuration keeps a moving average of the weights (`ema`), both the
//! average and the optimiser's own weights are evaluated, and the candidate is the one the rule
//! below accepts when only one is, else the one with the higher mean PSNR over the degraded tasks
//! (`choose_average`). The candidate replaces `--weights` when its mean held-out PSNR over the
//! degraded tasks is higher, its mean SSIM over them not lower, and it classifies as many held-out
//! photographs right, clean ones included (`restores_better`). Every stretch, accepted or not, is
//! recorded in the state file with its scores: that file is the campaign's learning curve.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use burn::prelude::*;
use clap::Parser;
use dppd::data::{RestoreDataset, TaskMix, synthetic_entries};
use dppd::degrade::{Degradation, Task};
use dppd::eval::{Confusion, benchmark};
use dppd::model::Restorer;
use dppd::restore::RestoreOptions;
use dppd::train::{ExperimentConfig, RunDir, TrainOptions, train, train_with};
use dppd::{Error, Result, device_from_name, devices_from_names};
use serde::{Deserialize, Serialize};

/// The held-out tasks of the campaign's evaluation.
const EVAL_TASKS: [Task; 6] = [
    Task::Denoise15,
    Task::Denoise25,
    Task::Denoise50,
    Task::Derain,
    Task::Dehaze,
    Task::Clean,
];
/// The evaluation's degradation seed and downscaling (as training's `data.max_side`).
const EVAL_SEED: u64 = 0;
const EVAL_MAX_SIDE: usize = 1280;

/// Held-out scores of one set of weights.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Scores {
    /// FNV-1a 64 of the weights file, hex.
    weights: String,
    /// FNV-1a 64 of the held-out files, hex: scores are compared only on the same data.
    #[serde(default)]
    eval_data: String,
    /// How the held-out photographs were restored (`inference()`): scores are compared only
    /// when restored the same way. Empty in scores recorded before hazy photographs were
    /// restored in tiles.
    #[serde(default)]
    inference: String,
    /// Mean over tasks of the per-task mean PSNR / SSIM.
    mean_psnr: f64,
    mean_ssim: f64,
    /// Per task: [PSNR, SSIM, input PSNR, input SSIM] (an infinite PSNR, that of a clean
    /// input, is written as `null`).
    #[serde(with = "inf_as_null")]
    tasks: BTreeMap<String, [f64; 4]>,
    /// Share of the degraded images assigned to their own family.
    accuracy: Option<f64>,
    confusion: Confusion,
    /// Seconds the evaluation's restorations took.
    seconds: f64,
}

/// One stretch of training.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stretch {
    number: u64,
    /// Unix time the stretch started.
    started: u64,
    device: String,
    /// The stretch's seed, schedule length, steps done and batch size.
    seed: u64,
    steps_planned: u64,
    steps_done: u64,
    batch: usize,
    /// Images (crops) trained on, and the training rate (of its last call when it was
    /// continued with `--resume`).
    images: u64,
    images_per_second: f64,
    /// Whether the time limit ended it before its schedule did.
    time_limited: bool,
    /// The schedule's length after its cool-down was brought forward to end within the time
    /// (`TrainOptions::fit_cooldown`; absent: it ran as planned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    steps_fitted: Option<u64>,
    /// The trained network's parameter count (absent in stretches recorded before it was).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    parameters: Option<u64>,
    /// The peak learning rate the stretch trained with, after batch scaling (absent in
    /// stretches recorded before it was: they trained at the configuration's 4e-4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    peak_lr: Option<f64>,
    /// With a moving average of the weights (`ema` in the configuration): both candidates'
    /// scores. `scores` are then the better one's (higher mean PSNR).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ema: Option<EmaOutcome>,
    /// The candidate's held-out scores, and whether it replaced the weights.
    scores: Scores,
    accepted: bool,
    /// Whether it was accepted later, by `--reconsider` under a revised rule.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    reconsidered: bool,
    /// Training crops seen by the weights in use after this stretch (the learning curve's x).
    images_seen: u64,
    /// The stretch whose branch this one continued (absent: it started from the weights in
    /// use), and the crops its starting weights had seen (absent in stretches recorded before
    /// branches: the weights in use's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    from_branch: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    crops_before: Option<u64>,
}

/// The campaign's branch (`schedule.cooldown`): the weights of the last stretch where its
/// cool-down started, kept in `RUNS/branch.bpk` (not committed), from which the next stretch
/// continues at the peak rate instead of restarting from the cooled-down weights in use.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Branch {
    /// The stretch that wrote it.
    stretch: u64,
    /// FNV-1a 64 of the file, hex: a file that is not this one is not used.
    weights: String,
    /// Training crops it has seen.
    images_seen: u64,
}

/// A stretch's two candidates when it keeps a moving average of the weights: the average
/// (`final.bpk`) and the optimiser's own weights (`final-raw.bpk`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct EmaOutcome {
    decay: f64,
    average: Scores,
    trained: Scores,
    /// Whether the average is the stretch's candidate (it restores better).
    chose_average: bool,
}

/// The state file: the history of the campaign.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    /// Training crops the weights in use have seen, over all accepted stretches.
    images_seen: u64,
    /// The scores of the weights in use.
    current: Option<Scores>,
    stretches: Vec<Stretch>,
    /// The branch the next stretch continues, when the last stretch left one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    branch: Option<Branch>,
}

/// JSON has no infinity: an infinite score is written as `null` and read back as +∞.
mod inf_as_null {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    type Rows = BTreeMap<String, [f64; 4]>;

    pub fn serialize<S: Serializer>(rows: &Rows, s: S) -> Result<S::Ok, S::Error> {
        let out: BTreeMap<&String, [Option<f64>; 4]> = rows
            .iter()
            .map(|(k, v)| (k, v.map(|x| x.is_finite().then_some(x))))
            .collect();
        out.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Rows, D::Error> {
        let raw = BTreeMap::<String, [Option<f64>; 4]>::deserialize(d)?;
        Ok(raw
            .into_iter()
            .map(|(k, v)| (k, v.map(|x| x.unwrap_or(f64::INFINITY))))
            .collect())
    }
}

fn fnv1a_hex(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `bytes` to `path` through a temporary sibling and a rename.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("campaign-tmp");
    std::fs::write(&tmp, bytes).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// A fingerprint of the held-out set: the names and bytes of the folder's files, in order, and
/// how the evaluation degrades and stores them (each task's degradation, the quantization), so
/// that scores of another synthesis are never compared.
fn data_fingerprint(data: &Path) -> Result<String> {
    fingerprint(data, &eval_set(Vec::new()))
}

/// [`data_fingerprint`] of the photographs in `data` synthesised as `set` does.
fn fingerprint(data: &Path, set: &RestoreDataset) -> Result<String> {
    let dir = data.join("zz-heldout");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(io(&dir))?
        .flatten()
        .map(|e| e.path())
        .collect();
    names.sort();
    let mut all = Vec::new();
    for p in names {
        all.extend_from_slice(
            p.file_name()
                .map(|n| n.as_encoded_bytes())
                .unwrap_or_default(),
        );
        all.extend(std::fs::read(&p).map_err(io(&p))?);
    }
    let synthesis: Vec<Degradation> = EVAL_TASKS.iter().map(|t| t.degradation()).collect();
    all.extend(format!("{synthesis:?} {:?}", set.quantization()).as_bytes());
    Ok(fnv1a_hex(&all))
}

/// How the evaluation restores: the network's own restorations (`RestoreOptions::keep_clean`
/// would return the photos it takes for clean unchanged, an infinite PSNR, hiding what the
/// training does there), otherwise as `restore` does by default.
fn eval_options() -> RestoreOptions {
    RestoreOptions {
        keep_clean: false,
        ..RestoreOptions::default()
    }
}

/// What in `options` changes the scores, in words (the state file keeps it with them).
fn inference(options: &RestoreOptions) -> String {
    let attention = options
        .local_attention
        .map(|t| format!("attention in {}² windows, overlap {}", t.tile, t.overlap));
    let haze = options
        .haze_tiles
        .map(|t| format!("haze in {}² tiles, overlap {}", t.tile, t.overlap));
    match (attention, haze) {
        (None, None) => "whole images".into(),
        (Some(a), Some(h)) => format!("{a}; {h}"),
        (Some(one), None) | (None, Some(one)) => one,
    }
}

/// The held-out set of `entries` as the campaign scores it.
fn eval_set(entries: Vec<dppd::data::Entry>) -> RestoreDataset {
    RestoreDataset::test(entries, EVAL_SEED).with_max_side(Some(EVAL_MAX_SIDE))
}

fn evaluate(weights: &Path, data: &Path, device: &Device) -> Result<Scores> {
    let bytes = std::fs::read(weights).map_err(io(weights))?;
    let model = Restorer::load(weights, device)?.valid();
    let entries = synthetic_entries(&data.join("zz-heldout"), &TaskMix::uniform(&EVAL_TASKS))?;
    let set = eval_set(entries);
    let options = eval_options();
    let b = benchmark(&model, &set, None, &options, device, |i, n, r| {
        eprint!(
            "\r  evaluating {}: {}/{n} ({} {:.2} dB)   ",
            weights.display(),
            i + 1,
            r.sample.task,
            r.scores.0
        );
        Ok(())
    })?;
    eprintln!();
    let (mean_psnr, mean_ssim) = b
        .mean()
        .ok_or_else(|| Error::Config("empty evaluation".into()))?;
    Ok(Scores {
        weights: fnv1a_hex(&bytes),
        eval_data: data_fingerprint(data)?,
        inference: inference(&options),
        mean_psnr,
        mean_ssim,
        tasks: b
            .table
            .rows()
            .into_iter()
            .filter(|r| r.0 != "average")
            .map(|(name, _, v)| (name, v))
            .collect(),
        accuracy: b.confusion.accuracy(),
        confusion: b.confusion,
        seconds: b.seconds,
    })
}

/// Where a stretch starts: `(weights file, the stretch whose branch it is, crops they have
/// seen)` — the branch the last stretch left when `branch` holds it (checked by hash), else
/// `weights`, the weights in use (saying why when a branch was recorded).
fn start_of(state: &State, branch: &Path, weights: &Path) -> (PathBuf, Option<u64>, u64) {
    let Some(b) = &state.branch else {
        return (weights.to_path_buf(), None, state.images_seen);
    };
    let why = match std::fs::read(branch) {
        Ok(bytes) if fnv1a_hex(&bytes) == b.weights => {
            return (branch.to_path_buf(), Some(b.stretch), b.images_seen);
        }
        Ok(_) => format!("not the branch stretch {} left", b.stretch),
        Err(e) => e.to_string(),
    };
    eprintln!(
        "{}: {why}; starting from {} (a warm restart from cooled-down weights)",
        branch.display(),
        weights.display()
    );
    (weights.to_path_buf(), None, state.images_seen)
}

/// Trains each batch size of `batches` for `seconds` from `weights` and returns the one with
/// the most images per second (median over its steps after the third) and that rate.
fn probe_batches(
    exp: &ExperimentConfig,
    batches: &[usize],
    seconds: f64,
    weights: &Path,
    data: &Path,
    runs: &Path,
    device_name: &str,
) -> Result<(usize, f64)> {
    let mut best = (0usize, 0.0f64);
    for &b in batches {
        let run_dir = runs.join(format!("probe-{b}"));
        if run_dir.exists() {
            std::fs::remove_dir_all(&run_dir).map_err(io(&run_dir))?;
        }
        let mut e = exp.clone();
        e.batch_size = b;
        e.steps = 1_000_000;
        e.checkpoint_interval = 0;
        let devices = devices_from_names(device_name)?;
        let mut opts = TrainOptions::new(&run_dir, devices[0].clone());
        opts.devices = devices;
        opts.data_root = Some(data.to_path_buf());
        opts.init = Some(weights.to_path_buf());
        opts.time_limit = Some(Duration::from_secs_f64(seconds));
        train(e, &opts)?;
        // the rates of the steps after the third (the first ones include start-up)
        let mut rates: Vec<f64> = RunDir::new(&run_dir)
            .read_train()?
            .iter()
            .skip(3)
            .map(|row| row.images_per_s)
            .collect();
        rates.sort_by(f64::total_cmp);
        let median = rates.get(rates.len() / 2).copied().unwrap_or(0.0);
        eprintln!(
            "probe: batch {b}: {median:.1} images/s over {} steps",
            rates.len()
        );
        if median > best.1 {
            best = (b, median);
        }
    }
    if best.0 == 0 {
        return Err(Error::Training(format!(
            "the probe of batches {batches:?} finished no step beyond the third in {seconds} s"
        )));
    }
    Ok(best)
}

/// Mean PSNR and SSIM over the degraded tasks, the photographs a user restores: the clean
/// photographs' score is the network's own restoration (`eval_options`), which a user does not
/// get for a photograph the network recognises as clean (`keep_clean` returns it unchanged).
fn degraded_means(s: &Scores) -> (f64, f64) {
    let rows: Vec<&[f64; 4]> = s
        .tasks
        .iter()
        .filter(|(t, _)| t.as_str() != "clean")
        .map(|(_, v)| v)
        .collect();
    let n = rows.len().max(1) as f64;
    (
        rows.iter().map(|v| v[0]).sum::<f64>() / n,
        rows.iter().map(|v| v[1]).sum::<f64>() / n,
    )
}

/// The campaign's rule (docs/default-weights.md): `candidate` replaces the weights in use when
/// its mean PSNR over the degraded tasks is higher, its mean SSIM over them not lower, and it
/// classifies as many of the held-out photographs right, clean ones included (those a user
/// gets back unchanged).
fn restores_better(candidate: &Scores, current: &Scores) -> bool {
    let (psnr, ssim) = degraded_means(candidate);
    let (psnr_now, ssim_now) = degraded_means(current);
    psnr > psnr_now
        && ssim >= ssim_now
        && candidate.confusion.right_of(true).0 >= current.confusion.right_of(true).0
}

/// Whether a stretch's moving average (rather than the optimiser's own weights) is its
/// candidate: the one the rule accepts (`restores_better` than the weights in use) when only
/// one is, else the one with the higher mean PSNR over the degraded tasks — the rule's own
/// measure (until stretch 20 the mean over every task, the clean photographs restored by the
/// network alone included, which the rule has not counted since stretch 16).
fn choose_average(average: &Scores, trained: &Scores, current: &Scores) -> bool {
    match (
        restores_better(average, current),
        restores_better(trained, current),
    ) {
        (true, false) => true,
        (false, true) => false,
        _ => degraded_means(average).0 >= degraded_means(trained).0,
    }
}

fn print_scores(label: &str, s: &Scores) {
    let tasks: Vec<String> = s
        .tasks
        .iter()
        .map(|(t, v)| format!("{t} {:.2}/{:.3}", v[0], v[1]))
        .collect();
    eprintln!(
        "{label}: mean {:.3} dB / {:.4}; {}; classified right {}",
        s.mean_psnr,
        s.mean_ssim,
        tasks.join(", "),
        s.accuracy
            .map(|a| format!("{:.1}%", 100.0 * a))
            .unwrap_or_else(|| "-".into())
    );
}

/// One stretch of the default-weights training campaign (docs/default-weights.md).
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Wall time of the training, in minutes (the run stops cleanly at it; the evaluation
    /// follows). Required unless --eval-only or --reconsider.
    #[arg(long, required_unless_present_any = ["eval_only", "reconsider"], value_parser = positive)]
    minutes: Option<f64>,
    /// flex (default), wgpu, wgpu:N, cuda, cuda:N (as built); several, separated by commas
    /// (e.g. cuda:0,cuda:1), train data-parallel (docs/scaling.md).
    #[arg(long, visible_alias = "devices", default_value = "flex")]
    device: String,
    /// The campaign's experiment configuration.
    #[arg(long, default_value = "configs/campaign.json")]
    config: PathBuf,
    /// The weights the stretch replaces when it restores better, and starts from when the last
    /// stretch left no branch (RUNS/branch.bpk).
    #[arg(long, default_value = "weights/default.bpk")]
    weights: PathBuf,
    /// The campaign's state file (its learning curve).
    #[arg(long, default_value = "weights/campaign.json")]
    state: PathBuf,
    /// The photo folder (scripts/default-data.sh).
    #[arg(long, default_value = "data/default")]
    data: PathBuf,
    /// Where the stretch's run folder goes.
    #[arg(long, default_value = "runs/campaign")]
    runs: PathBuf,
    /// The training rate (images/s) to plan the schedule with; default: the last stretch's on
    /// the same device and batch, else 1.
    #[arg(long, value_parser = positive)]
    rate: Option<f64>,
    /// The schedule's length in steps (default: planned from --minutes and the rate).
    #[arg(long)]
    steps: Option<u64>,
    /// The batch size of this stretch (the learning rate is scaled by √(batch / configured)).
    #[arg(long)]
    batch: Option<usize>,
    /// The peak learning rate at the configured batch (default: the configuration's).
    #[arg(long, value_parser = positive)]
    lr: Option<f64>,
    /// Train each of these batch sizes briefly first and keep the fastest (e.g. 16,32,64,128).
    #[arg(long, value_delimiter = ',')]
    probe: Vec<usize>,
    /// Seconds per probed batch size.
    #[arg(long, default_value_t = 60.0, value_parser = positive)]
    probe_seconds: f64,
    /// Only evaluate the current weights and record them in the state file.
    #[arg(long)]
    eval_only: bool,
    /// Decide again, under the rule of this build, whether the last stretch (its number) replaces
    /// the weights in use; its run folder must still hold the candidate it scored.
    #[arg(long, conflicts_with = "eval_only")]
    reconsider: Option<u64>,
    /// Continue the stretch that was interrupted before it was recorded (the process killed,
    /// the session ended): the next stretch's run folder, from its newest checkpoint, with its
    /// own schedule, for at most --minutes (the cool-down brought forward if need be); then
    /// evaluate and decide as usual.
    /// With --steps, the schedule gets that length instead (a resumed run may change only
    /// its length).
    #[arg(long, conflicts_with_all = ["eval_only", "reconsider", "probe", "batch", "lr", "rate"])]
    resume: bool,
}

fn positive(s: &str) -> std::result::Result<f64, String> {
    s.parse::<f64>()
        .ok()
        .filter(|x| *x > 0.0 && x.is_finite())
        .ok_or_else(|| format!("{s:?} is not a positive number"))
}

fn run(a: Args) -> Result<()> {
    let Args {
        minutes,
        device: device_name,
        config,
        weights,
        state: state_path,
        data,
        runs,
        mut rate,
        steps,
        mut batch,
        lr,
        probe,
        probe_seconds,
        eval_only,
        reconsider,
        resume,
    } = a;
    if probe.contains(&0) || batch == Some(0) {
        return Err(Error::Config("batch sizes must be positive".into()));
    }
    let devices = devices_from_names(&device_name)?;
    // evaluation on the first device when it is a GPU, else on flex
    let first = device_name.split(',').next().unwrap_or("flex").trim();
    let eval_device = if first.starts_with("wgpu") || first.starts_with("cuda") {
        devices[0].clone()
    } else {
        device_from_name("flex")?
    };
    let mut state: State = match std::fs::read_to_string(&state_path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| {
            Error::Config(format!(
                "{}: not a campaign state: {e}",
                state_path.display()
            ))
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::Config(format!(
                "{} not found: the campaign's state file records the images the weights have \
                 seen and every stretch (docs/default-weights.md)",
                state_path.display()
            )));
        }
        Err(e) => return Err(io(&state_path)(e)),
    };
    let save_state = |state: &State| -> Result<()> {
        let json = serde_json::to_string_pretty(state).map_err(|e| Error::Config(e.to_string()))?;
        write_atomic(&state_path, (json + "\n").as_bytes())
    };

    // the scores of the weights in use (kept in the state while the file is unchanged)
    let bytes = std::fs::read(&weights).map_err(io(&weights))?;
    let current = match state.current.clone() {
        Some(s)
            if s.weights == fnv1a_hex(&bytes)
                && s.eval_data == data_fingerprint(&data)?
                && s.inference == inference(&eval_options())
                && !eval_only =>
        {
            s
        }
        _ => {
            let s = evaluate(&weights, &data, &eval_device)?;
            state.current = Some(s.clone());
            save_state(&state)?;
            s
        }
    };
    print_scores("current weights", &current);
    if eval_only {
        return Ok(());
    }
    if let Some(n) = reconsider {
        let last = state.stretches.last().map_or(0, |s| s.number);
        let Some(mut stretch) = state.stretches.last().filter(|s| s.number == n).cloned() else {
            return Err(Error::Config(format!(
                "--reconsider {n}: only the last stretch ({last}) can be reconsidered: the \
                 weights in use must be those it was compared with"
            )));
        };
        if stretch.accepted {
            return Err(Error::Config(format!("stretch {n} was accepted already")));
        }
        if stretch.scores.eval_data != current.eval_data
            || stretch.scores.inference != current.inference
        {
            return Err(Error::Config(format!(
                "stretch {n} was scored on other held-out files or restored otherwise than the \
                 weights in use: its scores cannot be compared"
            )));
        }
        // the candidate under this build's rule: with a moving average, chosen again
        if let Some(e) = &mut stretch.ema {
            e.chose_average = choose_average(&e.average, &e.trained, &current);
            stretch.scores = if e.chose_average {
                e.average.clone()
            } else {
                e.trained.clone()
            };
        }
        let file = match &stretch.ema {
            Some(e) if !e.chose_average => "final-raw.bpk",
            _ => "final.bpk",
        };
        let path = runs.join(format!("stretch-{n:03}")).join(file);
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        if fnv1a_hex(&bytes) != stretch.scores.weights {
            return Err(Error::Config(format!(
                "{} is not the weights stretch {n} scored",
                path.display()
            )));
        }
        print_scores(&format!("stretch {n}"), &stretch.scores);
        let accepted = restores_better(&stretch.scores, &current);
        if accepted {
            write_atomic(&weights, &bytes)?;
            state.images_seen = stretch.crops_before.unwrap_or(state.images_seen) + stretch.images;
            state.current = Some(stretch.scores.clone());
            let images_seen = state.images_seen;
            if let Some(last) = state.stretches.last_mut() {
                last.accepted = true;
                last.reconsidered = true;
                last.images_seen = images_seen;
                last.ema = stretch.ema.clone();
                last.scores = stretch.scores.clone();
            }
            save_state(&state)?;
        }
        eprintln!(
            "{}: stretch {n} {}",
            state_path.display(),
            if accepted {
                format!(
                    "accepted on reconsideration: {} replaced",
                    weights.display()
                )
            } else {
                "still not accepted: the weights in use restore better".to_string()
            }
        );
        return Ok(());
    }
    let minutes = minutes.ok_or_else(|| Error::Config("--minutes is required".into()))?;

    // the stretch's experiment: a new one, or the interrupted one's (`--resume`)
    let number = state.stretches.len() as u64 + 1;
    let run_dir = runs.join(format!("stretch-{number:03}"));
    let mut exp = if resume {
        let run = RunDir::new(&run_dir);
        let file = run.config();
        if !file.exists() || run.list_checkpoints().is_empty() {
            return Err(Error::Config(format!(
                "--resume: no interrupted stretch {number} to continue ({} holds no run \
                 configuration and checkpoint; the state file records {} stretches)",
                run_dir.display(),
                number - 1
            )));
        }
        let mut exp = ExperimentConfig::load(&file)?;
        if let Some(n) = steps {
            exp.steps = n;
        }
        exp
    } else {
        ExperimentConfig::load(&config)?
    };
    exp.seed = number;
    if let Some(lr) = lr {
        exp.optimizer.lr = lr;
    }
    let configured_batch = exp.batch_size;
    let mut minutes = minutes;
    // where the stretch starts: the last stretch's branch when it left one, else the weights
    let branch_path = runs.join("branch.bpk");
    let (init, from_branch, crops_before) = start_of(&state, &branch_path, &weights);
    if !probe.is_empty() {
        let started = std::time::Instant::now();
        let (best, best_rate) = probe_batches(
            &exp,
            &probe,
            probe_seconds,
            &init,
            &data,
            &runs,
            &device_name,
        )?;
        eprintln!("probe: batch {best} trains fastest ({best_rate:.1} images/s)");
        batch = Some(best);
        rate = Some(best_rate);
        minutes -= started.elapsed().as_secs_f64() / 60.0;
        if minutes <= 1.0 {
            return Err(Error::Config("the probe used up --minutes".into()));
        }
    }
    if let Some(b) = batch {
        exp.batch_size = b;
        exp.optimizer.lr *= (b as f64 / configured_batch as f64).sqrt();
    }
    // the network trained, told apart by its parameter count (a deeper preset trains slower)
    let parameters = exp
        .model
        .resolve()?
        .init(&device_from_name("flex")?)
        .num_params() as u64;
    let rate = rate.unwrap_or_else(|| {
        let alike = |s: &&Stretch| s.device == device_name && s.batch == exp.batch_size;
        let same = state
            .stretches
            .iter()
            .rev()
            .filter(alike)
            .find(|s| s.parameters == Some(parameters));
        match (same, state.stretches.iter().rev().find(alike)) {
            (Some(s), _) => s.images_per_second,
            (None, Some(s)) => {
                eprintln!(
                    "no stretch of this network ({parameters} parameters) yet: planning at 0.8 \
                     × the last stretch's rate on {device_name} (--rate overrides)"
                );
                0.8 * s.images_per_second
            }
            (None, None) => 1.0,
        }
    });
    if !resume {
        exp.steps = steps.unwrap_or_else(|| {
            // 90% of the time at the expected rate, less the first validation's and set-up's
            // share
            let planned = (minutes * 60.0 * 0.9 * rate / exp.batch_size as f64) as u64;
            planned.max(exp.schedule.warmup_steps + 10)
        });
        if run_dir.exists() {
            std::fs::remove_dir_all(&run_dir).map_err(io(&run_dir))?;
        }
    }
    eprintln!(
        "stretch {number}{}: {} steps of {}{}, peak lr {:e}{}, seed {number}, at most {minutes} \
         min on {device_name}, from {}{} ({crops_before} crops seen)",
        if resume { " continued" } else { "" },
        exp.steps,
        exp.batch_size,
        if resume {
            String::new()
        } else {
            format!(" (planned at {rate:.2} images/s)")
        },
        exp.optimizer.lr,
        exp.cooldown_start()
            .map(|b| format!(" (cooling down after step {b})"))
            .unwrap_or_default(),
        init.display(),
        from_branch
            .map(|n| format!(", the branch of stretch {n}"))
            .unwrap_or_default()
    );
    // when the stretch started: now, or when the interrupted one created its run folder
    let begun = resume
        .then(|| std::fs::metadata(&run_dir).and_then(|m| m.created()).ok())
        .flatten()
        .unwrap_or_else(SystemTime::now);
    let started = begun
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut opts = TrainOptions::new(&run_dir, devices[0].clone());
    opts.devices = devices.clone();
    opts.data_root = Some(data.clone());
    opts.init = Some(init.clone());
    opts.resume = resume;
    opts.time_limit = Some(Duration::from_secs_f64(minutes * 60.0));
    opts.fit_cooldown = true;
    let mut reporter = common::TrainReporter::new(exp.log_interval);
    let summary = train_with(exp.clone(), &opts, |e| reporter.event(e));
    reporter.finish();
    let summary = summary?;
    let mut candidate_path = run_dir.join("final.bpk");
    let mut candidate = evaluate(&candidate_path, &data, &eval_device)?;
    let mut ema = None;
    if let Some(e) = exp.ema {
        // the moving average is final.bpk; the optimiser's weights are evaluated too, and the
        // better of the two is the stretch's candidate
        print_scores("average", &candidate);
        let trained_path = run_dir.join("final-raw.bpk");
        let trained = evaluate(&trained_path, &data, &eval_device)?;
        print_scores("trained", &trained);
        let chose_average = choose_average(&candidate, &trained, &current);
        ema = Some(EmaOutcome {
            decay: e.decay,
            average: candidate.clone(),
            trained: trained.clone(),
            chose_average,
        });
        if !chose_average {
            (candidate_path, candidate) = (trained_path, trained);
        }
    }
    print_scores("candidate", &candidate);
    let accepted = restores_better(&candidate, &current);
    // every step of the run, those before an interruption included
    let images = summary.step * exp.batch_size as u64;
    if accepted {
        let bytes = std::fs::read(&candidate_path).map_err(io(&candidate_path))?;
        write_atomic(&weights, &bytes)?;
        state.images_seen = crops_before + images;
        state.current = Some(candidate.clone());
    }
    // the branch the next stretch continues: this stretch's, or none (a stretch without a
    // cool-down leaves none, and the one before is then behind the weights in use)
    let run_branch = RunDir::new(&run_dir).branch_model();
    state.branch = if run_branch.exists() {
        let bytes = std::fs::read(&run_branch).map_err(io(&run_branch))?;
        write_atomic(&branch_path, &bytes)?;
        let run = ExperimentConfig {
            steps: summary.steps,
            ..exp.clone()
        };
        let steps = run
            .cooldown_start()
            .map_or(summary.step, |b| b.min(summary.step));
        Some(Branch {
            stretch: number,
            weights: fnv1a_hex(&bytes),
            images_seen: crops_before + steps * exp.batch_size as u64,
        })
    } else {
        None
    };
    state.stretches.push(Stretch {
        number,
        started,
        device: device_name,
        seed: exp.seed,
        steps_planned: exp.steps,
        steps_done: summary.step,
        batch: exp.batch_size,
        images,
        images_per_second: summary.images_per_second,
        time_limited: summary.time_limited,
        steps_fitted: (summary.steps != exp.steps).then_some(summary.steps),
        parameters: Some(parameters),
        peak_lr: Some(exp.optimizer.lr),
        ema,
        scores: candidate,
        accepted,
        reconsidered: false,
        images_seen: state.images_seen,
        from_branch,
        crops_before: Some(crops_before),
    });
    save_state(&state)?;
    eprintln!(
        "{}: stretch {number} {} ({} images at {:.2} images/s; the weights in use have seen {})",
        state_path.display(),
        if accepted {
            format!("accepted: {} replaced", weights.display())
        } else {
            "not accepted: the weights in use restore better".to_string()
        },
        images,
        summary.images_per_second,
        state.images_seen
    );
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Scores with `(task, PSNR, SSIM)` rows, the clean photographs taken for clean
    /// `clean_right` times of 8 and every degraded one right.
    fn scores(rows: &[(&str, f64, f64)], clean_right: usize) -> Scores {
        let mut confusion = Confusion::default();
        for _ in 0..clean_right {
            confusion.add("clean", "clean");
        }
        for _ in clean_right..8 {
            confusion.add("clean", "haze");
        }
        confusion.add("noise", "noise");
        Scores {
            weights: String::new(),
            eval_data: String::new(),
            inference: String::new(),
            mean_psnr: rows.iter().map(|r| r.1).sum::<f64>() / rows.len() as f64,
            mean_ssim: rows.iter().map(|r| r.2).sum::<f64>() / rows.len() as f64,
            tasks: rows
                .iter()
                .map(|&(t, p, s)| (t.to_string(), [p, s, 0.0, 0.0]))
                .collect(),
            accuracy: confusion.accuracy(),
            confusion,
            seconds: 0.0,
        }
    }

    const NOW: [(&str, f64, f64); 3] = [
        ("denoise_25", 31.0, 0.82),
        ("dehaze", 18.5, 0.85),
        ("clean", 32.5, 0.98),
    ];

    #[test]
    fn the_network_alone_on_clean_photographs_does_not_decide() {
        let current = scores(&NOW, 8);
        let (psnr, ssim) = degraded_means(&current);
        assert!((psnr - 24.75).abs() < 1e-12 && (ssim - 0.835).abs() < 1e-12);
        // better on the degraded tasks, far worse on clean photographs restored by the
        // network alone (the mean over all three falls): accepted
        let candidate = scores(
            &[
                ("denoise_25", 31.2, 0.83),
                ("dehaze", 18.4, 0.85),
                ("clean", 29.0, 0.97),
            ],
            8,
        );
        assert!(candidate.mean_psnr < current.mean_psnr);
        assert!(restores_better(&candidate, &current));
        // the same, but one clean photograph fewer recognised: refused
        let fewer = scores(
            &[
                ("denoise_25", 31.2, 0.83),
                ("dehaze", 18.4, 0.85),
                ("clean", 29.0, 0.97),
            ],
            7,
        );
        assert!(!restores_better(&fewer, &current));
    }

    #[test]
    fn a_stretch_continues_the_recorded_branch_and_only_that() {
        let dir = std::env::temp_dir().join(format!("dppd-campaign-branch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (branch, weights) = (dir.join("branch.bpk"), dir.join("default.bpk"));
        let mut state = State {
            images_seen: 1000,
            current: None,
            stretches: Vec::new(),
            branch: None,
        };
        // no branch recorded: the weights in use
        assert_eq!(
            start_of(&state, &branch, &weights),
            (weights.clone(), None, 1000)
        );
        std::fs::write(&branch, b"branch of stretch 4").unwrap();
        state.branch = Some(Branch {
            stretch: 4,
            weights: fnv1a_hex(b"branch of stretch 4"),
            images_seen: 1800,
        });
        assert_eq!(
            start_of(&state, &branch, &weights),
            (branch.clone(), Some(4), 1800)
        );
        // another file there, or none: the weights in use
        std::fs::write(&branch, b"something else").unwrap();
        assert_eq!(
            start_of(&state, &branch, &weights),
            (weights.clone(), None, 1000)
        );
        std::fs::remove_file(&branch).unwrap();
        assert_eq!(
            start_of(&state, &branch, &weights),
            (weights.clone(), None, 1000)
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A tiny campaign in `dir`: two training photographs and one held-out one (64×56), the
    /// small preset trained on 32² crops in batches of 2 with a moving average and a
    /// cool-down, its initial weights, and an empty state file. Returns the arguments every
    /// call passes (`--config`, `--weights`, `--state`, `--data`, `--runs`).
    fn tiny_campaign(dir: &Path) -> Vec<String> {
        use dppd::data::{Image, write_image};
        for (k, rel) in ["train/p0.png", "train/p1.png", "zz-heldout/h0.png"]
            .iter()
            .enumerate()
        {
            let (w, h) = (64, 56);
            let data: Vec<f32> = (0..3 * w * h)
                .map(|i| {
                    let (c, y, x) = (i / (w * h), i / w % h, i % w);
                    ((x * (k + 2) + y * 3 + c * 40) % 64) as f32 / 80.0
                        + 0.1 * ((x / 8 + y / 8 + k) % 2) as f32
                })
                .collect();
            let path = dir.join("data").join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            write_image(&path, &Image::from_planar(w, h, data).unwrap()).unwrap();
        }
        let config = dir.join("campaign.json");
        std::fs::write(
            &config,
            r#"{"model": {"preset": "dppd-small", "degradations": ["noise", "rain", "haze", "clean"]},
                "data": {"tasks": ["denoise_25", "derain", "dehaze", "clean"], "val_holdout": 1,
                         "val_patch": 32, "val_crops": 1, "workers": 1},
                "schedule": {"warmup_steps": 1, "cooldown": 0.5}, "ema": {"decay": 0.9},
                "steps": 4, "batch_size": 2, "patch_size": 32, "val_interval": 0,
                "checkpoint_interval": 2, "keep_last": 1, "log_interval": 100}"#,
        )
        .unwrap();
        let exp = ExperimentConfig::load(&config).unwrap();
        let weights = dir.join("default.bpk");
        exp.model
            .resolve()
            .unwrap()
            .init(&device_from_name("flex").unwrap())
            .save(&weights)
            .unwrap();
        let state = dir.join("state.json");
        std::fs::write(
            &state,
            r#"{"images_seen": 0, "current": null, "stretches": [], "branch": null}"#,
        )
        .unwrap();
        [
            ("--config", config),
            ("--weights", weights),
            ("--state", state),
            ("--data", dir.join("data")),
            ("--runs", dir.join("runs")),
        ]
        .into_iter()
        .flat_map(|(k, v)| [k.to_string(), v.display().to_string()])
        .collect()
    }

    fn campaign(common: &[String], more: &[&str]) -> Result<()> {
        let args = std::iter::once("campaign")
            .chain(common.iter().map(String::as_str))
            .chain(more.iter().copied());
        run(Args::parse_from(args))
    }

    fn read_state(dir: &Path) -> State {
        serde_json::from_str(&std::fs::read_to_string(dir.join("state.json")).unwrap()).unwrap()
    }

    /// The path a session takes when it ends mid-stretch: the stretch's run folder holds
    /// checkpoints, the state file does not know the stretch; `--resume` continues it from its
    /// newest checkpoint (here with a longer schedule), and records it once, with all its
    /// steps.
    #[test]
    fn an_interrupted_stretch_is_resumed_and_recorded_once() {
        let dir = std::env::temp_dir().join(format!("dppd-campaign-resume-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let common = tiny_campaign(&dir);
        // nothing to resume yet
        let err = campaign(&common, &["--resume", "--minutes", "5"]).unwrap_err();
        assert!(
            err.to_string().contains("no interrupted stretch 1"),
            "{err}"
        );

        // stretch 1, 4 steps; then the session "ends" before it is recorded: the state file
        // and the weights as they were before it
        let (state_before, weights_before) = (
            std::fs::read(dir.join("state.json")).unwrap(),
            std::fs::read(dir.join("default.bpk")).unwrap(),
        );
        campaign(&common, &["--minutes", "5", "--steps", "4"]).unwrap();
        let run = dir.join("runs/stretch-001");
        let kept: Vec<u64> = RunDir::new(&run)
            .list_checkpoints()
            .into_iter()
            .map(|c| c.0)
            .collect();
        assert_eq!(kept, [4], "the newest checkpoint only (keep_last 1)");
        std::fs::write(dir.join("state.json"), &state_before).unwrap();
        std::fs::write(dir.join("default.bpk"), &weights_before).unwrap();

        campaign(&common, &["--resume", "--steps", "6", "--minutes", "5"]).unwrap();
        let state = read_state(&dir);
        assert_eq!(state.stretches.len(), 1, "recorded once");
        let s = &state.stretches[0];
        assert_eq!((s.number, s.steps_planned, s.steps_done), (1, 6, 6));
        assert_eq!(
            s.images, 12,
            "all its steps, those before the interruption too"
        );
        assert_eq!(s.crops_before, Some(0));
        let expected_seen = if s.accepted { 12 } else { 0 };
        assert_eq!(
            (s.images_seen, state.images_seen),
            (expected_seen, expected_seen)
        );
        // the training log goes on from step 4: no step logged twice, none restarted at 1
        let csv = std::fs::read_to_string(run.join("train.csv")).unwrap();
        let steps: Vec<u64> = csv
            .lines()
            .skip(1)
            .filter_map(|l| l.split(',').next()?.parse().ok())
            .collect();
        assert_eq!(steps, (1..=6).collect::<Vec<_>>(), "{csv}");
        // the stretch is recorded now: there is nothing left to resume
        let err = campaign(&common, &["--resume", "--minutes", "5"]).unwrap_err();
        assert!(
            err.to_string().contains("no interrupted stretch 2"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_held_out_fingerprint_covers_the_files_and_the_synthesis() {
        use dppd::degrade::Quantization;
        let dir = std::env::temp_dir().join(format!("dppd-campaign-print-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("zz-heldout")).unwrap();
        std::fs::write(dir.join("zz-heldout/a.png"), b"photo a").unwrap();
        let eight_bit = eval_set(Vec::new());
        let continuous = eval_set(Vec::new()).with_quantization(Quantization::None);
        let first = fingerprint(&dir, &eight_bit).unwrap();
        assert_eq!(
            first,
            data_fingerprint(&dir).unwrap(),
            "the evaluation's set"
        );
        assert_eq!(first, fingerprint(&dir, &eight_bit).unwrap(), "stable");
        assert_ne!(
            first,
            fingerprint(&dir, &continuous).unwrap(),
            "another synthesis"
        );
        std::fs::write(dir.join("zz-heldout/a.png"), b"photo b").unwrap();
        assert_ne!(
            first,
            fingerprint(&dir, &eight_bit).unwrap(),
            "another file"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_candidate_is_chosen_by_the_rules_measure() {
        let current = scores(&NOW, 8);
        // stretch 20's case: the optimiser's weights higher over every task (their clean
        // score), the average higher over the degraded tasks and the only one accepted
        let average = scores(
            &[
                ("denoise_25", 31.0, 0.83),
                ("dehaze", 19.3, 0.86),
                ("clean", 28.0, 0.96),
            ],
            8,
        );
        let trained = scores(
            &[
                ("denoise_25", 31.1, 0.82),
                ("dehaze", 18.5, 0.84),
                ("clean", 36.0, 0.98),
            ],
            8,
        );
        assert!(trained.mean_psnr > average.mean_psnr);
        assert!(restores_better(&average, &current) && !restores_better(&trained, &current));
        assert!(choose_average(&average, &trained, &current));
        assert!(!choose_average(&trained, &average, &current));
        // neither accepted: the higher mean over the degraded tasks
        let worse = scores(&[("denoise_25", 30.0, 0.80), ("dehaze", 18.0, 0.80)], 8);
        let worst = scores(&[("denoise_25", 29.0, 0.80), ("dehaze", 18.0, 0.80)], 8);
        assert!(choose_average(&worse, &worst, &current));
        assert!(!choose_average(&worst, &worse, &current));
    }

    #[test]
    fn the_degraded_tasks_must_gain_psnr_and_keep_ssim() {
        let current = scores(&NOW, 8);
        let same = scores(&NOW, 8);
        assert!(!restores_better(&same, &current), "not higher");
        let lower_ssim = scores(
            &[
                ("denoise_25", 31.3, 0.80),
                ("dehaze", 18.5, 0.85),
                ("clean", 40.0, 0.99),
            ],
            8,
        );
        assert!(!restores_better(&lower_ssim, &current));
        let lower_psnr = scores(
            &[
                ("denoise_25", 31.2, 0.83),
                ("dehaze", 18.2, 0.86),
                ("clean", 40.0, 0.99),
            ],
            8,
        );
        assert!(!restores_better(&lower_psnr, &current));
    }
}
