//! Photos as users have them: EXIF orientation, WebP/TIFF/BMP, 16-bit and grey files, long
//! panoramas, and a restoration that would write over its own input.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use common::photos::*;
use common::train::temp_dir;
use dppd::Error;
use dppd::data::io::{FileFormat, MAX_IMAGE_PIXELS, PixelFormat};
use dppd::data::{Image, read_image, read_image_with_info, write_image, write_image_as};
use dppd::model::{Restorer, RestorerConfig};
use dppd::restore::{RestoreOptions, restore_file, restore_folder};
use image::metadata::Orientation;
use image::{DynamicImage, ImageFormat};

fn small_model(device: &Device) -> Restorer {
    RestorerConfig::dppd_small().init(device)
}

/// The stored pixels turned upright by the image crate's own `apply_orientation`.
fn upright(stored: &[u8], orientation: u8) -> image::RgbImage {
    let mut img = image::load_from_memory(stored).unwrap();
    img.apply_orientation(Orientation::from_exif(orientation).unwrap());
    img.to_rgb8()
}

fn assert_same_pixels(ours: &Image, expected: &image::RgbImage, what: &str) {
    assert_eq!(
        (ours.width as u32, ours.height as u32),
        expected.dimensions(),
        "{what}: size"
    );
    for (x, y, px) in expected.enumerate_pixels() {
        for c in 0..3 {
            let v = (ours.get(c, x as usize, y as usize) * 255.0).round() as u8;
            assert_eq!(v, px.0[c], "{what}: channel {c} at ({x}, {y})");
        }
    }
}

#[test]
fn a_phone_photo_with_an_exif_rotation_comes_out_upright() {
    let dir = temp_dir("photos-exif");
    let stored = corner_marked(40, 24);
    // every orientation, in a JPEG's APP1 segment as cameras write it
    for o in 1..=8u8 {
        let bytes = jpeg_with_exif(&stored, o);
        common::fuzz_seed("read_image", &format!("exif-o{o}.jpg"), &bytes);
        let p = dir.join(format!("o{o}.jpg"));
        fs::write(&p, &bytes).unwrap();
        let (img, info) = read_image_with_info(&p).unwrap();
        assert_eq!(info.orientation, o);
        assert_eq!(info.stored_size, (40, 24));
        assert_same_pixels(&img, &upright(&bytes, o), &format!("JPEG orientation {o}"));
    }
    // a damaged EXIF block (its first directory points past its end) counts as upright
    let jpeg = jpeg_with_exif(&stored, 6);
    let mut damaged = jpeg.clone();
    let at = damaged
        .windows(8)
        .position(|w| w == b"II*\0\x08\0\0\0")
        .unwrap();
    damaged[at + 4..at + 8].copy_from_slice(&0xFFFF_FF00u32.to_le_bytes());
    let p = dir.join("damaged-exif.jpg");
    fs::write(&p, &damaged).unwrap();
    let (img, info) = read_image_with_info(&p).unwrap();
    assert_eq!((info.orientation, img.width, img.height), (1, 40, 24));

    // PNG (eXIf chunk), WebP (EXIF chunk) and TIFF (Orientation tag) carry it too
    let cases: Vec<(&str, Vec<u8>, u8)> = vec![
        ("png", png_with_exif(&stored, 6), 6),
        ("webp", webp_with_exif(&stored, 8), 8),
        ("tif", tiff_rgb8(&stored, Some(6)), 6),
        ("tiff", tiff_rgb8(&stored, Some(3)), 3),
    ];
    for (ext, bytes, o) in cases {
        let p = dir.join(format!("rotated.{ext}"));
        common::fuzz_seed("read_image", &format!("exif-o{o}.{ext}"), &bytes);
        fs::write(&p, &bytes).unwrap();
        let (img, info) = read_image_with_info(&p).unwrap();
        assert_eq!(info.orientation, o, "{ext}");
        let mut expected = DynamicImage::ImageRgb8(stored.clone());
        expected.apply_orientation(Orientation::from_exif(o).unwrap());
        assert_same_pixels(&img, &expected.to_rgb8(), ext);
    }

    // restored: the output is upright (24 wide, 40 high), as every viewer shows the input
    let device = Device::flex();
    let model = small_model(&device);
    let input = dir.join("o6.jpg");
    let out = dir.join("o6-restored.png");
    restore_file(
        &model,
        &input,
        &out,
        &RestoreOptions::default(),
        &device,
        |_, _| {},
    )
    .unwrap();
    let (back, info) = read_image_with_info(&out).unwrap();
    assert_eq!((back.width, back.height), (24, 40));
    assert_eq!(info.orientation, 1, "the output carries no rotation");
    fs::remove_dir_all(&dir).ok();
}

