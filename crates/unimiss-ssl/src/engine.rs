//! Student, teacher, optimiser and loss, and one training iteration (reference §3.5) on a
//! batch of two views, independent of where the data come from (trainer, benchmarks).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use unimiss_model::{HeadConfig, Mit, MitConfig, MitWithHead, SeededVarMap};
use unimiss_ops::profile::time;

use crate::config::Precision;
use crate::error::{Result, SslError};
use crate::loss::{CenterReduce, DinoLoss, DinoLossConfig};
use crate::optim::{AdamW, Clip, StepOptions, ema_update};
use crate::step::{Nets, forward_step};
use crate::process::Collective;
use crate::Modality;

/// Per-iteration hyper-parameters.
#[derive(Debug, Clone, Copy)]
pub struct StepSettings {
    pub lr: f64,
    pub wd: f64,
    pub momentum: f64,
    pub clip: f64,
    pub cancel_last_layer: bool,
    /// Fix §8.3 (`zero_grad(set_to_none=True)`).
    pub set_to_none: bool,
}

/// The numbers of one iteration.
#[derive(Debug, Clone, PartialEq)]
pub struct StepOutcome {
    pub total: f64,
    pub terms: BTreeMap<String, f64>,
    pub teacher_entropy: f64,
    pub teacher_mean_entropy: f64,
    pub feature_cosine: Option<f64>,
}

/// Both networks with their variables by official key, the optimiser and the loss centre.
pub struct Engine {
    pub student: MitWithHead,
    pub teacher: MitWithHead,
    /// The backbones' compute dtype ([`Precision`]; f32 unless the run asks for bf16).
    pub precision: Precision,
    /// The backbone configurations (the student's with its stochastic depth), to build the bf16
    /// twins.
    student_cfg: MitConfig,
    teacher_cfg: MitConfig,
    pub student_vars: BTreeMap<String, Var>,
    pub teacher_vars: BTreeMap<String, Var>,
    pub optim: AdamW,
    pub loss: DinoLoss,
}

