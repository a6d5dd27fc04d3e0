//! The DPPD network: shapes, gradients, sampling, persistence and a few training steps.

mod common;

use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::Distribution;
use common::{cpu_devices, max_abs_diff};
use dppd::model::{PromptSiteConfig, Restorer, RestorerConfig};
use dppd::prompt::{DppdPromptConfig, FusionMode, PromptSampling};
use dppd::train::{LossConfig, restoration_loss};

/// The small preset, shrunk further so tests run in seconds.
fn tiny_dppd() -> RestorerConfig {
    let site = |heads| {
        PromptSiteConfig::Dppd(DppdPromptConfig {
            heads,
            tokens: 3,
            token_dim: 8,
            embed_dim: 8,
            hidden_dim: 16,
            ..Default::default()
        })
    };
    RestorerConfig {
        dim: 8,
        prompt_sites: [site(2), site(2), site(4)],
        ..RestorerConfig::dppd_small()
    }
}

#[test]
fn presets_build_with_their_documented_parameter_counts() {
    let d = Device::flex();
    let count = |c: RestorerConfig| c.init(&d).num_params();
    assert_eq!(count(RestorerConfig::dppd()), 27_056_308);
    assert_eq!(count(RestorerConfig::dppd_small()), 882_179);
    assert_eq!(count(RestorerConfig::dppd_medium()), 1_638_459);
    // Restormer's published size is 26.13 M.
    assert_eq!(count(RestorerConfig::restormer()), 26_126_644);
}

#[test]
fn odd_sizes_and_batches_keep_their_shape_on_every_cpu_backend() {
    for (name, d) in cpu_devices() {
        let m = tiny_dppd().init(&d);
        for shape in [[1, 3, 17, 9], [3, 3, 8, 8], [2, 3, 5, 23]] {
            let x = Tensor::<4>::random(shape, Distribution::Default, &d);
            let out = m.forward_with(x, None);
            assert_eq!(out.image.dims(), shape, "{name}");
            assert_eq!(out.sites.len(), 3);
            for s in &out.sites {
                assert_eq!(s.aux.probs.dims(), [shape[0], 4], "{name} site {}", s.site);
            }
        }
    }
}

#[test]
fn pooled_fusion_and_the_fusion_block_are_configuration_switches() {
    let d = Device::flex();
    let site = |mode, fuse_block| {
        PromptSiteConfig::Dppd(DppdPromptConfig {
            heads: 2,
            tokens: 2,
            token_dim: 8,
            mode,
            fuse_block,
            ..Default::default()
        })
    };
    let base = tiny_dppd();
    let with = |mode, fuse| RestorerConfig {
        prompt_sites: [site(mode, fuse), site(mode, fuse), site(mode, fuse)],
        ..base.clone()
    };
    let plain = with(FusionMode::PerPixel, false).init(&d);
    let fused = with(FusionMode::Pooled, true).init(&d);
    assert!(plain.noise_level1.is_none() && fused.noise_level1.is_some());
    assert!(fused.num_params() > plain.num_params());
    let x = Tensor::<4>::random([1, 3, 16, 16], Distribution::Default, &d);
    assert_eq!(fused.forward(x).dims(), [1, 3, 16, 16]);
}

