//! Dataset, layout and loader checks on small images in temporary folders.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use burn::tensor::Device;

use super::*;
use crate::Error;
use crate::degrade::{Degradation, GaussianNoise, Task};
use crate::test_util::TempDir;

fn photo(w: usize, h: usize, k: usize) -> Image {
    let mut data = Vec::new();
    for c in 0..3 {
        for y in 0..h {
            for x in 0..w {
                data.push(((x * (3 + k) + y * 5 + c * 40 + k * 17) % 200 + 28) as f32 / 255.0);
            }
        }
    }
    Image::from_planar(w, h, data).unwrap()
}

fn put(root: &Path, rel: &str, img: &Image) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    write_image(&p, img).unwrap();
}

fn problems(e: Error) -> String {
    match e {
        Error::Dataset(msg) => msg,
        other => panic!("expected Error::Dataset, got {other:?}"),
    }
}

#[test]
fn rain100l_pairs_by_name_and_reports_every_mismatch() {
    let t = TempDir::new("r100");
    for n in ["rain-1.png", "rain-2.png"] {
        put(&t.0, &format!("input/{n}"), &photo(8, 8, 1));
        put(&t.0, &format!("target/{n}"), &photo(8, 8, 2));
    }
    let ok = rain100l(&t.0).unwrap();
    assert_eq!(ok.len(), 2);
    assert!(ok.iter().all(|e| e.task == Task::Derain));

    put(&t.0, "input/rain-3.png", &photo(8, 8, 1));
    put(&t.0, "input/rain-4.png", &photo(8, 8, 1));
    put(&t.0, "target/rain-04.png", &photo(8, 8, 1));
    fs::write(t.0.join("target/notes.txt"), "x").unwrap();
    let msg = problems(rain100l(&t.0).unwrap_err());
    for needle in [
        "input/rain-3.png: no matching target/rain-3.png",
        "input/rain-4.png: no matching target/rain-4.png",
        "target/rain-04.png: no matching input/rain-04.png",
        "target/notes.txt: not a .png/.jpg/.jpeg file",
        "4 problem(s)",
    ] {
        assert!(msg.contains(needle), "missing {needle:?} in:\n{msg}");
    }
    let empty = TempDir::new("r100-empty");
    let msg = problems(rain100l(&empty.0).unwrap_err());
    assert!(
        msg.contains("input/: missing") && msg.contains("target/: missing"),
        "{msg}"
    );
}

#[test]
fn sots_matches_hazy_names_to_clean_names() {
    let t = TempDir::new("sots");
    put(&t.0, "hazy/0001_0.8_0.2.jpg", &photo(16, 16, 1));
    put(&t.0, "hazy/0001_0.9_0.1.jpg", &photo(16, 16, 1));
    put(&t.0, "gt/0001.png", &photo(16, 16, 2));
    let e = sots_outdoor(&t.0).unwrap();
    assert_eq!(e.len(), 2);
    assert!(e.iter().all(
        |e| matches!(&e.source, Source::Pair { clean, .. } if clean.ends_with("gt/0001.png"))
    ));

    put(&t.0, "hazy/0002_0.8_0.2.jpg", &photo(16, 16, 1));
    put(&t.0, "hazy/0003.jpg", &photo(16, 16, 1));
    put(&t.0, "gt/0004.png", &photo(16, 16, 1));
    let msg = problems(sots_outdoor(&t.0).unwrap_err());
    for needle in [
        "hazy/0002_0.8_0.2.jpg: no clean image gt/0002.png",
        "hazy/0003.jpg: name does not follow NAME_A_BETA.ext",
        "gt/0004.png: no hazy image refers to it",
    ] {
        assert!(msg.contains(needle), "missing {needle:?} in:\n{msg}");
    }
}

