//! Weighted k-nearest-neighbour classification of features, as DINO's `eval_knn.py`
//! (`knn_classifier`): features are L2-normalised (`F.normalize`, eps 1e-12), the similarity is
//! the dot product (cosine), the `k` most similar reference samples vote for their class with
//! weight `exp(sim / T)`, and the class with the largest summed weight is the prediction
//! (DINO: k = 20, T = 0.07). Ties between classes go to the lowest class index.
//!
//! Two protocols: [`knn_predict`] classifies test features against separate reference
//! (training) features, as DINO does; [`knn_leave_one_out`] classifies every sample of one
//! labelled set against all the others (its own entry left out), for an eval set too small to
//! split.

use crate::error::{Result, SslError};

/// `k` and the temperature `T` of the vote weights.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KnnParams {
    pub k: usize,
    pub temperature: f64,
}

impl Default for KnnParams {
    /// DINO's defaults: k = 20, T = 0.07.
    fn default() -> Self {
        Self { k: 20, temperature: 0.07 }
    }
}

/// Accuracy of one kNN evaluation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KnnScore {
    /// Fraction of correct predictions.
    pub accuracy: f64,
    /// Samples classified.
    pub n: usize,
    /// Neighbours actually used (`k`, or fewer when the reference set is smaller).
    pub k: usize,
}

/// L2-normalised copies of `rows` (`x / max(‖x‖, 1e-12)`, as `F.normalize`), all of one length.
fn normalized(rows: &[Vec<f32>], what: &str) -> Result<Vec<Vec<f64>>> {
    let dim = rows.first().map_or(0, Vec::len);
    if dim == 0 {
        return Err(SslError::Config(format!("kNN: {what} features are empty")));
    }
    rows.iter()
        .enumerate()
        .map(|(i, r)| {
            if r.len() != dim {
                return Err(SslError::Config(format!("kNN: {what} feature {i} has {} values, expected {dim}", r.len())));
            }
            if r.iter().any(|v| !v.is_finite()) {
                return Err(SslError::Config(format!("kNN: {what} feature {i} is not finite")));
            }
            let norm = r.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>().sqrt().max(1e-12);
            Ok(r.iter().map(|&v| f64::from(v) / norm).collect())
        })
        .collect()
}

fn check(params: &KnnParams, labels: &[usize], classes: usize, what: &str) -> Result<()> {
    if params.k == 0 || !(params.temperature > 0.0) {
        return Err(SslError::Config(format!("kNN: k = {} and T = {} must be positive", params.k, params.temperature)));
    }
    if let Some((i, &l)) = labels.iter().enumerate().find(|(_, l)| **l >= classes) {
        return Err(SslError::Config(format!("kNN: {what} label {l} of sample {i} is not below the class count {classes}")));
    }
    Ok(())
}

/// The weighted vote of one query against `refs` (skipping index `skip`): the predicted class.
fn vote(query: &[f64], refs: &[Vec<f64>], labels: &[usize], skip: Option<usize>, classes: usize, p: &KnnParams) -> usize {
    let mut sims: Vec<(f64, usize)> = refs
        .iter()
        .enumerate()
        .filter(|(j, _)| Some(*j) != skip)
        .map(|(j, r)| (query.iter().zip(r).map(|(a, b)| a * b).sum::<f64>(), j))
        .collect();
    // topk(largest, sorted); equal similarities keep the lower reference index first.
    sims.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut votes = vec![0f64; classes];
    for &(s, j) in sims.iter().take(p.k) {
        votes[labels[j]] += (s / p.temperature).exp();
    }
    let mut best = 0;
    for (c, &v) in votes.iter().enumerate() {
        if v > votes[best] {
            best = c;
        }
    }
    best
}

