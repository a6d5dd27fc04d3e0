//! Image files as cameras, scanners and other programs write them, built byte by byte where
//! the `image` crate cannot write them (EXIF in a JPEG's APP1 segment, TIFF tags).
#![allow(dead_code)]

use dppd::data::Image;
use image::{DynamicImage, ImageEncoder, ImageFormat};

/// A picture whose every pixel differs and whose corners are easy to tell apart.
pub fn corner_marked(w: u32, h: u32) -> image::RgbImage {
    image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([
            (x * 255 / w.max(2).saturating_sub(1).max(1)) as u8,
            (y * 255 / h.max(2).saturating_sub(1).max(1)) as u8,
            ((x * 7 + y * 13) % 256) as u8,
        ])
    })
}

/// The planar image of an 8-bit RGB buffer.
pub fn image_of(rgb: &image::RgbImage) -> Image {
    let (w, h) = (rgb.width() as usize, rgb.height() as usize);
    let mut data = vec![0.0; 3 * w * h];
    for (x, y, px) in rgb.enumerate_pixels() {
        for c in 0..3 {
            data[c * w * h + y as usize * w + x as usize] = px.0[c] as f32 / 255.0;
        }
    }
    Image::from_planar(w, h, data).unwrap()
}

/// `img` encoded by the `image` crate.
pub fn encoded(img: DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// A TIFF-structured EXIF block holding only an orientation (1–8), little-endian.
pub fn exif_orientation(orientation: u8) -> Vec<u8> {
    let mut v = b"II*\0".to_vec();
    v.extend_from_slice(&8u32.to_le_bytes()); // first IFD
    v.extend_from_slice(&1u16.to_le_bytes()); // one entry
    v.extend_from_slice(&0x0112u16.to_le_bytes()); // Orientation
    v.extend_from_slice(&3u16.to_le_bytes()); // SHORT
    v.extend_from_slice(&1u32.to_le_bytes()); // one value
    v.extend_from_slice(&(orientation as u16).to_le_bytes());
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(&0u32.to_le_bytes()); // no next IFD
    v
}

/// A JPEG as a phone writes it: SOI, an APP1 `Exif` segment with the orientation, then the
/// picture's pixels as stored.
pub fn jpeg_with_exif(stored: &image::RgbImage, orientation: u8) -> Vec<u8> {
    let jpeg = encoded(DynamicImage::ImageRgb8(stored.clone()), ImageFormat::Jpeg);
    let mut payload = b"Exif\0\0".to_vec();
    payload.extend(exif_orientation(orientation));
    let mut out = jpeg[..2].to_vec(); // FF D8
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
    out.extend(payload);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// A PNG with an `eXIf` chunk holding the orientation.
pub fn png_with_exif(stored: &image::RgbImage, orientation: u8) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = image::codecs::png::PngEncoder::new(&mut out);
    enc.set_exif_metadata(exif_orientation(orientation))
        .unwrap();
    enc.write_image(
        stored.as_raw(),
        stored.width(),
        stored.height(),
        image::ExtendedColorType::Rgb8,
    )
    .unwrap();
    out
}

/// A lossless WebP with an `EXIF` chunk holding the orientation.
pub fn webp_with_exif(stored: &image::RgbImage, orientation: u8) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = image::codecs::webp::WebPEncoder::new_lossless(&mut out);
    enc.set_exif_metadata(exif_orientation(orientation))
        .unwrap();
    enc.write_image(
        stored.as_raw(),
        stored.width(),
        stored.height(),
        image::ExtendedColorType::Rgb8,
    )
    .unwrap();
    out
}

/// An uncompressed 8-bit RGB TIFF, little-endian, one strip, with an `Orientation` tag if
/// given: the smallest file a scanner might write.
pub fn tiff_rgb8(stored: &image::RgbImage, orientation: Option<u8>) -> Vec<u8> {
    let (w, h) = stored.dimensions();
    let mut entries: Vec<(u16, u16, u32, u32)> = vec![
        (256, 4, 1, w),         // ImageWidth, LONG
        (257, 4, 1, h),         // ImageLength
        (258, 3, 3, 0),         // BitsPerSample: 3 SHORTs at an offset (patched below)
        (259, 3, 1, 1),         // Compression: none
        (262, 3, 1, 2),         // PhotometricInterpretation: RGB
        (273, 4, 1, 0),         // StripOffsets (patched below)
        (277, 3, 1, 3),         // SamplesPerPixel
        (278, 4, 1, h),         // RowsPerStrip
        (279, 4, 1, w * h * 3), // StripByteCounts
    ];
    if let Some(o) = orientation {
        entries.push((274, 3, 1, o as u32));
    }
    entries.sort_by_key(|e| e.0);
    let ifd_len = 2 + 12 * entries.len() + 4;
    let bits_at = (8 + ifd_len) as u32;
    let data_at = bits_at + 6;
    let mut v = b"II*\0".to_vec();
    v.extend_from_slice(&8u32.to_le_bytes());
    v.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    for (tag, kind, count, value) in entries {
        let value = match tag {
            258 => bits_at,
            273 => data_at,
            _ => value,
        };
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&kind.to_le_bytes());
        v.extend_from_slice(&count.to_le_bytes());
        if kind == 3 && count == 1 {
            v.extend_from_slice(&(value as u16).to_le_bytes());
            v.extend_from_slice(&[0, 0]);
        } else {
            v.extend_from_slice(&value.to_le_bytes());
        }
    }
    v.extend_from_slice(&0u32.to_le_bytes());
    for _ in 0..3 {
        v.extend_from_slice(&8u16.to_le_bytes());
    }
    v.extend_from_slice(stored.as_raw());
    v
}

/// CRC-32 (PNG's).
pub fn crc32(data: &[u8]) -> u32 {
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

/// A PNG whose header claims `w × h` RGB pixels (valid checksums), with a tiny IDAT.
pub fn png_header_only(w: u32, h: u32) -> Vec<u8> {
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
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(chunk(b"IHDR", &ihdr));
    png.extend(chunk(
        b"IDAT",
        &[0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    ));
    png.extend(chunk(b"IEND", &[]));
    png
}
