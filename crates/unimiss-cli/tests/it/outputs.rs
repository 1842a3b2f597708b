//! What `predict` and `evaluate` write, and what they check before any work (issue 20):
//! predictions are named as predictions and never replace a file without `--overwrite` (not even
//! the ground truth beside the images); `--overlay` draws the masks over the image; weights of
//! another task and an unwritable `--json` stop the command before it evaluates.

use std::time::{Duration, Instant};

use crate::bin::{Res, finetune_ci, phantoms, run_err, run_ok, s, strs};

/// The files of a folder with their bytes.
fn snapshot(dir: &std::path::Path) -> Result<Vec<(String, Vec<u8>)>, Box<dyn std::error::Error>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_file() {
            v.push((p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(), std::fs::read(&p)?));
        }
    }
    v.sort();
    Ok(v)
}

#[test]
fn predict_never_replaces_a_file_unless_told() -> Res {
    let ph = phantoms()?;
    let run = ph.root.join("seg2d");
    run_ok(&strs(&finetune_ci(&ph, "seg2d", &run, 1, 1, &[])))?;
    let w = run.join("best.safetensors");
    // Into the folder of the images and their ground-truth masks, as the issue did.
    let xray = ph.root.join("xray");
    let before = snapshot(&xray)?;
    run_ok(&["predict", "--task", "seg2d", "--weights", s(&w), "--input", s(&xray), "--output", s(&xray), "--overlay"])?;
    let after = snapshot(&xray)?;
    for (name, bytes) in &before {
        let now = after.iter().find(|(n, _)| n == name).map(|(_, b)| b);
        assert_eq!(now, Some(bytes), "{name} was changed by predict");
    }
    let new: Vec<&String> = after.iter().map(|(n, _)| n).filter(|n| !before.iter().any(|(b, _)| b == *n)).collect();
    assert!(new.iter().all(|n| n.contains("_pred") || *n == "predictions.csv"), "prediction names: {new:?}");
    assert!(new.iter().any(|n| n.ends_with("_pred_liver.png")) && new.iter().any(|n| n.ends_with("_pred_overlay.png")), "{new:?}");
    // Again: refused before any work, naming a file; nothing changes.
    let t0 = Instant::now();
    let err = run_err(&["predict", "--task", "seg2d", "--weights", s(&w), "--input", s(&xray), "--output", s(&xray)])?;
    assert!(err.contains("would replace") && err.contains("_pred_") && err.contains("--overwrite"), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(30));
    assert_eq!(snapshot(&xray)?, after);
    run_ok(&["predict", "--task", "seg2d", "--weights", s(&w), "--input", s(&xray), "--output", s(&xray), "--overwrite"])?;
    // The overlay is a picture of the image's size at least.
    let ov = new.iter().find(|n| n.ends_with("_pred_overlay.png")).ok_or("no overlay")?;
    let img = image::open(xray.join(ov))?;
    assert!(img.width() >= 256 && img.height() >= 256);
    Ok(())
}

#[test]
fn wrong_weights_and_unwritable_reports_stop_before_any_work() -> Res {
    let ph = phantoms()?;
    let run = ph.root.join("cls2d");
    run_ok(&strs(&finetune_ci(&ph, "cls2d", &run, 1, 1, &[])))?;
    let w = run.join("best.safetensors");
    let json = ph.root.join("test.json");
    let (test3d, ct, pred) = (ph.root.join("cls3d_test.tsv"), ph.root.join("ct"), ph.root.join("pred"));
    for verb in ["evaluate", "predict"] {
        let mut args = vec![verb, "--task", "cls3d", "--weights", s(&w)];
        match verb {
            "evaluate" => args.extend(["--test", s(&test3d), "--json", s(&json)]),
            _ => args.extend(["--input", s(&ct), "--output", s(&pred)]),
        }
        let err = run_err(&args)?;
        assert!(err.contains("weights are for cls2d, not cls3d"), "{verb}: {err}");
        assert!(!json.exists() && !pred.exists(), "{verb} wrote something");
    }
    let nodir = ph.root.join("nodir/test.json");
    let err = run_err(&["evaluate", "--task", "cls2d", "--weights", s(&w), "--test", s(&ph.root.join("cls2d_test.tsv")), "--json", s(&nodir)])?;
    assert!(err.contains("does not exist") && err.contains("nothing was evaluated"), "{err}");
    run_ok(&["evaluate", "--task", "cls2d", "--weights", s(&w), "--test", s(&ph.root.join("cls2d_test.tsv")), "--json", s(&json)])?;
    assert!(json.is_file());
    Ok(())
}
