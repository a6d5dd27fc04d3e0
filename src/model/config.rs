//! Network configuration: the general [`RestorerConfig`] and the official PromptIR
//! constructor arguments ([`PromptIrConfig`]).

use serde::{Deserialize, Serialize};

use crate::backbone::LayerNormType;
use crate::prompt::DppdPromptConfig;
use crate::{Error, Result};

/// The largest network [`RestorerConfig::validate`] accepts, by
/// [`RestorerConfig::parameter_bound`]: 2²⁸ parameters (1 GiB as `f32`; the official PromptIR
/// has 35.6 M).
pub const MAX_PARAMETERS: u64 = 1 << 28;
/// The largest width, channel, prompt or token count a configuration may give.
pub const MAX_WIDTH: usize = 1 << 16;
/// The largest number of transformer blocks per level.
pub const MAX_BLOCKS: usize = 1024;

/// The largest configuration file read: 16 MiB (a configuration is a few hundred bytes).
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// Reads a JSON configuration file, refusing one larger than [`MAX_CONFIG_BYTES`] without
/// reading it whole.
pub(crate) fn read_config_text(path: &std::path::Path) -> Result<String> {
    use std::io::Read;
    let io = |source| Error::Io {
        path: path.into(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(Error::Config(format!(
            "{}: larger than {} MiB, not a configuration",
            path.display(),
            MAX_CONFIG_BYTES >> 20
        )));
    }
    String::from_utf8(bytes)
        .map_err(|e| Error::Config(format!("{}: not UTF-8 text: {e}", path.display())))
}

/// The message of a configuration error, without its "invalid configuration" prefix.
pub(crate) fn config_reason(e: Error) -> String {
    match e {
        Error::Config(m) => m,
        other => other.to_string(),
    }
}

/// What one of the three prompt sites holds.
///
/// The sites are numbered like PromptIR's `prompt1/2/3`: site 1 after decoder level 2, site 2
/// after decoder level 3, site 3 at the bottleneck.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PromptSiteConfig {
    /// No prompt: the plain Restormer path.
    None,
    /// PromptIR's `PromptGenBlock`, whose output is concatenated to the features, passed
    /// through a transformer block (`noise_levelK`) and reduced by a 1×1 conv
    /// (`reduce_noise_levelK`).
    Static {
        /// Prompts in the bank.
        len: usize,
        /// Channels of each prompt.
        dim: usize,
        /// Spatial size of each prompt.
        size: usize,
    },
    /// The DPPD prompt module (DPA → PDL → CrossFusion) with a residual; optionally followed
    /// by PromptIR's transformer block and 1×1 reduction over features ++ fused features.
    Dppd(DppdPromptConfig),
}

/// Configuration of a [`Restorer`](super::Restorer).
///
/// Channel counts at the four levels are `dim · (1, 2, 4, 8)`; everything else is derived
/// from these fields, so every width works.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestorerConfig {
    /// Input image channels.
    pub in_channels: usize,
    /// Output image channels (must equal `in_channels` for the global residual).
    pub out_channels: usize,
    /// Width of level 1.
    pub dim: usize,
    /// Transformer blocks at encoder levels 1–3 and the latent level (decoders mirror them).
    pub num_blocks: [usize; 4],
    /// Transformer blocks of the full-resolution refinement stage.
    pub num_refinement_blocks: usize,
    /// Attention heads at the four levels.
    pub heads: [usize; 4],
    /// GDFN expansion factor.
    pub ffn_expansion_factor: f64,
    /// Whether convolutions have biases.
    pub bias: bool,
    /// The LayerNorm variant.
    pub layer_norm: LayerNormType,
    /// Prompt sites 1, 2, 3 (after decoder level 2, after decoder level 3, bottleneck).
    pub prompt_sites: [PromptSiteConfig; 3],
    /// Names of the degradation types, in DPA prototype order (prototype `k` ↔ name `k`);
    /// prototypes beyond the list are spares.
    #[serde(default)]
    pub degradations: Vec<String>,
}