/// Predicted classes of `test` by a weighted vote of its `k` nearest `train` features.
pub fn knn_predict(train: &[Vec<f32>], train_labels: &[usize], test: &[Vec<f32>], classes: usize, p: &KnnParams) -> Result<Vec<usize>> {
    if train.len() != train_labels.len() {
        return Err(SslError::Config(format!("kNN: {} train features but {} labels", train.len(), train_labels.len())));
    }
    check(p, train_labels, classes, "train")?;
    let refs = normalized(train, "train")?;
    let queries = normalized(test, "test")?;
    if refs[0].len() != queries[0].len() {
        return Err(SslError::Config(format!("kNN: train features have {} values, test features {}", refs[0].len(), queries[0].len())));
    }
    Ok(queries.iter().map(|q| vote(q, &refs, train_labels, None, classes, p)).collect())
}

fn score(pred: &[usize], truth: &[usize], k: usize) -> KnnScore {
    let correct = pred.iter().zip(truth).filter(|(a, b)| a == b).count();
    KnnScore { accuracy: correct as f64 / truth.len().max(1) as f64, n: truth.len(), k }
}

/// Top-1 accuracy of [`knn_predict`] on labelled test features.
pub fn knn_accuracy(
    train: &[Vec<f32>],
    train_labels: &[usize],
    test: &[Vec<f32>],
    test_labels: &[usize],
    classes: usize,
    p: &KnnParams,
) -> Result<KnnScore> {
    if test.len() != test_labels.len() {
        return Err(SslError::Config(format!("kNN: {} test features but {} labels", test.len(), test_labels.len())));
    }
    check(p, test_labels, classes, "test")?;
    let pred = knn_predict(train, train_labels, test, classes, p)?;
    Ok(score(&pred, test_labels, p.k.min(train.len())))
}

/// Leave-one-out top-1 accuracy on one labelled set: each sample is classified by its `k`
/// nearest *other* samples. Needs at least two samples.
pub fn knn_leave_one_out(feats: &[Vec<f32>], labels: &[usize], classes: usize, p: &KnnParams) -> Result<KnnScore> {
    if feats.len() != labels.len() || feats.len() < 2 {
        return Err(SslError::Config(format!("kNN leave-one-out: {} features and {} labels (need ≥ 2 of each, equal)", feats.len(), labels.len())));
    }
    check(p, labels, classes, "eval")?;
    let refs = normalized(feats, "eval")?;
    let pred: Vec<usize> = refs.iter().enumerate().map(|(i, q)| vote(q, &refs, labels, Some(i), classes, p)).collect();
    Ok(score(&pred, labels, p.k.min(feats.len() - 1)))
}

