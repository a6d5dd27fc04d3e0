//! One training step over several devices of one machine (data parallelism).
//!
//! The step follows burn's own multi-device execution (burn-train's `multi` strategy with the
//! optimiser on the main device): the batch is cut into one contiguous shard per device, each
//! device runs the forward and backward pass on its shard with its own copy of the network
//! ([`Module::fork`]) in a thread of its own, and the gradients are brought to the first
//! device ([`GradientsParams::to_device`]) and summed there ([`GradientsAccumulator`]); the
//! optimiser then steps once, on the first device, as on one device.
//!
//! Each shard's loss is weighted by its share of the batch, so the summed gradient is the
//! gradient of the whole batch's loss: the update is the one-device update, up to the order of
//! floating-point sums. The loss terms are means over the batch (L1, DPA cross-entropy) or do
//! not depend on it (PDL KL), which this weighting requires.
//!
//! Randomness: the backends' generators are global, not per device, so the seeding of a
//! shard and its forward pass (where prompts are sampled) run under one lock, shard after
//! shard; the backward passes run at once. Shard `i` of step `s` draws from the seed
//! `(seed, s, i)` (shard 0 from `(seed, s)`, as a one-device run), whatever the threads'
//! order, so a run on N devices is reproducible and resumes exactly; its sampled prompts
//! differ from a one-device run's.

use std::sync::Mutex;

use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::prelude::*;

use super::{LossConfig, LossParts, restoration_loss};
use crate::model::Restorer;
use crate::prompt::PromptSampling;
use crate::{Error, Result};

/// Serialises "seed the generator, run the forward pass" across the shards of a step.
static FORWARD: Mutex<()> = Mutex::new(());

/// What one step computed: the gradient of the batch's loss on the first device, and the
/// loss terms (total, L1, DPA cross-entropy, PDL KL; NaN when absent), batch-weighted.
pub(crate) struct StepResult {
    pub grads: GradientsParams,
    pub values: [f64; 4],
}

/// One batch of a step: inputs and targets on the first device, and the class label of each
/// sample when the network has prototypes.
pub(crate) struct StepBatch {
    pub degraded: Tensor<4>,
    pub clean: Tensor<4>,
    pub labels: Option<Vec<usize>>,
}

/// The shard sizes of a batch of `batch` samples over `devices` devices: as even as possible,
/// the larger ones first.
pub(crate) fn shard_sizes(batch: usize, devices: usize) -> Vec<usize> {
    (0..devices)
        .map(|i| batch / devices + usize::from(i < batch % devices))
        .collect()
}

/// The total loss and its parts read from the device in one transfer (one synchronisation
/// per step on a GPU instead of four).
pub(crate) fn loss_values(parts: &LossParts) -> [f64; 4] {
    let terms = [
        Some(&parts.total),
        Some(&parts.l1),
        parts.dpa_ce.as_ref(),
        parts.pdl_kl.as_ref(),
    ];
    let present: Vec<Tensor<1>> = terms.iter().flatten().map(|t| (*t).clone()).collect();
    let values: Vec<f32> = Tensor::cat(present, 0)
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap_or_default();
    let mut it = values.into_iter();
    terms.map(|t| match t {
        Some(_) => it.next().map_or(f64::NAN, f64::from),
        None => f64::NAN,
    })
}

/// One device's part of a step: its samples, on that device.
struct Shard {
    degraded: Tensor<4>,
    clean: Tensor<4>,
    labels: Option<Tensor<1, Int>>,
    /// Its share of the batch, which weights its loss.
    share: f64,
    /// The seed of the generator for its forward pass.
    seed: u64,
}

/// Forward, loss and backward of one shard on `replica` (a copy of the network on the shard's
/// device): the gradient of the shard's share-weighted loss, and its weighted loss terms.
fn run_shard(
    replica: &Restorer,
    device: &Device,
    shard: Shard,
    loss: &LossConfig,
    sampling: Option<PromptSampling>,
) -> (GradientsParams, [f64; 4]) {
    let out = {
        let _turn = FORWARD.lock().unwrap_or_else(|e| e.into_inner());
        device.seed(shard.seed);
        replica.forward_with(shard.degraded, sampling)
    };
    let parts = restoration_loss(&out, shard.clean, shard.labels, loss);
    let share = shard.share;
    // a whole batch is left unweighted: the one-device step is exactly the plain one
    let parts = if share == 1.0 {
        parts
    } else {
        LossParts {
            total: parts.total * share,
            l1: parts.l1 * share,
            dpa_ce: parts.dpa_ce.map(|t| t * share),
            pdl_kl: parts.pdl_kl.map(|t| t * share),
        }
    };
    let values = loss_values(&parts);
    let grads = GradientsParams::from_grads(parts.total.backward(), replica);
    (grads, values)
}

