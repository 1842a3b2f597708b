//! Configuration validation and the divergence guard, through the real trainer.

use std::path::{Path, PathBuf};

use unimiss_ssl::{SslError, TrainConfig, Trainer};

fn cfg(out: &Path) -> TrainConfig {
    let mut c = TrainConfig::sample();
    c.output = out.to_path_buf();
    c.data.manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data-manifests/sample.tsv");
    c.data.threads = 1;
    c
}

/// Every real number is checked before anything runs: NaN, infinities and out-of-range values
/// are refused with the field's name.
#[test]
fn non_finite_or_out_of_range_values_are_refused_before_the_run() {
    let base = cfg(Path::new("unused"));
    for (key, value) in [
        ("optim.lr", "nan"),
        ("optim.lr", "inf"),
        ("optim.lr", "0"),
        ("optim.min_lr", "-1e-6"),
        ("optim.weight_decay", "nan"),
        ("optim.momentum_teacher", "1.5"),
        ("optim.clip_grad", "-0.3"),
        ("loss.teacher_temp", "0"),
        ("loss.center_momentum", "nan"),
        ("guard.max_param_norm_ratio", "0.5"),
    ] {
        let mut c = base.clone();
        c.set(key, value).expect("the override itself parses");
        let err = c.validate().expect_err(&format!("{key}={value} must be refused"));
        assert!(err.to_string().contains(key.split('.').next_back().unwrap_or(key)), "{key}={value}: {err}");
    }
    assert!(base.validate().is_ok());
}

/// A learning rate that blows the weights up stops the run at the step that did it, before that
/// step's weights are checkpointed: the newest checkpoint is still the last good one.
#[test]
fn divergence_stops_before_checkpointing_the_exploded_weights() -> unimiss_ssl::Result<()> {
    let tmp = tempfile::tempdir().map_err(|e| SslError::Config(e.to_string()))?;
    let run = tmp.path().join("run");
    let mut c = cfg(&run);
    c.max_steps = 1;
    let mut t = Trainer::new(c.clone(), None, None)?;
    t.progress = false;
    t.run()?;
    let good = unimiss_ssl::checkpoint::resolve(&run)?;
    c.max_steps = 4;
    c.optim.lr = 1e9;
    c.checkpoint.every_steps = 1;
    let mut t = Trainer::new(c, Some(&run), None)?;
    t.progress = false;
    match t.run() {
        Err(SslError::Runtime(unimiss_runtime::RuntimeError::Diverged { step, norm, .. })) => {
            assert_eq!(step, 2, "the first step at lr 1e9 must be caught");
            assert!(!norm.is_finite() || norm > 1e3, "norm {norm}");
        }
        other => panic!("expected Diverged, got {:?}", other.map(|s| s.position)),
    }
    assert_eq!(unimiss_ssl::checkpoint::resolve(&run)?, good, "the exploded weights were checkpointed");
    Ok(())
}