#[test]
fn promptir_layout_follows_the_official_naming_rules() {
    let t = TempDir::new("pir");
    let root = t.0.join("Train");
    put(&root, "Denoise/a.png", &photo(16, 16, 1));
    put(&root, "Denoise/b.jpg", &photo(16, 16, 2));
    put(&root, "Derain/rainy/rain-1.png", &photo(16, 16, 3));
    put(&root, "Derain/gt/norain-1.png", &photo(16, 16, 4));
    put(
        &root,
        "Dehaze/synthetic/part1/0025_0.8_0.04.jpg",
        &photo(16, 16, 5),
    );
    put(&root, "Dehaze/original/0025.jpg", &photo(16, 16, 6));
    let entries = promptir_train(&root, &Task::THREE_TASK, None).unwrap();
    let count = |t: Task| entries.iter().filter(|e| e.task == t).count();
    assert_eq!(
        [
            Task::Denoise15,
            Task::Denoise25,
            Task::Denoise50,
            Task::Derain,
            Task::Dehaze
        ]
        .map(count),
        [2, 2, 2, 1, 1]
    );
    let hazy = entries.iter().find(|e| e.task == Task::Dehaze).unwrap();
    assert!(
        matches!(&hazy.source, Source::Pair { clean, .. } if clean.ends_with("Dehaze/original/0025.jpg"))
    );

    // PromptIR's balance: ×3 per noise level, ×120 rain, ×1 haze
    let balanced = balance(entries.clone(), &promptir_weights());
    assert_eq!(balanced.len(), 3 * 2 * 3 + 120 + 1);

    // misnamed and missing files, all reported
    put(&root, "Derain/rainy/rainy-2.png", &photo(16, 16, 3));
    put(&root, "Derain/rainy/rain-3.png", &photo(16, 16, 3));
    put(&root, "Derain/gt/norain-9.png", &photo(16, 16, 3));
    put(
        &root,
        "Dehaze/synthetic/part2/0030_1_0.2.jpg",
        &photo(16, 16, 3),
    );
    put(&root, "Dehaze/original/0030.png", &photo(16, 16, 3));
    let msg = problems(promptir_train(&root, &Task::THREE_TASK, None).unwrap_err());
    for needle in [
        "Derain/rainy/rainy-2.png: name does not follow rain-N.ext",
        "Derain/rainy/rain-3.png: no clean image Derain/gt/norain-3.png",
        "Derain/gt/norain-9.png: no rainy image refers to it",
        "Dehaze/synthetic/part2/0030_1_0.2.jpg: no clean image Dehaze/original/0030.jpg",
        "Dehaze/original/0030.png: no hazy image refers to it",
    ] {
        assert!(msg.contains(needle), "missing {needle:?} in:\n{msg}");
    }

    // with PromptIR's file lists: listed files that are missing are named
    let lists = t.0.join("data_dir");
    fs::create_dir_all(lists.join("noisy")).unwrap();
    fs::create_dir_all(lists.join("rainy")).unwrap();
    fs::create_dir_all(lists.join("hazy")).unwrap();
    fs::write(lists.join("noisy/denoise.txt"), "a.png\nzzz.png\n").unwrap();
    fs::write(
        lists.join("rainy/rainTrain.txt"),
        "rainy/rain-1.png\nrainy/rain-7.png\n",
    )
    .unwrap();
    fs::write(
        lists.join("hazy/hazy_outside.txt"),
        "synthetic/part1/0025_0.8_0.04.jpg\n",
    )
    .unwrap();
    let msg = problems(promptir_train(&root, &Task::THREE_TASK, Some(&lists)).unwrap_err());
    assert!(
        msg.contains("Denoise/zzz.png: listed in noisy/denoise.txt but missing"),
        "{msg}"
    );
    assert!(
        msg.contains("Derain/rainy/rain-7.png: listed in rainy/rainTrain.txt but missing"),
        "{msg}"
    );
    assert!(
        !msg.contains("norain-9"),
        "unlisted files are not checked: {msg}"
    );
    fs::write(lists.join("noisy/denoise.txt"), "a.png\n").unwrap();
    fs::write(lists.join("rainy/rainTrain.txt"), "rainy/rain-1.png\n").unwrap();
    let listed = promptir_train(&root, &Task::THREE_TASK, Some(&lists)).unwrap();
    assert_eq!(listed.len(), 3 + 1 + 1);
}

