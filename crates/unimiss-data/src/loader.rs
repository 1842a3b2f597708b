//! `PairLoader`: rayon workers decode and augment ahead of the trainer into a bounded queue.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::mpsc::{Receiver, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use candle::{Device, Tensor};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::error::{DataError, Result};
use crate::manifest::Sample;
use crate::pipeline::Pipeline;

/// What to do with a sample that cannot be read or augmented.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnBadSample {
    /// Stop the epoch with the error.
    #[default]
    Fail,
    /// Leave the sample out of its batch, record it, and go on.
    Skip,
}

impl FromStr for OnBadSample {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "fail" => Ok(OnBadSample::Fail),
            "skip" => Ok(OnBadSample::Skip),
            o => Err(format!("on-bad-sample must be fail or skip, not {o:?}")),
        }
    }
}

/// Loader settings. `Default` is the official configuration (224 and [16, 96, 96]).
#[derive(Clone, Debug, PartialEq)]
pub struct LoaderConfig {
    pub batch_size: usize,
    pub seed: u64,
    /// Worker threads decoding and augmenting (a dedicated rayon pool).
    pub threads: usize,
    /// Batches kept ready ahead of the consumer.
    pub prefetch: usize,
    pub on_bad_sample: OnBadSample,
    pub size_2d: usize,
    /// (D, H, W).
    pub size_3d: [usize; 3],
}

impl Default for LoaderConfig {
    fn default() -> Self {
        LoaderConfig {
            batch_size: 2,
            seed: 0,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            prefetch: 2,
            on_bad_sample: OnBadSample::Fail,
            size_2d: 224,
            size_3d: [16, 96, 96],
        }
    }
}

/// One batch: both augmented views of the same samples.
#[derive(Debug)]
pub struct ViewPair {
    /// `[B, 3, S, S]` f32 in [0, 1] (2D) or `[B, 1, D, H, W]` (3D), on the CPU.
    pub views: [Tensor; 2],
    /// Dataset indices (positions in the loader's sample list) of the batch's samples. With
    /// `OnBadSample::Skip` a batch may hold fewer than `batch_size` samples.
    pub indices: Vec<usize>,
}

/// Two augmented views per sample, one modality, per-epoch seeded shuffle, drop_last.
pub struct PairLoader {
    samples: Arc<Vec<Sample>>,
    cfg: LoaderConfig,
    pipeline: Pipeline,
    pool: Arc<rayon::ThreadPool>,
}

impl PairLoader {
    /// Builds a loader over samples that must all have the same modality.
    pub fn new(samples: Vec<Sample>, cfg: LoaderConfig) -> Result<Self> {
        let first = samples
            .first()
            .ok_or_else(|| DataError::Config("the loader got no samples".into()))?;
        if let Some(s) = samples.iter().find(|s| s.modality != first.modality) {
            return Err(DataError::BadSample {
                path: s.path.clone(),
                reason: format!("modality {} in a {} loader", s.modality, first.modality),
            });
        }
        if cfg.batch_size == 0 || cfg.threads == 0 || cfg.prefetch == 0 {
            return Err(DataError::Config(
                "batch_size, threads and prefetch must be at least 1".into(),
            ));
        }
        if samples.len() < cfg.batch_size {
            return Err(DataError::Config(format!(
                "{} samples cannot fill one batch of {} (drop_last)",
                samples.len(),
                cfg.batch_size
            )));
        }
        let pipeline = Pipeline::new(first.modality, cfg.size_2d, cfg.size_3d);
        pipeline.validate()?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(cfg.threads)
            .thread_name(|i| format!("unimiss-data-{i}"))
            .build()
            .map_err(|e| DataError::Config(format!("cannot start worker threads: {e}")))?;
        Ok(PairLoader {
            samples: Arc::new(samples),
            cfg,
            pipeline,
            pool: Arc::new(pool),
        })
    }

    /// Full batches per epoch (drop_last).
    pub fn batches_per_epoch(&self) -> usize {
        self.samples.len() / self.cfg.batch_size
    }

    /// Number of samples.
    pub fn len_dataset(&self) -> usize {
        self.samples.len()
    }

