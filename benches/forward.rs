//! Forward-pass benchmark of the network presets on every enabled backend.
//!
//! ```text
//! cargo bench --bench forward                               # defaults below
//! cargo bench --features ndarray --bench forward -- --backend ndarray --size 128 --runs 3
//! ```
//! Options: `--preset promptir|restormer|dppd|dppd-small` (default promptir), `--backend NAME` (repeatable;
//! default: every enabled CPU backend), `--size N` (repeatable; default 128 and 256),
//! `--runs N` (timed runs after one warm-up; default 5), `--threads` is taken from
//! `RAYON_NUM_THREADS`. Prints min, median and max wall time per configuration.
//!
//! The benchmark calls [`dppd::retain_freed_memory`] first, as the examples do;
//! `--default-malloc` measures with the C allocator's default behaviour instead.
//!
//! `--train-batch N` times training steps instead (forward with sampled prompts, L1 + DPA
//! cross-entropy + PDL KL, backward, AdamW update) on batches of N crops of each size, on the
//! backend's autodiff device: `--preset dppd-small --size 128 --train-batch 4` is one step of
//! the small preset's training. The training nodes keep their intermediate values for the
//! backward pass (burn's default); `--checkpointing` runs with gradient checkpointing instead
//! (`Device::gradient_checkpointing`: recomputed, less memory).
//!
//! `--check` first compares every backend's output with flex's (the same random weights and
//! input, at the first size) and stops with an error if they differ by more than 1e-3: on a
//! GPU it shows that the timed kernels compute the CPU's function (flex itself matches the
//! official PromptIR code, `tests/equivalence.rs`).

use std::time::Instant;

use burn::prelude::*;
use burn::tensor::Distribution;
use dppd::model::RestorerConfig;

fn device(name: &str) -> Device {
    match name {
        #[cfg(feature = "flex")]
        "flex" => Device::flex(),
        #[cfg(feature = "ndarray")]
        #[allow(deprecated)]
        "ndarray" => Device::ndarray(),
        #[cfg(feature = "wgpu")]
        "wgpu" => Device::wgpu(burn::tensor::DeviceKind::DefaultDevice),
        #[cfg(feature = "cuda")]
        "cuda" => Device::cuda(0),
        other => panic!("backend {other} is unknown or not enabled (cargo feature)"),
    }
}

fn main() {
    let default_malloc = std::env::args().any(|a| a == "--default-malloc");
    let checkpointing = std::env::args().any(|a| a == "--checkpointing");
    if !default_malloc {
        dppd::retain_freed_memory();
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut backends = Vec::new();
    let mut sizes = Vec::new();
    let mut runs = 5usize;
    let mut preset = "promptir".to_string();
    let mut check = false;
    let mut train_batch: Option<usize> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().expect("option needs a value").clone();
        match a.as_str() {
            "--backend" => backends.push(val()),
            "--size" => sizes.push(val().parse::<usize>().expect("size")),
            "--runs" => runs = val().parse().expect("runs"),
            "--preset" => preset = val(),
            "--check" => check = true,
            "--default-malloc" | "--checkpointing" => {}
            "--train-batch" => train_batch = Some(val().parse::<usize>().expect("train batch")),
            "--bench" => {}
            other => panic!("unknown option {other}"),
        }
    }
    if backends.is_empty() {
        #[cfg(feature = "flex")]
        backends.push("flex".into());
        #[cfg(feature = "ndarray")]
        backends.push("ndarray".into());
    }
    if sizes.is_empty() {
        sizes = vec![128, 256];
    }
    let config = RestorerConfig::preset(&preset).unwrap_or_else(|e| panic!("{e}"));
    if let Some(batch) = train_batch {
        train_steps(
            &config,
            &preset,
            &backends,
            &sizes,
            batch,
            runs,
            checkpointing,
        );
        return;
    }
    println!("preset {preset}, {runs} timed runs after 1 warm-up, batch 1, f32");
    println!(
        "{:<10} {:>6} {:>10} {:>10} {:>10}",
        "backend", "size", "min s", "median s", "max s"
    );
    // One set of weights for every backend, so that outputs can be compared.
    let cpu = device(if cfg!(feature = "flex") {
        "flex"
    } else {
        "ndarray"
    });
    let cpu_model = config.init(&cpu);
    for b in &backends {
        let device = device(b);
        let model = cpu_model.clone().to_device(&device);
        if check {
            let s = sizes[0];
            let x = Tensor::<4>::random([1, 3, s, s], Distribution::Default, &cpu);
            let reference = cpu_model.forward(x.clone());
            let y = model.forward(Tensor::from_data(x.into_data(), &device));
            let y = Tensor::<4>::from_data(y.into_data(), &cpu);
            let err = (y - reference).abs().max().into_scalar::<f32>();
            println!("check {b} vs flex at {s}²: max |difference| = {err:e}");
            assert!(err <= 1e-3, "{b} differs from flex by {err:e}");
        }
        for &s in &sizes {
            let x = Tensor::<4>::random([1, 3, s, s], Distribution::Default, &device);
            let once = || {
                let t = Instant::now();
                let y = model.forward(x.clone());
                let _ = y.into_data();
                t.elapsed().as_secs_f64()
            };
            once();
            let mut t: Vec<f64> = (0..runs).map(|_| once()).collect();
            t.sort_by(f64::total_cmp);
            println!(
                "{:<10} {:>6} {:>10.3} {:>10.3} {:>10.3}",
                b,
                s,
                t[0],
                t[t.len() / 2],
                t[t.len() - 1]
            );
        }
    }
}

