//! Proof that this crate computes what the official PromptIR code computes.
//!
//! `tests/data/promptir-tiny` holds weights, inputs, outputs and per-stage intermediates
//! produced by the official PyTorch `PromptIR` (see its README). The tolerance is the one that
//! README recommends: 1e-4 on outputs, 1e-4·max(1, max|ref|) on intermediates.

mod common;

use std::path::Path;

use burn::module::{ModuleMapper, Param};
use burn::prelude::*;
use common::*;
use dppd::backbone::{TransformerBlock, resize_bilinear};
use dppd::model::{PromptIrConfig, Restorer, RestorerConfig};
use dppd::prompt::PromptGenBlock;

fn config() -> RestorerConfig {
    PromptIrConfig::load(reference_dir().join("config.json"))
        .unwrap()
        .to_restorer()
        .unwrap()
}

fn load(file: &str, device: &Device) -> Restorer {
    Restorer::load_weights(&config(), reference_dir().join(file), device)
        .unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// Runs the three reference cases; returns the worst output error.
fn worst_output_error(model: &Restorer, device: &Device) -> f32 {
    let dir = reference_dir();
    let mut worst = 0.0f32;
    for case in 1..=3 {
        let input: Tensor<4> = npy_tensor(&dir.join(format!("input_case{case}.npy")), device);
        let expect: Tensor<4> = npy_tensor(&dir.join(format!("output_case{case}.npy")), device);
        let out = model.forward(input.clone());
        let err = max_abs_diff(out.clone(), expect.clone());
        // The residual (output − input) is the part the network computes; check it too.
        let err_res = max_abs_diff(out - input.clone(), expect - input);
        worst = worst.max(err).max(err_res);
    }
    worst
}

#[test]
fn outputs_match_the_official_code_for_every_case_format_and_cpu_backend() {
    for (name, device) in cpu_devices() {
        for file in ["model.ckpt", "weights.safetensors"] {
            let model = load(file, &device);
            let err = worst_output_error(&model, &device);
            assert!(
                err <= 1e-4,
                "{name}, {file}: max |rust − reference| = {err:e}"
            );
        }
    }
}

/// The GPU backends compute the official function too, and the DPPD preset's output (with
/// its prompt distributions and prototype assignment) equals the CPU's. Runs only in builds
/// with the `wgpu` or `cuda` feature (the GPU check script, `scripts/gpu-check.sh`). The
/// tolerance is 10× the CPU's: GPU kernels sum in another order and use fused multiply-adds.
#[cfg(any(feature = "wgpu", feature = "cuda"))]
#[test]
fn gpu_backends_match_the_official_code_and_the_cpu() {
    use burn::tensor::Distribution;
    let cpu = Device::flex();
    let dppd = RestorerConfig::dppd_small();
    let dppd_cpu = dppd.init(&cpu);
    let x_cpu = Tensor::<4>::random([2, 3, 72, 88], Distribution::Default, &cpu);
    let y_cpu = dppd_cpu.forward(x_cpu.clone());
    for (name, device) in gpu_devices() {
        for file in ["model.ckpt", "weights.safetensors"] {
            let model = load(file, &device);
            let err = worst_output_error(&model, &device);
            println!("{name}, {file}: max |gpu − reference| = {err:e}");
            assert!(
                err <= 1e-3,
                "{name}, {file}: max |gpu − reference| = {err:e}"
            );
        }
        let model = dppd_cpu.clone().to_device(&device);
        let x = Tensor::<4>::from_data(x_cpu.to_data(), &device);
        let y = Tensor::<4>::from_data(model.forward(x).to_data(), &cpu);
        let err = max_abs_diff(y, y_cpu.clone());
        println!("{name}, dppd-small: max |gpu − cpu| = {err:e}");
        assert!(err <= 1e-3, "{name}, dppd-small: max |gpu − cpu| = {err:e}");
    }
}

/// Compares a stage with its stored reference (full tensor, or the two 16×16 corner crops for
/// full-resolution tensors).
fn check_stage(dir: &Path, stem: &str, t: Tensor<4>, device: &Device) {
    let whole = dir.join(format!("{stem}.npy"));
    let pairs: Vec<(Tensor<4>, Tensor<4>)> = if whole.exists() {
        vec![(t, npy_tensor(&whole, device))]
    } else {
        let [b, c, h, w] = t.dims();
        let tl = t.clone().slice([0..b, 0..c, 0..16, 0..16]);
        let br = t.slice([0..b, 0..c, h - 16..h, w - 16..w]);
        vec![
            (
                tl,
                npy_tensor(&dir.join(format!("{stem}.crop_tl16.npy")), device),
            ),
            (
                br,
                npy_tensor(&dir.join(format!("{stem}.crop_br16.npy")), device),
            ),
        ]
    };
    for (got, expect) in pairs {
        let tol = 1e-4 * max_abs(expect.clone()).max(1.0);
        let err = max_abs_diff(got, expect);
        assert!(err <= tol, "stage {stem}: error {err:e} > {tol:e}");
    }
}

fn run(blocks: &[TransformerBlock], x: Tensor<4>) -> Tensor<4> {
    blocks.iter().fold(x, |x, b| b.forward(x))
}

/// Checks a prompt block's internals and output, then the fusion block and its reduction.
#[allow(clippy::too_many_arguments)]
fn check_site(
    dir: &Path,
    first: usize,
    k: usize,
    x: Tensor<4>,
    prompt: &PromptGenBlock,
    fuse: &TransformerBlock,
    reduce: &burn::nn::conv::Conv2d,
    device: &Device,
) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    let stem = |i: usize, what: &str| format!("{:02}_prompt{k}.{what}", first + i);
    let emb = x.clone().mean_dims(&[2, 3]).reshape([b, c]);
    let emb_ref: Tensor<2> = npy_tensor(&dir.join(format!("{}.npy", stem(0, "emb_mean"))), device);
    assert!(max_abs_diff(emb, emb_ref) < 1e-4, "prompt{k} emb_mean");
    let weights = prompt.weights(x.clone());
    let w_ref: Tensor<2> = npy_tensor(
        &dir.join(format!("{}.npy", stem(1, "softmax_weights"))),
        device,
    );
    assert!(
        max_abs_diff(weights.clone(), w_ref) < 1e-5,
        "prompt{k} softmax weights"
    );
    let [_, n, d, s, _] = prompt.prompt_param.dims();
    let mixed = weights
        .matmul(prompt.prompt_param.val().reshape([n, d * s * s]))
        .reshape([b, d, s, s]);
    check_stage(
        dir,
        &stem(2, "interpolated_before_conv3x3"),
        resize_bilinear(mixed, [h, w]),
        device,
    );
    let p = prompt.forward(x.clone());
    check_stage(
        dir,
        &format!("{:02}_prompt{k}", first + 3),
        p.clone(),
        device,
    );
    let fused = fuse.forward(Tensor::cat(vec![x, p], 1));
    check_stage(
        dir,
        &format!("{:02}_noise_level{k}", first + 4),
        fused.clone(),
        device,
    );
    let reduced = reduce.forward(fused);
    check_stage(
        dir,
        &format!("{:02}_reduce_noise_level{k}", first + 5),
        reduced.clone(),
        device,
    );
    reduced
}

