//! Plot primitives of the runtime's figures (`loss.png`, `curves.png`, `plot A B`): line series
//! with gaps, dashed means and coloured markers, one chart per panel with a legend above the
//! data, tick labels that stay distinct at small ranges. The figures themselves are drawn by
//! their owners (pretraining in `unimiss-ssl`, fine-tuning in `unimiss-tasks`).

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::{Result, RuntimeError};

/// The drawing area of a figure ([`figure`]).
pub type Canvas<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// Draws the PNG `out` of `size` pixels: `draw(canvas, text)` on a white canvas, then written.
/// Text needs a system font; when drawing with text fails, the figure is drawn again without
/// labels (`text = false`), so a machine without fonts still gets the curves.
pub fn figure<E: From<RuntimeError>>(out: &Path, size: (u32, u32), draw: impl Fn(&Canvas<'_>, bool) -> std::result::Result<(), E>) -> std::result::Result<(), E> {
    let once = |text: bool| -> std::result::Result<(), E> {
        let err = |e: String| RuntimeError::Plot { path: out.to_path_buf(), msg: e };
        let root = BitMapBackend::new(out, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        draw(&root, text)?;
        root.present().map_err(|e| err(e.to_string()))?;
        Ok(())
    };
    once(true).or_else(|_| once(false))
}

/// The `log.jsonl` of a run directory, or the log file itself.
pub fn log_of(run: &Path) -> PathBuf {
    if run.is_file() { run.to_path_buf() } else { run.join("log.jsonl") }
}

/// A line of one colour; its points split into pieces where the x values jump (the steps of
/// the other modality, which are left as gaps).
pub struct Series {
    pub label: String,
    pub colour: RGBColor,
    pub width: u32,
    pub points: Vec<(f64, f64)>,
    pub markers: bool,
    pub dashed: bool,
    /// Break the line where x jumps by more than 1 (steps of the other modality).
    pub gaps: bool,
    /// Marker colour of each point (e.g. by modality), instead of the line's.
    pub point_colours: Vec<RGBColor>,
}

impl Series {
    pub fn new(label: impl Into<String>, colour: RGBColor, points: Vec<(f64, f64)>) -> Self {
        Self { label: label.into(), colour, width: 2, points, markers: false, dashed: false, gaps: true, point_colours: Vec::new() }
    }
}

/// Pieces of consecutive x (step k followed by k + 1); one piece when `gaps` is off.
pub fn pieces(points: &[(f64, f64)], gaps: bool) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
    for &p in points {
        match out.last_mut() {
            Some(last) if !gaps || last.last().is_some_and(|q| p.0 - q.0 <= 1.0 + 1e-9) => last.push(p),
            _ => out.push(vec![p]),
        }
    }
    out
}

/// Tick labels with as many decimals as the range needs: plotters puts up to ~12 ticks on an
/// axis, each label must differ from its neighbours.
pub fn tick_format(lo: f64, hi: f64) -> impl Fn(&f64) -> String {
    let step = ((hi - lo) / 12.0).abs().max(1e-12);
    let decimals = (-step.log10().floor()).clamp(0.0, 8.0) as usize;
    move |v: &f64| format!("{v:.decimals$}")
}

/// The y range of the series (and extra values), padded; never narrower than 1e-3 of its size.
pub fn y_range(series: &[Series], extra: &[f64]) -> (f64, f64) {
    let vals = series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).chain(extra.iter().copied()).filter(|v| v.is_finite());
    let (lo, hi) = vals.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let span = (hi - lo).max(1e-3 * hi.abs().max(lo.abs())).max(1e-6);
    (lo - 0.08 * span, hi + 0.08 * span)
}

/// Axis titles and the x extent of a panel.
pub struct Panel<'a> {
    pub title: &'a str,
    pub x_desc: &'a str,
    pub y_desc: &'a str,
    pub x: (f64, f64),
    pub integer_x: bool,
}