#[test]
fn training_samples_are_aligned_cropped_and_reproducible() {
    let t = TempDir::new("train");
    put(&t.0, "a.png", &photo(40, 36, 1));
    put(&t.0, "b.png", &photo(33, 50, 2));
    let mix = TaskMix::uniform(&[Task::Denoise15, Task::Derain]).weight(Task::Denoise15, 2.0);
    let entries = synthetic_entries(&t.0, &mix).unwrap();
    assert_eq!(entries.len(), 2 * 2 + 2);
    let ds = RestoreDataset::train(entries, 24, 7);
    for i in 0..ds.len() {
        let s = ds.get(i, 0).unwrap();
        assert_eq!((s.degraded.width, s.degraded.height), (24, 24));
        assert_eq!((s.clean.width, s.clean.height), (24, 24));
        assert_eq!(
            s,
            ds.get(i, 0).unwrap(),
            "same epoch and index, same sample"
        );
        assert_ne!(
            s.clean,
            ds.get(i, 1).unwrap().clean,
            "another epoch, another crop"
        );
        if s.task == Task::Denoise15 {
            // aligned: only the noise separates them (misalignment would add the texture)
            let mse: f32 = s
                .degraded
                .data
                .iter()
                .zip(&s.clean.data)
                .map(|(a, b)| (a - b).powi(2))
                .sum::<f32>()
                / s.clean.data.len() as f32;
            let sigma = mse.sqrt() * 255.0;
            assert!((11.0..19.0).contains(&sigma), "σ estimate {sigma}");
        }
    }
    // paired data: crops and flips identical on both sides
    put(&t.0, "pairs/input/x.png", &photo(30, 30, 3));
    put(
        &t.0,
        "pairs/target/x.png",
        &photo(30, 30, 3).map(|v| 1.0 - v),
    );
    let pairs = RestoreDataset::train(rain100l(&t.0.join("pairs")).unwrap(), 16, 1);
    for epoch in 0..8 {
        let s = pairs.get(0, epoch).unwrap();
        for (d, c) in s.degraded.data.iter().zip(&s.clean.data) {
            assert!((d + c - 1.0).abs() < 1.5 / 255.0);
        }
    }
    // an image smaller than the crop is a clear error naming the file
    put(&t.0, "small/tiny.png", &photo(10, 12, 1));
    let small = RestoreDataset::train(
        synthetic_entries(&t.0.join("small"), &TaskMix::uniform(&[Task::Denoise25])).unwrap(),
        16,
        0,
    );
    let e = small.get(0, 0).unwrap_err().to_string();
    assert!(
        e.contains("tiny.png") && e.contains("smaller than the 16×16 crop"),
        "{e}"
    );
}

#[test]
fn large_photographs_are_downscaled_and_the_cache_changes_nothing() {
    let t = TempDir::new("maxside");
    put(&t.0, "wide.png", &photo(120, 60, 3));
    put(&t.0, "small.png", &photo(30, 20, 4));
    let entries = synthetic_entries(&t.0, &TaskMix::uniform(&[Task::Denoise25])).unwrap();
    let plain = RestoreDataset::test(entries.clone(), 5);
    let limited = RestoreDataset::test(entries.clone(), 5).with_max_side(Some(48));
    let sizes = |ds: &RestoreDataset| -> Vec<(usize, usize)> {
        (0..ds.len())
            .map(|i| {
                let s = ds.get(i, 0).unwrap();
                (s.clean.width, s.clean.height)
            })
            .collect()
    };
    // test mode crops to a multiple of 16: 120×60 → 112×48; downscaled 48×24 → 48×16
    assert_eq!(sizes(&plain), vec![(16, 16), (112, 48)]);
    assert_eq!(sizes(&limited), vec![(16, 16), (48, 16)]);
    let train = RestoreDataset::train(entries.clone(), 16, 9).with_max_side(Some(48));
    let cached = train.clone().with_cache(true);
    for i in 0..train.len() {
        for epoch in 0..3 {
            assert_eq!(train.get(i, epoch).unwrap(), cached.get(i, epoch).unwrap());
        }
    }
}

