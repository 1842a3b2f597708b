//! The DINO cross-entropy with centring and sharpening (`TrainLoss`, reference §3.2) and the
//! 2D/3D step objectives built from it (§3.3).

use candle::{D, DType, Device, Tensor};

use crate::anticollapse::{Centering, sinkhorn_knopp};
use crate::schedule::teacher_temp_schedule;

/// Settings of [`DinoLoss`] (official defaults: τ_s 0.1, τ_t 0.04, centre momentum 0.9).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DinoLossConfig {
    pub out_dim: usize,
    pub student_temp: f64,
    pub warmup_teacher_temp: f64,
    pub teacher_temp: f64,
    pub warmup_teacher_temp_epochs: usize,
    pub center_momentum: f64,
    /// How teacher logits become targets (official: the momentum centre).
    pub centering: Centering,
    /// Sinkhorn-Knopp iterations (DINOv2: 3) when `centering` is `SinkhornKnopp`.
    pub sinkhorn_iterations: usize,
    /// Weight of DINOv2's KoLeo term on the student's backbone features (0: off, official;
    /// DINOv2 uses 0.1).
    pub koleo_weight: f64,
}

impl Default for DinoLossConfig {
    fn default() -> Self {
        Self {
            out_dim: 65536,
            student_temp: 0.1,
            warmup_teacher_temp: 0.04,
            teacher_temp: 0.04,
            warmup_teacher_temp_epochs: 0,
            center_momentum: 0.9,
            centering: Centering::Mean,
            sinkhorn_iterations: 3,
            koleo_weight: 0.0,
        }
    }
}

/// Hook to all-reduce the teacher-output column sum across ranks before the centre update
/// (data-parallel training); `None` for one process.
pub trait CenterReduce {
    /// Sum `batch_sum` (1, K) over every rank and return the global sum and the global row count.
    fn all_reduce_center(&self, batch_sum: &Tensor, rows: usize) -> candle::Result<(Tensor, usize)>;
}

/// `TrainLoss` with its centre buffer. Every [`DinoLoss::loss`] call moves the centre.
#[derive(Debug, Clone)]
pub struct DinoLoss {
    cfg: DinoLossConfig,
    temps: Vec<f64>,
    center: Tensor,
}

impl DinoLoss {
    /// A loss with a zero centre, for `nepochs` epochs of teacher temperatures.
    pub fn new(cfg: DinoLossConfig, nepochs: usize, device: &Device) -> candle::Result<Self> {
        let temps = teacher_temp_schedule(
            cfg.warmup_teacher_temp,
            cfg.teacher_temp,
            cfg.warmup_teacher_temp_epochs,
            nepochs,
        );
        let center = Tensor::zeros((1, cfg.out_dim), DType::F32, device)?;
        Ok(Self { cfg, temps, center })
    }

    /// The settings.
    pub fn config(&self) -> &DinoLossConfig {
        &self.cfg
    }

    /// The centre (1, K).
    pub fn center(&self) -> &Tensor {
        &self.center
    }

    /// Replace the centre (resume); must be (1, K).
    pub fn set_center(&mut self, c: Tensor) -> candle::Result<()> {
        let (one, k) = c.dims2()?;
        if one != 1 || k != self.cfg.out_dim {
            candle::bail!("centre has shape {:?}, expected [1, {}]", c.dims(), self.cfg.out_dim)
        }
        self.center = c.to_dtype(DType::F32)?.to_device(self.center.device())?;
        Ok(())
    }

    /// Teacher temperature of `epoch` (the last value past the end of the schedule).
    pub fn teacher_temp(&self, epoch: usize) -> f64 {
        self.temps.get(epoch).or(self.temps.last()).copied().unwrap_or(self.cfg.teacher_temp)
    }

    /// The teacher probabilities (2B, K), detached: `softmax((t − c)/τ_t)` (official), or the
    /// Sinkhorn-Knopp assignment of `t/τ_t` over all 2B rows (`Centering::SinkhornKnopp`).
    pub fn teacher_probs(&self, teacher: &Tensor, epoch: usize) -> candle::Result<Tensor> {
        if self.cfg.centering == Centering::SinkhornKnopp {
            return sinkhorn_knopp(teacher, self.teacher_temp(epoch), self.cfg.sinkhorn_iterations);
        }
        let t = teacher.detach().broadcast_sub(&self.center)?;
        let t = (t / self.teacher_temp(epoch))?;
        candle_nn::ops::softmax(&t, D::Minus1)
    }

