//! Progress output: an indicatif bar with rate and ETA on a terminal, plain lines otherwise.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar over the steps of a run, or nothing (`enabled = false`, e.g. non-zero ranks).
pub struct Progress {
    bar: ProgressBar,
    enabled: bool,
}

impl Progress {
    pub fn new(total: u64, enabled: bool) -> Self {
        let bar = if enabled { ProgressBar::new(total) } else { ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden()) };
        if let Ok(style) = ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {pos}/{len} steps, {per_sec}, ETA {eta} {msg}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        Self { bar, enabled }
    }

    /// One step done.
    pub fn step(&self, msg: &str) {
        self.bar.set_message(msg.to_string());
        self.bar.inc(1);
    }

    /// A line above the bar; with no terminal, a plain stderr line with rate and ETA.
    pub fn line(&self, msg: &str) {
        if !self.enabled {
            return;
        }
        if self.bar.is_hidden() {
            let pos = self.bar.position();
            let len = self.bar.length().unwrap_or(pos);
            let rate = pos as f64 / self.bar.elapsed().as_secs_f64().max(1e-9);
            let eta = if rate > 0.0 { (len.saturating_sub(pos)) as f64 / rate } else { 0.0 };
            eprintln!("{msg} [{pos}/{len} steps, {rate:.2} steps/s, ETA {eta:.0}s]");
        } else {
            self.bar.println(msg);
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
