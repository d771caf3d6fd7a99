//! # headtune
//!
//! Train a small classifier head on your own images on top of a frozen, ImageNet-pretrained
//! EfficientNet-Lite (0, 1 or 2) — natively (the `headtune` CLI) or in the browser (WebGPU or
//! CPU wasm).
//!
//! The data path, one module per stage, each knowing nothing of the stages after it:
//! [`image`] (decode) → [`preprocess`] (crop, resize, normalise) → [`backbone`] (frozen CNN) →
//! [`features`] (the spec of an embedding; pooling) → [`store`] (embeddings of images and
//! augmented views) → [`head`] + [`train`] →
//! [`metrics`] → [`predict`] (top-K + heatmap) → [`project`] (model/project files; [`parts`]: a project
//! stored piecemeal) →
//! `web` (the wasm boundary, the only `#[wasm_bindgen]` code).

pub mod backbone;
pub mod cpu;
pub mod error;
pub mod features;
pub mod head;
pub mod image;
pub mod imagenet;
pub mod metrics;
pub mod predict;
pub mod preprocess;
pub mod parts;
pub mod project;
pub mod store;
pub mod thumbnail;
pub mod train;
#[cfg(target_family = "wasm")]
pub mod web;

pub use error::{Error, Result};