#[test]
fn webp_tiff_and_bmp_photos_are_read_restored_and_written() {
    let dir = temp_dir("photos-formats");
    let device = Device::flex();
    let model = small_model(&device);
    let stored = corner_marked(33, 20);
    let files: Vec<(&str, Vec<u8>, FileFormat)> = vec![
        (
            "lossless.webp",
            encoded(DynamicImage::ImageRgb8(stored.clone()), ImageFormat::WebP),
            FileFormat::WebP,
        ),
        (
            "scan.tiff",
            encoded(DynamicImage::ImageRgb8(stored.clone()), ImageFormat::Tiff),
            FileFormat::Tiff,
        ),
        ("handmade.tif", tiff_rgb8(&stored, None), FileFormat::Tiff),
        (
            "old.bmp",
            encoded(DynamicImage::ImageRgb8(stored.clone()), ImageFormat::Bmp),
            FileFormat::Bmp,
        ),
    ];
    for (name, bytes, format) in &files {
        common::fuzz_seed("read_image", name, bytes);
        let p = dir.join(name);
        fs::write(&p, bytes).unwrap();
        let (img, info) = read_image_with_info(&p).unwrap();
        assert_eq!(info.format, *format, "{name}");
        assert_eq!(info.pixel, PixelFormat::RGB8, "{name}");
        assert_same_pixels(&img, &stored, name);
        // restored into the same format, by the output's extension
        let out = dir.join(format!("restored-{name}"));
        restore_file(
            &model,
            &p,
            &out,
            &RestoreOptions::default(),
            &device,
            |_, _| {},
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        let (back, back_info) = read_image_with_info(&out).unwrap();
        assert_eq!(back_info.format, *format, "{name}");
        assert_eq!((back.width, back.height), (33, 20), "{name}");

        // a truncated copy is refused with a message naming the file; nothing is written
        let cut = dir.join(format!("cut-{name}"));
        fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
        let fresh = dir.join(format!("never-{name}"));
        let e = restore_file(
            &model,
            &cut,
            &fresh,
            &RestoreOptions::default(),
            &device,
            |_, _| {},
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains(&format!("cut-{name}")), "{e}");
        assert!(
            e.contains("truncated") || e.contains("corrupt"),
            "{name}: {e}"
        );
        assert!(!fresh.exists());
    }
    // a folder of them restores as a whole, each in its own format
    let folder = dir.join("mixed");
    fs::create_dir_all(&folder).unwrap();
    for (name, bytes, _) in &files {
        fs::write(folder.join(name), bytes).unwrap();
    }
    let report = restore_folder(
        &model,
        &folder,
        dir.join("mixed-out"),
        &RestoreOptions::default(),
        &device,
        |_| {},
    )
    .unwrap();
    assert_eq!(report.restored.len(), files.len());
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    fs::remove_dir_all(&dir).ok();
}

#[test]
fn sixteen_bit_and_grey_sources_keep_their_depth_and_their_single_channel() {
    let dir = temp_dir("photos-depth");
    let device = Device::flex();
    let model = small_model(&device);
    // a 16-bit grey scan: a smooth ramp whose 16-bit values an 8-bit file cannot hold
    let scan = image::ImageBuffer::<image::Luma<u16>, _>::from_fn(48, 32, |x, y| {
        image::Luma([(x * 1000 + y * 37 + 12345) as u16])
    });
    let cases: Vec<(&str, Vec<u8>, &str, image::ColorType)> = vec![
        (
            "scan16.png",
            encoded(DynamicImage::ImageLuma16(scan.clone()), ImageFormat::Png),
            "scan16-out.png",
            image::ColorType::L16,
        ),
        (
            "scan16.tif",
            encoded(DynamicImage::ImageLuma16(scan.clone()), ImageFormat::Tiff),
            "scan16-out.tif",
            image::ColorType::L16,
        ),
        (
            "rgb16.png",
            encoded(
                DynamicImage::ImageRgb16(image::ImageBuffer::from_fn(48, 32, |x, y| {
                    image::Rgb([(x * 1300) as u16, (y * 2000) as u16, 40_000])
                })),
                ImageFormat::Png,
            ),
            "rgb16-out.tiff",
            image::ColorType::Rgb16,
        ),
        (
            "grey8.jpg",
            encoded(
                DynamicImage::ImageLuma8(image::GrayImage::from_fn(48, 32, |x, _| {
                    image::Luma([(x * 5) as u8])
                })),
                ImageFormat::Jpeg,
            ),
            "grey8-out.jpg",
            image::ColorType::L8,
        ),
        (
            "grey8.png",
            encoded(
                DynamicImage::ImageLuma8(image::GrayImage::from_fn(48, 32, |x, _| {
                    image::Luma([(x * 5) as u8])
                })),
                ImageFormat::Png,
            ),
            // WebP has no grey samples: three equal channels
            "grey8-out.webp",
            image::ColorType::Rgb8,
        ),
        // a 16-bit source written to a format without 16 bits: 8 bits, still grey
        (
            "scan16-b.png",
            encoded(DynamicImage::ImageLuma16(scan.clone()), ImageFormat::Png),
            "scan16-out.jpg",
            image::ColorType::L8,
        ),
    ];
    for (name, bytes, out_name, color) in cases {
        common::fuzz_seed("read_image", name, &bytes);
        let input = dir.join(name);
        fs::write(&input, &bytes).unwrap();
        let out = dir.join(out_name);
        restore_file(
            &model,
            &input,
            &out,
            &RestoreOptions::default(),
            &device,
            |_, _| {},
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        let written = image::open(&out).unwrap();
        assert_eq!(written.color(), color, "{name} → {out_name}");
        assert_eq!((written.width(), written.height()), (48, 32));
        if name.contains("grey") || name.contains("scan") {
            let rgb = written.to_rgb16();
            assert!(
                rgb.pixels().all(|p| p[0] == p[1] && p[1] == p[2]),
                "{out_name}: grey"
            );
        }
    }

    // 16-bit samples survive a write and a read exactly, grey as one channel
    let exact = Image::from_planar(
        3,
        1,
        [12345u16, 40000, 65535]
            .iter()
            .map(|&v| v as f32 / 65535.0)
            .cycle()
            .take(9)
            .collect(),
    )
    .unwrap();
    for (ext, pixel) in [("png", PixelFormat::GREY16), ("tif", PixelFormat::RGB16)] {
        let p = dir.join(format!("exact.{ext}"));
        write_image_as(&p, &exact, pixel).unwrap();
        let (back, info) = read_image_with_info(&p).unwrap();
        assert_eq!(info.pixel, pixel, "{ext}");
        for (a, b) in exact.data.iter().zip(&back.data) {
            assert_eq!((a * 65535.0).round(), (b * 65535.0).round(), "{ext}");
        }
    }
    // grey output is the mean of the three channels
    let colour = Image::from_planar(1, 1, vec![0.3, 0.6, 0.9]).unwrap();
    let p = dir.join("mean.png");
    write_image_as(&p, &colour, PixelFormat::GREY8).unwrap();
    assert_eq!(image::open(&p).unwrap().to_luma8().into_raw(), vec![153]);
    fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_long_panorama_is_restored_and_only_the_pixel_count_is_limited() {
    let dir = temp_dir("photos-panorama");
    let device = Device::flex();
    let model = small_model(&device);
    // 40000×3: far beyond the old 32768-per-side limit, yet only 120000 pixels
    let pano = image::RgbImage::from_fn(40_000, 3, |x, y| {
        image::Rgb([(x % 251) as u8, (y * 80) as u8, ((x / 160) % 256) as u8])
    });
    let input = dir.join("panorama.png");
    fs::write(
        &input,
        encoded(DynamicImage::ImageRgb8(pano), ImageFormat::Png),
    )
    .unwrap();
    let out = dir.join("panorama-restored.png");
    // a small memory budget: restored in tiles
    let options = RestoreOptions {
        memory_budget: 64 << 20,
        ..RestoreOptions::default()
    };
    let r = restore_file(&model, &input, &out, &options, &device, |_, _| {}).unwrap();
    assert!(r.tiles.is_some(), "tiled within 64 MiB");
    let back = read_image(&out).unwrap();
    assert_eq!((back.width, back.height), (40_000, 3));
    assert!(back.data.iter().all(|v| v.is_finite()));

    // the limit that protects memory: the total pixel count, checked from the header
    let over = (MAX_IMAGE_PIXELS / 1000 + 1) as u32;
    for (w, h) in [(over, 1000u32), (100_000, 100_000)] {
        let p = dir.join(format!("claims-{w}x{h}.png"));
        fs::write(&p, png_header_only(w, h)).unwrap();
        let e = read_image(&p).unwrap_err().to_string();
        assert!(
            e.contains(&format!("{w}×{h}")) && e.contains("refusing"),
            "{e}"
        );
    }
    // a long thin header within the pixel limit is not refused for its side: it fails only
    // because its (absent) data is missing
    let p = dir.join("thin.png");
    fs::write(&p, png_header_only(1_000_000, 2)).unwrap();
    let e = read_image(&p).unwrap_err().to_string();
    assert!(!e.contains("refusing"), "{e}");
    fs::remove_dir_all(&dir).ok();
}

fn refused(e: Error) -> String {
    match e {
        Error::Refused { reason, .. } => reason,
        other => panic!("expected Error::Refused, got {other}"),
    }
}

#[test]
fn restore_refuses_to_write_over_its_own_input_unless_asked() {
    let dir = temp_dir("photos-inplace");
    let device = Device::flex();
    let model = small_model(&device);
    let photo = dir.join("photo.png");
    write_image(&photo, &image_of(&corner_marked(24, 16))).unwrap();
    let original = fs::read(&photo).unwrap();
    let options = RestoreOptions::default();

    // the same path, another spelling of it, a hard link: all refused, the file untouched
    let sub = dir.join("sub");
    fs::create_dir_all(&sub).unwrap();
    let link = dir.join("link.png");
    fs::hard_link(&photo, &link).unwrap();
    let spellings: Vec<PathBuf> = vec![
        photo.clone(),
        sub.join("..").join("photo.png"),
        link.clone(),
    ];
    for out in &spellings {
        let e = restore_file(&model, &photo, out, &options, &device, |_, _| {}).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains(&out.display().to_string()), "{msg}");
        let reason = refused(e);
        assert!(
            reason.contains("input file itself")
                && reason.contains("left untouched")
                && reason.contains("--in-place"),
            "{reason}"
        );
        assert_eq!(fs::read(&photo).unwrap(), original);
    }

    // asked for explicitly: replaced, atomically, by its restoration
    let in_place = RestoreOptions {
        in_place: true,
        ..RestoreOptions::default()
    };
    restore_file(&model, &photo, &photo, &in_place, &device, |_, _| {}).unwrap();
    assert_ne!(fs::read(&photo).unwrap(), original);
    assert_eq!(read_image(&photo).unwrap().width, 24);

    // a folder onto itself (or a link to it): refused as a whole, nothing touched
    let folder = dir.join("album");
    fs::create_dir_all(folder.join("2024")).unwrap();
    for name in ["a.png", "2024/b.jpg"] {
        write_image(folder.join(name), &image_of(&corner_marked(16, 16))).unwrap();
    }
    let before = snapshot(&folder);
    let alias = dir.join("album-link");
    #[cfg(unix)]
    std::os::unix::fs::symlink(&folder, &alias).unwrap();
    for out in [folder.clone(), dir.join("album/."), alias.clone()] {
        if !out.exists() {
            continue;
        }
        let e = restore_folder(&model, &folder, &out, &options, &device, |_| {}).unwrap_err();
        let reason = refused(e);
        assert!(
            reason.contains("2 of them") && reason.contains("--in-place"),
            "{reason}"
        );
        assert_eq!(snapshot(&folder), before, "nothing touched");
    }
    let report = restore_folder(&model, &folder, &folder, &in_place, &device, |_| {}).unwrap();
    assert_eq!(report.restored.len(), 2);
    assert!(report.failed.is_empty());
    assert_ne!(snapshot(&folder), before);
    fs::remove_dir_all(&dir).ok();
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.clone(), fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}
