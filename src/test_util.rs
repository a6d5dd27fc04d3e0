//! Helpers shared by the crate's unit tests.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use burn::prelude::*;

/// The device unit tests run on.
pub fn device() -> Device {
    Device::flex()
}

/// Max |a − b| over two tensors of equal shape.
pub fn max_abs_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    (a - b).abs().max().into_scalar::<f32>()
}

/// A tensor from a flat vector.
pub fn tensor<const D: usize>(v: Vec<f32>, shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(v, shape), device)
}

/// A fresh directory under the system's temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A new, empty directory whose name contains `tag`.
    pub fn new(tag: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let p = std::env::temp_dir().join(format!(
            "dppd-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Compares, for every parameter a module visits, its gradient in two gradient sets
/// (relative to the largest value of the second); counts the parameters compared.
pub struct GradCompare<'a> {
    a: &'a burn::optim::GradientsParams,
    b: &'a burn::optim::GradientsParams,
    tolerance: f32,
    /// Parameters compared so far.
    pub checked: usize,
}

impl<'a> GradCompare<'a> {
    /// A comparison of `a` against `b` within `tolerance` (relative).
    pub fn new(
        a: &'a burn::optim::GradientsParams,
        b: &'a burn::optim::GradientsParams,
        tolerance: f32,
    ) -> Self {
        Self {
            a,
            b,
            tolerance,
            checked: 0,
        }
    }
}

impl burn::module::ModuleVisitor for GradCompare<'_> {
    fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
        let (Some(a), Some(b)) = (self.a.get::<D>(param.id), self.b.get::<D>(param.id)) else {
            panic!("no gradient for a parameter of shape {:?}", param.dims());
        };
        let scale = b.clone().abs().max().into_scalar::<f32>().max(1.0);
        let diff = max_abs_diff(a, b) / scale;
        assert!(
            diff < self.tolerance,
            "parameter {:?}: relative difference {diff}",
            param.dims()
        );
        self.checked += 1;
    }
}
