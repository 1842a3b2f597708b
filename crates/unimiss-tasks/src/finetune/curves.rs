//! The fine-tuning figures, drawn from `log.jsonl` with the runtime's plot primitives:
//! `curves.png` (training loss, the named validation metric per epoch) and the comparison of
//! several fine-tuning runs ([`plot_compare`]).

use std::path::{Path, PathBuf};

use plotters::prelude::*;
use serde::Deserialize;
use unimiss_runtime::RuntimeError;
use unimiss_runtime::plot::{Canvas, Panel, RUN_COLOURS, Series, figure, log_of, panel, run_names};

type Result<T> = unimiss_runtime::Result<T>;

const LOSS: RGBColor = RGBColor(200, 40, 40);
const METRIC: RGBColor = RGBColor(30, 80, 200);

/// Fine-tuning: the step and epoch records of `log` → `out` (PNG, 1100×800).
pub fn plot_task_log(log: &Path, out: &Path) -> Result<()> {
    let (steps, epochs) = read_task_log(log)?;
    figure(out, (1100, 800), |root, text| draw_finetuning(root, &steps, &epochs, out, text))
}

/// The step and epoch records of a fine-tuning log (at least one).
fn read_task_log(log: &Path) -> Result<(Vec<TaskStep>, Vec<TaskEpoch>)> {
    let text = std::fs::read_to_string(log).map_err(unimiss_runtime::error::io_err(log))?;
    let (mut steps, mut epochs) = (Vec::new(), Vec::new());
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let bad = |e: serde_json::Error| RuntimeError::Plot { path: log.to_path_buf(), msg: format!("line {}: {e}", n + 1) };
        match serde_json::from_str::<TaskLine>(line).map_err(bad)? {
            TaskLine::Epoch(e) => epochs.push(e),
            TaskLine::Step(s) => steps.push(s),
        }
    }
    if epochs.is_empty() && steps.is_empty() {
        return Err(RuntimeError::Plot { path: log.to_path_buf(), msg: "no fine-tuning records to plot".into() });
    }
    Ok((steps, epochs))
}

/// The fields of the fine-tuning records (`log::TaskStepRecord`, `log::TaskEpochRecord`) the
/// plot reads.
#[derive(Deserialize)]
#[serde(untagged)]
enum TaskLine {
    Epoch(TaskEpoch),
    Step(TaskStep),
}

#[derive(Deserialize)]
struct TaskStep {
    epoch: usize,
    loss: f64,
}

#[derive(Deserialize)]
struct TaskEpoch {
    epoch: usize,
    train_loss: f64,
    metric: String,
    val_metric: f64,
}

/// The metric's name as people say it.
fn metric_name(m: &str) -> &str {
    match m {
        "auc" => "ROC-AUC",
        "accuracy" => "accuracy",
        "dice" => "mean Dice",
        other => other,
    }
}

fn draw_finetuning(root: &Canvas<'_>, steps: &[TaskStep], epochs: &[TaskEpoch], out: &Path, text: bool) -> Result<()> {
    let (top, bottom) = root.split_vertically(400);
    let n_ep = epochs.iter().map(|e| e.epoch + 1).max().unwrap_or(1) as f64;

    // Training loss against epochs: the steps of epoch e (from 0) spread over (e, e + 1], so the
    // epoch's last step sits at e + 1 with the epoch mean.
    let mut step_pts = Vec::with_capacity(steps.len());
    for (i, s) in steps.iter().enumerate() {
        let first = steps[..i].iter().rposition(|t| t.epoch != s.epoch).map_or(0, |j| j + 1);
        let count = steps[first..].iter().take_while(|t| t.epoch == s.epoch).count();
        step_pts.push((s.epoch as f64 + (i - first + 1) as f64 / count as f64, s.loss));
    }
    let mut loss_steps = Series::new("loss of each step", RGBColor(240, 150, 150), step_pts);
    loss_steps.width = 1;
    loss_steps.gaps = false;
    let mut loss_mean = Series::new("epoch mean", LOSS, epochs.iter().map(|e| (e.epoch as f64 + 1.0, e.train_loss)).collect());
    loss_mean.markers = true;
    let pl = Panel { title: "training loss", x_desc: "epoch", y_desc: "loss", x: (0.0, n_ep + 0.5), integer_x: true };
    panel(&top, &pl, &[loss_steps, loss_mean], &[], &[], text, out)?;

    let mut names: Vec<&str> = epochs.iter().map(|e| metric_name(&e.metric)).collect();
    names.dedup();
    let name = if names.is_empty() { "metric".to_string() } else { names.join(" / ") };
    let mut val = Series::new(format!("validation {name}"), METRIC, epochs.iter().map(|e| (e.epoch as f64 + 1.0, e.val_metric)).collect());
    val.markers = true;
    let best = epochs.iter().map(|e| e.val_metric).filter(|v| v.is_finite()).fold(f64::NEG_INFINITY, f64::max);
    let hlines: Vec<(f64, String)> = if best.is_finite() { vec![(best, format!("best {name} {best:.4}"))] } else { vec![] };
    let title = format!("validation {name} after each epoch");
    // The same x range as the loss panel above, so epoch k sits at one x in both.
    let pv = Panel { title: &title, x_desc: "epoch", y_desc: &name, x: (0.0, n_ep + 0.5), integer_x: true };
    panel(&bottom, &pv, &[val], &hlines, &[], text, out)
}

/// Several fine-tuning runs (run directories or their `log.jsonl`) on one figure `out`: training
/// loss (epoch means) and validation metric per epoch, one colour per run.
pub fn plot_compare(runs: &[PathBuf], out: &Path) -> Result<()> {
    let names = run_names(runs);
    let (mut loss, mut val, mut metrics, mut n_ep) = (Vec::new(), Vec::new(), Vec::new(), 1.0f64);
    for (i, (r, name)) in runs.iter().zip(&names).enumerate() {
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
    let title = format!("validation {metric} after each epoch");
    figure(out, (1100, 800), |root, text| {
        let (top, bottom) = root.split_vertically(400);
        let pl = Panel { title: "training loss (epoch mean)", x_desc: "epoch", y_desc: "loss", x, integer_x: true };
        panel(&top, &pl, &loss, &[], &[], text, out)?;
        let pv = Panel { title: &title, x_desc: "epoch", y_desc: &metric, x, integer_x: true };
        panel(&bottom, &pv, &val, &[], &[], text, out)
    })
}

