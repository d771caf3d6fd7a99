//! The `headtune` binary: JSON lines, per-file errors, exit codes.

mod common;

use std::process::Command;

use common::*;

fn headtune(args: &[&str]) -> (i32, Vec<serde_json::Value>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_headtune")).args(args).output().expect("runs");
    let stdout = String::from_utf8(out.stdout).expect("utf8");
    let lines = stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect();
    (out.status.code().unwrap_or(-1), lines, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn imagenet_json_reports_bad_file_and_keeps_going() {
    let dir = std::env::temp_dir().join(format!("headtune-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let bad = dir.join("broken.png");
    std::fs::write(&bad, b"not really a png").expect("write");
    let chelsea = fixture("chelsea.png");
    let (code, lines, _) = headtune(&["imagenet", "--json", "--top", "3", bad.to_str().unwrap(), chelsea.to_str().unwrap()]);
    assert_eq!(code, 1, "some files failed → exit 1");
    assert_eq!(lines.len(), 2);
    assert!(lines[0]["error"].as_str().expect("error").contains("unsupported"), "{}", lines[0]);
    assert_eq!(lines[1]["top"].as_array().expect("top").len(), 3);
    let label = lines[1]["top"][0]["label"].as_str().expect("label");
    assert!(["tiger cat", "Egyptian cat", "tabby"].contains(&label), "{label}");
    let p = lines[1]["top"][0]["probability"].as_f64().expect("p");
    assert!(p > 0.2 && p < 1.0);
}

#[test]
fn embed_tensor_matches_reference() {
    let x = fixture("chelsea.input.npy");
    let (code, lines, err) = headtune(&["embed", "--json", "--tensor", x.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let e: Vec<f32> = lines[0]["embedding"].as_array().expect("embedding").iter().map(|v| v.as_f64().unwrap() as f32).collect();
    assert_eq!(e.len(), 1280);
    assert!(cosine(&e, &npy("chelsea.pooled.npy")) > 0.999);
}

#[test]
fn embed_folder_and_text_mode_errors_on_stderr() {
    let dir = std::env::temp_dir().join(format!("headtune-cli-dir-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    std::fs::copy(fixture("coffee.png"), dir.join("a.png")).expect("copy");
    std::fs::write(dir.join("b.jpg"), b"").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_headtune")).args(["embed"]).arg(&dir).output().expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stdout.lines().count(), 1);
    assert_eq!(stdout.split('\t').nth(1).expect("values").split(' ').count(), 1280);
    assert!(stderr.contains("b.jpg: the file is empty"), "{stderr}");
}

#[test]
fn missing_file_is_an_io_error() {
    let (code, lines, _) = headtune(&["embed", "--json", "/nonexistent/x.png"]);
    assert_eq!(code, 1);
    assert!(lines[0]["error"].as_str().unwrap().contains("cannot read /nonexistent/x.png"));
}