#[test]
fn gradients_reach_every_learned_part_and_prototypes_stay_fixed() {
    for (name, d) in cpu_devices() {
        let ad = d.clone().autodiff();
        let model = tiny_dppd().init(&ad);
        let protos_before = model.dppd3.as_ref().unwrap().dpa.prototypes(&d);
        let x = Tensor::<4>::random([2, 3, 16, 16], Distribution::Default, &ad);
        let clean = Tensor::<4>::random([2, 3, 16, 16], Distribution::Default, &ad);
        let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 2], [2]), &ad);
        let out = model.forward_with(x, None);
        let loss = restoration_loss(&out, clean, Some(labels), &LossConfig::default());
        let grads = loss.total.backward();
        let m3 = model.dppd3.as_ref().unwrap();
        let nonzero = |g: Option<Tensor<2>>, what: &str| {
            let s = g.unwrap_or_else(|| panic!("{name}: {what} has no gradient"));
            assert!(
                s.abs().sum().into_scalar::<f32>() > 0.0,
                "{name}: {what} gradient is 0"
            );
        };
        nonzero(m3.dpa.embed1.weight.grad(&grads), "DPA embedding");
        nonzero(m3.fusion.to_k.weight.grad(&grads), "CrossFusion keys");
        nonzero(m3.fusion.to_v.weight.grad(&grads), "CrossFusion values");
        let g4 = |g: Option<Tensor<4>>| g.map(|t| t.flatten::<2>(0, 3));
        nonzero(
            g4(m3.fusion.to_q.weight.grad(&grads)),
            "CrossFusion queries",
        );
        nonzero(
            g4(m3.fusion.project_out.weight.grad(&grads)),
            "CrossFusion output",
        );
        let g3 = |g: Option<Tensor<3>>| g.map(|t| t.flatten::<2>(0, 2));
        nonzero(g3(m3.pdl.mean.grad(&grads)), "PDL μ");
        nonzero(g3(m3.pdl.log_var.grad(&grads)), "PDL log σ²");
        nonzero(
            g4(model.patch_embed.proj.weight.grad(&grads)),
            "patch embedding",
        );
        nonzero(
            g4(model.encoder_level1[0].attn.qkv.weight.grad(&grads)),
            "encoder attention",
        );
        nonzero(
            g4(model.refinement[0].ffn.project_in.weight.grad(&grads)),
            "refinement",
        );
        // An optimiser step changes the weights but not the prototypes, which are constants.
        let grads = GradientsParams::from_grads(grads, &model);
        let mut optim = AdamWConfig::new().init();
        let stepped = optim.step(1e-2, model, grads);
        let m3 = stepped.dppd3.as_ref().unwrap();
        assert_eq!(
            max_abs_diff(m3.dpa.prototypes(&d), protos_before),
            0.0,
            "{name}"
        );
    }
}

#[test]
fn training_samples_and_evaluation_is_deterministic() {
    let d = Device::flex();
    let model = tiny_dppd().init(&d.clone().autodiff());
    let x = Tensor::<4>::random([1, 3, 16, 16], Distribution::Default, &d.clone().autodiff());
    let a = model.forward(x.clone());
    let b = model.forward(x.clone());
    assert!(
        max_abs_diff(a, b) > 0.0,
        "training mode on autodiff must sample"
    );
    let eval = model.valid();
    let x = x.inner();
    let a = eval.forward(x.clone());
    let b = eval.forward(x.clone());
    assert_eq!(
        max_abs_diff(a.clone(), b),
        0.0,
        "evaluation must be deterministic"
    );
    // Explicit sampling still works at inference (Monte-Carlo restoration).
    let s = eval
        .forward_with(x.clone(), Some(PromptSampling::Sample))
        .image;
    assert!(max_abs_diff(s, a) > 0.0);
}

#[test]
fn vanishing_variance_makes_samples_equal_the_mean() {
    let d = Device::flex();
    let cfg = RestorerConfig {
        prompt_sites: tiny_dppd().prompt_sites.map(|s| match s {
            PromptSiteConfig::Dppd(p) => PromptSiteConfig::Dppd(DppdPromptConfig {
                init_log_var: -60.0,
                ..p
            }),
            other => other,
        }),
        ..tiny_dppd()
    };
    let m = cfg.init(&d);
    let x = Tensor::<4>::random([1, 3, 16, 16], Distribution::Default, &d);
    let mean = m.forward_with(x.clone(), Some(PromptSampling::Mean)).image;
    let sample = m
        .forward_with(x.clone(), Some(PromptSampling::Sample))
        .image;
    assert!(max_abs_diff(mean, sample) < 1e-6);
    let u = m.restore_with_uncertainty(x, 3);
    assert!(u.std.max().into_scalar::<f32>() < 1e-3);
}

