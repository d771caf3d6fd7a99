//! `headtune train | eval | predict`: datasets on disk, the embedding cache, reports.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use headtune::backbone::Backbone;
use headtune::features::FeatureSpec;
use headtune::metrics::{self, Metrics};
use headtune::predict::{predict_image, Classifier};
use headtune::project::{Model, Project};
use headtune::store::{self, AugmentConfig, Store};
use headtune::train::{train, EpochStats};
use headtune::{Error, Result};
use rayon::prelude::*;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::files::{self, line, note};
use super::{error_code, expand_paths, out, report_error, CacheArgs, TrainArgs};

/// An image of a dataset folder: its class (sub-folder) and path.
struct Item {
    class: String,
    path: PathBuf,
}

/// List `DIR/<class>/**/<image>`; classes sorted by name. Returns the items and the class
/// folders that hold no images (reported by the caller: a class silently missing from a model
/// is worse than a message).
///
/// # Errors
/// [`Error::Data`] for a folder without sub-folders, or two folders that name the same class
/// (`red` and `red `: class names are trimmed); [`Error::Io`] for unreadable folders.
fn list_dataset(dir: &Path) -> Result<(Vec<Item>, Vec<String>)> {
    let io = |source| Error::Io { path: dir.display().to_string(), source };
    let mut classes: Vec<PathBuf> =
        std::fs::read_dir(dir).map_err(io)?.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_dir()).collect();
    classes.sort();
    if classes.is_empty() {
        return Err(Error::Data(format!("{} has no sub-folders: put each class's images in a folder named after the class", dir.display())));
    }
    let mut seen: Vec<(String, String)> = Vec::new();
    let mut items = Vec::new();
    let mut empty = Vec::new();
    for c in classes {
        let folder = c.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let name = folder.trim().to_string();
        if let Some((other, _)) = seen.iter().find(|(_, n)| *n == name) {
            return Err(Error::Data(format!(
                "folders {other:?} and {folder:?} both name class {name:?} (spaces around class names are dropped): rename or merge them"
            )));
        }
        seen.push((folder.clone(), name.clone()));
        let listing = files::list_images(&[c])?;
        listing.report_skipped();
        if listing.files.is_empty() {
            empty.push(folder);
        }
        items.extend(listing.files.into_iter().map(|path| Item { class: name.clone(), path }));
    }
    Ok((items, empty))
}

