//! The U-shaped network itself.

use burn::nn::conv::Conv2d;
use burn::prelude::*;
use burn::tensor::ops::PadMode;

use super::TileConfig;
use super::config::{PromptSiteConfig, RestorerConfig};
use crate::backbone::{
    Downsample, DownsampleConfig, OverlapPatchEmbed, OverlapPatchEmbedConfig, TransformerBlock,
    TransformerBlockConfig, Upsample, UpsampleConfig, conv, conv1x1, conv3x3,
};
use crate::prompt::{DppdPrompt, PromptAux, PromptGenBlock, PromptGenBlockConfig, PromptSampling};

/// What one DPPD prompt site reports in a forward pass.
#[derive(Debug, Clone)]
pub struct SiteOutput {
    /// The site, 1 (after decoder level 2), 2 (after decoder level 3) or 3 (bottleneck).
    pub site: usize,
    /// The DPA logits, probabilities and PDL KL term of that site.
    pub aux: PromptAux,
}

/// The restored image and what the losses need besides it.
#[derive(Debug, Clone)]
pub struct RestorerOutput {
    /// The restored batch. Shape `[B, C, H, W]`.
    pub image: Tensor<4>,
    /// One entry per DPPD site, in the order they run: bottleneck (3) first, then 2, then 1.
    /// Empty for PromptIR and Restormer.
    pub sites: Vec<SiteOutput>,
}

/// The all-in-one restoration network: PromptIR's U-shaped Restormer, whose three prompt
/// sites are chosen by [`RestorerConfig::prompt_sites`].
///
/// Field names are PromptIR's attribute names, so its checkpoints load with few remappings
/// (see [`Restorer::load_weights`]).
#[derive(Module, Debug)]
pub struct Restorer {
    /// 3×3 conv from the image to `dim` channels.
    pub patch_embed: OverlapPatchEmbed,
    /// Encoder level 1 (`C1` channels, full resolution).
    pub encoder_level1: Vec<TransformerBlock>,
    /// `C1 → C2`, half resolution.
    pub down1_2: Downsample,
    /// Encoder level 2.
    pub encoder_level2: Vec<TransformerBlock>,
    /// `C2 → C3`.
    pub down2_3: Downsample,
    /// Encoder level 3.
    pub encoder_level3: Vec<TransformerBlock>,
    /// `C3 → C4`.
    pub down3_4: Downsample,
    /// The bottleneck.
    pub latent: Vec<TransformerBlock>,
    /// DPPD prompt module at site 1 (after decoder level 2).
    pub dppd1: Option<DppdPrompt>,
    /// DPPD prompt module at site 2 (after decoder level 3).
    pub dppd2: Option<DppdPrompt>,
    /// DPPD prompt module at site 3 (bottleneck).
    pub dppd3: Option<DppdPrompt>,
    /// Static prompt at site 1 (after decoder level 2).
    pub prompt1: Option<PromptGenBlock>,
    /// Static prompt at site 2 (after decoder level 3).
    pub prompt2: Option<PromptGenBlock>,
    /// Static prompt at site 3 (bottleneck).
    pub prompt3: Option<PromptGenBlock>,
    /// Transformer block over features ++ prompt at site 1.
    pub noise_level1: Option<TransformerBlock>,
    /// 1×1 conv reducing site 1's fused channels.
    pub reduce_noise_level1: Option<Conv2d>,
    /// Transformer block over features ++ prompt at site 2.
    pub noise_level2: Option<TransformerBlock>,
    /// 1×1 conv reducing site 2's fused channels.
    pub reduce_noise_level2: Option<Conv2d>,
    /// Transformer block over features ++ prompt at site 3.
    pub noise_level3: Option<TransformerBlock>,
    /// 1×1 conv reducing site 3's fused channels.
    pub reduce_noise_level3: Option<Conv2d>,
    /// Level 4 → 3.
    pub up4_3: Upsample,
    /// 1×1 conv after concatenating the encoder-3 skip.
    pub reduce_chan_level3: Conv2d,
    /// Decoder level 3.
    pub decoder_level3: Vec<TransformerBlock>,
    /// Level 3 → 2.
    pub up3_2: Upsample,
    /// 1×1 conv after concatenating the encoder-2 skip.
    pub reduce_chan_level2: Conv2d,
    /// Decoder level 2.
    pub decoder_level2: Vec<TransformerBlock>,
    /// Level 2 → 1.
    pub up2_1: Upsample,
    /// Decoder level 1 (full resolution, after concatenating the encoder-1 skip).
    pub decoder_level1: Vec<TransformerBlock>,
    /// Full-resolution refinement.
    pub refinement: Vec<TransformerBlock>,
    /// 3×3 conv to the image residual.
    pub output: Conv2d,
    #[module(skip)]
    config: RestorerConfig,
    /// The local attention window at full resolution (see [`Restorer::set_local_attention`]).
    #[module(skip)]
    local: Option<TileConfig>,
}

