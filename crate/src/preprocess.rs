//! Preprocessing: upright RGB pixels → the `3 × S × S` `f32` input the backbone expects.
//!
//! Three ways to frame the image ([`Crop`]), and a rule that picks one per image:
//! - `center`: the evaluation convention of the weights (BACKBONE.md) — centre square of side
//!   `floor(S / (S + 32) · min(h, w))` (87.5 % at 224), the way ImageNet photos were seen in
//!   training. It cuts the edges: fine for photos, harmful where the edges matter (the lung
//!   borders of a chest X-ray).
//! - `full`: the whole image resized to the square (the aspect ratio is not kept).
//! - `pad`: the whole image resized to fit, aspect kept, letterboxed with mid-grey (127, which
//!   normalises to 0 — the value the network's own zero padding stands for).
//! - `auto` (the default): `full` for grey-scale images (X-rays, CT and MRI slices: their edges
//!   carry the diagnosis), `center` for colour ones (photos, stained cells). Measured: the full
//!   image gains 4–5.5 points of accuracy on chest X-rays, the crop 1–2 on colour photos
//!   (README, Transfer). Decided once per dataset, before anything is embedded
//!   ([`crate::features::FeatureSpec::resolve_auto`]: the majority of a sample), so one dataset is
//!   framed one way and the model file records the concrete choice; a lone image (or an
//!   unresolved spec) is decided by [`Crop::resolve`].
//!
//! Resizing is bicubic with antialiasing (Pillow's `BICUBIC`): `fast_image_resize`'s Catmull-Rom
//! convolution is the same filter (Keys cubic, a = −0.5, support widened when downscaling). Then
//! `x = (v − 127) / 128`, RGB, channels first.
//!
//! Augmented views for training reuse the same path with a smaller box inside the evaluation box,
//! a mirror flip and a brightness/contrast change, so a view differs from the evaluation input
//! only in what was asked for.

use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::image::Rgb;

/// Value of the letterbox bars: mid-grey, 0 after normalisation.
const PAD_VALUE: u8 = 127;
/// The TF EfficientNet evaluation crop: side = S / (S + 32) · min(h, w).
const CROP_PADDING: u64 = 32;

/// How the image is framed into the square network input (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Crop {
    /// Centre square, 87.5 % of the short side at 224 (the weights' ImageNet convention).
    #[default]
    Center,
    /// The whole image, stretched to the square.
    Full,
    /// The whole image, aspect kept, letterboxed with mid-grey.
    Pad,
    /// `full` for grey-scale images, `center` for colour ones: decided per dataset
    /// ([`crate::features::FeatureSpec::resolve_auto`]), or per image by [`Crop::resolve`].
    Auto,
}

impl Crop {
    /// Every mode.
    pub const ALL: [Self; 4] = [Self::Center, Self::Full, Self::Pad, Self::Auto];

    /// The name used on the command line, in the JS API and in files.
    pub fn name(self) -> &'static str {
        match self {
            Self::Center => "center",
            Self::Full => "full",
            Self::Pad => "pad",
            Self::Auto => "auto",
        }
    }

    /// The framing this image gets: `auto` becomes `full` for a grey-scale image and `center`
    /// otherwise; the other modes are themselves.
    pub fn resolve(self, img: &Rgb) -> Self {
        match self {
            Self::Auto if is_greyscale(img) => Self::Full,
            Self::Auto => Self::Center,
            other => other,
        }
    }
}

/// Whether an image is grey-scale: fewer than 1 % of (up to ~4096 sampled) pixels have channels
/// more than 12 levels apart. The tolerance absorbs the chroma noise of grey images saved as
/// colour JPEGs; a stained slide or a photo has far more coloured pixels than that. (On the
/// shared datasets: 244 of 253 brain MRIs are grey by this rule — the others are tinted or
/// annotated, hence the per-dataset majority —, 0 of 351 blood-cell micrographs, 1 of 200
/// ImageNet photos.)
pub fn is_greyscale(img: &Rgb) -> bool {
    let (w, h) = img.dimensions();
    let n = u64::from(w) * u64::from(h);
    if n == 0 {
        return true;
    }
    let step = (n / 4096).max(1);
    let (mut seen, mut coloured) = (0u64, 0u64);
    let mut i = 0u64;
    while i < n {
        // i < w·h, so both coordinates fit in u32.
        let p = img.get_pixel((i % u64::from(w)) as u32, (i / u64::from(w)) as u32).0;
        let spread = p.iter().max().copied().unwrap_or(0) - p.iter().min().copied().unwrap_or(0);
        seen += 1;
        coloured += u64::from(spread > 12);
        i += step;
    }
    coloured * 100 < seen
}

