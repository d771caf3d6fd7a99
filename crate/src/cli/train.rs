//! `headtune train | eval | predict`: datasets on disk, the embedding cache, reports.

use std::path::{Path, PathBuf};
use std::time::Instant;

use headtune::backbone::Backbone;
use headtune::features::FeatureSpec;
use headtune::metrics::{self, Metrics};
use headtune::predict::{predict_image, Classifier};
use headtune::project::Model;
use headtune::store::{self, AugmentConfig, Store};
use headtune::train::{train, EpochStats};
use headtune::{Error, Result};
use rayon::prelude::*;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{expand_paths, report_error, CacheArgs, TrainArgs};

/// An image of a dataset folder: its class (sub-folder) and path.
struct Item {
    class: String,
    path: PathBuf,
}

/// List `DIR/<class>/**/<image>`; classes sorted by name.
fn list_dataset(dir: &Path) -> Result<Vec<Item>> {
    let io = |source| Error::Io { path: dir.display().to_string(), source };
    let mut classes: Vec<PathBuf> =
        std::fs::read_dir(dir).map_err(io)?.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_dir()).collect();
    classes.sort();
    if classes.is_empty() {
        return Err(Error::Data(format!("{} has no sub-folders: put each class's images in a folder named after the class", dir.display())));
    }
    let mut items = Vec::new();
    for c in classes {
        let name = c.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        for path in expand_paths(&[c])? {
            items.push(Item { class: name.clone(), path });
        }
    }
    Ok(items)
}

/// Embeds files with their augmented views, through an on-disk cache keyed by the file's
/// SHA-256, the feature spec, the backbone weights and the augmentation settings.
struct Embedder {
    backbone: Backbone,
    spec: FeatureSpec,
    augment: AugmentConfig,
    cache: Option<PathBuf>,
    key_prefix: Vec<u8>,
    hits: usize,
}

impl Embedder {
    fn new(spec: FeatureSpec, augment: AugmentConfig, cache: &CacheArgs) -> Result<Self> {
        let mut key_prefix = Sha256::new();
        key_prefix.update(serde_json::to_vec(&spec).unwrap_or_default());
        key_prefix.update(Sha256::digest(spec.backbone().bundled_weights()));
        // Without augmented views the settings (seed included) change nothing: leave them out
        // of the key, so `eval` and every training seed reuse the same entries.
        if augment.views > 0 {
            key_prefix.update(serde_json::to_vec(&augment).unwrap_or_default());
        }
        Ok(Self {
            backbone: Backbone::bundled_cpu_kind(spec.backbone())?,
            spec,
            augment,
            cache: cache.dir(),
            key_prefix: key_prefix.finalize().to_vec(),
            hits: 0,
        })
    }

    /// Views of every file (or its error), in order. Decoding runs in parallel; the network in
    /// batches.
    fn embed_all(&mut self, paths: &[PathBuf], progress: bool) -> Vec<Result<Vec<Vec<f32>>>> {
        let started = Instant::now();
        let mut out = Vec::with_capacity(paths.len());
        for (n, chunk) in paths.chunks(16).enumerate() {
            let loaded: Vec<Result<(String, Vec<u8>)>> = chunk
                .par_iter()
                .map(|p| {
                    let bytes = std::fs::read(p).map_err(|source| Error::Io { path: p.display().to_string(), source })?;
                    Ok((self.key(&bytes), bytes))
                })
                .collect();
            for item in loaded {
                out.push(item.and_then(|(key, bytes)| self.embed_one(&key, &bytes)));
            }
            if progress && (n % 8 == 7 || out.len() == paths.len()) {
                let secs = started.elapsed().as_secs_f64();
                eprintln!("embedded {}/{} images ({:.1}/s, {} from cache)", out.len(), paths.len(), out.len() as f64 / secs, self.hits);
            }
        }
        out
    }

