//! Per-case segmentation metrics (Dice, Jaccard, HD95 per class) and their JSON aggregate.

use serde_json::{Map, Value, json};

use super::classification::mean_defined;
use super::overlap::Overlap;
use super::surface::hd95;
use crate::error::{Result, TaskError};

/// Metrics of one image or volume, one entry per foreground class.
#[derive(Debug, Clone, PartialEq)]
pub struct SegCase {
    pub case: String,
    pub dice: Vec<Option<f64>>,
    pub jaccard: Vec<Option<f64>>,
    /// Present for 3D tasks only (millimetres); `None` entries: empty prediction or ground truth.
    pub hd95: Option<Vec<Option<f64>>>,
}

/// Options of [`segmentation_case`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SegMetricOptions {
    /// Added to numerator and denominator of Dice and Jaccard (0.01 in the official JSRT code).
    pub smooth: f64,
    /// Spacing (mm, `[D, H, W]` order) to compute HD95 with; `None` skips HD95.
    pub hd95_spacing: Option<[f64; 3]>,
}

/// Metrics of one case from per-class binary masks (`pred[c]`, `gt[c]` on the `dims` grid).
pub fn segmentation_case(
    case: &str,
    pred: &[Vec<bool>],
    gt: &[Vec<bool>],
    dims: [usize; 3],
    opts: SegMetricOptions,
) -> Result<SegCase> {
    if pred.len() != gt.len() {
        return Err(TaskError::ShapeMismatch {
            what: format!("{case}: number of predicted vs ground-truth classes"),
            got: vec![pred.len()],
            expected: vec![gt.len()],
        });
    }
    let n: usize = dims.iter().product();
    let mut out = SegCase { case: case.into(), dice: vec![], jaccard: vec![], hd95: None };
    let mut hd = Vec::new();
    for (p, g) in pred.iter().zip(gt) {
        if p.len() != n || g.len() != n {
            return Err(TaskError::ShapeMismatch {
                what: format!("{case}: mask size (prediction {}, ground truth {})", p.len(), g.len()),
                got: vec![p.len()],
                expected: dims.to_vec(),
            });
        }
        let o = Overlap::of(p, g)?;
        out.dice.push(o.dice(opts.smooth));
        out.jaccard.push(o.jaccard(opts.smooth));
        if let Some(sp) = opts.hd95_spacing {
            hd.push(hd95(p, g, dims, sp)?);
        }
    }
    if opts.hd95_spacing.is_some() {
        out.hd95 = Some(hd);
    }
    Ok(out)
}

/// Per-class means over cases (undefined entries left out).
fn class_means(cases: &[SegCase], classes: usize, get: impl Fn(&SegCase) -> Option<&Vec<Option<f64>>>) -> Vec<Option<f64>> {
    (0..classes)
        .map(|c| {
            let v: Vec<Option<f64>> = cases.iter().filter_map(|k| get(k).map(|x| x[c])).collect();
            mean_defined(&v)
        })
        .collect()
}

fn named(names: &[String], v: &[Option<f64>]) -> Value {
    Value::Object(names.iter().cloned().zip(v.iter().map(|x| json!(x))).collect::<Map<_, _>>())
}

/// The evaluation report: `dice_mean`, `dice` (per class), `jaccard_mean`, `jaccard`, and for 3D
/// `hd95` (per class, mm), `hd95_mean` and `hd95_null_count` (case×class pairs where prediction or
/// ground truth was empty, excluded from the means), plus per-case rows under `cases`.
pub fn segmentation_report(class_names: &[String], cases: &[SegCase]) -> Result<Value> {
    if cases.is_empty() {
        return Err(TaskError::Invalid("segmentation report: no cases".into()));
    }
    let k = class_names.len();
    if let Some(bad) = cases.iter().find(|c| c.dice.len() != k) {
        return Err(TaskError::ShapeMismatch {
            what: format!("{}: classes in the case vs class names", bad.case),
            got: vec![bad.dice.len()],
            expected: vec![k],
        });
    }
    let dice = class_means(cases, k, |c| Some(&c.dice));
    let jac = class_means(cases, k, |c| Some(&c.jaccard));
    let mut report = Map::new();
    report.insert("dice_mean".into(), json!(mean_defined(&dice)));
    report.insert("dice".into(), named(class_names, &dice));
    report.insert("jaccard_mean".into(), json!(mean_defined(&jac)));
    report.insert("jaccard".into(), named(class_names, &jac));
    let has_hd = cases.iter().all(|c| c.hd95.is_some());
    if has_hd {
        let hd = class_means(cases, k, |c| c.hd95.as_ref());
        let nulls: usize = cases.iter().flat_map(|c| c.hd95.iter().flatten()).filter(|x| x.is_none()).count();
        report.insert("hd95".into(), named(class_names, &hd));
        report.insert("hd95_mean".into(), json!(mean_defined(&hd)));
        report.insert("hd95_null_count".into(), json!(nulls));
    }
    let rows: Vec<Value> = cases
        .iter()
        .map(|c| {
            let mut row = Map::new();
            row.insert("case".into(), json!(c.case));
            row.insert("dice".into(), named(class_names, &c.dice));
            row.insert("jaccard".into(), named(class_names, &c.jaccard));
            if let Some(h) = &c.hd95 {
                row.insert("hd95".into(), named(class_names, h));
            }
            Value::Object(row)
        })
        .collect();
    report.insert("cases".into(), Value::Array(rows));
    Ok(Value::Object(report))
}
