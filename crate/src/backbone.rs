//! The frozen feature extractor: EfficientNet-Lite0/1/2, loaded from headtune's compact
//! safetensors weights (see `models/README.md` for the format and `BACKBONE.md` for the facts).
//!
//! One description ([`Arch`]) and one set of plain weights ([`NetWeights`]) feed two
//! implementations of the forward pass: the burn model below (the definition, and what runs on
//! WebGPU) and the dedicated CPU kernels of [`crate::cpu`] (what runs on the CPU, natively and in
//! wasm). [`Backbone`] picks one by device; tests hold them to each other.
//!
//! BatchNorm is folded into the convolutions at conversion time, so every layer here is a
//! convolution with bias. Padding is TensorFlow "SAME" — burn's [`PaddingConfig2d::Same`]
//! computes exactly TF's asymmetric split (before = total / 2, after = the rest) for the
//! actual input size; symmetric padding would move the embedding by up to 1.6. The network runs
//! at any input size: the input side is read from the inputs themselves.

use burn::module::{Module, Param};
use burn::nn::conv::Conv2d;
use burn::nn::{Linear, PaddingConfig2d};
use burn::tensor::activation::relu6;
use burn::tensor::{Device, Tensor, TensorData};
use half::f16;
use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};

use std::sync::Mutex;

use crate::cpu::{CpuNet, Isa, Workspace};
use crate::error::{Error, Result};

/// Number of ImageNet classes of the bundled classifiers.
pub const IMAGENET_CLASSES: usize = 1000;
/// Format tag of Lite0 files written before the architecture went into the metadata; such a
/// file means [`Arch::lite0`].
const WEIGHTS_FORMAT_V1: &str = "headtune-efficientnet-lite0/1";
/// Format tag the converter writes now: the architecture is in the `arch` metadata entry.
const WEIGHTS_FORMAT: &str = "headtune-efficientnet-lite/2";

/// The backbones headtune knows: their names on the command line and in the JS API, and the
/// architecture each one's weights must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackboneKind {
    /// EfficientNet-Lite0, 224 px, 4.65 M parameters: the default, the fastest.
    Lite0,
    /// EfficientNet-Lite1, 240 px, 5.42 M parameters.
    Lite1,
    /// EfficientNet-Lite2, 260 px, 6.09 M parameters.
    Lite2,
}

impl BackboneKind {
    /// Every known backbone, smallest first.
    pub const ALL: [Self; 3] = [Self::Lite0, Self::Lite1, Self::Lite2];

    /// Short name (`"lite0"`): what `--backbone` and `backbone:` take.
    pub fn name(self) -> &'static str {
        match self {
            Self::Lite0 => "lite0",
            Self::Lite1 => "lite1",
            Self::Lite2 => "lite2",
        }
    }

    /// The identifier written into weights, model and project files.
    pub fn id(self) -> &'static str {
        match self {
            Self::Lite0 => "efficientnet-lite0/imagenet/tf-same/v1",
            Self::Lite1 => "efficientnet-lite1/imagenet/tf-same/v1",
            Self::Lite2 => "efficientnet-lite2/imagenet/tf-same/v1",
        }
    }

    /// File name of the compact weights in `models/` (and next to the browser package).
    pub fn weights_file(self) -> &'static str {
        match self {
            Self::Lite0 => "efficientnet_lite0.safetensors",
            Self::Lite1 => "efficientnet_lite1.safetensors",
            Self::Lite2 => "efficientnet_lite2.safetensors",
        }
    }

    /// The architecture its weights must have.
    pub fn arch(self) -> Arch {
        match self {
            Self::Lite0 => Arch::lite0(),
            Self::Lite1 => Arch::lite1(),
            Self::Lite2 => Arch::lite2(),
        }
    }

    /// The backbone with this short name or full identifier.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the known backbones.
    pub fn parse(s: &str) -> Result<Self> {
        Self::ALL.into_iter().find(|k| k.name() == s || k.id() == s).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "backbone is {:?}; use {}",
                truncate(s, 60),
                Self::ALL.map(|k| format!("\"{}\"", k.name())).join(", ")
            ))
        })
    }

    /// The compact weights compiled into native builds.
    #[cfg(not(target_family = "wasm"))]
    pub fn bundled_weights(self) -> &'static [u8] {
        match self {
            Self::Lite0 => BUNDLED_WEIGHTS,
            Self::Lite1 => include_bytes!("../../models/efficientnet_lite1.safetensors"),
            Self::Lite2 => include_bytes!("../../models/efficientnet_lite2.safetensors"),
        }
    }
}

impl std::str::FromStr for BackboneKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl std::fmt::Display for BackboneKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// At most `n` characters of `s` (untrusted strings are never echoed whole).
pub(crate) fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