#[test]
fn uncertainty_and_prediction_for_users() {
    let d = Device::flex();
    let m = tiny_dppd().init(&d);
    let x = Tensor::<4>::random([2, 3, 16, 16], Distribution::Default, &d);
    let u = m.restore_with_uncertainty(x.clone(), 4);
    assert_eq!(u.mean.dims(), [2, 3, 16, 16]);
    assert!(u.std.clone().min().into_scalar::<f32>() >= 0.0);
    assert!(
        u.std.max().into_scalar::<f32>() > 0.0,
        "sampled prompts must spread the output"
    );
    let p = m.predict_degradation(x).expect("a DPPD network predicts");
    assert_eq!(p.len(), 2);
    let names: Vec<&str> = p[0].all.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["noise", "rain", "haze", "spare-3"]);
    let total: f32 = p[0].all.iter().map(|(_, v)| v).sum();
    assert!((total - 1.0).abs() < 1e-4);
    // PromptIR has no DPA: no prediction.
    let promptir = RestorerConfig {
        dim: 8,
        ..RestorerConfig::promptir()
    };
    let small = RestorerConfig {
        num_blocks: [1, 1, 1, 1],
        num_refinement_blocks: 1,
        ..promptir
    };
    let pm = small.init(&d);
    assert!(
        pm.predict_degradation(Tensor::zeros([1, 3, 8, 8], &d))
            .is_none()
    );
}

#[test]
fn a_saved_and_reloaded_dppd_model_gives_identical_outputs() {
    for (name, d) in cpu_devices() {
        let m = tiny_dppd().init(&d);
        let x = Tensor::<4>::random([1, 3, 24, 16], Distribution::Default, &d);
        let before = m.forward(x.clone());
        let path =
            std::env::temp_dir().join(format!("dppd-test-{}-{name}.bpk", std::process::id()));
        m.save(&path).unwrap();
        let back = Restorer::load(&path, &d).unwrap();
        assert_eq!(back.config(), m.config());
        assert_eq!(max_abs_diff(back.forward(x), before), 0.0, "{name}");
        std::fs::remove_file(path).unwrap();
    }
}

/// A few AdamW steps on one batch of noisy images lower the loss, with the DPA cross-entropy
/// and the PDL KL wired in.
#[test]
fn a_few_training_steps_reduce_the_loss() {
    let d = Device::flex().autodiff();
    d.seed(7);
    let mut model = tiny_dppd().init(&d);
    // Smooth clean images (low-frequency ramps) and their noisy versions.
    let clean = {
        let h = Tensor::<1, Int>::arange(0..16, &d).float() / 16.0;
        let ramp = h.clone().reshape([1, 1, 16, 1]) * 0.5 + h.reshape([1, 1, 1, 16]) * 0.3;
        Tensor::cat(
            vec![ramp.clone(), ramp.clone() * 0.8 + 0.1, ramp * 0.5 + 0.2],
            1,
        )
        .repeat_dim(0, 4)
    };
    let noisy = clean.clone() + clean.random_like(Distribution::Normal(0.0, 0.1));
    let labels = Tensor::<1, Int>::zeros([4], &d);
    let mut optim = AdamWConfig::new()
        .with_epsilon(1e-8)
        .with_weight_decay(0.01)
        .init();
    let weights = LossConfig::default();
    let mut losses = Vec::new();
    for _ in 0..12 {
        let out = model.forward_with(noisy.clone(), None);
        let loss = restoration_loss(&out, clean.clone(), Some(labels.clone()), &weights);
        assert!(loss.dpa_ce.is_some() && loss.pdl_kl.is_some());
        losses.push(loss.total.clone().into_scalar::<f32>());
        let grads = GradientsParams::from_grads(loss.total.backward(), &model);
        model = optim.step(2e-3, model, grads);
    }
    let first = losses[0];
    let last = losses[losses.len() - 1];
    assert!(last < 0.8 * first, "loss went {first} → {last}: {losses:?}");
}
