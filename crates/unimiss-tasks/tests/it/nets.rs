use candle::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use unimiss_model::checkpoint::Which;
use unimiss_model::{Mit, MitConfig, Modality};
use unimiss_tasks::TaskError;
use unimiss_tasks::nets::{ClsNet, Task, TaskKind, load_pretrained};
use unimiss_tasks::zoom::{ClassEntry, zoom_pos_table};

fn var(vm: &VarMap, k: &str) -> Result<Tensor, TaskError> {
    let d = vm.data().lock().map_err(|_| TaskError::Invalid("lock".into()))?;
    Ok(d.get(k).ok_or_else(|| TaskError::Invalid(format!("no {k}")))?.as_tensor().clone())
}

#[test]
fn pretrained_loading_keys_shapes_and_zoom() -> Result<(), TaskError> {
    let dev = Device::Cpu;
    let dir = tempfile::tempdir()?;
    // a "pretrained" tiny backbone built at 64 / 16×64×64
    let pre_cfg = MitConfig::tiny().with_img_size_2d(64).with_img_size_3d([16, 64, 64]);
    let pre = VarMap::new();
    Mit::new(&pre_cfg, VarBuilder::from_varmap(&pre, DType::F32, &dev).pp("backbone"))?;
    let file = dir.path().join("pre.safetensors");
    pre.save(&file)?;
    // the task network at 32×64×64: 3D tables grow (pos_embed3D1: 8·16·16+1 → 16·16·16+1)
    let cfg = MitConfig::tiny().with_img_size_2d(64).with_img_size_3d([32, 64, 64]);
    let vm = VarMap::new();
    let net = ClsNet::new(&cfg, Modality::Volume3d, 2, VarBuilder::from_varmap(&vm, DType::F32, &dev))?;
    let rep = load_pretrained(&vm, &file, Which::Student, Task::CLS3D)?;
    let k1 = "backbone.transformer.pos_embed3D1";
    assert!(rep.zoomed.contains(&(k1.to_string(), 2049, 4097)), "{:?}", rep.zoomed);
    assert_eq!(rep.zoomed.len(), 4, "the four 3D encoder tables are zoomed: {:?}", rep.zoomed);
    let expected = zoom_pos_table(&var(&pre, k1)?, 4097, ClassEntry::Include)?;
    let diff = (var(&vm, k1)? - expected)?.abs()?.max_all()?.to_scalar::<f32>()?;
    assert_eq!(diff, 0.0);
    // a plain tensor is copied
    let q = "backbone.transformer.block1.0.attn.q.weight";
    assert_eq!((var(&vm, q)? - var(&pre, q)?)?.abs()?.max_all()?.to_scalar::<f32>()?, 0.0);
    // new: only the task head; unused: 2D modules and the decoder
    assert_eq!(rep.new_keys, vec!["head_new.bias", "head_new.weight", "norm_new.bias", "norm_new.weight"]);
    assert!(rep.unused.iter().any(|k| k.contains("patch_embed2D0")));
    assert!(rep.unused.iter().any(|k| k.starts_with("backbone.Decblock0")));
    assert!(!rep.loaded.iter().any(|k| k.contains("2D")));
    // forward shape
    let x = Tensor::randn(0f32, 1., (1, 1, 32, 64, 64), &dev)?;
    assert_eq!(net.forward(&x)?.dims(), &[1, 2]);
    Ok(())
}

#[test]
fn wrong_architecture_is_an_error_naming_the_file() -> Result<(), TaskError> {
    let dev = Device::Cpu;
    let dir = tempfile::tempdir()?;
    let cfg = MitConfig::tiny().with_img_size_2d(64).with_img_size_3d([16, 64, 64]);
    let vm = VarMap::new();
    ClsNet::new(&cfg, Modality::Image2d, 3, VarBuilder::from_varmap(&vm, DType::F32, &dev))?;
    let bad = dir.path().join("bad.safetensors");
    let t = Tensor::zeros((7, 7), DType::F32, &dev)?;
    candle::safetensors::save(&std::collections::HashMap::from([("backbone.transformer.block1.0.attn.q.weight".to_string(), t)]), &bad)?;
    let e = load_pretrained(&vm, &bad, Which::Student, Task::CLS2D).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("bad.safetensors") && e.contains("wrong architecture"), "{e}");
    let other = dir.path().join("other.safetensors");
    candle::safetensors::save(&std::collections::HashMap::from([("encoder.weight".to_string(), Tensor::ones(3, DType::F32, &dev)?)]), &other)?;
    let e = load_pretrained(&vm, &other, Which::Student, Task::CLS2D).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("other.safetensors") && e.contains("no tensor"), "{e}");
    Ok(())
}

#[test]
fn task_is_a_kind_on_a_modality() {
    for t in Task::ALL {
        let prefix = match t.kind() {
            TaskKind::Classification => "cls",
            TaskKind::Segmentation => "seg",
        };
        assert_eq!(t.name(), format!("{prefix}{}", t.modality()), "{t:?}");
        assert_eq!(t.is_segmentation(), t.kind() == TaskKind::Segmentation);
        assert_ne!(t.other_tag(), t.modality().tag());
        assert!(t.uses(&format!("backbone.transformer.patch_embed{}0.proj.weight", t.modality().tag())));
        assert!(!t.uses(&format!("backbone.transformer.patch_embed{}0.proj.weight", t.other_tag())));
    }
    let pairs: Vec<_> = Task::ALL.iter().map(|t| (t.kind(), t.modality())).collect();
    assert_eq!(
        pairs,
        [
            (TaskKind::Classification, Modality::Volume3d),
            (TaskKind::Segmentation, Modality::Volume3d),
            (TaskKind::Classification, Modality::Image2d),
            (TaskKind::Segmentation, Modality::Image2d)
        ]
    );
}

#[test]
fn every_manifest_is_checked_against_the_task() -> Result<(), TaskError> {
    use unimiss_data::labelled::Targets;
    assert_eq!(Task::ALL.map(Task::targets), [Targets::ClassIndex, Targets::LabelMap, Targets::ClassIndex, Targets::Masks]);
    let dir = tempfile::tempdir()?;
    // a segmentation validation manifest without masks: an error naming the file, not a panic
    let val = dir.path().join("seg3d_val.tsv");
    std::fs::write(&val, "#classes=background,liver\nct/a.nii.gz\t3d\n")?;
    let e = Task::SEG3D.read_manifest(&val).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("seg3d_val.tsv") && e.contains("a.nii.gz: 0 mask columns"), "{e}");
    let e = Task::CLS2D.read_manifest(&val).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.contains("modality 3d where 2d is needed"), "{e}");
    std::fs::write(&val, "#classes=background,liver\nct/a.nii.gz\t3d\t-\t-\tct/a_seg.nii.gz\n")?;
    assert_eq!(Task::SEG3D.read_manifest(&val)?.samples[0].masks, [dir.path().join("ct/a_seg.nii.gz")]);
    // the augmentation presets: flips only for classification
    assert_eq!((Task::CLS3D.augmenter(1).p_rotation, Task::CLS3D.augmenter(1).p_scale), (0.0, 0.0));
    assert_eq!(Task::SEG2D.augmenter(1).rotation_deg, 10.0);
    assert_eq!(Task::SEG3D.augmenter(1).scale, (0.7, 1.4));
    Ok(())
}
