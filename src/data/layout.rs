//! Paired dataset layouts on disk, checked before training starts.
//!
//! Each function scans a folder, matches degraded and clean files by the layout's naming rule
//! and returns the [`Entry`]s, or an [`Error::Dataset`] listing **every** problem found — each
//! missing, unmatched or misnamed file by name — not just the first.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use super::dataset::{Entry, file_name, is_image_name};
use crate::degrade::Task;
use crate::{Error, Result};

struct Report {
    what: String,
    problems: Vec<String>,
}

impl Report {
    fn new(what: String) -> Self {
        Self {
            what,
            problems: Vec::new(),
        }
    }

    fn add(&mut self, p: String) {
        self.problems.push(p);
    }

    fn finish(self, entries: Vec<Entry>) -> Result<Vec<Entry>> {
        if self.problems.is_empty() && entries.is_empty() {
            return Err(Error::Dataset(format!(
                "{}: no image pairs found",
                self.what
            )));
        }
        if self.problems.is_empty() {
            return Ok(entries);
        }
        let mut msg = format!("{}: {} problem(s):", self.what, self.problems.len());
        for p in &self.problems {
            msg.push_str("\n  - ");
            msg.push_str(p);
        }
        Err(Error::Dataset(msg))
    }

    /// Image file names directly in `dir` (sorted); a missing directory is a problem.
    fn images_in(&mut self, root: &Path, rel: &str) -> Option<Vec<String>> {
        let dir = root.join(rel);
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) => {
                self.add(format!("{rel}/: missing or unreadable directory ({e})"));
                return None;
            }
        };
        let mut names: Vec<String> = rd
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        names.sort();
        for n in names.iter().filter(|n| !is_image_name(n)) {
            self.add(format!("{rel}/{n}: not a .png/.jpg/.jpeg file"));
        }
        names.retain(|n| is_image_name(n));
        if names.is_empty() {
            self.add(format!("{rel}/: no images"));
        }
        Some(names)
    }
}

/// Rain100L (and any same-name pair folder): `ROOT/input/NAME` degraded, `ROOT/target/NAME`
/// clean, matched by identical file names. Reports every input without a target and every
/// target without an input. Entries get `task`.
pub fn same_name_pairs(root: &Path, degraded: &str, clean: &str, task: Task) -> Result<Vec<Entry>> {
    let mut report = Report::new(format!("paired folders at {}", root.display()));
    let d = report.images_in(root, degraded);
    let c = report.images_in(root, clean);
    let mut entries = Vec::new();
    if let (Some(d), Some(c)) = (d, c) {
        let cset: BTreeSet<&String> = c.iter().collect();
        let dset: BTreeSet<&String> = d.iter().collect();
        for n in &d {
            if cset.contains(n) {
                entries.push(Entry::pair(
                    root.join(degraded).join(n),
                    root.join(clean).join(n),
                    task,
                ));
            } else {
                report.add(format!("{degraded}/{n}: no matching {clean}/{n}"));
            }
        }
        for n in c.iter().filter(|n| !dset.contains(n)) {
            report.add(format!("{clean}/{n}: no matching {degraded}/{n}"));
        }
    }
    report.finish(entries)
}

/// Rain100L: `ROOT/input/` + `ROOT/target/`, identical names, task [`Task::Derain`].
pub fn rain100l(root: &Path) -> Result<Vec<Entry>> {
    same_name_pairs(root, "input", "target", Task::Derain)
}

