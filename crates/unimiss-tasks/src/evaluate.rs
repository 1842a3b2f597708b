//! Evaluation on a labelled test manifest: a typed report ([`EvalReport`], one kind per task
//! kind) written as JSON and printed. Prediction on unlabelled inputs is [`crate::predict`].

use std::fmt;
use std::path::{Path, PathBuf};

use candle::Device;
use serde::Serialize;

use crate::classify::predict_probs;
use crate::error::Result;
use crate::finetune::load_net;
use crate::metrics::{ClsMetrics, ClsSummary, classification_report};
use crate::nets::{Task, TaskNet};
use crate::seg_infer::{SegEvaluation, seg_report};

/// What [`evaluate`] reports: the metrics of one task kind with what was evaluated. Written as
/// JSON (`--json`) and printed ([`fmt::Display`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum EvalReport {
    Classification(ClassificationReport),
    Segmentation(SegmentationReport),
}

/// A classification evaluation: accuracy, AUC, AP, sensitivity, specificity, per-class values,
/// per-case rows ([`ClsSummary`]), and `warnings` (e.g. why AUC is undefined on a test split
/// with a single class).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassificationReport {
    pub task: Task,
    pub classes: Vec<String>,
    pub weights: PathBuf,
    #[serde(flatten)]
    pub summary: ClsSummary,
    pub warnings: Vec<String>,
}

/// A segmentation evaluation: Dice, Jaccard, HD95 per class and their means, per-case rows,
/// the HD95 unit and the sliding-window settings ([`SegEvaluation`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentationReport {
    pub task: Task,
    pub classes: Vec<String>,
    pub weights: PathBuf,
    #[serde(flatten)]
    pub evaluation: SegEvaluation,
}

impl EvalReport {
    pub fn task(&self) -> Task {
        match self {
            EvalReport::Classification(r) => r.task,
            EvalReport::Segmentation(r) => r.task,
        }
    }

    /// The headline metric: AUC (classification; `None` when undefined) or mean Dice.
    pub fn headline(&self) -> Option<f64> {
        match self {
            EvalReport::Classification(r) => r.summary.metrics.auc,
            EvalReport::Segmentation(r) => r.evaluation.summary.dice_mean,
        }
    }

    /// What the report warns about (printed before the metrics).
    pub fn warnings(&self) -> &[String] {
        match self {
            EvalReport::Classification(r) => &r.warnings,
            EvalReport::Segmentation(_) => &[],
        }
    }
}

fn num(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".into(), |v| format!("{v:.4}"))
}

impl fmt::Display for EvalReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EvalReport::Classification(r) => {
                let m = &r.summary.metrics;
                write!(
                    f,
                    "evaluate {}: accuracy {}, auc {}, ap {}, sensitivity {}, specificity {}",
                    r.task,
                    num(Some(m.accuracy)),
                    num(m.auc),
                    num(m.ap),
                    num(m.sensitivity),
                    num(m.specificity)
                )
            }
            EvalReport::Segmentation(r) => {
                let (s, unit) = (&r.evaluation.summary, r.evaluation.hd95_unit);
                let hd_mean = s.hd95_mean.flatten();
                write!(f, "evaluate {} on {} cases: dice mean {}, hd95 mean {} {unit}", r.task, s.cases.len(), num(s.dice_mean), num(hd_mean))?;
                // class order of the weights (the maps are sorted by name)
                for class in &r.classes {
                    if let Some(dice) = s.dice.get(class) {
                        let hd = s.hd95.as_ref().and_then(|h| h.get(class).copied().flatten());
                        write!(f, "\n  {class:<12} dice {}  hd95 {} {unit}", num(*dice), num(hd))?;
                    }
                }
                match s.hd95_null_count {
                    Some(n) if n > 0 => write!(f, "\n  hd95 undefined (empty prediction or ground truth) for {n} case×class pairs, left out of the means"),
                    _ => Ok(()),
                }
            }
        }
    }
}

/// Evaluates `weights` on `test` ([`EvalReport`]).
pub fn evaluate(weights: &Path, test: &Path, dev: &Device) -> Result<EvalReport> {
    let (meta, net) = load_net(weights, dev)?;
    let m = meta.task.read_manifest(test)?;
    let k = meta.classes.len();
    let net = match net {
        TaskNet::Cls(n) => n,
        TaskNet::Seg(n) => {
            let evaluation = seg_report(&n, meta.task, &meta.classes, &m, &meta.config, dev)?;
            return Ok(EvalReport::Segmentation(SegmentationReport { task: meta.task, classes: meta.classes, weights: weights.to_path_buf(), evaluation }));
        }
    };
    let labels = m.class_indices(k, test)?;
    let paths: Vec<&Path> = m.samples.iter().map(|s| s.sample.path.as_path()).collect();
    let probs = predict_probs(&net, meta.task, &paths, &meta.config, meta.config.tta_2d, dev)?;
    let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    let summary = classification_report(&names, &probs, &labels)?;
    let warnings = auc_warnings(&summary.metrics, &labels, &meta.classes);
    Ok(EvalReport::Classification(ClassificationReport { task: meta.task, classes: meta.classes, weights: weights.to_path_buf(), summary, warnings }))
}

/// Why AUC/AP are undefined or averaged over fewer classes: ROC-AUC of a class needs test cases
/// with and without it.
pub fn auc_warnings(metrics: &ClsMetrics, labels: &[usize], classes: &[String]) -> Vec<String> {
    let mut counts = vec![0usize; classes.len()];
    for &l in labels {
        if let Some(c) = counts.get_mut(l) {
            *c += 1;
        }
    }
    let present: Vec<String> = classes.iter().zip(&counts).filter(|(_, n)| **n > 0).map(|(c, n)| format!("{c} ({n} cases)")).collect();
    let absent: Vec<&str> = classes.iter().zip(&counts).filter(|(_, n)| **n == 0).map(|(c, _)| c.as_str()).collect();
    if metrics.auc.is_none() {
        return vec![format!(
            "AUC and AP are undefined: the test split holds only {}; ROC-AUC needs cases with and without a class, so evaluate on a split that has both",
            present.join(", ")
        )];
    }
    if classes.len() > 2 && !absent.is_empty() {
        return vec![format!("AUC and AP are macro averages over the classes present in the test split only; no test case has {}", absent.join(", "))];
    }
    vec![]
}
