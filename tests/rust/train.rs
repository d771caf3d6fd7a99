//! Head training on real images (Fashion-MNIST sneakers vs trousers, from Debian's
//! `dataset-fashion-mnist`), determinism, early stopping, the no-transfer warning, heatmaps,
//! and the CLI's train/eval/predict.

mod common;

use std::io::Read;
use std::sync::OnceLock;

use burn::tensor::Device;
use common::*;
use headtune::backbone::Backbone;
use headtune::predict::{predict_image, Classifier};
use headtune::features::FeatureSpec;
use headtune::preprocess::Crop;
use headtune::store::{embed_views, AugmentConfig, Store};
use headtune::predict::ThresholdRule;
use headtune::train::{stratified_split, threshold_for_sensitivity, train, youden_threshold, TrainConfig, TrainOutcome};
use rand::SeedableRng;

const FASHION: &str = "/usr/share/datasets/fashion-mnist";
const TROUSER: u8 = 1;
const SNEAKER: u8 = 7;
const PER_CLASS: usize = 100;

fn gunzip(name: &str) -> Vec<u8> {
    let path = format!("{FASHION}/{name}");
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e} — install Debian's dataset-fashion-mnist (tests/run.sh does)"));
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(file).read_to_end(&mut out).expect("gzip");
    out
}

/// The first `n` test-set images of a class, as 28×28 grayscale.
fn fashion_images(label: u8, n: usize) -> Vec<image::GrayImage> {
    let labels = gunzip("t10k-labels-idx1-ubyte.gz");
    let images = gunzip("t10k-images-idx3-ubyte.gz");
    labels[8..]
        .iter()
        .enumerate()
        .filter(|(_, &l)| l == label)
        .take(n)
        .map(|(i, _)| image::GrayImage::from_raw(28, 28, images[16 + i * 784..16 + (i + 1) * 784].to_vec()).expect("28×28"))
        .collect()
}

fn backbone() -> &'static Backbone {
    static B: OnceLock<Backbone> = OnceLock::new();
    B.get_or_init(|| Backbone::bundled_cpu().expect("bundled weights"))
}

/// 100 trousers + 100 sneakers, embedded once for all tests in this file.
fn fashion_store() -> &'static Store {
    static S: OnceLock<Store> = OnceLock::new();
    S.get_or_init(|| {
        let mut store = Store::new(FeatureSpec::v1());
        for (class, label) in [("trouser", TROUSER), ("sneaker", SNEAKER)] {
            let imgs: Vec<headtune::image::Rgb> =
                fashion_images(label, PER_CLASS).into_iter().map(|g| image::DynamicImage::ImageLuma8(g).into_rgb8()).collect();
            for chunk in imgs.chunks(16).enumerate() {
                let inputs: Vec<Vec<f32>> = chunk.1.iter().map(|i| headtune::preprocess::preprocess_eval(i, Crop::Center, 224).expect("prep")).collect();
                let refs: Vec<&[f32]> = inputs.iter().map(Vec::as_slice).collect();
                for (j, e) in pollster::block_on(backbone().embed(&refs)).expect("embed").into_iter().enumerate() {
                    store.add(class, &format!("{class}-{}", chunk.0 * 16 + j), vec![e]).expect("add");
                }
            }
        }
        store
    })
}

fn run(store: &Store, config: &TrainConfig) -> TrainOutcome {
    pollster::block_on(train(store, config, &Device::flex(), &mut |_| {}, &|| false)).expect("trains")
}