/// Report class folders without images as failures (exit code 1): the class is left out.
fn report_empty(dataset: &Path, empty: &[String], json: bool) -> Result<bool> {
    for folder in empty {
        let path = dataset.join(folder).display().to_string();
        report_error(&path, &Error::Data(format!("class folder {folder:?} has no images ({}); the class is left out", files::IMAGE_EXTENSIONS.join(", "))), json)?;
    }
    Ok(empty.is_empty())
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

    /// Views of every file (or its error), in order. Each file is one task on the thread pool:
    /// read (within the shared decode memory budget), cache lookup, decode and the network, with
    /// a workspace per thread; the results are the same as one at a time.
    fn embed_all(&mut self, paths: &[PathBuf], progress: bool) -> Vec<Result<Vec<Vec<f32>>>> {
        let started = Instant::now();
        let mut out = Vec::with_capacity(paths.len());
        let hits = AtomicUsize::new(self.hits);
        let (mut ok, mut failed, mut reported) = (0usize, 0usize, 0usize);
        for chunk in paths.chunks(super::chunk_len()) {
            let this = &*self;
            let done: Vec<Result<Vec<Vec<f32>>>> = chunk.par_iter().map(|p| this.embed_one(p, &hits)).collect();
            for d in &done {
                if d.is_ok() {
                    ok += 1;
                } else {
                    failed += 1;
                }
            }
            out.extend(done);
            if progress && (out.len() >= reported + 128 || out.len() == paths.len()) {
                reported = out.len();
                let secs = started.elapsed().as_secs_f64();
                note(&format!(
                    "processed {}/{} images: {ok} embedded ({} from cache), {failed} failed ({:.1} images/s)",
                    out.len(),
                    paths.len(),
                    hits.load(Ordering::Relaxed),
                    out.len() as f64 / secs
                ));
            }
        }
        self.hits = hits.into_inner();
        out
    }

    fn key(&self, bytes: &[u8]) -> String {
        let mut h = Sha256::new();
        h.update(&self.key_prefix);
        h.update(bytes);
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// One file: read after its header was checked and its decode memory reserved, cache lookup,
    /// decode, the network, cache fill. The reservation lasts until the task ends.
    fn embed_one(&self, path: &Path, hits: &AtomicUsize) -> Result<Vec<Vec<f32>>> {
        let file = files::read_image(path)?;
        let key = self.key(&file.bytes);
        let cache_file = self.cache.as_ref().map(|d| d.join(&key[..2]).join(format!("{key}.f32")));
        if let Some(views) = cache_file.as_ref().and_then(|f| read_cached(f, &key, 1 + self.augment.views, self.spec.dim())) {
            hits.fetch_add(1, Ordering::Relaxed);
            return Ok(views);
        }
        let img = headtune::image::decode(&file.bytes)?;
        let views = pollster::block_on(store::embed_views(&self.backbone, &self.spec, &img, &self.augment, store::fingerprint(&file.bytes)))?;
        if let Some(f) = cache_file {
            // A cache write failure only costs time later; never fail the run for it.
            let _ = write_cached(&f, &views);
        }
        Ok(views)
    }
}

/// Cache entry layout: magic, view count, width, CRC-32 of (key, values), then the values
/// (f32 LE). The checksum catches torn writes, disk errors and edits (an entry overwritten with
/// f32::MAX must not train silently); covering the key catches an entry copied to another name.
const CACHE_MAGIC: &[u8; 8] = b"HTEMB\x00\x01\x00";
const CACHE_HEADER: usize = 8 + 4 + 4 + 4;

fn cache_crc(key: &str, values: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(key.as_bytes());
    h.update(values);
    h.finalize()
}

/// The cached views, or `None` (a miss) if the entry is absent or fails any check.
fn read_cached(path: &Path, key: &str, views: usize, dim: usize) -> Option<Vec<Vec<f32>>> {
    let expected = CACHE_HEADER + views * dim * 4;
    let bytes = files::read_regular(path, expected as u64).ok()?;
    if bytes.len() != expected || &bytes[..8] != CACHE_MAGIC {
        return None;
    }
    let word = |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    let body = &bytes[CACHE_HEADER..];
    if word(8) as usize != views || word(12) as usize != dim || word(16) != cache_crc(key, body) {
        return None;
    }
    let values: Vec<f32> = body.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    if values.iter().any(|v| !v.is_finite()) {
        return None;
    }
    Some(values.chunks(dim).map(<[f32]>::to_vec).collect())
}

fn write_cached(path: &Path, views: &[Vec<f32>]) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| Error::Write { path: dir.display().to_string(), source })?;
    }
    let key = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let body: Vec<u8> = views.iter().flatten().flat_map(|v| v.to_le_bytes()).collect();
    let mut bytes = Vec::with_capacity(CACHE_HEADER + body.len());
    bytes.extend_from_slice(CACHE_MAGIC);
    bytes.extend_from_slice(&(views.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&(views.first().map_or(0, Vec::len) as u32).to_le_bytes());
    bytes.extend_from_slice(&cache_crc(&key, &body).to_le_bytes());
    bytes.extend_from_slice(&body);
    files::write_atomic(path, &bytes, false)
}

/// Embed the listed dataset into a store, reporting unreadable files. Returns (store, all ok).
fn load_store(items: &[Item], embedder: &mut Embedder, json: bool) -> Result<(Store, bool)> {
    let paths: Vec<PathBuf> = items.iter().map(|i| i.path.clone()).collect();
    let mut store = Store::new(embedder.spec);
    let mut all_ok = true;
    for (item, views) in items.iter().zip(embedder.embed_all(&paths, true)) {
        let name = item.path.display().to_string();
        match views.and_then(|v| store.add(&item.class, &name, v)) {
            Ok(_) => {}
            Err(e) => {
                all_ok = false;
                report_error(&name, &e, json)?;
            }
        }
    }
    Ok((store, all_ok))
}