/// One stage of inverted-residual blocks: `repeats` blocks, the first with `stride` and
/// `cin → cout`, the rest stride 1 and `cout → cout`. No squeeze-excite in the Lite family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    /// Blocks in the stage.
    pub repeats: usize,
    /// Depthwise kernel side.
    pub kernel: usize,
    /// Stride of the first block.
    pub stride: usize,
    /// Expansion ratio of the hidden width (1 = no expand conv).
    pub expand: usize,
    /// Input channels of the first block.
    pub cin: usize,
    /// Output channels of every block.
    pub cout: usize,
}

/// One inverted-residual block, as the forward pass needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockSpec {
    /// Position among all blocks (the weights are named `blocks.{index}.*`).
    pub index: usize,
    /// Stage the block belongs to (0-based).
    pub stage: usize,
    /// Depthwise kernel side.
    pub kernel: usize,
    /// Depthwise stride.
    pub stride: usize,
    /// Input channels.
    pub cin: usize,
    /// Hidden (expanded) channels; equal to `cin` when there is no expand conv.
    pub mid: usize,
    /// Output channels.
    pub cout: usize,
    /// Whether a 1×1 expand conv comes first.
    pub has_expand: bool,
    /// Whether the input is added to the output (stride 1 and `cin == cout`).
    pub residual: bool,
}

/// The shape of an EfficientNet-Lite network: everything the forward pass needs apart from the
/// weights. Both the burn model and any other implementation of the forward pass are built from
/// it, so they cannot disagree about the architecture. The converter writes it into the weights
/// file's metadata (camelCase JSON), read back by [`NetWeights::from_safetensors`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Arch {
    /// Identifier written into model files so a head is only ever used with its own backbone.
    pub id: String,
    /// Side of the square input the weights were trained at.
    pub input_size: usize,
    /// Output channels of the 3×3 stride-2 stem.
    pub stem: usize,
    /// The stages, in order.
    pub stages: Vec<Stage>,
    /// Output channels of the 1×1 head conv: the embedding width.
    pub head: usize,
    /// Outputs of the ImageNet classifier.
    pub classes: usize,
}

impl Arch {
    /// EfficientNet-Lite0 (BACKBONE.md): 224 px, 16 blocks, 4.65 M parameters.
    pub fn lite0() -> Self {
        Self::lite(BackboneKind::Lite0, 224, [1, 2, 2, 3, 3, 4, 1], [16, 24, 40, 80, 112, 192, 320])
    }

    /// EfficientNet-Lite1: 240 px, 21 blocks, 5.42 M parameters.
    pub fn lite1() -> Self {
        Self::lite(BackboneKind::Lite1, 240, [1, 3, 3, 4, 4, 5, 1], [16, 24, 40, 80, 112, 192, 320])
    }

    /// EfficientNet-Lite2: 260 px, 21 blocks, 6.09 M parameters.
    pub fn lite2() -> Self {
        Self::lite(BackboneKind::Lite2, 260, [1, 3, 3, 4, 4, 5, 1], [16, 24, 48, 88, 120, 208, 352])
    }

    /// The Lite family: stem 32 and head 1280 whatever the scale, kernels 3 3 5 3 5 5 3, strides
    /// 1 2 2 2 1 2 1, expansion 6 except in the first stage. Only repeats and widths differ.
    fn lite(kind: BackboneKind, input_size: usize, repeats: [usize; 7], widths: [usize; 7]) -> Self {
        const KERNELS: [usize; 7] = [3, 3, 5, 3, 5, 5, 3];
        const STRIDES: [usize; 7] = [1, 2, 2, 2, 1, 2, 1];
        let stem = 32;
        let stages = (0..7)
            .map(|i| Stage {
                repeats: repeats[i],
                kernel: KERNELS[i],
                stride: STRIDES[i],
                expand: if i == 0 { 1 } else { 6 },
                cin: if i == 0 { stem } else { widths[i - 1] },
                cout: widths[i],
            })
            .collect();
        Self { id: kind.id().into(), input_size, stem, stages, head: 1280, classes: IMAGENET_CLASSES }
    }

