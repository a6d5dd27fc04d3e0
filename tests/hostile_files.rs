//! Untrusted weights and configurations: crafted `.ckpt`/`.pth`, safetensors, `.bpk`, JSON
//! configurations and training checkpoints. Each is refused with an error that names the
//! file; none panics, aborts or allocates what it claims (several claim terabytes: had any
//! loader tried to allocate them, this test process would have died).

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::prelude::*;
use burn::store::ModuleSnapshot;
use burn::store::burn_pack::{Bytes, DType, Tensor as PackTensor, Writer};
use common::craft::*;
use common::reference_dir;
use common::train::temp_dir;
use dppd::model::{PromptIrConfig, Restorer, RestorerConfig};
use dppd::train::{Checkpoint, ExperimentConfig, TrainState, checkpoint};

fn tiny() -> RestorerConfig {
    PromptIrConfig::load(reference_dir().join("config.json"))
        .unwrap()
        .to_restorer()
        .unwrap()
}

/// The model's tensors: name → shape.
fn shapes(config: &RestorerConfig) -> Vec<(String, Vec<usize>)> {
    config
        .init(&Device::flex())
        .collect(None, None, true)
        .into_iter()
        .map(|t| (t.name.clone(), t.shape.as_slice().to_vec()))
        .collect()
}

/// Loads `path` with the tiny configuration; it must fail with a message naming the file and
/// containing one of `fragments`.
fn refused(path: &Path, fragments: &[&str]) -> String {
    let msg = match Restorer::load_weights(&tiny(), path, &Device::flex()) {
        Ok(_) => panic!("{} loaded", path.display()),
        Err(e) => e.to_string(),
    };
    let name = path.file_name().unwrap().to_string_lossy();
    assert!(msg.contains(&*name), "the error names the file: {msg}");
    assert!(
        fragments.iter().any(|f| msg.contains(f)),
        "{name}: expected one of {fragments:?} in: {msg}"
    );
    println!("{msg}\n");
    msg
}

/// Writes a crafted file (and keeps it as a fuzz seed, see `common::fuzz_seed`).
fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    write_for(dir, name, bytes, None)
}

