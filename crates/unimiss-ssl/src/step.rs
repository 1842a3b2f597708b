//! The forward half of one training iteration, for either modality (reference §3.3): teacher
//! and student logits, the DINO terms, and the teacher statistics for the collapse indicators.

use candle::{D, DType, Tensor};
use unimiss_model::MitWithHead;
use unimiss_ops::profile::time;

use crate::anticollapse::koleo;
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
    /// Mean cosine between the teacher backbone features of the batch's different inputs (view
    /// 0; the volumes in 3D); `None` for a batch of one.
    pub feature_cosine: Option<f64>,
}

/// Teacher and student networks of a run.
pub struct Nets<'a> {
    pub student: &'a MitWithHead,
    pub teacher: &'a MitWithHead,
    /// Student forward in training mode (only matters with stochastic depth).
    pub train: bool,
}

impl Nets<'_> {
    /// Teacher (backbone features, head logits), detached, in f32.
    fn teacher(&self, views: &[Tensor]) -> candle::Result<(Tensor, Tensor)> {
        time("step: teacher forward", || {
            let (f, l) = self.teacher.forward_views(views, false)?;
            Ok((f.detach().to_dtype(DType::F32)?, l.detach()))
        })
    }

    /// Student (backbone features, head logits), in f32 (a bf16 backbone's features are cast up).
    fn student(&self, views: &[Tensor]) -> candle::Result<(Tensor, Tensor)> {
        time("step: student forward", || {
            let (f, l) = self.student.forward_views(views, self.train)?;
            Ok((f.to_dtype(DType::F32)?, l))
        })
    }
}

/// `weight · Σ_views KoLeo(student features of that view)` (DINOv2 sums over the global crops);
/// `feats` rows `[0, B)` view 0, `[B, 2B)` view 1.
fn koleo_term(feats: &Tensor, weight: f64) -> candle::Result<Tensor> {
    let b = feats.dim(0)? / 2;
    let sum = (koleo(&feats.narrow(0, 0, b)?)? + koleo(&feats.narrow(0, b, b)?)?)?;
    sum * weight
}

/// Teacher features of view 0 (rows `[0, B)`): their mean pairwise cosine (`None` for B = 1).
fn view0_cosine(t_feats: &Tensor) -> candle::Result<Option<f64>> {
    let rows = t_feats.narrow(0, 0, t_feats.dim(0)? / 2)?.to_dtype(candle::DType::F32)?.to_vec2::<f32>()?;
    if rows.len() < 2 {
        return Ok(None);
    }
    crate::knn::mean_cosine(&rows).map(Some).map_err(|e| candle::Error::Msg(e.to_string()))
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
    let kw = loss.config().koleo_weight;
    // per modality: the DINO terms, the teacher entropies, both networks' backbone features
    let (total, mut terms, (teacher_entropy, teacher_mean_entropy), s_feats, t_feats) = match modality {
        Modality::Image2d => {
            let (t_feats, t) = nets.teacher(views)?;
            let (s_feats, s) = nets.student(views)?;
            let (h, l) = time("step: loss", || candle::Result::Ok((entropies(loss, &t, epoch)?, loss.loss(&s, &t, epoch, reduce)?)))?;
            (l.clone(), vec![("dino", l)], h, s_feats, t_feats)
        }
        Modality::Volume3d => {
            let depth = views[0].dim(2)?;
            let slices = [volume_to_slices(&views[0])?, volume_to_slices(&views[1])?];
            // Official order: teacher volumes, teacher slices, student volumes, student slices.
            let (t_feats, t_vol) = nets.teacher(views)?;
            let t_sl = mean_over_slices(&nets.teacher(&slices)?.1, depth)?;
            let (s_feats, s_vol) = nets.student(views)?;
            let s_sl = mean_over_slices(&nets.student(&slices)?.1, depth)?;
            let (h, t) = time("step: loss", || {
                candle::Result::Ok((entropies(loss, &t_vol, epoch)?, loss_3d(loss, &s_vol, &t_vol, &s_sl, &t_sl, epoch, reduce)?))
            })?;
            (t.total()?, vec![("vv", t.vv), ("sv", t.sv), ("ss", t.ss), ("vs", t.vs)], h, s_feats, t_feats)
        }
    };
    let total = if kw > 0.0 {
        let k = koleo_term(&s_feats, kw)?;
        terms.push(("koleo", k.clone()));
        (total + k)?
    } else {
        total
    };
    let feature_cosine = view0_cosine(&t_feats)?;
    Ok(StepLoss { total, terms, teacher_entropy, teacher_mean_entropy, feature_cosine })
}
