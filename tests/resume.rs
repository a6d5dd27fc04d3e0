//! A run stopped without a final save and resumed from its last good checkpoint repeats the
//! uninterrupted run's losses step for step.
//!
//! One test per file: burn's CPU backends seed one process-wide generator, so training runs
//! in parallel threads of one process would draw from each other's sequence.

mod common;

use dppd::train::{list_checkpoints, train};

#[test]
fn resumed_run_repeats_the_uninterrupted_losses() {
    let dir = common::train::temp_dir("resume");
    let data = common::train::photos(&dir);
    let config = common::train::tiny_config(6);

    let (a, b) = (dir.join("a"), dir.join("b"));
    let full = train(config.clone(), &common::train::opts(&a, &data, false, None)).unwrap();
    assert_eq!(full.step, 6);
    assert_eq!(full.losses.len(), 6);
    assert!(full.losses.iter().all(|(_, l)| l.is_finite() && *l > 0.0));

    // "killed" after step 5: checkpoints at 2 and 4 exist, step 5 is lost
    let killed = train(
        config.clone(),
        &common::train::opts(&b, &data, false, Some(5)),
    )
    .unwrap();
    assert_eq!(killed.step, 5);
    let steps: Vec<u64> = list_checkpoints(&b.join("checkpoints"))
        .iter()
        .map(|c| c.0)
        .collect();
    assert_eq!(steps, [4, 2]);
    assert!(!b.join("final.bpk").exists());
    assert_eq!(killed.losses, full.losses[..5]);

    // a fresh start into a run folder with checkpoints is refused
    let err = train(config.clone(), &common::train::opts(&b, &data, false, None)).unwrap_err();
    assert!(
        err.to_string().contains("already holds checkpoints"),
        "{err}"
    );
    // so is a resume with another configuration
    let mut other = config.clone();
    other.optimizer.lr = 5e-4;
    let err = train(other, &common::train::opts(&b, &data, true, None)).unwrap_err();
    assert!(err.to_string().contains("another configuration"), "{err}");

    // the newest checkpoint is damaged (say, by the disk): resumption falls back to step 2
    let newest = b.join("checkpoints/ckpt-00000004.ckpt");
    let mut bytes = std::fs::read(&newest).unwrap();
    let at = bytes.len() / 3;
    bytes[at] ^= 0x40;
    std::fs::write(&newest, bytes).unwrap();

    let resumed = train(config, &common::train::opts(&b, &data, true, None)).unwrap();
    assert_eq!(resumed.step, 6);
    assert_eq!(resumed.losses, full.losses[2..], "resumed losses differ");
    // the logs are the uninterrupted run's, the lost step 5 written once
    assert_eq!(
        common::train::csv_rows(&a.join("train.csv")),
        common::train::csv_rows(&b.join("train.csv"))
    );
    assert_eq!(
        common::train::csv_rows(&a.join("val.csv")),
        common::train::csv_rows(&b.join("val.csv"))
    );
    let steps: Vec<u64> = list_checkpoints(&b.join("checkpoints"))
        .iter()
        .map(|c| c.0)
        .collect();
    assert_eq!(steps, [6, 4], "keep_last = 2");
    for f in [
        "final.bpk",
        "best.bpk",
        "curves.png",
        "config.json",
        "checkpoints/best.ckpt",
    ] {
        assert!(b.join(f).is_file(), "{f}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
