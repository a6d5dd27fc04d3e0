//! Statistical and behavioural checks of the degradations (small images, fixed seeds).

use super::*;
use crate::base::image::Image;

fn grey(w: usize, h: usize, v: f32) -> Image {
    Image::filled(w, h, [v, v, v])
}

/// A textured test picture: smooth colour ramps plus a checker pattern.
fn picture(w: usize, h: usize) -> Image {
    let mut data = Vec::with_capacity(3 * w * h);
    for c in 0..3 {
        for y in 0..h {
            for x in 0..w {
                let ramp = (x as f32 / w as f32 + c as f32 * 0.2 + y as f32 / h as f32 * 0.3) % 1.0;
                let check = if (x / 4 + y / 4) % 2 == 0 { 0.1 } else { -0.1 };
                data.push((0.15 + 0.7 * ramp + check).clamp(0.0, 1.0));
            }
        }
    }
    Image::from_planar(w, h, data).unwrap()
}

fn psnr(a: &Image, b: &Image) -> f64 {
    let mse = a
        .data
        .iter()
        .zip(&b.data)
        .map(|(x, y)| ((x - y) as f64).powi(2))
        .sum::<f64>()
        / a.data.len() as f64;
    10.0 * (1.0 / mse).log10()
}

#[test]
fn noise_psnr_matches_the_statistics() {
    // mid-grey 128/255: 20·log10(255/σ) with rounding adding 1/12 to the variance;
    // clipping (beyond ±2.5σ at σ = 50) only lowers the error, so the window is one-sided wider.
    let clean = grey(128, 128, 128.0 / 255.0);
    for (sigma, seed) in [(15.0f32, 1u64), (25.0, 2), (50.0, 3)] {
        let noisy = GaussianNoise::new(sigma).apply(&clean, &mut rng_from_seed(seed));
        let expected =
            10.0 * (255.0f64.powi(2) / (sigma as f64 * sigma as f64 + 1.0 / 12.0)).log10();
        let p = psnr(&clean, &noisy);
        assert!(
            p > expected - 0.1 && p < expected + 0.25,
            "σ {sigma}: PSNR {p:.3} dB, expected {expected:.3}"
        );
        // quantised to 8 bits
        assert!(
            noisy
                .data
                .iter()
                .all(|v| ((v * 255.0) - (v * 255.0).round()).abs() < 1e-3)
        );
    }
    // the canonical values: 24.61 / 20.17 / 14.15 dB
    let p15 = psnr(
        &clean,
        &GaussianNoise::new(15.0).apply(&clean, &mut rng_from_seed(9)),
    );
    assert!((p15 - 24.61).abs() < 0.1, "{p15}");
}

#[test]
fn truncation_lowers_values_by_half_a_level() {
    let clean = grey(64, 64, 128.0 / 255.0);
    let mean =
        |img: &Image| img.data.iter().map(|&v| v as f64).sum::<f64>() / img.data.len() as f64;
    let r = GaussianNoise::new(15.0).apply(&clean, &mut rng_from_seed(4));
    let t = GaussianNoise::new(15.0)
        .with_quantization(Quantization::Truncate)
        .apply(&clean, &mut rng_from_seed(4));
    let shift = (mean(&r) - mean(&t)) * 255.0;
    assert!((shift - 0.5).abs() < 0.05, "{shift}");
}

#[test]
fn blind_noise_draws_sigma_from_the_range() {
    let clean = grey(64, 64, 0.5);
    let mut levels = Vec::new();
    for seed in 0..20 {
        let n = GaussianNoise::blind(10.0, 40.0).apply(&clean, &mut rng_from_seed(seed));
        let mse: f64 = n
            .data
            .iter()
            .map(|&v| ((v - 0.5) as f64 * 255.0).powi(2))
            .sum::<f64>()
            / n.data.len() as f64;
        levels.push(mse.sqrt());
    }
    assert!(
        levels.iter().all(|&s| (9.0..41.0).contains(&s)),
        "{levels:?}"
    );
    let spread =
        levels.iter().cloned().fold(0.0, f64::max) - levels.iter().cloned().fold(99.0, f64::min);
    assert!(spread > 10.0, "{levels:?}");
}

