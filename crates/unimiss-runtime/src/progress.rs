//! Progress output: an indicatif bar with rate and ETA on a terminal, plain lines otherwise.
//! The ETA adds up the steps left of each modality times that modality's measured time per
//! step (3D steps cost several times a 2D step); until a modality has been timed its steps
//! are not counted, and the ETA says so.

use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use unimiss_ops::{Modality, PerModality};

/// A bar over the steps of a run, or nothing (`enabled = false`, e.g. non-zero ranks); with a
/// line sink ([`Progress::lines`]) no bar, and every line goes to the sink.
pub struct Progress<'a> {
    bar: ProgressBar,
    enabled: bool,
    /// Steps left per modality.
    left: PerModality<u64>,
    /// Seconds and steps timed per modality (the first step of a run, which includes warm-up, is not).
    timed: PerModality<(f64, u64)>,
    last: Option<Instant>,
    sink: Option<Box<dyn FnMut(&str) + 'a>>,
}

impl<'a> Progress<'a> {
    /// `left`: the steps left in the run per modality.
    pub fn new(left: PerModality<u64>, enabled: bool) -> Self {
        let total = left.values().sum();
        let bar = if enabled { ProgressBar::new(total) } else { ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden()) };
        if let Ok(style) = ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} steps, {per_sec}, {msg}") {
            bar.set_style(style.progress_chars("=> "));
        }
        Self { bar, enabled, left, timed: PerModality::default(), last: None, sink: None }
    }

    /// No bar: every line goes to `sink` (e.g. a caller that prefixes and prints them, or a
    /// test that drops them).
    pub fn lines(left: PerModality<u64>, sink: impl FnMut(&str) + 'a) -> Self {
        Self { sink: Some(Box::new(sink)), ..Self::new(left, false) }
    }

    /// One step of `modality` done.
    pub fn step(&mut self, modality: Modality, msg: &str) {
        let now = Instant::now();
        if let Some(t) = self.last {
            self.timed[modality].0 += now.duration_since(t).as_secs_f64();
            self.timed[modality].1 += 1;
        }
        self.last = Some(now);
        self.left[modality] = self.left[modality].saturating_sub(1);
        self.bar.set_message(format!("ETA {}, {msg}", self.eta()));
        self.bar.inc(1);
    }

    /// The time left from the per-modality step times, e.g. `3m 20s`, or
    /// `≥ 40s (3D steps not timed yet)`.
    pub fn eta(&self) -> String {
        let mut secs = 0.0;
        let mut untimed = Vec::new();
        for (m, &(s, n)) in self.timed.iter() {
            if self.left[m] == 0 {
                continue;
            }
            if n == 0 {
                untimed.push(m.tag());
            } else {
                secs += self.left[m] as f64 * s / n as f64;
            }
        }
        let t = secs.round() as u64;
        let text = if t >= 60 { format!("{}m {:02}s", t / 60, t % 60) } else { format!("{t}s") };
        if untimed.is_empty() { text } else { format!("≥ {text} ({} steps not timed yet)", untimed.join(", ")) }
    }

    /// A line above the bar; with no terminal, a plain stderr line with the position and ETA.
    pub fn line(&mut self, msg: &str) {
        if let Some(sink) = self.sink.as_mut() {
            sink(msg);
            return;
        }
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
        let per = |image2d, volume3d| PerModality { image2d, volume3d };
        let mut p = Progress::new(per(3, 2), false);
        p.timed = PerModality { image2d: (2.0, 2), volume3d: (0.0, 0) };
        p.left = per(1, 2);
        assert_eq!(p.eta(), "≥ 1s (3D steps not timed yet)");
        p.timed[Modality::Volume3d] = (8.0, 2); // 4 s per 3D step
        assert_eq!(p.eta(), "9s");
        p.left = per(0, 20);
        assert_eq!(p.eta(), "1m 20s");
    }
}
