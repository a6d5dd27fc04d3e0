//! A multithreaded loader that batches samples into tensors.

use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use burn::tensor::{Device, Int, Tensor};
use rand::seq::SliceRandom;

use super::dataset::{RestoreDataset, Sample};
use super::{images_to_tensor, labels_to_tensor};
use crate::degrade::{Task, derive_seed, rng_from_seed};
use crate::{Error, Result};

/// A batch on a device.
#[derive(Clone, Debug)]
pub struct Batch {
    /// Degraded images, `B×3×H×W` in `[0, 1]`.
    pub degraded: Tensor<4>,
    /// Clean images, `B×3×H×W` in `[0, 1]`.
    pub clean: Tensor<4>,
    /// Task labels ([`Task::label`]), `B`.
    pub labels: Tensor<1, Int>,
    /// The tasks, in batch order.
    pub tasks: Vec<Task>,
    /// The entry names, in batch order.
    pub names: Vec<String>,
}

impl Batch {
    /// Stacks samples of one size into a batch on `device`.
    pub fn from_samples(samples: &[Sample], device: &Device) -> Result<Self> {
        let degraded: Vec<_> = samples.iter().map(|s| s.degraded.clone()).collect();
        let clean: Vec<_> = samples.iter().map(|s| s.clean.clone()).collect();
        let labels: Vec<usize> = samples.iter().map(|s| s.task.label()).collect();
        Ok(Self {
            degraded: images_to_tensor(&degraded, device)?,
            clean: images_to_tensor(&clean, device)?,
            labels: labels_to_tensor(&labels, device),
            tasks: samples.iter().map(|s| s.task).collect(),
            names: samples.iter().map(|s| s.name.clone()).collect(),
        })
    }
}

/// Settings of a [`Loader`].
#[derive(Clone, Debug, PartialEq)]
pub struct LoaderConfig {
    /// Samples per batch.
    pub batch_size: usize,
    /// Loading threads (0 loads on the calling thread).
    pub workers: usize,
    /// Shuffle the order each epoch (seeded by `seed` and the epoch).
    pub shuffle: bool,
    /// Seed of the order.
    pub seed: u64,
    /// Drop a last, incomplete batch.
    pub drop_last: bool,
    /// Samples loaded ahead of the consumer.
    pub prefetch: usize,
}

impl Default for LoaderConfig {
    fn default() -> Self {
        Self {
            batch_size: 8,
            workers: 4,
            shuffle: true,
            seed: 0,
            drop_last: true,
            prefetch: 32,
        }
    }
}

/// Loads a [`RestoreDataset`] in batches with worker threads.
///
/// The order of an epoch is a seeded shuffle (`derive_seed(seed, [epoch])`); every sample's
/// randomness comes from the dataset's own per-sample seed, so the batches of an epoch are the
/// same whatever the number of workers.
pub struct Loader {
    dataset: Arc<RestoreDataset>,
    config: LoaderConfig,
    device: Device,
}

impl Loader {
    /// A loader over `dataset` putting batches on `device`.
    pub fn new(dataset: Arc<RestoreDataset>, config: LoaderConfig, device: Device) -> Self {
        Self {
            dataset,
            config,
            device,
        }
    }

    /// The dataset.
    pub fn dataset(&self) -> &RestoreDataset {
        &self.dataset
    }

    /// Batches per epoch.
    pub fn num_batches(&self) -> usize {
        let (n, b) = (self.dataset.len(), self.config.batch_size.max(1));
        if self.config.drop_last {
            n / b
        } else {
            n.div_ceil(b)
        }
    }

