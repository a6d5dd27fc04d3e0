//! Restoring files as users do: a corpus of broken and unusual files, folder runs, outputs
//! that are never left partial, tiles without seams, and the built-in default weights.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use common::train::temp_dir;
use dppd::data::{Image, read_image, write_image};
use dppd::degrade::{GaussianNoise, rng_from_seed};
use dppd::eval::psnr;
use dppd::model::{Restorer, RestorerConfig, TileConfig};
use dppd::restore::{FolderEvent, RestoreOptions, restore_file, restore_folder};

fn encoded(img: image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

fn gradient(w: u32, h: u32) -> image::RgbImage {
    image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([
            (x * 255 / w) as u8,
            (y * 255 / h) as u8,
            ((x + y) % 256) as u8,
        ])
    })
}

/// What must happen to a corpus file: restored at this size, or an error containing this.
type Outcome = Result<(u32, u32), &'static str>;

/// The corpus: (file name, contents, outcome).
fn corpus() -> Vec<(&'static str, Vec<u8>, Outcome)> {
    use image::{DynamicImage, ImageFormat};
    let png = encoded(DynamicImage::ImageRgb8(gradient(40, 24)), ImageFormat::Png);
    let jpg = encoded(DynamicImage::ImageRgb8(gradient(40, 24)), ImageFormat::Jpeg);
    let gray16 = image::ImageBuffer::<image::Luma<u16>, _>::from_fn(20, 12, |x, y| {
        image::Luma([(x * 3000 + y * 100) as u16])
    });
    let gray8 = image::GrayImage::from_fn(17, 9, |x, y| image::Luma([(x * 13 + y) as u8]));
    let rgba = image::RgbaImage::from_fn(23, 11, |x, y| {
        image::Rgba([x as u8 * 9, y as u8 * 20, 100, (x * 11) as u8])
    });
    let one = image::RgbImage::from_pixel(1, 1, image::Rgb([200, 100, 50]));
    vec![
        ("zero-bytes.png", Vec::new(), Err("empty file")),
        (
            "truncated.png",
            png[..png.len() / 2].to_vec(),
            Err("truncated PNG"),
        ),
        (
            "truncated.jpg",
            jpg[..jpg.len() * 2 / 3].to_vec(),
            Err("truncated JPEG"),
        ),
        (
            "gigantic.png",
            common::photos::png_header_only(100_000, 100_000),
            Err("100000×100000"),
        ),
        (
            "notes.jpg",
            b"shopping list: milk, eggs\n".to_vec(),
            Err("not an image file"),
        ),
        (
            "gray16.png",
            encoded(DynamicImage::ImageLuma16(gray16), ImageFormat::Png),
            Ok((20, 12)),
        ),
        (
            "gray.png",
            encoded(DynamicImage::ImageLuma8(gray8), ImageFormat::Png),
            Ok((17, 9)),
        ),
        (
            "alpha.png",
            encoded(DynamicImage::ImageRgba8(rgba), ImageFormat::Png),
            Ok((23, 11)),
        ),
        (
            "one-pixel.png",
            encoded(DynamicImage::ImageRgb8(one), ImageFormat::Png),
            Ok((1, 1)),
        ),
        ("photo.jpg", jpg, Ok((40, 24))),
    ]
}

fn small_model(device: &Device) -> Restorer {
    RestorerConfig::dppd_small().init(device)
}

const SENTINEL: &[u8] = b"an earlier result that must survive";

