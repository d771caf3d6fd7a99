//! The native CLI. Plain glue over the library: argument parsing, files and folders, output.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use headtune::backbone::{Backbone, BackboneKind};
use headtune::features::{FeatureSpec, Pooling};
use headtune::preprocess::{self, Crop};
use headtune::head::HeadKind;
use headtune::train::TrainConfig;
use headtune::{imagenet, Error, Result};

mod bench;
mod files;
mod train;
use files::{line, note};
use rayon::prelude::*;
use serde_json::json;

/// Print one formatted line on standard output, returning its write error (see [`files::line`]).
macro_rules! out {
    ($($arg:tt)*) => { files::line(&format!($($arg)*)) };
}
pub(crate) use out;

#[derive(Parser)]
#[command(name = "headtune", version, about = "Transfer learning on your own images with a frozen EfficientNet-Lite")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Worker threads for decoding and the CPU backend (default: all cores).
    #[arg(long, global = true)]
    threads: Option<usize>,
}

#[derive(Subcommand)]
enum Command {
    /// Classify images with the backbone's own ImageNet classifier (checks the backbone; centre
    /// crop at the backbone's own input size, as it was trained).
    #[command(allow_negative_numbers = true)]
    Imagenet {
        /// Backbone: lite0, lite1 or lite2.
        #[arg(long, default_value_t = BackboneKind::Lite0)]
        backbone: BackboneKind,
        /// How many classes to list per image.
        #[arg(long, default_value_t = 5)]
        top: usize,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        /// Image files or folders.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Print the embedding of each image.
    Embed {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        features: FeatureArgs,
        /// Embed an already preprocessed 1×3×S×S f32 `.npy` tensor (S = the input size) instead
        /// of images.
        #[arg(long, value_name = "X.npy")]
        tensor: Vec<PathBuf>,
        /// Image files or folders.
        paths: Vec<PathBuf>,
    },
    /// Train a head on DATASET_DIR (one sub-folder per class) and write a model file.
    #[command(allow_negative_numbers = true)]
    Train {
        /// Folder with one sub-folder of images per class.
        dataset: PathBuf,
        /// Where to write the model file.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        train: TrainArgs,
        #[command(flatten)]
        features: FeatureArgs,
        /// Augmented views embedded per image (in addition to the evaluation view).
        #[arg(long, default_value_t = 0)]
        augment: usize,
        /// One JSON object per epoch, then the report.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        cache: CacheArgs,
    },
    /// Evaluate a model on DATASET_DIR (one sub-folder per class, named as the model's classes).
    #[command(allow_negative_numbers = true)]
    Eval {
        /// Model file written by `headtune train` or the browser.
        model: PathBuf,
        /// Folder with one sub-folder of images per class.
        dataset: PathBuf,
        /// Threshold on the positive (second) class's probability, two-class models (default: the
        /// model's own, chosen at training).
        #[arg(long, value_parser = probability)]
        threshold: Option<f64>,
        /// One JSON object.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        cache: CacheArgs,
    },
    /// Classify images with a trained model.
    #[command(allow_negative_numbers = true)]
    Predict {
        /// Model file.
        model: PathBuf,
        /// Image files or folders.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// How many classes to list per image.
        #[arg(long, default_value_t = 3)]
        top: usize,
        /// Write a heatmap overlay PNG per image into this folder.
        #[arg(long, value_name = "DIR")]
        heatmap: Option<PathBuf>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Check files without embedding them: images decode, model files load. Prints what each
    /// file is, or why it cannot be used.
    Check {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        /// Image or model files, or folders of images.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Measure embedding throughput (1 thread and all threads, batch 1 and 16), weight loading,
    /// preprocessing and head training.
    Bench(bench::BenchArgs),
}

/// How embeddings are made (defaults: [`FeatureSpec::default`]).
#[derive(clap::Args)]
struct FeatureArgs {
    /// Backbone: lite0 (fastest), lite1 (240 px) or lite2 (260 px).
    #[arg(long, default_value_t = FeatureSpec::default().backbone())]
    backbone: BackboneKind,
    /// Input side in pixels (default: the backbone's own, 224 / 240 / 260).
    #[arg(long, value_name = "PIXELS")]
    input_size: Option<usize>,
    /// How images are framed: center (87.5 % centre crop, photos), full (whole image stretched
    /// to the square), pad (whole image letterboxed).
    #[arg(long, default_value_t = FeatureSpec::default().crop())]
    crop: Crop,
    /// Pooling of the feature maps: avg (1280 values), avgmax (head average + max), multi
    /// (the last four stages and the head, each L2-normalised).
    #[arg(long, default_value_t = FeatureSpec::default().pooling())]
    pooling: Pooling,
}

impl FeatureArgs {
    fn spec(&self) -> Result<FeatureSpec> {
        FeatureSpec::new(self.backbone, self.input_size, self.crop, self.pooling)
    }
}

/// Training hyperparameters (defaults: [`TrainConfig::default`]).
#[derive(clap::Args)]
struct TrainArgs {
    /// Maximum epochs (early stopping may end sooner).
    #[arg(long, default_value_t = 50)]
    epochs: usize,
    /// AdamW learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Batch size.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Head architecture: linear or mlp.
    #[arg(long, default_value = "linear")]
    head: HeadKind,
    /// Hidden units of the MLP head.
    #[arg(long, default_value_t = 128)]
    hidden: usize,
    /// AdamW weight decay.
    #[arg(long, default_value_t = 1e-4)]
    weight_decay: f64,
    /// Label smoothing α.
    #[arg(long, default_value_t = 0.0)]
    label_smoothing: f32,
    /// Fraction of each class held out for validation (0 = none).
    #[arg(long, default_value_t = 0.2)]
    val_split: f64,
    /// Use k-fold cross-validation with this many folds for the metrics.
    #[arg(long)]
    kfold: Option<usize>,
    /// Early-stopping patience in epochs (0 = off).
    #[arg(long, default_value_t = 10)]
    patience: usize,
    /// Class-balanced loss: auto, on or off.
    #[arg(long, default_value = "auto")]
    balanced: String,
    /// A fixed decision threshold on the positive (second) class, two-class problems (default:
    /// chosen on the validation predictions, maximising sensitivity + specificity).
    #[arg(long, value_parser = probability)]
    threshold: Option<f64>,
    /// Choose the highest threshold whose validation sensitivity reaches this instead
    /// (screening: 0.95).
    #[arg(long, value_name = "S", value_parser = probability)]
    target_sensitivity: Option<f64>,
    /// Return the head of the validation run (trained on the training part only) instead of
    /// training it again on every image.
    #[arg(long)]
    no_refit: bool,
    /// Seed for the split, shuffles, initialisation and augmentation.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

impl TrainArgs {
    fn config(&self) -> Result<TrainConfig> {
        let class_balanced = match self.balanced.as_str() {
            "auto" => None,
            "on" => Some(true),
            "off" => Some(false),
            other => return Err(Error::InvalidArgument(format!("--balanced is {other:?}; use auto, on or off"))),
        };
        let config = TrainConfig {
            epochs: self.epochs,
            learning_rate: self.lr,
            batch_size: self.batch_size,
            head: self.head,
            hidden_units: self.hidden,
            weight_decay: self.weight_decay,
            label_smoothing: self.label_smoothing,
            validation_split: self.val_split,
            folds: self.kfold.unwrap_or(5),
            cross_validate: self.kfold.is_some(),
            class_balanced,
            patience: self.patience,
            threshold: self.threshold,
            target_sensitivity: self.target_sensitivity,
            refit: !self.no_refit,
            seed: self.seed,
            ..TrainConfig::default()
        };
        config.validate()?;
        Ok(config)
    }
}

/// Where embeddings are cached.
#[derive(clap::Args)]
struct CacheArgs {
    /// Cache folder (default: $HEADTUNE_CACHE, else $XDG_CACHE_HOME/headtune, else ~/.cache/headtune).
    #[arg(long, value_name = "DIR")]
    cache: Option<PathBuf>,
    /// Do not read or write cached embeddings.
    #[arg(long)]
    no_cache: bool,
}

impl CacheArgs {
    fn dir(&self) -> Option<PathBuf> {
        if self.no_cache {
            return None;
        }
        self.cache.clone().or_else(|| {
            let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
            env("HEADTUNE_CACHE")
                .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("headtune")))
                .or_else(|| env("HOME").map(|d| d.join(".cache/headtune")))
        })
    }
}

/// `--threshold`: a probability, not NaN.
fn probability(s: &str) -> std::result::Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("{s} is not a probability; use a number from 0 to 1, e.g. 0.5")),
    }
}

