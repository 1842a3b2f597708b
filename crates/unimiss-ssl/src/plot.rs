//! The pretraining figures, drawn from `log.jsonl` with the runtime's plot primitives:
//! `loss.png` (one panel per modality, the teacher's entropies against ln K) and the comparison
//! of several pretraining runs ([`plot_compare`]). Epochs are counted from 1, as the console does.

use std::path::{Path, PathBuf};

use plotters::prelude::*;
use unimiss_runtime::plot::{Canvas, Panel, RUN_COLOURS, Series, figure, log_of, panel, run_names};

use unimiss_runtime::RuntimeError;

use crate::error::Result;
use crate::log::{EpochRecord, StepRecord};
use crate::Modality;

/// Pretraining: `log` (a `log.jsonl`) → `out` (PNG, 1400×1000). ln K is read from the
/// `config.toml` beside the log (`model.out_dim`); without it the line is left out.
pub fn plot_log(log: &Path, out: &Path) -> Result<()> {
    let (steps, epochs) = crate::log::read(log)?;
    if steps.is_empty() {
        return Err(RuntimeError::Plot { path: log.to_path_buf(), msg: "no step records to plot".into() }.into());
    }
    let k = log.parent().and_then(|d| std::fs::read_to_string(d.join("config.toml")).ok()).and_then(|t| {
        let v: toml::Value = toml::from_str(&t).ok()?;
        v.get("model")?.get("out_dim")?.as_integer()
    });
    let ln_k = k.map(|k| (k as f64).ln());
    Ok(figure(out, (1400, 1000), |root, text| draw_pretraining(root, &steps, &epochs, ln_k, out, text))?)
}

const C2D: RGBColor = RGBColor(200, 40, 40);
const C3D: RGBColor = RGBColor(30, 80, 200);

/// The colour of a modality's curves and markers.
fn colour_of(m: Modality) -> RGBColor {
    match m {
        Modality::Image2d => C2D,
        Modality::Volume3d => C3D,
    }
}
const TERMS: [(&str, &str, RGBColor); 4] = [
    ("vv", "vv: student volume vs teacher volume", RGBColor(120, 170, 240)),
    ("sv", "sv: student slices vs teacher volume", RGBColor(60, 170, 120)),
    ("ss", "ss: student slices vs teacher slices", RGBColor(230, 150, 40)),
    ("vs", "vs: student volume vs teacher slices", RGBColor(160, 90, 190)),
];

