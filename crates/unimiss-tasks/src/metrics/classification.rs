//! Classification metrics on class probabilities: accuracy, ROC-AUC, average precision,
//! sensitivity and specificity (scikit-learn definitions).

use serde::Serialize;

use crate::error::{Result, TaskError};

/// Aggregated classification metrics.
///
/// For two classes `auc` and `ap` are those of class 1 against its probability, as the official
/// RICORD test computes them; for three or more classes they are macro averages of the
/// one-vs-rest values (the official CXR test: scikit-learn on one-hot labels). Classes without a
/// positive or without a negative example have no AUC/AP (`None`) and are left out of the macro
/// average. `sensitivity`/`specificity` are those of class 1 for two classes, else macro
/// one-vs-rest averages.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClsMetrics {
    pub accuracy: f64,
    pub auc: Option<f64>,
    pub ap: Option<f64>,
    pub sensitivity: Option<f64>,
    pub specificity: Option<f64>,
    pub auc_per_class: Vec<Option<f64>>,
    pub ap_per_class: Vec<Option<f64>>,
    /// `confusion[true][predicted]`
    pub confusion: Vec<Vec<usize>>,
}

/// Computes [`ClsMetrics`] from per-case probabilities (`probs[i].len()` = classes) and labels.
pub fn classification_metrics(probs: &[Vec<f64>], labels: &[usize]) -> Result<ClsMetrics> {
    if probs.is_empty() {
        return Err(TaskError::Invalid("classification metrics: no cases".into()));
    }
    if probs.len() != labels.len() {
        return Err(TaskError::ShapeMismatch {
            what: "probabilities vs labels".into(),
            got: vec![probs.len()],
            expected: vec![labels.len()],
        });
    }
    let classes = probs[0].len();
    if classes < 2 || probs.iter().any(|p| p.len() != classes) {
        return Err(TaskError::Invalid(format!(
            "classification metrics: every case needs the same number (>= 2) of class probabilities, first has {classes}"
        )));
    }
    if let Some(&l) = labels.iter().find(|&&l| l >= classes) {
        return Err(TaskError::LabelOutOfRange { what: "classification labels".into(), label: l as i64, classes });
    }
    let mut confusion = vec![vec![0usize; classes]; classes];
    for (p, &l) in probs.iter().zip(labels) {
        confusion[l][argmax(p)] += 1;
    }
    let correct: usize = (0..classes).map(|c| confusion[c][c]).sum();
    let accuracy = correct as f64 / labels.len() as f64;
    let mut auc_per_class = Vec::with_capacity(classes);
    let mut ap_per_class = Vec::with_capacity(classes);
    for c in 0..classes {
        let scores: Vec<f64> = probs.iter().map(|p| p[c]).collect();
        let pos: Vec<bool> = labels.iter().map(|&l| l == c).collect();
        auc_per_class.push(roc_auc(&scores, &pos));
        ap_per_class.push(average_precision(&scores, &pos));
    }
    let (sens, spec): (Vec<Option<f64>>, Vec<Option<f64>>) = (0..classes)
        .map(|c| {
            let tp = confusion[c][c];
            let fneg: usize = confusion[c].iter().sum::<usize>() - tp;
            let fpos: usize = (0..classes).map(|t| confusion[t][c]).sum::<usize>() - tp;
            let tn = labels.len() - tp - fneg - fpos;
            (ratio(tp, tp + fneg), ratio(tn, tn + fpos))
        })
        .unzip();
    let pick = |v: &[Option<f64>]| if classes == 2 { v[1] } else { mean_defined(v) };
    Ok(ClsMetrics {
        accuracy,
        auc: pick(&auc_per_class),
        ap: pick(&ap_per_class),
        sensitivity: pick(&sens),
        specificity: pick(&spec),
        auc_per_class,
        ap_per_class,
        confusion,
    })
}

/// Index of the largest value (first on ties, as `argmax` in PyTorch/NumPy).
pub fn argmax(p: &[f64]) -> usize {
    let mut best = 0;
    for (i, &v) in p.iter().enumerate() {
        if v > p[best] {
            best = i;
        }
    }
    best
}

fn ratio(a: usize, b: usize) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// Mean of the defined values; `None` when none is defined.
pub fn mean_defined(v: &[Option<f64>]) -> Option<f64> {
    let d: Vec<f64> = v.iter().flatten().copied().collect();
    (!d.is_empty()).then(|| d.iter().sum::<f64>() / d.len() as f64)
}

/// Area under the ROC curve (Mann–Whitney with average ranks for ties); `None` without both
/// positives and negatives.
pub fn roc_auc(scores: &[f64], positive: &[bool]) -> Option<f64> {
    let np = positive.iter().filter(|&&p| p).count();
    let nn = positive.len() - np;
    if np == 0 || nn == 0 {
        return None;
    }
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += avg_rank * idx[i..=j].iter().filter(|&&k| positive[k]).count() as f64;
        i = j + 1;
    }
    Some((rank_sum - (np * (np + 1)) as f64 / 2.0) / (np * nn) as f64)
}

/// Average precision `Σ (R_k − R_{k−1}) P_k` over distinct thresholds, high to low
/// (scikit-learn `average_precision_score`); `None` without positives or negatives.
pub fn average_precision(scores: &[f64], positive: &[bool]) -> Option<f64> {
    let np = positive.iter().filter(|&&p| p).count();
    if np == 0 || np == positive.len() {
        return None;
    }
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut tp, mut fp, mut prev_recall, mut ap) = (0usize, 0usize, 0.0, 0.0);
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        for &k in &idx[i..=j] {
            if positive[k] {
                tp += 1;
            } else {
                fp += 1;
            }
        }
        let recall = tp as f64 / np as f64;
        let precision = tp as f64 / (tp + fp) as f64;
        ap += (recall - prev_recall) * precision;
        prev_recall = recall;
        i = j + 1;
    }
    Some(ap)
}