/// Mean cosine similarity between the features of different samples (off-diagonal pairs): 1
/// when every input gives the same feature (representation collapse), near 0 for unrelated
/// directions.
pub fn mean_cosine(feats: &[Vec<f32>]) -> Result<f64> {
    let f = normalized(feats, "eval")?;
    let n = f.len();
    if n < 2 {
        return Err(SslError::Config("mean cosine: need at least two features".into()));
    }
    let mut sum = 0.0;
    for i in 0..n {
        for j in i + 1..n {
            sum += f[i].iter().zip(&f[j]).map(|(a, b)| a * b).sum::<f64>();
        }
    }
    Ok(sum / (n * (n - 1) / 2) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand-computed case. References (after normalisation): a = (1, 0) class 0,
    /// b = (0.6, 0.8) class 1, c = (0, 1) class 1. Query q = (0.8, 0.6) (already unit):
    /// sims a 0.8, b 0.96, c 0.6.
    /// - k = 1: nearest b → class 1.
    /// - k = 3, T = 0.07: class 0 weight e^(0.8/0.07) = e^11.43 ≈ 92 320; class 1
    ///   e^(0.96/0.07) + e^(0.6/0.07) = e^13.71 + e^8.57 ≈ 903 600 + 5 300 → class 1.
    /// - k = 3, T = 10: class 0 e^0.08 = 1.0833; class 1 e^0.096 + e^0.06 = 1.1008 + 1.0618 =
    ///   2.1626 → class 1. With b relabelled 0: class 0 e^0.08 + e^0.096 = 2.1841 > e^0.06 → 0.
    /// - k = 2 with b relabelled 0 and c 1: class 0 wins (a, b nearest).
    #[test]
    fn weighted_vote_matches_hand_computation() -> Result<()> {
        let train = vec![vec![2.0, 0.0], vec![3.0, 4.0], vec![0.0, 0.5]];
        let q = vec![vec![0.8, 0.6]];
        let p = |k, t| KnnParams { k, temperature: t };
        assert_eq!(knn_predict(&train, &[0, 1, 1], &q, 2, &p(1, 0.07))?, vec![1]);
        assert_eq!(knn_predict(&train, &[0, 1, 1], &q, 2, &p(3, 0.07))?, vec![1]);
        assert_eq!(knn_predict(&train, &[0, 1, 1], &q, 2, &p(3, 10.0))?, vec![1]);
        assert_eq!(knn_predict(&train, &[0, 0, 1], &q, 2, &p(3, 10.0))?, vec![0]);
        assert_eq!(knn_predict(&train, &[0, 0, 1], &q, 2, &p(2, 0.07))?, vec![0]);
        // Weights matter: k = 3 with a (0.8) and c (0.6) in class 1 and b (0.96) in class 0.
        // T = 0.07: e^13.71 ≈ 903 600 beats e^11.43 + e^8.57 ≈ 97 600 → class 0.
        // T = 10: e^0.096 = 1.1008 loses to e^0.08 + e^0.06 = 2.1451 → class 1 (majority).
        assert_eq!(knn_predict(&train, &[1, 0, 1], &q, 2, &p(3, 0.07))?, vec![0]);
        assert_eq!(knn_predict(&train, &[1, 0, 1], &q, 2, &p(3, 10.0))?, vec![1]);
        Ok(())
    }

    #[test]
    fn leave_one_out_skips_the_query_itself() -> Result<()> {
        // Two tight clusters and a class-1 point (1, 0.2) next to cluster 0. Cosines: inside
        // cluster 0 ≥ 0.995, cluster 0 to (1, 0.2) ≤ 0.989, cluster 1 to (1, 0.2) ≤ 0.245.
        // With k = 2 every cluster point's two nearest others are its own cluster (right);
        // (1, 0.2)'s two nearest are cluster-0 points (wrong). Without leaving the query out,
        // each would find itself first.
        let feats = vec![vec![1.0, 0.0], vec![1.0, 0.05], vec![1.0, -0.05], vec![0.0, 1.0], vec![0.05, 1.0], vec![1.0, 0.2]];
        let labels = [0, 0, 0, 1, 1, 1];
        let s = knn_leave_one_out(&feats, &labels, 2, &KnnParams { k: 2, temperature: 0.07 })?;
        // sample 5 (label 1) sits among class 0 → wrong; the other five are right
        assert_eq!((s.n, s.k), (6, 2));
        assert!((s.accuracy - 5.0 / 6.0).abs() < 1e-12, "{}", s.accuracy);
        // k larger than the set: clipped to n − 1
        assert_eq!(knn_leave_one_out(&feats, &labels, 2, &KnnParams::default())?.k, 5);
        Ok(())
    }

    #[test]
    fn mean_cosine_of_hand_cases() -> Result<()> {
        // (1,0), (0,2), (3,3): cosines 0, 1/√2, 1/√2 → mean √2/3
        let m = mean_cosine(&[vec![1.0, 0.0], vec![0.0, 2.0], vec![3.0, 3.0]])?;
        assert!((m - 2f64.sqrt() / 3.0).abs() < 1e-12, "{m}");
        assert!((mean_cosine(&[vec![1.0, 1.0], vec![2.0, 2.0]])? - 1.0).abs() < 1e-12);
        Ok(())
    }

    #[test]
    fn bad_inputs_are_errors() {
        let p = KnnParams::default();
        assert!(knn_predict(&[vec![1.0]], &[2], &[vec![1.0]], 2, &p).is_err());
        assert!(knn_predict(&[vec![1.0, 0.0]], &[0], &[vec![1.0]], 2, &p).is_err());
        assert!(knn_predict(&[vec![f32::NAN]], &[0], &[vec![1.0]], 2, &p).is_err());
        assert!(knn_leave_one_out(&[vec![1.0]], &[0], 2, &p).is_err());
        assert!(knn_predict(&[vec![1.0]], &[0], &[vec![1.0]], 2, &KnnParams { k: 0, temperature: 0.07 }).is_err());
    }
}
