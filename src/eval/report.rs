//! Per-task score tables (Markdown and CSV) and side-by-side pictures.

use std::collections::BTreeMap;

use crate::base::image::Image;
use crate::degrade::Task;

/// Sums of the scores of one task.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TaskSums {
    /// Images.
    pub count: usize,
    /// Sum of restored PSNR.
    pub psnr: f64,
    /// Sum of restored SSIM.
    pub ssim: f64,
    /// Sum of degraded-input PSNR.
    pub input_psnr: f64,
    /// Sum of degraded-input SSIM.
    pub input_ssim: f64,
}

/// Mean PSNR/SSIM per task of restored images next to their degraded inputs' own scores.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScoreTable {
    /// Per task, in task-label order.
    pub tasks: BTreeMap<Task, TaskSums>,
}

impl ScoreTable {
    /// Adds one image: `(psnr, ssim)` of the restored and of the degraded image.
    pub fn add(&mut self, task: Task, restored: (f64, f64), input: (f64, f64)) {
        let s = self.tasks.entry(task).or_default();
        s.count += 1;
        s.psnr += restored.0;
        s.ssim += restored.1;
        s.input_psnr += input.0;
        s.input_ssim += input.1;
    }

    /// Rows `(name, images, psnr, ssim, input psnr, input ssim)` of means, then the
    /// `average` row: the mean of the task means (the papers' "avg" column).
    pub fn rows(&self) -> Vec<(String, usize, [f64; 4])> {
        let mut rows: Vec<(String, usize, [f64; 4])> = self
            .tasks
            .iter()
            .map(|(t, s)| {
                let n = s.count as f64;
                (
                    t.name().to_string(),
                    s.count,
                    [s.psnr / n, s.ssim / n, s.input_psnr / n, s.input_ssim / n],
                )
            })
            .collect();
        if !rows.is_empty() {
            let k = rows.len() as f64;
            let mut avg = [0.0; 4];
            for (_, _, v) in &rows {
                for (a, x) in avg.iter_mut().zip(v) {
                    *a += x / k;
                }
            }
            let n = rows.iter().map(|r| r.1).sum();
            rows.push(("average".into(), n, avg));
        }
        rows
    }

    /// A Markdown table.
    pub fn to_markdown(&self) -> String {
        let mut s = String::from(
            "| task | images | PSNR (dB) | SSIM | input PSNR (dB) | input SSIM |\n|---|---|---|---|---|---|\n",
        );
        for (name, n, v) in self.rows() {
            s += &format!(
                "| {name} | {n} | {:.3} | {:.4} | {:.3} | {:.4} |\n",
                v[0], v[1], v[2], v[3]
            );
        }
        s
    }

    /// CSV with the header `task,images,psnr,ssim,input_psnr,input_ssim`.
    pub fn to_csv(&self) -> String {
        let mut s = String::from("task,images,psnr,ssim,input_psnr,input_ssim\n");
        for (name, n, v) in self.rows() {
            s += &format!("{name},{n},{},{},{},{}\n", v[0], v[1], v[2], v[3]);
        }
        s
    }
}

/// The images side by side, top-aligned, separated by `gap` white columns (the background of
/// shorter images is white too).
pub fn side_by_side(images: &[&Image], gap: usize) -> Image {
    let h = images.iter().map(|i| i.height).max().unwrap_or(0);
    let w = images.iter().map(|i| i.width).sum::<usize>() + gap * images.len().saturating_sub(1);
    let mut out = Image::filled(w, h, [1.0; 3]);
    let mut x0 = 0;
    for im in images {
        for c in 0..3 {
            for y in 0..im.height {
                let src = &im.channel(c)[y * im.width..(y + 1) * im.width];
                let plane = out.channel_mut(c);
                plane[y * w + x0..y * w + x0 + im.width].copy_from_slice(src);
            }
        }
        x0 += im.width + gap;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_means_and_average() {
        let mut t = ScoreTable::default();
        t.add(Task::Derain, (30.0, 0.9), (25.0, 0.8));
        t.add(Task::Derain, (32.0, 0.7), (27.0, 0.6));
        t.add(Task::Denoise15, (20.0, 0.5), (19.0, 0.4));
        let rows = t.rows();
        assert_eq!(rows[0].0, "denoise_15");
        assert_eq!(rows[1].2, [31.0, 0.8, 26.0, 0.7]);
        assert_eq!(rows[2].0, "average");
        assert_eq!(rows[2].2[0], 25.5);
        assert!(
            t.to_markdown()
                .contains("| derain | 2 | 31.000 | 0.8000 | 26.000 | 0.7000 |")
        );
        assert_eq!(t.to_csv().lines().count(), 4);
    }

    #[test]
    fn side_by_side_places_each_image() {
        let a = Image::filled(2, 3, [0.0, 0.0, 0.0]);
        let b = Image::filled(3, 2, [0.5, 0.5, 0.5]);
        let s = side_by_side(&[&a, &b], 1);
        assert_eq!((s.width, s.height), (6, 3));
        assert_eq!(s.get(0, 1, 2), 0.0);
        assert_eq!(s.get(0, 2, 0), 1.0); // the gap
        assert_eq!(s.get(1, 3, 1), 0.5);
        assert_eq!(s.get(2, 5, 2), 1.0); // below the shorter image
    }
}