    /// Check that the description is a network this code can run (a weights file is untrusted
    /// input: the page may be handed any file).
    ///
    /// # Errors
    /// [`Error::Weights`] naming the inconsistency.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Weights(format!("architecture in the metadata: {m}")));
        let plausible = |v: usize| (1..=4096).contains(&v);
        if self.stages.is_empty() || self.stages.len() > 16 {
            return bad(format!("{} stages", self.stages.len()));
        }
        if !plausible(self.stem) || !plausible(self.head) || !plausible(self.classes) || !(32..=1024).contains(&self.input_size) {
            return bad("stem, head, classes or input size out of range".into());
        }
        let mut width = self.stem;
        for (i, s) in self.stages.iter().enumerate() {
            if s.cin != width || !plausible(s.cout) || !(1..=16).contains(&s.repeats) || !matches!(s.kernel, 1 | 3 | 5 | 7)
                || !matches!(s.stride, 1 | 2) || !(1..=8).contains(&s.expand)
            {
                return bad(format!("stage {i} is inconsistent ({s:?})"));
            }
            width = s.cout;
        }
        Ok(())
    }

    /// Side of the head conv's feature map for an input of side `input` (every stride-2 layer
    /// halves it, rounding up, as TF "SAME" does): 7 at 224, 8 at 240, 9 at 260.
    pub fn map_size(&self, input: usize) -> usize {
        let halvings = 1 + self.stages.iter().filter(|s| s.stride == 2).count();
        (0..halvings).fold(input, |n, _| n.div_ceil(2))
    }

    /// Every block in forward order.
    pub fn blocks(&self) -> Vec<BlockSpec> {
        let mut out = Vec::new();
        for (stage, s) in self.stages.iter().enumerate() {
            for r in 0..s.repeats {
                let (cin, stride) = if r == 0 { (s.cin, s.stride) } else { (s.cout, 1) };
                out.push(BlockSpec {
                    index: out.len(),
                    stage,
                    kernel: s.kernel,
                    stride,
                    cin,
                    mid: cin * s.expand,
                    cout: s.cout,
                    has_expand: s.expand != 1,
                    residual: stride == 1 && cin == s.cout,
                });
            }
        }
        out
    }

    /// Channels entering the head conv (the last stage's output).
    pub fn head_in(&self) -> usize {
        self.stages.last().map_or(self.stem, |s| s.cout)
    }
}

/// A convolution (BatchNorm folded in) as plain host data.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvWeights {
    /// `[cout, cin / groups, k, k]` (OIHW), dequantised to f32.
    pub weight: Vec<f32>,
    /// `[cout]`.
    pub bias: Vec<f32>,
    /// Input channels.
    pub cin: usize,
    /// Output channels.
    pub cout: usize,
    /// Kernel side.
    pub kernel: usize,
    /// Stride (both directions); padding is always TF "SAME".
    pub stride: usize,
    /// 1 for a dense conv, `cin` for a depthwise one.
    pub groups: usize,
}

/// The weights of one block (see [`BlockSpec`]).
#[derive(Debug, Clone, PartialEq)]
pub struct BlockWeights {
    /// The 1×1 expand conv, followed by ReLU6 (absent in blocks with expand ratio 1).
    pub expand: Option<ConvWeights>,
    /// The depthwise conv, followed by ReLU6.
    pub depthwise: ConvWeights,
    /// The linear 1×1 project conv.
    pub project: ConvWeights,
}

/// Every weight of the network as plain f32 host data, dequantised from the file: the one
/// input from which each implementation of the forward pass is built.
#[derive(Debug, Clone, PartialEq)]
pub struct NetWeights {
    /// The architecture the weights belong to.
    pub arch: Arch,
    /// 3×3 stride-2 stem, followed by ReLU6.
    pub stem: ConvWeights,
    /// One entry per [`Arch::blocks`] item.
    pub blocks: Vec<BlockWeights>,
    /// 1×1 head conv, followed by ReLU6.
    pub head: ConvWeights,
    /// ImageNet classifier, PyTorch layout `[classes, head]`.
    pub fc_weight: Vec<f32>,
    /// `[classes]`.
    pub fc_bias: Vec<f32>,
}

