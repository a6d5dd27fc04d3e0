//! Any bytes as a training checkpoint. With an odd first byte the rest gets a valid checksum
//! appended, so that the fuzzer reaches what lies behind the checksum: the section lengths,
//! the state, the tensors. Networks are built only when small (a valid configuration may
//! describe up to 2^28 parameters, which is correct but slow to fuzz).
#![no_main]

use dppd::train::{Checkpoint, checkpoint};
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fuzz_target!(|data: &[u8]| {
    let Some((&flag, rest)) = data.split_first() else {
        return;
    };
    let mut bytes = rest.to_vec();
    if flag % 2 == 1 {
        let sum = fnv1a(&bytes);
        bytes.extend_from_slice(&sum.to_le_bytes());
    }
    let path = common::file("ckpt", &bytes);
    let Ok(state) = checkpoint::read_state(&path) else {
        return;
    };
    if state.network.parameter_bound() <= 2_000_000 {
        let device = dppd::device_from_name("flex").unwrap();
        let _ = Checkpoint::load_model(&path, &device);
    }
});
