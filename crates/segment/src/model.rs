//! A segmenter: the U-Net, its weights and its model card. [`Segmenter::init`] makes one with
//! fresh weights, [`Segmenter::fit`] trains it through deepsky-nn's shared loop (checkpoints,
//! `--resume`, early stopping), [`Segmenter::save`] / [`Segmenter::load`] write and read
//! `model.safetensors` + `model.json`.

use std::path::Path;

use candle_core::{Device, Tensor, D};
use deepsky_core::config::{ensure, ConfigError, Validate};
use deepsky_core::mask::MaskPlane;
use deepsky_detect::Preprocess;
use deepsky_nn::init::SeededVarMap;
use deepsky_nn::train::{self, Batch, TrainOutcome, TrainTask, Trainer};
use deepsky_nn::NnError;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::dataset::{Example, TrainData};
use crate::unet::{CompiledUNet, OutputKind, UNet, UNetConfig};

/// The loss (`[loss]`): per-pixel binary cross-entropy (sigmoid outputs) or cross-entropy
/// (softmax), with the rare positive pixels weighted up.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LossConfig {
    /// Weight of a pixel that belongs to a plane, relative to one that does not: cosmic-ray
    /// pixels are ~0.1 % of an image, and unweighted the network learns to say "no" everywhere.
    pub positive_weight: f64,
}

impl Default for LossConfig {
    fn default() -> Self {
        LossConfig {
            positive_weight: 5.0,
        }
    }
}

impl Validate for LossConfig {
    fn validate(&self) -> std::result::Result<(), ConfigError> {
        ensure(
            self.positive_weight > 0.0 && self.positive_weight <= 1000.0,
            "positive_weight",
            "must be in (0, 1000]",
        )
    }
}

/// The probability threshold of one plane, chosen on simulated calibration fields.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct PlaneThreshold {
    /// Plane name.
    pub plane: String,
    /// Probability at or above which a pixel is in the plane.
    pub threshold: f32,
    /// False-positive rate (fraction of pixels not in the plane flagged) on the calibration
    /// fields at that threshold.
    pub fpr: f64,
    /// True-positive rate there.
    pub tpr: f64,
    /// ROC area on the calibration fields (absent when they had no pixel of the plane).
    pub auc: Option<f64>,
    /// How it was chosen: `fpr` (the lowest threshold at `calibrate.fpr`, for artefacts) or
    /// `f1` (the best F1 score, for source footprints, whose faint edges no threshold at a
    /// false-positive rate of 1e-3 would keep).
    #[serde(default)]
    pub rule: String,
}

/// What the segmenter was trained on, for users to compare with their images.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct TrainedOn {
    /// Training fields.
    pub fields: usize,
    /// Crop side, pixels.
    pub crop: usize,
    /// PSF FWHM range, pixels.
    pub psf_fwhm_pixels: [f64; 2],
    /// Pixel-scale range, arcsec.
    pub pixel_scale: [f64; 2],
}

/// Everything needed to rebuild a trained segmenter (`model.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModelCard {
    /// Layout version of this file.
    pub format_version: u32,
    /// What this file is (`deepsky-segment`).
    pub kind: String,
    /// Architecture.
    pub model: UNetConfig,
    /// Background estimation and normalisation applied before the network.
    pub preprocess: Preprocess,
    /// Seed of the initial weights.
    pub seed: u64,
    /// Training images.
    pub trained_on: TrainedOn,
    /// Calibrated thresholds per plane; `predict.thresholds` default to them.
    #[serde(default)]
    pub thresholds: Vec<PlaneThreshold>,
}

/// A segmenter: network, parameters and card, on a device.
pub struct Segmenter {
    vars: SeededVarMap,
    net: UNet,
    card: ModelCard,
    device: Device,
}

/// The kind string of segmenter model cards.
pub const MODEL_KIND: &str = "deepsky-segment";

impl Segmenter {
    /// A segmenter of architecture `model` with fresh weights from `seed`.
    pub fn init(
        model: &UNetConfig,
        preprocess: &Preprocess,
        trained_on: TrainedOn,
        seed: u64,
        device: &Device,
    ) -> Result<Segmenter, NnError> {
        model.validate().map_err(|e| e.within("model"))?;
        let vars = SeededVarMap::new(seed);
        let net = UNet::new(model, vars.builder(device).pp("unet"))?;
        Ok(Segmenter {
            vars,
            net,
            card: ModelCard {
                format_version: 1,
                kind: MODEL_KIND.into(),
                model: model.clone(),
                preprocess: preprocess.clone(),
                seed,
                trained_on,
                thresholds: Vec::new(),
            },
            device: device.clone(),
        })
    }

    /// The model card.
    pub fn card(&self) -> &ModelCard {
        &self.card
    }

    /// Store calibrated thresholds in the card.
    pub fn set_thresholds(&mut self, t: Vec<PlaneThreshold>) {
        self.card.thresholds = t;
    }

    /// The predicted planes, in output order.
    pub fn planes(&self) -> Vec<MaskPlane> {
        self.card.model.mask_planes()
    }

    /// The preprocessing the network expects.
    pub fn preprocess(&self) -> &Preprocess {
        &self.card.preprocess
    }

    /// The network.
    pub fn net(&self) -> &UNet {
        &self.net
    }

    /// The network compiled for CPU inference.
    pub fn compile(&self) -> Result<CompiledUNet, NnError> {
        Ok(self.net.compile()?)
    }

    /// Where it computes.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Number of trainable parameters.
    pub fn parameter_count(&self) -> usize {
        self.vars
            .varmap()
            .all_vars()
            .iter()
            .map(|v| v.as_tensor().elem_count())
            .sum()
    }