#[test]
fn synthetic_samples_are_stored_as_8_bit_files_unless_told_otherwise() {
    // Haze and rain are continuous, and a downscaled photograph is too; a sample is rounded
    // to k/255 as the files a user restores are (the clean photograph first, then the
    // degraded one), and `Quantization::None` keeps them as computed.
    use crate::degrade::Quantization;
    let t = TempDir::new("eight-bit");
    put(&t.0, "p.png", &photo(120, 80, 2));
    let on_grid = |img: &Image| {
        img.data
            .iter()
            .all(|v| (v * 255.0 - (v * 255.0).round()).abs() < 1e-3)
    };
    for task in [Task::Dehaze, Task::Derain, Task::Clean] {
        let entry = Entry::synthetic(t.0.join("p.png"), None, task);
        for ds in [
            RestoreDataset::train(vec![entry.clone()], 48, 3).with_max_side(Some(100)),
            RestoreDataset::test(vec![entry], 3).with_max_side(Some(100)),
        ] {
            assert_eq!(ds.quantization(), Quantization::Round);
            let s = ds.get(0, 0).unwrap();
            assert!(on_grid(&s.degraded), "{task}: degraded off the 8-bit grid");
            assert!(on_grid(&s.clean), "{task}: clean off the 8-bit grid");
            let continuous = ds.with_quantization(Quantization::None).get(0, 0).unwrap();
            assert!(
                !on_grid(&continuous.degraded),
                "{task}: degraded rounded anyway"
            );
            assert!(!on_grid(&continuous.clean), "{task}: clean rounded anyway");
            // the rounding of the clean photograph (≤ ½ level, and the depth proxy haze
            // computes from it) and of the result (≤ ½ level): close, not equal
            let gap = s
                .degraded
                .data
                .iter()
                .zip(&continuous.degraded.data)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(gap <= 2.0 / 255.0, "{task}: {gap}");
            if task == Task::Clean {
                assert_eq!(s.degraded, s.clean, "a clean input is its target");
            }
        }
    }
}

#[test]
fn test_mode_is_fixed_per_image_whatever_the_order() {
    let t = TempDir::new("testmode");
    put(&t.0, "a.png", &photo(37, 21, 1));
    put(&t.0, "b.png", &photo(20, 20, 2));
    let entries = synthetic_entries(&t.0, &TaskMix::uniform(&[Task::Denoise50])).unwrap();
    let ds = RestoreDataset::test(entries.clone(), 42);
    let a = ds.get(0, 0).unwrap();
    assert_eq!(
        (a.degraded.width, a.degraded.height),
        (32, 16),
        "cropped to multiples of 16"
    );
    assert_eq!(a, ds.get(0, 5).unwrap(), "epoch does not matter");
    let reversed = RestoreDataset::test(entries.into_iter().rev().collect(), 42);
    assert_eq!(
        a,
        reversed.get(1, 0).unwrap(),
        "index does not matter, the name does"
    );
    let other = RestoreDataset::test(reversed.entries().to_vec(), 43);
    assert_ne!(
        a.degraded,
        other.get(1, 0).unwrap().degraded,
        "the base seed does"
    );
}

