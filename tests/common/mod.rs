//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use burn::prelude::*;

/// The reference folder computed by the official PromptIR code.
pub fn reference_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/promptir-tiny")
}

/// Keeps `bytes` as a seed input of the fuzz target `target` when the environment variable
/// `DPPD_FUZZ_SEEDS` names a folder (how the seeds in `fuzz/seeds/` were made: see
/// `fuzz/README.md`). Files over 64 KiB are not kept. The `train_checkpoint` target reads its
/// first byte as a flag (odd: append a checksum), so its seeds get an even one in front: the
/// file as it is.
pub fn fuzz_seed(target: &str, name: &str, bytes: &[u8]) {
    let Ok(dir) = std::env::var("DPPD_FUZZ_SEEDS") else {
        return;
    };
    if bytes.len() > 64 << 10 {
        return;
    }
    let dir = Path::new(&dir).join(target);
    std::fs::create_dir_all(&dir).unwrap();
    let mut seed = Vec::with_capacity(bytes.len() + 1);
    if target == "train_checkpoint" {
        seed.push(0);
    }
    seed.extend_from_slice(bytes);
    std::fs::write(dir.join(name), seed).unwrap();
}

/// The CPU devices the tests run on: flex always, ndarray with its feature.
pub fn cpu_devices() -> Vec<(&'static str, Device)> {
    #[allow(unused_mut)]
    let mut v = vec![("flex", Device::flex())];
    #[cfg(feature = "ndarray")]
    #[allow(deprecated)]
    v.push(("ndarray", Device::ndarray()));
    v
}

/// The GPU devices of this build (its `wgpu` and `cuda` features). Only a build that enables
/// one of them runs the GPU tests, and such a build needs the GPU (or a software Vulkan driver).
pub fn gpu_devices() -> Vec<(&'static str, Device)> {
    [
        #[cfg(feature = "wgpu")]
        (
            "wgpu",
            Device::wgpu(burn::tensor::DeviceKind::DefaultDevice),
        ),
        #[cfg(feature = "cuda")]
        ("cuda", Device::cuda(0)),
    ]
    .into_iter()
    .collect()
}

/// Reads a little-endian float32 C-order `.npy` (format 1.0/2.0) file.
pub fn read_npy(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        &bytes[..6],
        b"\x93NUMPY",
        "{}: not an npy file",
        path.display()
    );
    let (hlen, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        _ => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
    };
    let header = std::str::from_utf8(&bytes[start..start + hlen]).unwrap();
    assert!(header.contains("'descr': '<f4'"), "{header}");
    assert!(header.contains("'fortran_order': False"), "{header}");
    let shape_txt = header
        .split("'shape': (")
        .nth(1)
        .unwrap()
        .split(')')
        .next()
        .unwrap();
    let shape: Vec<usize> = shape_txt
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse().unwrap())
        .collect();
    let data: Vec<f32> = bytes[start + hlen..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(data.len(), shape.iter().product::<usize>());
    (shape, data)
}

/// A `.npy` file as a tensor of rank `D`.
pub fn npy_tensor<const D: usize>(path: &Path, device: &Device) -> Tensor<D> {
    let (shape, data) = read_npy(path);
    let shape: [usize; D] = shape.try_into().expect("rank");
    Tensor::from_data(TensorData::new(data, shape), device)
}

/// max |a − b|.
pub fn max_abs_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
    assert_eq!(a.dims(), b.dims());
    (a - b).abs().max().into_scalar::<f32>()
}

/// max |a|.
pub fn max_abs<const D: usize>(a: Tensor<D>) -> f32 {
    a.abs().max().into_scalar::<f32>()
}
pub mod craft;
pub mod photos;
pub mod train;