impl NetWeights {
    /// Read compact (or f32) safetensors bytes, e.g. `include_bytes!` natively or bytes fetched
    /// by the page. No file system is needed.
    ///
    /// # Errors
    /// [`Error::Weights`] when a tensor is missing, has the wrong shape or dtype, or the file is
    /// not a headtune backbone file.
    pub fn from_safetensors(bytes: &[u8]) -> Result<Self> {
        let (_, meta) = SafeTensors::read_metadata(bytes)
            .map_err(|e| Error::Weights(format!("not a safetensors file: {e}")))?;
        let entry = |key: &str| meta.metadata().as_ref().and_then(|m| m.get(key).cloned());
        let arch = match entry("format").as_deref() {
            Some(WEIGHTS_FORMAT_V1) => Arch::lite0(),
            Some(WEIGHTS_FORMAT) => {
                let json = entry("arch").ok_or_else(|| Error::Weights("the metadata has no \"arch\" entry; regenerate with models/convert.py".into()))?;
                let arch: Arch = serde_json::from_str(&json)
                    .map_err(|e| Error::Weights(format!("the metadata's architecture is malformed: {e}")))?;
                arch.validate()?;
                // A file naming a backbone headtune knows must have exactly that network:
                // embedding widths and files made with it depend on it.
                if let Some(kind) = BackboneKind::ALL.into_iter().find(|k| k.id() == arch.id) {
                    if kind.arch() != arch {
                        return Err(Error::Weights(format!("the file claims to be {} but describes another network", kind.name())));
                    }
                }
                arch
            }
            other => {
                return Err(Error::Weights(format!(
                    "expected format {WEIGHTS_FORMAT:?}, found {:?}; regenerate with models/convert.py",
                    other.map(|f| truncate(f, 60))
                )))
            }
        };
        let st = SafeTensors::deserialize(bytes)
            .map_err(|e| Error::Weights(format!("not a safetensors file: {e}")))?;
        let loader = Loader { st: &st };
        let stem = loader.conv("stem", 3, arch.stem, 3, 2, 1)?;
        let blocks = arch
            .blocks()
            .iter()
            .map(|b| {
                let p = format!("blocks.{}", b.index);
                Ok(BlockWeights {
                    expand: if b.has_expand { Some(loader.conv(&format!("{p}.expand"), b.cin, b.mid, 1, 1, 1)?) } else { None },
                    depthwise: loader.conv(&format!("{p}.depthwise"), b.mid, b.mid, b.kernel, b.stride, b.mid)?,
                    project: loader.conv(&format!("{p}.project"), b.mid, b.cout, 1, 1, 1)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let head = loader.conv("head", arch.head_in(), arch.head, 1, 1, 1)?;
        let fc_weight = loader.weight("fc", &[arch.classes, arch.head])?;
        let fc_bias = loader.bias("fc", arch.classes)?;
        Ok(Self { arch, stem, blocks, head, fc_weight, fc_bias })
    }
}

/// One inverted-residual block: [expand 1×1 → ReLU6] → depthwise k×k → ReLU6 → project 1×1
/// (linear) → + input when the shape is unchanged.
#[derive(Module, Debug)]
pub struct MbConv {
    expand: Option<Conv2d>,
    depthwise: Conv2d,
    project: Conv2d,
    #[module(skip)]
    residual: bool,
    /// Whether this block's output is its stage's output (a tap, see [`Taps::stages`]).
    #[module(skip)]
    ends_stage: bool,
}

impl MbConv {
    /// # Shapes
    /// `[N, C_in, H, W]` → `[N, C_out, H / stride, W / stride]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut y = match &self.expand {
            Some(conv) => relu6(conv.forward(x.clone())),
            None => x.clone(),
        };
        y = relu6(self.depthwise.forward(y));
        y = self.project.forward(y);
        if self.residual {
            y + x
        } else {
            y
        }
    }
}

/// An EfficientNet-Lite network with its ImageNet classifier.
#[derive(Module, Debug)]
pub struct EfficientNetLite {
    stem: Conv2d,
    blocks: Vec<MbConv>,
    head: Conv2d,
    fc: Linear,
}

/// What one forward pass returns.
#[derive(Debug, Clone)]
pub struct Features {
    /// Global-average-pooled head conv output: the plain embedding. `[N, head]`
    pub pooled: Tensor<2>,
    /// Final feature map (after the head conv and ReLU6), kept for heatmaps. `[N, head, m, m]`
    /// with `m` = [`Arch::map_size`] of the input side (7 at 224).
    pub map: Tensor<4>,
}

impl EfficientNetLite {
    /// Build the burn module from plain weights on `device`.
    pub fn from_weights(w: &NetWeights, device: &Device) -> Self {
        let specs = w.arch.blocks();
        let blocks = specs
            .iter()
            .zip(&w.blocks)
            .enumerate()
            .map(|(i, (spec, b))| MbConv {
                expand: b.expand.as_ref().map(|c| conv(c, device)),
                depthwise: conv(&b.depthwise, device),
                project: conv(&b.project, device),
                residual: spec.residual,
                ends_stage: specs.get(i + 1).is_none_or(|next| next.stage != spec.stage),
            })
            .collect();
        // The file stores PyTorch's `[out, in]`; burn's Linear wants `[in, out]`.
        let (d_out, d_in) = (w.arch.classes, w.arch.head);
        let mut t = vec![0f32; w.fc_weight.len()];
        for o in 0..d_out {
            for i in 0..d_in {
                t[i * d_out + o] = w.fc_weight[o * d_in + i];
            }
        }
        let fc = Linear {
            weight: Param::from_tensor(Tensor::from_data(TensorData::new(t, [d_in, d_out]), device)),
            bias: Some(Param::from_tensor(Tensor::from_data(TensorData::new(w.fc_bias.clone(), [d_out]), device))),
        };
        Self { stem: conv(&w.stem, device), blocks, head: conv(&w.head, device), fc }
    }

    /// Build the network from safetensors bytes (see [`NetWeights::from_safetensors`]).
    ///
    /// # Errors
    /// As [`NetWeights::from_safetensors`].
    pub fn from_safetensors(bytes: &[u8], device: &Device) -> Result<Self> {
        Ok(Self::from_weights(&NetWeights::from_safetensors(bytes)?, device))
    }

    /// Run the frozen network up to the pooled embedding, with the taps asked for.
    ///
    /// # Shapes
    /// `[N, 3, S, S]` (values `(v − 127) / 128`, any side S) → pooled `[N, head]`, map
    /// `[N, head, m, m]` (m = 7 at S = 224)
    pub fn features(&self, x: Tensor<4>) -> Features {
        self.features_with_stages(x, false).0
    }

    /// [`Self::features`] plus, when `stages`, the output of each stage's last block.
    ///
    /// # Shapes
    /// As [`Self::features`]; stage `s` is `[N, C_s, H_s, W_s]`.
    pub fn features_with_stages(&self, x: Tensor<4>, stages: bool) -> (Features, Vec<Tensor<4>>) {
        let mut x = relu6(self.stem.forward(x));
        let mut taps = Vec::new();
        for block in &self.blocks {
            x = block.forward(x);
            if stages && block.ends_stage {
                taps.push(x.clone());
            }
        }
        let map = relu6(self.head.forward(x));
        let [n, c, _, _] = map.dims();
        let pooled = map.clone().mean_dim(2).mean_dim(3).reshape([n, c]);
        (Features { pooled, map }, taps)
    }

    /// ImageNet logits from pooled embeddings.
    ///
    /// # Shapes
    /// `[N, 1280]` → `[N, 1000]`
    pub fn imagenet_logits(&self, pooled: Tensor<2>) -> Tensor<2> {
        self.fc.forward(pooled)
    }
}

/// A burn convolution with folded bias and TF-SAME padding from plain weights.
fn conv(c: &ConvWeights, device: &Device) -> Conv2d {
    let shape = [c.cout, c.cin / c.groups, c.kernel, c.kernel];
    Conv2d {
        weight: Param::from_tensor(Tensor::from_data(TensorData::new(c.weight.clone(), shape), device)),
        bias: Some(Param::from_tensor(Tensor::from_data(TensorData::new(c.bias.clone(), [c.cout]), device))),
        stride: [c.stride, c.stride],
        kernel_size: [c.kernel, c.kernel],
        dilation: [1, 1],
        groups: c.groups,
        padding: PaddingConfig2d::Same,
    }
}

/// Reads named layers out of the safetensors file, dequantising as it goes.
struct Loader<'a> {
    st: &'a SafeTensors<'a>,
}

impl Loader<'_> {
    /// A k×k convolution with folded bias.
    fn conv(&self, name: &str, cin: usize, cout: usize, kernel: usize, stride: usize, groups: usize) -> Result<ConvWeights> {
        let weight = self.weight(name, &[cout, cin / groups, kernel, kernel])?;
        let bias = self.bias(name, cout)?;
        Ok(ConvWeights { weight, bias, cin, cout, kernel, stride, groups })
    }