#[test]
fn loader_batches_in_a_seeded_order_independent_of_workers() {
    let t = TempDir::new("loader");
    for k in 0..5 {
        put(&t.0, &format!("p{k}.png"), &photo(20, 20, k));
    }
    let mix = TaskMix::default()
        .with(
            Task::Denoise25,
            Degradation::Noise(GaussianNoise::new(25.0)),
            1.0,
        )
        .with(Task::Dehaze, Task::Dehaze.degradation(), 1.0);
    let ds = Arc::new(RestoreDataset::train(
        synthetic_entries(&t.0, &mix).unwrap(),
        16,
        3,
    ));
    assert_eq!(ds.len(), 10);
    let device = Device::default();
    let run = |workers: usize, seed: u64| {
        let cfg = LoaderConfig {
            batch_size: 4,
            workers,
            seed,
            prefetch: 4,
            ..Default::default()
        };
        let loader = Loader::new(ds.clone(), cfg, device.clone());
        assert_eq!(loader.num_batches(), 2);
        loader
            .epoch(0)
            .map(|b| {
                let b = b.unwrap();
                assert_eq!(b.degraded.dims(), [4, 3, 16, 16]);
                assert_eq!(b.clean.dims(), [4, 3, 16, 16]);
                let labels: Vec<i64> = b.labels.into_data().try_into_vec_as::<i64>().unwrap();
                let expect: Vec<i64> = b.tasks.iter().map(|t| t.label() as i64).collect();
                assert_eq!(labels, expect);
                (
                    b.names,
                    b.degraded.into_data().try_into_vec_as::<f32>().unwrap(),
                )
            })
            .collect::<Vec<_>>()
    };
    let a = run(0, 9);
    assert_eq!(a, run(3, 9), "workers do not change the batches");
    let names = |v: &[(Vec<String>, Vec<f32>)]| v.iter().map(|x| x.0.clone()).collect::<Vec<_>>();
    assert_ne!(names(&a), names(&run(2, 10)), "another seed, another order");
    // dropping an iterator early stops its workers
    let cfg = LoaderConfig {
        batch_size: 2,
        workers: 2,
        ..Default::default()
    };
    let loader = Loader::new(ds.clone(), cfg, device);
    let mut it = loader.epoch(1);
    assert!(it.next().unwrap().is_ok());
    drop(it);
}

#[test]
fn the_repository_photographs_and_depth_load() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/photos");
    let photo = read_image(dir.join("motorcycle_left.png")).unwrap();
    assert_eq!((photo.width, photo.height), (741, 500));
    let depth = read_depth(dir.join("motorcycle_left_depth.png")).unwrap();
    assert_eq!((depth.width, depth.height), (741, 500));
    let known: Vec<f32> = depth
        .data
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .collect();
    let (lo, hi) = known
        .iter()
        .fold((f32::MAX, 0.0f32), |(l, h), &v| (l.min(v), h.max(v)));
    assert_eq!(
        (lo, hi),
        (2110.0, 5017.0),
        "millimetres, as LICENSES.md states"
    );
    let coins = read_image(dir.join("coins.png")).unwrap();
    assert_eq!(
        coins.channel(0),
        coins.channel(2),
        "grayscale expanded to RGB"
    );
    let hopper = read_image(dir.join("grace_hopper.jpg")).unwrap();
    assert_eq!((hopper.width, hopper.height), (512, 600));
    let listed = list_images(&dir).unwrap();
    assert_eq!(
        listed.len(),
        7,
        "depth maps are not photographs: {listed:?}"
    );
}

