//! Any bytes as a JSON configuration: a network configuration, PromptIR's arguments, an
//! experiment. Parsed and validated; nothing is built.
#![no_main]

use dppd::model::{MAX_PARAMETERS, PromptIrConfig, RestorerConfig};
use dppd::train::ExperimentConfig;
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let path = common::file("json", data);
    if let Ok(c) = RestorerConfig::load(&path) {
        assert!(c.parameter_bound() <= MAX_PARAMETERS as u128);
    }
    if let Ok(c) = PromptIrConfig::load(&path) {
        let r = c.to_restorer().expect("load validated it");
        assert!(r.parameter_bound() <= MAX_PARAMETERS as u128);
    }
    if let Ok(c) = ExperimentConfig::load(&path) {
        c.model.resolve().expect("load validated it");
    }
    if let Ok(c) = serde_json::from_slice::<RestorerConfig>(data) {
        let _ = c.parameter_bound();
        let _ = c.validate();
    }
});
