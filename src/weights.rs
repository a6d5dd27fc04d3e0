//! Loading and saving weights: PromptIR's PyTorch checkpoints (Lightning `.ckpt`, plain
//! `.pth`), safetensors with PromptIR's key names, and burn's native `.bpk`.
//!
//! Every load is strict: a missing, unexpected or wrong-shaped tensor is an error that names
//! the keys. The only tolerated extras are the modules PromptIR creates but never runs
//! (`chnl_reduce1/2/3`, `reduce_noise_channel_1/2/3`). Every save is atomic: the file is
//! written under a temporary name and renamed, so an existing file is never left half-written.
//!
//! Files are untrusted. Every load first reads only the file's index (names, element types,
//! shapes, data ranges) and compares it with the tensors the configuration needs
//! ([`check_index`]): a file that claims a tensor the model lacks, a shape other than the
//! model's, a non-float element type, or unused tensors bigger than the model itself is
//! refused before any tensor data is read or allocated. The readers underneath are burn's,
//! which parse pickles without executing anything (no `GLOBAL`/`REDUCE` is ever called: a
//! pickle is data here), check every declared length and offset against the file's size, and
//! cap metadata and tensor sizes. A configuration stored in a file is validated
//! ([`RestorerConfig::validate`], which bounds the network's size) before a network is built.

use std::collections::BTreeMap;
use std::path::Path;

use burn::prelude::*;
use burn::store::burn_pack::Tensor as PackTensor;
use burn::store::{
    ApplyResult, BurnToPyTorchAdapter, BurnpackStore, ModuleSnapshot, ModuleStore,
    PyTorchToBurnAdapter, PytorchStore, SafetensorsStore,
};

use crate::model::{PromptIrConfig, Restorer, RestorerConfig};
use crate::{Error, Result};

/// PromptIR keys of modules that exist in its state dict but never run.
fn is_unused_promptir_key(key: &str) -> bool {
    let head = key.split('.').next().unwrap_or("");
    head.starts_with("chnl_reduce") || head.starts_with("reduce_noise_channel_")
}

/// Bytes with the alignment of a burnpack file's tensor data, so that tensors can be read in
/// place (an `include_bytes!` array alone is only byte-aligned).
#[repr(C, align(256))]
struct Aligned<B: ?Sized>(B);

/// The built-in default weights ([`Restorer::pretrained`]; `docs/default-weights.md`).
static DEFAULT_WEIGHTS: &Aligned<[u8]> = &Aligned(*include_bytes!("../weights/default.bpk"));

/// Parses the [`RestorerConfig`] JSON stored in the weights `path`.
fn stored_config(path: &Path, json: &str) -> Result<RestorerConfig> {
    let config: RestorerConfig = serde_json::from_str(json)
        .map_err(|e| weights_err(path, format!("stored configuration is invalid: {e}")))?;
    config
        .validate()
        .map_err(|e| weights_err(path, format!("stored configuration is invalid: {e}")))?;
    Ok(config)
}

/// Applies a burnpack store to `model` after [`check_store`] (strictness is judged afterwards
/// by [`verdict`]).
fn load_burnpack(model: &mut Restorer, store: BurnpackStore, path: &Path) -> Result<ApplyResult> {
    let mut store = store.allow_partial(true).validate(false);
    check_store(path, model, &mut store)?;
    model
        .load_from(&mut store)
        .map_err(|e| weights_err(path, e.to_string()))
}

/// Reads a store's index (no tensor data) and refuses it unless it fits `model`
/// ([`check_index`]).
fn check_store<S: ModuleStore>(path: &Path, model: &Restorer, store: &mut S) -> Result<()> {
    let index = store
        .get_all_tensors()
        .map_err(|e| weights_err(path, e.to_string()))?;
    check_index(path, &expected_tensors(model), index)
}

/// The tensors `model` holds, in its order: name, shape.
fn expected_tensors(model: &Restorer) -> Vec<(String, Vec<usize>)> {
    model
        .collect(None, None, true)
        .into_iter()
        .map(|t| (t.name.clone(), t.shape.as_slice().to_vec()))
        .collect()
}

/// Bytes of one element of a tensor type (1 for types narrower than a byte).
fn element_bytes(dtype: burn::tensor::DType) -> u128 {
    dtype.size().max(1) as u128
}

