//! `trajectory`: seven whole pretraining steps of the official code (fixtures/trajectory README)
//! replayed through [`Engine::step`], the code the trainer runs: every step's loss and terms
//! (1e-5 relative), every final student/teacher tensor (4e-3 relative L2, on the fixture's
//! sampled elements), every whole-tensor L2 norm (1e-4 relative) and the centre (1e-4 relative L2).
//! Architecture, sizes, head width, loss and optimiser settings come from the fixture metadata.
//! Ignored by default like every test that needs material from outside the repository.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle::{DType, Device, Tensor};
use serde_json::Value;
use unimiss_model::checkpoint::{self, Which};
use unimiss_model::{HeadConfig, MitConfig};
use unimiss_ssl::Modality;
use unimiss_ssl::engine::{Engine, StepSettings};
use unimiss_ssl::loss::DinoLossConfig;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const LOSS_TOL: f64 = 1e-5;
const TENSOR_TOL: f64 = 4e-3;
const NORM_TOL: f64 = 1e-4;
const CENTER_TOL: f64 = 1e-4;

/// The metadata JSON stored under `trajectory` in the safetensors header.
fn metadata(path: &Path) -> Result<Value, Box<dyn std::error::Error>> {
    let bytes = std::fs::read(path)?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)?;
    let text = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get("trajectory"))
        .ok_or_else(|| format!("{}: no `trajectory` metadata", path.display()))?;
    Ok(serde_json::from_str(text)?)
}

/// The initial-state `.pth` named in `init` (e.g. "the 'teacher' state of mit_tiny_official.pth"):
/// beside the fixture first, then in the parity fixtures folder.
fn init_state(meta: &Value, fixture: &Path) -> Result<(PathBuf, Which), Box<dyn std::error::Error>> {
    let init = meta["init"].as_str().ok_or("metadata has no `init`")?;
    let name = init
        .split_whitespace()
        .find(|w| w.ends_with(".pth") || w.ends_with(".safetensors"))
        .ok_or_else(|| format!("`init` names no checkpoint file: {init:?}"))?;
    let which = if init.contains("'student'") { Which::Student } else { Which::Teacher };
    let beside = fixture.parent().map(|d| d.join(name)).filter(|p| p.exists());
    let path = beside.unwrap_or_else(|| crate::common::fixtures().join(name));
    if !path.exists() {
        return Err(format!("initial state {name} found neither beside {} nor at {}", fixture.display(), path.display()).into());
    }
    Ok((path, which))
}

fn f(v: &Value, key: &str) -> Result<f64, String> {
    v[key].as_f64().ok_or_else(|| format!("metadata field `{key}` missing or not a number"))
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(f64::MIN_POSITIVE)
}

fn to_f64(t: &Tensor) -> candle::Result<Vec<f64>> {
    t.flatten_all()?.to_dtype(DType::F64)?.to_vec1()
}

/// ‖a − b‖ / ‖b‖.
fn rel_l2(a: &[f64], b: &[f64]) -> f64 {
    let d: f64 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
    let n: f64 = b.iter().map(|y| y * y).sum();
    (d / n.max(f64::MIN_POSITIVE)).sqrt()
}

/// The worst error of one kind: (value, where).
#[derive(Default)]
struct Worst(f64, String);

impl Worst {
    fn see(&mut self, e: f64, at: impl FnOnce() -> String) {
        if e > self.0 || e.is_nan() {
            *self = Worst(e, at());
        }
    }
}

