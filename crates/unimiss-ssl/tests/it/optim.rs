//! AdamW, clipping, last-layer cancel, the PyTorch<2.0 zero-grad quirk and the EMA teacher,
//! against steps computed by hand in f64.

use std::collections::BTreeMap;

use candle::{Device, Tensor, Var};
use unimiss_ssl::Modality;
use unimiss_ssl::optim::{AdamW, Clip, Decay, Group, StepOptions, clip_one, ema_update};

fn var(v: &[f32], shape: &[usize]) -> Var {
    Var::from_tensor(&Tensor::from_slice(v, shape, &Device::Cpu).expect("tensor")).expect("var")
}

fn vals(v: &Var) -> Vec<f32> {
    v.as_tensor().flatten_all().and_then(|t| t.to_vec1()).expect("vec")
}

fn opts(lr: f64, wd: f64) -> StepOptions {
    StepOptions { lr, wd, clip: Clip::Off, cancel_last_layer: false, frozen: None, set_to_none: false }
}

/// PyTorch 1.8 AdamW on one scalar, f64: returns (theta, m, v).
fn adamw_ref(theta: f64, m: f64, v: f64, g: f64, step: i32, lr: f64, wd: f64) -> (f64, f64, f64) {
    let theta = theta * (1.0 - lr * wd);
    let m = 0.9 * m + 0.1 * g;
    let v = 0.999 * v + 0.001 * g * g;
    let bc1 = 1.0 - 0.9f64.powi(step);
    let bc2 = 1.0 - 0.999f64.powi(step);
    let denom = v.sqrt() / bc2.sqrt() + 1e-8;
    (theta - lr / bc1 * m / denom, m, v)
}

fn close(a: f32, b: f64, what: &str) {
    assert!((f64::from(a) - b).abs() <= 1e-6 * b.abs().max(1e-3), "{what}: {a} vs {b}");
}

#[test]
fn groups_follow_the_official_rule() {
    assert_eq!(Group::of("backbone.transformer.block1.0.attn.q.weight", 2), Group::Regularised);
    assert_eq!(Group::of("backbone.transformer.pos_embed2D1", 3), Group::Regularised);
    assert_eq!(Group::of("backbone.transformer.block1.0.attn.q.bias", 1), Group::NoDecay);
    assert_eq!(Group::of("backbone.norm.weight", 1), Group::NoDecay);
    let mut vars = BTreeMap::new();
    vars.insert("head.last_layer.weight_g".to_string(), var(&[1.0, 1.0], &[2, 1]));
    vars.insert("head.last_layer.weight_v".to_string(), var(&[1.0, 1.0], &[2, 1]));
    let opt = AdamW::new(&vars);
    let names: Vec<&str> = opt.params().iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["head.last_layer.weight_v"], "weight_g is never trained");
}

#[test]
fn adamw_two_steps_match_hand_computation() -> candle::Result<()> {
    let (w0, b0) = ([0.5f32, -1.0, 2.0, 0.25], [0.1f32, -0.2]);
    let mut vars = BTreeMap::new();
    vars.insert("l.weight".to_string(), var(&w0, &[2, 2]));
    vars.insert("l.bias".to_string(), var(&b0, &[2]));
    let mut opt = AdamW::new(&vars);
    let gw = [0.1f32, -0.2, 0.3, 0.0];
    let gb = [-0.05f32, 0.5];
    let (lr, wd) = (0.01, 0.4);
    let mut ref_w: Vec<(f64, f64, f64)> = w0.iter().map(|&x| (f64::from(x), 0.0, 0.0)).collect();
    let mut ref_b: Vec<(f64, f64, f64)> = b0.iter().map(|&x| (f64::from(x), 0.0, 0.0)).collect();
    for step in 1..=2 {
        let mut grads = BTreeMap::new();
        grads.insert("l.weight".to_string(), Tensor::from_slice(&gw, (2, 2), &Device::Cpu)?);
        grads.insert("l.bias".to_string(), Tensor::from_slice(&gb, 2, &Device::Cpu)?);
        let r = opt.step(&grads, &opts(lr, wd))?;
        assert_eq!(r.stepped, 2);
        for (s, g) in ref_w.iter_mut().zip(gw) {
            *s = adamw_ref(s.0, s.1, s.2, f64::from(g), step, lr, wd);
        }
        for (s, g) in ref_b.iter_mut().zip(gb) {
            *s = adamw_ref(s.0, s.1, s.2, f64::from(g), step, lr, 0.0); // biases: no decay
        }
    }
    for (a, b) in vals(&vars["l.weight"]).iter().zip(&ref_w) {
        close(*a, b.0, "weight");
    }
    for (a, b) in vals(&vars["l.bias"]).iter().zip(&ref_b) {
        close(*a, b.0, "bias");
    }
    Ok(())
}