/// Compares a file's index (name → tensor, data not read) with the tensors a model needs, and
/// refuses the file, before anything is read or allocated for its tensors, if
///
/// - a tensor the model needs has another shape (a 2-D tensor may be stored transposed, as
///   PyTorch stores linear layers) or a non-float element type;
/// - the file holds tensors the model has no place for (besides PromptIR's unused
///   `chnl_reduce*` / `reduce_noise_channel_*` modules);
/// - the tolerated unused tensors would take more memory than the whole model;
/// - tensors the model needs are missing.
///
/// The error lists the offending keys as [`Restorer::load_weights`]'s verdict does.
pub(crate) fn check_index(
    path: &Path,
    expected: &[(String, Vec<usize>)],
    index: &BTreeMap<String, PackTensor>,
) -> Result<()> {
    let mut errors = Vec::new();
    let mut fitting = 0;
    let model_bytes: u128 = expected
        .iter()
        .map(|(_, s)| 4 * s.iter().map(|&d| d as u128).product::<u128>())
        .sum();
    // in the model's order, as the loaders report them
    for (name, want) in expected {
        let Some(tensor) = index.get(name) else {
            continue;
        };
        let shape = tensor.shape.as_slice();
        let transposed =
            shape.len() == 2 && want.len() == 2 && shape[0] == want[1] && shape[1] == want[0];
        if shape != want.as_slice() && !transposed {
            errors.push(format!(
                "{name}: the file holds shape {shape:?}, the model needs {want:?}"
            ));
        } else if !tensor.dtype.is_float() {
            errors.push(format!(
                "{name}: the file holds {:?} elements, the model needs floats",
                tensor.dtype
            ));
        } else {
            fitting += 1;
        }
    }
    let names: std::collections::BTreeSet<&str> =
        expected.iter().map(|(n, _)| n.as_str()).collect();
    let mut unused = Vec::new();
    let mut unused_bytes: u128 = 0;
    for (name, tensor) in index {
        if names.contains(name.as_str()) {
            continue;
        }
        if is_unused_promptir_key(name) {
            let bytes = tensor
                .shape
                .as_slice()
                .iter()
                .fold(element_bytes(tensor.dtype), |acc, &d| {
                    acc.saturating_mul(d as u128)
                });
            unused_bytes = unused_bytes.saturating_add(bytes);
        } else {
            unused.push(name.clone());
        }
    }
    let mut missing: Vec<String> = names
        .iter()
        .filter(|k| !index.contains_key(**k))
        .map(|k| k.to_string())
        .collect();
    missing.sort();
    if unused_bytes > model_bytes.max(1 << 20) {
        errors.push(format!(
            "the unused PromptIR tensors (chnl_reduce*, reduce_noise_channel_*) claim \
             {unused_bytes} bytes, more than the whole model ({model_bytes} bytes)"
        ));
    }
    Problems {
        errors,
        missing,
        unused,
        applied: fitting,
    }
    .into_result(path)
}

/// What is wrong between a file and a model, for one error message.
struct Problems {
    errors: Vec<String>,
    missing: Vec<String>,
    unused: Vec<String>,
    applied: usize,
}

impl Problems {
    fn into_result(self, path: &Path) -> Result<()> {
        let mut problems = Vec::new();
        if !self.errors.is_empty() {
            problems.push(listing("tensor(s) do not fit", self.errors.clone()));
        }
        if !self.missing.is_empty() {
            problems.push(listing(
                "tensor(s) missing from the file",
                self.missing.clone(),
            ));
        }
        if !self.unused.is_empty() {
            problems.push(listing(
                "tensor(s) in the file have no place in the model",
                self.unused.clone(),
            ));
        }
        if problems.is_empty() {
            return Ok(());
        }
        let hint = if self.errors.len() + self.missing.len() > self.applied {
            "\n(most tensors disagree: the file was probably made for another configuration; \
             give the one it was trained with)"
        } else {
            ""
        };
        Err(weights_err(
            path,
            format!(
                "checkpoint does not match the model\n{}{hint}",
                problems.join("\n")
            ),
        ))
    }
}

/// Metadata key holding the [`RestorerConfig`] JSON in files this crate writes.
const CONFIG_KEY: &str = "dppd_config";

/// The on-disk formats this crate reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightsFormat {
    /// PyTorch pickle/zip: a Lightning `.ckpt` (`state_dict`, keys prefixed `net.`) or a
    /// plain state dict (`.pth`, `.pt`).
    Pytorch,
    /// safetensors with PromptIR's key names.
    Safetensors,
    /// burn's native burnpack.
    Burnpack,
}

impl WeightsFormat {
    /// Guesses the format from the file extension.
    pub fn from_path(path: &Path) -> Result<Self> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("ckpt" | "pth" | "pt" | "bin") => Ok(Self::Pytorch),
            Some("safetensors") => Ok(Self::Safetensors),
            Some("bpk") => Ok(Self::Burnpack),
            _ => Err(weights_err(
                path,
                "unknown weights format: expected .ckpt, .pth, .pt, .safetensors or .bpk".into(),
            )),
        }
    }
}

fn weights_err(path: &Path, reason: String) -> Error {
    Error::Weights {
        path: path.into(),
        reason,
    }
}