fn named_vars(vm: &VarMap) -> Result<BTreeMap<String, Var>> {
    let data = vm.data().lock().map_err(|_| SslError::Config("var map lock poisoned".into()))?;
    Ok(data.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

impl Engine {
    /// A student initialised from `seed` (the official init distributions, drawn per parameter
    /// name, so the same seed gives the same weights on any machine; stochastic depth 0.1 with
    /// `drop_path`, fix §8.1), a teacher equal to it, a fresh optimiser and a zero centre.
    pub fn new(
        mcfg: &MitConfig,
        hcfg: &HeadConfig,
        drop_path: bool,
        lcfg: DinoLossConfig,
        nepochs: usize,
        seed: u64,
        dev: &Device,
    ) -> Result<Self> {
        let scfg = if drop_path { mcfg.clone().with_drop_path(0.1) } else { mcfg.clone() };
        let svm = VarMap::new();
        let student = MitWithHead::new(&scfg, hcfg, SeededVarMap::var_builder(&svm, seed, DType::F32, dev))?;
        let tvm = VarMap::new();
        let teacher = MitWithHead::new(mcfg, hcfg, SeededVarMap::var_builder(&tvm, seed, DType::F32, dev))?;
        let student_vars = named_vars(&svm)?;
        let teacher_vars = named_vars(&tvm)?;
        let optim = AdamW::new(&student_vars);
        let loss = DinoLoss::new(lcfg, nepochs, dev)?;
        let e = Self { student, teacher, precision: Precision::F32, student_cfg: scfg, teacher_cfg: mcfg.clone(), student_vars, teacher_vars, optim, loss };
        e.copy_student_to_teacher()?;
        Ok(e)
    }

    /// teacher ← student, by name (official `teacher.load_state_dict(student.state_dict())`).
    pub fn copy_student_to_teacher(&self) -> Result<()> {
        for (k, t) in &self.teacher_vars {
            let s = self.student_vars.get(k).ok_or_else(|| SslError::Config(format!("teacher {k} has no student twin")))?;
            t.set(s.as_tensor())?;
        }
        Ok(())
    }

    /// Load student weights (safetensors or official `.pth`; the `student` state_dict of a
    /// training checkpoint, else a bare one), checking every name and shape; then copy them to
    /// the teacher.
    pub fn init_student_from(&self, path: &Path) -> Result<()> {
        let sd = unimiss_model::checkpoint::load(path, unimiss_model::checkpoint::Which::Student)
            .map_err(|e| SslError::Checkpoint { path: path.to_path_buf(), msg: e.to_string() })?;
        let bad = |msg: String| SslError::Checkpoint { path: path.to_path_buf(), msg };
        for (k, v) in &self.student_vars {
            let t = sd.get(k).ok_or_else(|| bad(format!("no tensor {k}")))?;
            if t.dims() != v.dims() {
                return Err(bad(format!("{k}: shape {:?}, model {:?}", t.dims(), v.dims())));
            }
            v.set(&t.to_device(v.device())?.to_dtype(DType::F32)?)?;
        }
        self.copy_student_to_teacher()
    }

    /// Student and teacher whose backbones run in `dtype`, built on `dtype` casts of the f32
    /// variables (the student's casts are differentiable, so gradients reach the f32 master
    /// weights; the teacher's are detached); both keep their f32 heads.
    fn half_nets(&self, dtype: DType) -> Result<(MitWithHead, MitWithHead)> {
        let dev = self.loss.center().device();
        let backbone = |vars: &BTreeMap<String, Var>, cfg: &MitConfig, detach: bool| -> Result<Mit> {
            let mut casts = HashMap::new();
            for (k, v) in vars.iter().filter(|(k, _)| k.starts_with("backbone.")) {
                let t = if detach { v.as_tensor().detach() } else { v.as_tensor().clone() };
                casts.insert(k.clone(), t.to_dtype(dtype)?);
            }
            Ok(Mit::new(cfg, VarBuilder::from_tensors(casts, dtype, dev).pp("backbone"))?)
        };
        let student = MitWithHead { backbone: backbone(&self.student_vars, &self.student_cfg, false)?, head: self.student.head.clone() };
        let teacher = MitWithHead { backbone: backbone(&self.teacher_vars, &self.teacher_cfg, true)?, head: self.teacher.head.clone() };
        Ok((student, teacher))
    }

    /// One iteration: forwards and loss terms (centre updates), non-finite check, backward,
    /// gradient averaging across ranks, clipping, last-layer cancel, AdamW, EMA.
    /// `step_no` only names the step in a non-finite-loss error.
    pub fn step(
        &mut self,
        modality: Modality,
        views: &[Tensor; 2],
        epoch: usize,
        s: &StepSettings,
        collective: Option<&dyn Collective>,
        step_no: u64,
    ) -> Result<StepOutcome> {
        let dev = self.loss.center().device().clone();
        let dtype = self.precision.dtype();
        let views = [views[0].to_device(&dev)?.to_dtype(dtype)?, views[1].to_device(&dev)?.to_dtype(dtype)?];
        let half = match self.precision {
            Precision::F32 => None,
            Precision::Bf16 => Some(self.half_nets(dtype)?),
        };
        let nets = match &half {
            None => Nets { student: &self.student, teacher: &self.teacher, train: true },
            Some((s, t)) => Nets { student: s, teacher: t, train: true },
        };
        let reduce = collective.map(|c| c as &dyn CenterReduce);
        let out = forward_step(modality, &nets, &mut self.loss, &views, epoch, reduce)?;
        let mut terms = BTreeMap::new();
        for (name, t) in &out.terms {
            terms.insert(name.to_string(), f64::from(t.to_scalar::<f32>()?));
        }
        let total = f64::from(out.total.to_scalar::<f32>()?);
        let (teacher_entropy, teacher_mean_entropy, feature_cosine) = (out.teacher_entropy, out.teacher_mean_entropy, out.feature_cosine);
        if !total.is_finite() || terms.values().any(|v| !v.is_finite()) {
            let terms = terms.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ");
            return Err(SslError::NonFiniteLoss { step: step_no, epoch, modality: modality.name(), terms });
        }
        let mut grads: BTreeMap<String, Tensor> = time("step: backward", || {
            let store = out.total.backward()?;
            candle::Result::Ok(
                self.student_vars.iter().filter_map(|(k, v)| store.get(v.as_tensor()).map(|g| (k.clone(), g.clone()))).collect(),
            )
        })?;
        drop(out);
        if let Some(c) = collective {
            c.average_grads(&mut grads)?;
        }
        let opts = StepOptions {
            lr: s.lr,
            wd: s.wd,
            clip: if s.clip > 0.0 { Clip::PerParam(s.clip) } else { Clip::Off },
            cancel_last_layer: s.cancel_last_layer,
            // official: a 2D epoch sets `requires_grad = False` on the 3D-only modules; a 3D epoch
            // freezes nothing (the 2D-only modules just get no gradient)
            frozen: match modality {
                Modality::Image2d => Some(Modality::Volume3d),
                Modality::Volume3d => None,
            },
            set_to_none: s.set_to_none,
        };
        time("step: clipping + AdamW", || self.optim.step(&grads, &opts))?;
        drop(grads);
        time("step: EMA", || ema_update(&self.teacher_vars, &self.student_vars, s.momentum))?;
        Ok(StepOutcome { total, terms, teacher_entropy, teacher_mean_entropy, feature_cosine })
    }
}