#[test]
fn every_stage_matches_the_official_intermediates() {
    let dir = reference_dir().join("intermediates");
    for (_, device) in cpu_devices() {
        let m = load("model.ckpt", &device);
        let inp: Tensor<4> = npy_tensor(&reference_dir().join("input_case1.npy"), &device);
        let st = |stem: &str, t: &Tensor<4>| check_stage(&dir, stem, t.clone(), &device);
        let x = m.patch_embed.forward(inp.clone());
        st("00_patch_embed", &x);
        let e1 = run(&m.encoder_level1, x);
        st("01_encoder_level1", &e1);
        let x = m.down1_2.forward(e1.clone());
        st("02_down1_2", &x);
        let e2 = run(&m.encoder_level2, x);
        st("03_encoder_level2", &e2);
        let x = m.down2_3.forward(e2.clone());
        st("04_down2_3", &x);
        let e3 = run(&m.encoder_level3, x);
        st("05_encoder_level3", &e3);
        let x = m.down3_4.forward(e3.clone());
        st("06_down3_4", &x);
        let lat = run(&m.latent, x);
        st("07_latent", &lat);
        let site = |first, k, x, p: &Option<_>, f: &Option<_>, r: &Option<_>| {
            check_site(
                &dir,
                first,
                k,
                x,
                p.as_ref().unwrap(),
                f.as_ref().unwrap(),
                r.as_ref().unwrap(),
                &device,
            )
        };
        let lat = site(
            8,
            3,
            lat,
            &m.prompt3,
            &m.noise_level3,
            &m.reduce_noise_level3,
        );
        let x = m.up4_3.forward(lat);
        st("14_up4_3", &x);
        let x = m.reduce_chan_level3.forward(Tensor::cat(vec![x, e3], 1));
        st("15_reduce_chan_level3", &x);
        let d3 = run(&m.decoder_level3, x);
        st("16_decoder_level3", &d3);
        let d3 = site(
            17,
            2,
            d3,
            &m.prompt2,
            &m.noise_level2,
            &m.reduce_noise_level2,
        );
        let x = m.up3_2.forward(d3);
        st("23_up3_2", &x);
        let x = m.reduce_chan_level2.forward(Tensor::cat(vec![x, e2], 1));
        st("24_reduce_chan_level2", &x);
        let d2 = run(&m.decoder_level2, x);
        st("25_decoder_level2", &d2);
        let d2 = site(
            26,
            1,
            d2,
            &m.prompt1,
            &m.noise_level1,
            &m.reduce_noise_level1,
        );
        let x = m.up2_1.forward(d2);
        st("32_up2_1", &x);
        let d1 = run(&m.decoder_level1, Tensor::cat(vec![x, e1], 1));
        st("33_decoder_level1", &d1);
        let r = run(&m.refinement, d1);
        st("34_refinement", &r);
        st("35_output_conv_before_residual", &m.output.forward(r));
    }
}