impl RestorerConfig {
    /// The official PromptIR default (35,592,263 parameters).
    pub fn promptir() -> Self {
        PromptIrConfig::default()
            .to_restorer()
            .expect("the default is valid")
    }

    /// A plain U-shaped Restormer at PromptIR's widths, with no prompt.
    pub fn restormer() -> Self {
        Self {
            prompt_sites: [
                PromptSiteConfig::None,
                PromptSiteConfig::None,
                PromptSiteConfig::None,
            ],
            ..Self::promptir()
        }
    }

    /// A preset by name: `promptir`, `restormer`, `dppd`, `dppd-medium` or `dppd-small`.
    pub fn preset(name: &str) -> Result<Self> {
        match name {
            "promptir" => Ok(Self::promptir()),
            "restormer" => Ok(Self::restormer()),
            "dppd" => Ok(Self::dppd()),
            "dppd-small" | "dppd_small" => Ok(Self::dppd_small()),
            "dppd-medium" | "dppd_medium" => Ok(Self::dppd_medium()),
            other => Err(Error::Config(format!(
                "unknown preset {other:?}: expected promptir, restormer, dppd, dppd-medium or \
                 dppd-small"
            ))),
        }
    }

    /// The paper's model as this crate builds it: PromptIR's backbone and widths, with the DPPD
    /// prompt module (K = 4 prototypes for noise, rain, haze and one spare; 8 prompt tokens;
    /// per-pixel CrossFusion) at all three sites in place of PromptIR's prompt blocks, and no
    /// PromptIR fusion block after them (as the DPPD figure draws it).
    pub fn dppd() -> Self {
        let site = |heads: usize| {
            PromptSiteConfig::Dppd(DppdPromptConfig {
                heads,
                ..DppdPromptConfig::default()
            })
        };
        Self {
            prompt_sites: [site(2), site(4), site(8)],
            degradations: vec!["noise".into(), "rain".into(), "haze".into()],
            ..Self::promptir()
        }
    }

    /// A small DPPD network that trains on a CPU: width 16, one block per level, one
    /// refinement block, 4 prompt tokens of width 32 per prototype.
    pub fn dppd_small() -> Self {
        let site = |heads: usize| {
            PromptSiteConfig::Dppd(DppdPromptConfig {
                heads,
                tokens: 4,
                token_dim: 32,
                embed_dim: 32,
                hidden_dim: 64,
                ..DppdPromptConfig::default()
            })
        };
        Self {
            dim: 16,
            num_blocks: [1, 1, 1, 1],
            num_refinement_blocks: 1,
            prompt_sites: [site(2), site(2), site(4)],
            ..Self::dppd()
        }
    }

    /// [`dppd_small`](Self::dppd_small) deepened where blocks are cheap: blocks `[1, 2, 2, 4]`
    /// (the extra ones at half, quarter and eighth resolution, where a block costs as much as
    /// at level 1 while seeing a wider context), 1.6 M parameters. At equal training compute
    /// it restored the held-out photographs 0.43 dB better than `dppd-small` and takes 1.3×
    /// its time (a 1-megapixel photo in 4.1 s on a 2-core CPU): `docs/default-weights.md`.
    /// A trained `dppd-small` grows into it ([`Restorer::grown`](super::Restorer::grown)).
    pub fn dppd_medium() -> Self {
        Self {
            num_blocks: [1, 2, 2, 4],
            ..Self::dppd_small()
        }
    }

    /// The name of DPA prototype `k`: the configured name, or `spare-k`.
    pub fn degradation_name(&self, k: usize) -> String {
        self.degradations
            .get(k)
            .cloned()
            .unwrap_or_else(|| format!("spare-{k}"))
    }