#[test]
fn loss_falls_and_accuracy_reaches_95_percent() {
    let outcome = run(fashion_store(), &TrainConfig { epochs: 30, seed: 1, ..TrainConfig::default() });
    let h = &outcome.report.history;
    let first = h.first().expect("epochs").loss;
    let last = h.last().expect("epochs").loss;
    println!("loss {first:.4} → {last:.4}; epochs {}", h.len());
    assert!(last < first * 0.5, "loss fell from {first} to {last}");
    let m = outcome.report.metrics.as_ref().expect("validation metrics");
    println!("validation accuracy {:.3} on {} images; AUC {:?}", m.accuracy, m.n, m.binary.as_ref().map(|b| b.auc));
    assert_eq!(m.n, 40, "20 % of 200");
    assert!(m.accuracy >= 0.95, "accuracy {}", m.accuracy);
    assert!(!outcome.report.warnings.iter().any(|w| w.code == "no_transfer"), "{:?}", outcome.report.warnings);
    assert_eq!(outcome.report.validation, "split");
}

#[test]
fn mlp_head_also_learns() {
    let config = TrainConfig { epochs: 20, head: headtune::head::HeadKind::Mlp, hidden_units: 32, seed: 2, ..TrainConfig::default() };
    let m = run(fashion_store(), &config).report.metrics.expect("metrics");
    assert!(m.accuracy >= 0.95, "mlp accuracy {}", m.accuracy);
}

#[test]
fn same_seed_same_result_other_seed_other_split() {
    let config = TrainConfig { epochs: 8, head: headtune::head::HeadKind::Mlp, hidden_units: 16, seed: 7, ..TrainConfig::default() };
    let a = run(fashion_store(), &config);
    let b = run(fashion_store(), &config);
    assert_eq!(a.report, b.report, "identical reports");
    assert_eq!(a.head, b.head, "identical weights");
    let c = run(fashion_store(), &TrainConfig { seed: 8, ..config });
    assert_ne!(a.head, c.head);
}

#[test]
fn early_stopping_restores_the_best_epoch() {
    // A large learning rate and no weight decay overfit quickly: validation loss turns up.
    // Without refit (the returned head is then the validation run's best epoch) and at the
    // arg-max threshold, so the head can be checked against the run's own history.
    let config = TrainConfig {
        epochs: 200,
        learning_rate: 0.05,
        weight_decay: 0.0,
        patience: 5,
        seed: 3,
        refit: false,
        threshold: Some(0.5),
        ..TrainConfig::default()
    };
    let store = fashion_store();
    let outcome = run(store, &config);
    let r = &outcome.report;
    assert!(r.stopped_early, "ran all {} epochs", r.history.len());
    assert_eq!(r.history.len(), r.best_epoch + config.patience);
    let best = &r.history[r.best_epoch - 1];
    let min = r.history.iter().filter_map(|h| h.val_loss).fold(f64::INFINITY, f64::min);
    assert_eq!(best.val_loss, Some(min));
    // The returned weights are the best epoch's: recompute its validation accuracy.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(config.seed);
    let (_, val) = stratified_split(store, config.validation_split, &mut rng);
    let clf = Classifier::new(*store.spec(), store.class_names().to_vec(), outcome.head).expect("classifier");
    let correct = val
        .iter()
        .filter(|&&i| {
            let e = &store.examples()[i];
            headtune::metrics::argmax(&clf.probabilities(&e.views[0])) == e.class
        })
        .count();
    assert_eq!(Some(correct as f64 / val.len() as f64), best.val_accuracy);
    assert_eq!(r.metrics.as_ref().map(|m| m.accuracy), best.val_accuracy);
}

#[test]
fn random_labels_warn_of_no_transfer() {
    // Same images, labels shuffled: nothing to learn.
    let src = fashion_store();
    let mut labels: Vec<usize> = (0..src.len()).map(|i| i % 2).collect();
    use rand::seq::SliceRandom;
    labels.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(99));
    let mut store = Store::new(FeatureSpec::v1());
    for (e, l) in src.examples().iter().zip(labels) {
        store.add(["a", "b"][l], &e.name, e.views.clone()).expect("add");
    }
    let r = run(&store, &TrainConfig { epochs: 30, seed: 4, ..TrainConfig::default() }).report;
    let m = r.metrics.as_ref().expect("metrics");
    println!("random labels: validation accuracy {:.3}", m.accuracy);
    assert!(r.warnings.iter().any(|w| w.code == "no_transfer"), "{:?}", r.warnings);
}

