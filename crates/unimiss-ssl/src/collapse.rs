//! The collapse watch of pretraining: a warning line in `log.jsonl` (and on the console) when an
//! epoch's teacher looked collapsed at every step: uniform (entropy within 1 % of ln K) or
//! input-independent (input information below [`MIN_TEACHER_INFO`], or features' mean cosine
//! above [`MAX_FEATURE_COSINE`]). A falling loss is no health check: a teacher that gives every
//! input the same peaked distribution has a low loss too (docs/ssl.md).


use crate::Modality;
pub use crate::log::WarningRecord;

/// Below this input information (nats) the teacher's output no longer tells inputs apart.
pub const MIN_TEACHER_INFO: f64 = 0.05;
/// Above this mean cosine the teacher's features of different inputs are nearly parallel.
pub const MAX_FEATURE_COSINE: f64 = 0.95;

/// Watches the teacher over an epoch: uniform collapse when every step's per-sample entropy
/// stayed within 1 % of ln K; input-independence when every step's input information stayed
/// below [`MIN_TEACHER_INFO`] or its feature mean cosine above [`MAX_FEATURE_COSINE`] (steps
/// with a batch of one, which measure neither, are not counted for these).
#[derive(Debug, Clone, PartialEq)]
pub struct CollapseWatch {
    ln_k: f64,
    steps: usize,
    near_uniform: usize,
    min_entropy: f64,
    /// Steps that measured information and cosine, and how many of them looked collapsed.
    measured: usize,
    no_info: usize,
    parallel: usize,
}

impl CollapseWatch {
    /// A watch for a head with `out_dim` = K outputs.
    pub fn new(out_dim: usize) -> Self {
        Self { ln_k: (out_dim.max(1) as f64).ln(), steps: 0, near_uniform: 0, min_entropy: f64::INFINITY, measured: 0, no_info: 0, parallel: 0 }
    }

    /// One step's teacher statistics.
    pub fn observe(&mut self, r: &crate::log::StepRecord) {
        self.steps += 1;
        self.near_uniform += usize::from(r.teacher_entropy >= 0.99 * self.ln_k);
        self.min_entropy = self.min_entropy.min(r.teacher_entropy);
        if let Some(c) = r.feature_cosine {
            self.measured += 1;
            self.no_info += usize::from(r.teacher_info < MIN_TEACHER_INFO);
            self.parallel += usize::from(c > MAX_FEATURE_COSINE);
        }
    }

    /// At the end of an epoch: the warning if the whole epoch was near-uniform or
    /// input-independent; resets the watch.
    pub fn finish(&mut self, epoch: usize, step: u64, modality: Modality) -> Option<WarningRecord> {
        let collapsed = self.steps > 0 && self.near_uniform == self.steps;
        let all = |n: usize| self.measured > 0 && n == self.measured;
        let independent = all(self.no_info) || all(self.parallel);
        let warning = |message: String| WarningRecord { epoch, step, modality, message };
        let rec = if collapsed {
            Some(warning(format!(
                "teacher output collapsed to uniform: its per-sample entropy stayed within 1% of ln K = {:.3} for all {} steps of epoch {} ({}; lowest {:.3}); there is nothing to distil (see docs/ssl.md, collapse)",
                self.ln_k,
                self.steps,
                epoch + 1,
                modality.name(),
                self.min_entropy
            )))
        } else if independent {
            Some(warning(format!(
                "teacher output no longer depends on the input: in all {} steps of epoch {} ({}) its input information stayed below {MIN_TEACHER_INFO} nats or its features' mean cosine above {MAX_FEATURE_COSINE}; the loss may still fall (see docs/ssl.md, collapse; configs/small-batch.toml)",
                self.measured,
                epoch + 1,
                modality.name()
            )))
        } else {
            None
        };
        *self = Self { ln_k: self.ln_k, ..Self::new(1) };
        rec
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collapse_watch_flags_only_a_whole_uniform_epoch() {
        let ln_k = 256f64.ln();
        let mut w = CollapseWatch::new(256);
        for h in [0.995, 0.999, 1.0] {
            w.observe(&step(h * ln_k, 0.3, Some(0.5)));
        }
        let r = w.finish(3, 30, Modality::Image2d);
        assert!(r.as_ref().is_some_and(|r| r.epoch == 3 && r.message.contains("epoch 4")), "{r:?}");
        // one step below 0.99 ln K: no warning; the watch was reset by finish
        for h in [0.995, 0.98, 1.0] {
            w.observe(&step(h * ln_k, 0.3, Some(0.5)));
        }
        assert_eq!(w.finish(4, 33, Modality::Volume3d), None);
        // an empty epoch is no evidence
        assert_eq!(w.finish(5, 33, Modality::Volume3d), None);
    }

    fn step(teacher_entropy: f64, teacher_info: f64, feature_cosine: Option<f64>) -> crate::log::StepRecord {
        crate::log::StepRecord {
            step: 1,
            epoch: 0,
            batch: 0,
            modality: Modality::Image2d,
            loss: 1.0,
            terms: Default::default(),
            lr: 0.0,
            wd: 0.0,
            momentum: 0.0,
            teacher_temp: 0.04,
            samples_per_s: 1.0,
            teacher_entropy,
            teacher_mean_entropy: teacher_entropy + teacher_info,
            teacher_info,
            feature_cosine,
            rss_mb: 0.0,
        }
    }

    /// Input-independence: every measured step below 0.05 nats of information, or above 0.95
    /// cosine, warns even though the entropy is far from ln K; one healthy step, or steps that
    /// measured nothing (batch of one), do not.
    #[test]
    fn collapse_watch_flags_an_input_independent_epoch() {
        let mut w = CollapseWatch::new(1024);
        for (i, c) in [(0.01, 0.5), (0.04, 0.6)] {
            w.observe(&step(3.0, i, Some(c)));
        }
        let r = w.finish(0, 2, Modality::Image2d);
        assert!(r.as_ref().is_some_and(|r| r.message.contains("no longer depends on the input")), "{r:?}");
        for (i, c) in [(0.3, 0.97), (0.4, 0.99)] {
            w.observe(&step(3.0, i, Some(c)));
        }
        assert!(w.finish(1, 4, Modality::Image2d).is_some(), "parallel features");
        for (i, c) in [(0.01, 0.99), (0.2, 0.5)] {
            w.observe(&step(3.0, i, Some(c)));
        }
        assert_eq!(w.finish(2, 6, Modality::Image2d), None, "one healthy step");
        w.observe(&step(3.0, 0.0, None));
        assert_eq!(w.finish(3, 7, Modality::Volume3d), None, "nothing measured");
    }
}