#[test]
fn same_seed_same_image_other_seed_other_image() {
    let img = picture(48, 40);
    let depth = DepthMap::new(
        48,
        40,
        (0..48 * 40).map(|i| (i % 48) as f32 + 1.0).collect(),
    )
    .unwrap();
    for task in Task::ALL.into_iter().filter(|&t| t != Task::Clean) {
        let d = task.degradation();
        let a = d.apply_seeded(&img, 11);
        let b = d.apply_seeded(&img, 11);
        let c = d.apply_seeded(&img, 12);
        assert_eq!(a, b, "{task}: same seed differs");
        assert_ne!(a, c, "{task}: other seed gives the same image");
        assert_ne!(a, img, "{task}: nothing happened");
        assert_eq!((a.width, a.height), (48, 40));
        let e = d.apply_with_depth(&img, Some(&depth), &mut rng_from_seed(11));
        let f = d.apply_with_depth(&img, Some(&depth), &mut rng_from_seed(11));
        assert_eq!(e, f, "{task}");
    }
}

#[test]
fn haze_grows_with_depth() {
    let (w, h) = (32, 8);
    let img = Image::filled(w, h, [0.2, 0.4, 0.1]);
    // depth grows from left to right; an unknown pixel takes its farther row neighbour
    let mut d: Vec<f32> = (0..w * h).map(|i| 1.0 + (i % w) as f32).collect();
    d[3 * w + 5] = f32::NAN;
    let depth = DepthMap::new(w, h, d).unwrap();
    let a = 0.9;
    let out = Haze::fixed(2.0, a).apply_with_depth(&img, Some(&depth), &mut rng_from_seed(0));
    for c in 0..3 {
        let row: Vec<f32> = (0..w).map(|x| out.get(c, x, 0)).collect();
        for x in 1..w {
            assert!(
                (row[x] - a).abs() < (row[x - 1] - a).abs(),
                "channel {c}: pixel {x} is not closer to A than pixel {}",
                x - 1
            );
        }
        // nearest pixel untouched (d = 0), farthest at t = e^-2
        assert!((row[0] - img.get(c, 0, 0)).abs() < 1e-6);
        let t = (-2.0f32).exp();
        assert!((row[w - 1] - (img.get(c, 0, 0) * t + a * (1.0 - t))).abs() < 1e-5);
        assert!(
            (out.get(c, 5, 3) - out.get(c, 6, 3)).abs() < 1e-6,
            "hole filled from the far side"
        );
    }
}

#[test]
fn haze_without_depth_hazes_the_top_more_than_the_bottom() {
    let img = picture(40, 40);
    let d = depth_proxy(&img);
    assert!(d.iter().all(|v| (0.0..=1.0).contains(v)));
    let out = Haze::fixed(2.0, 1.0).apply(&img, &mut rng_from_seed(0));
    let row_gap = |y: usize| {
        (0..40)
            .map(|x| (1.0 - out.get(1, x, y)) as f64)
            .sum::<f64>()
    };
    assert!(
        row_gap(0) < row_gap(39),
        "top should be closer to the airlight"
    );
    // haze lowers contrast everywhere
    let std = |img: &Image| {
        let m = img.data.iter().sum::<f32>() / img.data.len() as f32;
        (img.data.iter().map(|v| (v - m).powi(2)).sum::<f32>() / img.data.len() as f32).sqrt()
    };
    assert!(std(&out) < std(&img));
}