#[test]
fn small_classes_use_kfold_and_warn() {
    let src = fashion_store();
    let mut store = Store::new(FeatureSpec::v1());
    for e in src.examples().iter().filter(|e| e.name.ends_with("-1") || e.name.ends_with("-2") || e.name.ends_with("-3") || e.name.ends_with("-4")) {
        store.add(&src.class_names()[e.class], &e.name, e.views.clone()).expect("add");
    }
    assert_eq!(store.counts(), vec![4, 4]);
    let r = run(&store, &TrainConfig { epochs: 20, seed: 5, ..TrainConfig::default() }).report;
    assert_eq!(r.validation, "kfold");
    assert_eq!(r.folds.len(), 4, "folds capped at the smallest class");
    assert_eq!(r.metrics.as_ref().map(|m| m.n), Some(8), "every image predicted out-of-fold once");
    assert_eq!(r.warnings.iter().filter(|w| w.code == "too_few_images").count(), 2);
}

#[test]
fn cancel_and_bad_settings_are_errors() {
    let err = pollster::block_on(train(fashion_store(), &TrainConfig::default(), &Device::flex(), &mut |_| {}, &|| true)).unwrap_err();
    assert!(matches!(err, headtune::Error::Cancelled));
    let err = pollster::block_on(train(fashion_store(), &TrainConfig { learning_rate: -1.0, ..TrainConfig::default() }, &Device::flex(), &mut |_| {}, &|| false)).unwrap_err();
    assert!(err.to_string().contains("learningRate"), "{err}");
    let mut one = Store::new(FeatureSpec::v1());
    one.add("only", "x", vec![vec![0.0; 1280]]).expect("add");
    let err = pollster::block_on(train(&one, &TrainConfig::default(), &Device::flex(), &mut |_| {}, &|| false)).unwrap_err();
    assert!(err.to_string().contains("two classes"), "{err}");
}

#[test]
fn store_edits() {
    let mut s = Store::new(FeatureSpec::v1());
    let a = s.add("cat", "a", vec![vec![0.0; 1280]]).expect("add");
    let b = s.add("dog", "b", vec![vec![0.0; 1280]]).expect("add");
    s.add("dog", "c", vec![vec![0.0; 1280]]).expect("add");
    assert!(s.add("dog", "bad", vec![vec![0.0; 3]]).is_err());
    s.relabel(b, "cat").expect("relabel");
    assert_eq!(s.counts(), vec![2, 1]);
    s.rename_class("dog", "hound").expect("rename");
    assert_eq!(s.class_names(), ["cat", "hound"]);
    s.rename_class("hound", "cat").expect("merge");
    assert_eq!(s.counts(), vec![3]);
    s.remove(a).expect("remove");
    assert!(s.remove(a).is_err());
    assert_eq!(s.remove_class("cat").expect("remove class"), 2);
    assert!(s.is_empty() && s.class_names().is_empty());
    assert!(s.rename_class("nope", "x").unwrap_err().to_string().contains("no class named"));
}

