//! Training checkpoints: one file holding everything a run needs to continue exactly.
//!
//! Layout of a `.ckpt` file (all integers little-endian):
//!
//! ```text
//! "DPPDCKPT" u32 version (1, or 2 with a moving average)
//! u64 n, n bytes   TrainState as JSON (step, experiment config, resolved network config,
//!                  best validation score, data sizes)
//! u64 n, n bytes   the model's parameters (burnpack, with their parameter ids)
//! u64 n, n bytes   the optimiser state (burnpack, keyed by those ids)
//! u64 n, n bytes   version 2 only: the moving average of the parameters (burnpack), present
//!                  exactly when the experiment configures `ema`
//! u64              FNV-1a 64 of every byte before it
//! ```
//!
//! The data order, crops, degradations and prompt-sampling noise of step `s` are pure
//! functions of the seed and `s` (see [`super::train`]), so `step` *is* the RNG and
//! data-order state, and the learning rate is a function of `step` too.
//!
//! Files are written atomically: to a temporary sibling, `fsync`ed, renamed over the target,
//! and the directory `fsync`ed. A reader verifies the checksum, so a torn or damaged file is
//! refused, never half-loaded.

use std::collections::BTreeMap;
use std::path::Path;

use burn::optim::ModuleOptimizer;
use burn::prelude::*;
use burn::store::{ModuleRecord, ModuleSnapshot};
use burn::tensor::{Bytes, DType};
use serde::{Deserialize, Serialize};

use super::ExperimentConfig;
use crate::base::rng::{FNV_OFFSET, fnv1a};
use crate::model::{Restorer, RestorerConfig};
use crate::{Error, Result};

const MAGIC: &[u8; 8] = b"DPPDCKPT";
/// The version of a checkpoint without a moving average; with one, `VERSION + 1`.
const VERSION: u32 = 1;

/// The best validation score so far.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BestScore {
    /// The step after which it was measured.
    pub step: u64,
    /// Mean over tasks of the per-task mean PSNR (dB).
    pub psnr: f64,
}

/// Everything in a checkpoint besides the tensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Optimisation steps completed.
    pub step: u64,
    /// The run's configuration.
    pub experiment: ExperimentConfig,
    /// The network's configuration (the resolved `experiment.model`).
    pub network: RestorerConfig,
    /// The best validation score up to `step`.
    pub best: Option<BestScore>,
    /// Training samples per epoch (checked on resume: other data would change the order).
    pub train_samples: usize,
    /// Validation samples (checked on resume).
    pub val_samples: usize,
}

/// A loaded checkpoint.
pub struct Checkpoint {
    /// The state.
    pub state: TrainState,
    /// The network (on the device given to [`Checkpoint::load`]).
    pub model: Restorer,
    /// The optimiser with its state.
    pub optimizer: ModuleOptimizer,
    /// The moving average of the weights (on the plain device under `device`), present exactly
    /// when the experiment configures `ema`.
    pub ema: Option<Restorer>,
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn ckpt_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Weights {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn network_bytes(model: &Restorer, what: &str) -> Result<Bytes> {
    model
        .clone()
        .into_record()
        .into_bytes()
        .map_err(|e| Error::Training(format!("serialising the {what}: {e}")))
}

/// Serialises a checkpoint (with the moving average of the weights, `ema`, when the run keeps
/// one).
pub fn encode(
    state: &TrainState,
    model: &Restorer,
    optimizer: &ModuleOptimizer,
    ema: Option<&Restorer>,
) -> Result<Vec<u8>> {
    let json = serde_json::to_vec(state).map_err(|e| Error::Config(e.to_string()))?;
    let model_bytes = network_bytes(model, "model")?;
    let optim_bytes = optimizer
        .into_bytes()
        .map_err(|e| Error::Training(format!("serialising the optimiser: {e}")))?;
    let ema_bytes = ema
        .map(|m| network_bytes(m, "moving average"))
        .transpose()?;
    let mut parts = vec![&json[..], &model_bytes[..], &optim_bytes[..]];
    parts.extend(ema_bytes.as_deref());
    let version = VERSION + u32::from(ema_bytes.is_some());
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.len() + 8).sum::<usize>() + 20);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&version.to_le_bytes());
    for part in parts {
        out.extend_from_slice(&(part.len() as u64).to_le_bytes());
        out.extend_from_slice(part);
    }
    let sum = fnv1a(&out, FNV_OFFSET);
    out.extend_from_slice(&sum.to_le_bytes());
    Ok(out)
}

