use std::collections::BTreeSet;

use candle::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use unimiss_model::checkpoint::Which;
use unimiss_model::{Mit, MitConfig, SeededVarMap, Modality};
use unimiss_tasks::TaskError;
use unimiss_tasks::augment::{Augmenter, SampleArrays};
use unimiss_tasks::config::FinetuneConfig;
use unimiss_tasks::evaluate::{evaluate, predict};
use unimiss_tasks::finetune::{FinetuneJob, finetune};
use unimiss_tasks::nets::{SegNet, Task, load_pretrained};
use unimiss_tasks::phantoms::{PhantomConfig, generate};

fn cfg() -> MitConfig {
    MitConfig::tiny().with_img_size_2d(64).with_img_size_3d([16, 64, 64])
}

/// Every parameter the task uses receives a finite, non-zero gradient.
fn check_grads(vm: &VarMap, task: Task, loss: &Tensor) -> Result<usize, TaskError> {
    let grads = loss.backward()?;
    let data = vm.data().lock().map_err(|_| TaskError::Invalid("lock".into()))?;
    let mut n = 0;
    for (k, v) in data.iter().filter(|(k, _)| task.uses(k)) {
        let g = grads.get(v.as_tensor()).ok_or_else(|| TaskError::Invalid(format!("{task}: {k} gets no gradient")))?;
        let m = g.abs()?.max_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        assert!(m.is_finite() && m > 0.0, "{task}: gradient of {k} is {m}");
        n += 1;
    }
    assert!(data.keys().all(|k| !k.contains("cls_tokens")), "a segmentation network has no class tokens");
    Ok(n)
}

#[test]
fn seg_nets_shapes_and_every_parameter_gets_a_gradient() -> Result<(), TaskError> {
    let dev = Device::Cpu;
    let vm = VarMap::new();
    let net = SegNet::new(&cfg(), Modality::Volume3d, 4, true, SeededVarMap::var_builder(&vm, 3, DType::F32, &dev))?;
    let x = Tensor::randn(0f32, 1.0, (1, 1, 16, 64, 64), &dev)?;
    let outs = net.forward_t(&x, true)?;
    let shapes: Vec<Vec<usize>> = outs.iter().map(|t| t.dims().to_vec()).collect();
    assert_eq!(shapes, vec![vec![1, 4, 16, 64, 64], vec![1, 4, 16, 32, 32], vec![1, 4, 8, 16, 16], vec![1, 4, 4, 8, 8], vec![1, 4, 2, 4, 4]]);
    assert_eq!(net.forward(&x)?.dims(), [1, 4, 16, 64, 64]);
    let mut loss = Tensor::zeros((), DType::F32, &dev)?;
    for o in &outs {
        loss = (loss + o.sqr()?.mean_all()?)?;
    }
    let n3 = check_grads(&vm, Task::Seg3d, &loss)?;

    let vm2 = VarMap::new();
    let net2 = SegNet::new(&cfg(), Modality::Image2d, 3, false, SeededVarMap::var_builder(&vm2, 3, DType::F32, &dev))?;
    let x2 = Tensor::randn(0f32, 1.0, (2, 3, 64, 64), &dev)?;
    let outs2 = net2.forward_t(&x2, true)?;
    assert_eq!(outs2.len(), 1);
    assert_eq!(outs2[0].dims(), [2, 3, 64, 64]);
    let n2 = check_grads(&vm2, Task::Seg2d, &outs2[0].sqr()?.mean_all()?)?;
    assert!(n3 > n2 && n2 > 50, "trained parameter counts {n3} (3D) {n2} (2D)");
    // the wrong modality is an error, not a panic
    assert!(net2.forward(&x).is_err());
    // same seed, same weights
    let vm3 = VarMap::new();
    SegNet::new(&cfg(), Modality::Image2d, 3, false, SeededVarMap::var_builder(&vm3, 3, DType::F32, &dev))?;
    let a = vm2.data().lock().map_err(|_| TaskError::Invalid("lock".into()))?;
    let b = vm3.data().lock().map_err(|_| TaskError::Invalid("lock".into()))?;
    for (k, v) in a.iter() {
        let d = (v.as_tensor() - b[k].as_tensor())?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert_eq!(d, 0.0, "{k} differs between two builds with one seed");
    }
    Ok(())
}