#[test]
fn every_file_of_the_corpus_is_restored_or_refused_without_touching_the_output() {
    let device = Device::flex();
    let model = small_model(&device);
    let dir = temp_dir("restore-corpus");
    let options = RestoreOptions::default();
    for (name, bytes, expect) in corpus() {
        let input = dir.join(name);
        fs::write(&input, &bytes).unwrap();
        // an output that exists already
        let output = dir.join(format!("{name}.out.png"));
        fs::write(&output, SENTINEL).unwrap();
        let result = restore_file(&model, &input, &output, &options, &device, |_, _| {});
        match (result, expect) {
            (Ok(r), Ok((w, h))) => {
                assert_eq!((r.image.width, r.image.height), (w as usize, h as usize));
                let back = read_image(&output).unwrap();
                assert_eq!(
                    (back.width, back.height),
                    (w as usize, h as usize),
                    "{name}"
                );
                assert!(
                    r.degradation.is_some(),
                    "{name}: a DPPD network names a degradation"
                );
            }
            (Err(e), Err(fragment)) => {
                let msg = e.to_string();
                assert!(
                    msg.contains(name),
                    "{name}: the error names the file: {msg}"
                );
                assert!(msg.contains(fragment), "{name}: {msg}");
                assert_eq!(
                    fs::read(&output).unwrap(),
                    SENTINEL,
                    "{name}: output touched"
                );
                // and a fresh output is not created
                let fresh = dir.join(format!("{name}.fresh.png"));
                assert!(
                    restore_file(&model, &input, &fresh, &options, &device, |_, _| {}).is_err()
                );
                assert!(!fresh.exists(), "{name}: an output was created");
            }
            (Ok(_), Err(f)) => panic!("{name} restored, expected an error with {f:?}"),
            (Err(e), Ok(_)) => panic!("{name}: unexpected error {e}"),
        }
    }
    // a missing input, and an output format that is not supported: refused, nothing written
    let e = restore_file(
        &model,
        dir.join("absent.png"),
        dir.join("x.png"),
        &options,
        &device,
        |_, _| {},
    )
    .unwrap_err();
    assert!(e.to_string().contains("absent.png"), "{e}");
    let bmp = dir.join("photo.gif");
    let e = restore_file(
        &model,
        dir.join("photo.jpg"),
        &bmp,
        &options,
        &device,
        |_, _| {},
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("unsupported output extension"),
        "{e}"
    );
    assert!(!bmp.exists());
    // no temporary file is left behind by any of the failures
    let leftovers: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().contains(".tmp-"))
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_folder_run_reports_the_bad_files_and_restores_the_others() {
    let device = Device::flex();
    let model = small_model(&device);
    let root = temp_dir("restore-folder");
    let input = root.join("in");
    fs::create_dir_all(input.join("nested")).unwrap();
    let corpus = corpus();
    for (i, (name, bytes, _)) in corpus.iter().enumerate() {
        // half of the files one folder down, to check that relative names are kept
        let sub = if i % 2 == 0 { "" } else { "nested" };
        fs::write(input.join(sub).join(name), bytes).unwrap();
    }
    let output = root.join("out");
    let (mut started, mut finished) = (0, 0);
    let report = restore_folder(
        &model,
        &input,
        &output,
        &RestoreOptions::default(),
        &device,
        |e| match e {
            FolderEvent::Started { total, .. } => {
                assert_eq!(total, corpus.len());
                started += 1;
            }
            FolderEvent::Finished { .. } => finished += 1,
            FolderEvent::Tile { .. } => {}
        },
    )
    .unwrap();
    assert_eq!((started, finished), (corpus.len(), corpus.len()));
    let good = corpus.iter().filter(|c| c.2.is_ok()).count();
    assert_eq!(report.restored.len(), good);
    assert_eq!(report.failed.len(), corpus.len() - good);
    for (i, (name, _, expect)) in corpus.iter().enumerate() {
        let sub = if i % 2 == 0 { "" } else { "nested" };
        let out = output.join(sub).join(name);
        match expect {
            Ok((w, h)) => {
                let img = read_image(&out).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!((img.width, img.height), (*w as usize, *h as usize));
            }
            Err(_) => {
                assert!(!out.exists(), "{name}: written although it failed");
                assert!(report.failed.iter().any(|(p, _)| p.ends_with(name)));
            }
        }
    }
    // a rerun into a folder inside the input does not restore its own results
    let inner = input.join("restored");
    let run = || {
        restore_folder(
            &model,
            &input,
            &inner,
            &RestoreOptions::default(),
            &device,
            |_| {},
        )
        .unwrap()
    };
    let (first, second) = (run(), run());
    assert_eq!(first.restored.len(), second.restored.len());
    fs::remove_dir_all(&root).ok();
}

fn photo(name: &str) -> Image {
    read_image(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("assets/photos")
            .join(name),
    )
    .unwrap()
}

fn noisy(clean: &Image, sigma: f32, seed: u64) -> Image {
    GaussianNoise::new(sigma).apply(clean, &mut rng_from_seed(seed))
}

/// The built-in weights restore a photograph they never saw (it is held out of their
/// training set): a noisy crop gains PSNR, and the degradation is recognised.
#[test]
fn the_default_weights_denoise_a_photograph_they_never_saw() {
    let device = Device::flex();
    let model = Restorer::pretrained(&device).unwrap();
    let clean = photo("chelsea.png").crop(120, 40, 160, 160).unwrap();
    let input = noisy(&clean, 25.0, 7);
    let r = model
        .restore_image(&input, &RestoreOptions::default(), &device, |_, _| {})
        .unwrap();
    let before = psnr(&input, &clean).unwrap();
    let after = psnr(&r.image, &clean).unwrap();
    assert!(after > before + 4.0, "PSNR {before:.2} → {after:.2} dB");
    let d = r.degradation.unwrap();
    assert_eq!(d.name, "noise", "{d:?}");
}