pub fn main() -> ExitCode {
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to "ignore" at start-up, before any thread exists.
    // Without it, exceeding `ulimit -f` kills the process (SIGXFSZ) mid-write; ignored, the write
    // returns EFBIG and the user gets "cannot write …: File too large" with the old file intact.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    let cli = Cli::parse();
    if let Some(n) = cli.threads {
        // Only fails if a pool already exists, which cannot happen this early.
        let _ = rayon::ThreadPoolBuilder::new().num_threads(n).build_global();
    }
    let outcome = match cli.command {
        Command::Imagenet { backbone, top, json, paths } => run_imagenet(backbone, &paths, top, json),
        Command::Embed { json, features, tensor, paths } => features.spec().and_then(|spec| run_embed(&spec, &paths, &tensor, json)),
        Command::Bench(args) => bench::run_bench(&args, cli.threads),
        Command::Train { dataset, out, train, features, augment, json, cache } => {
            features.spec().and_then(|spec| train::run_train(&dataset, &out, &train, &spec, augment, json, &cache))
        }
        Command::Eval { model, dataset, threshold, json, cache } => train::run_eval(&model, &dataset, threshold, json, &cache),
        Command::Predict { model, paths, top, heatmap, json } => train::run_predict(&model, &paths, top, heatmap.as_deref(), json),
        Command::Check { json, paths } => train::run_check(&paths, json),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        // The reader of our output went away (`| head`): nothing more to say, to anyone.
        Err(e) if files::is_closed_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            note(&format!("headtune: {e}"));
            ExitCode::from(2)
        }
    }
}

