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

use serde_json::{Value, json};

/// The classification report: `accuracy`, `auc`, `ap`, `sensitivity`, `specificity`, the
/// per-class AUC/AP, the confusion matrix, and per-case rows (`case`, `label`, `pred`, `probs`).
pub fn classification_report(names: &[String], probs: &[Vec<f64>], labels: &[usize]) -> crate::Result<Value> {
    if names.len() != probs.len() {
        return Err(crate::TaskError::ShapeMismatch {
            what: "case names vs probabilities".into(),
            got: vec![names.len()],
            expected: vec![probs.len()],
        });
    }
    let m = classification_metrics(probs, labels)?;
    let Value::Object(mut map) = serde_json::to_value(&m)? else {
        return Err(crate::TaskError::Invalid("classification metrics did not serialise to an object".into()));
    };
    let rows: Vec<Value> = names
        .iter()
        .zip(probs.iter().zip(labels))
        .map(|(n, (p, l))| json!({"case": n, "label": l, "pred": classification::argmax(p), "probs": p}))
        .collect();
    map.insert("cases".into(), Value::Array(rows));
    Ok(Value::Object(map))
}
