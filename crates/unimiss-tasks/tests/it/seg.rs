use std::collections::BTreeSet;

use candle::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use unimiss_model::checkpoint::Which;
use unimiss_model::{Mit, MitConfig, SeededVarMap, Modality};
use unimiss_tasks::TaskError;
use unimiss_tasks::config::FinetuneConfig;
use unimiss_tasks::evaluate::{auc_warnings, evaluate};
use unimiss_tasks::predict::{PredictOptions, predict};
use unimiss_tasks::inputs::list_inputs;
use unimiss_tasks::metrics::segmentation_report;
use unimiss_tasks::seg_infer::{SegMaps, case_metrics};
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
    let net = SegNet::new(&cfg(), Modality::Volume3d, 4, SeededVarMap::var_builder(&vm, 3, DType::F32, &dev))?;
    let x = Tensor::randn(0f32, 1.0, (1, 1, 16, 64, 64), &dev)?;
    let outs = net.forward_t(&x, true)?;
    let shapes: Vec<Vec<usize>> = outs.iter().map(|t| t.dims().to_vec()).collect();
    assert_eq!(shapes, vec![vec![1, 4, 16, 64, 64], vec![1, 4, 16, 32, 32], vec![1, 4, 8, 16, 16], vec![1, 4, 4, 8, 8], vec![1, 4, 2, 4, 4]]);
    assert_eq!(net.forward(&x)?.dims(), [1, 4, 16, 64, 64]);
    let mut loss = Tensor::zeros((), DType::F32, &dev)?;
    for o in &outs {
        loss = (loss + o.sqr()?.mean_all()?)?;
    }
    let n3 = check_grads(&vm, Task::SEG3D, &loss)?;

    let vm2 = VarMap::new();
    let net2 = SegNet::new(&cfg(), Modality::Image2d, 3, SeededVarMap::var_builder(&vm2, 3, DType::F32, &dev))?;
    let x2 = Tensor::randn(0f32, 1.0, (2, 3, 64, 64), &dev)?;
    let outs2 = net2.forward_t(&x2, true)?;
    assert_eq!(outs2.len(), 1);
    assert_eq!(outs2[0].dims(), [2, 3, 64, 64]);
    let n2 = check_grads(&vm2, Task::SEG2D, &outs2[0].sqr()?.mean_all()?)?;
    assert!(n3 > n2 && n2 > 50, "trained parameter counts {n3} (3D) {n2} (2D)");
    // the wrong modality is an error, not a panic
    assert!(net2.forward(&x).is_err());
    // same seed, same weights
    let vm3 = VarMap::new();
    SegNet::new(&cfg(), Modality::Image2d, 3, SeededVarMap::var_builder(&vm3, 3, DType::F32, &dev))?;
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
    SegNet::new(&cfg(), Modality::Volume3d, 4, VarBuilder::from_varmap(&vm, DType::F32, &dev))?;
    let rep = load_pretrained(&vm, &file, Which::Student, Task::SEG3D)?;
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

fn seg_ci(task: Task) -> FinetuneConfig {
    FinetuneConfig { input_3d: [16, 64, 64], input_2d: 64, batch_size: 2, epochs: 2, iters_per_epoch: 2, lr: 1e-3, ..FinetuneConfig::ci(task) }
}