/// A prompt site: 1 (after decoder level 2), 2 (after decoder level 3), 3 (the bottleneck).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SiteIndex {
    One = 1,
    Two = 2,
    Three = 3,
}

/// The modules of one prompt site (see [`Restorer::site_modules`]).
struct SiteModules<'a> {
    prompt: Option<&'a PromptGenBlock>,
    dppd: Option<&'a DppdPrompt>,
    fuse: Option<&'a TransformerBlock>,
    reduce: Option<&'a Conv2d>,
}

fn blocks(n: usize, tb: &TransformerBlockConfig, device: &Device) -> Vec<TransformerBlock> {
    (0..n).map(|_| tb.init(device)).collect()
}

fn run(blocks: &[TransformerBlock], x: Tensor<4>) -> Tensor<4> {
    blocks.iter().fold(x, |x, b| b.forward(x))
}

/// Pads `[.., H, W]` at the bottom and right up to multiples of `m`: reflecting where the
/// image is large enough (as PromptIR's test scripts do), repeating the edge otherwise.
fn pad_to_multiple(x: Tensor<4>, m: usize) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    let (ph, pw) = ((m - h % m) % m, (m - w % m) % m);
    if ph == 0 && pw == 0 {
        return x;
    }
    let mode = if ph < h && pw < w {
        PadMode::Reflect
    } else {
        PadMode::Edge
    };
    x.pad([(0, 0), (0, 0), (0, ph), (0, pw)], mode)
}

impl RestorerConfig {
    /// Builds the network with PyTorch's default initialisation.
    ///
    /// # Panics
    /// If the configuration is invalid; call [`RestorerConfig::validate`] first to get an error.
    pub fn init(&self, device: &Device) -> Restorer {
        if let Err(e) = self.validate() {
            panic!("{e}");
        }
        let [c1, c2, c3, c4] = self.level_channels();
        let tb = |dim: usize, heads: usize| {
            TransformerBlockConfig::new(dim, heads)
                .with_ffn_expansion_factor(self.ffn_expansion_factor)
                .with_bias(self.bias)
                .with_layer_norm(self.layer_norm)
        };
        let [n1, n2, n3, n4] = self.num_blocks;
        let [h1, h2, h3, h4] = self.heads;
        let site = |i: usize| {
            let c = self.site_input_channels(i);
            // PromptIR uses heads[2] for every fusion block.
            let fusion = |extra: usize| {
                let fuse = tb(c + extra, h3).init(device);
                let reduce = conv(
                    c + extra,
                    self.site_output_channels(i),
                    1,
                    self.bias,
                    device,
                );
                (Some(fuse), Some(reduce))
            };
            match &self.prompt_sites[i] {
                PromptSiteConfig::None => (None, None, None, None),
                PromptSiteConfig::Static { len, dim, size } => {
                    let prompt = PromptGenBlockConfig::new(*dim, *size, c)
                        .with_prompt_len(*len)
                        .init(device);
                    let (f, r) = fusion(*dim);
                    (Some(prompt), None, f, r)
                }
                PromptSiteConfig::Dppd(p) => {
                    let module = p.init(c, self.layer_norm, device);
                    let (f, r) = if p.fuse_block {
                        fusion(c)
                    } else {
                        (None, None)
                    };
                    (None, Some(module), f, r)
                }
            }
        };
        let (prompt1, dppd1, noise_level1, reduce_noise_level1) = site(0);
        let (prompt2, dppd2, noise_level2, reduce_noise_level2) = site(1);
        let (prompt3, dppd3, noise_level3, reduce_noise_level3) = site(2);
        let (s1, s2, s3) = (
            self.site_output_channels(0),
            self.site_output_channels(1),
            self.site_output_channels(2),
        );
        let dec1 = s1 / 2 + c1;
        Restorer {
            patch_embed: OverlapPatchEmbedConfig::new()
                .with_in_channels(self.in_channels)
                .with_embed_dim(c1)
                .with_bias(self.bias)
                .init(device),
            encoder_level1: blocks(n1, &tb(c1, h1), device),
            down1_2: DownsampleConfig::new(c1).init(device),
            encoder_level2: blocks(n2, &tb(c2, h2), device),
            down2_3: DownsampleConfig::new(c2).init(device),
            encoder_level3: blocks(n3, &tb(c3, h3), device),
            down3_4: DownsampleConfig::new(c3).init(device),
            latent: blocks(n4, &tb(c4, h4), device),
            dppd1,
            dppd2,
            dppd3,
            prompt1,
            prompt2,
            prompt3,
            noise_level1,
            reduce_noise_level1,
            noise_level2,
            reduce_noise_level2,
            noise_level3,
            reduce_noise_level3,
            up4_3: UpsampleConfig::new(s3).init(device),
            reduce_chan_level3: conv(s3 / 2 + c3, c3, 1, self.bias, device),
            decoder_level3: blocks(n3, &tb(c3, h3), device),
            up3_2: UpsampleConfig::new(s2).init(device),
            reduce_chan_level2: conv(s2 / 2 + c2, c2, 1, self.bias, device),
            decoder_level2: blocks(n2, &tb(c2, h2), device),
            up2_1: UpsampleConfig::new(s1).init(device),
            decoder_level1: blocks(n1, &tb(dec1, h1), device),
            refinement: blocks(self.num_refinement_blocks, &tb(dec1, h1), device),
            output: conv(dec1, self.out_channels, 3, self.bias, device),
            config: self.clone(),
            local: None,
        }
    }
}

