//! `RUN_DIR/log.jsonl` → PNG: the loss per step (2D and 3D steps as two series) and the
//! collapse indicators per epoch.

use std::path::Path;

use plotters::prelude::*;

use crate::error::{Result, SslError};
use crate::log::{EpochRecord, StepRecord};

/// Render the curves of `log` (a `log.jsonl`) into `out` (PNG, 1000×700).
pub fn plot_log(log: &Path, out: &Path) -> Result<()> {
    let (steps, epochs) = crate::log::read(log)?;
    if steps.is_empty() {
        return Err(SslError::Plot { path: log.to_path_buf(), msg: "no step records to plot".into() });
    }
    // Text needs a system font; without one, draw the curves without labels.
    draw(&steps, &epochs, out, true).or_else(|_| draw(&steps, &epochs, out, false))
}

fn draw(steps: &[StepRecord], epochs: &[EpochRecord], out: &Path, text: bool) -> Result<()> {
    let err = |e: String| SslError::Plot { path: out.to_path_buf(), msg: e };
    let root = BitMapBackend::new(out, (1000, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let (top, bottom) = root.split_vertically(440);

    let series = |m: &str| -> Vec<(f64, f64)> {
        steps.iter().filter(|s| s.modality == m).map(|s| (s.step as f64, s.loss)).collect()
    };
    let (s2, s3) = (series("2d"), series("3d"));
    let xmax = steps.iter().map(|s| s.step).max().unwrap_or(1) as f64;
    let (lo, hi) = steps.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), s| (a.min(s.loss), b.max(s.loss)));
    let pad = ((hi - lo) * 0.05).max(1e-6);
    let mut b = ChartBuilder::on(&top);
    b.margin(10);
    if text {
        b.caption("loss per step (2D red, 3D blue)", ("sans-serif", 20)).x_label_area_size(30).y_label_area_size(60);
    }
    let mut chart = b.build_cartesian_2d(0f64..xmax.max(1.0), (lo - pad)..(hi + pad)).map_err(|e| err(e.to_string()))?;
    let mut mesh = chart.configure_mesh();
    if !text {
        mesh.disable_x_mesh().disable_y_mesh().x_labels(0).y_labels(0);
    }
    mesh.x_desc("step").draw().map_err(|e| err(e.to_string()))?;
    chart.draw_series(LineSeries::new(s2, &RED)).map_err(|e| err(e.to_string()))?;
    chart.draw_series(LineSeries::new(s3, &BLUE)).map_err(|e| err(e.to_string()))?;

    if !epochs.is_empty() {
        let emax = epochs.iter().map(|e| e.epoch).max().unwrap_or(0) as f64 + 1.0;
        let ent: Vec<(f64, f64)> = epochs.iter().map(|e| (e.epoch as f64, e.teacher_entropy)).collect();
        let ment: Vec<(f64, f64)> = epochs.iter().map(|e| (e.epoch as f64, e.teacher_mean_entropy)).collect();
        let hi = ent.iter().chain(&ment).map(|p| p.1).fold(1e-6, f64::max) * 1.1;
        let mut b = ChartBuilder::on(&bottom);
        b.margin(10);
        if text {
            b.caption("teacher entropy per epoch (row mean green, of batch mean black)", ("sans-serif", 18))
                .x_label_area_size(30)
                .y_label_area_size(60);
        }
        let mut chart = b.build_cartesian_2d(0f64..emax, 0f64..hi).map_err(|e| err(e.to_string()))?;
        let mut mesh = chart.configure_mesh();
        if !text {
            mesh.disable_x_mesh().disable_y_mesh().x_labels(0).y_labels(0);
        }
        mesh.x_desc("epoch").draw().map_err(|e| err(e.to_string()))?;
        chart.draw_series(LineSeries::new(ent, &GREEN)).map_err(|e| err(e.to_string()))?;
        chart.draw_series(LineSeries::new(ment, &BLACK)).map_err(|e| err(e.to_string()))?;
    }
    root.present().map_err(|e| err(e.to_string()))
}
