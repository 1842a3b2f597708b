//! The one optimiser of the training runtime, for pretraining and fine-tuning alike: AdamW
//! (PyTorch 1.8 `torch.optim.AdamW`) whose grouping and clipping are policies.
//!
//! - Pretraining (reference §3.4, §3.5, §3.6, §7.8–7.10): [`Decay::Official`] groups (no decay
//!   for biases and 1-D tensors, `weight_g` never trained), [`Clip::PerParam`] clipping, the
//!   last-layer gradient cancel, PyTorch<2.0 `zero_grad` semantics; and the EMA teacher.
//! - Fine-tuning (reference §5): `torch.optim.AdamW(model.parameters())`, every parameter decayed
//!   ([`Decay::All`]), [`Clip::GlobalNorm`] (`clip_grad_norm_`), parameters without a gradient
//!   left alone (`set_to_none`).
//!
//! Every tensor the optimiser keeps (moments, new weights) is detached from the step's graph, so
//! memory does not grow with the number of steps.
//!
//! Written here rather than using `candle_nn::AdamW`, which has one weight decay for all
//! parameters and knows nothing of PyTorch 1.x `zero_grad` semantics.

use std::collections::BTreeMap;

use candle::{Tensor, Var};

/// Which parameter group a tensor belongs to (`get_params_groups`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// ndim > 1 and not a bias: weight decay from the schedule.
    Regularised,
    /// Biases and every tensor of ndim ≤ 1: no weight decay.
    NoDecay,
}

impl Group {
    /// The official rule: `name.endswith(".bias") or len(param.shape) == 1` → no decay.
    pub fn of(name: &str, ndim: usize) -> Self {
        if name.ends_with(".bias") || ndim <= 1 { Self::NoDecay } else { Self::Regularised }
    }
}

/// True for parameters the official code never trains (`head.last_layer.weight_g`, frozen at 1
/// by `norm_last_layer=True`).
pub fn is_never_trained(name: &str) -> bool {
    name.ends_with("last_layer.weight_g")
}

/// Which parameters weight decay applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decay {
    /// Pretraining (`get_params_groups`): see [`Group::of`]; `weight_g` is never trained.
    Official,
    /// Fine-tuning (`AdamW(model.parameters())`): one group, every parameter decayed.
    All,
}

/// Gradient clipping policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Clip {
    /// No clipping.
    Off,
    /// Pretraining `clip_gradients`: each parameter's gradient scaled to L2 norm ≤ the value.
    PerParam(f64),
    /// Fine-tuning `clip_grad_norm_`: all gradients scaled together so their global L2 norm is
    /// ≤ the value; a value ≤ 0 measures the norm (reported) without clipping. A non-finite
    /// global norm is an error.
    GlobalNorm(f64),
}

/// Adam moments of one parameter.
#[derive(Debug, Clone)]
pub struct ParamState {
    pub exp_avg: Tensor,
    pub exp_avg_sq: Tensor,
    pub step: u64,
}

/// One trainable parameter with its optimiser state.
#[derive(Debug, Clone)]
pub struct Param {
    pub name: String,
    pub var: Var,
    pub group: Group,
    pub state: Option<ParamState>,
    /// PyTorch's `.grad is not None`: once a gradient has existed, `zero_grad()` (PyTorch < 2.0)
    /// keeps a zero tensor, so the parameter keeps being stepped even when it gets no gradient.
    pub has_grad: bool,
}

/// Per-step settings.
#[derive(Debug, Clone, Copy)]
pub struct StepOptions {
    pub lr: f64,
    /// Weight decay of group 0 (group 1 always 0).
    pub wd: f64,
    /// Clipping policy.
    pub clip: Clip,
    /// `epoch < freeze_last_layer`: drop the gradients of `*last_layer*` parameters.
    pub cancel_last_layer: bool,
    /// The modality whose own parameters ([`Modality::of_param`](unimiss_ops::Modality::of_param))
    /// have `requires_grad = False` this step: the 3D ones in a 2D epoch (official); `None` in a
    /// 3D epoch and in fine-tuning.
    pub frozen: Option<unimiss_ops::Modality>,
    /// Fix §8.3: `zero_grad(set_to_none=True)` semantics, so parameters without a gradient this
    /// step are not touched at all.
    pub set_to_none: bool,
}