#[test]
#[ignore = "needs the trajectory fixture: set UNIMISS_TRAJECTORY (default ../shared/fixtures/trajectory), run with --include-ignored"]
fn trajectory() -> TestResult {
    let path = crate::common::trajectory();
    println!("trajectory fixture: {}", path.display());
    let meta = metadata(&path)?;
    let dev = Device::Cpu;
    let tensors = candle::safetensors::load(&path, &dev)?;
    let get = |k: &str| tensors.get(k).ok_or_else(|| format!("{}: no tensor {k}", path.display()));

    if meta["use_bn"].as_bool() != Some(false) || meta["norm_last_layer"].as_bool() != Some(true) {
        return Err("fixture head must be use_bn=False, norm_last_layer=True (the only head built here)".into());
    }
    let size3: Vec<usize> = meta["img_size_3d"]
        .as_array()
        .ok_or("img_size_3d")?
        .iter()
        .map(|v| v.as_u64().map(|x| x as usize).ok_or("img_size_3d entry"))
        .collect::<Result<_, _>>()?;
    let arch = meta["config"].as_str().ok_or("config")?.parse()?;
    let mcfg = MitConfig::preset(arch)
        .with_img_size_2d(f(&meta, "img_size_2d")? as usize)
        .with_img_size_3d(size3.as_slice().try_into().map_err(|_| "img_size_3d must have 3 entries")?);
    let out_dim = f(&meta, "head_out_dim")? as usize;
    let hcfg = HeadConfig::new(mcfg.out_dim(), out_dim);
    let l = &meta["loss"];
    if f(l, "ncrops")? != 2.0 {
        return Err("only two crops (two global views) are replayed".into());
    }
    let lcfg = DinoLossConfig {
        out_dim,
        student_temp: f(l, "student_temp")?,
        warmup_teacher_temp: f(l, "warmup_teacher_temp")?,
        teacher_temp: f(l, "teacher_temp")?,
        warmup_teacher_temp_epochs: f(l, "warmup_teacher_temp_epochs")? as usize,
        center_momentum: f(l, "center_momentum")?,
        ..DinoLossConfig::default()
    };
    let clip = f(&meta["optimizer"], "clip")?;
    let mut engine = Engine::new(&mcfg, &hcfg, false, lcfg, f(l, "nepochs")? as usize, 0, &dev)?;

    let (init, which) = init_state(&meta, &path)?;
    println!("initial state: {} ({which})", init.display());
    let sd = checkpoint::load(&init, which)?;
    for (k, v) in &engine.student_vars {
        let t = sd.get(k).ok_or_else(|| format!("{}: no tensor {k}", init.display()))?;
        if t.dims() != v.dims() {
            return Err(format!("{k}: init shape {:?}, model {:?}", t.dims(), v.dims()).into());
        }
        v.set(&t.to_dtype(DType::F32)?)?;
    }
    engine.copy_student_to_teacher()?;

    let mut failures = Vec::new();
    let mut worst_loss = Worst::default();
    for st in meta["steps"].as_array().ok_or("steps")? {
        let k = st["step"].as_u64().ok_or("step")?;
        let modality: Modality = st["modality"].as_str().ok_or_else(|| format!("step {k}: no modality"))?.parse().map_err(|e| format!("step {k}: {e}"))?;
        if st["freeze_3d"].as_bool() != Some(modality == Modality::Image2d) {
            return Err(format!("step {k}: freeze_3d must hold exactly on 2D steps (the engine's rule)").into());
        }
        let epoch = f(st, "epoch")? as usize;
        let tt = f(st, "teacher_temp")?;
        if rel(engine.loss.teacher_temp(epoch), tt) > 1e-12 {
            return Err(format!("step {k}: teacher temperature {} vs fixture {tt}", engine.loss.teacher_temp(epoch)).into());
        }
        let settings = StepSettings {
            lr: f(st, "lr")?,
            wd: f(st, "wd")?,
            momentum: f(st, "momentum")?,
            clip,
            cancel_last_layer: st["cancel_last_layer"].as_bool().ok_or("cancel_last_layer")?,
            set_to_none: false,
        };
        let views = [get(&format!("step{k}.view0"))?.clone(), get(&format!("step{k}.view1"))?.clone()];
        let out = engine.step(modality, &views, epoch, &settings, None, k)?;
        let mut check = |name: &str, got: f64, want: f64| {
            let e = rel(got, want);
            worst_loss.see(e, || format!("step {k} {name}: {got} vs {want}"));
            if !(e <= LOSS_TOL) {
                failures.push(format!("step {k} {name}: {got} vs {want} (rel {e:.2e} > {LOSS_TOL:e})"));
            }
        };
        check("loss", out.total, f(st, "loss")?);
        if let Some(terms) = st["terms"].as_object() {
            for (name, want) in terms {
                let got = out.terms.get(name).copied().ok_or_else(|| format!("step {k}: no term {name}"))?;
                check(name, got, want.as_f64().ok_or("term")?);
            }
        }
        println!("step {k} ({}) loss {:.7} (official {:.7})", modality.name(), out.total, f(st, "loss")?);
    }

    let finals = meta["final"].as_object().ok_or("final")?;
    let (mut worst_tensor, mut worst_norm, mut worst_sum) = (Worst::default(), Worst::default(), Worst::default());
    for (who, vars) in [("student", &engine.student_vars), ("teacher", &engine.teacher_vars)] {
        let ours: BTreeMap<&String, _> = vars.iter().collect();
        let missing: Vec<_> = ours.keys().filter(|k| !finals.contains_key(k.as_str())).collect();
        if !missing.is_empty() {
            failures.push(format!("{who}: parameters not in the fixture: {missing:?}"));
        }
        for (key, info) in finals {
            let var = vars.get(key).ok_or_else(|| format!("{who}: fixture tensor {key} is not a parameter here"))?;
            let t = var.as_tensor();
            let want_shape: Vec<usize> =
                info["shape"].as_array().ok_or("shape")?.iter().filter_map(|v| v.as_u64().map(|x| x as usize)).collect();
            if t.dims() != want_shape.as_slice() {
                return Err(format!("{key}: shape {:?}, fixture {want_shape:?}", t.dims()).into());
            }
            let flat = t.flatten_all()?;
            let got = match tensors.get(&format!("final.idx.{key}")) {
                Some(idx) => to_f64(&flat.index_select(idx, 0)?)?,
                None => to_f64(&flat)?,
            };
            let want = to_f64(get(&format!("final.{who}.{key}"))?)?;
            let e = rel_l2(&got, &want);
            worst_tensor.see(e, || format!("{who} {key}"));
            if !(e <= TENSOR_TOL) {
                failures.push(format!("{who} {key}: relative L2 {e:.2e} > {TENSOR_TOL:e}"));
            }
            let all = to_f64(&flat)?;
            let l2 = all.iter().map(|x| x * x).sum::<f64>().sqrt();
            let want_l2 = f(info, &format!("{who}_l2"))?;
            let e = rel(l2, want_l2);
            worst_norm.see(e, || format!("{who} {key}: {l2} vs {want_l2}"));
            if !(e <= NORM_TOL) {
                failures.push(format!("{who} {key}: L2 norm {l2} vs {want_l2} (rel {e:.2e} > {NORM_TOL:e})"));
            }
            // |Σ| ≤ √n·‖t‖, so the sum is checked on that scale.
            let sum: f64 = all.iter().sum();
            let want_sum = f(info, &format!("{who}_sum"))?;
            let e = (sum - want_sum).abs() / (want_l2 * (all.len() as f64).sqrt()).max(f64::MIN_POSITIVE);
            worst_sum.see(e, || format!("{who} {key}: {sum} vs {want_sum}"));
            if !(e <= NORM_TOL) {
                failures.push(format!("{who} {key}: sum {sum} vs {want_sum} ({e:.2e} of √n·‖t‖ > {NORM_TOL:e})"));
            }
        }
    }
    let center = rel_l2(&to_f64(engine.loss.center())?, &to_f64(get("final.center")?)?);
    if !(center <= CENTER_TOL) {
        failures.push(format!("centre: relative L2 {center:.2e} > {CENTER_TOL:e}"));
    }
    println!("worst step loss/term error: {:.2e} ({})", worst_loss.0, worst_loss.1);
    println!("worst final tensor relative L2: {:.2e} ({})", worst_tensor.0, worst_tensor.1);
    println!("worst whole-tensor L2 norm error: {:.2e} ({})", worst_norm.0, worst_norm.1);
    println!("worst whole-tensor sum error (of √n·‖t‖): {:.2e} ({})", worst_sum.0, worst_sum.1);
    println!("centre relative L2: {center:.2e}");
    if !failures.is_empty() {
        return Err(format!("{} mismatches against {}:\n{}", failures.len(), path.display(), failures.join("\n")).into());
    }
    Ok(())
}
