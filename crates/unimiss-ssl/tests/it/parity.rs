//! Parity against the official `TrainLoss` and `cosine_scheduler` (fixtures README).

use candle::{Device, Tensor, Var};
use unimiss_ssl::loss::{DinoLoss, DinoLossConfig, loss_3d, mean_over_slices};
use unimiss_ssl::schedule::{cosine_scheduler, teacher_temp_schedule};

use crate::common::{assert_close, fixtures};

fn dino_cfg() -> DinoLossConfig {
    DinoLossConfig { out_dim: 1024, ..DinoLossConfig::default() }
}

#[test]
#[ignore = "needs the parity fixtures: set UNIMISS_FIXTURES (default ../shared/fixtures/parity), run with --include-ignored"]
fn dino_loss_2d_matches_official() -> candle::Result<()> {
    let dir = fixtures();
    let f = candle::safetensors::load(dir.join("dino_loss.safetensors"), &Device::Cpu)?;
    let mut loss = DinoLoss::new(dino_cfg(), 10, &Device::Cpu)?;
    loss.set_center(f["center"].clone())?;
    let s = Var::from_tensor(&f["student_output"])?;
    let l = loss.loss(s.as_tensor(), &f["teacher_output"], 0, None)?;
    assert_close("loss", &l.reshape(1)?, &f["loss"], 1e-5);
    let g = l.backward()?;
    let gs = g.get(s.as_tensor()).expect("student gradient");
    assert_close("loss_grad_student", gs, &f["loss_grad_student"], 1e-5);
    assert_close("center_after", loss.center(), &f["center_after"], 1e-5);
    Ok(())
}

#[test]
#[ignore = "needs the parity fixtures: set UNIMISS_FIXTURES (default ../shared/fixtures/parity), run with --include-ignored"]
fn dino_loss_3d_matches_official() -> candle::Result<()> {
    let dir = fixtures();
    let f = candle::safetensors::load(dir.join("dino_loss.safetensors"), &Device::Cpu)?;
    let mut loss = DinoLoss::new(dino_cfg(), 10, &Device::Cpu)?;
    loss.set_center(f["center"].clone())?;
    let s_vol = Var::from_tensor(&f["s3d_volume"])?;
    let s_raw = Var::from_tensor(&f["s3d_slices_raw"])?;
    let s_sl = mean_over_slices(s_raw.as_tensor(), 4)?;
    let t_sl = mean_over_slices(&f["t3d_slices_raw"], 4)?;
    // Check the centre after each of the four calls by running them one at a time.
    let mut probe = loss.clone();
    let pairs: [(&Tensor, &Tensor); 4] =
        [(s_vol.as_tensor(), &f["t3d_volume"]), (&s_sl, &f["t3d_volume"]), (&s_sl, &t_sl), (s_vol.as_tensor(), &t_sl)];
    for (k, (s, t)) in pairs.iter().enumerate() {
        probe.loss(s, t, 0, None)?;
        assert_close(&format!("center3d.{}", k + 1), probe.center(), &f[&format!("center3d.{}", k + 1)], 1e-5);
    }
    let terms = loss_3d(&mut loss, s_vol.as_tensor(), &f["t3d_volume"], &s_sl, &t_sl, 0, None)?;
    assert_close("loss3d_volume", &terms.vv.reshape(1)?, &f["loss3d_volume"], 1e-5);
    assert_close("loss3d_slices_volume", &terms.sv.reshape(1)?, &f["loss3d_slices_volume"], 1e-5);
    assert_close("loss3d_slices", &terms.ss.reshape(1)?, &f["loss3d_slices"], 1e-5);
    assert_close("loss3d_volume_slices", &terms.vs.reshape(1)?, &f["loss3d_volume_slices"], 1e-5);
    let total = terms.total()?;
    assert_close("loss3d_total", &total.reshape(1)?, &f["loss3d_total"], 1e-5);
    let g = total.backward()?;
    assert_close("grad s3d_volume", g.get(s_vol.as_tensor()).expect("grad"), &f["loss3d_grad_s3d_volume"], 1e-5);
    assert_close("grad s3d_slices_raw", g.get(s_raw.as_tensor()).expect("grad"), &f["loss3d_grad_s3d_slices_raw"], 1e-5);
    assert_close("center3d.4", loss.center(), &f["center3d.4"], 1e-5);
    Ok(())
}

#[test]
#[ignore = "needs the parity fixtures: set UNIMISS_FIXTURES (default ../shared/fixtures/parity), run with --include-ignored"]
fn schedules_match_official() {
    let dir = fixtures();
    let text = std::fs::read_to_string(dir.join("schedules.json")).expect("schedules.json");
    let j: serde_json::Value = serde_json::from_str(&text).expect("json");
    let vals = |k: &str| -> Vec<f64> {
        j[k]["values"].as_array().expect("values").iter().map(|v| v.as_f64().expect("f64")).collect()
    };
    let arg = |k: &str, a: &str| j[k]["args"][a].as_f64().expect("arg");
    for k in ["lr", "momentum", "wd"] {
        let got = cosine_scheduler(
            arg(k, "base_value"),
            arg(k, "final_value"),
            arg(k, "epochs") as usize,
            arg(k, "niter_per_ep") as usize,
            arg(k, "warmup_epochs") as usize,
            j[k]["args"]["start_warmup_value"].as_f64().unwrap_or(0.0),
        );
        let want = vals(k);
        assert_eq!(got.len(), want.len(), "{k} length");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!((g - w).abs() <= 1e-12 * w.abs().max(1.0), "{k}[{i}]: {g} vs {w}");
        }
    }
    let t = "teacher_temp";
    let got = teacher_temp_schedule(
        arg(t, "warmup_teacher_temp"),
        arg(t, "teacher_temp"),
        arg(t, "warmup_teacher_temp_epochs") as usize,
        arg(t, "nepochs") as usize,
    );
    let want = vals(t);
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() <= 1e-12, "teacher_temp {g} vs {w}");
    }
}