    /// One `TrainLoss` call: cross-view cross-entropy between `student` (2B, K) and `teacher`
    /// (2B, K), rows `[0, B)` view 0 and `[B, 2B)` view 1; then the centre update.
    pub fn loss(
        &mut self,
        student: &Tensor,
        teacher: &Tensor,
        epoch: usize,
        reduce: Option<&dyn CenterReduce>,
    ) -> candle::Result<Tensor> {
        let (rows, k) = student.dims2()?;
        if teacher.dims2()? != (rows, k) || rows % 2 != 0 || k != self.cfg.out_dim {
            candle::bail!(
                "DINO loss: student {:?} and teacher {:?} must both be [2B, {}]",
                student.dims(),
                teacher.dims(),
                self.cfg.out_dim
            )
        }
        let b = rows / 2;
        let q = self.teacher_probs(teacher, epoch)?;
        let logp = candle_nn::ops::log_softmax(&(student / self.cfg.student_temp)?, D::Minus1)?;
        let (q0, q1) = (q.narrow(0, 0, b)?, q.narrow(0, b, b)?);
        let (s0, s1) = (logp.narrow(0, 0, b)?, logp.narrow(0, b, b)?);
        // Teacher view 0 against student view 1, then teacher view 1 against student view 0.
        let l01 = (q0 * s1)?.sum(D::Minus1)?.neg()?.mean_all()?;
        let l10 = (q1 * s0)?.sum(D::Minus1)?.neg()?.mean_all()?;
        let loss = ((l01 + l10)? / 2.0)?;
        self.update_center(teacher, reduce)?;
        Ok(loss)
    }

    /// c ← m·c + (1 − m)·Σ_rows t / rows (sum and row count over every rank).
    fn update_center(&mut self, teacher: &Tensor, reduce: Option<&dyn CenterReduce>) -> candle::Result<()> {
        let t = teacher.detach();
        let rows = t.dim(0)?;
        let sum = t.sum_keepdim(0)?;
        let (sum, rows) = match reduce {
            Some(r) => r.all_reduce_center(&sum, rows)?,
            None => (sum, rows),
        };
        let batch_center = (sum / rows as f64)?;
        let m = self.cfg.center_momentum;
        self.center = ((&self.center * m)? + (batch_center * (1.0 - m))?)?;
        Ok(())
    }
}

/// The four 3D terms, each a scalar tensor.
#[derive(Debug, Clone)]
pub struct Terms3d {
    pub vv: Tensor,
    pub sv: Tensor,
    pub ss: Tensor,
    pub vs: Tensor,
}

impl Terms3d {
    /// The plain sum vv + sv + ss + vs (reference §3.3).
    pub fn total(&self) -> candle::Result<Tensor> {
        (&self.vv + &self.sv)? + (&self.ss + &self.vs)?
    }
}

/// The 3D objective: four loss calls in the official order vv, sv, ss, vs, each moving the
/// centre (two updates with the volume teacher output, two with the slice one).
/// `s_vol`, `t_vol`: (2B, K) volume logits; `s_sl`, `t_sl`: (2B, K) slice means.
pub fn loss_3d(
    loss: &mut DinoLoss,
    s_vol: &Tensor,
    t_vol: &Tensor,
    s_sl: &Tensor,
    t_sl: &Tensor,
    epoch: usize,
    reduce: Option<&dyn CenterReduce>,
) -> candle::Result<Terms3d> {
    let vv = loss.loss(s_vol, t_vol, epoch, reduce)?;
    let sv = loss.loss(s_sl, t_vol, epoch, reduce)?;
    let ss = loss.loss(s_sl, t_sl, epoch, reduce)?;
    let vs = loss.loss(s_vol, t_sl, epoch, reduce)?;
    Ok(Terms3d { vv, sv, ss, vs })
}

/// Volume (B, 1, D, H, W) → slices (B·D, 3, H, W): `view(-1, H, W).unsqueeze(1)
/// .repeat_interleave(3, 1)`, row `b·D + d`.
pub fn volume_to_slices(vol: &Tensor) -> candle::Result<Tensor> {
    let (b, c, d, h, w) = vol.dims5()?;
    if c != 1 {
        candle::bail!("volume_to_slices: expected 1 channel, got {:?}", vol.dims())
    }
    vol.reshape((b * d, 1, h, w))?.repeat((1, 3, 1, 1))
}

/// Slice logits (rows·depth, K), row `v·depth + d`, → per-volume mean (rows, K):
/// `view(rows, depth, -1).mean(1)`.
pub fn mean_over_slices(logits: &Tensor, depth: usize) -> candle::Result<Tensor> {
    let (n, k) = logits.dims2()?;
    if depth == 0 || n % depth != 0 {
        candle::bail!("mean_over_slices: {n} rows are not a multiple of depth {depth}")
    }
    logits.reshape((n / depth, depth, k))?.mean(1)
}
