//! The trainable classifier head on top of the embedding (width set by the
//! [`crate::features::FeatureSpec`]): `linear` (default) or `mlp` (one hidden layer, ReLU,
//! dropout).

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::backbone::read;
use crate::error::{Error, Result};

/// Which head to train.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum HeadKind {
    /// Logistic regression on the embedding: robust with few images, and its weights give the
    /// class-activation map directly.
    #[default]
    Linear,
    /// One hidden layer with ReLU and dropout: can separate classes that are not linearly
    /// separable in embedding space; needs more images.
    Mlp,
}

impl std::str::FromStr for HeadKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "linear" => Ok(Self::Linear),
            "mlp" => Ok(Self::Mlp),
            other => Err(Error::InvalidArgument(format!("head is {other:?}; use \"linear\" or \"mlp\""))),
        }
    }
}

/// Shape of a head.
#[derive(Config, Debug)]
pub struct HeadConfig {
    /// Embedding width (inputs).
    pub input: usize,
    /// Number of classes.
    pub classes: usize,
    /// Linear or MLP.
    #[config(default = "HeadKind::Linear")]
    pub kind: HeadKind,
    /// Hidden units of the MLP.
    #[config(default = 128)]
    pub hidden: usize,
    /// Dropout probability before each dense layer (training only).
    #[config(default = 0.2)]
    pub dropout: f64,
}

impl HeadConfig {
    /// A freshly initialised head on `device` (seed it with `device.seed` first for
    /// reproducibility).
    pub fn init(&self, device: &Device) -> Head {
        let (hidden, out_in) = match self.kind {
            HeadKind::Linear => (None, self.input),
            HeadKind::Mlp => (Some(LinearConfig::new(self.input, self.hidden).init(device)), self.hidden),
        };
        Head {
            hidden,
            // The linear head is plain (regularised) logistic regression: no dropout.
            dropout: DropoutConfig::new(if self.kind == HeadKind::Mlp { self.dropout } else { 0.0 }).init(),
            output: LinearConfig::new(out_in, self.classes).init(device),
        }
    }
}

/// A classifier head.
#[derive(Module, Debug)]
pub struct Head {
    hidden: Option<Linear>,
    dropout: Dropout,
    output: Linear,
}

/// Host copy of a head's weights, in burn's `[in, out]` layout — what model files store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadWeights {
    /// Linear or MLP.
    pub kind: HeadKind,
    /// The hidden layer (MLP only).
    pub hidden: Option<DenseWeights>,
    /// The output layer.
    pub output: DenseWeights,
}

/// One dense layer on the host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DenseWeights {
    /// Input width.
    pub d_in: usize,
    /// Output width.
    pub d_out: usize,
    /// `[d_in, d_out]`, row-major.
    pub weight: Vec<f32>,
    /// `[d_out]`.
    pub bias: Vec<f32>,
}

/// Widest layer input or output a head may have (the MLP's hidden units are at most 4096, a
/// model has at most `store::MAX_CLASSES` outputs).
pub const MAX_LAYER_WIDTH: usize = 4096;

/// Largest logit a head may be able to produce for any accepted embedding (f32 overflows at
/// 3.4e38; a trained head stays below ~1e4).
pub const MAX_LOGIT: f64 = 1e30;

impl DenseWeights {
    fn check(&self, what: &str) -> Result<()> {
        if self.d_in == 0 || self.d_out == 0 || self.d_in.max(self.d_out) > MAX_LAYER_WIDTH {
            return Err(Error::ModelFile(format!("{what} layer is {}×{}; layers are 1 to {} wide", self.d_in, self.d_out, MAX_LAYER_WIDTH)));
        }
        // Checked: on wasm32 a 65536×65536 layer would wrap to 0 and pass.
        let n = self.d_in.checked_mul(self.d_out);
        if n != Some(self.weight.len()) || self.bias.len() != self.d_out {
            return Err(Error::ModelFile(format!("{what} layer has inconsistent sizes")));
        }
        if self.weight.iter().chain(&self.bias).any(|v| !v.is_finite()) {
            return Err(Error::ModelFile(format!("{what} layer contains NaN or infinity")));
        }
        Ok(())
    }

    fn to_linear(&self, device: &Device) -> Linear {
        Linear {
            weight: Param::from_tensor(Tensor::from_data(TensorData::new(self.weight.clone(), [self.d_in, self.d_out]), device)),
            bias: Some(Param::from_tensor(Tensor::from_data(TensorData::new(self.bias.clone(), [self.d_out]), device))),
        }
    }

    /// `x · W + b` for one vector.
    pub fn apply(&self, x: &[f32]) -> Vec<f32> {
        let mut y = self.bias.clone();
        for (i, &xi) in x.iter().enumerate() {
            if xi != 0.0 {
                let row = &self.weight[i * self.d_out..(i + 1) * self.d_out];
                for (yo, w) in y.iter_mut().zip(row) {
                    *yo += xi * w;
                }
            }
        }
        y
    }
}

