//! The one error type of headtune. Every message says what went wrong with the user's input and,
//! where there is one, what to do about it; the wasm boundary turns these into JS `Error`s.

use thiserror::Error;

/// Everything that can go wrong with data a user hands to headtune.
#[derive(Debug, Error)]
pub enum Error {
    /// The bytes are empty: usually a failed download or a placeholder file.
    #[error("the file is empty (0 bytes)")]
    EmptyFile,

    /// The bytes are not an image format we can decode.
    #[error("unsupported or unrecognised image format{0}: use PNG, JPEG, GIF, BMP, WebP or TIFF")]
    UnsupportedFormat(String),

    /// The image declares dimensions beyond our limits (decompression-bomb guard).
    #[error("image is {width}×{height} pixels; the limit is {max_side} on a side and {max_megapixels} megapixels — downscale it first")]
    TooLarge {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// Largest accepted side.
        max_side: u32,
        /// Largest accepted pixel count, in millions.
        max_megapixels: u32,
    },

    /// The image has a zero dimension.
    #[error("image has no pixels ({width}×{height})")]
    NoPixels {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
    },

    /// The file starts like an image but its data is broken (truncated download, disk error).
    #[error("image data is corrupt or truncated: {0}")]
    Corrupt(String),

    /// Reading a file from disk failed (CLI only).
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path that failed.
        path: String,
        /// The underlying OS error.
        source: std::io::Error,
    },

    /// The backbone weights are missing, malformed or do not match the architecture.
    #[error("backbone weights are invalid: {0}")]
    Weights(String),

    /// A tensor handed in directly (e.g. a `.npy` file) has the wrong shape or type.
    #[error("input tensor is invalid: {0}")]
    Tensor(String),

    /// An argument or setting is outside what is supported.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// A dataset, class or example cannot be used as asked.
    #[error("{0}")]
    Data(String),

    /// A model or project file is corrupt, truncated, from another program or a newer version.
    #[error("model file is invalid: {0}")]
    ModelFile(String),

    /// Work was cancelled by the caller.
    #[error("cancelled")]
    Cancelled,

    /// The compute backend failed (e.g. GPU device lost) — the work can be retried on the CPU.
    #[error("compute backend failed: {0}")]
    Backend(String),
}

/// Short alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
