//! Schedules of the official code (`utils.cosine_scheduler`, `TrainLoss.teacher_temp_schedule`)
//! and the official iteration-index arithmetic (reference §3.4, §7.7, §8.2).

pub use unimiss_runtime::schedule::{cosine_scheduler, linspace, poly};

use crate::error::{Result, SslError};
use crate::{Modality, PerModality};

/// `TrainLoss.teacher_temp_schedule`: linspace(warmup, final, warmup_epochs) then `final`,
/// `nepochs` values in all.
pub fn teacher_temp_schedule(
    warmup_teacher_temp: f64,
    teacher_temp: f64,
    warmup_epochs: usize,
    nepochs: usize,
) -> Vec<f64> {
    let mut v = linspace(warmup_teacher_temp, teacher_temp, warmup_epochs);
    v.extend(std::iter::repeat_n(teacher_temp, nepochs.saturating_sub(warmup_epochs)));
    v
}

/// Peak learning rate after the linear scaling rule: `lr · global_batch / 256`.
pub fn scaled_lr(lr: f64, batch_per_device: usize, world_size: usize) -> f64 {
    lr * (batch_per_device * world_size) as f64 / 256.0
}

/// The hyper-parameters read from the schedules at one iteration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScheduleValues {
    pub lr: f64,
    pub wd: f64,
    pub momentum: f64,
}

/// How schedules are laid out and indexed.
#[derive(Debug, Clone)]
pub enum Indexing {
    /// Official: arrays of `epochs·N3D` values, indexed by `N_cur·epoch + i` where `N_cur` is the
    /// *number of samples* of the current modality's dataset (reference §3.4). Past the end is an
    /// error, as the official IndexError.
    Official(PerModality<usize>),
    /// Fix §8.2: one set of arrays per modality with `niter_per_ep` = batches per epoch of that
    /// modality, indexed by `batches·epoch + i` (per-iteration schedules, as UniMiSS+).
    PerBatch(PerModality<usize>),
}

/// The lr/wd/momentum schedules of a run.
#[derive(Debug, Clone)]
pub struct Schedules {
    indexing: Indexing,
    /// `[lr, wd, momentum]` arrays per modality (official: both are the one set of `N3D` arrays).
    arrays: PerModality<[Vec<f64>; 3]>,
}

/// The schedule parameters (reference §3.1).
#[derive(Debug, Clone, Copy)]
pub struct ScheduleParams {
    pub epochs: usize,
    pub peak_lr: f64,
    pub min_lr: f64,
    pub warmup_epochs: usize,
    pub weight_decay: f64,
    pub weight_decay_end: f64,
    pub momentum_teacher: f64,
    /// Where the momentum's cosine ends (official 1.0).
    pub momentum_teacher_end: f64,
}

impl Schedules {
    /// Build the three schedules.
    pub fn new(p: &ScheduleParams, indexing: Indexing) -> Self {
        let build = |niter: usize| {
            [
                cosine_scheduler(p.peak_lr, p.min_lr, p.epochs, niter, p.warmup_epochs, 0.0),
                cosine_scheduler(p.weight_decay, p.weight_decay_end, p.epochs, niter, 0, 0.0),
                cosine_scheduler(p.momentum_teacher, p.momentum_teacher_end, p.epochs, niter, 0, 0.0),
            ]
        };
        let arrays = match &indexing {
            Indexing::Official(n) => PerModality::splat(build(n[Modality::Volume3d])),
            Indexing::PerBatch(batches) => batches.map(|&b| build(b)),
        };
        Self { indexing, arrays }
    }

    /// The per-epoch stride of each modality's index: samples (official) or batches (fix §8.2).
    fn per_epoch(&self) -> &PerModality<usize> {
        match &self.indexing {
            Indexing::Official(n) | Indexing::PerBatch(n) => n,
        }
    }

    /// The index into the arrays for batch `i` of `epoch` (official: `N_cur·epoch + i`).
    pub fn index(&self, modality: Modality, epoch: usize, i: usize) -> usize {
        self.per_epoch()[modality] * epoch + i
    }

    /// lr, wd and momentum for batch `i` of `epoch`, or [`SslError::ScheduleOverflow`].
    pub fn at(&self, modality: Modality, epoch: usize, i: usize) -> Result<ScheduleValues> {
        let index = self.index(modality, epoch, i);
        let arr = &self.arrays[modality];
        let len = arr[0].len();
        if index >= len {
            let n = self.per_epoch();
            let (n_cur, n_3d) = (n[modality], n[Modality::Volume3d]);
            return Err(SslError::ScheduleOverflow {
                index,
                len,
                epoch,
                modality: modality.name(),
                n_cur,
                n_3d,
            });
        }
        Ok(ScheduleValues { lr: arr[0][index], wd: arr[1][index], momentum: arr[2][index] })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linspace_matches_numpy_endpoints() {
        assert_eq!(linspace(0.0, 1.0, 5), vec![0.0, 0.25, 0.5, 0.75, 1.0]);
        assert_eq!(linspace(2.0, 3.0, 1), vec![2.0]);
        assert!(linspace(2.0, 3.0, 0).is_empty());
    }

    #[test]
    fn official_index_overflows_like_the_reference() {
        let p = ScheduleParams {
            epochs: 4,
            peak_lr: 1e-3,
            min_lr: 1e-6,
            warmup_epochs: 1,
            weight_decay: 0.04,
            weight_decay_end: 0.4,
            momentum_teacher: 0.996,
            momentum_teacher_end: 1.0,
        };
        // 2D dataset larger than 3D: epoch 3 of 2D reads 10·3 = 30 >= 4·6 = 24.
        let s = Schedules::new(&p, Indexing::Official(PerModality { image2d: 10, volume3d: 6 }));
        assert!(s.at(Modality::Image2d, 2, 0).is_ok());
        let err = s.at(Modality::Image2d, 3, 0);
        assert!(matches!(err, Err(SslError::ScheduleOverflow { index: 30, len: 24, .. })));
        let fixed = Schedules::new(&p, Indexing::PerBatch(PerModality { image2d: 5, volume3d: 3 }));
        let v = fixed.at(Modality::Image2d, 3, 4);
        assert!(v.is_ok());
        assert_eq!(fixed.index(Modality::Volume3d, 3, 2), 11);
    }
}
