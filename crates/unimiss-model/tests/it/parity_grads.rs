//! Gradient parity: the fixture's linear functionals of the backbone output, backpropagated
//! (tolerance 1e-4 relative to max, fixtures README).

use candle::{DType, Device, Result, Tensor};
use candle_nn::VarBuilder;
use unimiss_model::Mit;

use crate::common::{assert_close, fixture, fixture_config};

const GRAD_TOL: f64 = 1e-4;

fn check(prefix: &str, inputs: [(&str, &str); 2], loss_name: &str) -> Result<()> {
    let f = fixture();
    let vm = f.weights.to_var_map(&Device::Cpu)?;
    let mit = Mit::new(&fixture_config(), VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu).pp("backbone"))?;
    let mut loss = Tensor::zeros((), DType::F32, &Device::Cpu)?;
    for (input, weights) in inputs {
        let out = mit.forward(&f.io[input])?;
        loss = (loss + (out * &f.grads[weights])?.sum_all()?)?;
    }
    assert_close(loss_name, &loss.reshape(1)?, &f.grads[loss_name], GRAD_TOL)?;
    let grads = loss.backward()?;
    let vars = vm.data().lock().map_err(|_| candle::Error::Msg("poisoned".into()))?;
    let mut checked = 0;
    for (name, want) in &f.grads {
        let Some(key) = name.strip_prefix(prefix) else { continue };
        let var = vars.get(key).unwrap_or_else(|| panic!("no parameter {key}"));
        let got = grads.get(var).unwrap_or_else(|| panic!("no gradient for {key}"));
        assert_close(name, got, want, GRAD_TOL)?;
        checked += 1;
    }
    assert!(checked > 0, "no {prefix}* gradients in the fixture");
    eprintln!("checked {checked} {prefix}* gradients");
    Ok(())
}

#[test]
#[ignore = "needs the parity fixtures: set UNIMISS_FIXTURES (default ../shared/fixtures/parity), run with --include-ignored"]
fn gradients_match_official() -> Result<()> {
    check("grad.", [("input3d", "grad_weights3d"), ("input2d", "grad_weights2d")], "loss_value")
}

/// Gradients through the positional-table resizing (all 14 tables).
#[test]
#[ignore = "needs the parity fixtures: set UNIMISS_FIXTURES (default ../shared/fixtures/parity), run with --include-ignored"]
fn interpolation_gradients_match_official() -> Result<()> {
    check(
        "grad_interp.",
        [("input3d_interp", "grad_weights3d_interp"), ("input2d_interp", "grad_weights2d_interp")],
        "loss_interp_value",
    )
}
