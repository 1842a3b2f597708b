//! Region overlap: Dice and Jaccard of binary masks.

use crate::error::{Result, TaskError};

/// Voxel counts of a prediction and a ground-truth mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Overlap {
    /// |P ∩ G|
    pub inter: usize,
    /// |P|
    pub pred: usize,
    /// |G|
    pub gt: usize,
}

impl Overlap {
    /// Counts the overlap of two masks of the same length.
    pub fn of(pred: &[bool], gt: &[bool]) -> Result<Self> {
        if pred.len() != gt.len() {
            return Err(TaskError::ShapeMismatch {
                what: "prediction mask vs ground-truth mask".into(),
                got: vec![pred.len()],
                expected: vec![gt.len()],
            });
        }
        let mut o = Self::default();
        for (&p, &g) in pred.iter().zip(gt) {
            o.pred += p as usize;
            o.gt += g as usize;
            o.inter += (p && g) as usize;
        }
        Ok(o)
    }

    /// Dice `(2|P∩G| + s) / (|P| + |G| + s)`; `None` when the denominator is 0 (both masks
    /// empty and `s = 0`). The official JSRT evaluation uses `s = 0.01`, nnU-Net `s = 0`.
    pub fn dice(&self, smooth: f64) -> Option<f64> {
        let den = (self.pred + self.gt) as f64 + smooth;
        (den > 0.0).then(|| (2.0 * self.inter as f64 + smooth) / den)
    }

    /// Jaccard `(|P∩G| + s) / (|P∪G| + s)`; `None` when the denominator is 0.
    pub fn jaccard(&self, smooth: f64) -> Option<f64> {
        let union = self.pred + self.gt - self.inter;
        let den = union as f64 + smooth;
        (den > 0.0).then(|| (self.inter as f64 + smooth) / den)
    }
}

/// One binary mask per foreground class `1..classes` from a label map (background 0 dropped).
/// A label `>= classes` is an error naming `what`.
pub fn masks_from_labels(labels: &[u32], classes: usize, what: &str) -> Result<Vec<Vec<bool>>> {
    if classes < 2 {
        return Err(TaskError::Invalid(format!("{what}: need at least 2 classes, got {classes}")));
    }
    let mut masks = vec![vec![false; labels.len()]; classes - 1];
    for (i, &l) in labels.iter().enumerate() {
        let l = l as usize;
        if l >= classes {
            return Err(TaskError::LabelOutOfRange { what: what.into(), label: l as i64, classes });
        }
        if l > 0 {
            masks[l - 1][i] = true;
        }
    }
    Ok(masks)
}
