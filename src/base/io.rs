//! Reading and writing image files: PNG, JPEG, WebP, TIFF and BMP.
//!
//! Rules (see `docs/data.md`):
//! - the format is taken from the file's *content* (its signature), never from its extension;
//! - the EXIF orientation is applied on reading (JPEG, PNG `eXIf`, WebP `EXIF`, the TIFF
//!   `Orientation` tag), so an image comes out upright as viewers show it;
//! - 8- and 16-bit files are scaled to `[0, 1]` (`v / 255`, `v / 65535`; float TIFF samples are
//!   taken as they are), grayscale is copied to all three channels, alpha is dropped (not
//!   composited);
//! - the limits protect memory, not shapes: a header claiming more than [`MAX_IMAGE_PIXELS`]
//!   pixels, or a decoded buffer beyond [`MAX_DECODE_BYTES`], is refused before any pixel
//!   buffer is allocated; a 40000×3 panorama is fine;
//! - [`read_image_with_info`] also says how the file stored its pixels ([`ImageInfo`]), and
//!   [`write_image_as`] writes in such a [`PixelFormat`]: 16 bits where the format has them
//!   (PNG, TIFF), one grey channel (the mean of R, G and B) for a grey source;
//! - writing rounds (`round(clamp(v, 0, 1) · 255)`, or `· 65535`) and is atomic.

use std::fs;
use std::io::{Cursor, Read};
use std::path::Path;

use image::metadata::Orientation;
use image::{
    DynamicImage, ImageBuffer, ImageDecoder, ImageError, ImageFormat, ImageReader, Limits, Luma,
    Rgb,
};

use super::depth::DepthMap;
use super::error::{Error, Result};
use super::image::Image;

/// The largest pixel count (`width · height`) [`read_image`] accepts: 200 megapixels (the
/// planar `f32` [`Image`] of such a file takes 2.4 GB). There is no limit per side.
pub const MAX_IMAGE_PIXELS: u64 = 200_000_000;
/// The largest decoded pixel buffer (as the file stores it, before conversion to `f32`) that
/// [`read_image`] lets a decoder allocate: 2 GiB. Also the decoder's allocation limit.
pub const MAX_DECODE_BYTES: u64 = 2 << 30;
/// The JPEG quality [`write_image`] uses for `.jpg`/`.jpeg` files.
pub const DEFAULT_JPEG_QUALITY: u8 = 95;

/// How much one read may take: pixels and decoded bytes (defaults [`MAX_IMAGE_PIXELS`],
/// [`MAX_DECODE_BYTES`]). A file larger than `max_decode_bytes` + 64 MiB (an uncompressed TIFF
/// or BMP of that size plus its headers) is refused without being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimits {
    /// The largest `width · height`.
    pub max_pixels: u64,
    /// The largest decoded buffer, in the file's own sample format; also the decoder's
    /// allocation limit.
    pub max_decode_bytes: u64,
}

impl Default for ReadLimits {
    fn default() -> Self {
        Self {
            max_pixels: MAX_IMAGE_PIXELS,
            max_decode_bytes: MAX_DECODE_BYTES,
        }
    }
}

const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
const JPEG_SIGNATURE: &[u8] = &[0xFF, 0xD8, 0xFF];

/// The image file formats this crate reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileFormat {
    /// PNG (8 and 16 bits).
    Png,
    /// JPEG (8 bits; written at a quality, default [`DEFAULT_JPEG_QUALITY`]).
    Jpeg,
    /// WebP (read: lossy and lossless; written lossless).
    WebP,
    /// TIFF (8 and 16 bits, float samples read).
    Tiff,
    /// BMP (8 bits).
    Bmp,
}

impl FileFormat {
    /// Every format, in the order messages list them.
    pub const ALL: [FileFormat; 5] = [Self::Png, Self::Jpeg, Self::WebP, Self::Tiff, Self::Bmp];