/// `keep_clean` (on by default), for a network with a `clean` prototype: an image it takes for
/// clean comes back unchanged; any other keeps `1 − p(clean)` of the change the network makes.
/// Off, the restoration is the network's own.
#[test]
fn what_the_network_sees_as_clean_is_kept() {
    let device = Device::flex();
    let model = Restorer::pretrained(&device).unwrap();
    // a whole held-out photograph, as users restore them (a small crop of one can look hazy)
    let clean = photo("chelsea.png");
    let restore = |input: &Image, keep_clean: bool| {
        let options = RestoreOptions {
            keep_clean,
            ..RestoreOptions::default()
        };
        model
            .restore_image(input, &options, &device, |_, _| {})
            .unwrap()
    };
    let mut seen = Vec::new();
    for input in [clean.clone(), noisy(&clean, 25.0, 5)] {
        let (raw, kept) = (restore(&input, false), restore(&input, true));
        assert_eq!(raw.degradation, kept.degradation);
        let d = kept.degradation.clone().unwrap();
        let p = d
            .all
            .iter()
            .find(|(n, _)| n == "clean")
            .map(|&(_, p)| p)
            .expect("the built-in network has a clean prototype");
        let keep = if d.name == "clean" { 0.0 } else { 1.0 - p };
        let worst = kept
            .image
            .data
            .iter()
            .zip(&raw.image.data)
            .zip(&input.data)
            .map(|((k, r), x)| (k - (x + keep * (r - x))).abs())
            .fold(0.0f32, f32::max);
        assert!(
            worst < 1e-5,
            "kept = input + {keep}·(restored − input): {worst}"
        );
        seen.push(d.name);
    }
    // the clean photograph is taken for clean and returned as it is; the noisy one is restored
    assert_eq!(seen, ["clean", "noise"]);
    assert_eq!(restore(&clean, true).image, clean);
}

/// Tiles blended with an overlap cost a photograph's restoration no quality: the tiled result
/// is at most 0.05 dB below the whole-image result (a tile sees less context, so it may land a
/// little above it too) and agrees with it to over 40 dB; an uncertainty map is produced
/// through tiles too.
#[test]
fn tiled_restoration_matches_whole_image_restoration() {
    let device = Device::flex();
    let model = Restorer::pretrained(&device).unwrap();
    let clean = photo("coffee.png").crop(0, 0, 320, 224).unwrap();
    let input = noisy(&clean, 25.0, 3);
    let whole = model
        .restore_image(&input, &RestoreOptions::default(), &device, |_, _| {})
        .unwrap();
    assert!(whole.tiles.is_none());
    let mut calls = Vec::new();
    let tiles = TileConfig {
        tile: 128,
        overlap: 32,
    };
    let options = RestoreOptions {
        tiles: Some(tiles),
        ..RestoreOptions::default()
    };
    let tiled = model
        .restore_image(&input, &options, &device, |d, n| calls.push((d, n)))
        .unwrap();
    assert_eq!(tiled.tiles, Some(tiles));
    assert_eq!(calls.last(), Some(&(6, 6)), "3 × 2 tiles");
    let (pw, pt) = (
        psnr(&whole.image, &clean).unwrap(),
        psnr(&tiled.image, &clean).unwrap(),
    );
    let agreement = psnr(&tiled.image, &whole.image).unwrap();
    println!(
        "whole image {pw:.3} dB, 128² tiles with overlap 32: {pt:.3} dB; \
         tiled vs whole {agreement:.2} dB"
    );
    assert!(pt >= pw - 0.05, "whole {pw:.3} dB, tiled {pt:.3} dB");
    assert!(agreement > 40.0, "tiled vs whole: {agreement:.2} dB");

    let sampled = model
        .restore_image(
            &input,
            &RestoreOptions {
                samples: 3,
                ..options
            },
            &device,
            |_, _| {},
        )
        .unwrap();
    let u = sampled.uncertainty.unwrap();
    assert_eq!((u.width, u.height), (320, 224));
    assert!(u.data.iter().all(|v| v.is_finite() && *v >= 0.0));
    assert!(u.data.iter().any(|&v| v > 0.0), "sampled prompts differ");
}

