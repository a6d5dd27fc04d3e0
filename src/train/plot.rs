//! Training curves drawn into a PNG with the `image` crate alone (no plotting crate):
//! top, the training loss per step (grey) and its running mean over 1% of the steps (black),
//! on a log scale; bottom, the validation PSNR of each task (one colour per task, in
//! task-label order, the colours listed in `docs/training.md`) and their mean (black, thick),
//! with each task's degraded-input PSNR as a dotted line of its colour. Axis ranges are
//! printed at the panel corners with a built-in 3×5 digit font.

use std::collections::BTreeMap;
use std::path::Path;

use image::{Rgb, RgbImage};

use super::run_dir::{RunDir, TrainRow, ValRow};
use crate::{Error, Result};

/// The task colours, in order of first appearance in `val.csv` (which is task-label order).
pub const TASK_COLOURS: [[u8; 3]; 8] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [23, 190, 207],
];

const W: u32 = 960;
const H: u32 = 720;

struct Panel {
    x0: f64,
    y0: f64,
    w: f64,
    h: f64,
    xr: (f64, f64),
    yr: (f64, f64),
}

impl Panel {
    fn at(&self, x: f64, y: f64) -> (f64, f64) {
        let fx = (x - self.xr.0) / (self.xr.1 - self.xr.0).max(1e-12);
        let fy = (y - self.yr.0) / (self.yr.1 - self.yr.0).max(1e-12);
        (self.x0 + fx * self.w, self.y0 + self.h - fy * self.h)
    }
}

fn put(img: &mut RgbImage, x: i64, y: i64, c: [u8; 3]) {
    if x >= 0 && y >= 0 && (x as u32) < img.width() && (y as u32) < img.height() {
        img.put_pixel(x as u32, y as u32, Rgb(c));
    }
}

/// Solid segments joining consecutive data points `(x, y)` of `panel`.
fn polyline(
    img: &mut RgbImage,
    panel: &Panel,
    pts: impl IntoIterator<Item = (f64, f64)>,
    c: [u8; 3],
    thick: i64,
) {
    let screen: Vec<(f64, f64)> = pts.into_iter().map(|(x, y)| panel.at(x, y)).collect();
    for w in screen.windows(2) {
        line(img, w[0], w[1], c, thick, false);
    }
}

fn line(img: &mut RgbImage, a: (f64, f64), b: (f64, f64), c: [u8; 3], thick: i64, dot: bool) {
    let n = ((b.0 - a.0).abs().max((b.1 - a.1).abs()).ceil() as i64).max(1);
    for i in 0..=n {
        if dot && (i / 3) % 2 == 1 {
            continue;
        }
        let t = i as f64 / n as f64;
        let (x, y) = (a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t);
        for dx in 0..thick {
            for dy in 0..thick {
                put(img, x.round() as i64 + dx, y.round() as i64 + dy, c);
            }
        }
    }
}

/// 3×5 glyphs, rows top to bottom, 3 bits each (MSB left).
fn glyph(ch: char) -> Option<[u8; 5]> {
    Some(match ch {
        '0' => [7, 5, 5, 5, 7],
        '1' => [2, 6, 2, 2, 7],
        '2' => [7, 1, 7, 4, 7],
        '3' => [7, 1, 7, 1, 7],
        '4' => [5, 5, 7, 1, 1],
        '5' => [7, 4, 7, 1, 7],
        '6' => [7, 4, 7, 5, 7],
        '7' => [7, 1, 1, 1, 1],
        '8' => [7, 5, 7, 5, 7],
        '9' => [7, 5, 7, 1, 7],
        '.' => [0, 0, 0, 0, 2],
        '-' => [0, 0, 7, 0, 0],
        'e' => [7, 5, 7, 4, 7],
        _ => return None,
    })
}

