//! A training run killed by a real SIGKILL at random moments, and restarted each time with
//! `--resume` (from scratch while no checkpoint exists yet), ends with the very losses of an
//! uninterrupted run.
//!
//! The killed runs are child processes: this test binary started again on its own ignored
//! test `child_training_run`. The kill delays are random; the seed is printed, and
//! `DPPD_KILL_SEED=N` replays a run. One test per file: burn's CPU backends seed one
//! process-wide generator.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dppd::train::{list_checkpoints, train};

const STEPS: u64 = 10;
const RUN_ENV: &str = "DPPD_KILL_CHILD_RUN";
const DATA_ENV: &str = "DPPD_KILL_CHILD_DATA";

/// The child: trains the run named by the environment, resuming when it has checkpoints.
#[test]
#[ignore = "started by killed_training_resumes_to_the_same_losses as a child process"]
fn child_training_run() {
    let (Ok(run), Ok(data)) = (std::env::var(RUN_ENV), std::env::var(DATA_ENV)) else {
        return;
    };
    let run = PathBuf::from(run);
    let resume = !list_checkpoints(&run.join("checkpoints")).is_empty();
    let config = common::train::tiny_config(STEPS);
    train(
        config,
        &common::train::opts(&run, Path::new(&data), resume, None),
    )
    .unwrap();
}

/// xorshift64*: enough randomness for kill delays.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

#[test]
fn killed_training_resumes_to_the_same_losses() {
    let dir = common::train::temp_dir("sigkill");
    let data = common::train::photos(&dir);
    let config = common::train::tiny_config(STEPS);

    // the reference: uninterrupted, in this process
    let started = Instant::now();
    let reference = dir.join("uninterrupted");
    let full = train(config, &common::train::opts(&reference, &data, false, None)).unwrap();
    assert_eq!(full.step, STEPS);
    let run_time = started.elapsed();

    let seed = std::env::var("DPPD_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("kill delays from seed {seed} (DPPD_KILL_SEED={seed} replays them)");
    let mut rng = Rng(seed);

    let killed = dir.join("killed");
    let exe = std::env::current_exe().unwrap();
    let spawn = || {
        Command::new(&exe)
            .args(["child_training_run", "--exact", "--ignored", "--nocapture"])
            .env(RUN_ENV, &killed)
            .env(DATA_ENV, &data)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    // kill points: once during start-up, then after three random steps (each plus a random
    // part of a step, so that kills land in computations, log appends and checkpoint writes
    // alike), then one child runs to the end
    let step_ms = (run_time.as_millis() as u64 / STEPS).max(20);
    let mut points: Vec<u64> = Vec::new();
    while points.len() < 3 {
        let s = 1 + rng.below(STEPS - 1);
        if !points.contains(&s) {
            points.push(s);
        }
    }
    points.sort();
    points.insert(0, 0);
    let log = killed.join("train.csv");
    let mut kills = Vec::new();
    for (attempt, &point) in points.iter().enumerate() {
        let spawned = std::time::SystemTime::now();
        let mut child = spawn();
        let extra = Duration::from_millis(rng.below(step_ms));
        // the child rewrites the log when it starts (truncated to its checkpoint): rows of
        // the killed run before it do not count
        let reached = || {
            point == 0
                || std::fs::metadata(&log)
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t > spawned)
                    && common::train::csv_rows(&log).len() > point as usize
        };
        let mut finished = None;
        while !reached() {
            if let Some(status) = child.try_wait().unwrap() {
                finished = Some(status);
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        if finished.is_none() {
            std::thread::sleep(extra);
            finished = child.try_wait().unwrap();
        }
        if let Some(status) = finished {
            let err = child.wait_with_output().unwrap().stderr;
            assert!(
                status.success(),
                "child {attempt} failed: {status}: {}",
                String::from_utf8_lossy(&err)
            );
            continue; // it finished before the kill: the next child resumes a finished run
        }
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(status.signal(), Some(9), "child {attempt}: {status}");
        }
        let logged = common::train::csv_rows(&log).len().saturating_sub(1);
        kills.push((point, extra.as_millis(), logged));
    }
    let out = spawn().wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the last, uninterrupted child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("killed at (step reached, ms after it, steps logged): {kills:?}");
    assert!(!kills.is_empty(), "no child was killed");
    assert_eq!(
        common::train::csv_rows(&reference.join("train.csv")),
        common::train::csv_rows(&killed.join("train.csv")),
        "losses after {} kills differ from the uninterrupted run's",
        kills.len()
    );
    assert_eq!(
        common::train::csv_rows(&reference.join("val.csv")),
        common::train::csv_rows(&killed.join("val.csv"))
    );
    assert!(killed.join("final.bpk").is_file());
    let _ = std::fs::remove_dir_all(&dir);
}
