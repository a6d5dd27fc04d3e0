//! Reading and writing image files (PNG and JPEG).
//!
//! Rules (see `docs/data.md`):
//! - the format is taken from the file's *content* (its signature), never from its extension;
//! - 8- and 16-bit files are scaled to `[0, 1]` (`v / 255`, `v / 65535`), grayscale is copied
//!   to all three channels, alpha is dropped (not composited);
//! - a header claiming more than [`MAX_IMAGE_SIDE`] pixels on a side or [`MAX_IMAGE_PIXELS`] in
//!   all is refused before any pixel buffer is allocated;
//! - writing quantises to 8 bits (`round(clamp(v, 0, 1) · 255)`) and is atomic.

use std::fs;
use std::io::{BufReader, Cursor};
use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, Limits};

use super::Image;
use crate::degrade::DepthMap;
use crate::{Error, Result};

/// The largest width or height [`read_image`] accepts.
pub const MAX_IMAGE_SIDE: u32 = 32_768;
/// The largest pixel count (`width · height`) [`read_image`] accepts: 200 megapixels.
pub const MAX_IMAGE_PIXELS: u64 = 200_000_000;
/// The JPEG quality [`write_image`] uses for `.jpg`/`.jpeg` files.
pub const DEFAULT_JPEG_QUALITY: u8 = 95;

const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
const JPEG_SIGNATURE: &[u8] = &[0xFF, 0xD8, 0xFF];