/// Writes a checkpoint atomically.
pub fn save(
    path: &Path,
    state: &TrainState,
    model: &Restorer,
    optimizer: &ModuleOptimizer,
    ema: Option<&Restorer>,
) -> Result<()> {
    crate::base::atomic::write_bytes(path, &encode(state, model, optimizer, ema)?)
}

/// The verified sections of a checkpoint file: state, model, optimiser, and the moving
/// average (empty in a version-1 file, which has none).
fn sections(path: &Path, bytes: &[u8]) -> Result<[Vec<u8>; 4]> {
    if bytes.len() < 12 + 24 + 8 || &bytes[..8] != MAGIC {
        return Err(ckpt_err(path, "not a dppd training checkpoint"));
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version != VERSION && version != VERSION + 1 {
        return Err(ckpt_err(
            path,
            format!(
                "checkpoint version {version}, this build reads {VERSION} and {}",
                VERSION + 1
            ),
        ));
    }
    let body = &bytes[..bytes.len() - 8];
    let sum = u64::from_le_bytes(bytes[bytes.len() - 8..].try_into().expect("8 bytes"));
    if fnv1a(body, FNV_OFFSET) != sum {
        return Err(ckpt_err(
            path,
            "checksum mismatch: the file is damaged or truncated",
        ));
    }
    let mut at = 12usize;
    let mut out: [Vec<u8>; 4] = Default::default();
    let count = if version == VERSION { 3 } else { 4 };
    for part in out.iter_mut().take(count) {
        let len = body
            .get(at..at + 8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
            .ok_or_else(|| ckpt_err(path, "truncated section header"))?;
        at += 8;
        // A crafted length may be anything: checked against what the file holds before any
        // arithmetic or allocation.
        let end = usize::try_from(len)
            .ok()
            .and_then(|len| at.checked_add(len))
            .filter(|&end| end <= body.len())
            .ok_or_else(|| {
                ckpt_err(
                    path,
                    format!(
                        "a section claims {len} bytes, more than the file's remaining {}",
                        body.len() - at
                    ),
                )
            })?;
        *part = body[at..end].to_vec();
        at = end;
    }
    Ok(out)
}

/// Parses a checkpoint's state and validates the network it describes (bounded in size by
/// [`RestorerConfig::validate`]) before anything is built from it.
fn parse_state(path: &Path, json: &[u8]) -> Result<TrainState> {
    let state: TrainState =
        serde_json::from_slice(json).map_err(|e| ckpt_err(path, format!("state: {e}")))?;
    state
        .network
        .validate()
        .map_err(|e| ckpt_err(path, format!("state: the network: {e}")))?;
    state
        .experiment
        .validate()
        .map_err(|e| ckpt_err(path, format!("state: the experiment: {e}")))?;
    Ok(state)
}

/// Reads only the [`TrainState`] of a checkpoint (verifying the whole file).
pub fn read_state(path: &Path) -> Result<TrainState> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    let [json, _, _, ema] = sections(path, &bytes)?;
    let state = parse_state(path, &json)?;
    ema_matches(path, &state, &ema)?;
    Ok(state)
}

/// A moving-average section must be there exactly when the experiment configures one.
fn ema_matches(path: &Path, state: &TrainState, ema: &[u8]) -> Result<()> {
    match (state.experiment.ema.is_some(), ema.is_empty()) {
        (true, true) => Err(ckpt_err(
            path,
            "the experiment keeps a moving average of the weights, the file holds none",
        )),
        (false, false) => Err(ckpt_err(
            path,
            "the file holds a moving average of the weights, the experiment keeps none",
        )),
        _ => Ok(()),
    }
}

/// One stored tensor's description: name, element type, shape, parameter id.
type IndexEntry = (String, DType, Vec<usize>, Option<u64>);

/// The index of a burnpack section, without its data.
fn section_index(path: &Path, what: &str, bytes: &[u8]) -> Result<Vec<IndexEntry>> {
    let reader = burn::store::burn_pack::Reader::from_bytes(Bytes::from_bytes_vec(bytes.to_vec()))
        .map_err(|e| ckpt_err(path, format!("{what}: {e}")))?;
    Ok(reader
        .into_tensors()
        .map_err(|e| ckpt_err(path, format!("{what}: {e}")))?
        .into_iter()
        .map(|t| {
            (
                t.name.clone(),
                t.dtype,
                t.shape.as_slice().to_vec(),
                t.param_id,
            )
        })
        .collect())
}

/// Checks the model section against the network built from the stored configuration: the
/// same tensor names, shapes and element types, nothing more. Returns each parameter id's
/// shape, for [`check_optimizer`].
fn check_model(
    path: &Path,
    what: &str,
    model: &Restorer,
    bytes: &[u8],
) -> Result<BTreeMap<u64, Vec<usize>>> {
    let expected: BTreeMap<String, (DType, Vec<usize>)> = model
        .collect(None, None, false)
        .into_iter()
        .map(|t| (t.name.clone(), (t.dtype, t.shape.as_slice().to_vec())))
        .collect();
    let index = section_index(path, what, bytes)?;
    let mut ids = BTreeMap::new();
    let mut seen = 0;
    for (name, dtype, shape, id) in index {
        match expected.get(&name) {
            Some((want_dtype, want)) if *want == shape && *want_dtype == dtype => {
                seen += 1;
                if let Some(id) = id {
                    ids.insert(id, shape);
                }
            }
            Some((want_dtype, want)) => {
                return Err(ckpt_err(
                    path,
                    format!(
                        "{what}: {name} is {dtype:?} {shape:?} in the file, the network needs \
                         {want_dtype:?} {want:?}"
                    ),
                ));
            }
            None => {
                return Err(ckpt_err(
                    path,
                    format!("{what}: the file holds {name}, which the network does not have"),
                ));
            }
        }
    }
    if seen != expected.len() {
        return Err(ckpt_err(
            path,
            format!(
                "{what}: the file holds {seen} of the network's {} tensors",
                expected.len()
            ),
        ));
    }
    Ok(ids)
}

/// Checks the optimiser section: every state tensor belongs to a parameter of the model
/// section and has its shape and a float type, at most a few per parameter.
fn check_optimizer(path: &Path, ids: &BTreeMap<u64, Vec<usize>>, bytes: &[u8]) -> Result<()> {
    let index = section_index(path, "optimiser", bytes)?;
    if index.len() > 4 * ids.len() + 16 {
        return Err(ckpt_err(
            path,
            format!(
                "optimiser: {} state tensors for {} parameters",
                index.len(),
                ids.len()
            ),
        ));
    }
    for (name, dtype, shape, id) in index {
        let param = id
            .or_else(|| name.split('.').next().and_then(|p| p.parse().ok()))
            .and_then(|id| ids.get(&id));
        match param {
            Some(want) if *want == shape && dtype.is_float() => {}
            _ => {
                return Err(ckpt_err(
                    path,
                    format!(
                        "optimiser: state tensor {name} ({dtype:?} {shape:?}) belongs to no \
                         parameter of that shape"
                    ),
                ));
            }
        }
    }
    Ok(())
}

impl Checkpoint {
    /// Loads a checkpoint: the network is built from the stored configuration on `device`
    /// (pass an autodiff device to continue training) and the optimiser from `state`'s
    /// experiment configuration.
    ///
    /// The file is untrusted: its checksum, its section lengths, the stored configuration
    /// (bounded in size) and the index of every stored tensor are checked before any tensor
    /// is read; a file that does not describe exactly the stored network is refused.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(io_err(path))?;
        let [json, model_bytes, optim_bytes, ema_bytes] = sections(path, &bytes)?;
        let state = parse_state(path, &json)?;
        ema_matches(path, &state, &ema_bytes)?;
        let model = state.network.init(device);
        let ids = check_model(path, "model", &model, &model_bytes)?;
        check_optimizer(path, &ids, &optim_bytes)?;
        let ema = if ema_bytes.is_empty() {
            None
        } else {
            let average = model.valid();
            check_model(path, "moving average", &average, &ema_bytes)?;
            Some(read_network(path, "moving average", average, ema_bytes)?)
        };
        let model = read_network(path, "model", model, model_bytes)?;
        let optimizer = state
            .experiment
            .optimizer
            .adamw()
            .init()
            .from_bytes(Bytes::from_bytes_vec(optim_bytes))
            .map_err(|e| ckpt_err(path, format!("optimiser: {e}")))?;
        Ok(Self {
            state,
            model,
            optimizer,
            ema,
        })
    }

    /// Loads only the network of a checkpoint (for evaluation), on `device`, with the checks
    /// of [`Checkpoint::load`]: the moving average of the weights when the run keeps one (the
    /// network it validates and writes as `final.bpk`), else the trained weights.
    pub fn load_model(path: &Path, device: &Device) -> Result<Restorer> {
        let bytes = std::fs::read(path).map_err(io_err(path))?;
        let [json, model_bytes, _, ema_bytes] = sections(path, &bytes)?;
        let state = parse_state(path, &json)?;
        ema_matches(path, &state, &ema_bytes)?;
        let (what, bytes) = if ema_bytes.is_empty() {
            ("model", model_bytes)
        } else {
            ("moving average", ema_bytes)
        };
        let network = state.network.init(device);
        check_model(path, what, &network, &bytes)?;
        read_network(path, what, network, bytes)
    }
}