fn write_for(dir: &Path, name: &str, bytes: &[u8], target: Option<&str>) -> PathBuf {
    let by_extension = match Path::new(name).extension().and_then(|e| e.to_str()) {
        Some("pth" | "ckpt") => "weights_pytorch",
        Some("safetensors") => "weights_safetensors",
        Some("bpk") => "weights_burnpack",
        _ => "configs",
    };
    common::fuzz_seed(target.unwrap_or(by_extension), name, bytes);
    let p = dir.join(name);
    fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn crafted_pytorch_checkpoints_are_refused_without_running_or_allocating() {
    let dir = temp_dir("hostile-pt");
    let first = &shapes(&tiny())[0];
    let (key, want) = (first.0.as_str(), &first.1);
    let want64: Vec<u64> = want.iter().map(|&d| d as u64).collect();
    let n: u64 = want64.iter().product();

    // a tensor claiming 36 TB: refused at open, nothing allocated
    let huge = PtTensor {
        storage_numel: 1 << 43,
        shape: vec![1 << 20, 1 << 20, 3, 3],
        data: vec![0; 64],
        ..PtTensor::float(key, &[1])
    };
    refused(
        &write(&dir, "huge-shape.pth", &torch_zip(&[huge], false)),
        &["PyTorch", "pickle", "storage", "exceeds", "size"],
    );
    // a consistent file whose tensor is one row larger than the model's: refused from the
    // index, before its data is read
    let mut bigger = want64.clone();
    bigger[0] += 1;
    let msg = refused(
        &write(
            &dir,
            "bigger.ckpt",
            &torch_zip(&[PtTensor::float(key, &bigger)], true),
        ),
        &["do not fit"],
    );
    assert!(
        msg.contains(key) && msg.contains("missing from the file"),
        "{msg}"
    );
    // integers where the model needs floats
    let long = PtTensor {
        storage_type: "LongStorage",
        data: vec![0; 8 * n as usize],
        ..PtTensor::float(key, &want64)
    };
    refused(
        &write(&dir, "wrong-dtype.pth", &torch_zip(&[long], false)),
        &["floats"],
    );
    // a view beyond its storage, a storage beyond its bytes
    let past = PtTensor {
        offset: 1 << 40,
        ..PtTensor::float(key, &want64)
    };
    refused(
        &write(&dir, "offset-past-end.pth", &torch_zip(&[past], false)),
        &["PyTorch", "storage", "offset", "bounds", "exceeds", "size"],
    );
    let short = PtTensor {
        data: vec![0; 4 * n as usize / 2],
        ..PtTensor::float(key, &want64)
    };
    refused(
        &write(&dir, "short-storage.pth", &torch_zip(&[short], false)),
        &["PyTorch", "storage", "bytes", "size", "do not fit", "load"],
    );
    // an unknown tensor claiming 16 GiB under a Lightning state_dict
    let extra = PtTensor {
        storage_numel: 1 << 32,
        shape: vec![1 << 16, 1 << 16],
        data: vec![0; 16],
        ..PtTensor::float("evil.weight", &[1])
    };
    refused(
        &write(&dir, "extra.ckpt", &torch_zip(&[extra], true)),
        &["PyTorch", "storage", "no place", "exceeds", "size"],
    );
    // the official checkpoint, truncated
    let real = fs::read(reference_dir().join("model.ckpt")).unwrap();
    for cut in [real.len() / 2, real.len() - 30, 100] {
        refused(
            &write(&dir, &format!("truncated-{cut}.ckpt"), &real[..cut]),
            &["PyTorch", "zip", "pickle", "archive", "EOF", "missing"],
        );
    }
    // a pickle that would run a shell command if it were executed: it is data here
    let marker = dir.join("pwned");
    let mut evil = Pickle::default();
    evil.op(b"\x80\x02")
        .global("os", "system")
        .string(&format!("touch {}", marker.display()))
        .op(b"\x85R.");
    let plain = write(&dir, "evil.pth", &evil.0);
    refused(&plain, &["PyTorch", "pickle", "missing", "tensor"]);
    let zipped = zip(&[("archive/data.pkl".into(), evil.0.clone())]);
    refused(
        &write(&dir, "evil-zip.pth", &zipped),
        &["PyTorch", "pickle", "missing", "tensor"],
    );
    assert!(!marker.exists(), "the pickle's command ran");
    fs::remove_dir_all(&dir).ok();
}

#[test]
fn crafted_safetensors_files_are_refused() {
    let dir = temp_dir("hostile-st");
    let real = fs::read(reference_dir().join("weights.safetensors")).unwrap();
    let hlen = u64::from_le_bytes(real[..8].try_into().unwrap()) as usize;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&real[8..8 + hlen]).unwrap();
    let data = &real[8 + hlen..];
    let rebuild = |edit: &dyn Fn(&mut serde_json::Map<String, serde_json::Value>)| {
        let mut h = header.clone();
        edit(&mut h);
        let mut json = serde_json::to_vec(&h).unwrap();
        while !json.len().is_multiple_of(8) {
            json.push(b' ');
        }
        let mut out = (json.len() as u64).to_le_bytes().to_vec();
        out.extend(json);
        out.extend_from_slice(data);
        out
    };
    let key = "patch_embed.proj.weight";

    // the header's length: absurd, or beyond the file
    let mut bad = real.clone();
    bad[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    refused(
        &write(&dir, "header-max.safetensors", &bad),
        &["header", "safetensors", "Header"],
    );
    bad[..8].copy_from_slice(&((real.len() as u64) + 1).to_le_bytes());
    refused(
        &write(&dir, "header-long.safetensors", &bad),
        &["header", "safetensors", "Header"],
    );
    // a huge claimed shape over the same bytes
    let huge = rebuild(&|h| h[key]["shape"] = serde_json::json!([1u64 << 40, 1u64 << 20, 3, 3]));
    refused(
        &write(&dir, "huge-shape.safetensors", &huge),
        &[
            "safetensors",
            "Safetensors",
            "shape",
            "do not fit",
            "invalid",
            "Invalid",
        ],
    );
    // offsets past the end of the data
    let past = rebuild(&|h| {
        let end = data.len() as u64;
        h[key]["data_offsets"] = serde_json::json!([end + 1_000_000, end + 1_000_000 + 1728]);
    });
    refused(
        &write(&dir, "offsets-past-end.safetensors", &past),
        &[
            "safetensors",
            "Safetensors",
            "offset",
            "invalid",
            "Invalid",
            "bounds",
        ],
    );
    // integers of the same width where floats are needed
    let ints = rebuild(&|h| h[key]["dtype"] = serde_json::json!("I32"));
    refused(
        &write(&dir, "wrong-dtype.safetensors", &ints),
        &["floats", "dtype", "DType"],
    );
    // an extra tensor with consistent bytes
    let extra = safetensors(&[("evil.weight", "F32", vec![4, 4], [0, 64])], &[0; 64]);
    refused(&write(&dir, "extra.safetensors", &extra), &["no place"]);
    // not JSON, truncated
    let mut garbage = 16u64.to_le_bytes().to_vec();
    garbage.extend_from_slice(b"{not json at all");
    refused(
        &write(&dir, "garbage.safetensors", &garbage),
        &[
            "safetensors",
            "Safetensors",
            "JSON",
            "json",
            "header",
            "Header",
        ],
    );
    for cut in [real.len() / 2, 4, 8 + hlen / 2] {
        refused(
            &write(&dir, &format!("truncated-{cut}.safetensors"), &real[..cut]),
            &[
                "safetensors",
                "Safetensors",
                "header",
                "Header",
                "truncated",
                "bytes",
                "EOF",
                "invalid",
                "Invalid",
            ],
        );
    }
    // reading the stored configuration of any of them never panics either
    for e in fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let _ = Restorer::config_in_file(&p);
    }
    fs::remove_dir_all(&dir).ok();
}

