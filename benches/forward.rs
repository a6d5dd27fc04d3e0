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
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut backends = Vec::new();
    let mut sizes = Vec::new();
    let mut runs = 5usize;
    let mut preset = "promptir".to_string();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().expect("option needs a value").clone();
        match a.as_str() {
            "--backend" => backends.push(val()),
            "--size" => sizes.push(val().parse::<usize>().expect("size")),
            "--runs" => runs = val().parse().expect("runs"),
            "--preset" => preset = val(),
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
    println!("preset {preset}, {runs} timed runs after 1 warm-up, batch 1, f32");
    println!(
        "{:<10} {:>6} {:>10} {:>10} {:>10}",
        "backend", "size", "min s", "median s", "max s"
    );
    for b in &backends {
        let device = device(b);
        let model = config.init(&device);
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
