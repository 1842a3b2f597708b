//! The plots of a run directory, drawn from its `log.jsonl`: `loss.png` for pretraining (one
//! panel per modality, the teacher's entropies against ln K) and `curves.png` for fine-tuning
//! (training loss, the named validation metric), and one figure comparing several runs
//! ([`compare`]). Epochs are counted from 1, as the console does.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;
use serde::Deserialize;

use crate::error::{Result, SslError};
use crate::log::{EpochRecord, StepRecord};
use crate::Modality;

pub mod compare;
pub use compare::plot_compare;

/// Whether a log's text is a fine-tuning log: epoch records with a validation metric, or step
/// records without the pretraining `batch` field (a run stopped in its first epoch).
pub(crate) fn is_finetuning(text: &str) -> bool {
    text.lines().any(|l| l.contains("\"val_metric\"") || l.contains("\"train_loss\""))
        || (text.contains("\"kind\":\"step\"") && !text.contains("\"batch\""))
}

/// The `log.jsonl` of a run directory, or the log file itself.
pub(crate) fn log_of(run: &Path) -> PathBuf {
    if run.is_file() { run.to_path_buf() } else { run.join("log.jsonl") }
}

/// Draw the plot of a run directory (or of a `log.jsonl`): `loss.png` for a pretraining log,
/// `curves.png` for a fine-tuning one, next to the log unless `out` is given. Returns the file.
pub fn plot_run(run: &Path, out: Option<&Path>) -> Result<PathBuf> {
    let log = log_of(run);
    let dir = log.parent().map(Path::to_path_buf).unwrap_or_default();
    let text = std::fs::read_to_string(&log).map_err(crate::error::io_err(&log))?;
    let finetuning = is_finetuning(&text);
    let default = dir.join(if finetuning { "curves.png" } else { "loss.png" });
    let out = out.map_or(default, Path::to_path_buf);
    if finetuning { plot_task_log(&log, &out)? } else { plot_log(&log, &out)? }
    Ok(out)
}

/// Pretraining: `log` (a `log.jsonl`) → `out` (PNG, 1400×1000). ln K is read from the
/// `config.toml` beside the log (`model.out_dim`); without it the line is left out.
pub fn plot_log(log: &Path, out: &Path) -> Result<()> {
    let (steps, epochs) = crate::log::read(log)?;
    if steps.is_empty() {
        return Err(SslError::Plot { path: log.to_path_buf(), msg: "no step records to plot".into() });
    }
    let k = log.parent().and_then(|d| std::fs::read_to_string(d.join("config.toml")).ok()).and_then(|t| {
        let v: toml::Value = toml::from_str(&t).ok()?;
        v.get("model")?.get("out_dim")?.as_integer()
    });
    let ln_k = k.map(|k| (k as f64).ln());
    // Text needs a system font; without one, draw the curves without labels.
    draw_pretraining(&steps, &epochs, ln_k, out, true).or_else(|_| draw_pretraining(&steps, &epochs, ln_k, out, false))
}

/// Fine-tuning: the step and epoch records of `log` → `out` (PNG, 1100×800).
pub fn plot_task_log(log: &Path, out: &Path) -> Result<()> {
    let (steps, epochs) = read_task_log(log)?;
    draw_finetuning(&steps, &epochs, out, true).or_else(|_| draw_finetuning(&steps, &epochs, out, false))
}

