//! Running means of an epoch.

use super::*;

/// Running means of one epoch.
#[derive(Default)]
pub(super) struct EpochStats {
    steps: usize,
    loss: f64,
    terms: BTreeMap<String, f64>,
    entropy: f64,
    mean_entropy: f64,
    info: f64,
    cosine: f64,
    cosine_steps: usize,
}

impl EpochStats {
    pub(super) fn add(&mut self, r: &StepRecord) {
        self.steps += 1;
        self.loss += r.loss;
        for (k, v) in &r.terms {
            *self.terms.entry(k.clone()).or_default() += v;
        }
        self.entropy += r.teacher_entropy;
        self.mean_entropy += r.teacher_mean_entropy;
        self.info += r.teacher_info;
        if let Some(c) = r.feature_cosine {
            self.cosine += c;
            self.cosine_steps += 1;
        }
    }

    pub(super) fn finish(self, epoch: usize, step: u64, m: Modality, seconds: f64, loss: &DinoLoss, skipped: Vec<String>) -> Result<EpochRecord> {
        let n = self.steps.max(1) as f64;
        let center_norm = f64::from(loss.center().sqr()?.sum_all()?.sqrt()?.to_scalar::<f32>()?);
        Ok(EpochRecord {
            epoch,
            step,
            modality: m,
            steps: self.steps,
            loss_mean: self.loss / n,
            terms_mean: self.terms.into_iter().map(|(k, v)| (k, v / n)).collect(),
            teacher_entropy: self.entropy / n,
            teacher_mean_entropy: self.mean_entropy / n,
            teacher_info: self.info / n,
            feature_cosine: (self.cosine_steps > 0).then(|| self.cosine / self.cosine_steps as f64),
            center_norm,
            seconds,
            skipped,
        })
    }
}