#[test]
fn crafted_burnpack_files_are_refused() {
    let dir = temp_dir("hostile-bpk");
    let device = Device::flex();
    let config = tiny();
    let model = config.init(&device);
    let config_json = serde_json::to_string(&config).unwrap();
    let pack = |tensors: Vec<PackTensor>, json: &str| {
        Writer::new(tensors)
            .with_metadata("dppd_config", json)
            .into_bytes()
            .unwrap()
            .to_vec()
    };
    let tensors = || model.collect(None, None, true);
    // the model's own tensors load
    let good = write(&dir, "good.bpk", &pack(tensors(), &config_json));
    // a small seed for the fuzz target: two of them
    write(
        &dir,
        "two-tensors.bpk",
        &pack(tensors().into_iter().take(2).collect(), &config_json),
    );
    Restorer::load(&good, &device).unwrap();

    // a stored configuration describing an enormous network: refused before it is built
    let mut giant = config.clone();
    giant.dim = 8192;
    giant.heads = [1, 1, 1, 1];
    let p = write(
        &dir,
        "giant-config.bpk",
        &pack(vec![], &serde_json::to_string(&giant).unwrap()),
    );
    let e = Restorer::load(&p, &device).err().unwrap().to_string();
    assert!(
        e.contains("giant-config.bpk") && e.contains("parameters"),
        "{e}"
    );
    let p = write(&dir, "bad-config.bpk", &pack(vec![], "{\"dim\": -1}"));
    let e = Restorer::load(&p, &device).err().unwrap().to_string();
    assert!(
        e.contains("bad-config.bpk") && e.contains("configuration"),
        "{e}"
    );

    // one tensor a row larger, one of integers, one that has no place
    let mut bigger = tensors();
    let t = &bigger[0];
    let mut shape = t.shape.as_slice().to_vec();
    shape[0] += 1;
    let n: usize = shape.iter().product();
    bigger[0] = PackTensor::new(
        t.name.clone(),
        DType::F32,
        shape,
        None,
        Bytes::from_bytes_vec(vec![0; 4 * n]),
    );
    refused(
        &write(&dir, "bigger.bpk", &pack(bigger, &config_json)),
        &["do not fit"],
    );
    let mut ints = tensors();
    let t = &ints[0];
    let n: usize = t.shape.as_slice().iter().product();
    ints[0] = PackTensor::new(
        t.name.clone(),
        DType::I32,
        t.shape.clone(),
        None,
        Bytes::from_bytes_vec(vec![0; 4 * n]),
    );
    refused(
        &write(&dir, "ints.bpk", &pack(ints, &config_json)),
        &["floats"],
    );
    let mut extra = tensors();
    extra.push(PackTensor::new(
        "evil.weight".into(),
        DType::F32,
        vec![4usize],
        None,
        Bytes::from_bytes_vec(vec![0; 16]),
    ));
    refused(
        &write(&dir, "extra.bpk", &pack(extra, &config_json)),
        &["no place"],
    );

    // a tensor whose shape claims 4 TiB over 17 kB of data: the shape [4242] in the CBOR
    // metadata (81 19 10 92) patched to [2^40] (81 1B + 8 bytes), the metadata size adjusted
    let mut claims = tensors();
    claims.push(PackTensor::new(
        "evil.weight".into(),
        DType::F32,
        vec![4242usize],
        None,
        Bytes::from_bytes_vec(vec![0; 4 * 4242]),
    ));
    let bytes = pack(claims, &config_json);
    let at = bytes
        .windows(4)
        .position(|w| w == [0x81, 0x19, 0x10, 0x92])
        .expect("the shape's encoding");
    let mut huge = bytes[..at + 1].to_vec();
    huge.push(0x1B);
    huge.extend_from_slice(&(1u64 << 40).to_be_bytes());
    huge.extend_from_slice(&bytes[at + 4..]);
    let meta = u32::from_le_bytes(bytes[6..10].try_into().unwrap()) + 6;
    huge[6..10].copy_from_slice(&meta.to_le_bytes());
    refused(
        &write(&dir, "huge-shape.bpk", &huge),
        &[
            "burnpack", "Burnpack", "size", "exceeds", "Invalid", "invalid", "bytes", "range",
        ],
    );

    // damaged containers: truncated (data past the end), a metadata size of 4 GiB
    let bytes = fs::read(&good).unwrap();
    for cut in [bytes.len() - 1, bytes.len() / 2, 12, 3] {
        refused(
            &write(&dir, &format!("truncated-{cut}.bpk"), &bytes[..cut]),
            &[
                "burnpack",
                "Burnpack",
                "size",
                "header",
                "Header",
                "truncated",
                "Invalid",
                "invalid",
                "EOF",
                "bytes",
            ],
        );
    }
    let mut big_meta = bytes.clone();
    big_meta[6..10].copy_from_slice(&u32::MAX.to_le_bytes());
    refused(
        &write(&dir, "metadata-4g.bpk", &big_meta),
        &[
            "burnpack", "Burnpack", "metadata", "Metadata", "size", "header", "Header", "exceeds",
        ],
    );
    fs::remove_dir_all(&dir).ok();
}

