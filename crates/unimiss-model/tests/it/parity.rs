//! Forward parity with the official implementation (fixtures README tolerances: outputs 1e-5,
//! encoder stages 5e-5, relative to the tensor's max).

use candle::{Result, Tensor};

use crate::common::{assert_close, fixture, io};

const OUT_TOL: f64 = 1e-5;
const STAGE_TOL: f64 = 5e-5;

fn forward_case(dim: &str) -> Result<()> {
    let f = fixture();
    let x = io(f, &format!("input{dim}"));
    let out = f.backbone.forward(x)?;
    assert_close(&format!("out{dim}"), &out, io(f, &format!("out{dim}")), OUT_TOL)?;
    let head = f.head.forward(&out)?;
    assert_close(&format!("head{dim}"), &head, io(f, &format!("head{dim}")), OUT_TOL)?;
    let enc = f.backbone.forward_features(x)?;
    assert_close(&format!("enc{dim}.0"), &enc.stem, io(f, &format!("enc{dim}.0")), STAGE_TOL)?;
    for (k, m) in enc.maps.iter().enumerate() {
        let name = format!("enc{dim}.{}", k + 1);
        assert_close(&name, m, io(f, &name), STAGE_TOL)?;
    }
    assert_close(&format!("enc{dim}.4"), &enc.tokens, io(f, &format!("enc{dim}.4")), STAGE_TOL)?;
    Ok(())
}

#[test]
#[ignore = "needs the parity fixtures: set UNIMISS_FIXTURES (default ../shared/fixtures/parity), run with --include-ignored"]
fn forward_2d_matches_official() -> Result<()> {
    forward_case("2d")
}

#[test]
#[ignore = "needs the parity fixtures: set UNIMISS_FIXTURES (default ../shared/fixtures/parity), run with --include-ignored"]
fn forward_3d_matches_official() -> Result<()> {
    forward_case("3d")
}

/// Other input sizes: every positional table is resized (square and non-square, 2D and 3D).
#[test]
#[ignore = "needs the parity fixtures: set UNIMISS_FIXTURES (default ../shared/fixtures/parity), run with --include-ignored"]
fn interpolated_sizes_match_official() -> Result<()> {
    let f = fixture();
    for case in ["2d_interp", "2d_interp1", "3d_interp", "3d_interp1"] {
        let out = f.backbone.forward(io(f, &format!("input{case}")))?;
        assert_close(&format!("out{case}"), &out, io(f, &format!("out{case}")), OUT_TOL)?;
    }
    Ok(())
}

/// The 3D step's slices: 32 slices through the 2D path, head, mean over depth.
#[test]
#[ignore = "needs the parity fixtures: set UNIMISS_FIXTURES (default ../shared/fixtures/parity), run with --include-ignored"]
fn slices_match_official() -> Result<()> {
    let f = fixture();
    let input3d = io(f, "input3d");
    // input3d.view(-1, 64, 64).unsqueeze(1).repeat_interleave(3, 1)
    let slices = input3d.reshape(((), 1, 64, 64))?.repeat((1, 3, 1, 1))?;
    assert_close("slices_input (built from input3d)", &slices, io(f, "slices_input"), 0.0)?;
    let out = f.backbone.forward(&slices)?;
    assert_close("slices_out", &out, io(f, "slices_out"), OUT_TOL)?;
    let head = f.head.forward(&out)?;
    assert_close("slices_head", &head, io(f, "slices_head"), OUT_TOL)?;
    let mean = head.reshape((2, 16, ()))?.mean(1)?;
    assert_close("slices_mean", &mean, io(f, "slices_mean"), OUT_TOL)?;
    Ok(())
}

/// The checks above can fail: a small perturbation of the input (1e-3) moves the outputs by more
/// than the tolerance.
#[test]
#[ignore = "needs the parity fixtures: set UNIMISS_FIXTURES (default ../shared/fixtures/parity), run with --include-ignored"]
fn tolerance_detects_a_perturbed_input() -> Result<()> {
    let f = fixture();
    let x = io(f, "input2d");
    let bumped = (x + Tensor::ones_like(x)?.affine(1e-3, 0.0)?)?;
    let out = f.backbone.forward(&bumped)?;
    let e = crate::common::rel_to_max(&out, io(f, "out2d"))?;
    assert!(e > OUT_TOL, "perturbed input still within tolerance ({e:.3e})");
    Ok(())
}

/// Train mode (drop-path off) gives the same output as eval mode.
#[test]
#[ignore = "needs the parity fixtures: set UNIMISS_FIXTURES (default ../shared/fixtures/parity), run with --include-ignored"]
fn train_mode_equals_eval_mode_without_drop_path() -> Result<()> {
    let f = fixture();
    let x = io(f, "input2d");
    let a = f.backbone.forward_t(x, true)?;
    let b = f.backbone.forward_t(x, false)?;
    assert_close("train vs eval", &a, &b, 0.0)?;
    Ok(())
}
