use unimiss_tasks::TaskError;
use unimiss_tasks::metrics::*;

use crate::close;

fn mask(n: usize, on: &[usize]) -> Vec<bool> {
    let mut m = vec![false; n];
    on.iter().for_each(|&i| m[i] = true);
    m
}

#[test]
fn dice_and_jaccard_by_hand() -> Result<(), TaskError> {
    let o = Overlap::of(&[true, true, false, false], &[true, false, true, false])?;
    assert_eq!(o, Overlap { inter: 1, pred: 2, gt: 2 });
    close(o.dice(0.0).unwrap_or(f64::NAN), 0.5, 1e-12, "dice");
    close(o.jaccard(0.0).unwrap_or(f64::NAN), 1.0 / 3.0, 1e-12, "jaccard");
    // JSRT smoothing 0.01: (2 + .01) / (4 + .01)
    close(o.dice(0.01).unwrap_or(f64::NAN), 2.01 / 4.01, 1e-12, "smoothed dice");
    // both empty: undefined without smoothing, 1 with it
    let e = Overlap::of(&[false; 3], &[false; 3])?;
    assert_eq!(e.dice(0.0), None);
    assert_eq!(e.jaccard(0.0), None);
    assert_eq!(e.dice(0.01), Some(1.0));
    // empty prediction, non-empty ground truth
    let m = Overlap::of(&[false, false], &[true, false])?;
    assert_eq!(m.dice(0.0), Some(0.0));
    assert!(matches!(Overlap::of(&[true], &[true, false]), Err(TaskError::ShapeMismatch { .. })));
    Ok(())
}

#[test]
fn masks_from_label_map() -> Result<(), TaskError> {
    let m = masks_from_labels(&[0, 1, 2, 2], 3, "t")?;
    assert_eq!(m, vec![vec![false, true, false, false], vec![false, false, true, true]]);
    assert!(matches!(masks_from_labels(&[0, 3], 3, "t"), Err(TaskError::LabelOutOfRange { label: 3, classes: 3, .. })));
    Ok(())
}

#[test]
fn hd95_one_dimensional_by_hand() -> Result<(), TaskError> {
    // W axis only, spacing 2 mm. pred {2,3,4} (surface 2, 4), gt {4..9} (surface 4, 9).
    // pred→gt: 4 mm, 0; gt→pred: 0, 10 mm. Sorted [0, 0, 4, 10]; 95th pct at 2.85 → 9.1.
    let pred = mask(12, &[2, 3, 4]);
    let gt = mask(12, &[4, 5, 6, 7, 8, 9]);
    let h = hd95(&pred, &gt, [1, 1, 12], [1.0, 1.0, 2.0])?;
    close(h.unwrap_or(f64::NAN), 9.1, 1e-9, "hd95");
    // empty prediction or ground truth → None
    assert_eq!(hd95(&vec![false; 12], &gt, [1, 1, 12], [1.0; 3])?, None);
    assert_eq!(hd95(&pred, &vec![false; 12], [1, 1, 12], [1.0; 3])?, None);
    Ok(())
}

#[test]
fn hd95_anisotropic_diagonal() -> Result<(), TaskError> {
    // single voxels at (y, x) = (0, 0) and (3, 4): 5 voxels apart; with dy = 2 mm: √(36 + 16)
    let pred = mask(25, &[0]);
    let gt = mask(25, &[3 * 5 + 4]);
    close(hd95(&pred, &gt, [1, 5, 5], [1.0, 1.0, 1.0])?.unwrap_or(f64::NAN), 5.0, 1e-12, "iso");
    close(hd95(&pred, &gt, [1, 5, 5], [1.0, 2.0, 1.0])?.unwrap_or(f64::NAN), 52f64.sqrt(), 1e-12, "aniso");
    Ok(())
}

#[test]
fn surface_keeps_only_border_voxels() {
    // a 3×3×3 cube inside a 5×5×5 grid: 26 surface voxels, the centre is interior
    let dims = [5, 5, 5];
    let mut m = vec![false; 125];
    for z in 1..4 {
        for y in 1..4 {
            for x in 1..4 {
                m[(z * 5 + y) * 5 + x] = true;
            }
        }
    }
    let s = surface(&m, dims);
    assert_eq!(s.iter().filter(|&&b| b).count(), 26);
    assert!(!s[(2 * 5 + 2) * 5 + 2]);
}

#[test]
fn distance_transform_matches_brute_force() {
    let dims = [4, 6, 7];
    let sp = [2.5, 0.8, 1.3];
    let n = 4 * 6 * 7;
    // deterministic sparse pattern
    let feat: Vec<bool> = (0..n).map(|i| (i * 37 + 11) % 23 == 0).collect();
    let d = distance_to(&feat, dims, sp);
    let coord = |i: usize| [i / 42, (i / 7) % 6, i % 7];
    for i in 0..n {
        let a = coord(i);
        let best = (0..n)
            .filter(|&j| feat[j])
            .map(|j| {
                let b = coord(j);
                (0..3).map(|k| ((a[k] as f64 - b[k] as f64) * sp[k]).powi(2)).sum::<f64>().sqrt()
            })
            .fold(f64::INFINITY, f64::min);
        close(d[i], best, 1e-9, &format!("edt at {a:?}"));
    }
}

#[test]
fn numpy_percentile_rule() {
    close(percentile(&mut [3.0, 1.0, 2.0, 4.0], 50.0), 2.5, 1e-12, "median");
    close(percentile(&mut [0.0, 10.0], 95.0), 9.5, 1e-12, "p95");
    close(percentile(&mut [7.0], 95.0), 7.0, 1e-12, "single");
}