/// Decide an `auto` crop for these files from up to 64 of them, spread over the list (unreadable
/// ones are left to the embedding pass to report), and say what was decided.
pub(crate) fn resolve_auto(spec: FeatureSpec, paths: &[PathBuf]) -> FeatureSpec {
    if spec.crop() != headtune::preprocess::Crop::Auto || paths.is_empty() {
        return spec;
    }
    let step = paths.len().div_ceil(64);
    let sample: Vec<headtune::image::Rgb> = paths
        .iter()
        .step_by(step.max(1))
        .filter_map(|p| files::read_image(p).and_then(|f| headtune::image::decode(&f.bytes)).ok())
        .collect();
    let (resolved, grey, n) = spec.resolve_auto(&sample);
    note(&format!("crop auto → {} ({grey} of {n} sampled images are grey-scale)", resolved.crop()));
    resolved
}

/// Refuse an output path that is one of the input images (it would be overwritten by the model).
fn check_not_input(out: &Path, items: &[Item]) -> Result<()> {
    let Ok(out_real) = std::fs::canonicalize(out) else {
        return Ok(()); // does not exist yet, so it is no input
    };
    if let Some(item) = items.iter().find(|i| std::fs::canonicalize(&i.path).is_ok_and(|p| p == out_real)) {
        return Err(Error::InvalidArgument(format!(
            "--out {} is the input image {}; write the model somewhere else (e.g. model.headtune)",
            out.display(),
            item.path.display()
        )));
    }
    Ok(())
}

pub fn run_train(dataset: &Path, out: &Path, args: &TrainArgs, spec: &FeatureSpec, augment: usize, json: bool, cache: &CacheArgs) -> Result<bool> {
    let config = args.config()?;
    let augment = AugmentConfig { views: augment, seed: config.seed, ..AugmentConfig::default() };
    augment.validate()?;
    // Minutes of embedding must not end in "cannot write": check the destination first.
    files::check_writable(out)?;
    let (items, empty) = list_dataset(dataset)?;
    check_not_input(out, &items)?;
    let mut all_ok = report_empty(dataset, &empty, json)?;
    let paths: Vec<PathBuf> = items.iter().map(|i| i.path.clone()).collect();
    let spec = &resolve_auto(*spec, &paths);
    let mut embedder = Embedder::new(*spec, augment.clone(), cache)?;
    note(&format!("features       {}", spec.describe()));
    let (store, embedded_ok) = load_store(&items, &mut embedder, json)?;
    all_ok &= embedded_ok;
    for c in store.classes() {
        note(&format!("class {:<20} {} images", c.name, c.count));
    }
    let started = Instant::now();
    // Progress lines are a courtesy: a closed or failing stdout must not cost the model.
    let mut stdout_error: Option<Error> = None;
    let mut print_epoch = |s: &EpochStats| {
        if stdout_error.is_some() {
            return;
        }
        let printed = if json {
            line(&json!(s).to_string())
        } else {
            let fold = s.fold.map(|f| format!("fold {f} ")).unwrap_or_default();
            let val = match (s.val_loss, s.val_accuracy) {
                (Some(l), Some(a)) => format!("  val loss {l:.4}  val acc {:.1} %", a * 100.0),
                _ => String::new(),
            };
            out!("{fold}epoch {:>3}  loss {:.4}  acc {:.1} %{val}", s.epoch, s.loss, s.accuracy * 100.0)
        };
        stdout_error = printed.err();
    };
    let outcome = pollster::block_on(train(&store, &config, &burn::tensor::Device::flex(), &mut print_epoch, &|| false))?;
    let train_secs = started.elapsed().as_secs_f64();
    let classifier = Classifier::new(*store.spec(), store.class_names().to_vec(), outcome.head)?;
    let model = Model::from_training(classifier, config, augment, &outcome.report);
    let bytes = model.to_bytes()?;
    files::write_atomic(out, &bytes, true)?;
    if let Some(e) = stdout_error {
        return if files::is_closed_pipe(&e) { Ok(all_ok) } else { Err(e) };
    }
    let report = &outcome.report;
    if json {
        line(&json!({ "report": report, "train_seconds": train_secs, "model": out.display().to_string(), "model_bytes": bytes.len() }).to_string())?;
    } else {
        out!("trained in {train_secs:.2} s; best epoch {} ({} validation){}", report.best_epoch, report.validation,
            if report.stopped_early { ", stopped early" } else { "" })?;
        if report.refit {
            out!("the head was then trained on all {} images for {} epochs (refit); the metrics below are the held-out ones", report.train_examples, report.best_epoch)?;
        } else {
            out!("the head was trained on {} images (no refit)", report.train_examples)?;
        }
        if let Some(m) = &report.metrics {
            print_metrics(m)?;
        }
        if let Some(d) = &report.decision {
            print_decision(d, &store.class_names()[1])?;
        }
        for w in &report.warnings {
            out!("WARNING [{}]: {}", w.code, w.message)?;
        }
        out!("model written to {} ({} bytes)", out.display(), bytes.len())?;
    }
    Ok(all_ok)
}