#[test]
fn heatmap_of_cat_vs_coffee_peaks_inside_the_cat() {
    let augment = AugmentConfig { views: 12, seed: 1, ..AugmentConfig::default() };
    let mut store = Store::new(FeatureSpec::v1());
    let chelsea = headtune::image::decode(&std::fs::read(fixture("chelsea.png")).expect("png")).expect("decode");
    for (class, name) in [("cat", "chelsea.png"), ("coffee", "coffee.png")] {
        let img = headtune::image::decode(&std::fs::read(fixture(name)).expect("png")).expect("decode");
        let views = pollster::block_on(embed_views(backbone(), &FeatureSpec::v1(), &img, &augment, 0)).expect("views");
        assert_eq!(views.len(), 13);
        store.add(class, name, views).expect("add");
    }
    let outcome = run(&store, &TrainConfig { epochs: 30, seed: 6, ..TrainConfig::default() });
    let clf = Classifier::new(*store.spec(), store.class_names().to_vec(), outcome.head).expect("classifier");
    let out = pollster::block_on(predict_image(backbone(), &clf, &chelsea, 2, true, false)).expect("predict");
    assert_eq!(out.top[0].label, "cat");
    let h = out.heatmap.expect("heatmap");
    assert_eq!((h.width, h.height, h.data.len()), (56, 56, 56 * 56));
    assert_eq!((h.image_width, h.image_height), chelsea.dimensions());
    let peak = h.data.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i).expect("cells");
    let (px, py) = (peak % 56, peak / 56);
    println!("heatmap peak at ({px}, {py}) of 56×56");
    // Away from the border: not in the outer 1/7 of the grid (one feature-map cell).
    assert!((8..48).contains(&px) && (8..48).contains(&py), "peak at ({px}, {py})");
    assert!(h.data.iter().all(|v| (0.0..=1.0).contains(v)));
}

