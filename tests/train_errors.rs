//! A diverging run stops with a clear message and leaves its last checkpoint intact.

mod common;

use burn::prelude::*;
use dppd::train::{Checkpoint, TrainOptions, list_checkpoints, train};

#[test]
fn a_non_finite_loss_stops_the_run_and_keeps_the_last_checkpoint() {
    let dir = common::train::temp_dir("nan");
    let data = common::train::photos(&dir);
    let mut config = common::train::tiny_config(8);
    // an absurd learning rate: the parameters overflow after the first steps
    config.optimizer.lr = 1e30;
    config.schedule.warmup_steps = 0;
    config.checkpoint_interval = 1;
    config.val_interval = 100;
    let run = dir.join("run");
    let mut opts = TrainOptions::new(&run, Device::flex());
    opts.data_root = Some(data);
    let err = train(config, &opts).unwrap_err().to_string();
    assert!(err.contains("non-finite loss"), "{err}");
    let ckpts = list_checkpoints(&run.join("checkpoints"));
    assert!(
        !ckpts.is_empty(),
        "a checkpoint before the divergence: {err}"
    );
    let (step, path) = &ckpts[0];
    assert!(err.contains(&path.display().to_string()), "{err}");
    let c = Checkpoint::load(path, &Device::flex().autodiff()).unwrap();
    assert_eq!(c.state.step, *step);
    let _ = std::fs::remove_dir_all(&dir);
}
