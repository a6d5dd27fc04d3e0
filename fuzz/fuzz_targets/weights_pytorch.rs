//! Any bytes as a .pth weights file: loaded strictly against the tiny PromptIR configuration,
//! and asked for a stored configuration. Errors are expected; panics, aborts and
//! out-of-memory kills are bugs.
#![no_main]

use dppd::model::Restorer;
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let path = common::file("pth", data);
    let device = dppd::device_from_name("flex").unwrap();
    let _ = Restorer::config_in_file(&path);
    let _ = Restorer::load_weights(&common::tiny(), &path, &device);
});