/// Times `runs` training steps (after one warm-up) per backend and size.
fn train_steps(
    config: &RestorerConfig,
    preset: &str,
    backends: &[String],
    sizes: &[usize],
    batch: usize,
    runs: usize,
    checkpointing: bool,
) {
    use burn::optim::{AdamWConfig, GradientsParams};
    use dppd::train::{LossConfig, restoration_loss};
    println!(
        "preset {preset}, training steps of batch {batch}, {runs} timed after 1 warm-up{}",
        if checkpointing {
            ", gradient checkpointing"
        } else {
            ""
        }
    );
    println!(
        "{:<10} {:>6} {:>10} {:>10} {:>10} {:>10}",
        "backend", "size", "min s", "median s", "max s", "images/s"
    );
    for b in backends {
        let ad = if checkpointing {
            device(b).autodiff().gradient_checkpointing()
        } else {
            device(b).autodiff()
        };
        let mut model = config.init(&ad);
        let mut optim = AdamWConfig::new().init();
        for &s in sizes {
            let x = Tensor::<4>::random([batch, 3, s, s], Distribution::Default, &ad);
            let clean = Tensor::<4>::random([batch, 3, s, s], Distribution::Default, &ad);
            let labels = Tensor::<1, Int>::zeros([batch], &ad);
            let mut t = Vec::new();
            for i in 0..=runs {
                let t0 = Instant::now();
                let out = model.forward_with(x.clone(), None);
                let parts = restoration_loss(
                    &out,
                    clean.clone(),
                    Some(labels.clone()),
                    &LossConfig::default(),
                );
                let grads = GradientsParams::from_grads(parts.total.backward(), &model);
                model = optim.step(2e-4, model, grads);
                // wait for the update (lazy backends) by reading one value of the output
                let _ = model
                    .forward_with(x.clone().slice([0..1, 0..3, 0..8, 0..8]), None)
                    .image
                    .into_data();
                if i > 0 {
                    t.push(t0.elapsed().as_secs_f64());
                }
            }
            t.sort_by(f64::total_cmp);
            println!(
                "{:<10} {:>6} {:>10.3} {:>10.3} {:>10.3} {:>10.2}",
                b,
                s,
                t[0],
                t[t.len() / 2],
                t[t.len() - 1],
                batch as f64 / t[t.len() / 2]
            );
        }
    }
}
