//! Metrics against hand-computed cases.

use headtune::metrics::*;

fn names(k: usize) -> Vec<String> {
    (0..k).map(|i| format!("c{i}")).collect()
}

fn onehot(preds: &[usize], k: usize) -> Vec<Vec<f32>> {
    preds.iter().map(|&p| (0..k).map(|c| if c == p { 0.9 } else { 0.1 / (k - 1) as f32 }).collect()).collect()
}

#[test]
fn confusion_precision_recall_f1() {
    // true:      0 0 1 1 1 2
    // predicted: 0 1 1 1 0 2
    let m = evaluate(&names(3), &[0, 0, 1, 1, 1, 2], &onehot(&[0, 1, 1, 1, 0, 2], 3), 0.5);
    assert_eq!(m.confusion, vec![vec![1, 1, 0], vec![1, 2, 0], vec![0, 0, 1]]);
    assert_eq!(m.n, 6);
    assert!((m.accuracy - 4.0 / 6.0).abs() < 1e-12);
    assert!((m.majority_baseline - 0.5).abs() < 1e-12);
    let c1 = &m.per_class[1];
    assert_eq!(c1.support, 3);
    assert!((c1.precision - 2.0 / 3.0).abs() < 1e-12);
    assert!((c1.recall - 2.0 / 3.0).abs() < 1e-12);
    assert!((c1.f1 - 2.0 / 3.0).abs() < 1e-12);
    let c0 = &m.per_class[0];
    assert!((c0.precision - 0.5).abs() < 1e-12 && (c0.recall - 0.5).abs() < 1e-12);
    assert_eq!(m.per_class[2].f1, 1.0);
    assert!(m.binary.is_none(), "three classes: no ROC");
}

#[test]
fn auc_of_the_textbook_example() {
    // scikit-learn's roc_auc_score example: y = [0, 0, 1, 1], scores [0.1, 0.4, 0.35, 0.8] → 0.75
    let b = binary_metrics("pos", &[0.1, 0.4, 0.35, 0.8], &[false, false, true, true], 0.5);
    assert!((b.auc - 0.75).abs() < 1e-12, "auc {}", b.auc);
    // At 0.5 only 0.8 is positive: sensitivity 1/2, specificity 2/2.
    assert_eq!((b.sensitivity, b.specificity), (0.5, 1.0));
    // Youden: threshold 0.8 → J = 0.5; 0.35 → tpr 1, fpr 0.5 → J = 0.5; tie broken towards the
    // higher threshold. Both are J = 0.5.
    assert!((b.youden_sensitivity + b.youden_specificity - 1.5).abs() < 1e-12);
    assert_eq!(b.roc.first().map(|p| (p.fpr, p.tpr)), Some((0.0, 0.0)));
    assert_eq!(b.roc.last().map(|p| (p.fpr, p.tpr)), Some((1.0, 1.0)));
}

#[test]
fn auc_counts_ties_as_half_and_extremes() {
    let tie = binary_metrics("p", &[0.5, 0.5], &[false, true], 0.5);
    assert!((tie.auc - 0.5).abs() < 1e-12);
    let perfect = binary_metrics("p", &[0.1, 0.2, 0.8, 0.9], &[false, false, true, true], 0.5);
    assert_eq!(perfect.auc, 1.0);
    assert_eq!((perfect.sensitivity, perfect.specificity), (1.0, 1.0));
    assert!(perfect.youden_threshold > 0.2 && perfect.youden_threshold <= 0.8);
    let inverted = binary_metrics("p", &[0.9, 0.8, 0.2, 0.1], &[false, false, true, true], 0.5);
    assert_eq!(inverted.auc, 0.0);
}

