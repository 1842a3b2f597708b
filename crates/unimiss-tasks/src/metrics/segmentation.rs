//! Per-case segmentation metrics (Dice, Jaccard, HD95 per class) and their aggregate ([`SegSummary`]).

use std::collections::BTreeMap;

use serde::Serialize;

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

/// Values by class name (in name order, as the JSON objects are written).
pub type ByClass = BTreeMap<String, Option<f64>>;

fn named(names: &[String], v: &[Option<f64>]) -> ByClass {
    names.iter().cloned().zip(v.iter().copied()).collect()
}

/// The aggregate of [`segmentation_report`]: `dice_mean`, `dice` (per class), `jaccard_mean`,
/// `jaccard`, and with HD95 `hd95` (per class), `hd95_mean`, `hd95_null_count` (case×class
/// pairs where prediction or ground truth was empty, excluded from the means), plus per-case
/// rows under `cases`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegSummary {
    pub dice_mean: Option<f64>,
    pub dice: ByClass,
    pub jaccard_mean: Option<f64>,
    pub jaccard: ByClass,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hd95: Option<ByClass>,
    /// `Some(None)`: HD95 was computed but is undefined for every case.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hd95_mean: Option<Option<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hd95_null_count: Option<usize>,
    pub cases: Vec<SegCaseRow>,
}

/// One case of a [`SegSummary`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegCaseRow {
    pub case: String,
    pub dice: ByClass,
    pub jaccard: ByClass,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hd95: Option<ByClass>,
}

/// The evaluation aggregate of `cases` ([`SegSummary`]).
pub fn segmentation_report(class_names: &[String], cases: &[SegCase]) -> Result<SegSummary> {
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
    let has_hd = cases.iter().all(|c| c.hd95.is_some());
    let hd = has_hd.then(|| class_means(cases, k, |c| c.hd95.as_ref()));
    let rows = cases
        .iter()
        .map(|c| SegCaseRow {
            case: c.case.clone(),
            dice: named(class_names, &c.dice),
            jaccard: named(class_names, &c.jaccard),
            hd95: c.hd95.as_ref().map(|h| named(class_names, h)),
        })
        .collect();
    let (dice, jac) = (class_means(cases, k, |c| Some(&c.dice)), class_means(cases, k, |c| Some(&c.jaccard)));
    Ok(SegSummary {
        dice_mean: mean_defined(&dice),
        dice: named(class_names, &dice),
        jaccard_mean: mean_defined(&jac),
        jaccard: named(class_names, &jac),
        hd95: hd.as_ref().map(|hd| named(class_names, hd)),
        hd95_mean: hd.as_ref().map(|hd| mean_defined(hd)),
        hd95_null_count: has_hd.then(|| cases.iter().flat_map(|c| c.hd95.iter().flatten()).filter(|x| x.is_none()).count()),
        cases: rows,
    })
}