#[test]
fn seg_pretrained_loading_keeps_decoder_and_drops_class_entries() -> Result<(), TaskError> {
    let dev = Device::Cpu;
    let dir = tempfile::tempdir()?;
    let pre = VarMap::new();
    Mit::new(&cfg(), VarBuilder::from_varmap(&pre, DType::F32, &dev).pp("backbone"))?;
    let file = dir.path().join("pre.safetensors");
    pre.save(&file)?;
    let vm = VarMap::new();
    SegNet::new(&cfg(), Modality::Volume3d, 4, true, VarBuilder::from_varmap(&vm, DType::F32, &dev))?;
    let rep = load_pretrained(&vm, &file, Which::Student, Task::Seg3d)?;
    let zoomed: BTreeSet<(String, usize, usize)> = rep.zoomed.iter().cloned().collect();
    // 16×64×64: stage grids 8·16·16, 4·8·8, 2·4·4, 1·2·2; every pretrained table has a class entry
    for (k, n) in [("transformer.pos_embed3D1", 2048), ("transformer.pos_embed3D4", 4), ("DecPosEmbed3D0", 32), ("DecPosEmbed3D2", 2048)] {
        let key = format!("backbone.{k}");
        assert!(zoomed.contains(&(key.clone(), n + 1, n)), "{key} not zoomed {}→{n}: {zoomed:?}", n + 1);
    }
    // pos_embed4 and decoder tables drop the class entry: with equal sizes that is an exact copy
    let get = |m: &VarMap, k: &str| -> Result<Tensor, TaskError> {
        let d = m.data().lock().map_err(|_| TaskError::Invalid("lock".into()))?;
        Ok(d.get(k).ok_or_else(|| TaskError::Invalid(format!("no {k}")))?.as_tensor().clone())
    };
    let k = "backbone.DecPosEmbed3D1";
    let want = get(&pre, k)?.narrow(1, 1, 256)?;
    assert_eq!((get(&vm, k)? - want)?.abs()?.max_all()?.to_scalar::<f32>()?, 0.0);
    // the decoder is loaded, the head is new, class-token projections and 2D keys are unused
    assert!(rep.loaded.iter().any(|k| k.starts_with("backbone.Decblock0.")));
    assert!(rep.loaded.contains(&"backbone.norm.weight".to_string()));
    assert!(rep.new_keys.iter().all(|k| !k.starts_with("backbone.")), "{:?}", rep.new_keys);
    assert!(rep.new_keys.contains(&"ds0_cls_conv.weight".to_string()) && rep.new_keys.contains(&"cls_conv.bias".to_string()));
    assert!(rep.unused.iter().any(|k| k.contains("cls_tokens")));
    assert!(rep.unused.iter().any(|k| k.contains("2D")));
    assert!(rep.loaded.iter().all(|k| !k.contains("2D") && !k.contains("cls_tokens")));
    Ok(())
}

fn arrays() -> SampleArrays {
    let (h, w) = (24, 32);
    let mut target = vec![0f32; h * w];
    for y in 5..15 {
        for x in 8..26 {
            target[y * w + x] = 1.0;
        }
    }
    SampleArrays { image: target.clone(), image_channels: 1, target, target_channels: 1, dims: [1, h, w], labels: false }
}