#[test]
fn two_class_evaluate_uses_threshold_on_positive_class() {
    let probs = vec![vec![0.7, 0.3], vec![0.4, 0.6], vec![0.35, 0.65], vec![0.1, 0.9]];
    let m = evaluate(&names(2), &[0, 0, 1, 1], &probs, 0.62);
    let b = m.binary.expect("binary");
    // ≥ 0.62 positive: 0.65 and 0.9 → both positives found, no negative called positive.
    assert_eq!((b.sensitivity, b.specificity), (1.0, 1.0));
    assert_eq!(b.positive, "c1");
    // Accuracy and confusion are at the threshold too (they used to be arg-max: 0.75 here).
    assert_eq!(m.accuracy, 1.0);
    assert_eq!(m.confusion, vec![vec![2, 0], vec![0, 2]]);
    let at_half = evaluate(&names(2), &[0, 0, 1, 1], &probs, 0.5);
    assert_eq!((at_half.accuracy, at_half.confusion.clone()), (0.75, vec![vec![1, 1], vec![0, 2]]));
}

#[test]
fn binomial_tail_exact() {
    // P(X ≥ 8 | n = 10, p = ½) = (45 + 10 + 1) / 1024
    assert!((binomial_upper_tail(8, 10, 0.5) - 56.0 / 1024.0).abs() < 1e-12);
    assert_eq!(binomial_upper_tail(0, 10, 0.3), 1.0);
    assert!((binomial_upper_tail(10, 10, 0.9) - 0.9f64.powi(10)).abs() < 1e-12);
}

#[test]
fn warnings_for_small_and_imbalanced_classes() {
    let w = data_warnings(&names(3), &[4, 30, 30]);
    assert_eq!(w.iter().filter(|w| w.code == "too_few_images").count(), 1);
    assert!(w.iter().any(|w| w.code == "imbalance"), "30:4 > 5:1");
    assert!(w[0].message.contains("c0") && w[0].message.contains('4'));
    assert!(data_warnings(&names(2), &[20, 100]).is_empty(), "5:1 exactly is not flagged");
}

#[test]
fn transfer_warning_follows_the_binomial_test() {
    // 60 of 100 against a 50 % baseline: p ≈ 0.028 → evidence, no warning.
    let m = |correct: usize| Metrics { n: 100, accuracy: correct as f64 / 100.0, accuracy_interval: None, majority_baseline: 0.5, per_class: vec![], confusion: vec![], binary: None };
    assert!(transfer_warning(&m(60)).is_none());
    // 55 of 100: p ≈ 0.18 → no evidence.
    let w = transfer_warning(&m(55)).expect("warning");
    assert_eq!(w.code, "no_transfer");
    assert!(w.message.contains("55.0 %"), "{}", w.message);
}

/// NaN and infinite scores (a model whose logits overflowed) once made `roc_curve` loop forever,
/// growing memory: the curve must be finite, end at (1, 1), and serialise to JSON without nulls.
#[test]
fn metrics_are_total_over_nan_and_infinite_scores() {
    let scores = [f64::NAN, 0.9, f64::INFINITY, f64::NAN, f64::NEG_INFINITY, 0.2, f64::NAN];
    let positive = [true, true, false, false, true, false, true];
    let roc = roc_curve(&scores, &positive);
    assert!(roc.len() <= scores.len() + 1, "{} points", roc.len());
    let last = roc.last().expect("points");
    assert_eq!((last.fpr, last.tpr), (1.0, 1.0));
    assert!(roc.iter().all(|p| p.threshold.is_finite() && p.fpr.is_finite() && p.tpr.is_finite()), "{roc:?}");
    // NaN ranks below every number: the NaN group is the last step.
    assert_eq!(roc[roc.len() - 1].threshold, f64::MIN);
    let b = binary_metrics("pos", &scores, &positive, 0.5);
    assert!((0.0..=1.0).contains(&b.auc), "auc {}", b.auc);
    let json = serde_json::to_string(&b).expect("json");
    assert!(!json.contains("null"), "{json}");

    let probs = vec![vec![f32::NAN, f32::NAN], vec![0.2, 0.8], vec![f32::NAN, 0.3], vec![0.6, f32::NAN]];
    let m = evaluate(&names(2), &[0, 1, 1, 0], &probs, 0.5);
    // Two classes decide at the threshold on the positive class's probability: a NaN
    // probability is never called positive ([NaN, 0.3] is below 0.5 → negative).
    assert_eq!(m.confusion, vec![vec![2, 0], vec![1, 1]], "NaN is never positive");
    let three = vec![vec![f32::NAN, 0.1, 0.2], vec![0.2, f32::NAN, 0.1], vec![0.1, 0.2, f32::NAN]];
    let m3 = evaluate(&names(3), &[2, 0, 1], &three, 0.5);
    assert_eq!(m3.confusion, vec![vec![1, 0, 0], vec![0, 1, 0], vec![0, 0, 1]], "NaN never wins the argmax");
    let json = serde_json::to_string(&m).expect("json");
    assert!(!json.contains("null"), "{json}");
}

