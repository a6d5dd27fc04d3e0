//! Choosing a burn device by name, for programs that let their users pick the backend.

use burn::prelude::*;

use crate::{Error, Result};

/// The backends this build of the crate can run on (its enabled cargo features), CPU first.
pub fn available_backends() -> Vec<&'static str> {
    [
        ("flex", cfg!(feature = "flex")),
        ("ndarray", cfg!(feature = "ndarray")),
        ("wgpu", cfg!(feature = "wgpu")),
        ("cuda", cfg!(feature = "cuda")),
    ]
    .into_iter()
    .filter_map(|(name, enabled)| enabled.then_some(name))
    .collect()
}

/// The device for a backend name: `flex`, `ndarray`, `wgpu` (default adapter), `wgpu:N` (the
/// N-th discrete GPU), `cuda` or `cuda:N`. An error names the backends this build has when
/// the name is unknown or its cargo feature is not enabled.
pub fn device_from_name(name: &str) -> Result<Device> {
    let unknown = || {
        Error::Config(format!(
            "backend {name:?} is not available in this build; available: {} \
             (enable others with the cargo features flex, ndarray, wgpu, cuda)",
            available_backends().join(", ")
        ))
    };
    match name {
        #[cfg(feature = "flex")]
        "flex" | "cpu" => Ok(Device::flex()),
        #[cfg(feature = "ndarray")]
        #[allow(deprecated)]
        "ndarray" => Ok(Device::ndarray()),
        #[cfg(feature = "wgpu")]
        "wgpu" => Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)),
        #[cfg(feature = "wgpu")]
        n if n.starts_with("wgpu:") => {
            let i: usize = n[5..].parse().map_err(|_| unknown())?;
            Ok(Device::wgpu(burn::tensor::DeviceKind::DiscreteGpu(i)))
        }
        #[cfg(feature = "cuda")]
        "cuda" => Ok(Device::cuda(0)),
        #[cfg(feature = "cuda")]
        n if n.starts_with("cuda:") => {
            let i: usize = n[5..].parse().map_err(|_| unknown())?;
            Ok(Device::cuda(i))
        }
        _ => Err(unknown()),
    }
}

/// The devices of a comma-separated list of [`device_from_name`] names, e.g. `cuda:0,cuda:1`
/// (for data-parallel training, [`crate::train::TrainOptions::devices`]).
pub fn devices_from_names(names: &str) -> Result<Vec<Device>> {
    let names: Vec<&str> = names.split(',').map(str::trim).collect();
    if names.iter().any(|n| n.is_empty()) {
        return Err(Error::Config(format!(
            "device list {names:?}: an empty name (expected e.g. cuda:0,cuda:1)"
        )));
    }
    names.into_iter().map(device_from_name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_names_resolve_and_unknown_ones_list_the_alternatives() {
        assert!(device_from_name("flex").is_ok());
        let err = device_from_name("tpu").unwrap_err().to_string();
        assert!(err.contains("\"tpu\"") && err.contains("flex"), "{err}");
        assert_eq!(devices_from_names("flex, flex").unwrap().len(), 2);
        assert!(devices_from_names("flex,,flex").is_err());
        assert!(devices_from_names("flex,tpu").is_err());
    }
}
