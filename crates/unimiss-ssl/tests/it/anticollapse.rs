//! The anti-collapse options through the real trainer on the shipped sample (4 X-rays, 6 CT
//! tiles): Sinkhorn-Knopp targets, the KoLeo term, a 3D batch size of its own, the last layer
//! frozen for a number of steps, the teacher momentum's end value, and the collapse signals
//! logged per step and per epoch.

use std::path::{Path, PathBuf};

use unimiss_ssl::anticollapse::Centering;
use unimiss_ssl::log::{EpochRecord, read};
use unimiss_ssl::{SslError, TrainConfig, Trainer};

fn cfg(out: &Path, max_steps: u64) -> TrainConfig {
    let mut c = TrainConfig::sample();
    c.output = out.to_path_buf();
    c.data.manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data-manifests/sample.tsv");
    c.data.threads = 1;
    c.optim.epochs = 2;
    c.optim.batch_size_3d = 3;
    c.optim.freeze_last_layer = 0;
    c.optim.freeze_last_layer_steps = 2;
    c.optim.momentum_teacher_end = 0.999;
    c.fixes.per_batch_schedule = true;
    c.loss.centering = Centering::SinkhornKnopp;
    c.loss.koleo_weight = 0.1;
    c.checkpoint.every_epochs = 0;
    c.max_steps = max_steps;
    c
}

fn run(c: TrainConfig) -> unimiss_ssl::Result<Trainer> {
    let mut t = Trainer::new(c, None, None)?;
    t.progress = false;
    t.run()?;
    Ok(t)
}

fn last_layer(t: &Trainer) -> unimiss_ssl::Result<Vec<f32>> {
    let v = t.student_vars().get("head.last_layer.weight_v").ok_or_else(|| SslError::Config("no head.last_layer.weight_v".into()))?;
    Ok(v.as_tensor().flatten_all()?.to_vec1::<f32>()?)
}

#[test]
fn anti_collapse_options_train_and_log_their_signals() -> unimiss_ssl::Result<()> {
    let tmp = tempfile::tempdir().map_err(|e| SslError::Config(e.to_string()))?;
    // epoch 0: 2D, 4 images / batch 2 = 2 steps; epoch 1: 3D, 6 tiles / batch 3 = 2 steps
    let t = run(cfg(&tmp.path().join("full"), 0))?;
    let (steps, _) = read(&tmp.path().join("full/log.jsonl"))?;
    let per: Vec<(usize, &str)> = steps.iter().map(|s| (s.epoch, s.modality.name())).collect();
    assert_eq!(per, vec![(0, "2d"), (0, "2d"), (1, "3d"), (1, "3d")], "3D batches of 3");
    for s in &steps {
        let koleo = s.terms.get("koleo").copied().unwrap_or(f64::NAN);
        assert!(koleo.is_finite() && koleo > 0.0, "step {}: koleo term {koleo}", s.step);
        let dino: f64 = s.terms.iter().filter(|(k, _)| *k != "koleo").map(|(_, v)| v).sum();
        assert!((s.loss - dino - koleo).abs() < 1e-4 * s.loss.abs().max(1.0), "step {}: total {} ≠ terms {:?}", s.step, s.loss, s.terms);
        assert!(s.teacher_info >= -1e-4 && s.teacher_info <= (2.0 * 3.0f64).ln() + 1e-4, "step {}: I = {}", s.step, s.teacher_info);
        assert!((s.teacher_info - (s.teacher_mean_entropy - s.teacher_entropy)).abs() < 1e-9);
        let c = s.feature_cosine.unwrap_or(f64::NAN);
        assert!((-1.0..=1.0).contains(&c), "step {}: feature cosine {c}", s.step);
        // momentum follows a cosine from 0.996 to 0.999 over the run's 4 steps
        assert!(s.momentum >= 0.996 - 1e-12 && s.momentum <= 0.999 + 1e-12, "step {}: momentum {}", s.step, s.momentum);
    }
    let text = std::fs::read_to_string(tmp.path().join("full/log.jsonl")).map_err(|e| SslError::Config(e.to_string()))?;
    let epochs: Vec<EpochRecord> = text.lines().filter(|l| l.contains("\"kind\":\"epoch\"")).filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert_eq!(epochs.len(), 2);
    assert!(epochs.iter().all(|e| e.feature_cosine.is_some() && e.terms_mean.contains_key("koleo")));
    drop(t);

    // the last layer does not move in the first 2 steps, and does in the third
    let init = last_layer(&Trainer::new(cfg(&tmp.path().join("init"), 1), None, None)?)?;
    let two = last_layer(&run(cfg(&tmp.path().join("two"), 2))?)?;
    let three = last_layer(&run(cfg(&tmp.path().join("three"), 3))?)?;
    assert_eq!(init, two, "last layer moved while frozen by freeze_last_layer_steps");
    assert_ne!(two, three, "last layer did not move after the frozen steps");
    Ok(())
}

/// The KoLeo term needs two samples per view; a batch of one is refused before any work.
#[test]
fn koleo_with_a_batch_of_one_is_refused_up_front() {
    let mut c = TrainConfig::sample();
    c.loss.koleo_weight = 0.1;
    c.optim.batch_size_3d = 1;
    let e = c.validate().err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("koleo") && e.contains("batch"), "{e}");
}

/// The teacher temperature warm-up warms: linear from `warmup_teacher_temp` over
/// `warmup_teacher_temp_epochs`, then constant (DINO's 0.04 → 0.07 schedule).
#[test]
fn teacher_temperature_warm_up_warms() -> candle::Result<()> {
    use unimiss_ssl::loss::{DinoLoss, DinoLossConfig};
    let cfg = DinoLossConfig { out_dim: 8, warmup_teacher_temp: 0.04, teacher_temp: 0.07, warmup_teacher_temp_epochs: 4, ..Default::default() };
    let l = DinoLoss::new(cfg, 10, &candle::Device::Cpu)?;
    let temps: Vec<f64> = (0..6).map(|e| l.teacher_temp(e)).collect();
    for (t, want) in temps.iter().zip([0.04, 0.05, 0.06, 0.07, 0.07, 0.07]) {
        assert!((t - want).abs() < 1e-12, "{temps:?}");
    }
    Ok(())
}