#[test]
fn argmax_skips_nan() {
    assert_eq!(argmax(&[f32::NAN, 0.1, 0.7, f32::NAN]), 2);
    assert_eq!(argmax(&[f32::NAN, f32::NAN]), 0);
    assert_eq!(argmax(&[0.5, 0.5]), 0);
}

/// The softmax behind every probability is a probability vector for any logits (`predict` once
/// printed `"probability": null` for overflowing ones).
#[test]
fn softmax_is_total() {
    use headtune::imagenet::softmax;
    for logits in [
        vec![f32::INFINITY, 1.0, f32::INFINITY],
        vec![f32::NAN, 2.0, 0.0],
        vec![f32::NEG_INFINITY, f32::NEG_INFINITY],
        vec![f32::NAN, f32::NAN],
        vec![3e38, -3e38, 3e38],
    ] {
        let p = softmax(&logits);
        assert!(p.iter().all(|v| v.is_finite() && (0.0..=1.0).contains(v)), "{logits:?} → {p:?}");
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{logits:?} → {p:?}");
    }
    assert_eq!(softmax(&[f32::INFINITY, 1.0, f32::INFINITY]), vec![0.5, 0.0, 0.5]);
    assert_eq!(softmax(&[f32::NAN, 0.0])[1], 1.0);
}

#[test]
fn wilson_intervals_of_textbook_proportions() {
    // Wilson (1927) score interval, z = 1.96; values from an independent Python computation.
    let all = wilson(16, 16);
    assert!((all.low - 0.806_392).abs() < 1e-6 && all.high == 1.0, "{all:?}");
    let none = wilson(0, 10);
    assert!(none.low == 0.0 && (none.high - 0.277_533).abs() < 1e-6, "{none:?}");
    let seven = wilson(7, 10);
    assert!((seven.low - 0.396_778).abs() < 1e-6 && (seven.high - 0.892_209).abs() < 1e-6, "{seven:?}");
    assert_eq!(wilson(0, 0), Interval { low: 0.0, high: 1.0 });
    // More images, narrower interval around the same proportion.
    let (small, large) = (wilson(8, 10), wilson(800, 1000));
    assert!(large.high - large.low < (small.high - small.low) / 5.0);
}

#[test]
fn auc_interval_is_delong_and_never_claims_certainty() {
    // DeLong's variance by its O(m·n) definition, computed independently in Python for these
    // ten scores (with a tie across the classes): AUC 0.78, SE 0.157480.
    let scores = [0.1, 0.4, 0.35, 0.8, 0.7, 0.2, 0.65, 0.5, 0.5, 0.9];
    let positive = [false, false, true, true, false, false, true, false, true, true];
    let b = binary_metrics("p", &scores, &positive, 0.5);
    assert!((b.auc - 0.78).abs() < 1e-12);
    let ci = b.auc_interval.expect("interval");
    assert!((ci.low - (0.78 - Z95 * 0.157_480_157)).abs() < 1e-6 && ci.high == 1.0, "{ci:?}");
    // Perfect separation of 8 + 8 images: DeLong's variance is 0, so Newcombe's score interval
    // is used; its lower bound (0.7556, independent bisection in Python) says 16 images prove
    // little. With 50 + 50 the same perfect AUC is much better established.
    let perfect = |n: usize| {
        let scores: Vec<f64> = (0..2 * n).map(|i| i as f64 / (2 * n) as f64).collect();
        let positive: Vec<bool> = (0..2 * n).map(|i| i >= n).collect();
        auc_interval(&scores, &positive)
    };
    let eight = perfect(8);
    assert!((eight.low - 0.755_647).abs() < 1e-5 && eight.high == 1.0, "{eight:?}");
    assert!(perfect(50).low > 0.95);
    assert_eq!(auc_interval(&[0.2, 0.8], &[true, true]), Interval { low: 0.0, high: 1.0 }, "one class only");
}

