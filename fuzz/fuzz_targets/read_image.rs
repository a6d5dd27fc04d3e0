//! Image files of any content: read within small limits (the code paths are those of the
//! default limits), and written back when they decode.
#![no_main]

use dppd::data::io::{ReadLimits, read_image_with_limits};
use dppd::data::write_image_as;
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

const LIMITS: ReadLimits = ReadLimits {
    max_pixels: 1 << 22,
    max_decode_bytes: 64 << 20,
};

fuzz_target!(|data: &[u8]| {
    let path = common::file("img", data);
    if let Ok((image, info)) = read_image_with_limits(&path, LIMITS) {
        assert_eq!(image.data.len(), 3 * image.width * image.height);
        assert!((image.width * image.height) as u64 <= LIMITS.max_pixels);
        assert!((1..=8).contains(&info.orientation));
        if image.width * image.height <= 1 << 14 {
            let ext = ["png", "tif", "jpg", "webp", "bmp"][data.len() % 5];
            let out = common::scratch().join(format!("out.{ext}"));
            write_image_as(&out, &image, info.pixel).unwrap();
        }
    }
});