/// The step and epoch records of a fine-tuning log (at least one).
fn read_task_log(log: &Path) -> Result<(Vec<TaskStep>, Vec<TaskEpoch>)> {
    let text = std::fs::read_to_string(log).map_err(crate::error::io_err(log))?;
    let (mut steps, mut epochs) = (Vec::new(), Vec::new());
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let bad = |e: serde_json::Error| SslError::Plot { path: log.to_path_buf(), msg: format!("line {}: {e}", n + 1) };
        match serde_json::from_str::<TaskLine>(line).map_err(bad)? {
            TaskLine::Epoch(e) => epochs.push(e),
            TaskLine::Step(s) => steps.push(s),
        }
    }
    if epochs.is_empty() && steps.is_empty() {
        return Err(SslError::Plot { path: log.to_path_buf(), msg: "no fine-tuning records to plot".into() });
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

/// A line of one colour; its points split into pieces where the x values jump (the steps of
/// the other modality, which are left as gaps).
struct Series {
    label: String,
    colour: RGBColor,
    width: u32,
    points: Vec<(f64, f64)>,
    markers: bool,
    dashed: bool,
    /// Break the line where x jumps by more than 1 (steps of the other modality).
    gaps: bool,
    /// Marker colour of each point (e.g. by modality), instead of the line's.
    point_colours: Vec<RGBColor>,
}

impl Series {
    fn new(label: impl Into<String>, colour: RGBColor, points: Vec<(f64, f64)>) -> Self {
        Self { label: label.into(), colour, width: 2, points, markers: false, dashed: false, gaps: true, point_colours: Vec::new() }
    }
}

/// Pieces of consecutive x (step k followed by k + 1); one piece when `gaps` is off.
fn pieces(points: &[(f64, f64)], gaps: bool) -> Vec<Vec<(f64, f64)>> {
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
fn tick_format(lo: f64, hi: f64) -> impl Fn(&f64) -> String {
    let step = ((hi - lo) / 12.0).abs().max(1e-12);
    let decimals = (-step.log10().floor()).clamp(0.0, 8.0) as usize;
    move |v: &f64| format!("{v:.decimals$}")
}

/// The y range of the series (and extra values), padded; never narrower than 1e-3 of its size.
fn y_range(series: &[Series], extra: &[f64]) -> (f64, f64) {
    let vals = series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).chain(extra.iter().copied()).filter(|v| v.is_finite());
    let (lo, hi) = vals.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let span = (hi - lo).max(1e-3 * hi.abs().max(lo.abs())).max(1e-6);
    (lo - 0.08 * span, hi + 0.08 * span)
}

/// Axis titles and the x extent of a panel.
struct Panel<'a> {
    title: &'a str,
    x_desc: &'a str,
    y_desc: &'a str,
    x: (f64, f64),
    integer_x: bool,
}

/// One chart: the series with a legend, horizontal reference lines `(y, label)` dashed.
/// `markers`: legend-only entries `(label, colour)` explaining the point colours.
fn panel(area: &DrawingArea<BitMapBackend<'_>, Shift>, p: &Panel<'_>, series: &[Series], hlines: &[(f64, String)], markers: &[(&str, RGBColor)], text: bool, path: &Path) -> Result<()> {
    let err = |e: String| SslError::Plot { path: path.to_path_buf(), msg: e };
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

fn draw_pretraining(steps: &[StepRecord], epochs: &[EpochRecord], ln_k: Option<f64>, out: &Path, text: bool) -> Result<()> {
    let err = |e: String| SslError::Plot { path: out.to_path_buf(), msg: e };
    let root = BitMapBackend::new(out, (1400, 1000)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
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
    panel(&bottom, &pe, &[row, mean], &hlines, &[("2D epoch", C2D), ("3D epoch", C3D)], text, out)?;
    root.present().map_err(|e| err(e.to_string()))
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

fn draw_finetuning(steps: &[TaskStep], epochs: &[TaskEpoch], out: &Path, text: bool) -> Result<()> {
    let err = |e: String| SslError::Plot { path: out.to_path_buf(), msg: e };
    let root = BitMapBackend::new(out, (1100, 800)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
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
    let mut loss_mean = Series::new("epoch mean", C2D, epochs.iter().map(|e| (e.epoch as f64 + 1.0, e.train_loss)).collect());
    loss_mean.markers = true;
    let pl = Panel { title: "training loss", x_desc: "epoch", y_desc: "loss", x: (0.0, n_ep + 0.5), integer_x: true };
    panel(&top, &pl, &[loss_steps, loss_mean], &[], &[], text, out)?;

    let mut names: Vec<&str> = epochs.iter().map(|e| metric_name(&e.metric)).collect();
    names.dedup();
    let name = if names.is_empty() { "metric".to_string() } else { names.join(" / ") };
    let mut val = Series::new(format!("validation {name}"), C3D, epochs.iter().map(|e| (e.epoch as f64 + 1.0, e.val_metric)).collect());
    val.markers = true;
    let best = epochs.iter().map(|e| e.val_metric).filter(|v| v.is_finite()).fold(f64::NEG_INFINITY, f64::max);
    let hlines: Vec<(f64, String)> = if best.is_finite() { vec![(best, format!("best {name} {best:.4}"))] } else { vec![] };
    let title = format!("validation {name} after each epoch");
    // The same x range as the loss panel above, so epoch k sits at one x in both.
    let pv = Panel { title: &title, x_desc: "epoch", y_desc: &name, x: (0.0, n_ep + 0.5), integer_x: true };
    panel(&bottom, &pv, &[val], &hlines, &[], text, out)?;
    root.present().map_err(|e| err(e.to_string()))
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
        let s = [Series::new("x", C2D, vec![(1.0, 0.75), (2.0, 0.75)])];
        let (lo, hi) = y_range(&s, &[]);
        assert!(lo < 0.75 && hi > 0.75 && hi - lo < 0.01, "{lo} {hi}");
    }
}