/// The CLI end to end on PNGs written from Fashion-MNIST: train → model file → eval → predict.
#[test]
fn cli_train_eval_predict() {
    use std::process::Command;
    let dir = std::env::temp_dir().join(format!("headtune-train-{}", std::process::id()));
    for (class, label) in [("trouser", TROUSER), ("sneaker", SNEAKER)] {
        std::fs::create_dir_all(dir.join("data").join(class)).expect("mkdir");
        for (i, img) in fashion_images(label, 24).into_iter().enumerate() {
            img.save(dir.join("data").join(class).join(format!("{i}.png"))).expect("save");
        }
    }
    std::fs::write(dir.join("data/sneaker/broken.jpg"), b"\xff\xd8\xff\xe0 truncated").expect("write");
    let bin = env!("CARGO_BIN_EXE_headtune");
    let model = dir.join("m.headtune");
    let cache = dir.join("cache");
    let out = Command::new(bin)
        .args(["train", "--epochs", "20", "--augment", "1", "--seed", "3", "--json", "--cache"])
        .arg(&cache)
        .arg("--out")
        .arg(&model)
        .arg(dir.join("data"))
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "one broken file → exit 1; stderr: {}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    assert!(lines.iter().any(|l| l["file"].as_str().is_some_and(|f| f.ends_with("broken.jpg")) && l["error"].is_string()));
    assert!(lines.iter().filter(|l| l["epoch"].is_number()).count() >= 2);
    let report = lines.iter().find(|l| l.get("report").is_some()).expect("report line");
    // Fashion-MNIST is grey-scale: the default `auto` crop became `full` for the whole dataset,
    // said on stderr and recorded in the model.
    assert!(String::from_utf8_lossy(&out.stderr).contains("crop auto → full"), "{}", String::from_utf8_lossy(&out.stderr));
    let trained = headtune::project::Model::from_bytes(&std::fs::read(&model).expect("model")).expect("model");
    assert_eq!(trained.classifier.spec.crop(), headtune::preprocess::Crop::Full);
    assert!(report["report"]["metrics"]["accuracy"].as_f64().expect("accuracy") >= 0.9, "{report}");
    assert!(std::fs::metadata(&model).expect("model written").len() < 40_000);

    let out = Command::new(bin).args(["eval", "--json", "--cache"]).arg(&cache).arg(&model).arg(dir.join("data")).output().expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last: serde_json::Value = serde_json::from_str(stdout.lines().last().expect("line")).expect("json");
    assert_eq!(last["n"], 48);
    assert!(last["accuracy"].as_f64().expect("accuracy") >= 0.95, "{last}");
    assert!(last["auc"].as_f64().expect("auc") > 0.95);
    assert!(last["per_class"]["sneaker"]["recall"].is_number());
    assert_eq!(last["confusion"].as_array().expect("confusion").len(), 2);
    // 95 % intervals as [low, high] around each figure: Wilson for the proportions (they are
    // the library's, so equal to what it computes from the same counts), DeLong for the AUC.
    let ci = |key: &str| -> (f64, f64) {
        let v = last[key].as_array().unwrap_or_else(|| panic!("{key} in {last}"));
        (v[0].as_f64().expect("low"), v[1].as_f64().expect("high"))
    };
    let correct = (last["accuracy"].as_f64().expect("accuracy") * 48.0).round() as usize;
    let acc = headtune::metrics::wilson(correct, 48);
    assert_eq!(ci("accuracy_ci95"), (acc.low, acc.high));
    for (key, value) in [("auc_ci95", "auc"), ("sensitivity_ci95", "sensitivity"), ("specificity_ci95", "specificity")] {
        let (low, high) = ci(key);
        let v = last[value].as_f64().expect("value");
        assert!(low <= v && v <= high && high <= 1.0 && low < high, "{key} {low}..{high} around {v}");
    }
    // The model's own threshold, chosen at training, is the default.
    let stored = headtune::project::Model::from_bytes(&std::fs::read(&model).expect("model")).expect("model");
    let t = stored.classifier.decision.as_ref().expect("decision").threshold;
    assert_eq!(last["threshold"].as_f64(), Some(t));
    // --threshold moves accuracy and the confusion matrix too (it used to move only
    // sensitivity/specificity): at 0 every image is called "trouser" (the positive class).
    let out = Command::new(bin).args(["eval", "--json", "--threshold", "0", "--cache"]).arg(&cache).arg(&model).arg(dir.join("data")).output().expect("runs");
    let at0: serde_json::Value = serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().expect("line")).expect("json");
    assert_eq!(at0["accuracy"].as_f64(), Some(0.5), "{at0}");
    assert_eq!(at0["confusion"], serde_json::json!([[0, 24], [0, 24]]));
    assert_eq!((at0["sensitivity"].as_f64(), at0["specificity"].as_f64()), (Some(1.0), Some(0.0)));
    // The cache key no longer depends on the seed without augmentation: a training run with
    // another seed and `eval` reuse the same embeddings.
    // (The `eval` runs above filled the entries of the plain views.)
    let m0 = dir.join("m0.headtune");
    let m0 = m0.to_str().expect("utf8");
    for args in [vec!["train", "--epochs", "2", "--seed", "11", "--out", m0], vec!["train", "--epochs", "2", "--seed", "12", "--out", m0], vec!["eval", m0]] {
        let out = Command::new(bin).args(&args).arg("--cache").arg(&cache).arg(dir.join("data")).output().expect("runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("48 from cache"), "{args:?}: {stderr}");
    }

    let img = dir.join("data/sneaker/0.png");
    let heat = dir.join("heat");
    let out = Command::new(bin).args(["predict", "--json", "--top", "2", "--heatmap"]).arg(&heat).arg(&model).arg(&img).output().expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(line["top"][0]["label"], "sneaker");
    // Two classes: the decision at the model's threshold comes with the ranking.
    assert_eq!(line["decision"]["label"], "sneaker");
    assert_eq!(line["decision"]["threshold"].as_f64(), Some(t));
    assert!(heat.join("0.heatmap.png").exists());

    // A corrupted model file is refused with a clear message.
    let mut bytes = std::fs::read(&model).expect("model");
    let n = bytes.len();
    bytes[n / 2] ^= 0xff;
    std::fs::write(dir.join("bad.headtune"), &bytes).expect("write");
    let out = Command::new(bin).args(["predict"]).arg(dir.join("bad.headtune")).arg(&img).output().expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("checksum"));
}