impl std::str::FromStr for Crop {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::ALL.into_iter().find(|c| c.name() == s).ok_or_else(|| {
            Error::InvalidArgument(format!("crop is {:?}; use \"auto\", \"center\", \"full\" or \"pad\"", s.chars().take(40).collect::<String>()))
        })
    }
}

impl std::fmt::Display for Crop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A rectangle in source pixels (fractional for augmented views). For [`Crop::Pad`] heatmaps it
/// may extend beyond the image: it is then the area the letterboxed input covers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CropBox {
    /// Left edge.
    pub x: f64,
    /// Top edge.
    pub y: f64,
    /// Width.
    pub width: f64,
    /// Height.
    pub height: f64,
}

impl CropBox {
    /// The evaluation crop of the weights at input side `size`: centred square of side
    /// `floor(size / (size + 32) · min(h, w))` (224/256 at 224), offset `((h − c + 1) / 2,
    /// (w − c + 1) / 2)` with integer division, exactly as the reference.
    pub fn centre(width: u32, height: u32, size: usize) -> Self {
        let min = u64::from(width.min(height));
        let size = size as u64;
        // Integer arithmetic: no float rounding surprises at the boundary.
        let c = ((size * min) / (size + CROP_PADDING)).clamp(1, min.max(1)) as u32;
        let x = (width.saturating_sub(c) + 1) / 2;
        let y = (height.saturating_sub(c) + 1) / 2;
        Self { x: f64::from(x), y: f64::from(y), width: f64::from(c), height: f64::from(c) }
    }

    /// The whole image.
    pub fn whole(width: u32, height: u32) -> Self {
        Self { x: 0.0, y: 0.0, width: f64::from(width), height: f64::from(height) }
    }

    fn is_integral(&self) -> bool {
        [self.x, self.y, self.width, self.height].iter().all(|v| v.fract() == 0.0)
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
    /// The region of the source image the input shows.
    pub crop: CropBox,
    /// Keep the region's aspect ratio and letterbox it (otherwise it is stretched to the square).
    pub letterbox: bool,
    /// Mirror left-right.
    pub flip: bool,
    /// Brightness/contrast change, if any.
    pub jitter: Option<Jitter>,
}

impl View {
    /// The evaluation view of an image of this size, framed by `crop` for input side `size`.
    /// `auto` needs the pixels: resolve it first ([`Crop::resolve`]); unresolved it frames like
    /// `center`.
    pub fn eval(width: u32, height: u32, crop: Crop, size: usize) -> Self {
        let (crop, letterbox) = match crop {
            Crop::Center | Crop::Auto => (CropBox::centre(width, height, size), false),
            Crop::Full => (CropBox::whole(width, height), false),
            Crop::Pad => (CropBox::whole(width, height), true),
        };
        Self { crop, letterbox, flip: false, jitter: None }
    }

    /// Where the region's pixels land in the `size × size` input: `(x, y, width, height)`.
    /// The whole square unless letterboxed; then centred, the long side filling the square.
    pub fn placement(&self, size: usize) -> (u32, u32, u32, u32) {
        let s = size as u32;
        if !self.letterbox || self.crop.width == self.crop.height {
            return (0, 0, s, s);
        }
        let short = |long: f64, short: f64| ((short / long * size as f64).round() as u32).clamp(1, s);
        let (w, h) = if self.crop.width > self.crop.height {
            (s, short(self.crop.width, self.crop.height))
        } else {
            (short(self.crop.height, self.crop.width), s)
        };
        ((s - w) / 2, (s - h) / 2, w, h)
    }