#[test]
fn per_parameter_clipping() -> candle::Result<()> {
    let g = Tensor::from_slice(&[3.0f32, 4.0], 2, &Device::Cpu)?; // norm 5
    let (c, clipped) = clip_one(&g, 0.3)?;
    assert!(clipped);
    let c: Vec<f32> = c.to_vec1()?;
    let coef = 0.3 / (5.0 + 1e-6);
    close(c[0], 3.0 * coef, "clipped[0]");
    close(c[1], 4.0 * coef, "clipped[1]");
    let small = Tensor::from_slice(&[0.1f32, 0.1], 2, &Device::Cpu)?;
    let (s, clipped) = clip_one(&small, 0.3)?;
    assert!(!clipped);
    assert_eq!(s.to_vec1::<f32>()?, vec![0.1, 0.1]);
    Ok(())
}

#[test]
fn frozen_3d_params_keep_moving_after_their_first_gradient() -> candle::Result<()> {
    // Reference §3.6: once a 3D parameter has had a gradient, 2D epochs step it with a zero
    // gradient (decay + decaying momentum). With `set_to_none` (fix §8.3) it stays put.
    for set_to_none in [false, true] {
        let mut vars = BTreeMap::new();
        vars.insert("backbone.patch_embed3D0.conv.weight".to_string(), var(&[1.0, 2.0], &[1, 2]));
        let mut opt = AdamW::new(&vars);
        let (lr, wd) = (0.01, 0.1);
        let mut o = opts(lr, wd);
        o.set_to_none = set_to_none;
        // A 2D epoch first: no gradient has existed, nothing happens.
        o.frozen = Some(Modality::Volume3d);
        let r = opt.step(&BTreeMap::new(), &o)?;
        assert_eq!(r, Default::default());
        assert_eq!(vals(&vars["backbone.patch_embed3D0.conv.weight"]), vec![1.0, 2.0]);
        // A 3D step with a gradient.
        o.frozen = None;
        let mut grads = BTreeMap::new();
        grads.insert("backbone.patch_embed3D0.conv.weight".to_string(), Tensor::from_slice(&[0.5f32, -0.5], (1, 2), &Device::Cpu)?);
        opt.step(&grads, &o)?;
        let mut refs: Vec<(f64, f64, f64)> =
            [1.0, 2.0].iter().zip([0.5, -0.5]).map(|(&t, g)| adamw_ref(t, 0.0, 0.0, g, 1, lr, wd)).collect();
        // A 2D step: the gradient (if any) is ignored because the parameter is frozen.
        o.frozen = Some(Modality::Volume3d);
        let r = opt.step(&grads, &o)?;
        let now = vals(&vars["backbone.patch_embed3D0.conv.weight"]);
        if set_to_none {
            assert_eq!(r.stepped_zero_grad, 0);
            for (a, b) in now.iter().zip(&refs) {
                close(*a, b.0, "untouched");
            }
        } else {
            assert_eq!(r.stepped_zero_grad, 1);
            for s in &mut refs {
                *s = adamw_ref(s.0, s.1, s.2, 0.0, 2, lr, wd);
            }
            for (a, b) in now.iter().zip(&refs) {
                close(*a, b.0, "zero-grad step");
            }
        }
    }
    Ok(())
}

#[test]
fn last_layer_gradient_is_cancelled() -> candle::Result<()> {
    let mut vars = BTreeMap::new();
    vars.insert("head.last_layer.weight_v".to_string(), var(&[1.0, 2.0], &[1, 2]));
    vars.insert("head.mlp.0.weight".to_string(), var(&[1.0, 2.0], &[1, 2]));
    let mut opt = AdamW::new(&vars);
    let g = Tensor::from_slice(&[0.5f32, -0.5], (1, 2), &Device::Cpu)?;
    let grads: BTreeMap<String, Tensor> =
        vars.keys().map(|k| (k.clone(), g.clone())).collect();
    let mut o = opts(0.01, 0.1);
    o.cancel_last_layer = true;
    let r = opt.step(&grads, &o)?;
    assert_eq!(r.stepped, 1);
    assert_eq!(vals(&vars["head.last_layer.weight_v"]), vec![1.0, 2.0]);
    assert_ne!(vals(&vars["head.mlp.0.weight"]), vec![1.0, 2.0]);
    Ok(())
}

