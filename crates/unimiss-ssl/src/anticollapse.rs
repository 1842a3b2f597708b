//! Options against the small-batch collapse of DINO-style training (issue 16), none of which is
//! in the official UniMiSS code, so each is off by default:
//! - [`sinkhorn_knopp`]: DINOv2's teacher targets (`sinkhorn_knopp_teacher`, 3 iterations):
//!   every prototype gets an equal share of the batch, so the targets cannot all be the same;
//! - [`koleo`]: DINOv2's KoLeo regulariser on the L2-normalised student features (the
//!   Kozachenko–Leonenko entropy estimate: pushes each feature away from its nearest neighbour);
//!
//! The signals that tell collapse before the loss does are logged per step
//! (`crate::step`): the input information `I = H(batch mean) − mean H` of the teacher's
//! targets (→ 0: they no longer depend on the input; under Sinkhorn-Knopp the batch mean is
//! uniform by construction, so I = ln K − H measures how sharply the targets tell inputs apart)
//! and the teacher features' mean cosine ([`crate::knn::mean_cosine`]; → 1: every input gives
//! the same feature).

use candle::{D, DType, Tensor};

/// How the teacher's logits become targets (`loss.centering`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Centering {
    /// Official: `softmax((t − c)/τ_t)` with the momentum centre `c`.
    #[default]
    Mean,
    /// DINOv2: Sinkhorn-Knopp normalisation of `exp(t/τ_t)` over the batch (the centre is still
    /// updated, for the log, but not used).
    SinkhornKnopp,
}

impl std::fmt::Display for Centering {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Centering::Mean => "mean",
            Centering::SinkhornKnopp => "sinkhorn_knopp",
        })
    }
}

/// DINOv2's `sinkhorn_knopp_teacher(teacher_output, teacher_temp, n_iterations)` on `t` (B, K):
/// `Q = exp(t/τ)ᵀ` normalised to sum 1, then `iterations` times rows (prototypes) to 1/K each
/// and columns (samples) to 1/B each; returned as (B, K) with rows summing to 1. Computed in the
/// log domain (each normalisation subtracts a log-sum-exp): the same numbers, but a prototype
/// whose `exp` underflows for every sample at a small temperature cannot turn into 0/0. One
/// process only: the sums are over this batch.
pub fn sinkhorn_knopp(t: &Tensor, temp: f64, iterations: usize) -> candle::Result<Tensor> {
    let t = t.detach().to_dtype(DType::F32)?;
    let (b, k) = t.dims2()?;
    let mut q = (t / temp)?.t()?.contiguous()?; // log Q, (K, B)
    let all = log_sum_exp(&q.reshape((1, k * b))?, 1)?;
    q = q.broadcast_sub(&all)?;
    for _ in 0..iterations {
        q = (q.broadcast_sub(&log_sum_exp(&q, 1)?)? - (k as f64).ln())?;
        q = (q.broadcast_sub(&log_sum_exp(&q, 0)?)? - (b as f64).ln())?;
    }
    (q + (b as f64).ln())?.exp()?.t()?.contiguous()
}

/// `log Σ exp(x)` along `dim`, kept as a size-1 dimension.
fn log_sum_exp(x: &Tensor, dim: usize) -> candle::Result<Tensor> {
    let m = x.max_keepdim(dim)?;
    x.broadcast_sub(&m)?.exp()?.sum_keepdim(dim)?.log()? + m
}

