//! A whole training step of a small DPPD network (forward, L1 + DPA cross-entropy + PDL KL,
//! backward) through the engine's training nodes against the same step on burn's operations:
//! the loss and the gradient of every parameter.

use super::{LossConfig, restoration_loss};
use crate::model::RestorerConfig;
use crate::test_util::{GradCompare, device};
use burn::module::Module;
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::Distribution;

#[test]
fn a_training_step_matches_burns_autodiff() {
    for ad in [
        device().autodiff(),
        device().autodiff().gradient_checkpointing(),
    ] {
        let config = RestorerConfig {
            dim: 8,
            ..RestorerConfig::dppd_small()
        };
        ad.seed(7);
        let model = config.init(&ad);
        let x = Tensor::<4>::random([2, 3, 24, 40], Distribution::Default, &ad);
        let clean = Tensor::<4>::random([2, 3, 24, 40], Distribution::Default, &ad);
        let labels = Tensor::<1, Int>::from_ints([0, 2], &ad);
        let step = || {
            // Mean prompts: the backend's generator is shared by the tests running at
            // once, so sampled prompts would differ between the two passes.
            let out = model.forward_with(x.clone(), Some(crate::prompt::PromptSampling::Mean));
            let parts = restoration_loss(
                &out,
                clean.clone(),
                Some(labels.clone()),
                &LossConfig::default(),
            );
            let loss = parts.total.clone().into_scalar::<f32>();
            (
                loss,
                GradientsParams::from_grads(parts.total.backward(), &model),
            )
        };
        let (loss, grads) = step();
        let (loss_ref, grads_ref) = crate::cpu::with_burn_ops(step);
        assert!(
            (loss - loss_ref).abs() < 1e-5 * loss_ref.abs().max(1.0),
            "{loss} vs {loss_ref}"
        );
        let mut cmp = GradCompare::new(&grads, &grads_ref, 2e-4);
        model.visit(&mut cmp);
        assert!(cmp.checked > 40, "{} parameters compared", cmp.checked);
    }
}
