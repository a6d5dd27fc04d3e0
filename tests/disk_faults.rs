//! Failures of the machine: a disk that fills up in the middle of a write, and two restores
//! writing one output at the same time.
//!
//! A full disk is simulated by a file-size limit (`RLIMIT_FSIZE`, `ulimit -f`) on a child
//! process — this test binary started again on its ignored test `child_writes_under_a_limit`,
//! with `SIGXFSZ` ignored so that a write past the limit fails with `EFBIG` as a write to a
//! full disk fails with `ENOSPC`.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use burn::prelude::*;
use common::train::temp_dir;
use dppd::data::{Image, read_image, write_image};
use dppd::model::{Restorer, RestorerConfig};
use dppd::restore::{RestoreOptions, restore_file};
use dppd::train::{ExperimentConfig, TrainState, checkpoint};

const DIR_ENV: &str = "DPPD_FSIZE_CHILD_DIR";
/// The file-size limit of the child, in bytes.
const LIMIT: u64 = 64 << 10;

/// Temporary files (`.NAME.tmp-PID-N`) left in `dir`.
fn leftovers(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect()
}

/// Noise: an image whose PNG cannot be compressed below its size.
fn noise(w: usize, h: usize, seed: u32) -> Image {
    let mut s = seed | 1;
    let data = (0..3 * w * h)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s % 256) as f32 / 255.0
        })
        .collect();
    Image::from_planar(w, h, data).unwrap()
}

fn tiny_state(network: RestorerConfig) -> (TrainState, ExperimentConfig) {
    let experiment: ExperimentConfig = serde_json::from_str(
        r#"{"model": "dppd-small", "steps": 1, "batch_size": 1, "patch_size": 16}"#,
    )
    .unwrap();
    (
        TrainState {
            step: 1,
            experiment: experiment.clone(),
            network,
            best: None,
            train_samples: 1,
            val_samples: 1,
        },
        experiment,
    )
}

/// The files the child writes over, each with a small previous version that fits the limit.
fn targets(dir: &Path) -> Vec<PathBuf> {
    [
        "photo.png",
        "photo.jpg",
        "model.bpk",
        "weights.safetensors",
        "ckpt-00000001.ckpt",
    ]
    .iter()
    .map(|n| dir.join(n))
    .collect()
}

/// The child: every write goes past the file-size limit and must fail cleanly.
#[test]
#[ignore = "started by a_write_that_fails_midway_keeps_the_previous_file in a child process"]
fn child_writes_under_a_limit() {
    let Ok(dir) = std::env::var(DIR_ENV) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let t = targets(&dir);
    let device = Device::flex();
    let model = RestorerConfig::dppd_small().init(&device);
    let big = noise(256, 256, 7); // ~200 kB as PNG, ~100 kB as JPEG
    let mut errors = vec![
        write_image(&t[0], &big).unwrap_err(),
        write_image(&t[1], &big).unwrap_err(),
        model.save(&t[2]).unwrap_err(), // 3.5 MB
        model.save_safetensors(&t[3]).unwrap_err(),
    ];
    let (state, experiment) = tiny_state(model.config().clone());
    let optimizer = experiment.optimizer.adamw().init();
    errors.push(checkpoint::save(&t[4], &state, &model, &optimizer, None).unwrap_err());
    // a restoration whose output does not fit: the earlier output survives
    let input = dir.join("input.png");
    let restored = restore_file(
        &model,
        &input,
        &t[0],
        &RestoreOptions::default(),
        &device,
        |_, _| {},
    );
    errors.push(restored.expect_err("the output cannot fit"));
    for (e, path) in errors.iter().zip(t.iter().chain([&t[0]])) {
        let msg = e.to_string();
        let name = path.file_name().unwrap().to_string_lossy();
        assert!(msg.contains(&*name), "the error names the file: {msg}");
        assert!(
            msg.contains("too large") || msg.contains("No space") || msg.contains("EFBIG"),
            "the error says why: {msg}"
        );
        println!("{msg}");
    }
}