/// DINOv2's `KoLeoLoss` on `x` (B, F): `x` L2-normalised (eps 1e-8), each row's nearest
/// neighbour by inner product (itself excluded), `−mean log(‖x − x_nn + 1e-8‖ + 1e-8)`.
/// Differentiable in `x` (through both the row and its neighbour, as PyTorch's indexing is).
pub fn koleo(x: &Tensor) -> candle::Result<Tensor> {
    let eps = 1e-8;
    let (b, _) = x.dims2()?;
    if b < 2 {
        candle::bail!("KoLeo needs at least 2 rows, got {:?}", x.dims())
    }
    let norm = x.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?.clamp(eps, f64::MAX)?;
    let xn = x.broadcast_div(&norm)?;
    let dots = xn.detach().matmul(&xn.detach().t()?)?;
    // the diagonal set to −1, as DINOv2's `dots.view(-1)[::(n + 1)].fill_(-1)`
    let eye = Tensor::eye(b, DType::F32, x.device())?;
    let dots = ((dots * (1.0 - &eye)?)? - &eye)?;
    let nn = dots.argmax(D::Minus1)?;
    let diff = ((&xn - xn.index_select(&nn, 0)?)? + eps)?;
    let dist = diff.sqr()?.sum(D::Minus1)?.sqrt()?;
    ((dist + eps)?.log()?.mean_all()?).neg()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle::{Device, Var};

    fn rows(t: &Tensor) -> Vec<Vec<f32>> {
        t.to_vec2::<f32>().unwrap_or_default()
    }

    /// DINOv2's `sinkhorn_knopp_teacher` on a 2 × 3 batch, τ 0.5, 3 iterations, computed by
    /// hand (plain Python, the same loop) to 1e-6.
    #[test]
    fn sinkhorn_knopp_matches_the_hand_computed_assignment() -> candle::Result<()> {
        let t = Tensor::new(&[[0.2f32, 0.1, -0.3], [0.0, 0.5, 0.4]], &Device::Cpu)?;
        let q = rows(&sinkhorn_knopp(&t, 0.5, 3)?);
        let want = [[0.489_899_48, 0.302_000_49, 0.208_100_03], [0.178_047_61, 0.364_409_93, 0.457_542_46]];
        for (r, w) in q.iter().zip(want) {
            for (a, b) in r.iter().zip(w) {
                assert!((f64::from(*a) - b).abs() < 1e-6, "{q:?}");
            }
        }
        // a common offset of the logits changes nothing but f32 rounding (500.1 is stored to
        // ±3e-5), and logits far past exp's range do not overflow
        let shifted = rows(&sinkhorn_knopp(&(t + 500.0)?, 0.5, 3)?);
        assert!(shifted.iter().flatten().zip(q.iter().flatten()).all(|(a, b)| (a - b).abs() < 1e-4), "{shifted:?}");
        // τ 0.01 on logits 30 apart: every exp of prototype 1 underflows in the linear domain
        let sharp = rows(&sinkhorn_knopp(&Tensor::new(&[[30f32, 0.0], [29.0, 1.0]], &Device::Cpu)?, 0.01, 3)?);
        assert!(sharp.iter().flatten().all(|v| v.is_finite()), "{sharp:?}");
        assert!(sharp.iter().all(|r| (r.iter().sum::<f32>() - 1.0).abs() < 1e-5), "{sharp:?}");
        Ok(())
    }

    /// Identical rows peaked on prototype 0: Sinkhorn-Knopp still gives every prototype an equal
    /// share of the batch, so no prototype can take every sample (the shared-peak collapse the
    /// official centring allows); the rows themselves come out uniform, which the logged
    /// entropy then reports as a uniform collapse.
    #[test]
    fn sinkhorn_knopp_spreads_identical_rows() -> candle::Result<()> {
        let t = Tensor::new(&[[1f32, 0.0, 0.0, 0.0]; 4], &Device::Cpu)?;
        let q = sinkhorn_knopp(&t, 0.1, 3)?;
        let col = rows(&q.sum_keepdim(0)?);
        // every prototype receives about B/K = 1 of the batch's mass
        assert!(col[0].iter().all(|v| (v - 1.0).abs() < 0.05), "{col:?}");
        Ok(())
    }

    /// KoLeo on (1,0), (0,1), (1,½): nearest neighbours c, c, a; −mean log distance, by hand.
    #[test]
    fn koleo_matches_the_hand_computed_value_and_its_gradient() -> candle::Result<()> {
        let dev = Device::Cpu;
        let x = Var::new(&[[1f32, 0.0], [0.0, 1.0], [1.0, 0.5]], &dev)?;
        let l = koleo(x.as_tensor())?;
        assert!((f64::from(l.to_scalar::<f32>()?) - 0.501_675_137).abs() < 1e-6);
        // gradient against central finite differences (f32, h 1e-3)
        let g = rows(&l.backward()?.get(x.as_tensor()).cloned().ok_or_else(|| candle::Error::Msg("no grad".into()))?);
        let base = rows(x.as_tensor());
        for i in 0..3 {
            for j in 0..2 {
                let at = |h: f32| -> candle::Result<f64> {
                    let mut v = base.clone();
                    v[i][j] += h;
                    Ok(f64::from(koleo(&Tensor::new(v, &dev)?)?.to_scalar::<f32>()?))
                };
                let fd = (at(1e-3)? - at(-1e-3)?) / 2e-3;
                assert!((fd - f64::from(g[i][j])).abs() < 2e-3, "[{i}][{j}] fd {fd} grad {}", g[i][j]);
            }
        }
        Ok(())
    }
}
