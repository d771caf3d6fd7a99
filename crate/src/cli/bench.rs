//! `headtune bench`: embedding throughput of the backbone (1 thread and all threads, several
//! batch sizes, per backend), weight loading, preprocessing and head training.
//!
//! Settings are measured in interleaved rounds (A, B, C, A, B, C, …) after a warm-up, and each
//! figure is the median over rounds, so a burst of load on a shared machine moves every setting
//! alike instead of one. CPU time per image is reported next to wall time: it is what a busy
//! machine does not distort.

use std::time::Instant;

use burn::tensor::Device;
use headtune::backbone::{Backbone, BUNDLED_WEIGHTS};
use headtune::cpu::Isa;
use headtune::features::FeatureSpec;
use headtune::preprocess::{self, Crop};
use headtune::train::TrainConfig;
use headtune::{Error, Result};
use serde_json::json;

/// Options of `headtune bench`.
#[derive(clap::Args)]
pub struct BenchArgs {
    /// Interleaved rounds per setting (the median is reported).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Minimum seconds per setting and round (a round runs whole batches until it is reached).
    #[arg(long, default_value_t = 0.5)]
    min_time: f64,
    /// Batch sizes, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    batches: Vec<usize>,
    /// Backends, comma-separated: cpu (the CPU kernels), burn (the burn model on the CPU: the
    /// path the kernels replaced), wgpu (the burn model on a GPU; builds with `--features wgpu`).
    #[arg(long, value_delimiter = ',', default_value = "cpu")]
    backend: Vec<String>,
    /// Instruction set of the CPU kernels (portable, avx2, avx512, …; default: the fastest).
    #[arg(long)]
    isa: Option<String>,
    /// Only embedding throughput (skip weight loading, preprocessing and head training).
    #[arg(long)]
    embed_only: bool,
    /// One JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// One measured combination.
struct Setting {
    backend: String,
    threads: usize,
    batch: usize,
    /// Per round: (images/s, CPU seconds per image).
    rounds: Vec<(f64, f64)>,
}

impl Setting {
    fn median(&self, pick: impl Fn(&(f64, f64)) -> f64) -> f64 {
        let mut v: Vec<f64> = self.rounds.iter().map(pick).collect();
        v.sort_by(f64::total_cmp);
        match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }
}

fn parse_isa(name: &str) -> Result<Isa> {
    let available = Isa::available();
    available.iter().copied().find(|i| i.name() == name).ok_or_else(|| {
        let names: Vec<&str> = available.iter().map(|i| i.name()).collect();
        Error::InvalidArgument(format!("--isa {name:?} is not available here; use one of {}", names.join(", ")))
    })
}

/// The backbone of one `--backend` name.
fn load(backend: &str, isa: Option<Isa>) -> Result<Backbone> {
    match backend {
        "cpu" => match isa {
            Some(isa) => Backbone::load_cpu_with(BUNDLED_WEIGHTS, isa),
            None => Backbone::load(BUNDLED_WEIGHTS, Device::flex()),
        },
        "burn" => Backbone::load_burn(BUNDLED_WEIGHTS, Device::flex()),
        #[cfg(feature = "wgpu")]
        "wgpu" => Backbone::load(BUNDLED_WEIGHTS, Device::wgpu(burn::tensor::DeviceKind::default())),
        other => Err(Error::InvalidArgument(format!("--backend {other:?}; use cpu, burn{}", if cfg!(feature = "wgpu") {
            " or wgpu"
        } else {
            " (or wgpu in a build with `--features wgpu`)"
        }))),
    }
}

/// Seconds of CPU time this process has used (all threads), where the platform says.
fn cpu_seconds() -> Option<f64> {
    #[cfg(unix)]
    {
        let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: `t` is a valid timespec for the call to fill.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) };
        (rc == 0).then(|| t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9)
    }
    #[cfg(not(unix))]
    None
}