/// Adds a fixed pseudo-random pattern (amplitude 0.05) to the `target`-th float parameter
/// tensor, and counts them all. (A constant shift would not do: softmax ignores a constant
/// added to all of a linear layer's biases.)
struct PerturbOne {
    target: usize,
    seen: usize,
}

impl ModuleMapper for PerturbOne {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let i = self.seen;
        self.seen += 1;
        if i == self.target {
            param.map(|t| {
                let shape = t.shape();
                let n = shape.num_elements();
                let pattern: Vec<f32> = (0..n as u64)
                    .map(|i| ((i.wrapping_mul(2_654_435_761) % 1000) as f32 / 1000.0 - 0.5) * 0.1)
                    .collect();
                let device = t.device();
                t + Tensor::from_data(TensorData::new(pattern, shape), &device)
            })
        } else {
            param
        }
    }
}

/// The equivalence check is sharp: shifting any single parameter tensor of the loaded model
/// moves the output beyond the tolerance, so no tensor can be silently unloaded or misplaced.
#[test]
fn perturbing_any_single_parameter_breaks_equivalence() {
    let device = Device::flex();
    let model = load("model.ckpt", &device);
    let mut count = PerturbOne {
        target: usize::MAX,
        seen: 0,
    };
    let model = model.map(&mut count);
    assert_eq!(
        count.seen, 146,
        "parameter tensors in use (152 keys − 6 unused)"
    );
    for target in 0..count.seen {
        let perturbed = model.clone().map(&mut PerturbOne { target, seen: 0 });
        let err = worst_output_error(&perturbed, &device);
        assert!(
            err > 1e-4,
            "parameter #{target} perturbed by ±0.05 changes the output by only {err:e}"
        );
    }
}

