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
    let m = |correct: usize| Metrics { n: 100, accuracy: correct as f64 / 100.0, majority_baseline: 0.5, per_class: vec![], confusion: vec![], binary: None };
    assert!(transfer_warning(&m(60)).is_none());
    // 55 of 100: p ≈ 0.18 → no evidence.
    let w = transfer_warning(&m(55)).expect("warning");
    assert_eq!(w.code, "no_transfer");
    assert!(w.message.contains("55.0 %"), "{}", w.message);
}