#[test]
fn a_hazed_test_image_is_the_photograph_hazed_with_its_depth_map_cached_or_not() {
    // Test mode hazes the whole photograph with its depth map file, resampled to it (read
    // once and kept when the dataset caches): the same image on every read, cached or not.
    use crate::degrade::{Haze, Quantization, rng_from_seed};
    let photos = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/photos");
    let clean = photos.join("motorcycle_left.png");
    let depth_file = photos.join("motorcycle_left_depth.png");
    let photo = read_image(&clean).unwrap().resized(370, 250);
    let depth = read_depth(&depth_file).unwrap().resized(370, 250);
    for cache in [true, false] {
        let entry = Entry::synthetic(clean.clone(), Some(depth_file.clone()), Task::Dehaze);
        let ds = RestoreDataset::test(vec![entry], 5)
            .with_max_side(Some(370))
            .with_cache(cache);
        let mut rng = rng_from_seed(ds.sample_seed(0, 0));
        // stored as 8-bit files: the downscaled photograph, then the hazed one
        let photo = Quantization::Round.apply(&photo);
        let whole = Haze::default().apply_with_depth(&photo, Some(&depth), &mut rng);
        let whole = Quantization::Round.apply(&whole);
        for _ in 0..2 {
            let sample = ds.get(0, 0).unwrap();
            assert_eq!(sample.degraded, whole.crop_to_multiple(16).unwrap());
            assert_eq!(sample.clean, photo.crop_to_multiple(16).unwrap());
        }
    }
    // cached, the depth map file is read once: a copy removed after the first sample is not
    // missed; uncached, it is read again, and its absence is an error naming it
    for cache in [true, false] {
        let t = TempDir::new("depth-once");
        let copy = t.0.join("depth.png");
        std::fs::copy(&depth_file, &copy).unwrap();
        let entry = Entry::synthetic(clean.clone(), Some(copy.clone()), Task::Dehaze);
        let ds = RestoreDataset::test(vec![entry], 5)
            .with_max_side(Some(370))
            .with_cache(cache);
        let first = ds.get(0, 0).unwrap();
        std::fs::remove_file(&copy).unwrap();
        match ds.get(0, 0) {
            Ok(again) => {
                assert!(cache, "read the removed depth map file");
                assert_eq!(again.degraded, first.degraded);
            }
            Err(e) => {
                assert!(!cache, "the cache did not keep the depth map: {e}");
                assert!(e.to_string().contains("depth.png"), "{e}");
            }
        }
    }
}

#[test]
fn a_hazed_training_crop_is_the_crop_of_the_whole_photograph_hazed() {
    // The loader hazes only the crop, with the crop of the photograph's relative depth: the
    // sample must be, bit for bit, the crop of the photograph hazed whole with the same
    // generator (with a measured depth map and with the depth proxy, cached or not), stored
    // as an 8-bit file.
    use crate::degrade::{Haze, Quantization, rng_from_seed};
    let photos = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/photos");
    let clean = photos.join("motorcycle_left.png");
    let depth_file = photos.join("motorcycle_left_depth.png");
    // stored as an 8-bit file (the decoder's k/255 may differ from it by a float rounding)
    let photo = Quantization::Round.apply(&read_image(&clean).unwrap());
    let depth = read_depth(&depth_file).unwrap();
    for depth_file in [Some(depth_file.clone()), None] {
        for cache in [true, false] {
            let entry = Entry::synthetic(clean.clone(), depth_file.clone(), Task::Dehaze);
            let ds = RestoreDataset::train(vec![entry], 64, 3).with_cache(cache);
            for epoch in 0..3 {
                let sample = ds.get(0, epoch).unwrap();
                let mut rng = rng_from_seed(ds.sample_seed(0, epoch));
                let (x, y) = random_crop_origin(photo.width, photo.height, 64, &mut rng).unwrap();
                let t = Dihedral::random_non_identity(&mut rng);
                let map = depth_file.as_ref().map(|_| &depth);
                let whole = Haze::default().apply_with_depth(&photo, map, &mut rng);
                let whole = Quantization::Round.apply(&whole);
                assert_eq!(sample.degraded, t.apply(&whole.crop(x, y, 64, 64).unwrap()));
                assert_eq!(sample.clean, t.apply(&photo.crop(x, y, 64, 64).unwrap()));
            }
        }
    }
}