    /// Train on examples from `data` with the loop `trainer` describes.
    pub fn fit(
        &mut self,
        data: &TrainData,
        loss: &LossConfig,
        trainer: Trainer<'_>,
    ) -> Result<TrainOutcome, NnError> {
        let task = SegmentTask {
            seg: self,
            data,
            loss: *loss,
        };
        trainer.run(&task, self.vars.varmap())
    }

    /// Mean loss over examples `indices` of epoch 0, in evaluation mode.
    pub fn evaluate_loss(
        &self,
        data: &TrainData,
        indices: &[usize],
        loss: &LossConfig,
    ) -> Result<f64, NnError> {
        let task = SegmentTask {
            seg: self,
            data,
            loss: *loss,
        };
        train::evaluate(&task, indices, 8, 0)
    }

    /// Write `model.safetensors` and `model.json` into `dir` (each atomically).
    pub fn save(&self, dir: &Path) -> Result<(), NnError> {
        deepsky_nn::checkpoint::save_model(self.vars.varmap(), &self.card, dir)
    }

    /// Load a segmenter saved by [`Segmenter::save`].
    pub fn load(dir: &Path, device: &Device) -> Result<Segmenter, NnError> {
        let path = dir.join("model.json");
        let card: ModelCard = deepsky_nn::checkpoint::load_card(dir, "deepsky segmenter")?;
        if card.kind != MODEL_KIND || card.format_version != 1 {
            return Err(NnError::checkpoint(
                &path,
                format!(
                    "a `{}` model of format {}, not a {MODEL_KIND} model of format 1",
                    card.kind, card.format_version
                ),
            ));
        }
        let s = Segmenter::init(
            &card.model,
            &card.preprocess,
            card.trained_on.clone(),
            card.seed,
            device,
        )?;
        deepsky_nn::checkpoint::load_varmap(s.vars.varmap(), &dir.join("model.safetensors"))?;
        Ok(Segmenter { card, ..s })
    }
}

struct SegmentTask<'a> {
    seg: &'a Segmenter,
    data: &'a TrainData,
    loss: LossConfig,
}

impl TrainTask for SegmentTask<'_> {
    fn len(&self) -> usize {
        self.data.len()
    }
    fn loss(&self, b: &Batch<'_>) -> candle_core::Result<Tensor> {
        // Validation examples are drawn as in epoch 0, so epochs compare the same images.
        let epoch = if b.train { b.epoch } else { 0 };
        let examples = self
            .data
            .batch(b.indices, epoch)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let n = self.data.cfg.crop;
        let dev = &self.seg.device;
        let (x, z) = batch_tensors(&examples, self.data.planes.len(), n, dev)?;
        let logits = self.seg.net.forward(&x, b.train)?;
        pixel_loss(&logits, &z, self.seg.card.model.output, &self.loss)
    }
}

/// Images `(b, 1, n, n)` and targets `(b, planes, n, n)` of a batch.
fn batch_tensors(
    examples: &[Example],
    planes: usize,
    n: usize,
    dev: &Device,
) -> candle_core::Result<(Tensor, Tensor)> {
    let mut xs = Vec::with_capacity(examples.len() * n * n);
    let mut zs = Vec::with_capacity(examples.len() * planes * n * n);
    for e in examples {
        xs.extend(e.image.iter().copied());
        zs.extend_from_slice(&e.targets);
    }
    let b = examples.len();
    Ok((
        Tensor::from_vec(xs, (b, 1, n, n), dev)?,
        Tensor::from_vec(zs, (b, planes, n, n), dev)?,
    ))
}

/// Mean per-pixel loss of `logits` against 0/1 `targets` `(b, planes, h, w)`.
///
/// Sigmoid: binary cross-entropy per plane, positives weighted by `positive_weight`. Softmax:
/// each pixel's class is its first plane in output order (background if none), cross-entropy
/// weighted by `positive_weight` for non-background pixels.
pub fn pixel_loss(
    logits: &Tensor,
    targets: &Tensor,
    output: OutputKind,
    cfg: &LossConfig,
) -> candle_core::Result<Tensor> {
    let pw = cfg.positive_weight;
    match output {
        OutputKind::Sigmoid => {
            let bce = deepsky_detect::loss::bce_with_logits(logits, targets)?;
            let weight = targets.affine(pw - 1.0, 1.0)?;
            (bce * weight)?.mean_all()
        }
        OutputKind::Softmax => {
            let (b, p, h, w) = targets.dims4()?;
            let z: Vec<f32> = targets.flatten_all()?.to_vec1()?;
            let mut onehot = vec![0.0f32; b * (p + 1) * h * w];
            let mut weight = vec![1.0f32; b * h * w];
            let plane = h * w;
            for bi in 0..b {
                for k in 0..plane {
                    let class = (0..p).find(|&c| z[(bi * p + c) * plane + k] > 0.5);
                    let c = class.unwrap_or(p);
                    onehot[(bi * (p + 1) + c) * plane + k] = 1.0;
                    if class.is_some() {
                        weight[bi * plane + k] = pw as f32;
                    }
                }
            }
            let dev = logits.device();
            let onehot = Tensor::from_vec(onehot, (b, p + 1, h, w), dev)?;
            let weight = Tensor::from_vec(weight, (b, 1, h, w), dev)?;
            let logp = candle_nn::ops::log_softmax(logits, 1)?;
            let nll = (onehot * logp)?.sum_keepdim(1)?.neg()?;
            let _ = D::Minus1;
            (nll * weight)?.mean_all()
        }
    }
}