/// Forward, loss and backward of `batch` over `devices` (autodiff devices; the first holds
/// `model`). `seed_of(i)` seeds shard `i`'s generator. With one device this is the plain
/// one-device step (no copy of the network, no thread).
pub(crate) fn step(
    model: &Restorer,
    devices: &[Device],
    batch: StepBatch,
    loss: &LossConfig,
    sampling: Option<PromptSampling>,
    seed_of: impl Fn(usize) -> u64,
) -> Result<StepResult> {
    let n = batch.degraded.dims()[0];
    if devices.len() > n {
        return Err(Error::Config(format!(
            "a batch of {n} cannot be shared by {} devices (at least one sample each)",
            devices.len()
        )));
    }
    let main = &devices[0];
    let mut start = 0;
    let mut shards = Vec::with_capacity(devices.len());
    for (i, (size, device)) in shard_sizes(n, devices.len())
        .into_iter()
        .zip(devices)
        .enumerate()
    {
        let take = |t: &Tensor<4>| {
            if size == n {
                t.clone()
            } else {
                t.clone().narrow(0, start, size).to_device(device)
            }
        };
        let labels = batch
            .labels
            .as_ref()
            .map(|l| crate::data::labels_to_tensor(&l[start..start + size], device));
        shards.push(Shard {
            degraded: take(&batch.degraded),
            clean: take(&batch.clean),
            labels,
            share: size as f64 / n as f64,
            seed: seed_of(i),
        });
        start += size;
    }
    if let [_] = devices {
        let shard = shards.pop().expect("one shard per device");
        let (grads, values) = run_shard(model, main, shard, loss, sampling);
        return Ok(StepResult { grads, values });
    }
    let results = std::thread::scope(|scope| {
        let handles: Vec<_> = shards
            .into_iter()
            .zip(devices)
            .map(|(shard, device)| {
                let replica = model.clone().fork(device);
                scope.spawn(move || run_shard(&replica, device, shard, loss, sampling))
            })
            .collect();
        handles
            .into_iter()
            .enumerate()
            .map(|(i, h)| {
                h.join().map_err(|_| {
                    Error::Training(format!("the training worker of device {i} panicked"))
                })
            })
            .collect::<Result<Vec<_>>>()
    })?;
    let mut accumulator = GradientsAccumulator::<Restorer>::new();
    let mut values = [0.0f64; 4];
    for (grads, v) in results {
        accumulator.accumulate(model, grads.to_device(main, model));
        for (sum, x) in values.iter_mut().zip(v) {
            *sum += x;
        }
    }
    Ok(StepResult {
        grads: accumulator.grads(),
        values,
    })
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use crate::model::RestorerConfig;
    use crate::test_util::{GradCompare, device};
    use burn::tensor::Distribution;

    #[test]
    fn shards_are_as_even_as_possible() {
        assert_eq!(shard_sizes(8, 2), [4, 4]);
        assert_eq!(shard_sizes(7, 3), [3, 2, 2]);
        assert_eq!(shard_sizes(2, 2), [1, 1]);
        assert_eq!(shard_sizes(5, 1), [5]);
    }

    /// The same update on two (CPU) devices as on one device with the whole batch: the loss,
    /// its parts and every parameter's gradient, within float tolerance.
    #[test]
    fn two_devices_give_the_one_device_update() {
        let ad = device().autodiff();
        let config = RestorerConfig {
            dim: 8,
            ..RestorerConfig::dppd_small()
        };
        ad.seed(11);
        let model = config.init(&ad);
        let x = Tensor::<4>::random([3, 3, 24, 32], Distribution::Default, &ad);
        let clean = Tensor::<4>::random([3, 3, 24, 32], Distribution::Default, &ad);
        let batch = || StepBatch {
            degraded: x.clone(),
            clean: clean.clone(),
            labels: Some(vec![0, 2, 1]),
        };
        // Mean prompts: nothing random, so the two runs see the same network function.
        let mean = Some(PromptSampling::Mean);
        let loss = LossConfig::default();
        let one = step(
            &model,
            std::slice::from_ref(&ad),
            batch(),
            &loss,
            mean,
            |_| 1,
        )
        .unwrap();
        let two = step(
            &model,
            &[ad.clone(), ad.clone()],
            batch(),
            &loss,
            mean,
            |_| 1,
        )
        .unwrap();
        for (a, b) in one.values.iter().zip(&two.values) {
            assert!((a - b).abs() < 1e-5 * a.abs().max(1.0), "{a} vs {b}");
        }
        assert!(one.values.iter().all(|v| v.is_finite()), "{:?}", one.values);
        let mut cmp = GradCompare::new(&two.grads, &one.grads, 1e-4);
        model.visit(&mut cmp);
        assert!(cmp.checked > 40, "{} parameters compared", cmp.checked);
        // a shard per sample, three devices
        let three = step(
            &model,
            &[ad.clone(), ad.clone(), ad.clone()],
            batch(),
            &loss,
            mean,
            |_| 1,
        )
        .unwrap();
        let mut cmp = GradCompare::new(&three.grads, &one.grads, 1e-4);
        model.visit(&mut cmp);
        assert!(cmp.checked > 40);
        let four = vec![ad.clone(); 4];
        assert!(step(&model, &four, batch(), &loss, mean, |_| 1).is_err());
    }
}