    /// The area of the source image the whole input covers, in source pixels: the crop box, or
    /// for a letterboxed view the box grown by the bars (then partly outside the image). This is
    /// what a heatmap over the input is drawn onto.
    pub fn input_region(&self, size: usize) -> CropBox {
        let (px, py, pw, ph) = self.placement(size);
        let sx = self.crop.width / f64::from(pw);
        let sy = self.crop.height / f64::from(ph);
        CropBox {
            x: self.crop.x - f64::from(px) * sx,
            y: self.crop.y - f64::from(py) * sy,
            width: size as f64 * sx,
            height: size as f64 * sy,
        }
    }
}

/// The `size × size` RGB input as pixels (no normalisation): the crop box resized into its
/// placement, flipped and jittered as the view asks, letterbox bars mid-grey. What the network
/// sees.
///
/// # Errors
/// [`Error::InvalidArgument`] when the crop box lies outside the image or the size is 0.
pub fn render(img: &Rgb, view: &View, size: usize) -> Result<RgbImage> {
    let (w, h) = img.dimensions();
    let crop = view.crop;
    if size == 0 || size > 4096 || crop.width <= 0.0 || crop.height <= 0.0 || crop.x < 0.0 || crop.y < 0.0
        || crop.x + crop.width > f64::from(w) + 1e-6
        || crop.y + crop.height > f64::from(h) + 1e-6
    {
        return Err(Error::InvalidArgument(format!("crop box {crop:?} lies outside the {w}×{h} image")));
    }
    let (px, py, pw, ph) = view.placement(size);
    let mut content = RgbImage::new(pw, ph);
    let alg = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::CatmullRom));
    let result = if crop.is_integral() {
        // Cut the crop out first, as the reference does (Pillow `crop` then `resize`): a crop
        // window resize would let the filter read pixels beyond the crop edge.
        let cut = image::imageops::crop_imm(img, crop.x as u32, crop.y as u32, crop.width as u32, crop.height as u32).to_image();
        Resizer::new().resize(&cut, &mut content, &alg)
    } else {
        Resizer::new().resize(img, &mut content, &alg.crop(crop.x, crop.y, crop.width, crop.height))
    };
    result.map_err(|e| Error::InvalidArgument(format!("resize failed: {e}")))?;
    if view.flip {
        image::imageops::flip_horizontal_in_place(&mut content);
    }
    if let Some(j) = view.jitter {
        jitter(&mut content, j);
    }
    if (pw, ph) == (size as u32, size as u32) {
        return Ok(content);
    }
    let mut canvas = RgbImage::from_pixel(size as u32, size as u32, image::Rgb([PAD_VALUE; 3]));
    image::imageops::replace(&mut canvas, &content, i64::from(px), i64::from(py));
    Ok(canvas)
}

/// Brightness/contrast change in place, rounded and clamped like a real 8-bit photo would be.
fn jitter(img: &mut RgbImage, j: Jitter) {
    let raw: &mut [u8] = img;
    let mean = raw.iter().map(|&v| f32::from(v)).sum::<f32>() / raw.len().max(1) as f32;
    let gain = 1.0 + j.contrast;
    // v' = mean + gain·(v − mean) + 255·brightness
    let offset = mean * (1.0 - gain) + 255.0 * j.brightness;
    for v in raw.iter_mut() {
        *v = (f32::from(*v) * gain + offset).round().clamp(0.0, 255.0) as u8;
    }
}

/// Preprocess one image for the backbone: `[3, size, size]` values, channels first.
///
/// # Errors
/// As [`render`].
pub fn preprocess(img: &Rgb, view: &View, size: usize) -> Result<Vec<f32>> {
    Ok(normalise(&render(img, view, size)?))
}

/// The evaluation input of an image framed by `crop` at input side `size`.
///
/// # Errors
/// As [`render`].
pub fn preprocess_eval(img: &Rgb, crop: Crop, size: usize) -> Result<Vec<f32>> {
    let (w, h) = img.dimensions();
    preprocess(img, &View::eval(w, h, crop.resolve(img), size), size)
}

/// Square RGB pixels → `(v − 127) / 128`, channels first.
pub fn normalise(small: &RgbImage) -> Vec<f32> {
    let (w, h) = small.dimensions();
    let n = (w * h) as usize;
    let mut out = vec![0f32; 3 * n];
    for (o, p) in small.pixels().enumerate() {
        for c in 0..3 {
            out[c * n + o] = (f32::from(p.0[c]) - 127.0) / 128.0;
        }
    }
    out
}