    fn bias(&self, name: &str, n: usize) -> Result<Vec<f32>> {
        let view = self.tensor(&format!("{name}.bias"), &[n])?;
        match view.dtype() {
            Dtype::F32 => Ok(f32s(view.data())),
            other => Err(Error::Weights(format!("{name}.bias has dtype {other:?}; expected F32"))),
        }
    }

    /// The weight as f32: stored f32, f16, or int8 with a per-output-channel `.scale`.
    fn weight(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let view = self.tensor(&format!("{name}.weight"), shape)?;
        match view.dtype() {
            Dtype::F32 => Ok(f32s(view.data())),
            Dtype::F16 => Ok(view
                .data()
                .chunks_exact(2)
                .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect()),
            Dtype::I8 => {
                let scale = self.tensor(&format!("{name}.scale"), &shape[..1])?;
                let scale = f32s(scale.data());
                let per = view.data().len() / shape[0];
                Ok(view
                    .data()
                    .iter()
                    .enumerate()
                    .map(|(i, &q)| f32::from(q as i8) * scale[i / per])
                    .collect())
            }
            other => Err(Error::Weights(format!("{name}.weight has unsupported dtype {other:?}"))),
        }
    }

    fn tensor(&self, key: &str, shape: &[usize]) -> Result<safetensors::tensor::TensorView<'_>> {
        let view = self
            .st
            .tensor(key)
            .map_err(|_| Error::Weights(format!("tensor {key:?} is missing")))?;
        if view.shape() != shape {
            return Err(Error::Weights(format!(
                "tensor {key:?} has shape {:?}; expected {shape:?}",
                view.shape()
            )));
        }
        Ok(view)
    }
}