#[test]
fn ema_pairs_by_name() -> candle::Result<()> {
    let mut s = BTreeMap::new();
    let mut t = BTreeMap::new();
    s.insert("a".to_string(), var(&[1.0], &[1]));
    s.insert("b".to_string(), var(&[10.0], &[1]));
    t.insert("b".to_string(), var(&[0.0], &[1]));
    t.insert("a".to_string(), var(&[2.0], &[1]));
    ema_update(&t, &s, 0.9)?;
    close(vals(&t["a"])[0], 0.9 * 2.0 + 0.1 * 1.0, "a");
    close(vals(&t["b"])[0], 0.1 * 10.0, "b");
    t.insert("c".to_string(), var(&[0.0], &[1]));
    assert!(ema_update(&t, &s, 0.9).is_err(), "unpaired name must fail");
    Ok(())
}

/// Fine-tuning policy: every parameter decayed (1-D included), `set_to_none`.
#[test]
fn finetune_policy_first_step_by_hand() -> candle::Result<()> {
    let w = var(&[1.0], &[1]);
    let vars = BTreeMap::from([("w".to_string(), w.clone())]);
    let mut opt = AdamW::with_decay(&vars, Decay::All, 1e-8);
    let g = BTreeMap::from([("w".to_string(), Tensor::new(&[0.5f32], &Device::Cpu)?)]);
    let o = StepOptions { clip: Clip::GlobalNorm(0.0), set_to_none: true, ..opts(0.1, 0.01) };
    let rep = opt.step(&g, &o)?;
    assert_eq!(rep.grad_norm, Some(0.5));
    // decay: 1·(1 − 0.1·0.01) = 0.999; m̂ = 0.5, v̂ = 0.25 → update 0.1 → 0.899
    close(vals(&w)[0], 0.899, "theta");
    Ok(())
}

/// `clip_grad_norm_`: every gradient scaled by max/(‖g‖ + 1e-6) when that is below 1; a
/// non-finite norm is an error.
#[test]
fn global_norm_clipping_scales_every_gradient() -> candle::Result<()> {
    let (a, b) = (var(&[0.0], &[1]), var(&[0.0], &[1]));
    let vars = BTreeMap::from([("a".to_string(), a.clone()), ("b".to_string(), b.clone())]);
    let mut opt = AdamW::with_decay(&vars, Decay::All, 1e-8);
    let t = |v: f32| Tensor::new(&[v], &Device::Cpu);
    let g = BTreeMap::from([("a".to_string(), t(3.0)?), ("b".to_string(), t(4.0)?)]);
    let o = StepOptions { clip: Clip::GlobalNorm(1.0), set_to_none: true, ..opts(0.1, 0.0) };
    let rep = opt.step(&g, &o)?;
    assert_eq!(rep.grad_norm, Some(5.0));
    let m = |i: usize| -> candle::Result<f32> { opt.params()[i].state.as_ref().map_or(Ok(f32::NAN), |s| Ok(s.exp_avg.to_vec1::<f32>()?[0])) };
    // clipped gradients 3/5, 4/5 (up to the 1e-6); m = 0.1·g
    close(m(0)?, 0.06, "m.a");
    close(m(1)?, 0.08, "m.b");
    let bad = BTreeMap::from([("a".to_string(), t(f32::NAN)?)]);
    assert!(opt.step(&bad, &o).is_err(), "a NaN gradient norm must stop the step");
    Ok(())
}

/// The moments a step keeps are detached: memory does not grow with the steps (the fine-tuning
/// copy of this optimiser kept every step's graph alive through them).
#[test]
fn kept_tensors_are_detached() -> candle::Result<()> {
    let w = var(&[0.5, -0.5], &[2]);
    let vars = BTreeMap::from([("w".to_string(), w.clone())]);
    let mut opt = AdamW::with_decay(&vars, Decay::All, 1e-8);
    for _ in 0..3 {
        let loss = (w.as_tensor().sqr()? * 2.0)?.sum_all()?;
        let store = loss.backward()?;
        let g = BTreeMap::from([("w".to_string(), store.get(w.as_tensor()).cloned().ok_or_else(|| candle::Error::Msg("no grad".into()))?)]);
        opt.step(&g, &StepOptions { clip: Clip::GlobalNorm(1.0), set_to_none: true, ..opts(0.1, 0.01) })?;
    }
    let st = opt.params()[0].state.as_ref().ok_or_else(|| candle::Error::Msg("no state".into()))?;
    // A tensor with a backprop op keeps its inputs (and their graph) alive.
    assert!(!st.exp_avg.track_op() && !st.exp_avg_sq.track_op(), "moments keep a graph");
    Ok(())
}