/// A memory budget too small for the whole image makes the restoration tile by itself.
#[test]
fn a_small_memory_budget_selects_tiles() {
    let device = Device::flex();
    let model = small_model(&device);
    let input = Image::filled(200, 150, [0.3, 0.5, 0.7]);
    let options = RestoreOptions {
        memory_budget: 80 << 20,
        ..RestoreOptions::default()
    };
    let r = model
        .restore_image(&input, &options, &device, |_, _| {})
        .unwrap();
    let t = r.tiles.expect("tiled");
    assert!(t.tile < 200, "{t:?}");
    let dir = temp_dir("restore-write");
    let out = dir.join("flat.jpg");
    write_image(&out, &r.image).unwrap();
    assert_eq!(read_image(&out).unwrap().width, 200);
    fs::remove_dir_all(&dir).ok();
}

/// `image` turned clockwise by `turns` quarter turns, then mirrored left–right if `mirrored`.
fn view(image: &Image, turns: usize, mirrored: bool) -> Image {
    let mut v = image.clone();
    for _ in 0..turns {
        let (w, h) = (v.width, v.height);
        let mut data = Vec::with_capacity(v.data.len());
        for c in 0..3 {
            for y in 0..w {
                for x in 0..h {
                    data.push(v.get(c, y, h - 1 - x));
                }
            }
        }
        v = Image::from_planar(h, w, data).unwrap();
    }
    if mirrored {
        let w = v.width;
        for c in 0..3 {
            for row in v.channel_mut(c).chunks_mut(w) {
                row.reverse();
            }
        }
    }
    v
}

/// What [`view`] did, undone.
fn unview(image: &Image, turns: usize, mirrored: bool) -> Image {
    view(&view(image, 0, mirrored), (4 - turns) % 4, false)
}

/// The self-ensemble restores the image under 2, 4 or 8 of its flips and quarter turns, undoes
/// each and averages them (the documented order: identity, mirrored, upside down, turned 180°,
/// then the transposed four), and averages the predicted probabilities too; other counts are
/// refused.
#[test]
fn the_self_ensemble_averages_the_restorations_of_the_turned_and_mirrored_image() {
    let device = Device::flex();
    let model = small_model(&device);
    // not square, not a multiple of 8: the views are padded each in its own way
    let input = noisy(&Image::filled(21, 13, [0.2, 0.5, 0.8]), 30.0, 4);
    let options = |ensemble| RestoreOptions {
        keep_clean: false,
        ensemble,
        ..RestoreOptions::default()
    };
    let restore = |x: &Image, ensemble| {
        model
            .restore_image(x, &options(ensemble), &device, |_, _| {})
            .unwrap()
    };
    // (quarter turns clockwise, mirrored): identity, mirrored, upside down, turned 180°; the
    // last four are the transposed image and its flips
    let views = [
        (0, false),
        (0, true),
        (2, true),
        (2, false),
        (1, true),
        (1, false),
        (3, false),
        (3, true),
    ];
    for n in [2, 4, 8] {
        let singles: Vec<_> = views[..n]
            .iter()
            .map(|&(t, m)| {
                let r = restore(&view(&input, t, m), 1);
                (unview(&r.image, t, m), r.degradation.unwrap())
            })
            .collect();
        let ensembled = restore(&input, n);
        let mut expected = vec![0.0f32; input.data.len()];
        for (image, _) in &singles {
            for (e, v) in expected.iter_mut().zip(&image.data) {
                *e += v / n as f32;
            }
        }
        let worst = ensembled
            .image
            .data
            .iter()
            .zip(&expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-5, "{n} views: off by {worst}");
        let d = ensembled.degradation.unwrap();
        for (j, (name, p)) in d.all.iter().enumerate() {
            let mean = singles.iter().map(|(_, s)| s.all[j].1).sum::<f32>() / n as f32;
            assert!(
                (p - mean).abs() < 1e-5,
                "{n} views, p({name}) {p} vs {mean}"
            );
        }
    }
    for bad in [0, 3, 16] {
        let err = model
            .restore_image(&input, &options(bad), &device, |_, _| {})
            .unwrap_err();
        assert!(
            err.to_string().contains(&format!("not {bad}")),
            "{bad}: {err}"
        );
    }
}