fn image_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Image {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Reads a PNG or JPEG file (8 or 16 bits, gray, gray+alpha, RGB or RGBA) as an RGB [`Image`].
///
/// Errors ([`Error::Io`] or [`Error::Image`], each naming the file):
/// a missing or unreadable file; an empty file; content that is neither PNG nor JPEG (e.g. text
/// with an image extension); a header with a size beyond [`MAX_IMAGE_SIDE`] /
/// [`MAX_IMAGE_PIXELS`]; a truncated file; data the decoder rejects.
pub fn read_image(path: impl AsRef<Path>) -> Result<Image> {
    let dynamic = decode(path.as_ref())?;
    let rgb = dynamic.to_rgb32f();
    let (w, h) = (rgb.width() as usize, rgb.height() as usize);
    let n = w * h;
    let mut data = vec![0.0f32; 3 * n];
    for (i, px) in rgb.pixels().enumerate() {
        data[i] = px.0[0];
        data[n + i] = px.0[1];
        data[2 * n + i] = px.0[2];
    }
    Ok(Image {
        width: w,
        height: h,
        data,
    })
}

/// Reads a depth map stored as a single-channel PNG (8 or 16 bits): each sample's integer
/// value is the depth in the file's unit (e.g. millimetres for
/// `assets/photos/motorcycle_left_depth.png`); `0` means unknown and becomes `NaN`.
///
/// Colour files are refused. Errors as for [`read_image`].
pub fn read_depth(path: impl AsRef<Path>) -> Result<DepthMap> {
    let path = path.as_ref();
    let dynamic = decode(path)?;
    let (w, h) = (dynamic.width() as usize, dynamic.height() as usize);
    let values: Vec<f32> = match dynamic {
        DynamicImage::ImageLuma16(buf) => buf.into_raw().into_iter().map(f32::from).collect(),
        DynamicImage::ImageLuma8(buf) => buf.into_raw().into_iter().map(f32::from).collect(),
        other => {
            return Err(image_err(
                path,
                format!(
                    "a depth map must be a 1-channel 8- or 16-bit image, this one is {:?}",
                    other.color()
                ),
            ));
        }
    };
    let values = values
        .into_iter()
        .map(|v| if v == 0.0 { f32::NAN } else { v })
        .collect();
    DepthMap::new(w, h, values)
}

fn decode(path: &Path) -> Result<DynamicImage> {
    let bytes = fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if bytes.is_empty() {
        return Err(image_err(path, "empty file (0 bytes), not an image"));
    }
    let format = if bytes.starts_with(PNG_SIGNATURE) {
        ImageFormat::Png
    } else if bytes.starts_with(JPEG_SIGNATURE) {
        ImageFormat::Jpeg
    } else {
        let ext = path
            .extension()
            .map(|e| format!(" despite its .{} extension", e.to_string_lossy()))
            .unwrap_or_default();
        return Err(image_err(
            path,
            format!(
                "not a PNG or JPEG file{ext}: the content starts with {:02X?} (no PNG or JPEG signature)",
                &bytes[..bytes.len().min(8)]
            ),
        ));
    };
    let name = if format == ImageFormat::Png {
        "PNG"
    } else {
        "JPEG"
    };
    if format == ImageFormat::Jpeg && !jpeg_has_end(&bytes) {
        return Err(image_err(
            path,
            format!(
                "truncated JPEG ({} bytes): the image data has no end-of-image marker",
                bytes.len()
            ),
        ));
    }

    // Header first: refuse gigantic sizes before the decoder allocates anything.
    let header = ImageReader::with_format(BufReader::new(Cursor::new(&bytes)), format);
    let decoder = header
        .into_decoder()
        .map_err(|e| decode_err(path, name, bytes.len(), e))?;
    let (w, h) = decoder.dimensions();
    if w > MAX_IMAGE_SIDE || h > MAX_IMAGE_SIDE || u64::from(w) * u64::from(h) > MAX_IMAGE_PIXELS {
        return Err(image_err(
            path,
            format!(
                "{name} header claims {w}×{h} pixels, beyond the limit of {MAX_IMAGE_SIDE} per side and {MAX_IMAGE_PIXELS} in all; refusing to allocate"
            ),
        ));
    }
    drop(decoder);

    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    let mut reader = ImageReader::with_format(Cursor::new(&bytes), format);
    reader.limits(limits);
    reader
        .decode()
        .map_err(|e| decode_err(path, name, bytes.len(), e))
}

fn decode_err(path: &Path, format: &str, len: usize, e: ImageError) -> Error {
    let truncated = match &e {
        ImageError::IoError(io) => io.kind() == std::io::ErrorKind::UnexpectedEof,
        other => {
            let msg = other.to_string().to_lowercase();
            msg.contains("eof") || msg.contains("unexpected end") || msg.contains("truncat")
        }
    };
    let reason = match e {
        ImageError::Limits(l) => format!("{format} image exceeds the decoding limits: {l}"),
        e if truncated => format!("truncated {format} ({len} bytes): {e}"),
        e => format!("corrupt {format} data: {e}"),
    };
    image_err(path, reason)
}

/// Whether a JPEG stream ends properly: its last end-of-image marker (`FF D9`) follows its
/// last start-of-scan marker (`FF DA`). Neither byte pair can occur inside entropy-coded data,
/// and an embedded EXIF thumbnail lies before the main scan, so a file cut anywhere inside
/// its image data fails this test.
fn jpeg_has_end(bytes: &[u8]) -> bool {
    let last = |m: u8| bytes.windows(2).rposition(|w| w[0] == 0xFF && w[1] == m);
    matches!((last(0xDA), last(0xD9)), (Some(sos), Some(eoi)) if eoi > sos)
}

/// Writes `image` as an 8-bit RGB file, PNG or JPEG chosen by the extension (`.png`, `.jpg`,
/// `.jpeg`, any case; JPEG at quality [`DEFAULT_JPEG_QUALITY`]). Samples are clamped to
/// `[0, 1]` and rounded: `round(clamp(v) · 255)`.
///
/// The write is atomic: the file is encoded into a temporary file in the same directory, flushed
/// to disk and renamed over `path`. On any failure (unsupported extension, missing directory,
/// encoder error, full disk) the temporary file is removed and an existing `path` is untouched.
pub fn write_image(path: impl AsRef<Path>, image: &Image) -> Result<()> {
    write_image_with_quality(path, image, DEFAULT_JPEG_QUALITY)
}

/// [`write_image`] with an explicit JPEG quality (1–100; ignored for PNG).
pub fn write_image_with_quality(path: impl AsRef<Path>, image: &Image, quality: u8) -> Result<()> {
    let path = path.as_ref();
    let jpeg = output_is_jpeg(path)?;
    if !(1..=100).contains(&quality) {
        return Err(Error::Config(format!(
            "JPEG quality must be in 1..=100, got {quality}"
        )));
    }
    let bytes = encode(image, jpeg, quality).map_err(|reason| image_err(path, reason))?;
    crate::atomic::write_bytes(path, &bytes)
}

/// Whether an output path names a JPEG (`.jpg`, `.jpeg`) or a PNG file; an error for any
/// other extension, so that callers can refuse an output before any work.
pub(crate) fn output_is_jpeg(path: &Path) -> Result<bool> {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "png" => Ok(false),
        "jpg" | "jpeg" => Ok(true),
        _ => Err(image_err(
            path,
            "unsupported output extension: use .png, .jpg or .jpeg",
        )),
    }
}