#[test]
fn wrong_checkpoints_are_errors_that_name_the_keys() {
    let device = Device::flex();
    // Wider model: every tensor has the wrong shape.
    let wide = PromptIrConfig {
        dim: 24,
        ..PromptIrConfig::load(reference_dir().join("config.json")).unwrap()
    };
    let err = Restorer::load_weights(
        &wide.to_restorer().unwrap(),
        reference_dir().join("weights.safetensors"),
        &device,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("patch_embed.proj.weight"), "{err}");
    assert!(err.contains("do not fit"), "{err}");
    // Deeper model: the second block of encoder level 1 is missing from the file.
    let deep = PromptIrConfig {
        num_blocks: [2, 1, 1, 1],
        ..PromptIrConfig::load(reference_dir().join("config.json")).unwrap()
    };
    let err = Restorer::load_weights(
        &deep.to_restorer().unwrap(),
        reference_dir().join("model.ckpt"),
        &device,
    )
    .unwrap_err()
    .to_string();
    // Two blocks at level 1 of the encoder and of the decoder: 2 × 11 tensors missing, of which
    // the first 12 (sorted) are listed and the rest counted.
    assert!(err.contains("22 tensor(s) missing"), "{err}");
    assert!(err.contains("decoder_level1.1.attn.qkv.weight"), "{err}");
    assert!(err.contains("… and 10 more"), "{err}");
    // Model without prompts: the file's prompt tensors have no place.
    let plain = PromptIrConfig {
        decoder: false,
        ..PromptIrConfig::load(reference_dir().join("config.json")).unwrap()
    };
    let err = Restorer::load_weights(
        &plain.to_restorer().unwrap(),
        reference_dir().join("model.ckpt"),
        &device,
    )
    .unwrap_err()
    .to_string();
    assert!(
        // 3 prompt blocks × 4 tensors + 3 fusion blocks × 12 (transformer block + reduction)
        err.contains("48 tensor(s) in the file have no place in the model")
            && err.contains("noise_level1.attn.qkv.weight"),
        "{err}"
    );
    // Missing file.
    let err = Restorer::load_weights(&config(), "/nonexistent/w.ckpt", &device)
        .unwrap_err()
        .to_string();
    assert!(err.contains("/nonexistent/w.ckpt"), "{err}");
}

#[test]
fn native_and_safetensors_saves_round_trip_exactly() {
    let device = Device::flex();
    let model = load("model.ckpt", &device);
    let input: Tensor<4> = npy_tensor(&reference_dir().join("input_case2.npy"), &device);
    let before = model.forward(input.clone());
    let dir = std::env::temp_dir().join(format!("dppd-roundtrip-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bpk = dir.join("m.bpk");
    model.save(&bpk).unwrap();
    let reloaded = Restorer::load(&bpk, &device).unwrap();
    assert_eq!(reloaded.config(), model.config());
    assert_eq!(
        max_abs_diff(reloaded.forward(input.clone()), before.clone()),
        0.0
    );
    let st = dir.join("m.safetensors");
    model.save_safetensors(&st).unwrap();
    let reloaded = Restorer::load_weights(model.config(), &st, &device).unwrap();
    assert_eq!(max_abs_diff(reloaded.forward(input), before), 0.0);
    // The safetensors file uses PromptIR's names, so PyTorch could load it.
    let keys = std::fs::read(&st).unwrap();
    let header = String::from_utf8_lossy(&keys[..4096.min(keys.len())]).to_string();
    assert!(
        header.contains("down1_2.body.0.weight")
            || String::from_utf8_lossy(&keys).contains("down1_2.body.0.weight")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