/// What one step did, for logs and tests.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepReport {
    /// Parameters updated with a real gradient.
    pub stepped: usize,
    /// Parameters updated with the PyTorch<2.0 leftover zero gradient.
    pub stepped_zero_grad: usize,
    /// Parameters whose gradient was scaled down by clipping.
    pub clipped: usize,
    /// Global L2 norm of the gradients before clipping ([`Clip::GlobalNorm`] only).
    pub grad_norm: Option<f64>,
}

/// AdamW (PyTorch 1.8 `torch.optim.AdamW`: decoupled decay first, then Adam with bias
/// correction; betas (0.9, 0.999), eps 1e-8).
#[derive(Debug, Clone)]
pub struct AdamW {
    params: Vec<Param>,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
}

impl AdamW {
    /// The pretraining optimiser: every trainable named variable, sorted by name, in the official
    /// groups; `weight_g` is left out (frozen).
    pub fn new(vars: &BTreeMap<String, Var>) -> Self {
        Self::with_decay(vars, Decay::Official, 1e-8)
    }

    /// An optimiser over `vars` (sorted by name) with the given decay policy and Adam epsilon.
    pub fn with_decay(vars: &BTreeMap<String, Var>, decay: Decay, eps: f64) -> Self {
        let params = vars
            .iter()
            .filter(|(n, _)| decay == Decay::All || !is_never_trained(n))
            .map(|(n, v)| Param {
                name: n.clone(),
                var: v.clone(),
                group: match decay {
                    Decay::Official => Group::of(n, v.rank()),
                    Decay::All => Group::Regularised,
                },
                state: None,
                has_grad: false,
            })
            .collect();
        Self { params, beta1: 0.9, beta2: 0.999, eps }
    }

    /// The parameters in name order.
    pub fn params(&self) -> &[Param] {
        &self.params
    }

    /// Mutable access for checkpoint restore.
    pub fn params_mut(&mut self) -> &mut [Param] {
        &mut self.params
    }

    /// Global L2 norm (f64 accumulation) of this step's gradients of the optimiser's parameters.
    pub fn grad_norm(&self, grads: &BTreeMap<String, Tensor>) -> candle::Result<f64> {
        global_norm(self.params.iter().filter_map(|p| grads.get(&p.name)))
    }

    /// One iteration of §3.5 steps 4–8 given this step's gradients by name.
    pub fn step(&mut self, grads: &BTreeMap<String, Tensor>, o: &StepOptions) -> candle::Result<StepReport> {
        let mut report = StepReport::default();
        let (b1, b2, eps) = (self.beta1, self.beta2, self.eps);
        let mut global_scale = None;
        if let Clip::GlobalNorm(max) = o.clip {
            let norm = self.grad_norm(grads)?;
            if !norm.is_finite() {
                candle::bail!("the global gradient norm is {norm}");
            }
            report.grad_norm = Some(norm);
            let coef = max / (norm + 1e-6);
            if max > 0.0 && coef < 1.0 {
                global_scale = Some(coef);
            }
        }
        for p in &mut self.params {
            let frozen = o.frozen.is_some_and(|m| unimiss_ops::Modality::of_param(&p.name) == Some(m));
            let fresh = if frozen { None } else { grads.get(&p.name) };
            // `None` = no .grad (skipped); `Some(None)` = the leftover zero tensor.
            let mut grad: Option<Option<Tensor>> = match fresh {
                Some(g) => Some(Some(g.clone())),
                None if p.has_grad && !o.set_to_none => Some(None),
                None => None,
            };
            if o.set_to_none && fresh.is_none() {
                p.has_grad = false;
            }
            // Per-parameter clipping on the fused path: a factor the update applies.
            let mut grad_scale = 1.0;
            if let Some(Some(g)) = &grad {
                p.has_grad = true;
                match (o.clip, global_scale) {
                    (Clip::PerParam(c), _) if c > 0.0 => match unimiss_ops::update::sum_sq(g) {
                        Some(sq) => {
                            let coef = clip_coef(sq.sqrt() as f32, c);
                            if coef < 1.0 {
                                report.clipped += 1;
                                grad_scale = f64::from(coef);
                            }
                        }
                        None => {
                            let (g2, clipped) = clip_one(g, c)?;
                            report.clipped += usize::from(clipped);
                            grad = Some(Some(g2));
                        }
                    },
                    (Clip::GlobalNorm(_), Some(coef)) => {
                        report.clipped += 1;
                        grad = Some(Some((g * coef)?));
                    }
                    _ => {}
                }
            }
            if o.cancel_last_layer && p.name.contains("last_layer") {
                grad = None;
                p.has_grad = false;
            }
            let Some(g) = grad else { continue };
            let theta = p.var.as_tensor();
            let decay = match p.group {
                Group::Regularised => o.wd,
                Group::NoDecay => 0.0,
            };
            let theta = theta.detach();
            let step = p.state.as_ref().map_or(0, |s| s.step) + 1;
            let fused = unimiss_ops::update::AdamWStep {
                decay: if decay != 0.0 { 1.0 - o.lr * decay } else { 1.0 },
                beta1: b1,
                beta2: b2,
                eps,
                bias_correction1: 1.0 - b1.powi(step as i32),
                bias_correction2: 1.0 - b2.powi(step as i32),
                lr: o.lr,
                grad_scale,
            };
            if g.is_some() { report.stepped += 1 } else { report.stepped_zero_grad += 1 }
            // On contiguous f32 CPU tensors the update runs where the parameter and its moments
            // are (no buffer allocated); elsewhere the same arithmetic composed, into new tensors.
            // The first step's moments are zero either way.
            let (m0, v0) = match &p.state {
                Some(s) => (s.exp_avg.clone(), s.exp_avg_sq.clone()),
                None => (theta.zeros_like()?, theta.zeros_like()?),
            };
            if unimiss_ops::update::adamw_in_place(p.var.as_tensor(), g.as_ref(), &m0, &v0, &fused)? {
                p.state = Some(ParamState { exp_avg: m0, exp_avg_sq: v0, step });
                continue;
            }
            let (new, m, v) = unimiss_ops::update::adamw_composed(&theta, g.as_ref(), Some(&m0), Some(&v0), &fused)?;
            p.var.set(&new)?;
            p.state = Some(ParamState { exp_avg: m, exp_avg_sq: v, step });
        }
        Ok(report)
    }
}