    /// Channels of the four levels, `dim · (1, 2, 4, 8)`.
    pub fn level_channels(&self) -> [usize; 4] {
        [self.dim, self.dim * 2, self.dim * 4, self.dim * 8]
    }

    /// Channels a site reads: site 1 reads decoder level 2, site 2 decoder level 3, site 3 the
    /// latent.
    pub(crate) fn site_input_channels(&self, site: usize) -> usize {
        let [_, c2, c3, c4] = self.level_channels();
        [c2, c3, c4][site]
    }

    /// Channels a site outputs. PromptIR's static sites reduce to `(C2, C3, C3)`.
    pub(crate) fn site_output_channels(&self, site: usize) -> usize {
        let [_, c2, c3, _] = self.level_channels();
        match self.prompt_sites[site] {
            PromptSiteConfig::None => self.site_input_channels(site),
            PromptSiteConfig::Static { .. } => [c2, c3, c3][site],
            PromptSiteConfig::Dppd(_) => self.site_input_channels(site),
        }
    }

    /// An upper bound of the network's parameter count (and of the prototype tables it holds
    /// besides), computed from the configuration alone, without building anything. Generous
    /// by about a quarter; used by [`validate`](Self::validate) to refuse networks larger than
    /// [`MAX_PARAMETERS`] before any allocation; `u128::MAX` when a field is out of
    /// [`validate`](Self::validate)'s ranges.
    pub fn parameter_bound(&self) -> u128 {
        if self.dim == 0 || self.check_ranges().is_err() {
            return u128::MAX;
        }
        let u = |v: usize| v as u128;
        let f = self.ffn_expansion_factor.clamp(0.0, 1e6);
        let block = |c: u128| {
            let h = (c as f64 * f).ceil() as u128 + 1;
            4 * c * c + 3 * c * h + 32 * c + 20 * h + 64
        };
        let [c1, c2, c3, c4] = [self.dim, self.dim * 2, self.dim * 4, self.dim * 8].map(u);
        let [n1, n2, n3, n4] = self.num_blocks.map(u);
        let outs = [0, 1, 2].map(|i| u(self.site_output_channels(i)));
        let dec1 = outs[0] / 2 + c1;
        let mut total = 9 * u(self.in_channels) * c1
            + c1
            + n1 * block(c1)
            + n2 * block(c2)
            + n3 * block(c3)
            + n4 * block(c4)
            + n3 * block(c3)
            + n2 * block(c2)
            + (n1 + u(self.num_refinement_blocks)) * block(dec1)
            + 5 * (c1 * c1 + c2 * c2 + c3 * c3)
            + 18 * outs.iter().map(|s| s * s).sum::<u128>()
            + (outs[2] / 2 + c3) * c3
            + (outs[1] / 2 + c2) * c2
            + 9 * dec1 * u(self.out_channels)
            + 64;
        for (i, site) in self.prompt_sites.iter().enumerate() {
            let c = u(self.site_input_channels(i));
            let out = outs[i];
            total += match site {
                PromptSiteConfig::None => 0,
                PromptSiteConfig::Static { len, dim, size } => {
                    let (len, dim, size) = (u(*len), u(*dim), u(*size));
                    len * dim * size * size
                        + c * len
                        + len
                        + 9 * dim * dim
                        + block(c + dim)
                        + (c + dim) * out
                        + 64
                }
                PromptSiteConfig::Dppd(p) => {
                    let d = u(p.token_dim_for(self.site_input_channels(i)));
                    let (k, t) = (u(p.prototypes), u(p.tokens));
                    let (e, h) = (u(p.embed_dim), u(p.hidden_dim));
                    let fuse = if p.fuse_block {
                        block(2 * c) + 2 * c * out
                    } else {
                        0
                    };
                    2 * k * t * d
                        + c * h
                        + h * e
                        + 2 * k * e
                        + h
                        + e
                        + 2 * c * c
                        + 2 * d * c
                        + 8 * (c + d)
                        + fuse
                        + 64
                }
            };
        }
        total + total / 4
    }