/// Encodes to PNG or JPEG bytes in memory.
pub(crate) fn encode(
    image: &Image,
    jpeg: bool,
    quality: u8,
) -> std::result::Result<Vec<u8>, String> {
    if image.width == 0 || image.height == 0 {
        return Err(format!(
            "cannot encode an empty {}×{} image",
            image.width, image.height
        ));
    }
    if image.data.len() != 3 * image.pixels() {
        return Err(format!(
            "image {}×{} holds {} samples instead of {}",
            image.width,
            image.height,
            image.data.len(),
            3 * image.pixels()
        ));
    }
    let rgb = to_rgb8(image);
    let mut out = Vec::new();
    let result = if jpeg {
        let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality);
        rgb.write_with_encoder(enc)
    } else {
        let enc = image::codecs::png::PngEncoder::new(&mut out);
        rgb.write_with_encoder(enc)
    };
    result.map_err(|e| format!("cannot encode: {e}"))?;
    Ok(out)
}

/// Interleaved 8-bit RGB, `round(clamp(v) · 255)`.
pub(crate) fn to_rgb8(image: &Image) -> image::RgbImage {
    let n = image.pixels();
    let q = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    let mut raw = Vec::with_capacity(3 * n);
    for i in 0..n {
        raw.push(q(image.data[i]));
        raw.push(q(image.data[n + i]));
        raw.push(q(image.data[2 * n + i]));
    }
    image::RgbImage::from_raw(image.width as u32, image.height as u32, raw)
        .expect("buffer length checked")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::TempDir;

    fn gradient(w: usize, h: usize) -> Image {
        let mut data = Vec::new();
        for c in 0..3 {
            for y in 0..h {
                for x in 0..w {
                    data.push(((x * 7 + y * 13 + c * 50) % 256) as f32 / 255.0);
                }
            }
        }
        Image::from_planar(w, h, data).unwrap()
    }

    fn png_bytes(img: &Image) -> Vec<u8> {
        encode(img, false, 95).unwrap()
    }

    fn reason(e: Error) -> String {
        match e {
            Error::Image { reason, .. } => reason,
            other => panic!("expected Error::Image, got {other:?}"),
        }
    }

    #[test]
    fn png_round_trip_is_exact_for_8_bit_values() {
        let dir = TempDir::new("rt");
        let img = gradient(17, 9);
        let p = dir.0.join("a.png");
        write_image(&p, &img).unwrap();
        let back = read_image(&p).unwrap();
        assert_eq!((back.width, back.height), (17, 9));
        for (a, b) in img.data.iter().zip(&back.data) {
            assert!((a - b).abs() < 1e-6);
        }
        // JPEG by extension, lossy but close; format detected from content
        let j = dir.0.join("a.JPEG");
        write_image(&j, &img.map(|_| 0.5)).unwrap();
        assert!(fs::read(&j).unwrap().starts_with(JPEG_SIGNATURE));
        let back = read_image(&j).unwrap();
        assert!(back.data.iter().all(|v| (v - 0.5).abs() < 0.02));
    }

    #[test]
    fn missing_empty_text_and_truncated_files_give_distinct_errors() {
        let dir = TempDir::new("bad");
        let missing = dir.0.join("missing.png");
        match read_image(&missing).unwrap_err() {
            Error::Io { path, source } => {
                assert_eq!(path, missing);
                assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
            }
            other => panic!("{other:?}"),
        }

        let empty = dir.0.join("empty.png");
        fs::write(&empty, b"").unwrap();
        let e = read_image(&empty).unwrap_err();
        assert!(e.to_string().contains("empty.png"), "{e}");
        assert!(reason(e).contains("empty file"));

        let text = dir.0.join("notes.png");
        fs::write(&text, b"this is not an image\n").unwrap();
        let r = reason(read_image(&text).unwrap_err());
        assert!(
            r.contains("not a PNG or JPEG") && r.contains(".png extension"),
            "{r}"
        );

        let png = png_bytes(&gradient(64, 64));
        let cut = dir.0.join("cut.png");
        fs::write(&cut, &png[..png.len() / 2]).unwrap();
        let r = reason(read_image(&cut).unwrap_err());
        assert!(r.contains("truncated PNG"), "{r}");
        // cut inside the header too
        fs::write(&cut, &png[..20]).unwrap();
        let r = reason(read_image(&cut).unwrap_err());
        assert!(r.contains("PNG"), "{r}");

        let jpg = encode(&gradient(64, 64), true, 90).unwrap();
        let cutj = dir.0.join("cut.jpg");
        fs::write(&cutj, &jpg[..jpg.len() * 2 / 3]).unwrap();
        let r = reason(read_image(&cutj).unwrap_err());
        assert!(r.contains("truncated JPEG"), "{r}");
        // damaged (not shortened) image data
        let mut bad = png.clone();
        let mid = bad.len() / 2;
        bad[mid..mid + 16].iter_mut().for_each(|b| *b ^= 0xA5);
        let badp = dir.0.join("bad.png");
        fs::write(&badp, &bad).unwrap();
        let r = reason(read_image(&badp).unwrap_err());
        assert!(r.starts_with("corrupt PNG data"), "{r}");

        // the intact JPEG loads
        fs::write(&cutj, &jpg).unwrap();
        assert_eq!(read_image(&cutj).unwrap().width, 64);
    }

    #[test]
    fn a_gigantic_header_is_refused_before_decoding() {
        let dir = TempDir::new("huge");
        // a valid PNG signature and IHDR claiming 100000×100000 RGB8, then a tiny IDAT and IEND
        let chunk = |tag: &[u8], body: &[u8]| {
            let mut v = (body.len() as u32).to_be_bytes().to_vec();
            v.extend_from_slice(tag);
            v.extend_from_slice(body);
            let mut crc_in = tag.to_vec();
            crc_in.extend_from_slice(body);
            v.extend_from_slice(&crc32(&crc_in).to_be_bytes());
            v
        };
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&100_000u32.to_be_bytes());
        ihdr.extend_from_slice(&100_000u32.to_be_bytes());
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
        let mut png = PNG_SIGNATURE.to_vec();
        png.extend(chunk(b"IHDR", &ihdr));
        png.extend(chunk(
            b"IDAT",
            &[0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
        ));
        png.extend(chunk(b"IEND", &[]));
        let p = dir.0.join("huge.png");
        fs::write(&p, &png).unwrap();
        let r = reason(read_image(&p).unwrap_err());
        assert!(r.contains("100000×100000") && r.contains("refusing"), "{r}");
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn sixteen_bit_gray_alpha_and_tiny_images_load() {
        let dir = TempDir::new("kinds");
        // 16-bit RGB: exact v / 65535
        let p16 = dir.0.join("rgb16.png");
        let raw16: Vec<u16> = vec![0, 1000, 65535, 32768, 12345, 54321];
        image::ImageBuffer::<image::Rgb<u16>, _>::from_raw(2, 1, raw16.clone())
            .unwrap()
            .save(&p16)
            .unwrap();
        let img = read_image(&p16).unwrap();
        assert_eq!((img.width, img.height), (2, 1));
        for (i, v) in raw16.iter().enumerate() {
            let (px, c) = (i / 3, i % 3);
            assert!((img.get(c, px, 0) - *v as f32 / 65535.0).abs() < 1e-6);
        }
        // 8-bit gray: copied to all channels
        let pg = dir.0.join("gray.png");
        image::GrayImage::from_raw(3, 1, vec![0, 128, 255])
            .unwrap()
            .save(&pg)
            .unwrap();
        let g = read_image(&pg).unwrap();
        for x in 0..3 {
            assert_eq!(g.get(0, x, 0), g.get(1, x, 0));
            assert_eq!(g.get(0, x, 0), g.get(2, x, 0));
        }
        assert!((g.get(1, 1, 0) - 128.0 / 255.0).abs() < 1e-6);
        // 16-bit gray
        let pg16 = dir.0.join("gray16.png");
        image::ImageBuffer::<image::Luma<u16>, _>::from_raw(1, 1, vec![40000u16])
            .unwrap()
            .save(&pg16)
            .unwrap();
        let g16 = read_image(&pg16).unwrap();
        assert!((g16.get(2, 0, 0) - 40000.0 / 65535.0).abs() < 1e-6);
        // RGBA: alpha dropped, colour kept even where fully transparent
        let pa = dir.0.join("alpha.png");
        image::RgbaImage::from_raw(1, 1, vec![200, 100, 50, 0])
            .unwrap()
            .save(&pa)
            .unwrap();
        let a = read_image(&pa).unwrap();
        assert_eq!(a.data.len(), 3);
        assert!((a.get(0, 0, 0) - 200.0 / 255.0).abs() < 1e-6);
        assert!((a.get(2, 0, 0) - 50.0 / 255.0).abs() < 1e-6);
        // gray + alpha
        let pla = dir.0.join("la.png");
        image::GrayAlphaImage::from_raw(1, 1, vec![77, 10])
            .unwrap()
            .save(&pla)
            .unwrap();
        assert!((read_image(&pla).unwrap().get(1, 0, 0) - 77.0 / 255.0).abs() < 1e-6);
        // 1×1 RGB
        let p1 = dir.0.join("one.png");
        image::RgbImage::from_raw(1, 1, vec![1, 2, 3])
            .unwrap()
            .save(&p1)
            .unwrap();
        let one = read_image(&p1).unwrap();
        assert_eq!((one.width, one.height, one.data.len()), (1, 1, 3));
        // a grayscale JPEG
        let pj = dir.0.join("gray.jpg");
        image::GrayImage::from_raw(8, 8, vec![90; 64])
            .unwrap()
            .save(&pj)
            .unwrap();
        let gj = read_image(&pj).unwrap();
        assert!(gj.data.iter().all(|v| (v - 90.0 / 255.0).abs() < 0.02));
    }

    #[test]
    fn depth_maps_read_16_bit_values_with_zero_unknown() {
        let dir = TempDir::new("depth");
        let p = dir.0.join("d.png");
        image::ImageBuffer::<image::Luma<u16>, _>::from_raw(3, 1, vec![0u16, 2110, 5017])
            .unwrap()
            .save(&p)
            .unwrap();
        let d = read_depth(&p).unwrap();
        assert!(d.data[0].is_nan());
        assert_eq!(&d.data[1..], &[2110.0, 5017.0]);
        let rgb = dir.0.join("rgb.png");
        write_image(&rgb, &gradient(2, 2)).unwrap();
        assert!(reason(read_depth(&rgb).unwrap_err()).contains("1-channel"));
    }

    #[test]
    fn writing_quantises_by_rounding_and_clamps() {
        let dir = TempDir::new("q");
        let img = Image::from_planar(
            2,
            1,
            vec![-0.5, 1.5, 0.6 / 255.0, 0.4 / 255.0, 0.302, 0.298],
        )
        .unwrap();
        let p = dir.0.join("q.png");
        write_image(&p, &img).unwrap();
        let raw = image::open(&p).unwrap().to_rgb8().into_raw();
        // pixel 0 = (-0.5, 0.6/255, 0.302); pixel 1 = (1.5, 0.4/255, 0.298)
        assert_eq!(raw, vec![0, 1, 77, 255, 0, 76]);
    }

    fn leftovers(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp-"))
            .collect()
    }

    #[test]
    fn failed_writes_leave_an_existing_file_untouched() {
        let dir = TempDir::new("atomic");
        let out = dir.0.join("out.png");
        write_image(&out, &gradient(8, 8)).unwrap();
        let before = fs::read(&out).unwrap();

        // encoder failure (an empty image) on the same path
        let e = write_image(&out, &Image::filled(0, 0, [0.0; 3])).unwrap_err();
        assert!(e.to_string().contains("out.png"), "{e}");
        assert_eq!(fs::read(&out).unwrap(), before);

        // an unsupported extension on an existing file
        let bmp = dir.0.join("keep.bmp");
        fs::write(&bmp, b"precious").unwrap();
        let r = reason(write_image(&bmp, &gradient(4, 4)).unwrap_err());
        assert!(r.contains("unsupported output extension"), "{r}");
        assert_eq!(fs::read(&bmp).unwrap(), b"precious");

        // a directory that does not exist
        let nowhere = dir.0.join("no/such/dir/out.png");
        match write_image(&nowhere, &gradient(4, 4)).unwrap_err() {
            Error::Io { path, .. } => assert_eq!(path, nowhere),
            other => panic!("{other:?}"),
        }
        assert!(!nowhere.exists());

        // a destination that cannot be replaced (a directory named like the file): the rename
        // fails after the temporary file was written, and the temporary file is removed
        let blocked = dir.0.join("blocked.png");
        fs::create_dir(&blocked).unwrap();
        fs::write(blocked.join("inside"), b"x").unwrap();
        assert!(write_image(&blocked, &gradient(4, 4)).is_err());
        assert_eq!(fs::read(blocked.join("inside")).unwrap(), b"x");

        assert_eq!(fs::read(&out).unwrap(), before);
        assert!(leftovers(&dir.0).is_empty(), "{:?}", leftovers(&dir.0));
    }
}
