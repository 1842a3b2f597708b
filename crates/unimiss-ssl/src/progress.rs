//! Progress output: an indicatif bar with rate and ETA on a terminal, plain lines otherwise.
//! The ETA adds up the steps left of each modality times that modality's measured time per
//! step (3D steps cost several times a 2D step); until a modality has been timed its steps
//! are not counted, and the ETA says so.

use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::Modality;

/// A bar over the steps of a run, or nothing (`enabled = false`, e.g. non-zero ranks).
pub struct Progress {
    bar: ProgressBar,
    enabled: bool,
    /// Steps left per modality (2D, 3D).
    left: [u64; 2],
    /// Seconds and steps timed per modality (the first step of a run, which includes warm-up, is not).
    timed: [(f64, u64); 2],
    last: Option<Instant>,
}

fn idx(m: Modality) -> usize {
    match m {
        Modality::Image2d => 0,
        Modality::Volume3d => 1,
    }
}

impl Progress {
    /// `left`: the steps left in the run per modality, 2D then 3D.
    pub fn new(left: [u64; 2], enabled: bool) -> Self {
        let total = left[0] + left[1];
        let bar = if enabled { ProgressBar::new(total) } else { ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden()) };
        if let Ok(style) = ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} steps, {per_sec}, {msg}") {
            bar.set_style(style.progress_chars("=> "));
        }
        Self { bar, enabled, left, timed: [(0.0, 0); 2], last: None }
    }

    /// One step of `modality` done.
    pub fn step(&mut self, modality: Modality, msg: &str) {
        let now = Instant::now();
        let i = idx(modality);
        if let Some(t) = self.last {
            self.timed[i].0 += now.duration_since(t).as_secs_f64();
            self.timed[i].1 += 1;
        }
        self.last = Some(now);
        self.left[i] = self.left[i].saturating_sub(1);
        self.bar.set_message(format!("ETA {}, {msg}", self.eta()));
        self.bar.inc(1);
    }

    /// The time left from the per-modality step times, e.g. `3m 20s`, or
    /// `≥ 40s (3D steps not timed yet)`.
    pub fn eta(&self) -> String {
        let mut secs = 0.0;
        let mut untimed = Vec::new();
        for (i, name) in ["2D", "3D"].iter().enumerate() {
            let (s, n) = self.timed[i];
            if self.left[i] == 0 {
                continue;
            }
            if n == 0 {
                untimed.push(*name);
            } else {
                secs += self.left[i] as f64 * s / n as f64;
            }
        }
        let t = secs.round() as u64;
        let text = if t >= 60 { format!("{}m {:02}s", t / 60, t % 60) } else { format!("{t}s") };
        if untimed.is_empty() { text } else { format!("≥ {text} ({} steps not timed yet)", untimed.join(", ")) }
    }

    /// A line above the bar; with no terminal, a plain stderr line with the position and ETA.
    pub fn line(&self, msg: &str) {
        if !self.enabled {
            return;
        }
        if self.bar.is_hidden() {
            let pos = self.bar.position();
            let len = self.bar.length().unwrap_or(pos);
            eprintln!("{msg} [{pos}/{len} steps, ETA {}]", self.eta());
        } else {
            self.bar.println(msg);
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eta_counts_each_modality_at_its_own_pace() {
        let mut p = Progress::new([3, 2], false);
        p.timed = [(2.0, 2), (0.0, 0)];
        p.left = [1, 2];
        assert_eq!(p.eta(), "≥ 1s (3D steps not timed yet)");
        p.timed[1] = (8.0, 2); // 4 s per 3D step
        assert_eq!(p.eta(), "9s");
        p.left = [0, 20];
        assert_eq!(p.eta(), "1m 20s");
    }
}
