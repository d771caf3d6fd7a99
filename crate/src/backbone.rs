//! The frozen feature extractor: EfficientNet-Lite0 on burn, loaded from headtune's compact
//! safetensors weights (see `models/README.md` for the format and `BACKBONE.md` for the facts).
//!
//! BatchNorm is folded into the convolutions at conversion time, so every layer here is a
//! convolution with bias. Padding is TensorFlow "SAME" — burn's [`PaddingConfig2d::Same`]
//! computes exactly TF's asymmetric split (before = total / 2, after = the rest) for the
//! actual input size; symmetric padding would move the embedding by up to 1.6.

use burn::module::{Module, Param};
use burn::nn::conv::Conv2d;
use burn::nn::{Linear, PaddingConfig2d};
use burn::tensor::activation::relu6;
use burn::tensor::{Device, Tensor, TensorData};
use half::f16;
use safetensors::{Dtype, SafeTensors};

use crate::error::{Error, Result};

/// Embedding width: channels of the head conv, i.e. what the classifier head trains on.
pub const EMBED_DIM: usize = 1280;
/// Number of ImageNet classes of the bundled classifier.
pub const IMAGENET_CLASSES: usize = 1000;
/// Side of the last feature map at 224×224 input.
pub const MAP_SIZE: usize = 7;
/// Identifier written into model files so a head is only ever used with its own backbone.
pub const BACKBONE_ID: &str = "efficientnet-lite0/imagenet/tf-same/v1";
/// Format tag the converter writes into the safetensors metadata.
const WEIGHTS_FORMAT: &str = "headtune-efficientnet-lite0/1";

/// One stage of inverted-residual blocks: `repeats` blocks, the first with `stride` and
/// `cin → cout`, the rest stride 1 and `cout → cout`. No squeeze-excite in the Lite family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
/// it, so they cannot disagree about the architecture.
#[derive(Debug, Clone, PartialEq, Eq)]
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
        let stage = |repeats, kernel, stride, expand, cin, cout| Stage { repeats, kernel, stride, expand, cin, cout };
        Self {
            id: BACKBONE_ID.into(),
            input_size: 224,
            stem: 32,
            stages: vec![
                stage(1, 3, 1, 1, 32, 16),
                stage(2, 3, 2, 6, 16, 24),
                stage(2, 5, 2, 6, 24, 40),
                stage(3, 3, 2, 6, 40, 80),
                stage(3, 5, 1, 6, 80, 112),
                stage(4, 5, 2, 6, 112, 192),
                stage(1, 3, 1, 6, 192, 320),
            ],
            head: EMBED_DIM,
            classes: IMAGENET_CLASSES,
        }
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
        let format = meta.metadata().as_ref().and_then(|m| m.get("format").cloned());
        if format.as_deref() != Some(WEIGHTS_FORMAT) {
            return Err(Error::Weights(format!(
                "expected format {WEIGHTS_FORMAT:?}, found {format:?}; regenerate with models/convert.py"
            )));
        }
        let st = SafeTensors::deserialize(bytes)
            .map_err(|e| Error::Weights(format!("not a safetensors file: {e}")))?;
        let loader = Loader { st: &st };
        let arch = Arch::lite0();
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

/// EfficientNet-Lite0 with its ImageNet classifier.
#[derive(Module, Debug)]
pub struct EfficientNetLite0 {
    stem: Conv2d,
    blocks: Vec<MbConv>,
    head: Conv2d,
    fc: Linear,
}

/// What one forward pass returns.
#[derive(Debug, Clone)]
pub struct Features {
    /// Global-average-pooled embedding. `[N, 1280]`
    pub pooled: Tensor<2>,
    /// Final feature map (after the head conv and ReLU6), kept for heatmaps. `[N, 1280, 7, 7]`
    pub map: Tensor<4>,
}

