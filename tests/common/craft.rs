//! Crafted weights files: PyTorch zip checkpoints with hand-written pickles, safetensors with
//! hand-written headers, training checkpoints with a valid checksum around hostile content.
#![allow(dead_code)]

use super::photos::crc32;

/// A tensor to put into a crafted PyTorch checkpoint.
pub struct PtTensor {
    pub key: String,
    /// `FloatStorage`, `LongStorage`, ...
    pub storage_type: &'static str,
    /// Elements the storage claims.
    pub storage_numel: u64,
    pub offset: u64,
    pub shape: Vec<u64>,
    /// The storage's bytes as written into the archive (may disagree with the claim).
    pub data: Vec<u8>,
}

impl PtTensor {
    /// A float tensor whose storage holds exactly its elements (zeros).
    pub fn float(key: &str, shape: &[u64]) -> Self {
        let n: u64 = shape.iter().product();
        Self {
            key: key.into(),
            storage_type: "FloatStorage",
            storage_numel: n,
            offset: 0,
            shape: shape.to_vec(),
            data: vec![0; 4 * n as usize],
        }
    }
}

/// Pickle protocol 2 writer, just what a `torch.save`d state dict needs.
#[derive(Default)]
pub struct Pickle(pub Vec<u8>);

impl Pickle {
    pub fn op(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }
    pub fn global(&mut self, module: &str, name: &str) -> &mut Self {
        self.0.push(b'c');
        self.0.extend_from_slice(module.as_bytes());
        self.0.push(b'\n');
        self.0.extend_from_slice(name.as_bytes());
        self.0.push(b'\n');
        self
    }
    pub fn string(&mut self, s: &str) -> &mut Self {
        self.0.push(b'X');
        self.0.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.0.extend_from_slice(s.as_bytes());
        self
    }
    pub fn int(&mut self, v: u64) -> &mut Self {
        if v < (1 << 31) {
            self.0.push(b'J');
            self.0.extend_from_slice(&(v as i32).to_le_bytes());
        } else {
            // LONG1: little-endian two's complement, one spare byte keeps it positive
            self.0.extend_from_slice(&[0x8a, 9]);
            self.0.extend_from_slice(&v.to_le_bytes());
            self.0.push(0);
        }
        self
    }
    pub fn tuple_of(&mut self, vs: &[u64]) -> &mut Self {
        self.0.push(b'(');
        for &v in vs {
            self.int(v);
        }
        self.0.push(b't');
        self
    }
}

/// The `data.pkl` of a state dict holding `tensors`, storages named "0", "1", ...
pub fn state_dict_pickle(tensors: &[PtTensor], under_state_dict: bool) -> Vec<u8> {
    let mut p = Pickle::default();
    p.op(b"\x80\x02");
    if under_state_dict {
        p.op(b"}(").string("state_dict");
    }
    p.global("collections", "OrderedDict").op(b")R(");
    for (i, t) in tensors.iter().enumerate() {
        p.string(&t.key);
        p.global("torch._utils", "_rebuild_tensor_v2");
        p.op(b"((");
        p.string("storage")
            .global("torch", t.storage_type)
            .string(&i.to_string())
            .string("cpu")
            .int(t.storage_numel);
        p.op(b"tQ");
        p.int(t.offset);
        p.tuple_of(&t.shape);
        let mut strides = vec![1u64; t.shape.len()];
        for d in (0..t.shape.len().saturating_sub(1)).rev() {
            strides[d] = strides[d + 1].saturating_mul(t.shape[d + 1]);
        }
        p.tuple_of(&strides);
        p.op(b"\x89");
        p.global("collections", "OrderedDict").op(b")R");
        p.op(b"tR");
    }
    p.op(b"u");
    if under_state_dict {
        p.op(b"u");
    }
    p.op(b".");
    p.0
}

