//! Every parameter receives a finite, non-zero gradient (2D pass + 3D pass), except the frozen
//! weight-norm gain, which receives none.

use candle::{DType, Device, Result, Tensor};
use candle_nn::{VarBuilder, VarMap};
use unimiss_model::{HeadConfig, MitConfig, MitWithHead, is_frozen};

#[test]
fn every_parameter_gets_a_gradient() -> Result<()> {
    let dev = Device::Cpu;
    let cfg = MitConfig::tiny().with_img_size_2d(64).with_img_size_3d([16, 64, 64]);
    let vm = VarMap::new();
    let model = MitWithHead::new(&cfg, &HeadConfig::new(48, 64), VarBuilder::from_varmap(&vm, DType::F32, &dev))?;
    let x2 = Tensor::rand(0f32, 1.0, (2, 3, 64, 64), &dev)?;
    let x3 = Tensor::randn(0f32, 1.0, (1, 1, 16, 64, 64), &dev)?;
    let mut loss = Tensor::zeros((), DType::F32, &dev)?;
    for x in [&x2, &x3] {
        let logits = model.forward(x)?;
        // A loss whose gradient does not vanish through the L2 normalisation.
        let w = Tensor::randn(0f32, 1.0, logits.dims(), &dev)?;
        loss = (loss + (logits * w)?.sum_all()?)?;
    }
    let grads = loss.backward()?;
    let vars = vm.data().lock().map_err(|_| candle::Error::Msg("poisoned".into()))?;
    assert_eq!(vars.len(), 207);
    let mut bad = Vec::new();
    for (name, var) in vars.iter() {
        match grads.get(var) {
            None if is_frozen(name) => {}
            Some(_) if is_frozen(name) => bad.push(format!("{name}: frozen but has a gradient")),
            None => bad.push(format!("{name}: no gradient")),
            Some(g) => {
                let g = g.to_dtype(DType::F64)?;
                let v: Vec<f64> = g.flatten_all()?.to_vec1()?;
                if v.iter().any(|x| !x.is_finite()) {
                    bad.push(format!("{name}: non-finite gradient"));
                } else if v.iter().all(|x| *x == 0.0) {
                    bad.push(format!("{name}: all-zero gradient"));
                }
            }
        }
    }
    assert!(bad.is_empty(), "gradient problems:\n{}", bad.join("\n"));
    Ok(())
}

/// With a drop-path rate, train mode is stochastic per sample and eval mode is not.
#[test]
fn drop_path_acts_only_in_training() -> Result<()> {
    let dev = Device::Cpu;
    let cfg = MitConfig::tiny().with_img_size_2d(64).with_img_size_3d([16, 64, 64]).with_drop_path(0.5);
    let vm = VarMap::new();
    let mit = unimiss_model::Mit::new(&cfg, VarBuilder::from_varmap(&vm, DType::F32, &dev).pp("backbone"))?;
    let x = Tensor::rand(0f32, 1.0, (4, 3, 64, 64), &dev)?;
    let e1: Vec<f32> = mit.forward(&x)?.flatten_all()?.to_vec1()?;
    let e2: Vec<f32> = mit.forward(&x)?.flatten_all()?.to_vec1()?;
    assert_eq!(e1, e2, "eval mode must be deterministic");
    let differs = (0..8).any(|_| {
        mit.forward_t(&x, true)
            .and_then(|t| t.flatten_all()?.to_vec1::<f32>())
            .map(|t| t != e1)
            .unwrap_or(false)
    });
    assert!(differs, "drop-path 0.5 never changed a training forward in 8 tries");
    Ok(())
}