fn print_metrics(m: &Metrics) -> Result<()> {
    out!("accuracy {:.2} % on {} held-out images (majority baseline {:.1} %)", m.accuracy * 100.0, m.n, m.majority_baseline * 100.0)?;
    for c in &m.per_class {
        out!("  {:<20} recall {:5.1} %  precision {:5.1} %  F1 {:.3}  (n={})", c.name, c.recall * 100.0, c.precision * 100.0, c.f1, c.support)?;
    }
    out!("confusion (rows = true, columns = predicted): {:?}", m.confusion)?;
    if let Some(b) = &m.binary {
        out!("AUC {:.4}; at threshold {:.2}: sensitivity {:.3}, specificity {:.3}; Youden-optimal threshold {:.3} (sens {:.3}, spec {:.3})",
            b.auc, b.threshold, b.sensitivity, b.specificity, b.youden_threshold, b.youden_sensitivity, b.youden_specificity)?;
    }
    Ok(())
}

fn print_decision(d: &headtune::predict::Decision, positive: &str) -> Result<()> {
    let how = match (d.rule, d.target_sensitivity) {
        (headtune::predict::ThresholdRule::Sensitivity, Some(t)) => format!("highest with validation sensitivity ≥ {t}"),
        (rule, _) => format!("{rule:?}").to_lowercase(),
    };
    match (d.sensitivity, d.specificity) {
        (Some(se), Some(sp)) => out!(
            "decision: \"{positive}\" when its probability ≥ {:.3} ({how}; on the {} validation predictions it was chosen on: sensitivity {se:.3}, specificity {sp:.3})",
            d.threshold, d.n
        ),
        _ => out!("decision: \"{positive}\" when its probability ≥ {:.3} ({how}; no validation data)", d.threshold),
    }
}