    /// Every count within its range ([`MAX_WIDTH`], [`MAX_BLOCKS`]), every float finite.
    fn check_ranges(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        let too_big = |what: &str, v: usize, max: usize| -> Result<()> {
            if v > max {
                Err(Error::Config(format!(
                    "{what} = {v} is beyond the largest this crate builds ({max})"
                )))
            } else {
                Ok(())
            }
        };
        too_big("dim", self.dim, MAX_WIDTH)?;
        too_big("in_channels", self.in_channels, MAX_WIDTH)?;
        too_big("out_channels", self.out_channels, MAX_WIDTH)?;
        too_big(
            "num_refinement_blocks",
            self.num_refinement_blocks,
            MAX_BLOCKS,
        )?;
        for (i, &n) in self.num_blocks.iter().enumerate() {
            too_big(&format!("num_blocks[{i}]"), n, MAX_BLOCKS)?;
        }
        for (i, &h) in self.heads.iter().enumerate() {
            too_big(&format!("heads[{i}]"), h, MAX_WIDTH * 8)?;
        }
        if !(self.ffn_expansion_factor.is_finite() && self.ffn_expansion_factor <= 64.0) {
            return bad(format!(
                "ffn_expansion_factor must be a finite number in (0, 64], got {:e}",
                self.ffn_expansion_factor
            ));
        }
        too_big("degradations (names)", self.degradations.len(), MAX_WIDTH)?;
        for (i, site) in self.prompt_sites.iter().enumerate() {
            let site_no = i + 1;
            match site {
                PromptSiteConfig::None => {}
                PromptSiteConfig::Static { len, dim, size } => {
                    too_big(&format!("prompt site {site_no}: len"), *len, MAX_WIDTH)?;
                    too_big(&format!("prompt site {site_no}: dim"), *dim, MAX_WIDTH)?;
                    too_big(&format!("prompt site {site_no}: size"), *size, MAX_WIDTH)?;
                }
                PromptSiteConfig::Dppd(p) => {
                    for (what, v) in [
                        ("prototypes", p.prototypes),
                        ("embed_dim", p.embed_dim),
                        ("hidden_dim", p.hidden_dim),
                        ("tokens", p.tokens),
                        ("token_dim", p.token_dim),
                        ("heads", p.heads),
                    ] {
                        too_big(&format!("prompt site {site_no}: {what}"), v, MAX_WIDTH)?;
                    }
                    if !(p.temperature.is_finite() && p.init_log_var.is_finite()) {
                        return bad(format!(
                            "prompt site {site_no}: temperature and init_log_var must be finite"
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Checks that the configuration describes a network that can be built, and that it is not
    /// too large to build: every count within a sane range (a configuration is untrusted
    /// input: it may come from a file), and at most [`MAX_PARAMETERS`] parameters by
    /// [`parameter_bound`](Self::parameter_bound). Nothing is allocated.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if self.dim == 0 {
            return bad("dim must be positive".into());
        }
        self.check_ranges()?;
        let bound = self.parameter_bound();
        if bound > MAX_PARAMETERS as u128 {
            return bad(format!(
                "the network would hold up to {bound} parameters, beyond the limit of \
                 {MAX_PARAMETERS} ({} GiB as f32); refusing to build it",
                (MAX_PARAMETERS * 4) >> 30
            ));
        }
        if self.in_channels != self.out_channels {
            return bad(format!(
                "in_channels ({}) must equal out_channels ({}) for the global residual",
                self.in_channels, self.out_channels
            ));
        }
        for (level, (&c, &h)) in self.level_channels().iter().zip(&self.heads).enumerate() {
            if h == 0 || !c.is_multiple_of(h) {
                return bad(format!(
                    "heads[{level}] = {h} does not divide the level's {c} channels"
                ));
            }
        }
        if self.ffn_expansion_factor <= 0.0 {
            return bad("ffn_expansion_factor must be positive".into());
        }
        for (i, site) in self.prompt_sites.iter().enumerate() {
            if let PromptSiteConfig::Static { len, dim, size } = *site {
                if len == 0 || dim == 0 || size == 0 {
                    return bad(format!(
                        "prompt site {}: len, dim and size must be positive",
                        i + 1
                    ));
                }
                let c = self.site_input_channels(i) + dim;
                if !c.is_multiple_of(self.heads[2]) {
                    return bad(format!(
                        "prompt site {}: {c} fused channels are not divisible by heads[2] = {}",
                        i + 1,
                        self.heads[2]
                    ));
                }
            }
        }
        for (i, site) in self.prompt_sites.iter().enumerate() {
            if let PromptSiteConfig::Dppd(p) = site {
                let c = self.site_input_channels(i);
                let site = i + 1;
                if p.prototypes == 0 || p.tokens == 0 || p.embed_dim == 0 || p.hidden_dim == 0 {
                    return bad(format!(
                        "prompt site {site}: prototypes, tokens, embed_dim and hidden_dim must be positive"
                    ));
                }
                if p.temperature <= 0.0 {
                    return bad(format!("prompt site {site}: temperature must be positive"));
                }
                if p.heads == 0 || !c.is_multiple_of(p.heads) {
                    return bad(format!(
                        "prompt site {site}: CrossFusion heads ({}) must divide its {c} channels",
                        p.heads
                    ));
                }
                if p.fuse_block && !(2 * c).is_multiple_of(self.heads[2]) {
                    return bad(format!(
                        "prompt site {site}: {} fused channels are not divisible by heads[2] = {}",
                        2 * c,
                        self.heads[2]
                    ));
                }
                if self.degradations.len() > p.prototypes {
                    return bad(format!(
                        "prompt site {site}: {} degradation names for only {} prototypes",
                        self.degradations.len(),
                        p.prototypes
                    ));
                }
            }
        }
        let s1 = self.site_output_channels(0);
        for (i, s) in [
            s1,
            self.site_output_channels(1),
            self.site_output_channels(2),
        ]
        .into_iter()
        .enumerate()
        {
            if !s.is_multiple_of(2) {
                return bad(format!(
                    "prompt site {} outputs an odd channel count {s}",
                    i + 1
                ));
            }
        }
        let dec1 = s1 / 2 + self.dim;
        if !dec1.is_multiple_of(self.heads[0]) {
            return bad(format!(
                "decoder level 1 has {dec1} channels, not divisible by heads[0] = {}",
                self.heads[0]
            ));
        }
        Ok(())
    }

    /// Reads a JSON file holding a `RestorerConfig` and validates it (errors name the file).
    pub fn load(path: impl AsRef<std::path::Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = read_config_text(path)?;
        let cfg: Self = serde_json::from_str(&text)
            .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        cfg.validate()
            .map_err(|e| Error::Config(format!("{}: {}", path.display(), config_reason(e))))?;
        Ok(cfg)
    }
}

/// The official `PromptIR(...)` constructor arguments, with their names and defaults, as
/// written in a PromptIR-style `config.json`. Missing fields take the official defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PromptIrConfig {
    /// Input channels (3).
    pub inp_channels: usize,
    /// Output channels (3).
    pub out_channels: usize,
    /// Width of level 1 (48).
    pub dim: usize,
    /// Blocks per level ([4, 6, 6, 8]).
    pub num_blocks: [usize; 4],
    /// Refinement blocks (4).
    pub num_refinement_blocks: usize,
    /// Heads per level ([1, 2, 4, 8]).
    pub heads: [usize; 4],
    /// GDFN expansion (2.66).
    pub ffn_expansion_factor: f64,
    /// Convolution biases (false).
    pub bias: bool,
    /// `"WithBias"` or `"BiasFree"`.
    #[serde(rename = "LayerNorm_type")]
    pub layer_norm_type: LayerNormType,
    /// Whether the prompt blocks are used (true). `false` gives the plain Restormer path.
    pub decoder: bool,
    /// Prompts per bank (5).
    pub prompt_len: usize,
    /// Prompt channels for prompt1/2/3 ([64, 128, 320]).
    pub prompt_dims: [usize; 3],
    /// Prompt sizes for prompt1/2/3 ([64, 32, 16]).
    pub prompt_sizes: [usize; 3],
}

impl Default for PromptIrConfig {
    fn default() -> Self {
        Self {
            inp_channels: 3,
            out_channels: 3,
            dim: 48,
            num_blocks: [4, 6, 6, 8],
            num_refinement_blocks: 4,
            heads: [1, 2, 4, 8],
            ffn_expansion_factor: 2.66,
            bias: false,
            layer_norm_type: LayerNormType::WithBias,
            decoder: true,
            prompt_len: 5,
            prompt_dims: [64, 128, 320],
            prompt_sizes: [64, 32, 16],
        }
    }
}

impl PromptIrConfig {
    /// Reads a PromptIR `config.json` and checks that it describes a network this crate can
    /// build ([`RestorerConfig::validate`]; errors name the file).
    pub fn load(path: impl AsRef<std::path::Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = read_config_text(path)?;
        let cfg: Self = serde_json::from_str(&text)
            .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        cfg.to_restorer()
            .map_err(|e| Error::Config(format!("{}: {}", path.display(), config_reason(e))))?;
        Ok(cfg)
    }

    /// Parameters of the modules PromptIR creates but never runs (`chnl_reduce1/2/3`,
    /// `reduce_noise_channel_1/2/3`). PyTorch's `sum(p.numel())` counts them; this crate's
    /// network does not hold them, so its count is the official one minus this.
    pub fn unused_parameter_count(&self) -> usize {
        let [p1, p2, p3] = self.prompt_dims;
        let (c1, c2, c3) = (self.dim, self.dim * 2, self.dim * 4);
        let b = usize::from(self.bias);
        let conv1x1 = |i: usize, o: usize| i * o + b * o;
        conv1x1(p1, p1)
            + conv1x1(p2, p2)
            + conv1x1(p3, 2 * p2)
            + conv1x1(c1 + p1, c1)
            + conv1x1(c2 + p2, c2)
            + conv1x1(c3 + 2 * p2, c3)
    }

    /// The equivalent general configuration.
    pub fn to_restorer(&self) -> Result<RestorerConfig> {
        let cfg = self.to_restorer_unchecked();
        cfg.validate()?;
        Ok(cfg)
    }

    fn to_restorer_unchecked(&self) -> RestorerConfig {
        let site = |i: usize| {
            if self.decoder {
                PromptSiteConfig::Static {
                    len: self.prompt_len,
                    dim: self.prompt_dims[i],
                    size: self.prompt_sizes[i],
                }
            } else {
                PromptSiteConfig::None
            }
        };
        RestorerConfig {
            in_channels: self.inp_channels,
            out_channels: self.out_channels,
            dim: self.dim,
            num_blocks: self.num_blocks,
            num_refinement_blocks: self.num_refinement_blocks,
            heads: self.heads,
            ffn_expansion_factor: self.ffn_expansion_factor,
            bias: self.bias,
            layer_norm: self.layer_norm_type,
            prompt_sites: [site(0), site(1), site(2)],
            degradations: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_official_argument_names() {
        let json = r#"{"dim": 16, "num_blocks": [1,1,1,1], "num_refinement_blocks": 1,
            "LayerNorm_type": "BiasFree", "prompt_dims": [8,16,32], "prompt_sizes": [16,8,4]}"#;
        let c: PromptIrConfig = serde_json::from_str(json).unwrap();
        assert_eq!(c.dim, 16);
        assert_eq!(c.heads, [1, 2, 4, 8]);
        assert_eq!(c.layer_norm_type, LayerNormType::BiasFree);
        let r = c.to_restorer().unwrap();
        assert_eq!(
            r.prompt_sites[2],
            PromptSiteConfig::Static {
                len: 5,
                dim: 32,
                size: 4
            }
        );
    }

    #[test]
    fn the_parameter_bound_covers_every_preset_and_is_not_absurd() {
        let device = burn::prelude::Device::flex();
        let mut fused = RestorerConfig::dppd_small();
        for site in fused.prompt_sites.iter_mut() {
            if let PromptSiteConfig::Dppd(p) = site {
                p.fuse_block = true;
                p.token_dim = 0;
                p.tokens = 16;
            }
        }
        let tiny = PromptIrConfig {
            dim: 16,
            num_blocks: [1, 2, 1, 3],
            num_refinement_blocks: 2,
            prompt_dims: [8, 16, 32],
            prompt_sizes: [16, 8, 4],
            ..Default::default()
        };
        for (name, c) in [
            ("promptir", RestorerConfig::promptir()),
            ("dppd", RestorerConfig::dppd()),
            ("dppd-small", RestorerConfig::dppd_small()),
            ("dppd-medium", RestorerConfig::dppd_medium()),
            ("restormer", RestorerConfig::restormer()),
            ("fused", fused),
            ("tiny", tiny.to_restorer().unwrap()),
        ] {
            let actual = burn::module::Module::num_params(&c.init(&device)) as u128;
            let bound = c.parameter_bound();
            assert!(
                actual <= bound && bound <= 2 * actual,
                "{name}: {actual} parameters, bound {bound}"
            );
        }
    }

    #[test]
    fn hostile_configurations_are_refused_before_anything_is_built() {
        let base = RestorerConfig::dppd_small();
        let cases: Vec<(RestorerConfig, &str)> = vec![
            (
                RestorerConfig {
                    dim: usize::MAX,
                    ..base.clone()
                },
                "dim",
            ),
            (
                RestorerConfig {
                    dim: 4096,
                    heads: [1, 1, 1, 1],
                    ..base.clone()
                },
                "parameters",
            ),
            (
                RestorerConfig {
                    num_blocks: [1, 1, 1, 1 << 40],
                    ..base.clone()
                },
                "num_blocks[3]",
            ),
            (
                RestorerConfig {
                    ffn_expansion_factor: f64::NAN,
                    ..base.clone()
                },
                "ffn_expansion_factor",
            ),
            (
                RestorerConfig {
                    ffn_expansion_factor: f64::INFINITY,
                    ..base.clone()
                },
                "ffn_expansion_factor",
            ),
            (
                PromptIrConfig {
                    prompt_len: 60_000,
                    prompt_sizes: [60_000, 32, 16],
                    ..Default::default()
                }
                .to_restorer_unchecked(),
                "parameters",
            ),
        ];
        for (c, fragment) in cases {
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(fragment), "{e}");
            assert!(c.parameter_bound() > MAX_PARAMETERS as u128, "{e}");
        }
        let mut nan = base.clone();
        if let PromptSiteConfig::Dppd(p) = &mut nan.prompt_sites[0] {
            p.temperature = f64::NAN;
        }
        assert!(nan.validate().unwrap_err().to_string().contains("finite"));
    }

    #[test]
    fn unknown_fields_and_impossible_heads_are_errors() {
        assert!(serde_json::from_str::<PromptIrConfig>(r#"{"dimm": 16}"#).is_err());
        let c = PromptIrConfig {
            heads: [1, 2, 5, 8],
            ..Default::default()
        };
        let err = c.to_restorer().unwrap_err().to_string();
        assert!(err.contains("heads[2] = 5"), "{err}");
    }
}
