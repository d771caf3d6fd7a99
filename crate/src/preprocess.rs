//! Preprocessing: upright RGB pixels → the 3×224×224 `f32` input the backbone expects.
//!
//! The evaluation convention of the weights (BACKBONE.md): centre square crop of side
//! `floor(224/256 · min(h, w))`, bicubic resize to 224 with antialiasing (Pillow's `BICUBIC`),
//! `x = (v − 127) / 128`, RGB, channels first. `fast_image_resize`'s Catmull-Rom convolution is
//! the same filter (Keys cubic, a = −0.5, support widened when downscaling) as Pillow's.
//!
//! Augmented views for training reuse the same path with a different crop box, a mirror flip and
//! a brightness/contrast change, so a view differs from the evaluation input only in what was
//! asked for.

use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::image::Rgb;

/// Side of the square network input.
pub const INPUT_SIZE: usize = 224;
/// Values per preprocessed image (3 × 224 × 224).
pub const INPUT_LEN: usize = 3 * INPUT_SIZE * INPUT_SIZE;

/// A square region of the source image, in source pixels (fractional for augmented crops).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CropBox {
    /// Left edge.
    pub x: f64,
    /// Top edge.
    pub y: f64,
    /// Side length.
    pub side: f64,
}

impl CropBox {
    /// The evaluation crop: centred square of side `floor(224/256 · min(h, w))`, offset
    /// `((h − c + 1) / 2, (w − c + 1) / 2)` with integer division, exactly as the reference.
    pub fn centre(width: u32, height: u32) -> Self {
        let min = width.min(height) as u64;
        // Integer arithmetic: 224·min/256 floored, with no float rounding surprises.
        let c = ((224 * min) / 256).max(1) as u32;
        let x = (width - c + 1) / 2;
        let y = (height - c + 1) / 2;
        Self { x: x as f64, y: y as f64, side: c as f64 }
    }
}

/// Photometric change applied after resizing (for augmented views).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Jitter {
    /// Added to every 0..255 sample, as a fraction of 255 (e.g. 0.1 → +25.5).
    pub brightness: f32,
    /// Multiplies the distance of every sample from the image mean (0 → unchanged, 0.2 → ×1.2).
    pub contrast: f32,
}

/// How to turn one image into one network input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct View {
    /// The region to resize to 224×224.
    pub crop: CropBox,
    /// Mirror left-right.
    pub flip: bool,
    /// Brightness/contrast change, if any.
    pub jitter: Option<Jitter>,
}

impl View {
    /// The evaluation view of an image of this size.
    pub fn eval(width: u32, height: u32) -> Self {
        Self { crop: CropBox::centre(width, height), flip: false, jitter: None }
    }
}

/// Crop + resize an image to 224×224 RGB (no normalisation): what the network sees, as pixels.
///
/// # Errors
/// [`Error::InvalidArgument`] when the crop box lies outside the image.
pub fn resize_view(img: &Rgb, crop: CropBox) -> Result<RgbImage> {
    let (w, h) = img.dimensions();
    if crop.side <= 0.0 || crop.x < 0.0 || crop.y < 0.0
        || crop.x + crop.side > w as f64 + 1e-6
        || crop.y + crop.side > h as f64 + 1e-6
    {
        return Err(Error::InvalidArgument(format!(
            "crop box {crop:?} lies outside the {w}×{h} image"
        )));
    }
    let mut dst = RgbImage::new(INPUT_SIZE as u32, INPUT_SIZE as u32);
    let alg = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::CatmullRom));
    let integral = [crop.x, crop.y, crop.side].iter().all(|v| v.fract() == 0.0);
    let result = if integral {
        // Cut the crop out first, as the reference does (Pillow `crop` then `resize`): a crop
        // window resize would let the filter read pixels beyond the crop edge.
        let cut = image::imageops::crop_imm(img, crop.x as u32, crop.y as u32, crop.side as u32, crop.side as u32).to_image();
        Resizer::new().resize(&cut, &mut dst, &alg)
    } else {
        Resizer::new().resize(img, &mut dst, &alg.crop(crop.x, crop.y, crop.side, crop.side))
    };
    result.map_err(|e| Error::InvalidArgument(format!("resize failed: {e}")))?;
    Ok(dst)
}

/// Preprocess one image for the backbone: `[3, 224, 224]` values, channels first.
///
/// # Errors
/// As [`resize_view`].
pub fn preprocess(img: &Rgb, view: &View) -> Result<Vec<f32>> {
    let small = resize_view(img, view.crop)?;
    Ok(normalise(&small, view.flip, view.jitter))
}

/// The evaluation input of an image: [`preprocess`] with [`View::eval`].
///
/// # Errors
/// As [`resize_view`].
pub fn preprocess_eval(img: &Rgb) -> Result<Vec<f32>> {
    let (w, h) = img.dimensions();
    preprocess(img, &View::eval(w, h))
}

/// 224×224 RGB pixels → `(v − 127) / 128`, channels first, with optional flip and jitter.
pub fn normalise(small: &RgbImage, flip: bool, jitter: Option<Jitter>) -> Vec<f32> {
    let n = INPUT_SIZE * INPUT_SIZE;
    let mut out = vec![0f32; INPUT_LEN];
    let raw = small.as_raw();
    let (gain, offset) = match jitter {
        Some(j) => {
            let mean = raw.iter().map(|&v| v as f32).sum::<f32>() / raw.len().max(1) as f32;
            let gain = 1.0 + j.contrast;
            // v' = mean + gain·(v − mean) + 255·brightness
            (gain, mean * (1.0 - gain) + 255.0 * j.brightness)
        }
        None => (1.0, 0.0),
    };
    for y in 0..INPUT_SIZE {
        for x in 0..INPUT_SIZE {
            let sx = if flip { INPUT_SIZE - 1 - x } else { x };
            let p = (y * INPUT_SIZE + sx) * 3;
            let o = y * INPUT_SIZE + x;
            for c in 0..3 {
                let mut v = raw[p + c] as f32;
                if jitter.is_some() {
                    // Round and clamp like a real 8-bit photo would be.
                    v = (v * gain + offset).round().clamp(0.0, 255.0);
                }
                out[c * n + o] = (v - 127.0) / 128.0;
            }
        }
    }
    out
}
