//! Shows a photograph under every synthetic degradation, as one labelled grid.
//!
//! ```text
//! cargo run --release --example degrade -- PHOTO OUT.png [--seed N] [--depth DEPTH.png] [--tile W]
//! cargo run --release --example degrade -- PHOTO OUT.png --task TASK [--seed N] [--depth DEPTH.png]
//! ```
//!
//! With `--task` (`denoise_25`, `derain`, `dehaze`, … as in training configurations), the
//! photograph is written at full size, degraded as that task trains — the test inputs of
//! `assets/demo/` were made so.
//!
//! The photo is first box-downscaled to tiles `W` pixels wide (default 232), then degraded at
//! that size, so every effect shows at the scale it is displayed. A depth map for the haze
//! tiles is taken from `--depth`, or from `STEM_depth.png` beside the photo when it exists
//! (16-bit PNG, see `assets/photos/LICENSES.md`); otherwise haze uses the depth proxy.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use dppd::data::{Image, read_depth, read_image, write_image};
use dppd::degrade::{
    Composite, DefocusBlur, Degradation, DepthMap, GaussianNoise, Haze, Jpeg, LowLight, MotionBlur,
    Rain, Task, derive_seed, rng_from_seed,
};

const COLUMNS: usize = 4;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Shows a photograph under every synthetic degradation as one labelled grid, or writes it
/// degraded as one task trains (--task).
#[derive(clap::Parser, Debug)]
#[command(version, about)]
struct Args {
    /// The photograph.
    photo: PathBuf,
    /// The picture to write (PNG or JPEG).
    out: PathBuf,
    /// The seed of the random degradations.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// A depth map for haze (16-bit PNG); default: PHOTO_depth.png beside the photo if any.
    #[arg(long)]
    depth: Option<PathBuf>,
    /// Width of the grid's tiles.
    #[arg(long = "tile", default_value_t = 232, conflicts_with = "task")]
    tile_w: usize,
    /// Write the whole photograph degraded as this task trains (denoise_25, derain, dehaze, …).
    #[arg(long)]
    task: Option<Task>,
}

fn run() -> Result<(), String> {
    let Args {
        photo,
        out,
        seed,
        depth: depth_path,
        tile_w,
        task,
    } = clap::Parser::parse();
    let full = read_image(&photo).map_err(|e| e.to_string())?;
    let depth_path = depth_path.or_else(|| beside(&photo));
    let depth = match &depth_path {
        Some(p) => Some(read_depth(p).map_err(|e| e.to_string())?),
        None => None,
    };
    if let Some(task) = task {
        let depth = depth.map(|d| d.resized(full.width, full.height));
        let degraded = task.degradation().apply_with_depth(
            &full,
            depth.as_ref(),
            &mut rng_from_seed(derive_seed(seed, &[task.label() as u64])),
        );
        write_image(&out, &degraded).map_err(|e| e.to_string())?;
        println!("wrote {} ({task}, seed {seed})", out.display());
        return Ok(());
    }
    let tile_w = tile_w.clamp(64, full.width.max(64));
    let tile_h = (full.height * tile_w / full.width).max(1);
    let clean = full.resized(tile_w, tile_h);
    let depth: Option<DepthMap> = depth.map(|d| d.resized(tile_w, tile_h));

    let haze = || Degradation::Haze(Haze::fixed(2.2, 0.9));
    let rain = || Degradation::Rain(Rain::light());
    let low = || Degradation::LowLight(LowLight::default());
    let noise = |s: f32| Degradation::Noise(GaussianNoise::new(s));
    let tiles: Vec<(&str, Option<Degradation>, bool)> = vec![
        ("clean", None, true),
        ("noise σ=15", Some(noise(15.0)), true),
        ("noise σ=25", Some(noise(25.0)), true),
        ("noise σ=50", Some(noise(50.0)), true),
        ("rain light", Some(rain()), true),
        ("rain heavy", Some(Degradation::Rain(Rain::heavy())), true),
        (
            if depth.is_some() {
                "haze depth"
            } else {
                "haze proxy"
            },
            Some(haze()),
            true,
        ),
        ("haze proxy", Some(haze()), false),
        (
            "motion blur",
            Some(Degradation::MotionBlur(MotionBlur::fixed(21.0, 30.0))),
            true,
        ),
        (
            "defocus r=5",
            Some(Degradation::Defocus(DefocusBlur::fixed(5.0))),
            true,
        ),
        ("low light", Some(low()), true),
        ("jpeg q=10", Some(Degradation::Jpeg(Jpeg::fixed(10))), true),
        (
            "low+haze",
            Some(Degradation::Composite(Composite::new([low(), haze()]))),
            true,
        ),
        (
            "haze+rain",
            Some(Degradation::Composite(Composite::new([haze(), rain()]))),
            true,
        ),
        (
            "low+haze+rain",
            Some(Degradation::Composite(Composite::new([
                low(),
                haze(),
                rain(),
            ]))),
            true,
        ),
        (
            "rain+noise σ=25",
            Some(Degradation::Composite(Composite::new([
                rain(),
                noise(25.0),
            ]))),
            true,
        ),
    ];

    let scale = if tile_w >= 200 { 2 } else { 1 };
    let label_h = 7 * scale + 6;
    let rows = tiles.len().div_ceil(COLUMNS);
    let gap = 4;
    let (cell_w, cell_h) = (tile_w + gap, tile_h + label_h + gap);
    let mut canvas = Image::filled(COLUMNS * cell_w - gap, rows * cell_h - gap, [1.0; 3]);
    for (i, (label, degradation, use_depth)) in tiles.iter().enumerate() {
        let img = match degradation {
            None => clean.clone(),
            Some(d) => {
                let mut rng = rng_from_seed(derive_seed(seed, &[i as u64]));
                let depth = if *use_depth { depth.as_ref() } else { None };
                d.apply_with_depth(&clean, depth, &mut rng)
            }
        };
        let (x0, y0) = ((i % COLUMNS) * cell_w, (i / COLUMNS) * cell_h);
        fill_rect(&mut canvas, x0, y0, tile_w, label_h, [0.1; 3]);
        draw_text(&mut canvas, x0 + 4, y0 + 3, label, scale, [1.0; 3]);
        blit(&mut canvas, &img, x0, y0 + label_h);
    }
    write_image(&out, &canvas).map_err(|e| e.to_string())?;
    println!(
        "wrote {} ({}×{}, {} tiles of {tile_w}×{tile_h}, seed {seed}, depth: {})",
        out.display(),
        canvas.width,
        canvas.height,
        tiles.len(),
        depth_path.map_or("proxy".into(), |p| p.display().to_string())
    );
    Ok(())
}

