//! The native CLI. Plain glue over the library: argument parsing, files and folders, output.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use headtune::backbone::Backbone;
use headtune::preprocess::{self, INPUT_LEN};
use headtune::head::HeadKind;
use headtune::train::TrainConfig;
use headtune::{imagenet, Error, Result};

mod bench;
mod train;
use rayon::prelude::*;
use serde_json::json;

#[derive(Parser)]
#[command(name = "headtune", version, about = "Transfer learning on your own images with a frozen EfficientNet-Lite0")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Worker threads for decoding and the CPU backend (default: all cores).
    #[arg(long, global = true)]
    threads: Option<usize>,
}

#[derive(Subcommand)]
enum Command {
    /// Classify images with the backbone's own ImageNet classifier (checks the backbone).
    Imagenet {
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
    /// Print the 1280-d embedding of each image.
    Embed {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        /// Embed an already preprocessed 1×3×224×224 f32 `.npy` tensor instead of images.
        #[arg(long, value_name = "X.npy")]
        tensor: Vec<PathBuf>,
        /// Image files or folders.
        paths: Vec<PathBuf>,
    },
    /// Train a head on DATASET_DIR (one sub-folder per class) and write a model file.
    Train {
        /// Folder with one sub-folder of images per class.
        dataset: PathBuf,
        /// Where to write the model file.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        train: TrainArgs,
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
    Eval {
        /// Model file written by `headtune train` or the browser.
        model: PathBuf,
        /// Folder with one sub-folder of images per class.
        dataset: PathBuf,
        /// Threshold on the positive (second) class's probability, two-class models.
        #[arg(long, default_value_t = 0.5)]
        threshold: f64,
        /// One JSON object.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        cache: CacheArgs,
    },
    /// Classify images with a trained model.
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
    /// Measure embedding throughput (1 thread and all threads, batch 1 and 16), weight loading,
    /// preprocessing and head training.
    Bench(bench::BenchArgs),
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
    /// Decision threshold on the positive (second) class, two-class problems.
    #[arg(long, default_value_t = 0.5)]
    threshold: f64,
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

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(n) = cli.threads {
        // Only fails if a pool already exists, which cannot happen this early.
        let _ = rayon::ThreadPoolBuilder::new().num_threads(n).build_global();
    }
    let outcome = match cli.command {
        Command::Imagenet { top, json, paths } => run_imagenet(&paths, top, json),
        Command::Embed { json, tensor, paths } => run_embed(&paths, &tensor, json),
        Command::Bench(args) => bench::run_bench(&args, cli.threads),
        Command::Train { dataset, out, train, augment, json, cache } => train::run_train(&dataset, &out, &train, augment, json, &cache),
        Command::Eval { model, dataset, threshold, json, cache } => train::run_eval(&model, &dataset, threshold, json, &cache),
        Command::Predict { model, paths, top, heatmap, json } => train::run_predict(&model, &paths, top, heatmap.as_deref(), json),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("headtune: {e}");
            ExitCode::from(2)
        }
    }
}

/// File extensions picked up when a folder is given.
const IMAGE_EXTENSIONS: [&str; 9] = ["png", "jpg", "jpeg", "gif", "bmp", "webp", "tif", "tiff", "jfif"];

/// Expand folders (recursively, sorted) into image files; files are kept as given.
pub fn expand_paths(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut entries = Vec::new();
            walk(p, &mut entries)?;
            entries.sort();
            out.extend(entries);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let io = |source| Error::Io { path: dir.display().to_string(), source };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else if is_image_name(&path) {
            out.push(path);
        }
    }
    Ok(())
}

fn is_image_name(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Read, decode and preprocess one file (evaluation view).
pub fn load_input(path: &Path) -> Result<Vec<f32>> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io { path: path.display().to_string(), source })?;
    preprocess::preprocess_eval(&headtune::image::decode(&bytes)?)
}

/// Files handed to the thread pool at a time: enough to keep every thread busy, few enough that
/// results (and failures) are printed as they come.
pub fn chunk_len() -> usize {
    (4 * rayon::current_num_threads()).max(16)
}