    /// The samples, in dataset-index order.
    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }

    /// The pipeline (modality and view shape).
    pub fn pipeline(&self) -> Pipeline {
        self.pipeline
    }

    /// The sample order of `epoch` (a seeded permutation of the dataset indices).
    pub fn epoch_order(&self, epoch: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.samples.len()).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(
            self.cfg.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5EED,
        );
        order.shuffle(&mut rng);
        order
    }

    /// Iterates the batches of `epoch` from `start_batch` on (for exact resume). The batches
    /// are produced in the background, at most `prefetch` ready ahead.
    pub fn epoch(&self, epoch: usize, start_batch: usize) -> EpochIter {
        let bs = self.cfg.batch_size;
        let order = self.epoch_order(epoch);
        let batches: Vec<Vec<usize>> = order
            .chunks_exact(bs)
            .skip(start_batch)
            .map(|c| c.to_vec())
            .collect();
        let (tx, rx) = sync_channel(self.cfg.prefetch);
        let skipped = Arc::new(Mutex::new(Vec::new()));
        let job = Job {
            samples: self.samples.clone(),
            pipeline: self.pipeline,
            seed: self.cfg.seed,
            epoch,
            policy: self.cfg.on_bad_sample,
            skipped: skipped.clone(),
            wave: self.cfg.threads.div_ceil(bs).max(1),
        };
        let pool = self.pool.clone();
        let handle = std::thread::Builder::new()
            .name("unimiss-data-producer".into())
            .spawn(move || job.run(&pool, batches, tx))
            .ok();
        let spawn_failed = handle.is_none();
        EpochIter {
            rx,
            skipped,
            handle,
            spawn_failed,
        }
    }
}

struct Job {
    samples: Arc<Vec<Sample>>,
    pipeline: Pipeline,
    seed: u64,
    epoch: usize,
    policy: OnBadSample,
    skipped: Arc<Mutex<Vec<(PathBuf, String)>>>,
    wave: usize,
}

impl Job {
    fn run(
        &self,
        pool: &rayon::ThreadPool,
        batches: Vec<Vec<usize>>,
        tx: std::sync::mpsc::SyncSender<Result<ViewPair>>,
    ) {
        for wave in batches.chunks(self.wave) {
            let flat: Vec<usize> = wave.iter().flatten().copied().collect();
            let mut results: Vec<Option<Result<[Vec<f32>; 2]>>> = pool.install(|| {
                flat.par_iter()
                    .map(|&i| {
                        Some(
                            self.pipeline
                                .views(&self.samples[i].path, self.seed, self.epoch, i),
                        )
                    })
                    .collect()
            });
            let mut at = 0;
            for batch in wave {
                let mut views = Vec::with_capacity(batch.len());
                let mut indices = Vec::with_capacity(batch.len());
                for &i in batch {
                    match results[at].take() {
                        Some(Ok(v)) => {
                            views.push(v);
                            indices.push(i);
                        }
                        Some(Err(e)) => match self.policy {
                            OnBadSample::Fail => {
                                let _ = tx.send(Err(e));
                                return;
                            }
                            OnBadSample::Skip => {
                                let path = self.samples[i].path.clone();
                                if let Ok(mut s) = self.skipped.lock() {
                                    s.push((path, e.to_string()));
                                }
                            }
                        },
                        None => {}
                    }
                    at += 1;
                }
                if views.is_empty() {
                    continue;
                }
                let out = self.tensors(views).map(|views| ViewPair { views, indices });
                let failed = out.is_err();
                if tx.send(out).is_err() || failed {
                    return;
                }
            }
        }
    }

    fn tensors(&self, views: Vec<[Vec<f32>; 2]>) -> Result<[Tensor; 2]> {
        let b = views.len();
        let mut shape = vec![b];
        shape.extend(self.pipeline.view_shape());
        let mut flat = [Vec::new(), Vec::new()];
        for v in &mut flat {
            v.reserve(b * self.pipeline.view_len());
        }
        for [a, c] in views {
            flat[0].extend_from_slice(&a);
            flat[1].extend_from_slice(&c);
        }
        let [a, c] = flat;
        Ok([
            Tensor::from_vec(a, shape.as_slice(), &Device::Cpu)?,
            Tensor::from_vec(c, shape.as_slice(), &Device::Cpu)?,
        ])
    }
}

/// The batches of one epoch; yields `Err` once and stops on a bad sample under
/// `OnBadSample::Fail`.
pub struct EpochIter {
    rx: Receiver<Result<ViewPair>>,
    skipped: Arc<Mutex<Vec<(PathBuf, String)>>>,
    handle: Option<JoinHandle<()>>,
    spawn_failed: bool,
}

impl EpochIter {
    /// Samples left out so far with `OnBadSample::Skip`: (path, reason). Complete once the
    /// iterator has returned `None`.
    pub fn skipped(&self) -> Vec<(PathBuf, String)> {
        self.skipped.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Iterator for EpochIter {
    type Item = Result<ViewPair>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.spawn_failed {
            self.spawn_failed = false;
            return Some(Err(DataError::Config(
                "cannot start the loader thread".into(),
            )));
        }
        match self.rx.recv() {
            Ok(item) => Some(item),
            Err(_) => {
                if let Some(h) = self.handle.take()
                    && h.join().is_err()
                {
                    return Some(Err(DataError::Config("the loader thread panicked".into())));
                }
                None
            }
        }
    }
}

impl Drop for EpochIter {
    fn drop(&mut self) {
        // Dropping the receiver makes the producer's next send fail, so it stops; wait for it
        // only if it is not blocked forever (it never is: send on a closed channel returns).
        let (_tx, rx) = sync_channel(1);
        let old = std::mem::replace(&mut self.rx, rx);
        drop(old);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