/// Little-endian f32 bytes → values (safetensors data need not be 4-byte aligned).
fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// The compact Lite0 weights shipped in `models/`, compiled into native builds. The wasm build does
/// not embed them: the page fetches them once as a separate, cacheable asset.
#[cfg(not(target_family = "wasm"))]
pub const BUNDLED_WEIGHTS: &[u8] = include_bytes!("../../models/efficientnet_lite0.safetensors");

/// Smallest and largest input side accepted (the network itself works at any side; these keep
/// a malformed input from asking for absurd amounts of memory).
pub const INPUT_SIDES: std::ops::RangeInclusive<usize> = 32..=1024;

/// Extra outputs of a forward pass, each computed only when asked for: the plain embedding
/// costs nothing more.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Taps {
    /// Keep the final feature map (after the head conv and ReLU6), e.g. for heatmaps.
    pub map: bool,
    /// Average- and max-pool the output of each stage's last block (multi-scale features).
    pub stages: bool,
    /// Max-pool the final feature map as well as averaging it.
    pub head_max: bool,
}

/// Per-channel global pooling of one feature map.
#[derive(Debug, Clone, PartialEq)]
pub struct StagePool {
    /// Mean over all positions, one value per channel.
    pub avg: Vec<f32>,
    /// Maximum over all positions, one value per channel.
    pub max: Vec<f32>,
}

/// What one image's forward pass produced (see [`Backbone::features`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding {
    /// The global-average-pooled embedding (`head` values: 1280).
    pub pooled: Vec<f32>,
    /// The final feature map, channel-major `[head, map_side, map_side]`, if [`Taps::map`].
    pub map: Option<Vec<f32>>,
    /// Side of the final feature map (7 at 224×224 input).
    pub map_side: usize,
    /// One entry per stage, in order, if [`Taps::stages`] (empty otherwise).
    pub stages: Vec<StagePool>,
    /// Per-channel maximum of the final feature map, if [`Taps::head_max`].
    pub head_max: Option<Vec<f32>>,
}

/// Which implementation of the forward pass a [`Backbone`] runs.
#[derive(Debug)]
enum Engine {
    /// The dedicated CPU kernels, with spare workspaces for the threads that call in.
    Cpu { net: CpuNet, spare: Mutex<Vec<Workspace>> },
    /// The burn model on its device (WebGPU, or any device when asked for explicitly).
    Burn(EfficientNetLite),
}

/// A loaded, frozen backbone on one device, with host-side helpers. On the CPU it runs the
/// kernels of [`crate::cpu`]; on any other device, the burn model. Natively it can be shared by
/// several threads (each call borrows a workspace of its own).
#[derive(Debug)]
pub struct Backbone {
    arch: Arch,
    engine: Engine,
    device: Device,
}

impl Backbone {
    /// Load weights for `device`: the CPU kernels on the CPU device ([`Device::flex`]), the burn
    /// model on any other.
    ///
    /// # Errors
    /// As [`NetWeights::from_safetensors`].
    pub fn load(weights: &[u8], device: Device) -> Result<Self> {
        Ok(Self::from_weights(&NetWeights::from_safetensors(weights)?, device))
    }

    /// [`Self::load`] from already decoded weights.
    pub fn from_weights(weights: &NetWeights, device: Device) -> Self {
        if device == Device::flex() {
            Self::cpu(weights, CpuNet::new(weights), device)
        } else {
            Self::burn(weights, device)
        }
    }

    /// The burn model on `device`, whatever the device: the definition the CPU kernels are
    /// tested against, and how their speed is compared.
    ///
    /// # Errors
    /// As [`NetWeights::from_safetensors`].
    pub fn load_burn(weights: &[u8], device: Device) -> Result<Self> {
        Ok(Self::burn(&NetWeights::from_safetensors(weights)?, device))
    }

    /// The CPU kernels packed for `isa` (tests and benchmarks compare instruction sets).
    ///
    /// # Errors
    /// As [`NetWeights::from_safetensors`]; [`Error::InvalidArgument`] if this machine lacks `isa`.
    pub fn load_cpu_with(weights: &[u8], isa: Isa) -> Result<Self> {
        if !Isa::available().contains(&isa) {
            return Err(Error::InvalidArgument(format!("this CPU cannot run the {} kernels", isa.name())));
        }
        let w = NetWeights::from_safetensors(weights)?;
        Ok(Self::cpu(&w, CpuNet::with_isa(&w, isa), Device::flex()))
    }

