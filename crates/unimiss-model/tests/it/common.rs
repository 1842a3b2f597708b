//! Fixture location, the shared fixture model, and the tolerance check of the fixtures README.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use candle::{DType, Device, Result, Tensor};
use unimiss_model::checkpoint::{self, KeyPolicy, Loaded, StateDict, Which};
use unimiss_model::{Head, Mit, MitConfig};

#[path = "../../../../test-support/material.rs"]
mod material;

/// The parity fixtures: `$UNIMISS_FIXTURES`, else `../shared/fixtures/parity` (test-support/material.rs).
pub fn fixtures() -> PathBuf {
    material::material("UNIMISS_FIXTURES", "fixtures/parity", "mit_tiny_official.pth")
}

/// The fixture's build: tiny at 64 / 16×64×64.
pub fn fixture_config() -> MitConfig {
    MitConfig::tiny().with_img_size_2d(64).with_img_size_3d([16, 64, 64])
}

pub struct Fixture {
    pub weights: StateDict,
    pub backbone: Mit,
    pub head: Head,
    pub io: HashMap<String, Tensor>,
    pub grads: HashMap<String, Tensor>,
}

/// Loaded once per test binary; fails the test when the fixtures are missing.
pub fn fixture() -> &'static Fixture {
    static CELL: OnceLock<Fixture> = OnceLock::new();
    CELL.get_or_init(|| {
        let dir = fixtures();
        let load = || -> Result<Fixture> {
            let weights = checkpoint::load_pth(dir.join("mit_tiny_official.pth"), Which::Teacher)?;
            let Loaded { backbone, head, .. } = weights.build(&fixture_config(), KeyPolicy::Exact, &Device::Cpu)?;
            let head = head.ok_or_else(|| candle::Error::Msg("fixture has no head".into()))?;
            let io = candle::safetensors::load(dir.join("mit_tiny_io.safetensors"), &Device::Cpu)?;
            let grads = candle::safetensors::load(dir.join("mit_tiny_grads.safetensors"), &Device::Cpu)?;
            Ok(Fixture { weights, backbone, head, io, grads })
        };
        load().unwrap_or_else(|e| panic!("loading the parity fixtures from {}: {e}", dir.display()))
    })
}

/// `max|ours − want| / max|want|`.
pub fn rel_to_max(ours: &Tensor, want: &Tensor) -> Result<f64> {
    assert_eq!(ours.dims(), want.dims(), "shape mismatch");
    let ours = ours.to_dtype(DType::F64)?;
    let want = want.to_dtype(DType::F64)?;
    let diff = (ours - &want)?.abs()?.max_all()?.to_scalar::<f64>()?;
    let scale = want.abs()?.max_all()?.to_scalar::<f64>()?;
    Ok(diff / scale.max(f64::MIN_POSITIVE))
}

/// Asserts `max|ours − want| ≤ tol · max|want|` and prints the measured error.
pub fn assert_close(name: &str, ours: &Tensor, want: &Tensor, tol: f64) -> Result<f64> {
    let e = rel_to_max(ours, want)?;
    eprintln!("parity {name:<60} rel-to-max {e:.3e} (tol {tol:.0e})");
    assert!(e <= tol, "{name}: relative-to-max error {e:.3e} exceeds {tol:.0e}");
    Ok(e)
}

pub fn io<'a>(f: &'a Fixture, name: &str) -> &'a Tensor {
    f.io.get(name).unwrap_or_else(|| panic!("fixture tensor {name} missing"))
}