impl EfficientNetLite0 {
    /// Build the burn module from plain weights on `device`.
    pub fn from_weights(w: &NetWeights, device: &Device) -> Self {
        let specs = w.arch.blocks();
        let blocks = specs
            .iter()
            .zip(&w.blocks)
            .map(|(spec, b)| MbConv {
                expand: b.expand.as_ref().map(|c| conv(c, device)),
                depthwise: conv(&b.depthwise, device),
                project: conv(&b.project, device),
                residual: spec.residual,
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

    /// Run the frozen network up to the pooled embedding.
    ///
    /// # Shapes
    /// `[N, 3, 224, 224]` (values `(v − 127) / 128`) → pooled `[N, 1280]`, map `[N, 1280, 7, 7]`
    pub fn features(&self, x: Tensor<4>) -> Features {
        let mut x = relu6(self.stem.forward(x));
        for block in &self.blocks {
            x = block.forward(x);
        }
        let map = relu6(self.head.forward(x));
        let [n, c, _, _] = map.dims();
        let pooled = map.clone().mean_dim(2).mean_dim(3).reshape([n, c]);
        Features { pooled, map }
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

/// The compact weights shipped in `models/`, compiled into native builds. The wasm build does
/// not embed them: the page fetches them once as a separate, cacheable asset.
#[cfg(not(target_family = "wasm"))]
pub const BUNDLED_WEIGHTS: &[u8] = include_bytes!("../../models/efficientnet_lite0.safetensors");

/// A loaded, frozen backbone on one device, with host-side helpers.
#[derive(Debug)]
pub struct Backbone {
    model: EfficientNetLite0,
    device: Device,
}

impl Backbone {
    /// Load weights onto `device`.
    ///
    /// # Errors
    /// As [`EfficientNetLite0::from_safetensors`].
    pub fn load(weights: &[u8], device: Device) -> Result<Self> {
        let weights = NetWeights::from_safetensors(weights)?;
        let model = EfficientNetLite0::from_weights(&weights, &device);
        Ok(Self { model, device })
    }

    /// Load the weights bundled with the native binary onto the CPU backend.
    ///
    /// # Errors
    /// As [`EfficientNetLite0::from_safetensors`] (only if the bundled file is broken).
    #[cfg(not(target_family = "wasm"))]
    pub fn bundled_cpu() -> Result<Self> {
        Self::load(BUNDLED_WEIGHTS, Device::flex())
    }

    /// The device the network runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The burn module, for callers that work with tensors directly.
    pub fn model(&self) -> &EfficientNetLite0 {
        &self.model
    }

    /// Stack preprocessed inputs (each [`crate::preprocess::INPUT_LEN`] values) into a batch.
    ///
    /// # Errors
    /// [`Error::Tensor`] when an input has the wrong length.
    pub fn batch(&self, inputs: &[&[f32]]) -> Result<Tensor<4>> {
        use crate::preprocess::{INPUT_LEN, INPUT_SIZE};
        let mut flat = Vec::with_capacity(inputs.len() * INPUT_LEN);
        for (i, x) in inputs.iter().enumerate() {
            if x.len() != INPUT_LEN {
                return Err(Error::Tensor(format!(
                    "input {i} has {} values; expected 3×224×224 = {INPUT_LEN}",
                    x.len()
                )));
            }
            flat.extend_from_slice(x);
        }
        let shape = [inputs.len(), 3, INPUT_SIZE, INPUT_SIZE];
        Ok(Tensor::from_data(TensorData::new(flat, shape), &self.device))
    }

    /// Pooled embeddings, one 1280-vector per input.
    ///
    /// # Errors
    /// [`Error::Tensor`] for a malformed input, [`Error::Backend`] if reading back fails.
    pub async fn embed(&self, inputs: &[&[f32]]) -> Result<Vec<Vec<f32>>> {
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        let feats = self.model.features(self.batch(inputs)?);
        Ok(read(feats.pooled).await?.chunks(EMBED_DIM).map(<[f32]>::to_vec).collect())
    }

    /// Pooled embedding and the final `1280×7×7` feature map (channel-major) of one input.
    ///
    /// # Errors
    /// As [`Self::embed`].
    pub async fn embed_with_map(&self, input: &[f32]) -> Result<(Vec<f32>, Vec<f32>)> {
        let feats = self.model.features(self.batch(&[input])?);
        Ok((read(feats.pooled).await?, read(feats.map).await?))
    }

    /// Pooled embeddings and ImageNet logits for each input.
    ///
    /// # Errors
    /// As [`Self::embed`].
    pub async fn imagenet(&self, inputs: &[&[f32]]) -> Result<Vec<(Vec<f32>, Vec<f32>)>> {
        if inputs.is_empty() {
            return Ok(Vec::new());
        }
        let feats = self.model.features(self.batch(inputs)?);
        let logits = self.model.imagenet_logits(feats.pooled.clone());
        let pooled = read(feats.pooled).await?;
        let logits = read(logits).await?;
        Ok(pooled
            .chunks(EMBED_DIM)
            .zip(logits.chunks(IMAGENET_CLASSES))
            .map(|(p, l)| (p.to_vec(), l.to_vec()))
            .collect())
    }
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