    /// The format's usual name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Png => "PNG",
            Self::Jpeg => "JPEG",
            Self::WebP => "WebP",
            Self::Tiff => "TIFF",
            Self::Bmp => "BMP",
        }
    }

    /// The format a file name's extension stands for (`.png`, `.jpg`/`.jpeg`, `.webp`,
    /// `.tif`/`.tiff`, `.bmp`, any case).
    pub fn from_extension(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_string_lossy().to_lowercase();
        Some(match ext.as_str() {
            "png" => Self::Png,
            "jpg" | "jpeg" => Self::Jpeg,
            "webp" => Self::WebP,
            "tif" | "tiff" => Self::Tiff,
            "bmp" => Self::Bmp,
            _ => return None,
        })
    }

    /// The format a file's first bytes announce.
    pub fn from_signature(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(PNG_SIGNATURE) {
            Some(Self::Png)
        } else if bytes.starts_with(JPEG_SIGNATURE) {
            Some(Self::Jpeg)
        } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
            Some(Self::WebP)
        } else if [b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"]
            .iter()
            .any(|s| bytes.starts_with(*s))
        {
            Some(Self::Tiff)
        } else if bytes.starts_with(b"BM") {
            Some(Self::Bmp)
        } else {
            None
        }
    }

    /// Whether files of this format can hold 16-bit samples (PNG and TIFF).
    pub fn supports_16_bit(self) -> bool {
        matches!(self, Self::Png | Self::Tiff)
    }

    fn image_format(self) -> ImageFormat {
        match self {
            Self::Png => ImageFormat::Png,
            Self::Jpeg => ImageFormat::Jpeg,
            Self::WebP => ImageFormat::WebP,
            Self::Tiff => ImageFormat::Tiff,
            Self::Bmp => ImageFormat::Bmp,
        }
    }
}

/// How samples are stored in a file: grey or colour, 8 or 16 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PixelFormat {
    /// One grey channel instead of RGB.
    pub grey: bool,
    /// 16 bits per sample instead of 8.
    pub sixteen_bit: bool,
}

impl PixelFormat {
    /// 8-bit RGB, what [`write_image`] writes.
    pub const RGB8: Self = Self {
        grey: false,
        sixteen_bit: false,
    };
    /// 16-bit RGB.
    pub const RGB16: Self = Self {
        grey: false,
        sixteen_bit: true,
    };
    /// 8-bit grey.
    pub const GREY8: Self = Self {
        grey: true,
        sixteen_bit: false,
    };
    /// 16-bit grey.
    pub const GREY16: Self = Self {
        grey: true,
        sixteen_bit: true,
    };

    /// This format as `format` can store it: 16 bits become 8 where the format has no 16-bit
    /// samples (JPEG, WebP, BMP); grey stays grey everywhere.
    pub fn for_format(self, format: FileFormat) -> Self {
        Self {
            grey: self.grey,
            sixteen_bit: self.sixteen_bit && format.supports_16_bit(),
        }
    }
}

impl Default for PixelFormat {
    fn default() -> Self {
        Self::RGB8
    }
}

/// What a file held besides the pixels [`read_image_with_info`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageInfo {
    /// The file's format (from its content).
    pub format: FileFormat,
    /// Grey or colour, 8 or 16 bits (float TIFF samples count as 16-bit).
    pub pixel: PixelFormat,
    /// Whether the file had an alpha channel (dropped on reading).
    pub alpha: bool,
    /// The EXIF orientation the file declared (1–8; 1 = stored upright), already applied.
    pub orientation: u8,
    /// Width and height as stored, before the orientation was applied.
    pub stored_size: (u32, u32),
}

