//! Prediction on unlabelled inputs: class probabilities as CSV; segmentation: NIfTI label maps
//! with the input's geometry, or PNG masks, computed with the sliding window at native
//! resolution ([`crate::seg_infer`]), optionally with overlays.

use std::path::{Path, PathBuf};

use candle::Device;

use crate::error::{Result, TaskError};
use crate::finetune::load_net;
use crate::classify::predict_probs;
use crate::metrics::classification::argmax;
use crate::nets::TaskNet;
use crate::inputs::list_inputs;
use crate::weights::TaskMeta;
use crate::overlay::{overlay_file, write_overlay};
use crate::seg_infer::{predict_seg, prediction_files, write_seg_prediction};

/// What [`predict`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictSummary {
    /// `output/predictions.csv`.
    pub csv: PathBuf,
    /// Number of inputs predicted.
    pub predicted: usize,
    /// Masks beside their images that were not predicted ([`crate::inputs`]).
    pub skipped_masks: Vec<PathBuf>,
    /// Every file written (masks, label maps, overlays, the CSV).
    pub written: Vec<PathBuf>,
}

/// How [`predict`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PredictOptions {
    /// Replace files that already exist (otherwise their presence stops `predict` before any work).
    pub overwrite: bool,
    /// Also write `<name>_pred_overlay.png` per input (segmentation): the predicted masks over
    /// the image ([`crate::overlay`]).
    pub overlay: bool,
}

/// The files [`predict`] will write for `files`, in order, and the refusal when one exists
/// and `overwrite` is off.
fn planned_outputs(meta: &TaskMeta, files: &[PathBuf], output: &Path, opts: &PredictOptions) -> Result<Vec<PathBuf>> {
    let seg = meta.task.is_segmentation();
    if opts.overlay && !seg {
        return Err(TaskError::Invalid(format!("--overlay draws segmentation masks; {} predicts classes (predictions.csv)", meta.task)));
    }
    let mut planned = Vec::new();
    for f in files.iter().filter(|_| seg) {
        planned.extend(prediction_files(meta.task, f, &meta.classes, output));
        if opts.overlay {
            planned.push(overlay_file(f, output));
        }
    }
    planned.push(output.join("predictions.csv"));
    let existing: Vec<String> = planned.iter().filter(|p| p.exists()).map(|p| p.display().to_string()).collect();
    if !existing.is_empty() && !opts.overwrite {
        let more = if existing.len() > 3 { format!(" and {} more", existing.len() - 3) } else { String::new() };
        return Err(TaskError::file(
            output,
            format!(
                "predict would replace {} existing file{} ({}{more}); nothing was written: choose another --output, or pass --overwrite",
                existing.len(),
                if existing.len() == 1 { "" } else { "s" },
                existing.iter().take(3).cloned().collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    Ok(planned)
}

/// Predicts every input ([`list_inputs`]: a file, or a folder without its masks) and writes
/// `output/predictions.csv` (`path`, one probability column per class, `predicted`).
/// Segmentation writes `<name>_pred.nii.gz` (3D) or `<name>_pred_<label>.png` (2D) per input,
/// at the input's own size ([`prediction_files`]), and `output/predictions.csv` listing them.
/// Every file to be written is checked before any work: an existing one stops `predict` unless
/// `opts.overwrite`.
pub fn predict(weights: &Path, input: &Path, output: &Path, opts: &PredictOptions, dev: &Device) -> Result<PredictSummary> {
    let (meta, net) = load_net(weights, dev)?;
    let inputs = list_inputs(input)?;
    let files = &inputs.images;
    let written = planned_outputs(&meta, files, output, opts)?;
    std::fs::create_dir_all(output).map_err(|e| TaskError::file(output, e))?;
    let csv_path = output.join("predictions.csv");
    let summary = PredictSummary { csv: csv_path.clone(), predicted: files.len(), skipped_masks: inputs.skipped_masks.clone(), written };
    let net = match net {
        TaskNet::Cls(n) => n,
        TaskNet::Seg(n) => {
            let mut csv = String::from("path,outputs\n");
            for f in files {
                let pred = predict_seg(&n, meta.task, f, &meta.config, dev)?;
                let mut written = write_seg_prediction(meta.task, f, &pred, &meta.classes, output)?;
                if opts.overlay {
                    written.push(write_overlay(meta.task, f, &pred, &meta.classes, &overlay_file(f, output))?);
                }
                let names: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
                csv.push_str(&format!("\"{}\",\"{}\"\n", f.display().to_string().replace('"', "\"\""), names.join(";").replace('"', "\"\"")));
            }
            std::fs::write(&csv_path, csv).map_err(|e| TaskError::file(&csv_path, e))?;
            return Ok(summary);
        }
    };
    let paths: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let probs = predict_probs(&net, meta.task, &paths, &meta.config, meta.config.tta_2d, dev)?;
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
    std::fs::write(&csv_path, csv).map_err(|e| TaskError::file(&csv_path, e))?;
    Ok(summary)
}