    /// The sample order of `epoch`.
    pub fn order(&self, epoch: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.dataset.len()).collect();
        if self.config.shuffle {
            order.shuffle(&mut rng_from_seed(derive_seed(self.config.seed, &[epoch])));
        }
        let b = self.config.batch_size.max(1);
        if self.config.drop_last {
            order.truncate(order.len() / b * b);
        }
        order
    }

    /// The batches of `epoch`. A sample that fails to load yields an `Err` for its batch (naming
    /// the file); iteration can continue with the next batch.
    pub fn epoch(&self, epoch: u64) -> EpochIter {
        self.epoch_from(epoch, 0)
    }

    /// The batches of `epoch` from batch `first_batch` on (the earlier ones are neither loaded
    /// nor yielded): how a resumed training run continues in the middle of an epoch.
    pub fn epoch_from(&self, epoch: u64, first_batch: usize) -> EpochIter {
        let order = Arc::new(self.order(epoch));
        let start = (first_batch * self.config.batch_size.max(1)).min(order.len());
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                next_claim: start,
                consumed: start,
                stop: false,
            }),
            wake: Condvar::new(),
        });
        let (tx, rx) = channel();
        let mut workers = Vec::new();
        for _ in 0..self.config.workers {
            let (dataset, order, shared, tx) = (
                self.dataset.clone(),
                order.clone(),
                shared.clone(),
                tx.clone(),
            );
            let window = self.config.prefetch.max(self.config.batch_size).max(1);
            workers.push(std::thread::spawn(move || {
                while let Some(pos) = shared.claim(order.len(), window) {
                    let index = order[pos];
                    let sample = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        dataset.get(index, epoch)
                    }))
                    .unwrap_or_else(|_| {
                        Err(Error::Dataset(format!("loading sample {index} panicked")))
                    });
                    if tx.send((pos, sample)).is_err() {
                        break;
                    }
                }
            }));
        }
        EpochIter {
            dataset: self.dataset.clone(),
            order,
            epoch,
            batch_size: self.config.batch_size.max(1),
            device: self.device.clone(),
            next: start,
            pending: BTreeMap::new(),
            rx,
            shared,
            workers,
        }
    }
}

struct State {
    next_claim: usize,
    consumed: usize,
    stop: bool,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

impl Shared {
    /// The next position to load, waiting while the workers are `window` samples ahead.
    fn claim(&self, len: usize, window: usize) -> Option<usize> {
        let mut s = self.state.lock().ok()?;
        loop {
            if s.stop || s.next_claim >= len {
                return None;
            }
            if s.next_claim < s.consumed + window {
                s.next_claim += 1;
                return Some(s.next_claim - 1);
            }
            s = self.wake.wait(s).ok()?;
        }
    }
}

/// The batches of one epoch ([`Loader::epoch`]).
pub struct EpochIter {
    dataset: Arc<RestoreDataset>,
    order: Arc<Vec<usize>>,
    epoch: u64,
    batch_size: usize,
    device: Device,
    next: usize,
    pending: BTreeMap<usize, Result<Sample>>,
    rx: Receiver<(usize, Result<Sample>)>,
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

impl EpochIter {
    fn take(&mut self, pos: usize) -> Result<Sample> {
        if self.workers.is_empty() {
            return self.dataset.get(self.order[pos], self.epoch);
        }
        loop {
            if let Some(s) = self.pending.remove(&pos) {
                return s;
            }
            match self.rx.recv() {
                Ok((p, s)) => {
                    self.pending.insert(p, s);
                }
                Err(_) => {
                    return Err(Error::Dataset(
                        "a loader worker stopped unexpectedly".into(),
                    ));
                }
            }
        }
    }
}

impl Iterator for EpochIter {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Result<Batch>> {
        if self.next >= self.order.len() {
            return None;
        }
        let end = (self.next + self.batch_size).min(self.order.len());
        let mut samples = Vec::with_capacity(end - self.next);
        let mut error = None;
        for pos in self.next..end {
            match self.take(pos) {
                Ok(s) => samples.push(s),
                Err(e) => {
                    error.get_or_insert(e);
                }
            }
        }
        self.next = end;
        if let Ok(mut s) = self.shared.state.lock() {
            s.consumed = end;
        }
        self.shared.wake.notify_all();
        Some(match error {
            Some(e) => Err(e),
            None => Batch::from_samples(&samples, &self.device),
        })
    }
}

impl Drop for EpochIter {
    fn drop(&mut self) {
        if let Ok(mut s) = self.shared.state.lock() {
            s.stop = true;
        }
        self.shared.wake.notify_all();
        // unblock senders, then wait for the threads
        while self.rx.try_recv().is_ok() {}
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}