fn image_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Image {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Reads a PNG, JPEG, WebP, TIFF or BMP file (8 or 16 bits, gray, gray+alpha, RGB or RGBA) as
/// an upright RGB [`Image`] (the EXIF orientation applied).
///
/// Errors ([`Error::Io`] or [`Error::Image`], each naming the file):
/// a missing or unreadable file; an empty file; content in none of the formats (e.g. text with
/// an image extension); a header claiming more than [`MAX_IMAGE_PIXELS`] pixels or a decoded
/// size beyond [`MAX_DECODE_BYTES`]; a truncated file; data the decoder rejects.
pub fn read_image(path: impl AsRef<Path>) -> Result<Image> {
    read_image_with_info(path).map(|(image, _)| image)
}

/// [`read_image`], and what the file stored: its format, grey or colour, bit depth, alpha and
/// orientation. Pass `info.pixel` to [`write_image_as`] to write a result the way the source
/// was stored (what [`crate::restore::restore_file`] does).
pub fn read_image_with_info(path: impl AsRef<Path>) -> Result<(Image, ImageInfo)> {
    read_image_with_limits(path, ReadLimits::default())
}

/// [`read_image_with_info`] within other [`ReadLimits`] than the defaults.
pub fn read_image_with_limits(
    path: impl AsRef<Path>,
    limits: ReadLimits,
) -> Result<(Image, ImageInfo)> {
    let path = path.as_ref();
    let decoded = decode(path, limits)?;
    let info = decoded.info;
    let image = planar(&decoded.image, decoded.orientation);
    Ok((image, info))
}

/// Reads a depth map stored as a single-channel PNG (8 or 16 bits): each sample's integer
/// value is the depth in the file's unit (e.g. millimetres for
/// `assets/photos/motorcycle_left_depth.png`); `0` means unknown and becomes `NaN`. The
/// samples are taken as stored (no orientation is applied).
///
/// Colour files are refused. Errors as for [`read_image`].
pub fn read_depth(path: impl AsRef<Path>) -> Result<DepthMap> {
    let path = path.as_ref();
    let dynamic = decode(path, ReadLimits::default())?.image;
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

struct Decoded {
    image: DynamicImage,
    orientation: Orientation,
    info: ImageInfo,
}

/// Reads at most `limit + 1` bytes of `path` (so that a huge file, or an endless one such as
/// `/dev/zero`, is never read whole).
fn read_bounded(path: &Path, limit: u64, limits: ReadLimits) -> Result<Vec<u8>> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > limit {
        return Err(image_err(
            path,
            format!(
                "file larger than {} MiB, more than any image within the limits \
                 ({} pixels, {} MiB decoded); refusing to read it",
                limit >> 20,
                limits.max_pixels,
                limits.max_decode_bytes >> 20
            ),
        ));
    }
    Ok(bytes)
}

fn decode(path: &Path, read_limits: ReadLimits) -> Result<Decoded> {
    let file_limit = read_limits.max_decode_bytes.saturating_add(64 << 20);
    let bytes = read_bounded(path, file_limit, read_limits)?;
    if bytes.is_empty() {
        return Err(image_err(path, "empty file (0 bytes), not an image"));
    }
    let Some(format) = FileFormat::from_signature(&bytes) else {
        let ext = path
            .extension()
            .map(|e| format!(" despite its .{} extension", e.to_string_lossy()))
            .unwrap_or_default();
        return Err(image_err(
            path,
            format!(
                "not an image file{ext}: the content starts with {:02X?}, the signature of \
                 none of the formats read (PNG, JPEG, WebP, TIFF, BMP)",
                &bytes[..bytes.len().min(8)]
            ),
        ));
    };
    let name = format.name();
    if format == FileFormat::Jpeg && !jpeg_has_end(&bytes) {
        return Err(image_err(
            path,
            format!(
                "truncated JPEG ({} bytes): the image data has no end-of-image marker",
                bytes.len()
            ),
        ));
    }
    let fail = |e| decode_err(path, name, bytes.len(), e);
    // a decoder's own bug on malformed data (a panic) is this file's error too
    let crashed = |message: String| {
        image_err(
            path,
            format!(
                "corrupt {name} data: the decoder failed on it ({message}); the file is \
                 malformed"
            ),
        )
    };

    // Header first: refuse gigantic sizes before the decoder allocates anything. The limits
    // guard every allocation of the decoder as well.
    let mut limits = Limits::default();
    limits.max_image_width = None;
    limits.max_image_height = None;
    limits.max_alloc = Some(read_limits.max_decode_bytes);
    let mut reader = ImageReader::with_format(Cursor::new(&bytes[..]), format.image_format());
    reader.limits(limits);
    let mut decoder = super::panic_guard::contain(|| reader.into_decoder())
        .map_err(crashed)?
        .map_err(fail)?;
    let (w, h) = decoder.dimensions();
    let pixels = u64::from(w) * u64::from(h);
    let decoded_bytes = decoder.total_bytes();
    if pixels > read_limits.max_pixels || decoded_bytes > read_limits.max_decode_bytes {
        return Err(image_err(
            path,
            format!(
                "{name} header claims {w}×{h} pixels ({:.1} Mpx, {} MiB decoded), beyond the \
                 limit of {:.1} Mpx and {} MiB; refusing to allocate",
                pixels as f64 / 1e6,
                decoded_bytes >> 20,
                read_limits.max_pixels as f64 / 1e6,
                read_limits.max_decode_bytes >> 20
            ),
        ));
    }
    if pixels == 0 {
        return Err(image_err(
            path,
            format!("{name} header claims an empty {w}×{h} image"),
        ));
    }
    // A damaged EXIF block does not make the pixels unreadable: it counts as upright.
    let orientation = super::panic_guard::contain(|| decoder.orientation())
        .map_err(crashed)?
        .unwrap_or(Orientation::NoTransforms);
    let color = decoder.color_type();
    let image = super::panic_guard::contain(|| DynamicImage::from_decoder(decoder))
        .map_err(crashed)?
        .map_err(fail)?;
    if (image.width(), image.height()) != (w, h) {
        return Err(image_err(
            path,
            format!(
                "corrupt {name} data: the header says {w}×{h}, the decoder returned {}×{}",
                image.width(),
                image.height()
            ),
        ));
    }
    let info = ImageInfo {
        format,
        pixel: PixelFormat {
            grey: !color.has_color(),
            sixteen_bit: color.bytes_per_pixel() / color.channel_count() > 1,
        },
        alpha: color.has_alpha(),
        orientation: orientation.to_exif(),
        stored_size: (w, h),
    };
    Ok(Decoded {
        image,
        orientation,
        info,
    })
}

fn decode_err(path: &Path, format: &str, len: usize, e: ImageError) -> Error {
    let truncated = match &e {
        ImageError::IoError(io) => io.kind() == std::io::ErrorKind::UnexpectedEof,
        other => {
            let msg = other.to_string().to_lowercase();
            msg.contains("eof")
                || msg.contains("unexpected end")
                || msg.contains("truncat")
                || msg.contains("not enough data")
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

/// The stored pixel that lands at `(x, y)` of the upright image, for an image stored
/// `sw × sh` with EXIF `orientation` (the inverse of [`DynamicImage::apply_orientation`]).
fn stored_position(
    orientation: Orientation,
    (x, y): (usize, usize),
    (sw, sh): (usize, usize),
) -> (usize, usize) {
    match orientation {
        Orientation::NoTransforms => (x, y),
        Orientation::FlipHorizontal => (sw - 1 - x, y),
        Orientation::Rotate180 => (sw - 1 - x, sh - 1 - y),
        Orientation::FlipVertical => (x, sh - 1 - y),
        Orientation::Rotate90FlipH => (y, x),
        Orientation::Rotate90 => (y, sh - 1 - x),
        Orientation::Rotate270FlipH => (sw - 1 - y, sh - 1 - x),
        Orientation::Rotate270 => (sw - 1 - y, x),
    }
}

/// Planar RGB in `[0, 1]`, upright: one pass from the decoded buffer, with no intermediate copy.
fn planar(image: &DynamicImage, orientation: Orientation) -> Image {
    let (sw, sh) = (image.width() as usize, image.height() as usize);
    let swap = matches!(
        orientation,
        Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH
    );
    let (w, h) = if swap { (sh, sw) } else { (sw, sh) };
    let n = w * h;
    let mut data = vec![0.0f32; 3 * n];
    fn fill<T: Copy>(
        data: &mut [f32],
        raw: &[T],
        channels: usize,
        scale: f32,
        to_f32: impl Fn(T) -> f32,
        at: impl Fn(usize, usize) -> (usize, usize),
        (w, h, sw): (usize, usize, usize),
    ) {
        let n = w * h;
        for y in 0..h {
            for x in 0..w {
                let (sx, sy) = at(x, y);
                let s = (sy * sw + sx) * channels;
                let i = y * w + x;
                let r = to_f32(raw[s]) * scale;
                let (g, b) = if channels >= 3 {
                    (to_f32(raw[s + 1]) * scale, to_f32(raw[s + 2]) * scale)
                } else {
                    (r, r)
                };
                data[i] = r;
                data[n + i] = g;
                data[2 * n + i] = b;
            }
        }
    }
    let at = |x: usize, y: usize| stored_position(orientation, (x, y), (sw, sh));
    let dims = (w, h, sw);
    let (u8s, u16s) = (1.0 / 255.0, 1.0 / 65535.0);
    match image {
        DynamicImage::ImageLuma8(b) => fill(&mut data, b, 1, u8s, f32::from, at, dims),
        DynamicImage::ImageLumaA8(b) => fill(&mut data, b, 2, u8s, f32::from, at, dims),
        DynamicImage::ImageRgb8(b) => fill(&mut data, b, 3, u8s, f32::from, at, dims),
        DynamicImage::ImageRgba8(b) => fill(&mut data, b, 4, u8s, f32::from, at, dims),
        DynamicImage::ImageLuma16(b) => fill(&mut data, b, 1, u16s, f32::from, at, dims),
        DynamicImage::ImageLumaA16(b) => fill(&mut data, b, 2, u16s, f32::from, at, dims),
        DynamicImage::ImageRgb16(b) => fill(&mut data, b, 3, u16s, f32::from, at, dims),
        DynamicImage::ImageRgba16(b) => fill(&mut data, b, 4, u16s, f32::from, at, dims),
        DynamicImage::ImageRgb32F(b) => fill(&mut data, b, 3, 1.0, |v| v, at, dims),
        DynamicImage::ImageRgba32F(b) => fill(&mut data, b, 4, 1.0, |v| v, at, dims),
        other => {
            let rgb = other.to_rgb32f();
            fill(&mut data, &rgb, 3, 1.0, |v| v, at, dims)
        }
    }
    Image {
        width: w,
        height: h,
        data,
    }
}

/// Writes `image` as an 8-bit RGB file in the format its extension names (`.png`, `.jpg`,
/// `.jpeg`, `.webp` (lossless), `.tif`/`.tiff`, `.bmp`, any case; JPEG at quality
/// [`DEFAULT_JPEG_QUALITY`]). Samples are clamped to `[0, 1]` and rounded:
/// `round(clamp(v) · 255)`.
///
/// The write is atomic: the file is encoded into a temporary file in the same directory, flushed
/// to disk and renamed over `path`. On any failure (unsupported extension, missing directory,
/// encoder error, full disk) the temporary file is removed and an existing `path` is untouched.
pub fn write_image(path: impl AsRef<Path>, image: &Image) -> Result<()> {
    write_image_with_quality(path, image, DEFAULT_JPEG_QUALITY)
}

/// [`write_image`] with an explicit JPEG quality (1–100; ignored for other formats).
pub fn write_image_with_quality(path: impl AsRef<Path>, image: &Image, quality: u8) -> Result<()> {
    write_image_as_with_quality(path, image, PixelFormat::RGB8, quality)
}

/// [`write_image`] in the given [`PixelFormat`], as far as the format allows
/// ([`PixelFormat::for_format`]): 16-bit samples (`round(clamp(v) · 65535)`) in PNG and TIFF,
/// 8 bits elsewhere; a grey file holds the mean of the three channels.
pub fn write_image_as(path: impl AsRef<Path>, image: &Image, pixel: PixelFormat) -> Result<()> {
    write_image_as_with_quality(path, image, pixel, DEFAULT_JPEG_QUALITY)
}

/// [`write_image_as`] with an explicit JPEG quality (1–100; ignored for other formats).
pub fn write_image_as_with_quality(
    path: impl AsRef<Path>,
    image: &Image,
    pixel: PixelFormat,
    quality: u8,
) -> Result<()> {
    let path = path.as_ref();
    let format = output_format(path)?;
    if !(1..=100).contains(&quality) {
        return Err(Error::Config(format!(
            "JPEG quality must be in 1..=100, got {quality}"
        )));
    }
    let bytes =
        encode_as(image, format, pixel, quality).map_err(|reason| image_err(path, reason))?;
    super::atomic::write_bytes(path, &bytes)
}

/// The format an output path's extension names; an error for any other extension, so that
/// callers can refuse an output before any work.
pub fn output_format(path: &Path) -> Result<FileFormat> {
    FileFormat::from_extension(path).ok_or_else(|| {
        image_err(
            path,
            "unsupported output extension: use .png, .jpg, .jpeg, .webp, .tif, .tiff or .bmp",
        )
    })
}

/// Encodes to 8-bit RGB PNG or JPEG bytes in memory.
pub(crate) fn encode(
    image: &Image,
    jpeg: bool,
    quality: u8,
) -> std::result::Result<Vec<u8>, String> {
    let format = if jpeg {
        FileFormat::Jpeg
    } else {
        FileFormat::Png
    };
    encode_as(image, format, PixelFormat::RGB8, quality)
}

/// Encodes to `format` bytes in memory, in `pixel` as far as `format` allows.
pub(crate) fn encode_as(
    image: &Image,
    format: FileFormat,
    pixel: PixelFormat,
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
    let (w, h) = (
        u32::try_from(image.width).map_err(|_| "image too wide to encode".to_string())?,
        u32::try_from(image.height).map_err(|_| "image too tall to encode".to_string())?,
    );
    let pixel = pixel.for_format(format);
    let n = image.pixels();
    let (r, g, b) = (image.channel(0), image.channel(1), image.channel(2));
    let grey = |i: usize| (r[i] + g[i] + b[i]) / 3.0;
    let q8 = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    let q16 = |v: f32| (v.clamp(0.0, 1.0) * 65535.0).round() as u16;
    let dynamic = match (pixel.grey, pixel.sixteen_bit) {
        (false, false) => DynamicImage::ImageRgb8(to_rgb8(image)),
        (true, false) => DynamicImage::ImageLuma8(
            ImageBuffer::<Luma<u8>, _>::from_raw(w, h, (0..n).map(|i| q8(grey(i))).collect())
                .expect("buffer length checked"),
        ),
        (false, true) => {
            let mut raw = Vec::with_capacity(3 * n);
            for i in 0..n {
                raw.extend([q16(r[i]), q16(g[i]), q16(b[i])]);
            }
            DynamicImage::ImageRgb16(
                ImageBuffer::<Rgb<u16>, _>::from_raw(w, h, raw).expect("buffer length checked"),
            )
        }
        (true, true) => DynamicImage::ImageLuma16(
            ImageBuffer::<Luma<u16>, _>::from_raw(w, h, (0..n).map(|i| q16(grey(i))).collect())
                .expect("buffer length checked"),
        ),
    };
    let mut out = Vec::new();
    let result = match format {
        FileFormat::Png => {
            dynamic.write_with_encoder(image::codecs::png::PngEncoder::new(&mut out))
        }
        FileFormat::Jpeg => dynamic.write_with_encoder(
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality),
        ),
        FileFormat::WebP => {
            dynamic.write_with_encoder(image::codecs::webp::WebPEncoder::new_lossless(&mut out))
        }
        FileFormat::Tiff => {
            dynamic.write_with_encoder(image::codecs::tiff::TiffEncoder::new(Cursor::new(&mut out)))
        }
        FileFormat::Bmp => {
            dynamic.write_with_encoder(image::codecs::bmp::BmpEncoder::new(&mut out))
        }
    };
    result.map_err(|e| format!("cannot encode as {}: {e}", format.name()))?;
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

/// Whether the two paths name one existing file (the same device and inode on Unix, the same
/// canonical path elsewhere); `false` when either does not exist.
pub fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (fs::metadata(a), fs::metadata(b)) {
            (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        match (fs::canonicalize(a), fs::canonicalize(b)) {
            (Ok(x), Ok(y)) => x == y,
            _ => false,
        }
    }
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
            r.contains("not an image file") && r.contains(".png extension"),
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

    #[test]
    fn orientation_mapping_matches_the_image_crate() {
        let stored = image::RgbImage::from_fn(3, 2, |x, y| image::Rgb([x as u8, y as u8, 7]));
        for code in 1..=8u8 {
            let o = Orientation::from_exif(code).unwrap();
            let mut expected = DynamicImage::ImageRgb8(stored.clone());
            expected.apply_orientation(o);
            let expected = expected.to_rgb8();
            let ours = planar(&DynamicImage::ImageRgb8(stored.clone()), o);
            assert_eq!(
                (ours.width as u32, ours.height as u32),
                expected.dimensions(),
                "{o:?}"
            );
            for (x, y, px) in expected.enumerate_pixels() {
                for c in 0..3 {
                    let v = ours.get(c, x as usize, y as usize);
                    assert_eq!((v * 255.0).round() as u8, px.0[c], "{o:?} at ({x}, {y})");
                }
            }
        }
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
        let bmp = dir.0.join("keep.gif");
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