    fn key(&self, bytes: &[u8]) -> String {
        let mut h = Sha256::new();
        h.update(&self.key_prefix);
        h.update(bytes);
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    fn embed_one(&mut self, key: &str, bytes: &[u8]) -> Result<Vec<Vec<f32>>> {
        let file = self.cache.as_ref().map(|d| d.join(&key[..2]).join(format!("{key}.f32")));
        if let Some(views) = file.as_ref().and_then(|f| read_cached(f, 1 + self.augment.views, self.spec.dim())) {
            self.hits += 1;
            return Ok(views);
        }
        let img = headtune::image::decode(bytes)?;
        let views = pollster::block_on(store::embed_views(&self.backbone, &self.spec, &img, &self.augment, store::fingerprint(bytes)))?;
        if let Some(f) = file {
            // A cache write failure only costs time later; never fail the run for it.
            let _ = write_cached(&f, &views);
        }
        Ok(views)
    }
}

fn read_cached(path: &Path, views: usize, dim: usize) -> Option<Vec<Vec<f32>>> {
    let bytes = std::fs::read(path).ok()?;
    if bytes.len() != views * dim * 4 {
        return None;
    }
    let values: Vec<f32> = bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    Some(values.chunks(dim).map(<[f32]>::to_vec).collect())
}

fn write_cached(path: &Path, views: &[Vec<f32>]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let bytes: Vec<u8> = views.iter().flatten().flat_map(|v| v.to_le_bytes()).collect();
    // Write-then-rename so a crash never leaves a half-written entry.
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(tmp, path)
}

/// Embed a dataset folder into a store, reporting unreadable files. Returns (store, all ok).
fn load_store(dataset: &Path, embedder: &mut Embedder, json: bool) -> Result<(Store, bool)> {
    let items = list_dataset(dataset)?;
    let paths: Vec<PathBuf> = items.iter().map(|i| i.path.clone()).collect();
    let mut store = Store::new(embedder.spec);
    let mut all_ok = true;
    for (item, views) in items.iter().zip(embedder.embed_all(&paths, true)) {
        let name = item.path.display().to_string();
        match views.and_then(|v| store.add(&item.class, &name, v)) {
            Ok(_) => {}
            Err(e) => {
                all_ok = false;
                report_error(&name, &e, json);
            }
        }
    }
    Ok((store, all_ok))
}

pub fn run_train(dataset: &Path, out: &Path, args: &TrainArgs, spec: &FeatureSpec, augment: usize, json: bool, cache: &CacheArgs) -> Result<bool> {
    let config = args.config()?;
    let augment = AugmentConfig { views: augment, seed: config.seed, ..AugmentConfig::default() };
    augment.validate()?;
    let mut embedder = Embedder::new(*spec, augment.clone(), cache)?;
    eprintln!("features       {}", spec.describe());
    let (store, all_ok) = load_store(dataset, &mut embedder, json)?;
    for c in store.classes() {
        eprintln!("class {:<20} {} images", c.name, c.count);
    }
    let started = Instant::now();
    let mut print_epoch = |s: &EpochStats| {
        if json {
            println!("{}", json!(s));
        } else {
            let fold = s.fold.map(|f| format!("fold {f} ")).unwrap_or_default();
            let val = match (s.val_loss, s.val_accuracy) {
                (Some(l), Some(a)) => format!("  val loss {l:.4}  val acc {:.1} %", a * 100.0),
                _ => String::new(),
            };
            println!("{fold}epoch {:>3}  loss {:.4}  acc {:.1} %{val}", s.epoch, s.loss, s.accuracy * 100.0);
        }
    };
    let outcome = pollster::block_on(train(&store, &config, &burn::tensor::Device::flex(), &mut print_epoch, &|| false))?;
    let train_secs = started.elapsed().as_secs_f64();
    let classifier = Classifier::new(*store.spec(), store.class_names().to_vec(), outcome.head)?;
    let model = Model::from_training(classifier, config, augment, &outcome.report);
    let bytes = model.to_bytes();
    std::fs::write(out, &bytes).map_err(|source| Error::Io { path: out.display().to_string(), source })?;
    let report = &outcome.report;
    if json {
        println!("{}", json!({ "report": report, "train_seconds": train_secs, "model": out.display().to_string(), "model_bytes": bytes.len() }));
    } else {
        println!("trained in {train_secs:.2} s; best epoch {} ({} validation){}", report.best_epoch, report.validation,
            if report.stopped_early { ", stopped early" } else { "" });
        if report.refit {
            println!("the head was then trained on all {} images for {} epochs (refit); the metrics below are the held-out ones", report.train_examples, report.best_epoch);
        } else {
            println!("the head was trained on {} images (no refit)", report.train_examples);
        }
        if let Some(m) = &report.metrics {
            print_metrics(m);
        }
        if let Some(d) = &report.decision {
            print_decision(d, &store.class_names()[1]);
        }
        for w in &report.warnings {
            println!("WARNING [{}]: {}", w.code, w.message);
        }
        println!("model written to {} ({} bytes)", out.display(), bytes.len());
    }
    Ok(all_ok)
}

fn print_metrics(m: &Metrics) {
    println!("accuracy {:.2} % on {} held-out images (majority baseline {:.1} %)", m.accuracy * 100.0, m.n, m.majority_baseline * 100.0);
    for c in &m.per_class {
        println!("  {:<20} recall {:5.1} %  precision {:5.1} %  F1 {:.3}  (n={})", c.name, c.recall * 100.0, c.precision * 100.0, c.f1, c.support);
    }
    println!("confusion (rows = true, columns = predicted): {:?}", m.confusion);
    if let Some(b) = &m.binary {
        println!("AUC {:.4}; at threshold {:.2}: sensitivity {:.3}, specificity {:.3}; Youden-optimal threshold {:.3} (sens {:.3}, spec {:.3})",
            b.auc, b.threshold, b.sensitivity, b.specificity, b.youden_threshold, b.youden_sensitivity, b.youden_specificity);
    }
}

fn print_decision(d: &headtune::predict::Decision, positive: &str) {
    let how = match (d.rule, d.target_sensitivity) {
        (headtune::predict::ThresholdRule::Sensitivity, Some(t)) => format!("highest with validation sensitivity ≥ {t}"),
        (rule, _) => format!("{rule:?}").to_lowercase(),
    };
    match (d.sensitivity, d.specificity) {
        (Some(se), Some(sp)) => println!(
            "decision: \"{positive}\" when its probability ≥ {:.3} ({how}; on the {} validation predictions it was chosen on: sensitivity {se:.3}, specificity {sp:.3})",
            d.threshold, d.n
        ),
        _ => println!("decision: \"{positive}\" when its probability ≥ {:.3} ({how}; no validation data)", d.threshold),
    }
}

fn read_model(path: &Path) -> Result<Model> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io { path: path.display().to_string(), source })?;
    Model::from_bytes(&bytes)
}