#[test]
fn seg3d_and_seg2d_finetune_evaluate_predict_on_phantoms() -> Result<(), TaskError> {
    let dev = Device::Cpu;
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("ph");
    // volumes and images larger than the training patch and not a multiple of it: patches are
    // cropped for training, and evaluate/predict run the sliding window at native resolution
    generate(&data, &PhantomConfig { count: 5, seed: 1, dims: [20, 72, 88], spacing: [2.5, 1.2, 1.2], size_2d: 80 }, &mut |_, _| ())?;
    for task in [Task::SEG3D, Task::SEG2D] {
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
        let typed = evaluate(&best, &data.join(format!("{task}_test.tsv")), &dev)?;
        assert_eq!(typed.task(), task);
        assert!(typed.to_string().starts_with(&format!("evaluate {task} on ")), "{typed}");
        // the JSON report keeps its keys
        let report = serde_json::to_value(&typed)?;
        let dm = report["dice_mean"].as_f64();
        assert!(dm.is_none_or(|d| (0.0..=1.0).contains(&d)), "{task}: {report}");
        assert_eq!(report["dice"].as_object().map(|m| m.len()), Some(3), "{task}: three organs: {report}");
        assert_eq!(report["hd95"].as_object().map(|m| m.len()), Some(3), "{task}: HD95 per organ: {report}");
        assert_eq!(report["hd95_unit"], if task == Task::SEG3D { "mm" } else { "px" });
        assert!(report.get("auc").is_none() && report.get("accuracy").is_none(), "no classification fields: {report}");
        assert_eq!(report["inference"]["patch"], serde_json::json!(if task == Task::SEG3D { [16, 64, 64] } else { [1, 64, 64] }));
        let pred_dir = out.join("pred");
        let input = match task {
            Task::SEG3D => data.join("ct/case_004.nii.gz"),
            _ => data.join("xray/case_004.png"),
        };
        let summary = predict(&best, &input, &pred_dir, &PredictOptions::default(), &dev)?;
        assert_eq!(summary.predicted, 1);
        match task {
            Task::SEG3D => {
                let p = unimiss_data::read_nifti(pred_dir.join("case_004_pred.nii.gz")).map_err(|e| TaskError::Invalid(e.to_string()))?;
                let src = unimiss_data::read_nifti(&input).map_err(|e| TaskError::Invalid(e.to_string()))?;
                assert_eq!(p.dims, src.dims);
                assert_eq!(p.affine, src.affine, "the prediction keeps the input's affine");
                assert!(p.spacing.iter().zip(&src.spacing).all(|(a, b)| (a - b).abs() < 1e-6));
                assert!(p.data.iter().all(|&v| (0.0..=3.0).contains(&v) && v.fract() == 0.0));
            }
            _ => {
                let m = image::open(pred_dir.join("case_004_pred_liver.png")).map_err(|e| TaskError::Invalid(e.to_string()))?.into_luma8();
                assert_eq!((m.width(), m.height()), (80, 80), "the masks keep the image's size");
                assert!(m.pixels().all(|p| p.0[0] == 0 || p.0[0] == 255));
            }
        }
    }
    Ok(())
}

#[test]
fn per_class_dice_and_hd95_of_a_hand_made_case() -> Result<(), TaskError> {
    // 2 × 4 × 5 grid, spacing (D, H, W) = (2, 1, 0.5) mm, classes background / a / b.
    // a: ground truth the block z 0..2, y 0..2, x 0..2; prediction the same block one voxel
    //    further along W → overlap 4 of 8 + 8 voxels: Dice 0.5, Jaccard 4/12; every block voxel
    //    is surface, half the surface distances are 0 and half one W step = 0.5 mm → HD95 0.5.
    // b: in the ground truth only → Dice 0, HD95 undefined.
    let dims = [2, 4, 5];
    let at = |z: usize, y: usize, x: usize| (z * 4 + y) * 5 + x;
    let (mut gt, mut pred) = (vec![0u32; 40], vec![0u32; 40]);
    for z in 0..2 {
        for y in 0..2 {
            for x in 0..2 {
                gt[at(z, y, x)] = 1;
                pred[at(z, y, x + 1)] = 1;
            }
        }
    }
    gt[at(1, 3, 4)] = 2;
    let maps = |labels| SegMaps { dims, spacing: Some([2.0, 1.0, 0.5]), labels, masks: vec![] };
    let case = case_metrics(Task::SEG3D, "hand", &maps(pred), &maps(gt), 3)?;
    assert_eq!(case.dice, vec![Some(0.5), Some(0.0)]);
    crate::close(case.jaccard[0].unwrap_or(f64::NAN), 1.0 / 3.0, 1e-12, "jaccard a");
    assert_eq!(case.hd95, Some(vec![Some(0.5), None]));
    let names = vec!["a".to_string(), "b".to_string()];
    let report = serde_json::to_value(segmentation_report(&names, &[case])?)?;
    assert_eq!(report["dice"]["a"], 0.5);
    assert_eq!(report["dice"]["b"], 0.0);
    assert_eq!(report["dice_mean"], 0.25);
    assert_eq!(report["hd95"]["a"], 0.5);
    assert!(report["hd95"]["b"].is_null());
    assert_eq!(report["hd95_mean"], 0.5);
    assert_eq!(report["hd95_null_count"], 1);

    // 2D: every label, smoothing 0.01, HD95 in pixels; an empty prediction of a 4-pixel mask
    // has Dice 0.01 / 8.01
    let m2 = |v: Vec<bool>| SegMaps { dims: [1, 4, 4], spacing: None, labels: vec![], masks: vec![v] };
    let mut square = vec![false; 16];
    for i in [5, 6, 9, 10] {
        square[i] = true;
    }
    let same = case_metrics(Task::SEG2D, "2d", &m2(square.clone()), &m2(square.clone()), 1)?;
    assert_eq!((same.dice.clone(), same.hd95.clone()), (vec![Some(1.0)], Some(vec![Some(0.0)])));
    let empty = case_metrics(Task::SEG2D, "2d", &m2(vec![false; 16]), &m2(square), 1)?;
    crate::close(empty.dice[0].unwrap_or(f64::NAN), 0.01 / 4.01, 1e-12, "smoothed empty Dice");
    Ok(())
}