/// `network` with the parameters of a model section that [`check_model`] accepted.
fn read_network(path: &Path, what: &str, network: Restorer, bytes: Vec<u8>) -> Result<Restorer> {
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes))
        .map_err(|e| ckpt_err(path, format!("{what}: {e}")))?;
    network
        .try_load_record(record)
        .map_err(|e| ckpt_err(path, format!("{what}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A state of step 3 for `experiment` (data sizes 1 and 1).
    fn state_for(experiment: &ExperimentConfig) -> TrainState {
        TrainState {
            step: 3,
            experiment: experiment.clone(),
            network: experiment.model.resolve().unwrap(),
            best: None,
            train_samples: 1,
            val_samples: 1,
        }
    }

    #[test]
    fn a_damaged_or_truncated_checkpoint_is_refused() {
        let device = Device::flex();
        let experiment: ExperimentConfig = serde_json::from_str(
            r#"{"model": "dppd-small", "steps": 1, "batch_size": 1, "patch_size": 16}"#,
        )
        .unwrap();
        let state = state_for(&experiment);
        let model = state.network.init(&device);
        let bytes = encode(&state, &model, &experiment.optimizer.adamw().init(), None).unwrap();
        let dir = std::env::temp_dir().join(format!("dppd-ckpt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.ckpt");
        crate::base::atomic::write_bytes(&path, &bytes).unwrap();
        assert_eq!(read_state(&path).unwrap(), state);
        let loaded = Checkpoint::load_model(&path, &device).unwrap();
        assert_eq!(loaded.num_params(), model.num_params());
        let mut bad = bytes.clone();
        bad[bytes.len() / 2] ^= 1;
        crate::base::atomic::write_bytes(&path, &bad).unwrap();
        let err = read_state(&path).unwrap_err().to_string();
        assert!(err.contains("checksum"), "{err}");
        crate::base::atomic::write_bytes(&path, &bytes[..bytes.len() - 100]).unwrap();
        assert!(read_state(&path).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_moving_average_travels_with_the_checkpoint() {
        use crate::test_util::TempDir;
        let device = Device::flex();
        let mut experiment: ExperimentConfig = serde_json::from_str(
            r#"{"model": "dppd-small", "steps": 1, "batch_size": 1, "patch_size": 16,
                "ema": {"decay": 0.9}}"#,
        )
        .unwrap();
        let mut state = state_for(&experiment);
        device.seed(5);
        let model = state.network.init(&device);
        device.seed(6);
        let ema = state.network.init(&device);
        let optim = experiment.optimizer.adamw().init();
        let dir = TempDir::new("ckpt-ema");
        let path = dir.0.join("c.ckpt");
        save(&path, &state, &model, &optim, Some(&ema)).unwrap();
        let c = Checkpoint::load(&path, &device).unwrap();
        let weights = |m: &Restorer| {
            m.patch_embed
                .proj
                .weight
                .val()
                .flatten::<1>(0, 3)
                .into_data()
                .try_to_vec::<f32>()
                .unwrap()
        };
        assert_eq!(weights(&c.model), weights(&model));
        assert_eq!(weights(c.ema.as_ref().unwrap()), weights(&ema));
        // what evaluation loads is the average
        let evaluated = Checkpoint::load_model(&path, &device).unwrap();
        assert_eq!(weights(&evaluated), weights(&ema));
        // a file whose sections disagree with its experiment is refused
        experiment.ema = None;
        state.experiment = experiment;
        save(&path, &state, &model, &optim, Some(&ema)).unwrap();
        let err = read_state(&path).unwrap_err().to_string();
        assert!(err.contains("moving average"), "{err}");
        assert!(Checkpoint::load(&path, &device).is_err());
        save(&path, &state, &model, &optim, None).unwrap();
        assert!(Checkpoint::load(&path, &device).unwrap().ema.is_none());
    }
}
