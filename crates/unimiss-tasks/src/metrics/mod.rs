//! Evaluation metrics: overlap (Dice, Jaccard), surface distance (HD95 in mm) and
//! classification (accuracy, ROC-AUC, AP, sensitivity, specificity), with JSON reports.

pub mod classification;
pub mod overlap;
pub mod segmentation;
pub mod surface;

pub use classification::{ClsMetrics, average_precision, classification_metrics, roc_auc};
pub use overlap::{Overlap, masks_from_labels};
pub use segmentation::{SegCase, SegMetricOptions, segmentation_case, segmentation_report};
pub use surface::{distance_to, hd95, percentile, surface};

use serde::Serialize;

/// One case of a [`ClsSummary`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClsCaseRow {
    pub case: String,
    pub label: usize,
    pub pred: usize,
    pub probs: Vec<f64>,
}

/// The classification aggregate: `accuracy`, `auc`, `ap`, `sensitivity`, `specificity`, the
/// per-class AUC/AP, the confusion matrix ([`ClsMetrics`]), and per-case rows under `cases`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClsSummary {
    #[serde(flatten)]
    pub metrics: ClsMetrics,
    pub cases: Vec<ClsCaseRow>,
}

/// The classification report of `names` with their probabilities and labels ([`ClsSummary`]).
pub fn classification_report(names: &[String], probs: &[Vec<f64>], labels: &[usize]) -> crate::Result<ClsSummary> {
    if names.len() != probs.len() {
        return Err(crate::TaskError::ShapeMismatch {
            what: "case names vs probabilities".into(),
            got: vec![names.len()],
            expected: vec![probs.len()],
        });
    }
    let metrics = classification_metrics(probs, labels)?;
    let cases = names
        .iter()
        .zip(probs.iter().zip(labels))
        .map(|(n, (p, &l))| ClsCaseRow { case: n.clone(), label: l, pred: classification::argmax(p), probs: p.clone() })
        .collect();
    Ok(ClsSummary { metrics, cases })
}