    fn cpu(w: &NetWeights, net: CpuNet, device: Device) -> Self {
        Self { arch: w.arch.clone(), engine: Engine::Cpu { net, spare: Mutex::new(Vec::new()) }, device }
    }

    fn burn(w: &NetWeights, device: Device) -> Self {
        Self { arch: w.arch.clone(), engine: Engine::Burn(EfficientNetLite::from_weights(w, &device)), device }
    }

    /// Load the weights bundled with the native binary onto the CPU.
    ///
    /// # Errors
    /// As [`NetWeights::from_safetensors`] (only if the bundled file is broken).
    #[cfg(not(target_family = "wasm"))]
    pub fn bundled_cpu() -> Result<Self> {
        Self::bundled_cpu_kind(BackboneKind::Lite0)
    }

    /// Load one of the backbones bundled with the native binary onto the CPU backend.
    ///
    /// # Errors
    /// As [`EfficientNetLite::from_safetensors`] (only if the bundled file is broken).
    #[cfg(not(target_family = "wasm"))]
    pub fn bundled_cpu_kind(kind: BackboneKind) -> Result<Self> {
        Self::load(kind.bundled_weights(), Device::flex())
    }

    /// The device the network runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The architecture.
    pub fn arch(&self) -> &Arch {
        &self.arch
    }

    /// The burn module, when this backbone runs it (not on the CPU kernels).
    pub fn model(&self) -> Option<&EfficientNetLite> {
        match &self.engine {
            Engine::Burn(m) => Some(m),
            Engine::Cpu { .. } => None,
        }
    }

    /// The instruction set of the CPU kernels, when this backbone runs them.
    pub fn kernels(&self) -> Option<Isa> {
        match &self.engine {
            Engine::Cpu { net, .. } => Some(net.isa()),
            Engine::Burn(_) => None,
        }
    }

    /// Stack preprocessed inputs (each `3 × S × S` values, channels first, all the same `S`) into
    /// a batch on this backbone's device.
    ///
    /// # Errors
    /// As [`input_side`].
    pub fn batch(&self, inputs: &[&[f32]]) -> Result<Tensor<4>> {
        let side = input_side(inputs)?;
        let flat: Vec<f32> = inputs.iter().flat_map(|x| x.iter().copied()).collect();
        Ok(Tensor::from_data(TensorData::new(flat, [inputs.len(), 3, side, side]), &self.device))
    }

    /// Everything [`Taps`] asks for, one [`Embedding`] per input, in order. Each input is
    /// `3 × S × S` values (channels first, `(v − 127) / 128`), `S` in [`INPUT_SIDES`], the same
    /// for all. An image's result does not depend on the others in the batch.
    ///
    /// # Errors
    /// [`Error::Tensor`] for a malformed input, [`Error::Backend`] if reading back fails.
    pub async fn features(&self, inputs: &[&[f32]], taps: Taps) -> Result<Vec<Embedding>> {
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        let side = input_side(inputs)?;
        match &self.engine {
            Engine::Cpu { net, spare } => Ok(cpu_features(net, spare, inputs, side, taps)),
            Engine::Burn(model) => burn_features(model, self.batch(inputs)?, taps).await,
        }
    }

    /// Pooled embeddings (the head conv's average), one `head`-vector per input.
    ///
    /// # Errors
    /// As [`Self::features`].
    pub async fn embed(&self, inputs: &[&[f32]]) -> Result<Vec<Vec<f32>>> {
        Ok(self.features(inputs, Taps::default()).await?.into_iter().map(|e| e.pooled).collect())
    }

    /// Pooled embedding and the final `head × m × m` feature map (channel-major) of one input.
    ///
    /// # Errors
    /// As [`Self::features`].
    pub async fn embed_with_map(&self, input: &[f32]) -> Result<(Vec<f32>, Vec<f32>)> {
        let taps = Taps { map: true, ..Taps::default() };
        let e = self.features(&[input], taps).await?.remove(0);
        Ok((e.pooled, e.map.unwrap_or_default()))
    }

    /// Pooled embeddings and ImageNet logits for each input.
    ///
    /// # Errors
    /// As [`Self::features`].
    pub async fn imagenet(&self, inputs: &[&[f32]]) -> Result<Vec<(Vec<f32>, Vec<f32>)>> {
        let pooled = self.embed(inputs).await?;
        let logits = match &self.engine {
            Engine::Cpu { net, .. } => pooled.iter().map(|p| net.logits(p)).collect(),
            Engine::Burn(model) if !pooled.is_empty() => {
                let flat: Vec<f32> = pooled.iter().flatten().copied().collect();
                let t = Tensor::from_data(TensorData::new(flat, [pooled.len(), self.arch.head]), &self.device);
                read(model.imagenet_logits(t)).await?.chunks(self.arch.classes).map(<[f32]>::to_vec).collect()
            }
            Engine::Burn(_) => Vec::new(),
        };
        Ok(pooled.into_iter().zip(logits).collect())
    }
}