fn beside(photo: &Path) -> Option<PathBuf> {
    let stem = photo.file_stem()?.to_string_lossy().into_owned();
    let p = photo.with_file_name(format!("{stem}_depth.png"));
    p.is_file().then_some(p)
}

fn blit(canvas: &mut Image, img: &Image, x0: usize, y0: usize) {
    let (cw, ch) = (canvas.width, canvas.height);
    for c in 0..3 {
        let src = img.channel(c);
        let dst = canvas.channel_mut(c);
        for y in 0..img.height.min(ch.saturating_sub(y0)) {
            for x in 0..img.width.min(cw.saturating_sub(x0)) {
                dst[(y0 + y) * cw + x0 + x] = src[y * img.width + x];
            }
        }
    }
}

fn fill_rect(canvas: &mut Image, x0: usize, y0: usize, w: usize, h: usize, rgb: [f32; 3]) {
    let cw = canvas.width;
    for (c, v) in rgb.iter().enumerate() {
        let dst = canvas.channel_mut(c);
        for y in y0..y0 + h {
            for x in x0..(x0 + w).min(cw) {
                if let Some(p) = dst.get_mut(y * cw + x) {
                    *p = *v;
                }
            }
        }
    }
}

/// Draws `text` with the built-in 5×7 font, each font pixel `scale × scale`, one column of
/// spacing between letters. Unknown characters draw as blanks; lower case draws as upper case.
fn draw_text(canvas: &mut Image, x0: usize, y0: usize, text: &str, scale: usize, rgb: [f32; 3]) {
    let mut x = x0;
    for ch in text.chars() {
        let rows = glyph(ch.to_ascii_uppercase());
        for (gy, bits) in rows.iter().enumerate() {
            for gx in 0..5 {
                if bits & (0b10000 >> gx) != 0 {
                    fill_rect(canvas, x + gx * scale, y0 + gy * scale, scale, scale, rgb);
                }
            }
        }
        x += 6 * scale;
    }
}

/// 5×7 glyphs, one byte per row, the 5 low bits left to right.
fn glyph(c: char) -> [u8; 7] {
    match c {
        'A' => [0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'B' => [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E],
        'C' => [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E],
        'D' => [0x1E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1E],
        'E' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F],
        'F' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10],
        'G' => [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F],
        'H' => [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'I' => [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E],
        'J' => [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C],
        'K' => [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11],
        'L' => [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F],
        'M' => [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11],
        'N' => [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
        'O' => [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'P' => [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10],
        'Q' => [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D],
        'R' => [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11],
        'S' => [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E],
        'T' => [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        'U' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'V' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04],
        'W' => [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A],
        'X' => [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11],
        'Y' => [0x11, 0x11, 0x0A, 0x04, 0x04, 0x04, 0x04],
        'Z' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F],
        '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        '3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        '.' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C],
        '-' => [0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00],
        '=' => [0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00],
        '+' => [0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00],
        '(' => [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02],
        ')' => [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08],
        '/' => [0x01, 0x01, 0x02, 0x04, 0x08, 0x10, 0x10],
        ':' => [0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00],
        '_' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F],
        'σ' => [0x00, 0x00, 0x0F, 0x12, 0x11, 0x11, 0x0E],
        _ => [0; 7],
    }
}