#[test]
fn a_write_that_fails_midway_keeps_the_previous_file() {
    let dir = temp_dir("fsize");
    // earlier versions of every output, small enough for the limit
    let t = targets(&dir);
    let device = Device::flex();
    write_image(&t[0], &noise(8, 8, 1)).unwrap();
    write_image(&t[1], &noise(8, 8, 2)).unwrap();
    for p in &t[2..] {
        fs::write(p, format!("an earlier {}", p.display())).unwrap();
    }
    write_image(dir.join("input.png"), &noise(256, 256, 3)).unwrap();
    let before: Vec<Vec<u8>> = t.iter().map(|p| fs::read(p).unwrap()).collect();
    assert!(before.iter().all(|b| (b.len() as u64) < LIMIT));

    // `ulimit -f` counts 512- or 1024-byte blocks depending on the shell: 64 kB either way
    // is between the earlier files and the new ones
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "trap '' XFSZ; ulimit -f {} && exec \"$0\" child_writes_under_a_limit --exact \
             --ignored --nocapture",
            LIMIT / 1024
        ))
        .arg(&exe)
        .env(DIR_ENV, &dir)
        .output()
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "child failed:\n{log}");
    assert!(log.contains("1 passed"), "the child ran its checks:\n{log}");
    println!("{log}");
    for (p, b) in t.iter().zip(&before) {
        assert_eq!(&fs::read(p).unwrap(), b, "{} changed", p.display());
    }
    assert!(leftovers(&dir).is_empty(), "{:?}", leftovers(&dir));
    // the earlier images still read
    assert_eq!(read_image(&t[0]).unwrap().width, 8);
    let _ = device;
    fs::remove_dir_all(&dir).ok();
}

#[test]
fn two_restores_writing_one_output_at_once_leave_one_complete_image() {
    let dir = temp_dir("race");
    let device = Device::flex();
    let model: Restorer = RestorerConfig::dppd_small().init(&device);
    let (a, b) = (dir.join("a.png"), dir.join("b.png"));
    write_image(&a, &noise(96, 64, 11)).unwrap();
    write_image(&b, &Image::filled(96, 64, [0.2, 0.5, 0.8])).unwrap();
    let options = RestoreOptions::default();
    let alone = |input: &Path| {
        model
            .restore_image(&read_image(input).unwrap(), &options, &device, |_, _| {})
            .unwrap()
            .image
    };
    let (ra, rb) = (alone(&a), alone(&b));
    let max_diff = |x: &Image, y: &Image| {
        x.data
            .iter()
            .zip(&y.data)
            .map(|(p, q)| (p.clamp(0.0, 1.0) - q.clamp(0.0, 1.0)).abs())
            .fold(0.0f32, f32::max)
    };
    assert!(max_diff(&ra, &rb) > 0.2, "the two results must differ");

    let out = dir.join("out.png");
    for round in 0..3 {
        std::thread::scope(|s| {
            for input in [&a, &b] {
                let (model, out, device) = (&model, &out, &device);
                s.spawn(move || {
                    restore_file(
                        model,
                        input,
                        out,
                        &RestoreOptions::default(),
                        device,
                        |_, _| {},
                    )
                    .unwrap()
                });
            }
        });
        let got = read_image(&out).unwrap();
        let (da, db) = (max_diff(&got, &ra), max_diff(&got, &rb));
        assert!(
            da <= 1.0 / 255.0 || db <= 1.0 / 255.0,
            "round {round}: the output is neither restoration (max differences {da}, {db})"
        );
    }

    // many writers and a reader: every read is one whole image
    let images = [noise(64, 48, 21), noise(64, 48, 22)];
    let target = dir.join("busy.png");
    write_image(&target, &images[0]).unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        for img in &images {
            let target = &target;
            s.spawn(move || {
                for _ in 0..40 {
                    write_image(target, img).unwrap();
                }
            });
        }
        let reader = s.spawn(|| {
            let mut reads = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || reads == 0 {
                let got = read_image(&target).unwrap();
                let whole = images.iter().any(|i| max_diff(i, &got) <= 0.5 / 255.0);
                assert!(whole, "read a mix of two writes");
                reads += 1;
            }
            reads
        });
        std::thread::sleep(std::time::Duration::from_millis(300));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(reader.join().unwrap() > 0);
    });
    assert!(leftovers(&dir).is_empty(), "{:?}", leftovers(&dir));
    fs::remove_dir_all(&dir).ok();
}
