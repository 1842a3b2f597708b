//! Tests of the pretraining configuration: overrides, shipped presets, round trip, the
//! anti-collapse options' defaults and checks.

use super::*;

#[test]
fn set_overrides_nested_fields() -> Result<()> {
    let mut c = TrainConfig::paper();
    c.set("optim.lr", "5e-4")?;
    c.set("optim.epochs", "3")?;
    c.set("optim.min_lr", "0")?;
    c.set("model.img_size_3d", "[16, 64, 64]")?;
    c.set("fixes.per_batch_schedule", "true")?;
    c.set("output", "runs/x")?;
    c.set("device", "cuda:1")?;
    assert_eq!(c.optim.lr, 5e-4);
    assert_eq!(c.optim.epochs, 3);
    assert_eq!(c.optim.min_lr, 0.0);
    assert_eq!(c.model.img_size_3d, [16, 64, 64]);
    assert!(c.fixes.per_batch_schedule);
    assert_eq!(c.output, PathBuf::from("runs/x"));
    assert_eq!(c.device, "cuda:1");
    let e = c.set("optim.nope", "1").err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("no field \"nope\"") && e.contains("keys of optim are") && e.contains("batch_size_3d"), "{e}");
    let e = c.set("optm.lr", "1").err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("keys of the configuration are") && e.contains("optim"), "{e}");
    assert!(c.set("optim.epochs", "many").is_err());
    Ok(())
}

#[test]
fn shipped_configs_are_the_presets() -> Result<()> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    assert_eq!(TrainConfig::load(&dir.join("paper.toml"))?, TrainConfig::paper());
    assert_eq!(TrainConfig::load(&dir.join("sample.toml"))?, TrainConfig::sample());
    assert_eq!(TrainConfig::load(&dir.join("small-batch.toml"))?, TrainConfig::small_batch());
    assert_eq!(TrainConfig::preset("small-batch")?, TrainConfig::small_batch());
    TrainConfig::small_batch().validate()?;
    Ok(())
}

#[test]
fn toml_round_trip() -> Result<()> {
    for c in [TrainConfig::paper(), TrainConfig::sample(), TrainConfig::small_batch()] {
        assert_eq!(TrainConfig::from_toml(&c.to_toml()?)?, c);
    }
    Ok(())
}

#[test]
fn anti_collapse_options_are_off_by_default_and_checked() -> Result<()> {
    use crate::anticollapse::Centering;
    for c in [TrainConfig::paper(), TrainConfig::sample()] {
        assert_eq!(c.loss.centering, Centering::Mean);
        assert_eq!(c.loss.koleo_weight, 0.0);
        assert_eq!(c.optim.freeze_last_layer_steps, 0);
        assert_eq!(c.optim.batch_size_3d, 0);
        assert_eq!(c.optim.momentum_teacher_end, 1.0);
        assert_eq!(c.loss.dino(c.model.out_dim), crate::loss::DinoLossConfig { out_dim: c.model.out_dim, ..Default::default() });
    }
    let mut c = TrainConfig::sample();
    c.set("loss.centering", "\"sinkhorn_knopp\"")?;
    c.set("loss.koleo_weight", "0.1")?;
    c.set("optim.batch_size_3d", "3")?;
    assert_eq!(c.loss.centering, Centering::SinkhornKnopp);
    assert_eq!(c.optim.batch_size_of(crate::Modality::Volume3d), 3);
    assert_eq!(c.optim.batch_size_of(crate::Modality::Image2d), c.optim.batch_size);
    c.validate()?;
    assert!(c.set("loss.centering", "\"median\"").is_err());
    for (k, v) in [("loss.koleo_weight", "-1"), ("optim.momentum_teacher_end", "0.5"), ("loss.sinkhorn_iterations", "0")] {
        let mut bad = c.clone();
        bad.set(k, v)?;
        let e = bad.validate().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains(k), "{k}={v}: {e}");
    }
    Ok(())
}