impl Head {
    /// Class logits.
    ///
    /// # Shapes
    /// `[N, input]` → `[N, classes]`
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let x = match &self.hidden {
            Some(hidden) => relu(hidden.forward(self.dropout.forward(x))),
            None => x,
        };
        self.output.forward(self.dropout.forward(x))
    }

    /// Copy the weights to the host.
    ///
    /// # Errors
    /// [`Error::Backend`] if reading back fails.
    pub async fn weights(&self) -> Result<HeadWeights> {
        async fn dense(l: &Linear) -> Result<DenseWeights> {
            let [d_in, d_out] = l.weight.dims();
            let bias = match &l.bias {
                Some(b) => read(b.val()).await?,
                None => vec![0.0; d_out],
            };
            Ok(DenseWeights { d_in, d_out, weight: read(l.weight.val()).await?, bias })
        }
        let hidden = match &self.hidden {
            Some(h) => Some(dense(h).await?),
            None => None,
        };
        Ok(HeadWeights {
            kind: if hidden.is_some() { HeadKind::Mlp } else { HeadKind::Linear },
            hidden,
            output: dense(&self.output).await?,
        })
    }
}

impl HeadWeights {
    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.output.d_out
    }

    /// Embedding width the head takes.
    pub fn input(&self) -> usize {
        self.hidden.as_ref().unwrap_or(&self.output).d_in
    }

    /// Check shapes and values against the embedding width `input` (weights from a file are
    /// untrusted).
    ///
    /// # Errors
    /// [`Error::ModelFile`].
    pub fn validate(&self, input: usize) -> Result<()> {
        let expect_in = match (&self.kind, &self.hidden) {
            (HeadKind::Linear, None) => input,
            (HeadKind::Mlp, Some(h)) => {
                h.check("hidden")?;
                if h.d_in != input {
                    return Err(Error::ModelFile(format!("hidden layer takes {} inputs; the features have {input}", h.d_in)));
                }
                h.d_out
            }
            _ => return Err(Error::ModelFile("head kind does not match its layers".into())),
        };
        self.output.check("output")?;
        if self.output.d_in != expect_in || self.output.d_out < 2 {
            return Err(Error::ModelFile(format!(
                "output layer is {}×{}; expected {expect_in} inputs and 2 or more classes",
                self.output.d_in, self.output.d_out
            )));
        }
        let bound = self.logit_bound();
        if !(bound <= MAX_LOGIT) {
            return Err(Error::ModelFile(format!(
                "the weights are too large: logits could reach {bound:.1e} and overflow (a trained head stays below 1e4) — the file is damaged or was not written by headtune"
            )));
        }
        Ok(())
    }

    /// An upper bound of |logit| over every embedding a store accepts (|values| ≤
    /// `store::MAX_EMBEDDING_ABS`), by interval arithmetic in f64: |b| + Σ|w|·bound(input),
    /// layer by layer. Checking finiteness of the weights is not enough — weights of 3e38 are
    /// finite and their logits are not; this bound also covers every partial sum of the f32
    /// evaluation, so no logit, probability or heatmap weight can become NaN or infinite.
    pub fn logit_bound(&self) -> f64 {
        fn layer(d: &DenseWeights, input: &[f64]) -> Vec<f64> {
            (0..d.d_out)
                .map(|o| {
                    let sum: f64 = input.iter().enumerate().map(|(i, x)| x * f64::from(d.weight[i * d.d_out + o]).abs()).sum();
                    f64::from(d.bias[o]).abs() + sum
                })
                .collect()
        }
        let width = self.hidden.as_ref().map_or(self.output.d_in, |h| h.d_in);
        let input = vec![f64::from(crate::store::MAX_EMBEDDING_ABS); width];
        let hidden = match &self.hidden {
            Some(h) => layer(h, &input),
            None => input,
        };
        layer(&self.output, &hidden).into_iter().fold(0.0, f64::max)
    }

    /// Rebuild the burn module (for inference on a device).
    pub fn to_module(&self, device: &Device) -> Head {
        Head {
            hidden: self.hidden.as_ref().map(|h| h.to_linear(device)),
            dropout: DropoutConfig::new(0.0).init(),
            output: self.output.to_linear(device),
        }
    }

    /// Logits of one embedding, on the host: a head is a few hundred thousand multiply-adds,
    /// cheaper than a device round trip.
    pub fn logits(&self, x: &[f32]) -> Vec<f32> {
        match &self.hidden {
            Some(h) => self.output.apply(&h.apply(x).into_iter().map(|v| v.max(0.0)).collect::<Vec<_>>()),
            None => self.output.apply(x),
        }
    }

    /// ∂logit_c / ∂embedding for one embedding: the weights of the class-activation map.
    /// For the linear head it is the class's weight column; for the MLP the chain rule through
    /// the active ReLUs.
    pub fn logit_gradient(&self, x: &[f32], class: usize) -> Vec<f32> {
        let out = &self.output;
        let column = |w: &DenseWeights, c: usize| (0..w.d_in).map(|i| w.weight[i * w.d_out + c]).collect::<Vec<_>>();
        match &self.hidden {
            None => column(out, class),
            Some(h) => {
                let pre = h.apply(x);
                let upstream: Vec<f32> =
                    (0..h.d_out).map(|j| if pre[j] > 0.0 { out.weight[j * out.d_out + class] } else { 0.0 }).collect();
                (0..h.d_in)
                    .map(|i| {
                        let row = &h.weight[i * h.d_out..(i + 1) * h.d_out];
                        row.iter().zip(&upstream).map(|(w, u)| w * u).sum()
                    })
                    .collect()
            }
        }
    }
}