#[test]
fn held_out_predictions_match_the_confusion_matrix_and_doubt_a_wrong_label() {
    // Split: exactly the validation images, each counted in the confusion matrix cell of its
    // label and arg-max.
    let store = fashion_store();
    let split = run(store, &TrainConfig { epochs: 10, seed: 1, ..TrainConfig::default() });
    let m = split.report.metrics.as_ref().expect("metrics");
    let held = &split.report.held_out;
    assert_eq!(held.len(), m.n);
    let mut confusion = vec![vec![0usize; 2]; 2];
    for p in held {
        let e = store.examples().iter().find(|e| e.id == p.id).expect("a stored example");
        assert_eq!(p.label, e.class);
        assert!((p.probabilities.iter().sum::<f32>() - 1.0).abs() < 1e-4);
        confusion[p.label][headtune::metrics::argmax(&p.probabilities)] += 1;
    }
    assert_eq!(confusion, m.confusion);

    // Cross-validation holds every image out once: a trouser filed under "sneaker" comes back
    // doubted, and (nearly) nothing else does.
    let mut wrong = store.clone();
    let trouser = wrong.examples().iter().find(|e| wrong.class_names()[e.class] == "trouser").map(|e| e.id).expect("a trouser");
    wrong.relabel(trouser, "sneaker").expect("relabel");
    let cv = run(&wrong, &TrainConfig { epochs: 15, cross_validate: true, seed: 4, ..TrainConfig::default() });
    assert_eq!(cv.report.validation, "kfold");
    let ids: Vec<u64> = cv.report.held_out.iter().map(|p| p.id).collect();
    let store_ids: Vec<u64> = wrong.examples().iter().map(|e| e.id).collect();
    assert_eq!(ids, store_ids, "every example once, in store order");
    let doubted: Vec<u64> = cv.report.held_out.iter().filter(|p| p.doubted).map(|p| p.id).collect();
    println!("doubted: {doubted:?} (mislabelled: {trouser})");
    assert!(doubted.contains(&trouser), "the mislabelled trouser is doubted: {doubted:?}");
    assert!(doubted.len() <= 3, "few false alarms: {doubted:?}");
}

#[test]
fn refit_trains_the_returned_head_on_every_image() {
    let config = TrainConfig { epochs: 30, seed: 4, ..TrainConfig::default() };
    let mut refit_epochs = 0;
    let outcome = pollster::block_on(train(fashion_store(), &config, &Device::flex(), &mut |s| refit_epochs += usize::from(s.refit), &|| false))
        .expect("trains");
    let r = &outcome.report;
    println!("refit: {} of {} images, {} epochs (best epoch {})", r.train_examples, fashion_store().len(), refit_epochs, r.best_epoch);
    assert!(r.refit && r.validation == "split");
    assert_eq!(r.train_examples, 200, "every image");
    assert_eq!(r.metrics.as_ref().map(|m| m.n), Some(40), "metrics from the 20 % held out before the refit");
    assert_eq!(refit_epochs, r.best_epoch, "the refit runs the epochs chosen on validation");
    assert!(r.history.iter().all(|h| h.val_loss.is_some() && !h.refit), "the reported curves are the validation run's");
    // Without refit: the validation run's head, trained on 80 %.
    let no_refit = run(fashion_store(), &TrainConfig { refit: false, ..config.clone() });
    assert_eq!((no_refit.report.train_examples, no_refit.report.refit), (160, false));
    assert_ne!(no_refit.head, outcome.head);
    // k-fold always refits.
    let kfold = run(fashion_store(), &TrainConfig { cross_validate: true, refit: false, ..config });
    assert_eq!((kfold.report.train_examples, kfold.report.refit, kfold.report.metrics.map(|m| m.n)), (200, true, Some(200)));
}