#[test]
fn hostile_json_configurations_are_refused_with_the_file_named() {
    let dir = temp_dir("hostile-json");
    let small = serde_json::to_value(RestorerConfig::dppd_small()).unwrap();
    let with = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut v = small.clone();
        edit(&mut v);
        serde_json::to_vec(&v).unwrap()
    };
    let restorer_cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("wide.json", with(&|v| v["dim"] = 1_000_000.into()), "dim"),
        (
            "deep.json",
            with(&|v| v["num_blocks"] = serde_json::json!([1, 1, 1, 1u64 << 50])),
            "num_blocks",
        ),
        (
            "huge-ffn.json",
            with(&|v| v["ffn_expansion_factor"] = 1e308.into()),
            "ffn_expansion_factor",
        ),
        (
            "big-net.json",
            with(&|v| {
                v["dim"] = 2048.into();
                v["heads"] = serde_json::json!([1, 1, 1, 1]);
            }),
            "parameters",
        ),
        ("negative.json", with(&|v| v["dim"] = (-16).into()), "-16"),
        ("nan.json", b"{\"dim\": NaN}".to_vec(), "expected value"),
        (
            "nested.json",
            [b"[".repeat(100_000), b"]".repeat(100_000)].concat(),
            "expected",
        ),
        ("binary.json", vec![0xFF, 0xFE, 0x00, 0x7B], "UTF-8"),
        ("enormous.json", vec![b' '; 17 << 20], "larger than"),
    ];
    for (name, bytes, fragment) in &restorer_cases {
        let p = write(&dir, name, bytes);
        let e = RestorerConfig::load(&p).unwrap_err().to_string();
        assert!(e.contains(name) && e.contains(fragment), "{e}");
        println!("{}\n", &e[..e.len().min(300)]);
    }
    let promptir_cases: Vec<(&str, &str, &str)> = vec![
        ("p-wide.json", r#"{"dim": 100000}"#, "dim"),
        (
            "p-prompt.json",
            r#"{"prompt_len": 60000, "prompt_sizes": [60000, 32, 16]}"#,
            "parameters",
        ),
        ("p-unknown.json", r#"{"dimm": 16}"#, "dimm"),
    ];
    for (name, text, fragment) in &promptir_cases {
        let p = write(&dir, name, text.as_bytes());
        let e = PromptIrConfig::load(&p).unwrap_err().to_string();
        assert!(e.contains(name) && e.contains(fragment), "{e}");
    }
    let experiment_cases: Vec<(&str, &str, &str)> = vec![
        (
            "e-batch.json",
            r#"{"model": "dppd-small", "steps": 1, "batch_size": 1000000, "patch_size": 4096}"#,
            "8 GiB",
        ),
        (
            "e-workers.json",
            r#"{"model": "dppd-small", "steps": 1, "batch_size": 1, "patch_size": 16, "data": {"workers": 100000000}}"#,
            "workers",
        ),
        (
            "e-model.json",
            r#"{"model": {"preset": "dppd-small"}, "steps": 1, "batch_size": 1, "patch_size": 16, "x": 1}"#,
            "e-model.json",
        ),
    ];
    for (name, text, fragment) in &experiment_cases {
        let p = write(&dir, name, text.as_bytes());
        let e = ExperimentConfig::load(&p).unwrap_err().to_string();
        assert!(e.contains(name) && e.contains(fragment), "{e}");
    }
    fs::remove_dir_all(&dir).ok();
}

const TRAIN: Option<&str> = Some("train_checkpoint");

#[test]
fn crafted_training_checkpoints_are_refused() {
    let dir = temp_dir("hostile-trainckpt");
    let device = Device::flex();
    let experiment: ExperimentConfig = serde_json::from_str(
        r#"{"model": "dppd-small", "steps": 1, "batch_size": 1, "patch_size": 16}"#,
    )
    .unwrap();
    let network = experiment.model.resolve().unwrap();
    let model = network.init(&device);
    let state = TrainState {
        step: 3,
        experiment: experiment.clone(),
        network: network.clone(),
        best: None,
        train_samples: 1,
        val_samples: 1,
    };
    let optimizer = experiment.optimizer.adamw().init();
    let bytes = checkpoint::encode(&state, &model, &optimizer, None).unwrap();
    let good = write_for(&dir, "good.ckpt", &bytes, TRAIN);
    // a seed for the fuzz target: the same layout around a very small network
    let mut small = state.clone();
    small.network = RestorerConfig {
        dim: 4,
        num_blocks: [1, 1, 1, 1],
        num_refinement_blocks: 1,
        heads: [1, 1, 1, 1],
        prompt_sites: [
            dppd::model::PromptSiteConfig::None,
            dppd::model::PromptSiteConfig::None,
            dppd::model::PromptSiteConfig::None,
        ],
        degradations: vec![],
        ..network.clone()
    };
    let small_model = small.network.init(&device);
    write_for(
        &dir,
        "small-network.ckpt",
        &checkpoint::encode(&small, &small_model, &optimizer, None).unwrap(),
        TRAIN,
    );
    assert!(Checkpoint::load(&good, &device.clone().autodiff()).is_ok());
    let [json, model_bytes, optim_bytes] = checkpoint_sections(&bytes);

    // refused by `Checkpoint::load`, and (unless only the optimiser state is bad) by
    // `load_model` too
    let expect = |name: &str, bytes: &[u8], fragment: &str| {
        let p = write_for(&dir, name, bytes, TRAIN);
        let e = match Checkpoint::load(&p, &device.clone().autodiff()) {
            Ok(_) => panic!("{name} loaded"),
            Err(e) => e.to_string(),
        };
        assert!(e.contains(name) && e.contains(fragment), "{e}");
        println!("{e}\n");
        if !fragment.contains("optimiser") {
            assert!(
                Checkpoint::load_model(&p, &device).is_err(),
                "{name}: load_model accepted it"
            );
        }
    };
    // a section length of 2⁶⁴ − 1 behind a valid checksum
    expect(
        "section-max.ckpt",
        &training_checkpoint(
            [&json, &model_bytes, &optim_bytes],
            [None, Some(u64::MAX), None],
        ),
        "claims",
    );
    // a stored network of 2 GiB parameters
    let mut giant = state.clone();
    giant.network.dim = 4096;
    giant.network.heads = [1, 1, 1, 1];
    let giant_json = serde_json::to_vec(&giant).unwrap();
    expect(
        "giant-network.ckpt",
        &training_checkpoint([&giant_json, &model_bytes, &optim_bytes], [None; 3]),
        "parameters",
    );
    // another network's tensors under this state
    let other = tiny().init(&device).into_record().into_bytes().unwrap();
    expect(
        "other-model.ckpt",
        &training_checkpoint([&json, &other, &optim_bytes], [None; 3]),
        "model:",
    );
    // optimiser state that belongs to nothing
    let stray = Writer::new(vec![PackTensor::new(
        "12345.moment_1".into(),
        DType::F32,
        vec![1usize << 10],
        Some(12345),
        Bytes::from_bytes_vec(vec![0; 4 << 10]),
    )])
    .into_bytes()
    .unwrap();
    expect(
        "stray-optimiser.ckpt",
        &training_checkpoint([&json, &model_bytes, &stray], [None; 3]),
        "optimiser",
    );
    // garbage sections, a state that is not JSON
    expect(
        "garbage-model.ckpt",
        &training_checkpoint([&json, b"not a burnpack", &optim_bytes], [None; 3]),
        "model",
    );
    expect(
        "garbage-state.ckpt",
        &training_checkpoint([b"{\"step\": ", &model_bytes, &optim_bytes], [None; 3]),
        "state",
    );
    // a moving average the experiment does not keep, and one that is not a burnpack
    expect(
        "stray-average.ckpt",
        &training_checkpoint([&json, &model_bytes, &optim_bytes, &model_bytes], [None; 4]),
        "moving average",
    );
    let mut averaged = state.clone();
    averaged.experiment.ema = Some(dppd::train::EmaConfig { decay: 0.999 });
    let averaged_json = serde_json::to_vec(&averaged).unwrap();
    expect(
        "missing-average.ckpt",
        &training_checkpoint([&averaged_json, &model_bytes, &optim_bytes], [None; 3]),
        "moving average",
    );
    expect(
        "garbage-average.ckpt",
        &training_checkpoint(
            [
                &averaged_json,
                &model_bytes,
                &optim_bytes,
                b"not a burnpack",
            ],
            [None; 4],
        ),
        "moving average",
    );
    fs::remove_dir_all(&dir).ok();
}
