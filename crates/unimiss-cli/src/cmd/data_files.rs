//! Shared helpers of the data verbs: input discovery and progress lines.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;

/// `input` itself if it is a file, else every `.nii`/`.nii.gz` under it (sorted).
pub fn nifti_inputs(input: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if input.is_file() {
        return Ok(vec![input.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut stack = vec![input.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?;
        for e in entries {
            let p = e.with_context(|| format!("reading {}", dir.display()))?.path();
            if p.is_dir() {
                stack.push(p);
            } else if unimiss_data::Modality::from_path(&p) == unimiss_data::Modality::Volume3d {
                out.push(p);
            }
        }
    }
    anyhow::ensure!(!out.is_empty(), "no .nii or .nii.gz file under {}", input.display());
    out.sort();
    Ok(out)
}

/// Periodic progress lines on stderr with rate and ETA.
pub struct Progress {
    what: &'static str,
    total: usize,
    done: usize,
    start: Instant,
}

impl Progress {
    pub fn new(what: &'static str, total: usize) -> Self {
        Progress { what, total, done: 0, start: Instant::now() }
    }

    pub fn step(&mut self, msg: &str) {
        self.done += 1;
        let t = self.start.elapsed().as_secs_f64();
        let rate = self.done as f64 / t.max(1e-9);
        let eta = (self.total - self.done) as f64 / rate.max(1e-9);
        eprintln!(
            "[{}] {}/{} ({:.2} files/s, ETA {:.0}s) {msg}",
            self.what, self.done, self.total, rate, eta
        );
    }

    pub fn finish(&self) {
        eprintln!("[{}] done: {} files in {:.1}s", self.what, self.done, self.start.elapsed().as_secs_f64());
    }
}