impl Restorer {
    /// The configuration the network was built from.
    pub fn config(&self) -> &RestorerConfig {
        &self.config
    }

    /// Computes every transformer block's attention maps in local windows instead of over the
    /// whole input ([`Attention::set_local`](crate::backbone::Attention::set_local)): windows
    /// of `window.tile` pixels at full resolution, sharing `window.overlap`, and half, a
    /// quarter and an eighth of both at the lower levels, so that each level sees windows of
    /// the size a `window.tile` crop has there. `None` (the default) restores global
    /// attention. Inputs no larger than the window are unaffected, so setting it to the
    /// training crop size changes nothing in training.
    ///
    /// The network then restores a large photograph in one pass with the attention statistics
    /// of the crops it was trained on (TLC, Chu et al., ECCV 2022); see docs/dppd.md.
    ///
    /// # Errors
    /// A window that is not a valid [`TileConfig`].
    pub fn set_local_attention(&mut self, window: Option<TileConfig>) -> crate::Result<()> {
        if let Some(t) = &window {
            t.validate()?;
        }
        self.local = window;
        let at = |level: u32| {
            window.map(|t| TileConfig {
                tile: t.tile >> level,
                overlap: t.overlap >> level,
            })
        };
        let set = |blocks: &mut [TransformerBlock], level: u32| {
            for block in blocks {
                block.attn.set_local(at(level));
            }
        };
        set(&mut self.encoder_level1, 0);
        set(&mut self.decoder_level1, 0);
        set(&mut self.refinement, 0);
        set(&mut self.encoder_level2, 1);
        set(&mut self.decoder_level2, 1);
        set(self.noise_level1.as_mut_slice(), 1);
        set(&mut self.encoder_level3, 2);
        set(&mut self.decoder_level3, 2);
        set(self.noise_level2.as_mut_slice(), 2);
        set(&mut self.latent, 3);
        set(self.noise_level3.as_mut_slice(), 3);
        Ok(())
    }

    /// The local attention window at full resolution (see
    /// [`set_local_attention`](Self::set_local_attention)).
    pub fn local_attention(&self) -> Option<TileConfig> {
        self.local
    }

