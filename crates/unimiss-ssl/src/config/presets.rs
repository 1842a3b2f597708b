//! The named presets of [`TrainConfig`]: `paper` (the default), `sample` (the quick run) and
//! `small-batch` (against the official recipe's collapse at a batch one machine affords), each shipped as a
//! TOML file in `configs/`.

use std::path::PathBuf;

use super::{ModelSection, TrainConfig};
use crate::anticollapse::Centering;
use unimiss_model::Arch;
use crate::error::{Result, SslError};

impl TrainConfig {
    /// The paper's recipe (`run.sh`): model_small, batch 24 per device, 200 epochs, lr 8e-4.
    pub fn paper() -> Self {
        Self::default()
    }

    /// The quick run on the shipped sample: tiny model at the fixture sizes (2D 64, 3D
    /// 16×64×64), K = 256, batch 2, interval 1, peak lr 2e-3 without warm-up; a few minutes
    /// on 2 CPU cores.
    pub fn sample() -> Self {
        let mut c = Self::default();
        c.output = PathBuf::from("runs/sample");
        c.model = ModelSection { arch: Arch::Tiny, img_size_2d: 64, img_size_3d: [16, 64, 64], out_dim: 256 };
        c.optim.epochs = 16;
        c.optim.batch_size = 2;
        c.optim.interval = 1;
        // Peak lr 0.256·2/256 = 2e-3, no warm-up. 40 steps on 10 samples must make the outputs
        // of different inputs differ faster than centring catches up with the teacher: at the
        // paper's rate (5e-4 here) the centre wins, the teacher's centred output turns uniform
        // (entropy → ln K) and the loss rises; a sharper teacher (0.02) or a faster one
        // (momentum 0.9) collapsed too. Measured in docs/ssl.md.
        c.optim.lr = 0.256;
        c.optim.warmup_epochs = 0;
        c.checkpoint.keep = 2;
        c
    }

    /// The small-batch preset, against the official recipe's collapse at a batch a CPU or one GPU
    /// affords (docs/ssl.md, "Small-batch recipe"; not yet a recipe that learns reliably): tiny at 64² / 16×64×64, K = 256, batch 16 (2D) and 4 (3D), peak lr 2e-3,
    /// Sinkhorn-Knopp targets, KoLeo 0.1, teacher momentum 0.99 → 0.999, per-batch schedules.
    pub fn small_batch() -> Self {
        let mut c = Self::default();
        c.output = PathBuf::from("runs/small-batch");
        c.model = ModelSection { arch: Arch::Tiny, img_size_2d: 64, img_size_3d: [16, 64, 64], out_dim: 256 };
        let o = &mut c.optim;
        (o.epochs, o.batch_size, o.batch_size_3d, o.interval) = (40, 16, 4, 1);
        (o.lr, o.min_lr, o.warmup_epochs, o.clip_grad) = (3.2e-2, 1e-5, 2, 3.0);
        (o.momentum_teacher, o.momentum_teacher_end, o.freeze_last_layer) = (0.99, 0.999, 1);
        let l = &mut c.loss;
        (l.centering, l.koleo_weight) = (Centering::SinkhornKnopp, 0.1);
        c.fixes.per_batch_schedule = true;
        c.checkpoint.keep = 2;
        c
    }

    /// A named preset (`paper`, `sample` or `small-batch`).
    pub fn preset(name: &str) -> Result<Self> {
        match name {
            "paper" => Ok(Self::paper()),
            "sample" => Ok(Self::sample()),
            "small-batch" => Ok(Self::small_batch()),
            o => Err(SslError::Config(format!("unknown preset {o:?} (paper, sample or small-batch)"))),
        }
    }
}