/// SOTS outdoor: hazy `ROOT/hazy/NAME_A_BETA.ext` (e.g. `0001_0.8_0.2.jpg`) with clean
/// `ROOT/gt/NAME.png` (or `.jpg`/`.jpeg`; `.png` preferred), task [`Task::Dehaze`]. PromptIR's
/// copy names the folders `input/` and `target/`: used when `hazy/` does not exist.
///
/// Reports every hazy file whose name lacks the `_A_BETA` part, every hazy file without a clean
/// image, and every clean image no hazy file refers to.
pub fn sots_outdoor(root: &Path) -> Result<Vec<Entry>> {
    let (hazy_dir, gt_dir) = if root.join("hazy").is_dir() || !root.join("input").is_dir() {
        ("hazy", "gt")
    } else {
        ("input", "target")
    };
    let mut report = Report::new(format!("SOTS outdoor at {}", root.display()));
    let hazy = report.images_in(root, hazy_dir);
    let gt = report.images_in(root, gt_dir);
    let mut entries = Vec::new();
    if let (Some(hazy), Some(gt)) = (hazy, gt) {
        // stem -> file name, .png preferred
        let mut by_stem: BTreeMap<String, String> = BTreeMap::new();
        for g in &gt {
            let stem = Path::new(g)
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let better = g.to_lowercase().ends_with(".png");
            if better || !by_stem.contains_key(&stem) {
                by_stem.insert(stem, g.clone());
            }
        }
        let mut used = BTreeSet::new();
        for h in &hazy {
            let stem = Path::new(h)
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let parts: Vec<&str> = stem.split('_').collect();
            if parts.len() < 3 || parts[0].is_empty() {
                report.add(format!(
                    "{hazy_dir}/{h}: name does not follow NAME_A_BETA.ext (e.g. 0001_0.8_0.2.jpg)"
                ));
                continue;
            }
            match by_stem.get(parts[0]) {
                Some(g) => {
                    used.insert(g.clone());
                    entries.push(Entry::pair(
                        root.join(hazy_dir).join(h),
                        root.join(gt_dir).join(g),
                        Task::Dehaze,
                    ));
                }
                None => report.add(format!(
                    "{hazy_dir}/{h}: no clean image {gt_dir}/{}.png",
                    parts[0]
                )),
            }
        }
        for g in by_stem.values().filter(|g| !used.contains(*g)) {
            report.add(format!("{gt_dir}/{g}: no hazy image refers to it"));
        }
    }
    report.finish(entries)
}