pub fn run_eval(model_path: &Path, dataset: &Path, threshold: Option<f64>, json: bool, cache: &CacheArgs) -> Result<bool> {
    let model = read_model(model_path)?;
    if let Some(t) = threshold.filter(|t| !(0.0..=1.0).contains(t)) {
        return Err(Error::InvalidArgument(format!("--threshold is {t}; use a probability from 0 to 1")));
    }
    // The model's own threshold unless overridden (0.5 for models without one).
    let threshold = threshold.or(model.classifier.decision.as_ref().map(|d| d.threshold)).unwrap_or(0.5);
    let classes = &model.classifier.classes;
    // Only the evaluation view is needed, made the way the model's training images were.
    let mut embedder = Embedder::new(model.classifier.spec, AugmentConfig::default(), cache)?;
    let items = list_dataset(dataset)?;
    let mut all_ok = true;
    let (mut labels, mut probs) = (Vec::new(), Vec::new());
    let known: Vec<&Item> = items
        .iter()
        .filter(|i| {
            let ok = classes.contains(&i.class);
            if !ok {
                all_ok = false;
                report_error(&i.path.display().to_string(), &Error::Data(format!("folder {:?} is not a class of the model ({classes:?})", i.class)), json);
            }
            ok
        })
        .collect();
    let paths: Vec<PathBuf> = known.iter().map(|i| i.path.clone()).collect();
    for (item, views) in known.iter().zip(embedder.embed_all(&paths, !json)) {
        match views {
            Ok(v) => {
                labels.push(classes.iter().position(|c| *c == item.class).unwrap_or(0));
                probs.push(model.classifier.probabilities(&v[0]));
            }
            Err(e) => {
                all_ok = false;
                report_error(&item.path.display().to_string(), &e, json);
            }
        }
    }
    let m = metrics::evaluate(classes, &labels, &probs, threshold);
    if json {
        let per_class: serde_json::Map<String, serde_json::Value> = m
            .per_class
            .iter()
            .map(|c| (c.name.clone(), json!({ "precision": c.precision, "recall": c.recall, "f1": c.f1, "support": c.support })))
            .collect();
        let mut out = json!({ "n": m.n, "accuracy": m.accuracy, "per_class": per_class, "confusion": m.confusion, "classes": classes });
        if let Some(b) = &m.binary {
            out["auc"] = json!(b.auc);
            out["threshold"] = json!(b.threshold);
            out["sensitivity"] = json!(b.sensitivity);
            out["specificity"] = json!(b.specificity);
            out["youden_threshold"] = json!(b.youden_threshold);
        }
        println!("{out}");
    } else {
        print_metrics(&m);
    }
    Ok(all_ok)
}