/// Report one failed file.
pub(crate) fn report_error(file: &str, err: &Error, json: bool) {
    if json {
        println!("{}", json!({ "file": file, "error": err.to_string() }));
    } else {
        eprintln!("{file}: {err}");
    }
}

/// Decode, preprocess and run `work` on every file, one image per task on the thread pool, then
/// `report` each result in the files' order (failures per file). Returns whether all succeeded.
fn for_each_image<T: Send>(
    paths: &[PathBuf],
    json: bool,
    work: impl Fn(&[f32]) -> Result<T> + Sync,
    mut report: impl FnMut(&str, T),
) -> Result<bool> {
    let mut all_ok = true;
    for chunk in paths.chunks(chunk_len()) {
        let results: Vec<Result<T>> = chunk.par_iter().map(|p| load_input(p).and_then(|x| work(&x))).collect();
        for (path, result) in chunk.iter().zip(results) {
            let name = path.display().to_string();
            match result {
                Ok(v) => report(&name, v),
                Err(e) => {
                    all_ok = false;
                    report_error(&name, &e, json);
                }
            }
        }
        let _ = std::io::stdout().flush();
    }
    Ok(all_ok)
}

fn run_imagenet(paths: &[PathBuf], top: usize, json: bool) -> Result<bool> {
    let backbone = Backbone::bundled_cpu()?;
    let files = expand_paths(paths)?;
    let classify = |x: &[f32]| Ok(pollster::block_on(backbone.imagenet(&[x]))?.remove(0).1);
    for_each_image(&files, json, classify, |name, logits| {
        let ranked = imagenet::top_k(&logits, top);
        if json {
            println!("{}", json!({ "file": name, "top": ranked }));
        } else {
            let list: Vec<String> = ranked.iter().map(|r| format!("{} ({:.3})", r.label, r.probability)).collect();
            println!("{name}: {}", list.join(", "));
        }
    })
}

fn run_embed(paths: &[PathBuf], tensors: &[PathBuf], json: bool) -> Result<bool> {
    if paths.is_empty() && tensors.is_empty() {
        return Err(Error::InvalidArgument("give image files/folders or --tensor X.npy".into()));
    }
    let backbone = Backbone::bundled_cpu()?;
    let print = |name: &str, e: &[f32]| {
        if json {
            println!("{}", json!({ "file": name, "embedding": e }));
        } else {
            let values: Vec<String> = e.iter().map(|v| format!("{v:.6}")).collect();
            println!("{name}\t{}", values.join(" "));
        }
    };
    let mut all_ok = true;
    for t in tensors {
        let name = t.display().to_string();
        match read_npy_input(t).and_then(|x| pollster::block_on(backbone.embed(&[&x]))) {
            Ok(e) => e.iter().for_each(|e| print(&name, e)),
            Err(e) => {
                all_ok = false;
                report_error(&name, &e, json);
            }
        }
    }
    let files = expand_paths(paths)?;
    let embed = |x: &[f32]| Ok(pollster::block_on(backbone.embed(&[x]))?.remove(0));
    let ok = for_each_image(&files, json, embed, |name, e| print(name, &e))?;
    Ok(all_ok && ok)
}

/// Read a preprocessed `1×3×224×224` (or `3×224×224`) little-endian f32 `.npy` file.
pub fn read_npy_input(path: &Path) -> Result<Vec<f32>> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io { path: path.display().to_string(), source })?;
    let npy = npyz::NpyFile::new(&bytes[..]).map_err(|e| Error::Tensor(format!("not a .npy file: {e}")))?;
    let shape = npy.shape().to_vec();
    if shape != [1, 3, 224, 224] && shape != [3, 224, 224] {
        return Err(Error::Tensor(format!("shape is {shape:?}; expected [1, 3, 224, 224]")));
    }
    let values: Vec<f32> = npy
        .into_vec()
        .map_err(|e| Error::Tensor(format!("expected float32 data: {e}")))?;
    debug_assert_eq!(values.len(), INPUT_LEN);
    Ok(values)
}