pub fn run_bench(args: &BenchArgs, threads_flag: Option<usize>) -> Result<bool> {
    let rounds = args.rounds.max(1);
    let isa = args.isa.as_deref().map(parse_isa).transpose()?;
    if args.batches.is_empty() || args.batches.contains(&0) {
        return Err(Error::InvalidArgument("--batches needs sizes ≥ 1, e.g. 1,16".into()));
    }
    let all = threads_flag.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let mut thread_counts = vec![1, all];
    thread_counts.dedup();
    let pools = thread_counts
        .iter()
        .map(|&n| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .map(|p| (n, p))
                .map_err(|e| Error::InvalidArgument(format!("cannot start {n} threads: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;

    let t0 = Instant::now();
    let backbones = args.backend.iter().map(|b| Ok((b.clone(), load(b, isa)?))).collect::<Result<Vec<_>>>()?;
    let load_ms = t0.elapsed().as_secs_f64() * 1e3 / backbones.len() as f64;

    // A deterministic textured input: the network's cost does not depend on the values.
    let input: Vec<f32> = (0..3 * 224 * 224).map(|i| ((i * 7919 % 255) as f32 - 127.0) / 128.0).collect();
    let mut settings = Vec::new();
    for (name, b) in &backbones {
        // Thread count only matters where the CPU does the work.
        let counts: &[usize] = if b.kernels().is_some() || name == "burn" { &thread_counts } else { &thread_counts[thread_counts.len() - 1..] };
        for &threads in counts {
            for &batch in &args.batches {
                settings.push(Setting { backend: name.clone(), threads, batch, rounds: Vec::new() });
            }
        }
    }
    let backbone = |name: &str| backbones.iter().find(|(n, _)| n == name).map(|(_, b)| b);
    let pool = |threads: usize| pools.iter().find(|(n, _)| *n == threads).map(|(_, p)| p);
    let embed = |s: &Setting| -> Result<()> {
        let (Some(b), Some(p)) = (backbone(&s.backend), pool(s.threads)) else {
            return Err(Error::InvalidArgument("internal: unknown setting".into()));
        };
        let inputs: Vec<&[f32]> = (0..s.batch).map(|_| input.as_slice()).collect();
        p.install(|| pollster::block_on(b.embed(&inputs))).map(|_| ())
    };
    // Warm-up: first-use allocations, caches, the thread pools' threads.
    for s in &settings {
        embed(s)?;
        embed(s)?;
    }
    for _ in 0..rounds {
        for s in settings.iter_mut() {
            let (t, c) = (Instant::now(), cpu_seconds());
            let mut images = 0;
            while images == 0 || t.elapsed().as_secs_f64() < args.min_time {
                embed(s)?;
                images += s.batch;
            }
            let secs = t.elapsed().as_secs_f64();
            let cpu = match (c, cpu_seconds()) {
                (Some(a), Some(b)) => (b - a) / images as f64,
                _ => f64::NAN,
            };
            s.rounds.push((images as f64 / secs, cpu));
        }
    }

    let describe = |name: &str, b: &Backbone| match b.kernels() {
        Some(isa) => format!("{name}: CPU kernels ({})", isa.name()),
        None => format!("{name}: burn model on {:?}", b.device()),
    };
    let extras = if args.embed_only { None } else { Some(pipeline_costs()?) };
    if args.json {
        let embed: Vec<_> = settings
            .iter()
            .map(|s| {
                json!({
                    "backend": s.backend,
                    "threads": s.threads,
                    "batch": s.batch,
                    "images_per_s": s.median(|r| r.0),
                    "ms_per_image": 1e3 / s.median(|r| r.0),
                    "cpu_ms_per_image": s.median(|r| r.1) * 1e3,
                    "rounds_images_per_s": s.rounds.iter().map(|r| r.0).collect::<Vec<_>>(),
                })
            })
            .collect();
        let mut out = json!({
            "backends": backbones.iter().map(|(n, b)| describe(n, b)).collect::<Vec<_>>(),
            "weights_load_ms": load_ms,
            "weights_bytes": BUNDLED_WEIGHTS.len(),
            "threads_all": all,
            "rounds": rounds,
            "embed": embed,
        });
        if let Some((prep_ms, train_s)) = extras {
            out["preprocess_ms_1024x768"] = json!(prep_ms);
            out["train_50_epochs_5000_embeddings_s"] = json!(train_s);
        }
        println!("{out}");
    } else {
        for (n, b) in &backbones {
            println!("backend   {}", describe(n, b));
        }
        println!("weights   {:.1} MB, loaded in {load_ms:.0} ms", BUNDLED_WEIGHTS.len() as f64 / 1e6);
        println!("embedding 224×224, medians of {rounds} interleaved rounds of ≥ {:.1} s", args.min_time);
        println!("backend  threads  batch   images/s   ms/image   CPU ms/image");
        for s in &settings {
            let ips = s.median(|r| r.0);
            println!(
                "{:<8} {:>7}  {:>5}   {ips:8.1}   {:8.2}   {:12.2}",
                s.backend,
                s.threads,
                s.batch,
                1e3 / ips,
                s.median(|r| r.1) * 1e3
            );
        }
        if let Some((prep_ms, train_s)) = extras {
            println!("preprocess {prep_ms:.1} ms per 1024×768 image (crop + bicubic resize + normalise)");
            println!("train head {train_s:.2} s for 50 epochs on 5,000 embeddings (linear, batch 32, 20 % validation)");
        }
    }
    Ok(true)
}

/// What the pipeline costs apart from the network: (ms to preprocess a 1024×768 photo, seconds
/// to train a linear head 50 epochs on 5,000 embeddings).
fn pipeline_costs() -> Result<(f64, f64)> {
    let photo = image::RgbImage::from_fn(1024, 768, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8]));
    let t = Instant::now();
    for _ in 0..10 {
        preprocess::preprocess_eval(&photo, Crop::Center, 224)?;
    }
    let prep_ms = t.elapsed().as_secs_f64() * 100.0;

    // Two overlapping clusters, no early stopping — what "re-training is instant" has to mean.
    let mut store = headtune::store::Store::new(FeatureSpec::v1());
    for i in 0..5000 {
        let class = i % 2;
        let e: Vec<f32> = (0..store.dim())
            .map(|j| (((i * 31 + j * 17) % 101) as f32 / 101.0) + if j % 7 == class { 0.3 } else { 0.0 })
            .collect();
        store.add(["a", "b"][class], "synthetic", vec![e])?;
    }
    let config = TrainConfig { epochs: 50, patience: 0, ..TrainConfig::default() };
    let t = Instant::now();
    pollster::block_on(headtune::train::train(&store, &config, &Device::flex(), &mut |_| {}, &|| false))?;
    Ok((prep_ms, t.elapsed().as_secs_f64()))
}