/// With the built-in weights the eight-view self-ensemble restores a held-out noisy photograph
/// better than a single pass, whole or in tiles.
#[test]
fn the_self_ensemble_of_the_default_weights_gains_on_a_held_out_photograph() {
    let device = Device::flex();
    let model = Restorer::pretrained(&device).unwrap();
    let clean = photo("chelsea.png").crop(120, 40, 160, 160).unwrap();
    let input = noisy(&clean, 25.0, 7);
    for tiles in [
        None,
        Some(TileConfig {
            tile: 96,
            overlap: 16,
        }),
    ] {
        let score = |ensemble| {
            let options = RestoreOptions {
                tiles,
                ensemble,
                ..RestoreOptions::default()
            };
            let r = model
                .restore_image(&input, &options, &device, |_, _| {})
                .unwrap();
            assert_eq!(r.degradation.unwrap().name, "noise");
            psnr(&r.image, &clean).unwrap()
        };
        let (one, eight) = (score(1), score(8));
        println!("tiles {tiles:?}: one view {one:.3} dB, eight views {eight:.3} dB");
        assert!(
            eight > one + 0.1,
            "tiles {tiles:?}: {one:.3} → {eight:.3} dB"
        );
    }
}

/// With the built-in weights the attention maps are computed in windows of the size of the
/// training crops (`RestoreOptions::local_attention`), which removes far more haze than
/// attention over the whole image, in one pass; asked for, a photograph taken for haze is
/// restored again in tiles of that size (`RestoreOptions::haze_tiles`), exactly as an explicit
/// tiling would, and a noisy one is not.
#[test]
fn hazy_photographs_are_restored_with_the_attention_of_the_training_crop_size() {
    use dppd::degrade::Haze;
    use dppd::restore::{HAZE_TILES, LOCAL_ATTENTION};
    let device = Device::flex();
    let model = Restorer::pretrained(&device).unwrap();
    let clean = photo("coffee.png").crop(100, 60, 384, 256).unwrap();
    let hazy = Haze::fixed(2.0, 0.9).apply(&clean, &mut rng_from_seed(3));
    let restore = |image: &Image, options: RestoreOptions| {
        let options = RestoreOptions {
            keep_clean: false,
            ..options
        };
        model
            .restore_image(image, &options, &device, |_, _| {})
            .unwrap()
    };
    let local = restore(&hazy, RestoreOptions::default());
    assert_eq!(local.degradation.as_ref().unwrap().name, "haze");
    assert_eq!(local.tiles, None);
    let global = restore(
        &hazy,
        RestoreOptions {
            local_attention: None,
            ..RestoreOptions::default()
        },
    );
    assert_eq!(global.tiles, None);
    // the model's own setting is what the options set: the same restoration
    let mut windowed = model.clone();
    windowed.set_local_attention(Some(LOCAL_ATTENTION)).unwrap();
    let direct = windowed
        .restore_image(
            &hazy,
            &RestoreOptions {
                keep_clean: false,
                ..RestoreOptions::default()
            },
            &device,
            |_, _| {},
        )
        .unwrap();
    assert_eq!(direct.image.data, local.image.data);

    let routed = restore(
        &hazy,
        RestoreOptions {
            haze_tiles: Some(HAZE_TILES),
            ..RestoreOptions::default()
        },
    );
    assert_eq!(routed.tiles, Some(HAZE_TILES));
    let explicit = restore(
        &hazy,
        RestoreOptions {
            tiles: Some(HAZE_TILES),
            ..RestoreOptions::default()
        },
    );
    assert_eq!(routed.image.data, explicit.image.data);
    let psnr_of = |r: &dppd::restore::Restoration| psnr(&r.image, &clean).unwrap();
    let (input, global, local, tiled) = (
        psnr(&hazy, &clean).unwrap(),
        psnr_of(&global),
        psnr_of(&local),
        psnr_of(&routed),
    );
    println!(
        "hazy input {input:.2} dB, global attention {global:.2} dB, local attention {local:.2} dB, \
         haze tiles {tiled:.2} dB"
    );
    assert!(local > global + 1.0, "{global:.2} → {local:.2} dB");
    assert!(tiled > global + 1.0, "{global:.2} → {tiled:.2} dB");

    let noisy = noisy(&clean, 25.0, 7);
    let r = restore(
        &noisy,
        RestoreOptions {
            haze_tiles: Some(HAZE_TILES),
            ..RestoreOptions::default()
        },
    );
    assert_eq!(r.degradation.unwrap().name, "noise");
    assert_eq!(r.tiles, None);

    let bad = TileConfig {
        tile: 100,
        overlap: 8,
    };
    for options in [
        RestoreOptions {
            haze_tiles: Some(bad),
            ..RestoreOptions::default()
        },
        RestoreOptions {
            local_attention: Some(bad),
            ..RestoreOptions::default()
        },
    ] {
        let err = model
            .restore_image(&hazy, &options, &device, |_, _| {})
            .unwrap_err();
        assert!(err.to_string().contains("multiple of 8"), "{err}");
    }
}