#[test]
fn metrics_carry_intervals_and_operating_points_follow_the_roc() {
    let scores = [0.1, 0.4, 0.35, 0.8, 0.7, 0.2, 0.65, 0.5, 0.5, 0.9];
    let labels: Vec<usize> = [0, 0, 1, 1, 0, 0, 1, 0, 1, 1].to_vec();
    let probs: Vec<Vec<f32>> = scores.iter().map(|&s| vec![1.0 - s as f32, s as f32]).collect();
    let m = evaluate(&names(2), &labels, &probs, 0.5);
    let correct = (m.accuracy * 10.0).round() as usize;
    assert_eq!(m.accuracy_interval, Some(wilson(correct, 10)));
    let b = m.binary.as_ref().expect("two classes");
    // At every threshold the ROC-based operating point equals counting the scores directly.
    for t in [0.0, 0.05, 0.3, 0.5, 0.55, 0.66, 0.9, 0.95, 1.0] {
        let op = m.operating_point_at(t).expect("two classes");
        let positive: Vec<bool> = labels.iter().map(|&y| y == 1).collect();
        let scores64: Vec<f64> = probs.iter().map(|p| f64::from(p[1])).collect();
        let (sens, spec) = operating_point(&scores64, &positive, t);
        assert!((op.sensitivity - sens).abs() < 1e-12 && (op.specificity - spec).abs() < 1e-12, "t {t}: {op:?} vs {sens} {spec}");
        assert_eq!(op.sensitivity_interval, wilson((sens * 5.0).round() as usize, 5));
        assert_eq!(op.specificity_interval, wilson((spec * 5.0).round() as usize, 5));
    }
    let at_half = m.operating_point_at(0.5).expect("two classes");
    assert_eq!(Some(at_half.sensitivity_interval), b.sensitivity_interval);
    assert_eq!(Some(at_half.specificity_interval), b.specificity_interval);
    let three = evaluate(&names(3), &[0, 1, 2], &onehot(&[0, 1, 2], 3), 0.5);
    assert!(three.operating_point_at(0.5).is_none());
}

#[test]
fn metrics_follow_a_rename_and_old_files_without_intervals_still_parse() {
    let mut m = evaluate(&names(2), &[0, 1], &onehot(&[0, 1], 2), 0.5);
    m.rename_class("c1", "pneumonia");
    assert_eq!(m.per_class[1].name, "pneumonia");
    assert_eq!(m.binary.as_ref().map(|b| b.positive.as_str()), Some("pneumonia"));
    let mut json = serde_json::to_value(&m).expect("json");
    json.as_object_mut().expect("object").remove("accuracyInterval");
    json["binary"].as_object_mut().expect("object").remove("aucInterval");
    let old: Metrics = serde_json::from_value(json).expect("metrics without intervals parse");
    assert_eq!(old.accuracy_interval, None);
}

#[test]
fn a_confident_disagreement_doubts_the_label() {
    assert!(label_doubted(0, &[0.1, 0.9]));
    assert!(!label_doubted(0, &[0.3, 0.7]), "not confident enough");
    assert!(!label_doubted(1, &[0.1, 0.9]), "agrees");
    assert!(label_doubted(2, &[0.85, 0.1, 0.05]));
}