fn draw_pretraining(root: &Canvas<'_>, steps: &[StepRecord], epochs: &[EpochRecord], ln_k: Option<f64>, out: &Path, text: bool) -> unimiss_runtime::Result<()> {
    let (top, bottom) = root.split_vertically(560);
    let (left, right) = top.split_horizontally(700);
    let last = steps.iter().map(|s| s.step).max().unwrap_or(1) as f64;
    let x = (0.0, last.max(1.0) + 0.5);
    let x_desc = "optimiser step (gaps: the other modality's epochs)";
    let of = |m: Modality, f: &dyn Fn(&StepRecord) -> Option<f64>| -> Vec<(f64, f64)> {
        steps.iter().filter(|s| s.modality == m).filter_map(|s| Some((s.step as f64, f(s)?))).collect()
    };
    // The epoch means at the mean step of their epoch, dashed across the gaps.
    let mean_at = |m: Modality| -> Vec<(f64, f64)> {
        epochs
            .iter()
            .filter(|e| e.modality == m)
            .filter_map(|e| {
                let at: Vec<f64> = steps.iter().filter(|s| s.epoch == e.epoch).map(|s| s.step as f64).collect();
                (!at.is_empty()).then(|| (at.iter().sum::<f64>() / at.len() as f64, e.loss_mean))
            })
            .collect()
    };
    let short = steps.len() < 200;
    let epoch_mean = |colour: RGBColor, m: Modality| {
        let mut s = Series::new("epoch mean", colour, mean_at(m));
        s.dashed = true;
        s.gaps = false;
        s.markers = true;
        s.width = 1;
        s
    };
    let mut step2 = Series::new("loss of each step", C2D, of(Modality::Image2d, &|s| Some(s.loss)));
    step2.markers = short;
    let s2 = vec![step2, epoch_mean(C2D, Modality::Image2d)];
    let p2 = Panel { title: "2D epochs (X-rays): loss", x_desc, y_desc: "cross-entropy (nats)", x, integer_x: true };
    panel(&left, &p2, &s2, &[], &[], text, out)?;
    let mut total3 = Series::new("total of each step: sum of the 4 terms", C3D, of(Modality::Volume3d, &|s| Some(s.loss)));
    total3.markers = short;
    let mut s3 = vec![total3, epoch_mean(C3D, Modality::Volume3d)];
    for (key, label, colour) in TERMS {
        let mut s = Series::new(label, colour, of(Modality::Volume3d, &|r| r.terms.get(key).copied()));
        s.width = 1;
        s3.push(s);
    }
    let p3 = Panel { title: "3D epochs (CT): loss", x_desc, y_desc: "cross-entropy (nats)", x, integer_x: true };
    panel(&right, &p3, &s3, &[], &[], text, out)?;

    let ep = |f: &dyn Fn(&EpochRecord) -> f64| -> Vec<(f64, f64)> { epochs.iter().map(|e| (e.epoch as f64 + 1.0, f(e))).collect() };
    let by_modality: Vec<RGBColor> = epochs.iter().map(|e| colour_of(e.modality)).collect();
    let mut row = Series::new("teacher entropy per sample (0 = one-hot: collapse to one output)", RGBColor(20, 130, 60), ep(&|e| e.teacher_entropy));
    let mut mean = Series::new("entropy of the batch-mean teacher output (low = all samples alike)", BLACK, ep(&|e| e.teacher_mean_entropy));
    row.point_colours = by_modality.clone();
    mean.point_colours = by_modality;
    mean.dashed = true;
    let hlines: Vec<(f64, String)> = ln_k.map(|l| (l, format!("ln K = {l:.2}: uniform output (collapse)"))).into_iter().collect();
    let n_ep = epochs.iter().map(|e| e.epoch + 1).max().unwrap_or(1) as f64;
    let pe = Panel { title: "teacher output entropy per epoch (2D and 3D epochs alternate)", x_desc: "epoch", y_desc: "entropy (nats)", x: (0.5, n_ep + 0.5), integer_x: true };
    panel(&bottom, &pe, &[row, mean], &hlines, &[("2D epoch", C2D), ("3D epoch", C3D)], text, out)
}

/// Several pretraining runs (run directories or their `log.jsonl`) on one figure `out`: the loss
/// of each step, 2D and 3D panels, one colour per run.
pub fn plot_compare(runs: &[PathBuf], out: &Path) -> Result<()> {
    let names = run_names(runs);
    let (mut s2, mut s3, mut last) = (Vec::new(), Vec::new(), 1.0f64);
    for (i, (r, name)) in runs.iter().zip(&names).enumerate() {
        let (steps, _) = crate::log::read(&log_of(r))?;
        let colour = RUN_COLOURS[i % RUN_COLOURS.len()];
        last = last.max(steps.iter().map(|s| s.step).max().unwrap_or(1) as f64);
        let of = |m: Modality| steps.iter().filter(|s| s.modality == m).map(|s| (s.step as f64, s.loss)).collect::<Vec<_>>();
        s2.push(Series::new(name.clone(), colour, of(Modality::Image2d)));
        s3.push(Series::new(name.clone(), colour, of(Modality::Volume3d)));
    }
    let x = (0.0, last + 0.5);
    let x_desc = "optimiser step (gaps: the other modality's epochs)";
    Ok(figure(out, (1400, 600), |root, text| {
        let (left, right) = root.split_horizontally(700);
        panel(&left, &Panel { title: "2D epochs (X-rays): loss", x_desc, y_desc: "cross-entropy (nats)", x, integer_x: true }, &s2, &[], &[], text, out)?;
        panel(&right, &Panel { title: "3D epochs (CT): total loss", x_desc, y_desc: "cross-entropy (nats)", x, integer_x: true }, &s3, &[], &[], text, out)
    })?)
}