/// Expand folders into image files (see [`files::list_images`]), telling the user on stderr
/// which links and metadata files were skipped.
pub fn expand_paths(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let listing = files::list_images(paths)?;
    listing.report_skipped();
    Ok(listing.files)
}

/// Read, decode and preprocess one file (evaluation view, framed by `crop` at side `size`),
/// within the shared decode budget.
pub fn load_input(path: &Path, crop: Crop, size: usize) -> Result<Vec<f32>> {
    let file = files::read_image(path)?;
    preprocess::preprocess_eval(&headtune::image::decode(&file.bytes)?, crop, size)
}

/// Files handed to the thread pool at a time: enough to keep every thread busy, few enough that
/// results (and failures) are printed as they come.
pub fn chunk_len() -> usize {
    (4 * rayon::current_num_threads()).max(16)
}

/// Report one failed file: on stdout as `{"file", "error", "code", "detail"?}` with `--json`,
/// on stderr otherwise.
///
/// # Errors
/// A failed write of standard output.
pub(crate) fn report_error(file: &str, err: &Error, json: bool) -> Result<()> {
    if json {
        let mut v = json!({ "file": file, "error": err.to_string(), "code": error_code(err) });
        if let Some(d) = err.detail() {
            v["detail"] = json!(d);
        }
        line(&v.to_string())
    } else {
        note(&format!("{file}: {err}"));
        Ok(())
    }
}

/// The error's variant name (`Corrupt`, `Io`, …), as the JS package's `code`.
pub(crate) fn error_code(err: &Error) -> String {
    format!("{err:?}").chars().take_while(char::is_ascii_alphanumeric).collect()
}

/// Decode, preprocess (framed by `crop` at side `size`) and run `work` on every file, one image
/// per task on the thread pool, then `report` each result in the files' order (failures per
/// file). Returns whether all succeeded.
fn for_each_image<T: Send>(
    paths: &[PathBuf],
    (crop, size): (Crop, usize),
    json: bool,
    work: impl Fn(&[f32]) -> Result<T> + Sync,
    mut report: impl FnMut(&str, T) -> Result<()>,
) -> Result<bool> {
    let mut all_ok = true;
    for chunk in paths.chunks(chunk_len()) {
        let results: Vec<Result<T>> = chunk.par_iter().map(|p| load_input(p, crop, size).and_then(|x| work(&x))).collect();
        for (path, result) in chunk.iter().zip(results) {
            let name = path.display().to_string();
            match result {
                Ok(v) => report(&name, v)?,
                Err(e) => {
                    all_ok = false;
                    report_error(&name, &e, json)?;
                }
            }
        }
    }
    Ok(all_ok)
}

