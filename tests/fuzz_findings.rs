//! Every input with which fuzzing (`fuzz/`) once crashed a loader, kept in
//! `tests/data/fuzz/<target>/`: each must now give an error that names the file, with no
//! panic. `docs/reliability.md` lists them with what went wrong.

mod common;

use std::path::{Path, PathBuf};

use burn::prelude::*;
use dppd::data::read_image;
use dppd::model::{PromptIrConfig, Restorer, RestorerConfig};
use dppd::train::{Checkpoint, ExperimentConfig, checkpoint};

fn findings(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/fuzz")
        .join(target);
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| rd.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// `result` is an error whose message names `path`.
fn refused<T>(path: &Path, result: dppd::Result<T>) {
    let name = path.file_name().unwrap().to_string_lossy();
    match result {
        Ok(_) => panic!("{name}: accepted"),
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.contains(&*name),
                "{name}: the error names the file: {msg}"
            );
            println!("{msg}");
        }
    }
}

#[test]
fn every_fuzzing_finding_is_an_error_naming_its_file() {
    let device = Device::flex();
    let tiny = PromptIrConfig::load(common::reference_dir().join("config.json"))
        .unwrap()
        .to_restorer()
        .unwrap();
    let mut seen = 0;
    for p in findings("read_image") {
        refused(&p, read_image(&p));
        seen += 1;
    }
    for target in ["weights_pytorch", "weights_safetensors", "weights_burnpack"] {
        for p in findings(target) {
            let _ = Restorer::config_in_file(&p);
            refused(&p, Restorer::load_weights(&tiny, &p, &device));
            seen += 1;
        }
    }
    for p in findings("configs") {
        refused(&p, RestorerConfig::load(&p));
        refused(&p, PromptIrConfig::load(&p));
        refused(&p, ExperimentConfig::load(&p));
        seen += 1;
    }
    for p in findings("train_checkpoint") {
        refused(&p, checkpoint::read_state(&p));
        refused(&p, Checkpoint::load_model(&p, &device));
        seen += 1;
    }
    assert!(seen > 0, "tests/data/fuzz holds the findings");
}
