//! `headtune` — the native command line: check the backbone, embed images, benchmark, and (with
//! a trained head) train, evaluate and predict over folders of images.
//!
//! Every command that takes many files keeps going when one fails: the failure is reported for
//! that file (`{"file":..,"error":..}` with `--json`, stderr otherwise) and the exit code is 1.

#[cfg(target_family = "wasm")]
fn main() {}

#[cfg(not(target_family = "wasm"))]
mod cli;

#[cfg(not(target_family = "wasm"))]
fn main() -> std::process::ExitCode {
    cli::main()
}