fn run_imagenet(kind: BackboneKind, paths: &[PathBuf], top: usize, json: bool) -> Result<bool> {
    let backbone = Backbone::bundled_cpu_kind(kind)?;
    let files = expand_paths(paths)?;
    let classify = |x: &[f32]| Ok(pollster::block_on(backbone.imagenet(&[x]))?.remove(0).1);
    // Centre crop at the backbone's own input size, as its ImageNet classifier was trained.
    for_each_image(&files, (Crop::Center, backbone.arch().input_size), json, classify, |name, logits| {
        let ranked = imagenet::top_k(&logits, top);
        if json {
            line(&json!({ "file": name, "top": ranked }).to_string())
        } else {
            let list: Vec<String> = ranked.iter().map(|r| format!("{} ({:.3})", r.label, r.probability)).collect();
            out!("{name}: {}", list.join(", "))
        }
    })
}

fn run_embed(spec: &FeatureSpec, paths: &[PathBuf], tensors: &[PathBuf], json: bool) -> Result<bool> {
    if paths.is_empty() && tensors.is_empty() {
        return Err(Error::InvalidArgument("give image files/folders or --tensor X.npy".into()));
    }
    let backbone = Backbone::bundled_cpu_kind(spec.backbone())?;
    let embed = |inputs: &[&[f32]]| pollster::block_on(spec.embed_inputs(&backbone, inputs));
    let print = |name: &str, e: &[f32]| {
        if json {
            line(&json!({ "file": name, "embedding": e }).to_string())
        } else {
            let values: Vec<String> = e.iter().map(|v| format!("{v:.6}")).collect();
            out!("{name}\t{}", values.join(" "))
        }
    };
    let mut all_ok = true;
    for t in tensors {
        let name = t.display().to_string();
        match read_npy_input(t, spec.input_size()).and_then(|x| embed(&[&x])) {
            Ok(e) => e.iter().try_for_each(|e| print(&name, e))?,
            Err(e) => {
                all_ok = false;
                report_error(&name, &e, json)?;
            }
        }
    }
    let files = expand_paths(paths)?;
    let spec = &train::resolve_auto(*spec, &files);
    let embed_one = |x: &[f32]| Ok(embed(&[x])?.remove(0));
    let ok = for_each_image(&files, (spec.crop(), spec.input_size()), json, embed_one, |name, e| print(name, &e))?;
    Ok(all_ok && ok)
}

/// Read a preprocessed `1×3×S×S` (or `3×S×S`) little-endian f32 `.npy` file in C order with
/// finite values, S = `size`.
pub fn read_npy_input(path: &Path, size: usize) -> Result<Vec<f32>> {
    let bytes = files::read_regular(path, files::MAX_TENSOR_BYTES)?;
    let npy = npyz::NpyFile::new(&bytes[..]).map_err(|e| Error::Tensor(format!("not a .npy file: {e}")))?;
    let shape = npy.shape().to_vec();
    let s = size as u64;
    if shape != [1, 3, s, s] && shape != [3, s, s] {
        return Err(Error::Tensor(format!("shape is {shape:?}; expected [1, 3, {size}, {size}] (the input size)")));
    }
    if npy.order() != npyz::Order::C {
        // The values would be read in the wrong order: channels and rows swapped.
        return Err(Error::Tensor("the array is in Fortran order; save it with np.save(path, np.ascontiguousarray(x))".into()));
    }
    let values: Vec<f32> = npy
        .into_vec()
        .map_err(|e| Error::Tensor(format!("expected float32 data: {e}")))?;
    if values.len() != 3 * size * size {
        return Err(Error::Tensor(format!("{} values; expected {}", values.len(), 3 * size * size)));
    }
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(Error::Tensor(format!("value {i} is {}; preprocessed inputs are finite", values[i])));
    }
    Ok(values)
}
