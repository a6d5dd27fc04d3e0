//! Time to make one training sample (decode from the cache, crop, degrade, flip) per task, on a
//! photograph of the campaign's size (1280 × 853), as the training loader's threads do.
//!
//! ```text
//! cargo bench --bench data -- [--runs 40] [--side 1280]
//! ```
//!
//! Prints the median and the mean milliseconds per sample for each task. The campaign's batch
//! of 8 crops takes about 1.5 s of training on the 2-core CPU, so a task whose samples cost
//! tens of milliseconds takes a visible share of the machine from the training itself.

use std::time::Instant;

use dppd::data::{Entry, Image, RestoreDataset, write_image};
use dppd::degrade::Task;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut runs = 40usize;
    let mut side = 1280usize;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--runs" => runs = it.next().and_then(|v| v.parse().ok()).expect("--runs N"),
            "--side" => side = it.next().and_then(|v| v.parse().ok()).expect("--side N"),
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    let (w, h) = (side, side * 2 / 3);
    // A photograph-like image: smooth gradients (sky, ground) with texture on top.
    let mut data = vec![0.0f32; 3 * w * h];
    for c in 0..3 {
        for y in 0..h {
            for x in 0..w {
                let (u, v) = (x as f32 / w as f32, y as f32 / h as f32);
                let texture = ((x * 7 + y * 13 + c * 5) % 17) as f32 / 17.0;
                data[(c * h + y) * w + x] =
                    (0.2 + 0.5 * v + 0.1 * c as f32 * u + 0.2 * texture).clamp(0.0, 1.0);
            }
        }
    }
    let image = Image::from_planar(w, h, data).expect("valid image");
    let dir = std::env::temp_dir().join(format!("dppd-bench-data-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary folder");
    let path = dir.join("photo.png");
    write_image(&path, &image).expect("write the photograph");

    println!("one training sample of 128² from a {w}×{h} photograph (cached), {runs} runs");
    for task in [Task::Denoise25, Task::Derain, Task::Dehaze, Task::Clean] {
        let entries = vec![Entry::synthetic(path.clone(), None, task)];
        let data = RestoreDataset::train(entries, 128, 0)
            .with_max_side(Some(side))
            .with_cache(true);
        data.get(0, 0).expect("a sample"); // fills the cache
        let mut t: Vec<f64> = (1..=runs as u64)
            .map(|epoch| {
                let s = Instant::now();
                data.get(0, epoch).expect("a sample");
                s.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        t.sort_by(f64::total_cmp);
        let mean = t.iter().sum::<f64>() / t.len() as f64;
        println!(
            "{:<12} median {:8.2} ms   mean {:8.2} ms",
            task.name(),
            t[t.len() / 2],
            mean
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