/// One chart: the series with a legend, horizontal reference lines `(y, label)` dashed.
/// `markers`: legend-only entries `(label, colour)` explaining the point colours.
pub fn panel(area: &Canvas<'_>, p: &Panel<'_>, series: &[Series], hlines: &[(f64, String)], markers: &[(&str, RGBColor)], text: bool, path: &Path) -> Result<()> {
    let err = |e: String| RuntimeError::Plot { path: path.to_path_buf(), msg: e };
    let extra: Vec<f64> = hlines.iter().map(|h| h.0).collect();
    let (lo, hi) = y_range(series, &extra);
    // Room above the data for the legend (upper right), so it never hides a curve.
    let entries = series.iter().filter(|s| !s.label.is_empty()).count() + hlines.len() + markers.len();
    let hi = if text { hi + (hi - lo) * 0.075 * entries as f64 } else { hi };
    let mut b = ChartBuilder::on(area);
    b.margin(12);
    if text {
        b.caption(p.title, ("sans-serif", 22)).x_label_area_size(45).y_label_area_size(75);
    }
    let mut chart = b.build_cartesian_2d(p.x.0..p.x.1, lo..hi).map_err(|e| err(e.to_string()))?;
    let yfmt = tick_format(lo, hi);
    let xfmt = |v: &f64| if (v - v.round()).abs() < 1e-9 { format!("{v:.0}") } else { String::new() };
    let mut mesh = chart.configure_mesh();
    mesh.light_line_style(WHITE.mix(0.0));
    if text {
        mesh.x_desc(p.x_desc).y_desc(p.y_desc).y_label_formatter(&yfmt).label_style(("sans-serif", 15)).axis_desc_style(("sans-serif", 17));
        if p.integer_x {
            mesh.x_label_formatter(&xfmt);
        }
    } else {
        mesh.disable_x_mesh().disable_y_mesh().x_labels(0).y_labels(0);
    }
    mesh.draw().map_err(|e| err(e.to_string()))?;
    for s in series {
        let style = ShapeStyle { color: s.colour.to_rgba(), filled: true, stroke_width: s.width };
        let mut first = true;
        for piece in pieces(&s.points, s.gaps) {
            let anno = if s.dashed {
                chart.draw_series(DashedLineSeries::new(piece.clone(), 8, 5, style))
            } else {
                chart.draw_series(LineSeries::new(piece.clone(), style))
            }
            .map_err(|e| err(e.to_string()))?;
            if first && text {
                anno.label(s.label.as_str()).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
                first = false;
            }
            if (s.markers || piece.len() == 1) && s.point_colours.is_empty() {
                chart.draw_series(piece.iter().map(|&q| Circle::new(q, 3, style))).map_err(|e| err(e.to_string()))?;
            }
        }
        let marks = s.points.iter().zip(&s.point_colours).map(|(&q, c)| Circle::new(q, 5, c.filled()));
        chart.draw_series(marks).map_err(|e| err(e.to_string()))?;
    }
    for (label, colour) in markers {
        let anno = chart.draw_series(std::iter::empty::<Circle<(f64, f64), i32>>()).map_err(|e| err(e.to_string()))?;
        if text {
            let c = *colour;
            anno.label(*label).legend(move |(x, y)| Circle::new((x + 12, y), 5, c.filled()));
        }
    }
    for (y, label) in hlines {
        let style = ShapeStyle { color: RGBColor(110, 110, 110).to_rgba(), filled: true, stroke_width: 2 };
        let anno = chart.draw_series(DashedLineSeries::new(vec![(p.x.0, *y), (p.x.1, *y)], 10, 6, style)).map_err(|e| err(e.to_string()))?;
        if text {
            anno.label(label.as_str()).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
        }
    }
    if text {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font(("sans-serif", 15))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .draw()
            .map_err(|e| err(e.to_string()))?;
    }
    Ok(())
}

/// One colour per run when several runs share a figure.
pub const RUN_COLOURS: [RGBColor; 6] =
    [RGBColor(200, 40, 40), RGBColor(30, 80, 200), RGBColor(40, 150, 60), RGBColor(220, 130, 20), RGBColor(140, 60, 180), RGBColor(20, 160, 170)];

/// A legend name per run: the folder names, or the whole paths when two folders share a name.
pub fn run_names(runs: &[PathBuf]) -> Vec<String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_break_where_the_other_modality_ran() {
        let pts = [(1.0, 5.0), (2.0, 4.0), (5.0, 20.0), (6.0, 19.0), (9.0, 3.0)];
        let p = pieces(&pts, true);
        assert_eq!(p.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
        assert_eq!(pieces(&pts, false).len(), 1);
    }

    #[test]
    fn ticks_stay_distinct_at_small_ranges() {
        // A validation AUC moving between 0.5012 and 0.5043 (the "0.0 on every tick" plot).
        let (lo, hi) = (0.5012, 0.5043);
        let f = tick_format(lo, hi);
        let labels: Vec<String> = (0..12).map(|i| f(&(lo + (hi - lo) * f64::from(i) / 11.0))).collect();
        let mut distinct = labels.clone();
        distinct.dedup();
        assert_eq!(distinct.len(), labels.len(), "{labels:?}");
        assert_eq!(tick_format(0.0, 25.0)(&12.0), "12");
    }

    #[test]
    fn a_flat_series_still_gets_a_range() {
        let s = [Series::new("x", RGBColor(200, 40, 40), vec![(1.0, 0.75), (2.0, 0.75)])];
        let (lo, hi) = y_range(&s, &[]);
        assert!(lo < 0.75 && hi > 0.75 && hi - lo < 0.01, "{lo} {hi}");
    }
}