fn check_exists(path: &Path) -> Result<()> {
    std::fs::metadata(path)
        .map(|_| ())
        .map_err(|source| Error::Io {
            path: path.into(),
            source,
        })
}

/// At most this many keys are listed per kind of problem; the rest are counted.
const LIST_AT_MOST: usize = 12;

/// `N what:` and the first [`LIST_AT_MOST`] items, one per line, then how many more.
fn listing(what: &str, items: Vec<String>) -> String {
    let n = items.len();
    let mut out = format!("{n} {what}:");
    for item in items.iter().take(LIST_AT_MOST) {
        out.push_str("\n  ");
        out.push_str(item);
    }
    if n > LIST_AT_MOST {
        out.push_str(&format!("\n  … and {} more", n - LIST_AT_MOST));
    }
    out
}

/// Turns a lenient [`ApplyResult`] into a strict verdict that names the offending keys.
fn verdict(path: &Path, result: &ApplyResult) -> Result<()> {
    Problems {
        errors: result.errors.iter().map(|e| e.to_string()).collect(),
        missing: result.missing.iter().map(|(k, _)| k.clone()).collect(),
        unused: result
            .unused
            .iter()
            .filter(|k| !is_unused_promptir_key(k))
            .cloned()
            .collect(),
        applied: result.applied.len(),
    }
    .into_result(path)
}

/// PromptIR's `down*/up*` are `nn.Sequential(conv, PixelShuffle)`: `body.0` is our `conv`.
const SEQ_FROM: &str = r"^(down\d_\d|up\d_\d)\.body\.0\.";
const SEQ_TO: &str = "$1.conv.";

impl Restorer {
    /// Builds a network from `config` and loads weights from `path`, whose format is chosen by
    /// its extension (see [`WeightsFormat`]).
    ///
    /// # Errors
    /// A missing or unreadable file, an unknown extension, or a checkpoint that does not match
    /// `config` (the message lists the missing, unexpected and wrong-shaped keys).
    pub fn load_weights(
        config: &RestorerConfig,
        path: impl AsRef<Path>,
        device: &Device,
    ) -> Result<Self> {
        let path = path.as_ref();
        config.validate()?;
        check_exists(path)?;
        let mut model = config.init(device);
        let result = match WeightsFormat::from_path(path)? {
            WeightsFormat::Pytorch => {
                let store = |top: Option<&str>| {
                    let s = PytorchStore::from_file(path)
                        .with_key_remapping(r"^(net|module)\.", "")
                        .with_key_remapping(SEQ_FROM, SEQ_TO)
                        .allow_partial(true)
                        .validate(false);
                    match top {
                        Some(k) => s.with_top_level_key(k),
                        None => s,
                    }
                };
                // A Lightning checkpoint nests the weights under `state_dict`.
                let mut lightning = store(Some("state_dict"));
                let mut store = match lightning.get_all_tensors() {
                    Ok(_) => lightning,
                    Err(_) => store(None),
                };
                check_store(path, &model, &mut store)?;
                model
                    .load_from(&mut store)
                    .map_err(|e| weights_err(path, e.to_string()))?
            }
            WeightsFormat::Safetensors => {
                let mut store = SafetensorsStore::from_file(path)
                    .with_from_adapter(PyTorchToBurnAdapter)
                    .with_key_remapping(r"^(net|module)\.", "")
                    .with_key_remapping(SEQ_FROM, SEQ_TO)
                    .allow_partial(true)
                    .validate(false);
                check_store(path, &model, &mut store)?;
                model
                    .load_from(&mut store)
                    .map_err(|e| weights_err(path, e.to_string()))?
            }
            WeightsFormat::Burnpack => load_burnpack(
                &mut model,
                BurnpackStore::from_file(path).auto_extension(false),
                path,
            )?,
        };
        verdict(path, &result)?;
        Ok(model)
    }

    /// The built-in default network: the `dppd-medium` preset trained by this project to
    /// remove noise (σ 15, 25, 50 and blind), rain and haze; 1.64 M parameters, embedded in the
    /// library (6.6 MB), so it needs no file and no network. How it was trained, on what, and
    /// how well it restores photographs it never saw: `docs/default-weights.md`.
    pub fn pretrained(device: &Device) -> Result<Self> {
        Self::load_bytes(&DEFAULT_WEIGHTS.0, "<built-in default weights>", device)
    }