pub fn run_predict(model_path: &Path, paths: &[PathBuf], top: usize, heatmap_dir: Option<&Path>, json: bool) -> Result<bool> {
    let model = read_model(model_path)?;
    let backbone = Backbone::bundled_cpu_kind(model.classifier.spec.backbone())?;
    if let Some(d) = heatmap_dir {
        std::fs::create_dir_all(d).map_err(|source| Error::Io { path: d.display().to_string(), source })?;
    }
    let mut all_ok = true;
    for path in expand_paths(paths)? {
        let name = path.display().to_string();
        let result = std::fs::read(&path)
            .map_err(|source| Error::Io { path: name.clone(), source })
            .and_then(|b| headtune::image::decode(&b))
            .and_then(|img| {
                let out = pollster::block_on(predict_image(&backbone, &model.classifier, &img, top, heatmap_dir.is_some()))?;
                let file = match (&out.heatmap, heatmap_dir) {
                    (Some(h), Some(dir)) => Some(write_overlay(&img, &model.classifier.spec, h, dir, &path)?),
                    _ => None,
                };
                Ok((out, file))
            });
        match result {
            Ok((out, file)) => {
                if json {
                    let mut line = json!({ "file": name, "top": out.top });
                    if let Some(d) = &out.decision {
                        line["decision"] = json!(d);
                    }
                    if let Some(f) = file {
                        line["heatmap"] = json!(f.display().to_string());
                    }
                    println!("{line}");
                } else {
                    let list: Vec<String> = out.top.iter().map(|p| format!("{} ({:.3})", p.label, p.probability)).collect();
                    let decision = out.decision.as_ref().map_or(String::new(), |d| {
                        format!(" → {} (p {:.3} {} {:.3})", d.label, d.probability, if d.positive { "≥" } else { "<" }, d.threshold)
                    });
                    println!("{name}: {}{decision}", list.join(", "));
                }
            }
            Err(e) => {
                all_ok = false;
                report_error(&name, &e, json);
            }
        }
    }
    Ok(all_ok)
}

/// The network's view of the image (what it saw, at its input size) with the heatmap in red.
fn write_overlay(img: &headtune::image::Rgb, spec: &FeatureSpec, h: &headtune::predict::Heatmap, dir: &Path, src: &Path) -> Result<PathBuf> {
    let (w, hgt) = img.dimensions();
    let view = headtune::preprocess::render(img, &spec.eval_view(w, hgt), spec.input_size())?;
    let size = view.width();
    let overlay = image::RgbImage::from_fn(size, size, |x, y| {
        let gx = (x as usize * h.width / size as usize).min(h.width - 1);
        let gy = (y as usize * h.height / size as usize).min(h.height - 1);
        let a = h.data[gy * h.width + gx] * 0.6;
        let p = view.get_pixel(x, y).0;
        let mix = |c: u8, t: f32| (c as f32 * (1.0 - a) + t * a).round() as u8;
        image::Rgb([mix(p[0], 255.0), mix(p[1], 0.0), mix(p[2], 0.0)])
    });
    let stem = src.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "image".into());
    let out = dir.join(format!("{stem}.heatmap.png"));
    overlay.save(&out).map_err(|e| Error::Io { path: out.display().to_string(), source: std::io::Error::other(e) })?;
    Ok(out)
}