#[test]
fn augmentation_is_deterministic_and_keeps_image_and_mask_aligned() {
    let aug = Augmenter::preset(Task::Seg2d, 11).map(|a| Augmenter { p_rotation: 1.0, p_scale: 1.0, ..a });
    let Some(aug) = aug else { panic!("seg2d has a spatial preset") };
    let (mut a, mut b, mut c) = (arrays(), arrays(), arrays());
    aug.apply(&mut a, 2, 5);
    aug.apply(&mut b, 2, 5);
    aug.apply(&mut c, 2, 6);
    assert_eq!(a, b, "same (seed, epoch, index) → same sample");
    assert_ne!(a.target, c.target, "another index draws another transform");
    assert_ne!(a.target, arrays().target, "the transform changed the sample");
    // masks stay binary (nearest) and follow the image (linear) on the same coordinates
    assert!(a.target.iter().all(|&v| v == 0.0 || v == 1.0));
    let agree = a.image.iter().zip(&a.target).filter(|(i, t)| (**i > 0.5) == (**t > 0.5)).count();
    assert!(agree as f64 >= 0.97 * a.image.len() as f64, "image and mask agree on {agree} of {} pixels", a.image.len());
    let fg = a.target.iter().filter(|&&v| v > 0.0).count();
    assert!((110..=260).contains(&fg), "foreground {fg} px after rotation ±10° and scale 0.9–1.1 of 180 px");
}

fn seg_ci(task: Task) -> FinetuneConfig {
    FinetuneConfig { input_3d: [16, 64, 64], batch_size: 2, epochs: 2, iters_per_epoch: 2, lr: 1e-3, ..FinetuneConfig::ci(task) }
}

#[test]
fn seg3d_and_seg2d_finetune_evaluate_predict_on_phantoms() -> Result<(), TaskError> {
    let dev = Device::Cpu;
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("ph");
    generate(&data, &PhantomConfig { count: 5, seed: 1, dims: [16, 64, 64], spacing: [2.5, 1.2, 1.2], size_2d: 64 }, &mut |_, _| ())?;
    for task in [Task::Seg3d, Task::Seg2d] {
        let out = dir.path().join(task.name());
        let job = FinetuneJob {
            task,
            train: data.join(format!("{task}_train.tsv")),
            val: data.join(format!("{task}_val.tsv")),
            pretrained: None,
            config: seg_ci(task),
            output: out.clone(),
            resume: false,
        };
        let o = finetune(&job, &dev, &mut |_| ())?;
        assert_eq!(o.epochs_run, 2);
        assert!((0.0..=1.0).contains(&o.best_metric), "{task}: mean Dice {}", o.best_metric);
        let best = out.join("best.safetensors");
        let report = evaluate(&best, &data.join(format!("{task}_test.tsv")), &dev)?;
        let dm = report["dice_mean"].as_f64();
        assert!(dm.is_none_or(|d| (0.0..=1.0).contains(&d)), "{task}: {report}");
        assert_eq!(report["dice"].as_object().map(|m| m.len()), Some(3), "{task}: three organs: {report}");
        if task == Task::Seg3d {
            assert!(report.get("hd95").is_some(), "{report}");
        }
        let pred_dir = out.join("pred");
        let input = match task {
            Task::Seg3d => data.join("ct/case_004.nii.gz"),
            _ => data.join("xray/case_004.png"),
        };
        predict(&best, &input, &pred_dir, &dev)?;
        match task {
            Task::Seg3d => {
                let p = unimiss_data::read_nifti(pred_dir.join("case_004_seg.nii.gz")).map_err(|e| TaskError::Invalid(e.to_string()))?;
                let src = unimiss_data::read_nifti(&input).map_err(|e| TaskError::Invalid(e.to_string()))?;
                assert_eq!(p.dims, src.dims);
                assert_eq!(p.affine, src.affine, "the prediction keeps the input's affine");
                assert!(p.spacing.iter().zip(&src.spacing).all(|(a, b)| (a - b).abs() < 1e-6));
                assert!(p.data.iter().all(|&v| (0.0..=3.0).contains(&v) && v.fract() == 0.0));
            }
            _ => {
                let m = image::open(pred_dir.join("case_004_liver.png")).map_err(|e| TaskError::Invalid(e.to_string()))?.into_luma8();
                assert_eq!((m.width(), m.height()), (64, 64));
                assert!(m.pixels().all(|p| p.0[0] == 0 || p.0[0] == 255));
            }
        }
    }
    Ok(())
}