#[test]
fn rain_adds_sparse_bright_streaks_along_the_fall_direction() {
    let img = grey(96, 96, 0.3);
    let rain = Rain {
        angle: (0.0, 0.0),
        ..Rain::light()
    };
    let out = rain.apply(&img, &mut rng_from_seed(5));
    let diff: Vec<f32> = out
        .channel(0)
        .iter()
        .zip(img.channel(0))
        .map(|(o, i)| o - i)
        .collect();
    assert!(diff.iter().all(|&d| d >= -1e-6), "rain only brightens");
    let streaked = diff.iter().filter(|&&d| d > 0.05).count() as f32 / diff.len() as f32;
    assert!(
        (0.01..0.35).contains(&streaked),
        "streak coverage {streaked}"
    );
    // vertical streaks: neighbours along the column agree far more than along the row
    let corr = |dx: usize, dy: usize| {
        let mut s = 0.0f64;
        for y in 0..96 - dy {
            for x in 0..96 - dx {
                s += (diff[y * 96 + x] * diff[(y + dy) * 96 + x + dx]) as f64;
            }
        }
        s
    };
    assert!(
        corr(0, 3) > 4.0 * corr(3, 0),
        "{} vs {}",
        corr(0, 3),
        corr(3, 0)
    );
    // heavy rain covers more
    let heavy = Rain::heavy().apply(&img, &mut rng_from_seed(5));
    let cover = |o: &Image| o.channel(0).iter().filter(|&&v| v > 0.35).count();
    assert!(cover(&heavy) > 2 * cover(&out));
}

#[test]
fn blurs_keep_the_mean_and_remove_detail() {
    let img = picture(48, 48);
    let detail = |i: &Image| {
        let p = i.channel(1);
        (0..47 * 48)
            .filter(|k| k % 48 != 47)
            .map(|k| (p[k + 1] - p[k]).abs() as f64)
            .sum::<f64>()
    };
    let mean = |i: &Image| i.data.iter().map(|&v| v as f64).sum::<f64>() / i.data.len() as f64;
    for d in [
        Degradation::MotionBlur(MotionBlur::fixed(11.0, 30.0)),
        Degradation::Defocus(DefocusBlur::fixed(3.0)),
    ] {
        let out = d.apply_seeded(&img, 0);
        assert!((mean(&out) - mean(&img)).abs() < 0.01, "{d:?}");
        assert!(detail(&out) < 0.6 * detail(&img), "{d:?}");
    }
    // a horizontal motion blur leaves a vertical-only pattern alone
    let stripes = Image::from_planar(
        16,
        16,
        (0..3 * 256)
            .map(|i| if (i / 16) % 2 == 0 { 0.2 } else { 0.8 })
            .collect(),
    )
    .unwrap();
    let out = MotionBlur::fixed(7.0, 0.0).apply(&stripes, &mut rng_from_seed(0));
    for (a, b) in out.data.iter().zip(&stripes.data) {
        assert!((a - b).abs() < 1e-5);
    }
}

#[test]
fn low_light_darkens_and_adds_noise() {
    let img = grey(64, 64, 0.5);
    let out = LowLight::default().apply(&img, &mut rng_from_seed(1));
    let mean = out.data.iter().sum::<f32>() / out.data.len() as f32;
    assert!((0.01..0.2).contains(&mean), "mean {mean}");
    let var = out.data.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / out.data.len() as f32;
    assert!(var > 0.0);
}

#[test]
fn jpeg_quality_controls_the_error() {
    let img = picture(64, 64);
    let low = Jpeg::fixed(10).apply(&img, &mut rng_from_seed(0));
    let high = Jpeg::fixed(90).apply(&img, &mut rng_from_seed(0));
    assert!(psnr(&img, &low) + 3.0 < psnr(&img, &high));
    assert!(psnr(&img, &high) > 25.0);
}

#[test]
fn composites_apply_stages_in_the_fixed_order() {
    let noise = Degradation::Noise(GaussianNoise::new(25.0));
    let haze = Degradation::Haze(Haze::fixed(1.0, 0.9));
    let low = Degradation::LowLight(LowLight::default());
    let c = Composite::new([noise.clone(), haze.clone(), low.clone()]);
    let ranks: Vec<u8> = c.stages().iter().map(Degradation::stage_rank).collect();
    assert_eq!(ranks, vec![0, 1, 5]);
    // same result as applying by hand in that order with one generator
    let img = picture(32, 32);
    let mut rng = rng_from_seed(3);
    let by_hand = noise.apply(&haze.apply(&low.apply(&img, &mut rng), &mut rng), &mut rng);
    assert_eq!(
        c.apply_with_depth(&img, None, &mut rng_from_seed(3)),
        by_hand
    );
    assert!(Degradation::Composite(c).needs_full_image());
    assert!(!noise.needs_full_image());
}
