//! Pretraining as a [`Learner`] of the runtime's one loop: the epoch's modality and loader, the
//! §3.5 step, and the epoch's end (its record, the collapse watch, the kNN monitor, `loss.png`).

use super::*;
use crate::runloop::{Flow, Learner, Stepped};

impl Learner for Trainer {
    type Error = SslError;
    type Record = Record;

    fn modality(&self, epoch: usize) -> Modality {
        modality_of(epoch, self.cfg.optim.interval)
    }

    fn batches_in(&self, epoch: usize) -> usize {
        self.loaders[self.modality(epoch)].batches_per_epoch()
    }

    fn begin_epoch(&mut self, epoch: usize, from: usize, _out: &mut RunOutput) -> Result<()> {
        self.stats = EpochStats::default();
        if from > 0 && self.is_writer() {
            // Resumed mid-epoch: the epoch summary covers the steps run before the stop too.
            let (steps, _) = crate::log::read(&self.run_dir.join("log.jsonl"))?;
            for s in steps.iter().filter(|s| s.epoch == epoch) {
                self.stats.add(s);
                self.watch.observe(s);
            }
        }
        self.epoch_iter = Some(self.loaders[self.modality(epoch)].epoch(epoch, from));
        Ok(())
    }

    fn step(&mut self, pos: Position) -> Option<Result<Stepped<Record>>> {
        let pair = self.epoch_iter.as_mut()?.next()?;
        self.pos = pos;
        let modality = self.modality(pos.epoch);
        let rec = pair.map_err(SslError::from).and_then(|p| self.train_step(modality, &p.views, p.indices.len()));
        Some(rec.map(|rec| {
            self.stats.add(&rec);
            self.watch.observe(&rec);
            Stepped { loss: rec.loss, record: Record::Step(rec) }
        }))
    }

    fn end_epoch(&mut self, epoch: usize, pos: Position, seconds: f64, out: &mut RunOutput) -> Result<Flow> {
        self.pos = pos;
        let modality = self.modality(epoch);
        let skipped: Vec<String> = self
            .epoch_iter
            .take()
            .map(|it| it.skipped().into_iter().map(|(p, why)| format!("{}: {why}", p.display())).collect())
            .unwrap_or_default();
        let stats = std::mem::take(&mut self.stats);
        let rec = stats.finish(epoch, pos.step, modality, seconds, &self.engine.loss, skipped)?;
        out.line(&format!(
            "epoch {}/{} {}: loss {:.4} over {} steps, teacher entropy {:.3}, centre norm {:.3}, {:.1}s",
            epoch + 1,
            self.cfg.optim.epochs,
            modality,
            rec.loss_mean,
            rec.steps,
            rec.teacher_entropy,
            rec.center_norm,
            rec.seconds
        ));
        out.write(&Record::Epoch(rec))?;
        if let Some(w) = self.watch.finish(epoch, pos.step, modality) {
            out.line(&format!("warning: {}", w.message));
            out.write(&Record::Warning(w))?;
        }
        if self.is_writer() {
            if self.cfg.eval.due(epoch, self.cfg.optim.epochs) {
                self.knn_monitor(epoch, out)?;
            }
            self.draw_curves(out); // the curves so far, so an interrupted run still has them
        }
        Ok(Flow::Continue)
    }

    fn parameters(&self) -> &BTreeMap<String, Var> {
        &self.engine.student_vars
    }

    fn checkpoint(&mut self, pos: Position) -> Result<PathBuf> {
        self.pos = pos;
        self.save_checkpoint()
    }
}
