//! With a cool-down (`schedule.cooldown`), the run writes its branch: the optimiser's weights
//! when the cool-down starts — those of a run that ends there — and, when a time limit stops
//! the run before, its weights at the stop.
//!
//! One test per file: burn's CPU backends seed one process-wide generator (tests/resume.rs).

mod common;

use std::time::Duration;

use dppd::prelude::*;
use dppd::train::{RunDir, train};

#[test]
fn the_branch_is_the_weights_where_the_cooldown_starts() {
    let dir = common::train::temp_dir("cooldown-branch");
    let data = common::train::photos(&dir);
    // 6 steps: 2 of warm-up, 1 at the peak, 3 cooling down
    let mut config = common::train::tiny_config(6);
    config.schedule.cooldown = Some(0.5);
    assert_eq!(config.cooldown_start(), Some(3));
    // 3 steps with the plain schedule: warm-up, then the cosine's first step, at the peak
    let short = common::train::tiny_config(3);
    for s in 0..3 {
        assert_eq!(config.lr_at(s), short.lr_at(s), "step {s}");
    }

    let (a, b, c) = (dir.join("a"), dir.join("b"), dir.join("c"));
    let full = train(config.clone(), &common::train::opts(&a, &data, false, None)).unwrap();
    assert_eq!(full.step, 6);
    train(short.clone(), &common::train::opts(&b, &data, false, None)).unwrap();
    assert!(
        !RunDir::new(&b).branch_model().exists(),
        "no cool-down, no branch"
    );

    let device = Device::flex();
    let load = |p: std::path::PathBuf| common::train::values(&Restorer::load(p, &device).unwrap());
    let branch = load(RunDir::new(&a).branch_model());
    assert!(
        branch == load(RunDir::new(&b).final_model()),
        "the branch is not the weights after the 3 steps before the cool-down"
    );
    assert!(branch != load(RunDir::new(&a).final_model()));

    // stopped by its time limit after its first step, the run's weights are its branch
    let mut opts = common::train::opts(&c, &data, false, None);
    opts.time_limit = Some(Duration::ZERO);
    let cut = train(config, &opts).unwrap();
    assert!(cut.time_limited && cut.step == 1);
    assert!(load(RunDir::new(&c).branch_model()) == load(RunDir::new(&c).final_model()));
    let _ = std::fs::remove_dir_all(&dir);
}