    /// Restores a batch of images of any size: sizes that are not multiples of 8 are padded
    /// (reflect) at the bottom and right, and the result is cropped back. DPPD prompts are
    /// sampled while training on an autodiff device and are their means otherwise.
    ///
    /// # Shapes
    /// - input `[B, C_in, H, W]`, values nominally in [0, 1]
    /// - output `[B, C_out, H, W]` (not clamped)
    pub fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        self.forward_with(input, None).image
    }

    /// [`forward`](Self::forward) with the auxiliary outputs of the DPPD sites, and optionally
    /// a prompt sampling mode that overrides the training/evaluation default.
    pub fn forward_with(
        &self,
        input: Tensor<4>,
        sampling: Option<PromptSampling>,
    ) -> RestorerOutput {
        let [_, _, h, w] = input.dims();
        let x = pad_to_multiple(input, 8);
        let mut sites = Vec::new();
        let out = self.forward_padded(x, sampling, &mut sites);
        let [b, c, _, _] = out.dims();
        RestorerOutput {
            image: out.slice([0..b, 0..c, 0..h, 0..w]),
            sites,
        }
    }

    /// The modules of prompt site `k` (1, 2 or 3): PromptIR's static prompt or the DPPD
    /// module, and the fusion block and its reduction. Their fields keep PromptIR's names, so
    /// that the official checkpoints and every file this crate wrote load unchanged.
    fn site_modules(&self, k: SiteIndex) -> SiteModules<'_> {
        match k {
            SiteIndex::One => SiteModules {
                prompt: self.prompt1.as_ref(),
                dppd: self.dppd1.as_ref(),
                fuse: self.noise_level1.as_ref(),
                reduce: self.reduce_noise_level1.as_ref(),
            },
            SiteIndex::Two => SiteModules {
                prompt: self.prompt2.as_ref(),
                dppd: self.dppd2.as_ref(),
                fuse: self.noise_level2.as_ref(),
                reduce: self.reduce_noise_level2.as_ref(),
            },
            SiteIndex::Three => SiteModules {
                prompt: self.prompt3.as_ref(),
                dppd: self.dppd3.as_ref(),
                fuse: self.noise_level3.as_ref(),
                reduce: self.reduce_noise_level3.as_ref(),
            },
        }
    }

    /// Prompt site `k` applied to `x`; the identity when the site is empty.
    fn site(
        &self,
        k: SiteIndex,
        x: Tensor<4>,
        sampling: Option<PromptSampling>,
        sites: &mut Vec<SiteOutput>,
    ) -> Tensor<4> {
        let m = self.site_modules(k);
        let y = match (m.prompt, m.dppd) {
            (Some(p), _) => p.forward(x.clone()),
            (None, Some(d)) => {
                let (y, aux) = d.forward(x.clone(), sampling);
                sites.push(SiteOutput {
                    site: k as usize,
                    aux,
                });
                y
            }
            (None, None) => return x,
        };
        match (m.fuse, m.reduce) {
            (Some(f), Some(r)) => conv1x1(r, f.forward(Tensor::cat(vec![x, y], 1))),
            _ => y,
        }
    }

    /// The network on an input whose height and width are multiples of 8.
    fn forward_padded(
        &self,
        inp: Tensor<4>,
        sampling: Option<PromptSampling>,
        sites: &mut Vec<SiteOutput>,
    ) -> Tensor<4> {
        let e1 = run(&self.encoder_level1, self.patch_embed.forward(inp.clone()));
        let e2 = run(&self.encoder_level2, self.down1_2.forward(e1.clone()));
        let e3 = run(&self.encoder_level3, self.down2_3.forward(e2.clone()));
        let lat = run(&self.latent, self.down3_4.forward(e3.clone()));

        let lat = self.site(SiteIndex::Three, lat, sampling, sites);
        let d3 = Tensor::cat(vec![self.up4_3.forward(lat), e3], 1);
        let d3 = run(&self.decoder_level3, conv1x1(&self.reduce_chan_level3, d3));

        let d3 = self.site(SiteIndex::Two, d3, sampling, sites);
        let d2 = Tensor::cat(vec![self.up3_2.forward(d3), e2], 1);
        let d2 = run(&self.decoder_level2, conv1x1(&self.reduce_chan_level2, d2));

        let d2 = self.site(SiteIndex::One, d2, sampling, sites);
        let d1 = Tensor::cat(vec![self.up2_1.forward(d2), e1], 1);
        let d1 = run(&self.refinement, run(&self.decoder_level1, d1));

        conv3x3(&self.output, d1) + inp
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::PromptIrConfig;
    use crate::test_util::{device, max_abs_diff};
    use burn::tensor::Distribution;

    fn tiny() -> RestorerConfig {
        PromptIrConfig {
            dim: 8,
            num_blocks: [1, 1, 1, 1],
            num_refinement_blocks: 1,
            prompt_dims: [8, 8, 16],
            prompt_sizes: [8, 4, 2],
            ..Default::default()
        }
        .to_restorer()
        .unwrap()
    }

    /// Each level's blocks get the window of a full-resolution window at their resolution;
    /// a window no smaller than the input leaves the network unchanged, a smaller one changes
    /// it; an invalid window is refused and leaves the setting as it was.
    #[test]
    fn local_attention_windows_follow_the_levels() {
        let d = device();
        let mut m = RestorerConfig::dppd_small().init(&d);
        let x = Tensor::<4>::random([1, 3, 48, 64], Distribution::Uniform(0.0, 1.0), &d);
        let global = m.forward(x.clone());
        let window = TileConfig {
            tile: 64,
            overlap: 16,
        };
        m.set_local_attention(Some(window)).unwrap();
        assert_eq!(m.local_attention(), Some(window));
        let at = |t: usize, o: usize| {
            Some(TileConfig {
                tile: t,
                overlap: o,
            })
        };
        assert_eq!(m.encoder_level1[0].attn.local(), at(64, 16));
        assert_eq!(m.refinement[0].attn.local(), at(64, 16));
        assert_eq!(m.decoder_level2[0].attn.local(), at(32, 8));
        assert_eq!(m.encoder_level3[0].attn.local(), at(16, 4));
        assert_eq!(m.latent[0].attn.local(), at(8, 2));
        assert_eq!(max_abs_diff(m.forward(x.clone()), global.clone()), 0.0);
        m.set_local_attention(Some(TileConfig {
            tile: 32,
            overlap: 8,
        }))
        .unwrap();
        assert!(max_abs_diff(m.forward(x.clone()), global.clone()) > 1e-4);
        let bad = TileConfig {
            tile: 20,
            overlap: 4,
        };
        assert!(m.set_local_attention(Some(bad)).is_err());
        assert_eq!(m.local_attention(), at(32, 8));
        m.set_local_attention(None).unwrap();
        assert_eq!(m.latent[0].attn.local(), None);
        assert_eq!(max_abs_diff(m.forward(x), global), 0.0);
    }

    /// PyTorch counts 35,592,263 parameters for `PromptIR()`, of which 215,296 belong to six
    /// modules its forward never runs; this crate holds only the 35,376,967 that are used.
    #[test]
    fn the_official_default_has_the_official_parameter_count() {
        let m = RestorerConfig::promptir().init(&device());
        let unused = PromptIrConfig::default().unused_parameter_count();
        assert_eq!(unused, 215_296);
        assert_eq!(m.num_params(), 35_376_967);
        assert_eq!(m.num_params() + unused, 35_592_263);
    }

    /// The reference "tiny" configuration: 1,058,580 parameters in PyTorch's count.
    #[test]
    fn a_tiny_configuration_has_the_reference_parameter_count() {
        let official = PromptIrConfig {
            dim: 16,
            num_blocks: [1, 1, 1, 1],
            num_refinement_blocks: 1,
            prompt_dims: [8, 16, 32],
            prompt_sizes: [16, 8, 4],
            ..Default::default()
        };
        let m = official.to_restorer().unwrap().init(&device());
        assert_eq!(
            m.num_params() + official.unused_parameter_count(),
            1_058_580
        );
    }

    #[test]
    fn any_size_and_batch_keeps_its_shape() {
        let d = device();
        for cfg in [
            tiny(),
            RestorerConfig {
                dim: 8,
                ..RestorerConfig::restormer()
            },
        ] {
            let m = RestorerConfig {
                num_blocks: [1, 1, 1, 1],
                num_refinement_blocks: 1,
                ..cfg
            }
            .init(&d);
            for shape in [[1, 3, 16, 24], [2, 3, 13, 7], [1, 3, 1, 1], [1, 3, 9, 30]] {
                let x = Tensor::<4>::random(shape, Distribution::Default, &d);
                assert_eq!(m.forward(x).dims(), shape);
            }
        }
    }

    #[test]
    fn padding_reflects_then_is_cropped_away() {
        let d = device();
        let x = Tensor::<4>::from_data(
            TensorData::new((0..5).map(|v| v as f32).collect::<Vec<_>>(), [1, 1, 1, 5]),
            &d,
        );
        let p = pad_to_multiple(x, 8);
        assert_eq!(p.dims(), [1, 1, 8, 8]);
        // a 1-pixel-high image cannot reflect, so it repeats its edge
        let row: Vec<f32> = p
            .slice([0..1, 0..1, 7..8, 0..8])
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        assert_eq!(row, vec![0.0, 1.0, 2.0, 3.0, 4.0, 4.0, 4.0, 4.0]);
        let x = Tensor::<4>::random([1, 1, 10, 6], Distribution::Default, &d);
        let p = pad_to_multiple(x.clone(), 8);
        // reflect: padded column 6 equals column 4, column 7 equals column 3
        let col = |t: &Tensor<4>, c: usize| t.clone().slice([0..1, 0..1, 0..10, c..c + 1]);
        assert_eq!(col(&p, 6).into_data(), col(&x, 4).into_data());
        assert_eq!(col(&p, 7).into_data(), col(&x, 3).into_data());
    }
}