#[test]
fn binary_classification_by_hand() -> Result<(), TaskError> {
    // scikit-learn's documented example: AUC 0.75, AP 0.8333
    let s = [0.1, 0.4, 0.35, 0.8];
    let probs: Vec<Vec<f64>> = s.iter().map(|&p| vec![1.0 - p, p]).collect();
    let m = classification_metrics(&probs, &[0, 0, 1, 1])?;
    close(m.auc.unwrap_or(f64::NAN), 0.75, 1e-12, "auc");
    close(m.ap.unwrap_or(f64::NAN), 5.0 / 6.0, 1e-12, "ap");
    close(m.accuracy, 0.75, 1e-12, "accuracy");
    close(m.sensitivity.unwrap_or(f64::NAN), 0.5, 1e-12, "sensitivity");
    close(m.specificity.unwrap_or(f64::NAN), 1.0, 1e-12, "specificity");
    assert_eq!(m.confusion, vec![vec![2, 0], vec![1, 1]]);
    Ok(())
}

#[test]
fn ties_and_degenerate_classes() -> Result<(), TaskError> {
    close(roc_auc(&[0.5, 0.5], &[false, true]).unwrap_or(f64::NAN), 0.5, 1e-12, "tied auc");
    // thresholds 0.5 (tp 1, fp 1: P .5, R .5) and 0.2 (tp 2, fp 1: P 2/3, R 1)
    close(average_precision(&[0.5, 0.5, 0.2], &[true, false, true]).unwrap_or(f64::NAN), 0.25 + 1.0 / 3.0, 1e-12, "tied ap");
    assert_eq!(roc_auc(&[0.1, 0.2], &[true, true]), None);
    assert_eq!(average_precision(&[0.1, 0.2], &[false, false]), None);
    Ok(())
}

#[test]
fn three_class_macro() -> Result<(), TaskError> {
    let probs = vec![vec![0.7, 0.2, 0.1], vec![0.2, 0.5, 0.3], vec![0.1, 0.3, 0.6], vec![0.3, 0.4, 0.3]];
    let labels = [0, 1, 2, 2];
    let m = classification_metrics(&probs, &labels)?;
    // class 0 scores .7 .2 .1 .3, positive {0}: AUC 1; class 1 scores .2 .5 .3 .4, positive {1}: AUC 1;
    // class 2 scores .1 .3 .6 .3, positives {2, 3}: pairs (.6>.1, .6>.3, .3>.1, .3=.3) = 3.5/4
    close(m.auc.unwrap_or(f64::NAN), (1.0 + 1.0 + 0.875) / 3.0, 1e-12, "macro auc");
    close(m.accuracy, 0.75, 1e-12, "accuracy");
    // AP class 2: thresholds .6 (P 1, R .5), .3 (tp 2, fp 1: P 2/3, R 1) → .5 + .5·2/3
    close(m.ap_per_class[2].unwrap_or(f64::NAN), 0.5 + 1.0 / 3.0, 1e-12, "ap class 2");
    assert!(matches!(classification_metrics(&probs, &[0, 1, 2, 3]), Err(TaskError::LabelOutOfRange { label: 3, .. })));
    assert!(matches!(classification_metrics(&[], &[]), Err(TaskError::Invalid(_))));
    Ok(())
}

#[test]
fn segmentation_report_aggregates_and_counts_nulls() -> Result<(), TaskError> {
    let dims = [1, 1, 6];
    let opts = SegMetricOptions { smooth: 0.0, hd95_spacing: Some([1.0; 3]) };
    // class A perfect in both cases; class B empty prediction in case 2
    let a = segmentation_case("a", &[mask(6, &[0, 1]), mask(6, &[4])], &[mask(6, &[0, 1]), mask(6, &[4, 5])], dims, opts)?;
    let b = segmentation_case("b", &[mask(6, &[2]), mask(6, &[])], &[mask(6, &[2]), mask(6, &[5])], dims, opts)?;
    close(a.dice[1].unwrap_or(f64::NAN), 2.0 / 3.0, 1e-12, "case a dice B");
    let names = vec!["A".to_string(), "B".to_string()];
    let r = serde_json::to_value(segmentation_report(&names, &[a, b])?)?;
    close(r["dice"]["A"].as_f64().unwrap_or(f64::NAN), 1.0, 1e-12, "dice A");
    close(r["dice"]["B"].as_f64().unwrap_or(f64::NAN), 1.0 / 3.0, 1e-12, "dice B mean of 2/3 and 0");
    close(r["dice_mean"].as_f64().unwrap_or(f64::NAN), 2.0 / 3.0, 1e-12, "dice_mean");
    assert_eq!(r["hd95_null_count"].as_u64(), Some(1));
    // B in case a: pred {4} vs gt {4, 5}: distances 0 | 0, 1 → p95 of [0, 0, 1] = 0.9
    close(r["hd95"]["B"].as_f64().unwrap_or(f64::NAN), 0.9, 1e-12, "hd95 B excludes the null");
    assert_eq!(r["cases"].as_array().map(|c| c.len()), Some(2));
    assert!(r["cases"][1]["hd95"]["B"].is_null());
    Ok(())
}

#[test]
fn classification_report_has_the_contract_keys() -> Result<(), TaskError> {
    let probs = vec![vec![0.9, 0.1], vec![0.2, 0.8]];
    let r = serde_json::to_value(classification_report(&["x".into(), "y".into()], &probs, &[0, 1])?)?;
    for k in ["accuracy", "auc", "ap", "sensitivity", "specificity", "cases"] {
        assert!(r.get(k).is_some(), "missing key {k}");
    }
    close(r["auc"].as_f64().unwrap_or(f64::NAN), 1.0, 1e-12, "auc");
    Ok(())
}