/// The side `S` of a batch of `3 × S × S` inputs.
///
/// # Errors
/// [`Error::Tensor`] when an input is not `3 × S × S` with `S` in [`INPUT_SIDES`], or the inputs
/// differ in size.
pub fn input_side(inputs: &[&[f32]]) -> Result<usize> {
    let len = inputs.first().map_or(0, |x| x.len());
    let side = (1..=*INPUT_SIDES.end()).find(|s| 3 * s * s >= len).unwrap_or(0);
    let what = |i: usize, n: usize| {
        Error::Tensor(format!(
            "input {i} has {n} values; expected 3×S×S with S from {} to {} (3×224×224 = 150528 for the standard input)",
            INPUT_SIDES.start(),
            INPUT_SIDES.end()
        ))
    };
    if 3 * side * side != len || !INPUT_SIDES.contains(&side) {
        return Err(what(0, len));
    }
    if let Some((i, x)) = inputs.iter().enumerate().find(|(_, x)| x.len() != len) {
        return Err(Error::Tensor(format!(
            "input {i} has {} values but input 0 has {len}: all inputs of a batch must have the same size",
            x.len()
        )));
    }
    Ok(side)
}

/// The CPU kernels over a batch: natively one image per rayon task, each with a spare workspace
/// (or a new one); in wasm one after the other.
fn cpu_features(net: &CpuNet, spare: &Mutex<Vec<Workspace>>, inputs: &[&[f32]], side: usize, taps: Taps) -> Vec<Embedding> {
    let one = |x: &&[f32]| {
        // A poisoned lock only means another thread panicked mid-forward: its workspace is
        // gone, the others are fine.
        let mut ws = spare.lock().ok().and_then(|mut s| s.pop()).unwrap_or_default();
        let out = net.forward(&mut ws, x, side, taps);
        if let Ok(mut s) = spare.lock() {
            s.push(ws);
        }
        out
    };
    #[cfg(not(target_family = "wasm"))]
    if inputs.len() > 1 {
        use rayon::prelude::*;
        return inputs.par_iter().map(one).collect();
    }
    inputs.iter().map(one).collect()
}

/// The burn model over a batch, read back per image.
async fn burn_features(model: &EfficientNetLite, x: Tensor<4>, taps: Taps) -> Result<Vec<Embedding>> {
    let (feats, stage_maps) = model.features_with_stages(x, taps.stages);
    let [n, c, side, _] = feats.map.dims();
    let per_image = |v: Vec<f32>| -> Vec<Vec<f32>> {
        let each = v.len() / n.max(1);
        v.chunks(each.max(1)).map(<[f32]>::to_vec).collect()
    };
    let global_max = |t: Tensor<4>| {
        let [n, c, _, _] = t.dims();
        t.max_dim(2).max_dim(3).reshape([n, c])
    };
    let pooled = per_image(read(feats.pooled).await?);
    let maps = if taps.map { Some(per_image(read(feats.map.clone()).await?)) } else { None };
    let head_max = if taps.head_max { Some(per_image(read(global_max(feats.map)).await?)) } else { None };
    let mut stages = Vec::new();
    for t in stage_maps {
        let [n, sc, _, _] = t.dims();
        let avg = per_image(read(t.clone().mean_dim(2).mean_dim(3).reshape([n, sc])).await?);
        let max = per_image(read(global_max(t)).await?);
        stages.push((avg, max));
    }
    debug_assert!(pooled.len() == n && pooled.iter().all(|p| p.len() == c));
    Ok((0..n)
        .map(|i| Embedding {
            pooled: pooled[i].clone(),
            map: maps.as_ref().map(|m| m[i].clone()),
            map_side: side,
            stages: stages.iter().map(|(a, m)| StagePool { avg: a[i].clone(), max: m[i].clone() }).collect(),
            head_max: head_max.as_ref().map(|m| m[i].clone()),
        })
        .collect())
}

/// Read a tensor back to the host. Async because WebGPU readback in the browser must be; on
/// native backends the future is ready immediately.
///
/// # Errors
/// [`Error::Backend`] when the device cannot deliver the data (e.g. it was lost).
pub async fn read<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    let data = t
        .into_data_async()
        .await
        .map_err(|e| Error::Backend(format!("reading results back failed: {e:?}")))?;
    data.try_to_vec::<f32>()
        .map_err(|e| Error::Backend(format!("unexpected tensor data: {e:?}")))
}
