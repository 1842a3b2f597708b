//! Evaluation on a labelled test manifest (JSON report) and prediction on unlabelled inputs
//! (class probabilities as CSV; segmentation: NIfTI label maps with the input's geometry, or PNG
//! masks).

use std::path::{Path, PathBuf};

use candle::Device;
use serde_json::{Value, json};

use crate::error::{Result, TaskError};
use crate::finetune::load_net;
use crate::infer::predict_probs;
use crate::labelled::LabelledManifest;
use crate::metrics::classification::argmax;
use crate::metrics::classification_report;
use crate::nets::TaskNet;
use crate::segment::{predict_seg, seg_report, write_seg_prediction};

/// Evaluates `weights` on `test`; the report has `accuracy`, `auc`, `ap`, `sensitivity`,
/// `specificity`, per-class values, and per-case rows under `cases`.
/// Segmentation reports have `dice_mean`, `dice` (per class), `jaccard`, `hd95` (3D).
pub fn evaluate(weights: &Path, test: &Path, dev: &Device) -> Result<Value> {
    let (meta, net) = load_net(weights, dev)?;
    let m = LabelledManifest::read(test)?;
    let k = meta.classes.len();
    let net = match net {
        TaskNet::Cls(n) => n,
        TaskNet::Seg(n) => {
            let mut report = seg_report(&n, meta.task, &meta.classes, &m, &meta.config, dev)?;
            if let Value::Object(map) = &mut report {
                map.insert("task".into(), json!(meta.task.name()));
                map.insert("classes".into(), json!(meta.classes));
                map.insert("weights".into(), json!(weights.display().to_string()));
            }
            return Ok(report);
        }
    };
    let labels = (0..m.samples.len()).map(|i| m.class_index(i, k, test)).collect::<Result<Vec<_>>>()?;
    let paths: Vec<&Path> = m.samples.iter().map(|s| s.sample.path.as_path()).collect();
    let probs = predict_probs(&net, meta.task, &paths, &meta.config, meta.config.tta_2d, dev)?;
    let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    let mut report = classification_report(&names, &probs, &labels)?;
    if let Value::Object(map) = &mut report {
        map.insert("task".into(), json!(meta.task.name()));
        map.insert("classes".into(), json!(meta.classes));
        map.insert("weights".into(), json!(weights.display().to_string()));
    }
    Ok(report)
}

/// The image files of `input` (a file, or the `.png`/`.jpg`/`.jpeg`/`.nii`/`.nii.gz` files of a
/// directory, sorted).
pub fn list_inputs(input: &Path) -> Result<Vec<PathBuf>> {
    if input.is_file() {
        return Ok(vec![input.to_path_buf()]);
    }
    let rd = std::fs::read_dir(input).map_err(|e| TaskError::file(input, e))?;
    let mut v: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let n = p.file_name().map(|n| n.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
            [".png", ".jpg", ".jpeg", ".nii", ".nii.gz"].iter().any(|s| n.ends_with(s))
        })
        .collect();
    v.sort();
    if v.is_empty() {
        return Err(TaskError::file(input, "no .png/.jpg/.nii/.nii.gz files to predict"));
    }
    Ok(v)
}

/// Predicts every input and writes `output/predictions.csv` (`path`, one probability column
/// per class, `predicted`); returns the CSV path. Segmentation writes `<name>_seg.nii.gz` (3D)
/// or `<name>_<label>.png` (2D) per input and `output/predictions.csv` listing them.
pub fn predict(weights: &Path, input: &Path, output: &Path, dev: &Device) -> Result<PathBuf> {
    let (meta, net) = load_net(weights, dev)?;
    let files = list_inputs(input)?;
    let net = match net {
        TaskNet::Cls(n) => n,
        TaskNet::Seg(n) => {
            std::fs::create_dir_all(output).map_err(|e| TaskError::file(output, e))?;
            let mut csv = String::from("path,outputs\n");
            for f in &files {
                let pred = predict_seg(&n, meta.task, f, &meta.config, dev)?;
                let written = write_seg_prediction(meta.task, f, &pred, &meta.classes, output)?;
                let names: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
                csv.push_str(&format!("\"{}\",\"{}\"\n", f.display().to_string().replace('"', "\"\""), names.join(";").replace('"', "\"\"")));
            }
            let out = output.join("predictions.csv");
            std::fs::write(&out, csv).map_err(|e| TaskError::file(&out, e))?;
            return Ok(out);
        }
    };
    let paths: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let probs = predict_probs(&net, meta.task, &paths, &meta.config, meta.config.tta_2d, dev)?;
    std::fs::create_dir_all(output).map_err(|e| TaskError::file(output, e))?;
    let mut csv = String::from("path");
    for c in &meta.classes {
        csv.push_str(&format!(",p_{c}"));
    }
    csv.push_str(",predicted\n");
    for (p, pr) in paths.iter().zip(&probs) {
        csv.push_str(&format!("\"{}\"", p.display().to_string().replace('"', "\"\"")));
        for v in pr {
            csv.push_str(&format!(",{v:.6}"));
        }
        csv.push_str(&format!(",{}\n", meta.classes[argmax(pr)]));
    }
    let out = output.join("predictions.csv");
    std::fs::write(&out, csv).map_err(|e| TaskError::file(&out, e))?;
    Ok(out)
}