    /// Loads `.bpk` bytes written by [`Restorer::save`] (configuration included); `name`
    /// stands for the file in messages.
    fn load_bytes(bytes: &'static [u8], name: &str, device: &Device) -> Result<Self> {
        let path = Path::new(name);
        let reader = burn::store::burn_pack::Reader::from_bytes(
            burn::tensor::Bytes::from_bytes_vec(bytes.to_vec()),
        )
        .map_err(|e| weights_err(path, format!("not a burnpack file: {e}")))?;
        let json = reader
            .metadata()
            .get(CONFIG_KEY)
            .ok_or_else(|| weights_err(path, "holds no dppd configuration".into()))?;
        let mut model = stored_config(path, json)?.init(device);
        let result = load_burnpack(&mut model, BurnpackStore::from_static(bytes), path)?;
        verdict(path, &result)?;
        Ok(model)
    }

    /// Loads a `.bpk` file written by [`Restorer::save`], which carries its own configuration.
    pub fn load(path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let path = path.as_ref();
        check_exists(path)?;
        let config = Self::config_in_file(path)?.ok_or_else(|| {
            weights_err(
                path,
                "the file holds no dppd configuration; use Restorer::load_weights with a config"
                    .into(),
            )
        })?;
        Self::load_weights(&config, path, device)
    }

    /// The [`RestorerConfig`] stored in a `.bpk` or `.safetensors` file written by this crate,
    /// or the official PromptIR arguments stored under `config` in a safetensors file's
    /// metadata; `None` if the file holds neither.
    pub fn config_in_file(path: impl AsRef<Path>) -> Result<Option<RestorerConfig>> {
        let path = path.as_ref();
        let json = match WeightsFormat::from_path(path)? {
            WeightsFormat::Burnpack => {
                let reader = burn::store::burn_pack::Reader::from_file(path)
                    .map_err(|e| weights_err(path, format!("not a burnpack file: {e}")))?;
                reader.metadata().get(CONFIG_KEY).cloned()
            }
            WeightsFormat::Safetensors => {
                let mut meta = safetensors_metadata(path)?;
                match (meta.remove(CONFIG_KEY), meta.remove("config")) {
                    (Some(j), _) => Some(j),
                    // A PromptIR-style file may carry the official constructor arguments.
                    (None, Some(j)) => {
                        let official: PromptIrConfig = serde_json::from_str(&j).map_err(|e| {
                            weights_err(path, format!("stored PromptIR config is invalid: {e}"))
                        })?;
                        return official.to_restorer().map(Some);
                    }
                    (None, None) => None,
                }
            }
            WeightsFormat::Pytorch => None,
        };
        json.map(|j| stored_config(path, &j)).transpose()
    }

    /// Saves the weights and the configuration in burn's native format, atomically.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        crate::base::atomic::replace_with(path, |tmp| {
            let mut store = BurnpackStore::from_file(tmp)
                .auto_extension(false)
                .overwrite(true)
                .metadata(CONFIG_KEY, self.config_json());
            self.save_into(&mut store)
                .map_err(|e| weights_err(path, e.to_string()))
        })
    }

    /// Saves the weights as safetensors with PromptIR's key names (so PyTorch can load them
    /// into the official model when the configuration is PromptIR's), atomically. The
    /// configuration is stored in the file's metadata.
    pub fn save_safetensors(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        crate::base::atomic::replace_with(path, |tmp| {
            let mut store = SafetensorsStore::from_file(tmp)
                .with_to_adapter(BurnToPyTorchAdapter)
                .with_key_remapping(r"^(down\d_\d|up\d_\d)\.conv\.", "$1.body.0.")
                .overwrite(true)
                .metadata(CONFIG_KEY, self.config_json());
            self.save_into(&mut store)
                .map_err(|e| weights_err(path, e.to_string()))
        })
    }

    fn config_json(&self) -> String {
        serde_json::to_string(self.config()).expect("configs serialise")
    }
}

/// The `__metadata__` map of a safetensors file (its header is 8 bytes of length + JSON).
pub(crate) fn safetensors_metadata(
    path: &Path,
) -> Result<std::collections::HashMap<String, String>> {
    use std::io::Read;
    let io = |source| Error::Io {
        path: path.into(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let size = f.metadata().map_err(io)?.len();
    let mut len = [0u8; 8];
    f.read_exact(&mut len).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            weights_err(path, format!("not a safetensors file: only {size} bytes"))
        } else {
            io(e)
        }
    })?;
    let len = u64::from_le_bytes(len);
    if len > 100_000_000 || len > size.saturating_sub(8) {
        return Err(weights_err(
            path,
            format!("not a safetensors file: its header claims {len} bytes, the file holds {size}"),
        ));
    }
    let mut header = vec![0u8; len as usize];
    f.read_exact(&mut header).map_err(io)?;
    // (the length was checked against the file's size before this allocation)
    let header: serde_json::Value = serde_json::from_slice(&header)
        .map_err(|e| weights_err(path, format!("not a safetensors file: {e}")))?;
    Ok(header
        .get("__metadata__")
        .and_then(|m| serde_json::from_value(m.clone()).ok())
        .unwrap_or_default())
}
