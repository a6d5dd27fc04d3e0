//! Shared by the fuzz targets: inputs reach the loaders as files, as users' files do.
#![allow(dead_code)]

use std::path::PathBuf;

/// A per-process scratch folder, in memory where the system has one.
pub fn scratch() -> PathBuf {
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!("dppd-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes `data` to `input.<ext>` in the scratch folder and returns its path.
pub fn file(ext: &str, data: &[u8]) -> PathBuf {
    let path = scratch().join(format!("input.{ext}"));
    std::fs::write(&path, data).unwrap();
    path
}

/// The tiny PromptIR configuration of `tests/data/promptir-tiny` (the weights loaders are
/// fuzzed against it).
pub fn tiny() -> dppd::model::RestorerConfig {
    dppd::model::PromptIrConfig {
        dim: 16,
        num_blocks: [1, 1, 1, 1],
        num_refinement_blocks: 1,
        prompt_dims: [8, 16, 32],
        prompt_sizes: [16, 8, 4],
        ..Default::default()
    }
    .to_restorer()
    .unwrap()
}
