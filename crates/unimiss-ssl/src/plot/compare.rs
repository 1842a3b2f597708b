//! One figure for several runs of the same kind (`plot A B …`), one colour per run:
//! fine-tuning runs as training loss (epoch means) and validation metric per epoch, pretraining
//! runs as the loss of each step, 2D and 3D panels.

use std::path::{Path, PathBuf};

use plotters::prelude::*;

use super::{Panel, Series, is_finetuning, log_of, metric_name, panel, read_task_log};
use crate::error::{Result, SslError};
use crate::Modality;

const RUN_COLOURS: [RGBColor; 6] =
    [RGBColor(200, 40, 40), RGBColor(30, 80, 200), RGBColor(40, 150, 60), RGBColor(220, 130, 20), RGBColor(140, 60, 180), RGBColor(20, 160, 170)];

/// A legend name per run: the folder names, or the whole paths when two folders share a name.
fn names(runs: &[PathBuf]) -> Vec<String> {
    let short: Vec<String> = runs
        .iter()
        .map(|r| {
            let dir = if r.is_file() { r.parent().unwrap_or(r) } else { r.as_path() };
            dir.file_name().map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into_owned())
        })
        .collect();
    let mut sorted = short.clone();
    sorted.sort();
    sorted.dedup();
    if sorted.len() == short.len() { short } else { runs.iter().map(|r| r.display().to_string()).collect() }
}

/// Draws the runs (run directories or their `log.jsonl`) on one figure `out`; all fine-tuning
/// or all pretraining.
pub fn plot_compare(runs: &[PathBuf], out: &Path) -> Result<()> {
    let err = |path: &Path, msg: String| SslError::Plot { path: path.to_path_buf(), msg };
    if runs.len() < 2 {
        return Err(err(out, "comparing needs at least two runs".into()));
    }
    let mut kinds = Vec::with_capacity(runs.len());
    for r in runs {
        let log = log_of(r);
        let text = std::fs::read_to_string(&log).map_err(crate::error::io_err(&log))?;
        kinds.push(is_finetuning(&text));
    }
    if kinds.iter().any(|&k| k != kinds[0]) {
        let which: Vec<String> = runs.iter().zip(&kinds).map(|(r, k)| format!("{} ({})", r.display(), if *k { "fine-tuning" } else { "pretraining" })).collect();
        return Err(err(out, format!("cannot compare pretraining and fine-tuning runs on one figure: {}", which.join(", "))));
    }
    let names = names(runs);
    let draw = |text: bool| if kinds[0] { draw_finetuning(runs, &names, out, text) } else { draw_pretraining(runs, &names, out, text) };
    draw(true).or_else(|_| draw(false))
}

fn draw_finetuning(runs: &[PathBuf], names: &[String], out: &Path, text: bool) -> Result<()> {
    let err = |e: String| SslError::Plot { path: out.to_path_buf(), msg: e };
    let root = BitMapBackend::new(out, (1100, 800)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let (top, bottom) = root.split_vertically(400);
    let (mut loss, mut val, mut metrics, mut n_ep) = (Vec::new(), Vec::new(), Vec::new(), 1.0f64);
    for (i, (r, name)) in runs.iter().zip(names).enumerate() {
        let (steps, epochs) = read_task_log(&log_of(r))?;
        let colour = RUN_COLOURS[i % RUN_COLOURS.len()];
        n_ep = n_ep.max(epochs.iter().map(|e| e.epoch + 1).max().unwrap_or(1) as f64);
        // A run stopped in its first epoch has step losses only: their mean stands for epoch 1.
        let mut pts: Vec<(f64, f64)> = epochs.iter().map(|e| (e.epoch as f64 + 1.0, e.train_loss)).collect();
        if pts.is_empty() && !steps.is_empty() {
            pts.push((1.0, steps.iter().map(|s| s.loss).sum::<f64>() / steps.len() as f64));
        }
        let mut s = Series::new(name.clone(), colour, pts);
        s.markers = true;
        s.gaps = false;
        loss.push(s);
        let mut v = Series::new(name.clone(), colour, epochs.iter().map(|e| (e.epoch as f64 + 1.0, e.val_metric)).collect());
        v.markers = true;
        v.gaps = false;
        val.push(v);
        metrics.extend(epochs.iter().map(|e| metric_name(&e.metric).to_string()));
    }
    metrics.sort();
    metrics.dedup();
    let metric = if metrics.is_empty() { "metric".to_string() } else { metrics.join(" / ") };
    let x = (0.0, n_ep + 0.5);
    let pl = Panel { title: "training loss (epoch mean)", x_desc: "epoch", y_desc: "loss", x, integer_x: true };
    panel(&top, &pl, &loss, &[], &[], text, out)?;
    let title = format!("validation {metric} after each epoch");
    let pv = Panel { title: &title, x_desc: "epoch", y_desc: &metric, x, integer_x: true };
    panel(&bottom, &pv, &val, &[], &[], text, out)?;
    root.present().map_err(|e| err(e.to_string()))
}

fn draw_pretraining(runs: &[PathBuf], names: &[String], out: &Path, text: bool) -> Result<()> {
    let err = |e: String| SslError::Plot { path: out.to_path_buf(), msg: e };
    let root = BitMapBackend::new(out, (1400, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let (left, right) = root.split_horizontally(700);
    let (mut s2, mut s3, mut last) = (Vec::new(), Vec::new(), 1.0f64);
    for (i, (r, name)) in runs.iter().zip(names).enumerate() {
        let (steps, _) = crate::log::read(&log_of(r))?;
        let colour = RUN_COLOURS[i % RUN_COLOURS.len()];
        last = last.max(steps.iter().map(|s| s.step).max().unwrap_or(1) as f64);
        let of = |m: Modality| steps.iter().filter(|s| s.modality == m).map(|s| (s.step as f64, s.loss)).collect::<Vec<_>>();
        s2.push(Series::new(name.clone(), colour, of(Modality::Image2d)));
        s3.push(Series::new(name.clone(), colour, of(Modality::Volume3d)));
    }
    let x = (0.0, last + 0.5);
    let x_desc = "optimiser step (gaps: the other modality's epochs)";
    panel(&left, &Panel { title: "2D epochs (X-rays): loss", x_desc, y_desc: "cross-entropy (nats)", x, integer_x: true }, &s2, &[], &[], text, out)?;
    panel(&right, &Panel { title: "3D epochs (CT): total loss", x_desc, y_desc: "cross-entropy (nats)", x, integer_x: true }, &s3, &[], &[], text, out)?;
    root.present().map_err(|e| err(e.to_string()))
}
