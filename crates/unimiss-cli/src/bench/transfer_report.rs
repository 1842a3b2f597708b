//! The table and the JSON of `bench transfer`: per compared quantity the values per seed of the
//! pretrained and the random-init backbone, and where they exist the floor (kNN on raw pixels)
//! and the ceiling (a supervised model trained from scratch on every label), so a reader sees
//! whether a run *could* have shown a gain.

use serde_json::{Value, json};

/// One compared quantity: a value per seed for each initialisation, and the bounds per seed.
pub struct Row {
    pub task: String,
    pub labels: f64,
    pub metric: &'static str,
    pub pretrained: Vec<Option<f64>>,
    pub random: Vec<Option<f64>>,
    /// kNN on raw pixels (kNN rows only).
    pub floor_pixels: Vec<Option<f64>>,
    /// Test accuracy of the supervised model from scratch with 100 % labels (the finding rows).
    pub ceiling: Vec<Option<f64>>,
}

impl Row {
    pub fn new(task: &str, labels: f64, metric: &'static str) -> Self {
        Row { task: task.into(), labels, metric, pretrained: vec![], random: vec![], floor_pixels: vec![], ceiling: vec![] }
    }

    /// JSON in the schema (`task`, `labels`, `metric`, `pretrained[]`, `random[]`,
    /// `floor`), plus `ceiling`.
    pub fn json(&self) -> Value {
        json!({
            "task": self.task, "labels": self.labels, "metric": self.metric,
            "pretrained": self.pretrained, "random": self.random,
            "floor": {"pixels": self.floor_pixels, "random_init": self.random}, "ceiling": self.ceiling,
        })
    }
}

/// The row of `(task, labels)`, created on first use.
pub fn row<'a>(rows: &'a mut Vec<Row>, task: &str, labels: f64, metric: &'static str) -> &'a mut Row {
    match rows.iter().position(|r| r.task == task && r.labels == labels) {
        Some(i) => &mut rows[i],
        None => {
            rows.push(Row::new(task, labels, metric));
            let last = rows.len() - 1;
            &mut rows[last]
        }
    }
}

/// Mean and sample standard deviation (0 for one value).
pub fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n.max(1.0);
    let var = if v.len() > 1 { v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (m, var.sqrt())
}

fn present(v: &[Option<f64>]) -> Vec<f64> {
    v.iter().filter_map(|x| *x).collect()
}

fn per_seed(v: &[Option<f64>]) -> String {
    v.iter().map(|x| x.map_or("n/a".into(), |x| format!("{x:.3}"))).collect::<Vec<_>>().join(" ")
}

/// The values per seed and the mean ± sd of those present (a column's own values: with
/// `--floors-only` the random init has values and the pretrained none).
fn summary(v: &[Option<f64>]) -> String {
    let p = present(v);
    match (v.is_empty(), p.is_empty()) {
        (true, _) => "—".into(),
        (false, true) => per_seed(v),
        (false, false) => {
            let (m, sd) = mean_sd(&p);
            format!("{} ({m:.3}±{sd:.3})", per_seed(v))
        }
    }
}

fn mean_of(v: &[Option<f64>]) -> String {
    let p = present(v);
    if p.is_empty() { "—".into() } else { format!("{:.3}", mean_sd(&p).0) }
}

/// Prints the table: per row the values per seed, mean ± sd, the paired difference and whether
/// the mean gain exceeds twice the sd of the random-init scores (with every paired gain
/// positive), then the floors and the ceiling.
pub fn print(header: &str, rows: &[Row]) {
    println!("{header}");
    println!(
        "{:<18} {:>6} {:<8} {:>26} {:>26} {:>16} {:>9} {:>9} {:>9}",
        "task", "labels", "metric", "pretrained (per seed)", "random init (per seed)", "diff mean±sd", "gain>2sd", "pixels", "ceiling"
    );
    for r in rows {
        let pairs: Vec<(f64, f64)> = r.pretrained.iter().zip(&r.random).filter_map(|(p, q)| Some(((*p)?, (*q)?))).collect();
        let diffs: Vec<f64> = pairs.iter().map(|(p, q)| p - q).collect();
        let (_, rs) = mean_sd(&pairs.iter().map(|p| p.1).collect::<Vec<_>>());
        let (dm, ds) = mean_sd(&diffs);
        let verdict = if pairs.len() < 2 { "n/a" } else if dm > 2.0 * rs && diffs.iter().all(|d| *d > 0.0) { "yes" } else { "no" };
        println!(
            "{:<18} {:>6} {:<8} {:>26} {:>26} {:>16} {:>9} {:>9} {:>9}",
            r.task,
            format!("{:.0}%", r.labels * 100.0),
            r.metric,
            summary(&r.pretrained),
            summary(&r.random),
            if pairs.is_empty() { "—".to_string() } else { format!("{dm:+7.3}±{ds:<8.3}") },
            verdict,
            mean_of(&r.floor_pixels),
            mean_of(&r.ceiling)
        );
    }
    println!(
        "pixels: leave-one-out kNN on the mean-subtracted input pixels (the floor a representation must beat, as must the random init); ceiling: test accuracy of the classifier trained from scratch on 100 % of the labels"
    );
}
