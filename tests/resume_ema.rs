//! With a moving average of the weights (`ema`), a resumed run ends with the uninterrupted
//! run's average and trained weights, bit for bit; the average is what the run validates and
//! writes as `final.bpk`, the trained weights go to `final-raw.bpk`.
//!
//! One test per file: burn's CPU backends seed one process-wide generator (tests/resume.rs).

mod common;

use dppd::prelude::*;
use dppd::train::{EmaConfig, train};

#[test]
fn a_resumed_run_ends_with_the_uninterrupted_runs_average() {
    let dir = common::train::temp_dir("resume-ema");
    let data = common::train::photos(&dir);
    let mut config = common::train::tiny_config(6);
    config.ema = Some(EmaConfig { decay: 0.5 });

    let (a, b) = (dir.join("a"), dir.join("b"));
    let full = train(config.clone(), &common::train::opts(&a, &data, false, None)).unwrap();
    assert_eq!(full.step, 6);
    let killed = train(
        config.clone(),
        &common::train::opts(&b, &data, false, Some(5)),
    )
    .unwrap();
    assert_eq!(killed.step, 5);
    // a checkpoint without the average cannot continue a run that keeps one
    let mut plain = config.clone();
    plain.ema = None;
    let err = train(plain, &common::train::opts(&b, &data, true, None)).unwrap_err();
    assert!(err.to_string().contains("another configuration"), "{err}");
    let resumed = train(config, &common::train::opts(&b, &data, true, None)).unwrap();
    assert_eq!(resumed.losses, full.losses[4..]);

    let device = Device::flex();
    let load = |run: &std::path::Path, f: &str| Restorer::load(run.join(f), &device).unwrap();
    for f in ["final.bpk", "final-raw.bpk", "best.bpk"] {
        // the values, bit for bit (the files also hold parameter ids, which differ by run)
        assert!(
            common::train::values(&load(&a, f)) == common::train::values(&load(&b, f)),
            "{f} differs between the runs"
        );
    }
    // the validation scored the same network in both runs
    assert_eq!(
        common::train::csv_rows(&a.join("val.csv")),
        common::train::csv_rows(&b.join("val.csv"))
    );
    let average = common::train::values(&load(&a, "final.bpk"));
    let trained = common::train::values(&load(&a, "final-raw.bpk"));
    assert_eq!(average.len(), trained.len());
    assert!(average != trained, "the average equals the trained weights");
    let _ = std::fs::remove_dir_all(&dir);
}
