//! AdamW as the official downstream code uses it: `torch.optim.AdamW(model.parameters(), …)`,
//! one parameter group (every parameter decayed), decoupled decay, bias correction, betas
//! (0.9, 0.999); plus global gradient-norm clipping (`clip_grad_norm_`, BCV). The SSL crate's
//! optimiser implements the *pretraining* groups (no decay for biases and norms), which the
//! downstream code does not use, hence this small one. Its state round-trips through tensors for
//! exact resume.

use std::collections::{BTreeMap, HashMap};

use candle::{DType, Tensor, Var};
use candle::backprop::GradStore;

use crate::error::{Result, TaskError};

/// Optimiser state of every parameter, by name.
#[derive(Debug)]
pub struct AdamW {
    params: BTreeMap<String, Var>,
    m: BTreeMap<String, Tensor>,
    v: BTreeMap<String, Tensor>,
    pub step: u64,
    pub weight_decay: f64,
    pub eps: f64,
    pub beta1: f64,
    pub beta2: f64,
}

impl AdamW {
    pub fn new(params: BTreeMap<String, Var>, weight_decay: f64, eps: f64) -> Self {
        Self { params, m: BTreeMap::new(), v: BTreeMap::new(), step: 0, weight_decay, eps, beta1: 0.9, beta2: 0.999 }
    }

    pub fn params(&self) -> &BTreeMap<String, Var> {
        &self.params
    }

    /// Global L2 norm of the gradients present in `grads`.
    pub fn grad_norm(&self, grads: &GradStore) -> Result<f64> {
        let mut s = 0f64;
        for var in self.params.values() {
            if let Some(g) = grads.get(var.as_tensor()) {
                s += g.sqr()?.sum_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            }
        }
        Ok(s.sqrt())
    }

    /// One step at learning rate `lr`; gradients scaled so their global norm is at most `clip`
    /// when `clip > 0` (PyTorch: `clip / (norm + 1e-6)` when that is below 1). Parameters without
    /// a gradient are left alone (PyTorch ≥ 2.0 `set_to_none` semantics). Returns the norm.
    pub fn step(&mut self, grads: &GradStore, lr: f64, clip: f64) -> Result<f64> {
        let norm = self.grad_norm(grads)?;
        if !norm.is_finite() {
            return Err(TaskError::Invalid(format!("gradient norm is {norm} at step {}", self.step + 1)));
        }
        let scale = if clip > 0.0 { (clip / (norm + 1e-6)).min(1.0) } else { 1.0 };
        self.step += 1;
        let t = self.step as i32;
        let (b1, b2) = (self.beta1, self.beta2);
        let bc1 = 1.0 - b1.powi(t);
        let bc2 = 1.0 - b2.powi(t);
        for (name, var) in &self.params {
            let Some(g) = grads.get(var.as_tensor()) else { continue };
            let g = if scale < 1.0 { (g * scale)? } else { g.clone() };
            let m = match self.m.get(name) {
                Some(m) => ((m * b1)? + (&g * (1.0 - b1))?)?,
                None => (&g * (1.0 - b1))?,
            };
            let v = match self.v.get(name) {
                Some(v) => ((v * b2)? + (g.sqr()? * (1.0 - b2))?)?,
                None => (g.sqr()? * (1.0 - b2))?,
            };
            let theta = (var.as_tensor() * (1.0 - lr * self.weight_decay))?;
            let denom = ((&v / bc2)?.sqrt()? + self.eps)?;
            let upd = ((&m / bc1)? / denom)?;
            var.set(&(theta - (upd * lr)?)?)?;
            self.m.insert(name.clone(), m);
            self.v.insert(name.clone(), v);
        }
        Ok(norm)
    }

    /// The moments as named tensors (`m.<key>`, `v.<key>`).
    pub fn state_tensors(&self) -> HashMap<String, Tensor> {
        let mut out = HashMap::new();
        for (k, t) in &self.m {
            out.insert(format!("m.{k}"), t.clone());
        }
        for (k, t) in &self.v {
            out.insert(format!("v.{k}"), t.clone());
        }
        out
    }

    /// Restores moments written by [`AdamW::state_tensors`]; unknown names are an error.
    pub fn load_state(&mut self, tensors: HashMap<String, Tensor>, step: u64) -> Result<()> {
        for (k, t) in tensors {
            let (kind, name) = k.split_once('.').ok_or_else(|| TaskError::Invalid(format!("optimizer state key {k:?}")))?;
            let var = self.params.get(name).ok_or_else(|| TaskError::Invalid(format!("optimizer state for unknown parameter {name}")))?;
            let t = t.to_device(var.device())?;
            match kind {
                "m" => self.m.insert(name.to_string(), t),
                "v" => self.v.insert(name.to_string(), t),
                _ => return Err(TaskError::Invalid(format!("optimizer state key {k:?}"))),
            };
        }
        self.step = step;
        Ok(())
    }
}
