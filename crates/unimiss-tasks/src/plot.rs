//! `curves.png`: training loss (red, top) and validation metric (blue, bottom) per epoch.

use std::path::Path;

use plotters::prelude::*;

use crate::error::{Result, TaskError};

/// Draws `history` = `(train_loss, val_metric)` per epoch into `out` (PNG, 900×600). Text needs
/// a system font; without one the curves are drawn without labels.
pub fn curves(out: &Path, history: &[(f64, f64)]) -> Result<()> {
    if history.is_empty() {
        return Ok(());
    }
    draw(out, history, true).or_else(|_| draw(out, history, false))
}

fn draw(out: &Path, history: &[(f64, f64)], text: bool) -> Result<()> {
    let err = |e: String| TaskError::file(out, e);
    let root = BitMapBackend::new(out, (900, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let (top, bottom) = root.split_vertically(300);
    let n = history.len() as f64;
    for (area, idx, colour, caption) in [(&top, 0, RED, "train loss per epoch"), (&bottom, 1, BLUE, "validation metric per epoch")] {
        let pts: Vec<(f64, f64)> = history.iter().enumerate().map(|(i, h)| (i as f64 + 1.0, if idx == 0 { h.0 } else { h.1 })).collect();
        let (lo, hi) = pts.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.1), b.max(p.1)));
        let pad = ((hi - lo) * 0.05).max(1e-6);
        let mut b = ChartBuilder::on(area);
        b.margin(10);
        if text {
            b.caption(caption, ("sans-serif", 18)).x_label_area_size(30).y_label_area_size(60);
        }
        let mut chart = b.build_cartesian_2d(0.5f64..n + 0.5, (lo - pad)..(hi + pad)).map_err(|e| err(e.to_string()))?;
        let mut mesh = chart.configure_mesh();
        if !text {
            mesh.disable_x_mesh().disable_y_mesh().x_labels(0).y_labels(0);
        }
        mesh.x_desc("epoch").draw().map_err(|e| err(e.to_string()))?;
        chart.draw_series(LineSeries::new(pts.clone(), &colour)).map_err(|e| err(e.to_string()))?;
        chart.draw_series(pts.iter().map(|p| Circle::new(*p, 3, colour.filled()))).map_err(|e| err(e.to_string()))?;
    }
    root.present().map_err(|e| err(e.to_string()))
}