fn text(img: &mut RgbImage, x: i64, y: i64, s: &str) {
    let scale = 2;
    for (i, ch) in s.chars().enumerate() {
        if let Some(g) = glyph(ch) {
            for (r, bits) in g.iter().enumerate() {
                for col in 0..3 {
                    if bits >> (2 - col) & 1 == 1 {
                        for dx in 0..scale {
                            for dy in 0..scale {
                                put(
                                    img,
                                    x + (i as i64 * 4 + col) * scale + dx,
                                    y + r as i64 * scale + dy,
                                    [0, 0, 0],
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}

fn frame(img: &mut RgbImage, p: &Panel, ylabel: impl Fn(f64) -> String) {
    let g = [200, 200, 200];
    for k in 0..=4 {
        let y = p.y0 + p.h * k as f64 / 4.0;
        line(img, (p.x0, y), (p.x0 + p.w, y), g, 1, false);
    }
    let k = [0, 0, 0];
    line(img, (p.x0, p.y0), (p.x0, p.y0 + p.h), k, 1, false);
    line(
        img,
        (p.x0, p.y0 + p.h),
        (p.x0 + p.w, p.y0 + p.h),
        k,
        1,
        false,
    );
    for j in 0..=4 {
        let v = p.yr.0 + (p.yr.1 - p.yr.0) * j as f64 / 4.0;
        let y = p.y0 + p.h - p.h * j as f64 / 4.0;
        text(img, 4, y as i64 - 5, &ylabel(v));
    }
    let y = (p.y0 + p.h + 6.0) as i64;
    text(img, p.x0 as i64, y, &format!("{}", p.xr.0 as u64));
    let last = format!("{}", p.xr.1 as u64);
    text(img, (p.x0 + p.w) as i64 - 8 * last.len() as i64, y, &last);
}

fn range(v: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for x in v.filter(|x| x.is_finite()) {
        lo = lo.min(x);
        hi = hi.max(x);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-9 {
        return (lo - 0.5, hi + 0.5);
    }
    (lo, hi)
}

/// Draws `run_dir/curves.png` from `run_dir/train.csv` and `run_dir/val.csv`.
pub fn draw_run(run_dir: &Path) -> Result<()> {
    let run = RunDir::new(run_dir);
    let img = draw(&run.read_train()?, &run.read_val()?);
    let path = run.curves();
    let mut bytes = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .map_err(|e| Error::Image {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    crate::base::atomic::write_bytes(&path, &bytes)
}

/// A task's validation curve: `(step, PSNR, input PSNR)` points.
type Series = (String, Vec<(f64, f64, f64)>);

fn draw(train: &[TrainRow], val: &[ValRow]) -> RgbImage {
    let mut img = RgbImage::from_pixel(W, H, Rgb([255, 255, 255]));
    // training loss (log10)
    let pts: Vec<(f64, f64)> = train
        .iter()
        .map(|r| (r.step as f64, r.loss))
        .filter(|p| p.1 > 0.0 && p.1.is_finite())
        .map(|(s, l)| (s, l.log10()))
        .collect();
    let steps = range(
        pts.iter()
            .map(|p| p.0)
            .chain(val.iter().map(|r| r.step as f64)),
    );
    let top = Panel {
        x0: 90.0,
        y0: 20.0,
        w: W as f64 - 110.0,
        h: 300.0,
        xr: steps,
        yr: range(pts.iter().map(|p| p.1)),
    };
    frame(&mut img, &top, |v| format!("{:.1e}", 10f64.powf(v)));
    polyline(&mut img, &top, pts.iter().copied(), [170, 170, 170], 1);
    let k = (pts.len() / 100).max(1);
    let smooth: Vec<(f64, f64)> = (0..pts.len())
        .map(|i| {
            let lo = i.saturating_sub(k);
            let s = &pts[lo..=i];
            (
                pts[i].0,
                s.iter().map(|p| p.1).sum::<f64>() / s.len() as f64,
            )
        })
        .collect();
    polyline(&mut img, &top, smooth, [0, 0, 0], 2);
    // validation PSNR per task
    let mut series: Vec<Series> = Vec::new();
    for r in val {
        let (s, p, ip) = (r.step as f64, r.psnr, r.input_psnr);
        let name = r.task.clone();
        match series.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => v.push((s, p, ip)),
            None => series.push((name, vec![(s, p, ip)])),
        }
    }
    let bottom = Panel {
        x0: 90.0,
        y0: 380.0,
        w: W as f64 - 110.0,
        h: 300.0,
        xr: steps,
        yr: range(
            series
                .iter()
                .flat_map(|(_, v)| v.iter().flat_map(|p| [p.1, p.2])),
        ),
    };
    frame(&mut img, &bottom, |v| format!("{v:.1}"));
    let mut colours: BTreeMap<String, [u8; 3]> = BTreeMap::new();
    let mut next = 0;
    for (name, v) in &series {
        let (c, thick) = if name == "average" {
            ([0, 0, 0], 3)
        } else {
            let c = *colours.entry(name.clone()).or_insert_with(|| {
                next += 1;
                TASK_COLOURS[(next - 1) % TASK_COLOURS.len()]
            });
            (c, 2)
        };
        polyline(&mut img, &bottom, v.iter().map(|p| (p.0, p.1)), c, thick);
        if let (Some(a), Some(b)) = (v.first(), v.last()) {
            let (a, b) = (bottom.at(steps.0, a.2), bottom.at(steps.1, b.2));
            line(&mut img, a, b, c, 1, true);
        }
        for p in v {
            let (x, y) = bottom.at(p.0, p.1);
            line(
                &mut img,
                (x - 2.0, y - 2.0),
                (x + 2.0, y + 2.0),
                c,
                2,
                false,
            );
        }
    }
    img
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curves_are_drawn_where_the_data_says() {
        let train: Vec<TrainRow> = (1..=50)
            .map(|s| TrainRow {
                step: s,
                epoch: 0,
                lr: 1e-4,
                loss: 1.0 / s as f64,
                l1: 1.0 / s as f64,
                dpa_ce: f64::NAN,
                pdl_kl: f64::NAN,
                images_per_s: 1.0,
            })
            .collect();
        let row = |step, psnr| ValRow {
            step,
            task: "denoise_25".into(),
            psnr,
            ssim: 0.7,
            input_psnr: 20.0,
            input_ssim: 0.5,
        };
        let val = vec![row(10, 25.0), row(50, 28.0)];
        let img = draw(&train, &val);
        // the first task's colour appears in the bottom panel, nowhere in the top one
        let blue = Rgb(TASK_COLOURS[0]);
        let in_rows = |a: u32, b: u32| (a..b).any(|y| (0..W).any(|x| *img.get_pixel(x, y) == blue));
        assert!(in_rows(380, 700));
        assert!(!in_rows(0, 370));
        // the loss falls: the smoothed curve's first point is high, its last low
        let dark = |x: u32| (20..330).find(|&y| *img.get_pixel(x, y) == Rgb([0, 0, 0]));
        let (a, b) = (dark(92).unwrap(), dark(W - 22).unwrap());
        assert!(a < b, "{a} {b}");
    }
}