#[test]
fn folder_inputs_skip_the_masks_beside_their_images() -> Result<(), TaskError> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("ph");
    generate(&data, &PhantomConfig { count: 3, seed: 2, dims: [8, 16, 16], spacing: [2.5, 1.2, 1.2], size_2d: 16 }, &mut |_, _| ())?;
    // a second genuine image named like a mask is still predicted
    std::fs::copy(data.join("xray/case_000.png"), data.join("xray/case_000_followup.png"))?;
    let x = list_inputs(&data.join("xray"))?;
    let names = |v: &[std::path::PathBuf]| v.iter().filter_map(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()).collect::<Vec<_>>();
    assert_eq!(names(&x.images), ["case_000.png", "case_000_followup.png", "case_001.png", "case_002.png"]);
    // (lesion masks live in xray/lesion/ and ct/lesion/, which a folder listing does not enter)
    assert_eq!(x.skipped_masks.len(), 9, "three organ masks per case: {:?}", names(&x.skipped_masks));
    let c = list_inputs(&data.join("ct"))?;
    assert_eq!(names(&c.images), ["case_000.nii.gz", "case_001.nii.gz", "case_002.nii.gz"]);
    let masks: Vec<String> = (0..3).map(|k| format!("case_00{k}_seg.nii.gz")).collect();
    assert_eq!(names(&c.skipped_masks), masks);
    // a single file is predicted even when it is a mask
    assert_eq!(list_inputs(&data.join("ct/case_000_seg.nii.gz"))?.images.len(), 1);
    Ok(())
}

#[test]
fn undefined_auc_says_why() {
    let classes = vec!["no_lesion".to_string(), "lesion".to_string()];
    let w = auc_warnings(&metrics_with_auc(None), &[1, 1, 1], &classes);
    assert_eq!(w.len(), 1);
    assert!(w[0].contains("undefined") && w[0].contains("only lesion (3 cases)"), "{w:?}");
    assert!(auc_warnings(&metrics_with_auc(Some(0.8)), &[0, 1], &classes).is_empty());
    let three = vec!["a".to_string(), "b".to_string(), "c".to_string()];
    let w3 = auc_warnings(&metrics_with_auc(Some(0.7)), &[0, 1, 1], &three);
    assert!(w3.len() == 1 && w3[0].contains("no test case has c"), "{w3:?}");
}

fn metrics_with_auc(auc: Option<f64>) -> unimiss_tasks::metrics::ClsMetrics {
    unimiss_tasks::metrics::ClsMetrics {
        accuracy: 0.5,
        auc,
        ap: None,
        sensitivity: None,
        specificity: None,
        auc_per_class: vec![],
        ap_per_class: vec![],
        confusion: vec![],
    }
}