#[test]
fn thresholds_by_youden_and_target_sensitivity_on_a_hand_made_case() {
    // Negatives 0.1 0.2 0.3 0.6, positives 0.4 0.7 0.8 0.9.
    let scores = [0.1, 0.2, 0.3, 0.6, 0.4, 0.7, 0.8, 0.9];
    let positive = [false, false, false, false, true, true, true, true];
    // J = 0.75 at "≥ 0.7" (sens 0.75, spec 1) and at "≥ 0.4" (sens 1, spec 0.75): the higher one,
    // moved halfway to the next lower score (0.6).
    assert!((youden_threshold(&scores, &positive) - 0.65).abs() < 1e-12);
    // Sensitivity ≥ 0.95 first reached at "≥ 0.4": halfway to 0.3.
    assert!((threshold_for_sensitivity(&scores, &positive, 0.95) - 0.35).abs() < 1e-12);
    // ≥ 0.5 first reached at "≥ 0.8": halfway to 0.7.
    assert!((threshold_for_sensitivity(&scores, &positive, 0.5) - 0.75).abs() < 1e-12);
    let (se, sp) = headtune::metrics::operating_point(&scores, &positive, 0.35);
    assert_eq!((se, sp), (1.0, 0.75));
}

#[test]
fn the_decision_threshold_is_chosen_on_validation_and_reported() {
    let base = TrainConfig { epochs: 10, seed: 5, ..TrainConfig::default() };
    let youden = run(fashion_store(), &base).report;
    let d = youden.decision.expect("two classes → a decision");
    assert_eq!((d.rule, d.n), (ThresholdRule::Youden, 40));
    let b = youden.metrics.and_then(|m| m.binary).expect("binary metrics");
    assert_eq!(b.threshold, d.threshold, "the metrics are at the chosen threshold");
    assert_eq!((Some(b.sensitivity), Some(b.specificity)), (d.sensitivity, d.specificity));
    let screening = run(fashion_store(), &TrainConfig { target_sensitivity: Some(0.95), ..base.clone() }).report;
    let d = screening.decision.expect("decision");
    assert_eq!((d.rule, d.target_sensitivity), (ThresholdRule::Sensitivity, Some(0.95)));
    assert!(d.sensitivity.expect("validation") >= 0.95);
    let fixed = run(fashion_store(), &TrainConfig { threshold: Some(0.3), ..base }).report;
    let d = fixed.decision.expect("decision");
    assert_eq!((d.rule, d.threshold), (ThresholdRule::Fixed, 0.3));
}

#[test]
fn predict_uses_the_stored_threshold() {
    let outcome = run(fashion_store(), &TrainConfig { epochs: 10, seed: 5, ..TrainConfig::default() });
    let store = fashion_store();
    let clf = Classifier::new(*store.spec(), store.class_names().to_vec(), outcome.head).expect("classifier");
    let img = image::DynamicImage::ImageLuma8(fashion_images(SNEAKER, 1).remove(0)).into_rgb8();
    let model = headtune::project::Model::from_training(clf, TrainConfig::default(), AugmentConfig::default(), &outcome.report);
    let p = model.classifier.probabilities(&pollster::block_on(FeatureSpec::v1().embed_image(backbone(), &img)).expect("embed"))[1];
    // One threshold just below the image's probability, one just above: the decision follows.
    for (t, positive) in [(f64::from(p) - 1e-3, true), (f64::from(p) + 1e-3, false)] {
        let m = model.clone().with_threshold(t).expect("threshold");
        let back = headtune::project::Model::from_bytes(&m.to_bytes().expect("writes")).expect("round trip");
        assert_eq!(back.classifier.decision.as_ref().map(|d| d.threshold), Some(t));
        let out = pollster::block_on(predict_image(backbone(), &back.classifier, &img, 2, false, false)).expect("predict");
        let d = out.decision.expect("decision");
        assert_eq!((d.positive, d.threshold), (positive, t));
        assert_eq!(d.label, store.class_names()[usize::from(positive)]);
    }
}