/// A stored (uncompressed) zip archive of `entries`.
pub fn zip(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in entries {
        let offset = out.len() as u32;
        let crc = crc32(data);
        let header = |sig: u32, central_entry: bool| {
            let mut h = sig.to_le_bytes().to_vec();
            if central_entry {
                h.extend_from_slice(&20u16.to_le_bytes()); // made by
            }
            h.extend_from_slice(&20u16.to_le_bytes()); // needed
            h.extend_from_slice(&0u16.to_le_bytes()); // flags
            h.extend_from_slice(&0u16.to_le_bytes()); // stored
            h.extend_from_slice(&0u32.to_le_bytes()); // time, date
            h.extend_from_slice(&crc.to_le_bytes());
            h.extend_from_slice(&(data.len() as u32).to_le_bytes());
            h.extend_from_slice(&(data.len() as u32).to_le_bytes());
            h.extend_from_slice(&(name.len() as u16).to_le_bytes());
            h.extend_from_slice(&0u16.to_le_bytes()); // extra
            if central_entry {
                h.extend_from_slice(&0u16.to_le_bytes()); // comment
                h.extend_from_slice(&0u16.to_le_bytes()); // disk
                h.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
                h.extend_from_slice(&0u32.to_le_bytes()); // external attributes
                h.extend_from_slice(&offset.to_le_bytes());
            }
            h.extend_from_slice(name.as_bytes());
            h
        };
        out.extend(header(0x0403_4b50, false));
        out.extend_from_slice(data);
        central.extend(header(0x0201_4b50, true));
    }
    let cd_offset = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

/// A PyTorch (>= 1.6) zip checkpoint holding `tensors`.
pub fn torch_zip(tensors: &[PtTensor], under_state_dict: bool) -> Vec<u8> {
    let mut entries = vec![
        (
            "archive/data.pkl".to_string(),
            state_dict_pickle(tensors, under_state_dict),
        ),
        ("archive/byteorder".to_string(), b"little".to_vec()),
        ("archive/version".to_string(), b"3\n".to_vec()),
    ];
    for (i, t) in tensors.iter().enumerate() {
        entries.push((format!("archive/data/{i}"), t.data.clone()));
    }
    zip(&entries)
}

/// A safetensors file from `(name, dtype, shape, data_offsets)` entries and a data section.
pub fn safetensors(entries: &[(&str, &str, Vec<u64>, [u64; 2])], data: &[u8]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    for (name, dtype, shape, offsets) in entries {
        header.insert(
            name.to_string(),
            serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": offsets}),
        );
    }
    let mut json = serde_json::to_vec(&serde_json::Value::Object(header)).unwrap();
    while !json.len().is_multiple_of(8) {
        json.push(b' ');
    }
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend(json);
    out.extend_from_slice(data);
    out
}

/// FNV-1a 64, the training checkpoint's checksum.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A training checkpoint (`DPPDCKPT`, version 1) around raw sections, with a valid checksum;
/// each section's length field is `lengths[i]` when given, else its true length.
pub fn training_checkpoint<const N: usize>(
    sections: [&[u8]; N],
    lengths: [Option<u64>; N],
) -> Vec<u8> {
    let mut out = b"DPPDCKPT".to_vec();
    // version 2 has a fourth section, the moving average of the weights
    let version: u32 = if N == 4 { 2 } else { 1 };
    out.extend_from_slice(&version.to_le_bytes());
    for (s, l) in sections.iter().zip(lengths) {
        out.extend_from_slice(&l.unwrap_or(s.len() as u64).to_le_bytes());
        out.extend_from_slice(s);
    }
    let sum = fnv1a(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

/// The three sections of a training checkpoint file (lengths trusted: for files this crate
/// wrote).
pub fn checkpoint_sections(bytes: &[u8]) -> [Vec<u8>; 3] {
    let mut at = 12;
    let mut out: [Vec<u8>; 3] = Default::default();
    for part in out.iter_mut() {
        let len = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
        at += 8;
        *part = bytes[at..at + len].to_vec();
        at += len;
    }
    out
}
