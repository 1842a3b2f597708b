//! Mixed precision (`optim.precision = "bf16"`): the backbones run in bfloat16 on casts of the
//! f32 master weights; the first step's loss stays within bf16 rounding of the f32 step, the
//! gradients reach the f32 weights (they move), and everything the optimiser keeps is f32.

use candle::{DType, Device, Tensor};
use unimiss_model::{HeadConfig, MitConfig};
use unimiss_ssl::config::Precision;
use unimiss_ssl::engine::{Engine, StepSettings};
use unimiss_ssl::loss::DinoLossConfig;
use unimiss_ssl::Modality;

fn engine(precision: Precision) -> unimiss_ssl::Result<Engine> {
    let mcfg = MitConfig::for_run(unimiss_model::Arch::Tiny, 64, [16, 64, 64]).map_err(|e| unimiss_ssl::SslError::Config(e.to_string()))?;
    let hcfg = HeadConfig::new(mcfg.out_dim(), 64);
    let lcfg = DinoLossConfig { out_dim: 64, ..DinoLossConfig::default() };
    let mut e = Engine::new(&mcfg, &hcfg, false, lcfg, 4, 7, &Device::Cpu)?;
    e.precision = precision;
    Ok(e)
}

#[test]
fn a_bf16_step_matches_the_f32_step_to_bf16_rounding() -> unimiss_ssl::Result<()> {
    let settings = StepSettings { lr: 1e-3, wd: 0.04, momentum: 0.996, clip: 3.0, cancel_last_layer: false, set_to_none: false };
    let views2 = [Tensor::rand(0f32, 1.0, (2, 3, 64, 64), &Device::Cpu)?, Tensor::rand(0f32, 1.0, (2, 3, 64, 64), &Device::Cpu)?];
    let views3 = [Tensor::randn(0f32, 1.0, (2, 1, 16, 64, 64), &Device::Cpu)?, Tensor::randn(0f32, 1.0, (2, 1, 16, 64, 64), &Device::Cpu)?];
    for (m, views) in [(Modality::Image2d, &views2), (Modality::Volume3d, &views3)] {
        let (mut f, mut h) = (engine(Precision::F32)?, engine(Precision::Bf16)?);
        let key = "backbone.transformer.block1.0.attn.q.weight";
        let before = h.student_vars[key].as_tensor().copy()?;
        let (a, b) = (f.step(m, views, 0, &settings, None, 1)?, h.step(m, views, 0, &settings, None, 1)?);
        let rel = (a.total - b.total).abs() / a.total.abs();
        assert!(rel < 2e-2, "{m}: f32 loss {} vs bf16 {} (relative {rel:.2e})", a.total, b.total);
        assert!(rel > 0.0, "{m}: the bf16 step gave the f32 loss bit for bit: it did not run in bf16");
        for (k, v) in h.student_vars.iter().chain(&h.teacher_vars) {
            assert_eq!(v.dtype(), DType::F32, "{k} is no longer f32");
        }
        let moved = (h.student_vars[key].as_tensor() - &before)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(moved > 0.0, "{m}: the bf16 step did not update the f32 master weight {key}");
        // the f32 engine and the bf16 engine end the step close: the update is the same up to rounding
        let diff = (h.student_vars[key].as_tensor() - f.student_vars[key].as_tensor())?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff <= 2.0 * moved.max(1e-6), "{m}: bf16 update {diff} apart from f32 (step size {moved})");
    }
    Ok(())
}
