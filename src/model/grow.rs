//! Deepening a trained network: the same network with more transformer blocks per level, whose
//! added blocks start as identities, so that training continues from what was learned.

use burn::module::Param;
use burn::prelude::*;
use burn::store::ModuleSnapshot;

use super::{Restorer, RestorerConfig};
use crate::backbone::TransformerBlock;
use crate::{Error, Result};

impl RestorerConfig {
    /// Whether a network of this configuration can be deepened into one of `deeper`
    /// ([`Restorer::grown`]): every field equal except that `deeper` may have more blocks at
    /// some levels (`num_blocks`, `num_refinement_blocks`) and other degradation names.
    /// `Err` says which field stands in the way.
    pub fn check_grows_into(&self, deeper: &RestorerConfig) -> Result<()> {
        let fewer = self
            .num_blocks
            .iter()
            .zip(&deeper.num_blocks)
            .any(|(a, b)| b < a);
        if fewer || deeper.num_refinement_blocks < self.num_refinement_blocks {
            return Err(Error::Config(format!(
                "a network grows only by adding blocks: blocks {:?} + {} refinement cannot \
                 become {:?} + {}",
                self.num_blocks,
                self.num_refinement_blocks,
                deeper.num_blocks,
                deeper.num_refinement_blocks
            )));
        }
        let same = RestorerConfig {
            num_blocks: deeper.num_blocks,
            num_refinement_blocks: deeper.num_refinement_blocks,
            degradations: deeper.degradations.clone(),
            ..self.clone()
        };
        if &same != deeper {
            return Err(Error::Config(format!(
                "a network grows only by adding blocks; the rest must stay: {} cannot become {}",
                serde_json::to_string(self).unwrap_or_default(),
                serde_json::to_string(deeper).unwrap_or_default()
            )));
        }
        Ok(())
    }
}

impl Restorer {
    /// This network deepened to `config` (more transformer blocks per level, see
    /// [`RestorerConfig::check_grows_into`]), on `device`: every weight it has is kept, and
    /// each added block (appended after a level's blocks) starts with the output projections
    /// of its attention and feed-forward zeroed, so that its two residual branches add nothing.
    /// The deeper network therefore computes exactly this network's function, and training it
    /// continues from what this one learned instead of from scratch (the added blocks'
    /// projections receive gradients at once, and through them the rest of each block).
    ///
    /// `train --init` does it when the experiment's network is a deeper one than the file's;
    /// the default-weights campaign moves from `dppd-small` to `dppd-medium` this way
    /// (`docs/default-weights.md`).
    ///
    /// # Errors
    /// A `config` that is not this network with more blocks, or that is invalid.
    pub fn grown(&self, config: &RestorerConfig, device: &Device) -> Result<Restorer> {
        config.validate()?;
        self.config().check_grows_into(config)?;
        let mut deeper = config.init(device);
        let tensors = self.collect(None, None, false);
        let result = deeper.apply(tensors, None, None, false);
        if !result.errors.is_empty() || !result.unused.is_empty() {
            return Err(Error::Config(format!(
                "deepening failed: {} errors, unused tensors {:?}",
                result.errors.len(),
                result.unused
            )));
        }
        let [n1, n2, n3, n4] = self.config().num_blocks;
        let refinement = self.config().num_refinement_blocks;
        for (level, kept) in [
            (&mut deeper.encoder_level1, n1),
            (&mut deeper.encoder_level2, n2),
            (&mut deeper.encoder_level3, n3),
            (&mut deeper.latent, n4),
            (&mut deeper.decoder_level3, n3),
            (&mut deeper.decoder_level2, n2),
            (&mut deeper.decoder_level1, n1),
            (&mut deeper.refinement, refinement),
        ] {
            for block in level.iter_mut().skip(kept) {
                silence(block);
            }
        }
        Ok(deeper)
    }
}

/// Zeroes the output projections of a block's two residual branches (attention and
/// feed-forward): the block becomes the identity.
fn silence(block: &mut TransformerBlock) {
    // a fresh tensor is not tracked by autodiff: it must require gradients as the old one did
    fn zeros<const D: usize>(p: Param<Tensor<D>>) -> Param<Tensor<D>> {
        p.map(|t| {
            let tracked = t.is_require_grad();
            let z = t.zeros_like();
            if tracked { z.require_grad() } else { z }
        })
    }
    for conv in [&mut block.attn.project_out, &mut block.ffn.project_out] {
        conv.weight = zeros(conv.weight.clone());
        conv.bias = conv.bias.take().map(zeros);
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::Distribution;

    use super::*;

    #[test]
    fn a_grown_network_computes_the_same_function_and_trains_its_new_blocks() {
        let device = Device::flex();
        let small = RestorerConfig::dppd_small();
        let medium = RestorerConfig::dppd_medium();
        let model = small.init(&device);
        let grown = model.grown(&medium, &device).unwrap();
        assert_eq!(grown.config(), &medium);
        assert!(grown.num_params() > model.num_params());
        let x = Tensor::<4>::random([1, 3, 32, 32], Distribution::Uniform(0.0, 1.0), &device);
        let a = model.forward(x.clone());
        let b = grown.forward(x);
        let diff = (a - b).abs().max().into_scalar::<f32>();
        assert!(diff < 1e-6, "grown network differs by {diff}");
        // the added blocks are silent but not frozen: their projections are zero, the rest of
        // them initialised, and a loss sends their projections a gradient
        let largest = |t: Tensor<4>| t.abs().max().into_scalar::<f32>();
        let added = &grown.latent[1];
        assert_eq!(largest(added.attn.project_out.weight.val()), 0.0);
        assert_eq!(largest(added.ffn.project_out.weight.val()), 0.0);
        assert!(largest(added.attn.qkv.weight.val()) > 0.0);
        let ad = device.autodiff();
        let grown = model.grown(&medium, &ad).unwrap();
        let x = Tensor::<4>::random([1, 3, 32, 32], Distribution::Uniform(0.0, 1.0), &ad);
        let g = grown.forward(x).abs().mean().backward();
        for block in [
            &grown.latent[3],
            &grown.encoder_level2[1],
            &grown.decoder_level3[1],
        ] {
            for w in [
                &block.attn.project_out.weight,
                &block.ffn.project_out.weight,
            ] {
                let grad = w.val().grad(&g).expect("a gradient");
                assert!(grad.abs().max().into_scalar::<f32>() > 0.0);
            }
        }
        // and the weights it kept go on training too
        for w in [&grown.latent[0].attn.qkv.weight, &grown.output.weight] {
            let grad = w.val().grad(&g).expect("a gradient");
            assert!(grad.abs().max().into_scalar::<f32>() > 0.0);
        }
    }

    #[test]
    fn only_more_blocks_can_be_grown() {
        let device = Device::flex();
        let small = RestorerConfig::dppd_small();
        let model = small.init(&device);
        let wider = RestorerConfig {
            dim: 24,
            ..RestorerConfig::dppd_medium()
        };
        let e = model.grown(&wider, &device).unwrap_err().to_string();
        assert!(e.contains("the rest must stay"), "{e}");
        let shallower = RestorerConfig {
            num_blocks: [1, 1, 1, 1],
            num_refinement_blocks: 0,
            ..small.clone()
        };
        let e = model.grown(&shallower, &device).unwrap_err().to_string();
        assert!(e.contains("only by adding blocks"), "{e}");
        assert!(
            small.check_grows_into(&small).is_ok(),
            "no change is a valid growth"
        );
    }
}