/// Global L2 norm (f64 accumulation) of a set of variables ([`global_norm`]): what the
/// divergence guard watches.
pub fn param_norm(vars: &BTreeMap<String, Var>) -> candle::Result<f64> {
    global_norm(vars.values().map(|v| v.as_tensor()))
}

/// Global L2 norm of `tensors`, accumulated in f64: one fused pass per contiguous f32 CPU
/// tensor (`unimiss_ops::update::sum_sq`), the composed candle ops elsewhere. The gradient norm
/// of global clipping and the parameter norm of the divergence guard both use it.
pub fn global_norm<'a>(tensors: impl IntoIterator<Item = &'a Tensor>) -> candle::Result<f64> {
    let mut s = 0f64;
    for t in tensors {
        s += match unimiss_ops::update::sum_sq(t) {
            Some(v) => v,
            None => unimiss_ops::update::sum_sq_composed(t)?,
        };
    }
    Ok(s.sqrt())
}

/// `clip_gradients` for one tensor: coef = clip/(‖g‖₂ + 1e-6), applied if < 1. Returns the
/// (possibly scaled) gradient and whether it was scaled.
pub fn clip_one(g: &Tensor, clip: f64) -> candle::Result<(Tensor, bool)> {
    let coef = clip_coef(g.sqr()?.sum_all()?.sqrt()?.to_scalar::<f32>()?, clip);
    if coef < 1.0 { Ok(((g * f64::from(coef))?, true)) } else { Ok((g.clone(), false)) }
}

/// `clip_gradients`' factor clip/(‖g‖₂ + 1e-6) (applied only when below 1).
fn clip_coef(norm: f32, clip: f64) -> f32 {
    (clip as f32) / (norm + 1e-6)
}

/// EMA teacher update paired BY NAME: θ_t ← m·θ_t + (1 − m)·θ_s for every teacher parameter.
/// Errors if a teacher name has no student twin.
pub fn ema_update(teacher: &BTreeMap<String, Var>, student: &BTreeMap<String, Var>, m: f64) -> candle::Result<()> {
    for (name, t) in teacher {
        let Some(s) = student.get(name) else {
            candle::bail!("EMA: teacher parameter {name} has no student parameter of that name")
        };
        if !unimiss_ops::update::ema_in_place(t.as_tensor(), s.as_tensor(), m)? {
            t.set(&unimiss_ops::update::ema_composed(t.as_tensor(), s.as_tensor(), m)?)?;
        }
    }
    Ok(())
}