fn read_model(path: &Path) -> Result<Model> {
    Model::from_bytes(&files::read_regular(path, files::MAX_MODEL_BYTES)?)
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
    let (items, empty) = list_dataset(dataset)?;
    let mut all_ok = report_empty(dataset, &empty, json)?;
    let (mut labels, mut probs) = (Vec::new(), Vec::new());
    let mut known: Vec<&Item> = Vec::with_capacity(items.len());
    for i in &items {
        if classes.contains(&i.class) {
            known.push(i);
        } else {
            all_ok = false;
            let e = Error::Data(format!("folder {:?} is not a class of the model ({classes:?})", i.class));
            report_error(&i.path.display().to_string(), &e, json)?;
        }
    }
    let paths: Vec<PathBuf> = known.iter().map(|i| i.path.clone()).collect();
    for (item, views) in known.iter().zip(embedder.embed_all(&paths, !json)) {
        match views {
            Ok(v) => {
                labels.push(classes.iter().position(|c| *c == item.class).unwrap_or(0));
                probs.push(model.classifier.probabilities(&v[0]));
            }
            Err(e) => {
                all_ok = false;
                report_error(&item.path.display().to_string(), &e, json)?;
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
        // Intervals as [low, high], 95 %: Wilson for proportions, DeLong for the AUC.
        let interval = |i: &Option<metrics::Interval>| i.map(|i| [i.low, i.high]);
        let mut out = json!({ "n": m.n, "accuracy": m.accuracy, "accuracy_ci95": interval(&m.accuracy_interval), "per_class": per_class, "confusion": m.confusion, "classes": classes });
        if let Some(b) = &m.binary {
            out["auc"] = json!(b.auc);
            out["auc_ci95"] = json!(interval(&b.auc_interval));
            out["threshold"] = json!(b.threshold);
            out["sensitivity"] = json!(b.sensitivity);
            out["sensitivity_ci95"] = json!(interval(&b.sensitivity_interval));
            out["specificity"] = json!(b.specificity);
            out["specificity_ci95"] = json!(interval(&b.specificity_interval));
            out["youden_threshold"] = json!(b.youden_threshold);
        }
        line(&out.to_string())?;
    } else {
        print_metrics(&m)?;
    }
    Ok(all_ok)
}

pub fn run_predict(model_path: &Path, paths: &[PathBuf], top: usize, heatmap_dir: Option<&Path>, json: bool) -> Result<bool> {
    let model = read_model(model_path)?;
    if let Some(d) = heatmap_dir {
        std::fs::create_dir_all(d).map_err(|source| Error::Write { path: d.display().to_string(), source })?;
        files::check_writable(&d.join("probe.heatmap.png"))?;
    }
    let backbone = Backbone::bundled_cpu_kind(model.classifier.spec.backbone())?;
    let mut all_ok = true;
    let mut heatmap_names = HeatmapNames::default();
    for path in expand_paths(paths)? {
        let name = path.display().to_string();
        let result = files::read_image(&path).and_then(|file| headtune::image::decode(&file.bytes)).and_then(|img| {
            let out = pollster::block_on(predict_image(&backbone, &model.classifier, &img, top, heatmap_dir.is_some(), false))?;
            let file = match (&out.heatmap, heatmap_dir) {
                (Some(h), Some(dir)) => Some(write_overlay(&img, &model.classifier.spec, h, &heatmap_names.next(dir, &path))?),
                _ => None,
            };
            Ok((out, file))
        });
        match result {
            Ok((out, file)) => {
                if json {
                    let mut v = json!({ "file": name, "top": out.top });
                    if let Some(d) = &out.decision {
                        v["decision"] = json!(d);
                    }
                    if let Some(f) = file {
                        v["heatmap"] = json!(f.display().to_string());
                    }
                    line(&v.to_string())?;
                } else {
                    let list: Vec<String> = out.top.iter().map(|p| format!("{} ({:.3})", p.label, p.probability)).collect();
                    let decision = out.decision.as_ref().map_or(String::new(), |d| {
                        format!(" → {} (p {:.3} {} {:.3})", d.label, d.probability, if d.positive { "≥" } else { "<" }, d.threshold)
                    });
                    out!("{name}: {}{decision}", list.join(", "))?;
                }
            }
            Err(e) => {
                all_ok = false;
                report_error(&name, &e, json)?;
            }
        }
    }
    Ok(all_ok)
}

/// Heatmap file names of one run: `<stem>.heatmap.png`, then `<stem>-2.heatmap.png`, … when two
/// inputs share a stem (`a/x.png`, `b/x.jpg`), so no heatmap overwrites another.
#[derive(Default)]
struct HeatmapNames {
    used: std::collections::HashSet<String>,
}

impl HeatmapNames {
    fn next(&mut self, dir: &Path, src: &Path) -> PathBuf {
        let stem = src.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "image".into());
        let mut name = format!("{stem}.heatmap.png");
        let mut n = 1;
        while !self.used.insert(name.clone()) {
            n += 1;
            name = format!("{stem}-{n}.heatmap.png");
        }
        dir.join(name)
    }
}

/// The network's view of the image (what it saw, at its input size) with the heatmap in red,
/// written atomically to `out`.
fn write_overlay(img: &headtune::image::Rgb, spec: &FeatureSpec, h: &headtune::predict::Heatmap, out: &Path) -> Result<PathBuf> {
    let view = headtune::preprocess::render(img, &spec.eval_view(img), spec.input_size())?;
    let size = view.width();
    let overlay = image::RgbImage::from_fn(size, size, |x, y| {
        let gx = (x as usize * h.width / size as usize).min(h.width - 1);
        let gy = (y as usize * h.height / size as usize).min(h.height - 1);
        let a = h.data[gy * h.width + gx] * 0.6;
        let p = view.get_pixel(x, y).0;
        let mix = |c: u8, t: f32| (c as f32 * (1.0 - a) + t * a).round() as u8;
        image::Rgb([mix(p[0], 255.0), mix(p[1], 0.0), mix(p[2], 0.0)])
    });
    let mut png = std::io::Cursor::new(Vec::new());
    overlay
        .write_to(&mut png, image::ImageFormat::Png)
        .map_err(|e| Error::Write { path: out.display().to_string(), source: std::io::Error::other(e) })?;
    files::write_atomic(out, png.get_ref(), true)?;
    Ok(out.to_path_buf())
}

/// `headtune check`: say what each file is, or why it cannot be used, without the backbone.
pub fn run_check(paths: &[PathBuf], json: bool) -> Result<bool> {
    let mut all_ok = true;
    for path in expand_paths(paths)? {
        let name = path.display().to_string();
        match check_one(&path) {
            Ok(found) => {
                if json {
                    let mut v = found;
                    v["file"] = json!(name);
                    line(&v.to_string())?;
                } else {
                    out!("{name}: {}", found["summary"].as_str().unwrap_or_default())?;
                }
            }
            Err(e) => {
                all_ok = false;
                if json {
                    let mut v = json!({ "file": name, "error": e.to_string(), "code": error_code(&e) });
                    if let Some(d) = e.detail() {
                        v["detail"] = json!(d);
                    }
                    line(&v.to_string())?;
                } else {
                    out!("{name}: ERROR {e}")?;
                }
            }
        }
    }
    Ok(all_ok)
}

/// Largest project file `check` reads (projects hold every embedding).
const MAX_PROJECT_BYTES: u64 = 1 << 30;

fn check_one(path: &Path) -> Result<serde_json::Value> {
    // Only the first bytes decide what it is; each kind then has its own size limit.
    let (file, _) = files::open_regular(path, u64::MAX)?;
    let mut magic = [0u8; 8];
    let n = std::io::Read::read(&mut &file, &mut magic).map_err(|source| Error::Io { path: path.display().to_string(), source })?;
    drop(file);
    if n == 8 && &magic == b"HEADTUNE" {
        let bytes = files::read_regular(path, MAX_PROJECT_BYTES)?;
        return match Model::from_bytes(&bytes) {
            Ok(m) => {
                let classes = &m.classifier.classes;
                let head = serde_json::to_value(m.classifier.head.kind).unwrap_or_default();
                let summary = format!("model: {} head, {} classes {classes:?}", head.as_str().unwrap_or("?"), classes.len());
                Ok(json!({ "kind": "model", "head": head, "classes": classes, "summary": summary }))
            }
            Err(Error::ModelFile(m)) if m.starts_with("this is a project file") => {
                let p = Project::from_bytes(&bytes)?;
                let classes = p.store.class_names();
                let summary = format!("project: {} examples in {} classes {classes:?}{}", p.store.len(), classes.len(),
                    if p.model.is_some() { ", with a trained model" } else { "" });
                Ok(json!({ "kind": "project", "examples": p.store.len(), "classes": classes, "model": p.model.is_some(), "summary": summary }))
            }
            Err(e) => Err(e),
        };
    }
    let file = files::read_image(path)?;
    let img = headtune::image::decode(&file.bytes)?;
    let header = headtune::image::inspect(std::io::Cursor::new(&file.bytes))?;
    let (w, h) = img.dimensions();
    let format = format!("{:?}", header.format).to_uppercase();
    Ok(json!({
        "kind": "image", "format": format, "width": w, "height": h, "decodeMemory": header.memory,
        "summary": format!("{format} image, {w}×{h}"),
    }))
}
