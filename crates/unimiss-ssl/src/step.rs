//! The forward half of one training iteration, for either modality (reference §3.3): teacher
//! and student logits, the DINO terms, and the teacher statistics for the collapse indicators.

use candle::{D, Tensor};
use unimiss_model::MitWithHead;
use unimiss_ops::profile::time;

use crate::loss::{CenterReduce, DinoLoss, loss_3d, mean_over_slices, volume_to_slices};
use crate::Modality;

/// The losses of one iteration, before backward.
pub struct StepLoss {
    /// The total the optimiser minimises.
    pub total: Tensor,
    /// `(name, scalar)` per term: `dino` (2D) or `vv`, `sv`, `ss`, `vs` (3D).
    pub terms: Vec<(&'static str, Tensor)>,
    /// Mean per-row entropy of the teacher distribution (first teacher output of the step).
    pub teacher_entropy: f64,
    /// Entropy of the batch-averaged teacher distribution.
    pub teacher_mean_entropy: f64,
}

/// Teacher and student networks of a run.
pub struct Nets<'a> {
    pub student: &'a MitWithHead,
    pub teacher: &'a MitWithHead,
    /// Student forward in training mode (only matters with stochastic depth).
    pub train: bool,
}

impl Nets<'_> {
    fn teacher(&self, views: &[Tensor]) -> candle::Result<Tensor> {
        time("step: teacher forward", || Ok(self.teacher.forward_views(views, false)?.1.detach()))
    }

    fn student(&self, views: &[Tensor]) -> candle::Result<Tensor> {
        time("step: student forward", || Ok(self.student.forward_views(views, self.train)?.1))
    }
}

fn entropies(loss: &DinoLoss, teacher: &Tensor, epoch: usize) -> candle::Result<(f64, f64)> {
    let p = loss.teacher_probs(teacher, epoch)?;
    let h = |p: &Tensor| -> candle::Result<Tensor> { (p * (p + 1e-30)?.log()?)?.sum(D::Minus1)?.neg() };
    let row = h(&p)?.mean_all()?.to_scalar::<f32>()?;
    let mean = h(&p.mean_keepdim(0)?)?.mean_all()?.to_scalar::<f32>()?;
    Ok((f64::from(row), f64::from(mean)))
}

/// Forward both networks on the two views of a batch and compute the step's loss terms; the
/// centre moves once (2D) or four times (3D).
pub fn forward_step(
    modality: Modality,
    nets: &Nets<'_>,
    loss: &mut DinoLoss,
    views: &[Tensor; 2],
    epoch: usize,
    reduce: Option<&dyn CenterReduce>,
) -> candle::Result<StepLoss> {
    match modality {
        Modality::Image2d => {
            let t = nets.teacher(views)?;
            let s = nets.student(views)?;
            let (teacher_entropy, teacher_mean_entropy, l) = time("step: loss", || {
                let (h, hm) = entropies(loss, &t, epoch)?;
                candle::Result::Ok((h, hm, loss.loss(&s, &t, epoch, reduce)?))
            })?;
            Ok(StepLoss { total: l.clone(), terms: vec![("dino", l)], teacher_entropy, teacher_mean_entropy })
        }
        Modality::Volume3d => {
            let depth = views[0].dim(2)?;
            let slices = [volume_to_slices(&views[0])?, volume_to_slices(&views[1])?];
            // Official order: teacher volumes, teacher slices, student volumes, student slices.
            let t_vol = nets.teacher(views)?;
            let t_sl = mean_over_slices(&nets.teacher(&slices)?, depth)?;
            let s_vol = nets.student(views)?;
            let s_sl = mean_over_slices(&nets.student(&slices)?, depth)?;
            let (teacher_entropy, teacher_mean_entropy, t) = time("step: loss", || {
                let (h, hm) = entropies(loss, &t_vol, epoch)?;
                candle::Result::Ok((h, hm, loss_3d(loss, &s_vol, &t_vol, &s_sl, &t_sl, epoch, reduce)?))
            })?;
            Ok(StepLoss {
                total: t.total()?,
                terms: vec![("vv", t.vv), ("sv", t.sv), ("ss", t.ss), ("vs", t.vs)],
                teacher_entropy,
                teacher_mean_entropy,
            })
        }
    }
}