/// PromptIR's training layout under `ROOT` (its `data/Train/`), for the tasks in `tasks`
/// (any of the noise tasks, [`Task::Derain`], [`Task::Dehaze`]):
///
/// - `Denoise/*.png|jpg` — clean images, noise added on the fly, one entry per image and noise
///   task;
/// - `Derain/rainy/rain-N.png` with clean `Derain/gt/norain-N.png` (the clean name is
///   `norain-` + everything after `rain-`, extension included);
/// - `Dehaze/synthetic/<part>/NAME_A_BETA.ext` (any folder depth) with clean
///   `Dehaze/original/NAME.ext` (`NAME` = the hazy name up to its first `_`, same extension).
///
/// With `lists = Some(dir)` (PromptIR's `data_dir/`) only the files named in
/// `dir/noisy/denoise.txt` (file names in `Denoise/`), `dir/rainy/rainTrain.txt` (paths under
/// `Derain/`) and `dir/hazy/hazy_outside.txt` (paths under `Dehaze/`) are used, and every
/// listed file that is missing is reported. Without lists, every file found is used and
/// clean files no degraded file refers to are reported too. The entries are not repeated:
/// pass them through [`balance`](super::balance) with [`promptir_weights`](super::promptir_weights).
pub fn promptir_train(root: &Path, tasks: &[Task], lists: Option<&Path>) -> Result<Vec<Entry>> {
    let mut report = Report::new(format!("PromptIR training layout at {}", root.display()));
    let mut entries = Vec::new();
    let read_list = |report: &mut Report, rel: &str| -> Option<Vec<String>> {
        let dir = lists?;
        let p = dir.join(rel);
        match fs::read_to_string(&p) {
            Ok(s) => Some(
                s.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(String::from)
                    .collect(),
            ),
            Err(e) => {
                report.add(format!("{}: cannot read the file list ({e})", p.display()));
                Some(Vec::new())
            }
        }
    };

    let noise: Vec<Task> = tasks
        .iter()
        .copied()
        .filter(|t| {
            matches!(
                t,
                Task::Denoise15 | Task::Denoise25 | Task::Denoise50 | Task::DenoiseBlind
            )
        })
        .collect();
    if !noise.is_empty()
        && let Some(found) = report.images_in(root, "Denoise")
    {
        let names = match read_list(&mut report, "noisy/denoise.txt") {
            Some(list) => {
                let have: BTreeSet<&String> = found.iter().collect();
                for n in list.iter().filter(|n| !have.contains(n)) {
                    report.add(format!(
                        "Denoise/{n}: listed in noisy/denoise.txt but missing"
                    ));
                }
                list.into_iter().filter(|n| have.contains(n)).collect()
            }
            None => found,
        };
        for &t in &noise {
            for n in &names {
                entries.push(Entry::synthetic(root.join("Denoise").join(n), None, t));
            }
        }
    }

    if tasks.contains(&Task::Derain) {
        let derain = root.join("Derain");
        let rainy: Vec<String> = match read_list(&mut report, "rainy/rainTrain.txt") {
            Some(list) => list,
            None => report
                .images_in(&derain, "rainy")
                .unwrap_or_default()
                .into_iter()
                .map(|n| format!("rainy/{n}"))
                .collect(),
        };
        let mut used = BTreeSet::new();
        for rel in &rainy {
            let path = derain.join(rel);
            let name = file_name(&path);
            if lists.is_some() && !path.is_file() {
                report.add(format!(
                    "Derain/{rel}: listed in rainy/rainTrain.txt but missing"
                ));
                continue;
            }
            let Some(idx) = name.strip_prefix("rain-") else {
                report.add(format!("Derain/{rel}: name does not follow rain-N.ext"));
                continue;
            };
            let gt_name = format!("norain-{idx}");
            let gt = derain.join("gt").join(&gt_name);
            if gt.is_file() {
                used.insert(gt_name);
                entries.push(Entry::pair(path, gt, Task::Derain));
            } else {
                report.add(format!("Derain/{rel}: no clean image Derain/gt/{gt_name}"));
            }
        }
        if lists.is_none() {
            for g in report.images_in(&derain, "gt").unwrap_or_default() {
                if !used.contains(&g) {
                    report.add(format!("Derain/gt/{g}: no rainy image refers to it"));
                }
            }
        }
    }

    if tasks.contains(&Task::Dehaze) {
        let dehaze = root.join("Dehaze");
        let hazy: Vec<String> = match read_list(&mut report, "hazy/hazy_outside.txt") {
            Some(list) => list,
            None => {
                let mut found = Vec::new();
                let synth = dehaze.join("synthetic");
                if synth.is_dir() {
                    walk(&synth, &mut found);
                } else {
                    report.add("Dehaze/synthetic/: missing directory".to_string());
                }
                found.sort();
                found
                    .into_iter()
                    .filter_map(|p| {
                        p.strip_prefix(&dehaze)
                            .ok()
                            .map(|r| r.to_string_lossy().into_owned())
                    })
                    .collect()
            }
        };
        let mut used = BTreeSet::new();
        for rel in &hazy {
            let path = dehaze.join(rel);
            let name = file_name(&path);
            if lists.is_some() && !path.is_file() {
                report.add(format!(
                    "Dehaze/{rel}: listed in hazy/hazy_outside.txt but missing"
                ));
                continue;
            }
            let ext = Path::new(&name)
                .extension()
                .map(|e| e.to_string_lossy().into_owned());
            let stem = name.split('_').next().unwrap_or_default();
            let (Some(ext), true) = (ext, name.contains('_') && !stem.is_empty()) else {
                report.add(format!(
                    "Dehaze/{rel}: name does not follow NAME_A_BETA.ext"
                ));
                continue;
            };
            let gt_name = format!("{stem}.{ext}");
            let gt = dehaze.join("original").join(&gt_name);
            if gt.is_file() {
                used.insert(gt_name);
                entries.push(Entry::pair(path, gt, Task::Dehaze));
            } else {
                report.add(format!(
                    "Dehaze/{rel}: no clean image Dehaze/original/{gt_name}"
                ));
            }
        }
        if lists.is_none() {
            for g in report.images_in(&dehaze, "original").unwrap_or_default() {
                if !used.contains(&g) {
                    report.add(format!("Dehaze/original/{g}: no hazy image refers to it"));
                }
            }
        }
    }
    report.finish(entries)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.filter_map(|e| e.ok()) {
        let p = e.path();
        if file_name(&p).starts_with('.') {
            continue;
        }
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}
