use unimiss_tasks::TaskError;
use unimiss_tasks::config::{FinetuneConfig, Schedule};
use unimiss_tasks::nets::Task;

use crate::close;

#[test]
fn presets_and_toml_overrides() -> Result<(), TaskError> {
    let o = FinetuneConfig::official(Task::SEG3D);
    assert_eq!((o.lr, o.weight_decay, o.clip_global_norm, o.schedule), (1e-4, 3e-5, 12.0, Schedule::PolyEpoch));
    assert_eq!(FinetuneConfig::official(Task::SEG2D).adam_eps, 1e-4);
    assert_eq!(FinetuneConfig::official(Task::CLS3D).patience, 30);
    let c = FinetuneConfig::from_toml(Task::CLS2D, "preset = \"ci\"\nepochs = 9\n").map_err(TaskError::Invalid)?;
    assert_eq!((c.epochs, c.arch, c.input_2d), (9, unimiss_model::Arch::Tiny, 64));
    assert!(FinetuneConfig::from_toml(Task::CLS2D, "epochz = 9").is_err());
    assert!(FinetuneConfig::from_toml(Task::CLS2D, "epochs = 0").is_err());
    // poly: lr·(1 − t/T)^0.9
    let p = FinetuneConfig::official(Task::CLS2D);
    close(p.lr_at(0, 50, 100), 1e-4 * 0.5f64.powf(0.9), 1e-15, "poly iter");
    close(o.lr_at(50, 0, 1), 1e-4 * 0.5f64.powf(0.9), 1e-15, "poly epoch");
    Ok(())
}
