//! A detector: the network, its weights and its model card (architecture, preprocessing, what
//! it was trained on). [`Detector::init`] makes one with fresh weights, [`Detector::fit`] trains
//! it through deepsky-nn's shared loop, [`Detector::save`] and [`Detector::load`] write and read
//! `model.safetensors` + `model.json`.

use std::path::Path;

use candle_core::{Device, Tensor};
use deepsky_core::config::Validate;
use deepsky_nn::init::SeededVarMap;
use deepsky_nn::train::{self, Batch, TrainOutcome, TrainTask, Trainer};
use deepsky_nn::NnError;
use serde::{Deserialize, Serialize};

use crate::assign::AssignConfig;
use crate::dataset::{Example, TrainData};
use crate::loss::{detection_loss, LossConfig};
use crate::model::{anchors, parameter_count, DetectorConfig, DetectorNet};
use crate::Preprocess;

/// Everything needed to rebuild a trained detector (`model.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModelCard {
    /// Layout version of this file.
    pub format_version: u32,
    /// What this file is.
    pub kind: String,
    /// Architecture.
    pub model: DetectorConfig,
    /// Background estimation and normalisation applied before the network.
    pub preprocess: Preprocess,
    /// Seed of the initial weights.
    pub seed: u64,
    /// Pixel scale (arcsec/pixel) and PSF FWHM (pixels) of the training images, so that a user
    /// can tell whether their image resembles them.
    pub trained_on: TrainedOn,
    /// The calibrated score threshold ([`crate::calibrate`]); `predict.score_threshold`
    /// defaults to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operating_point: Option<crate::calibrate::OperatingPoint>,
}

/// The image properties a detector was trained for.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct TrainedOn {
    /// Arcsec per pixel.
    pub pixel_scale: f64,
    /// PSF FWHM, pixels.
    pub psf_fwhm_pixels: f64,
    /// Training fields and crops per epoch.
    pub fields: usize,
    /// Crop side, pixels.
    pub crop: usize,
    /// The range of PSF FWHM (pixels) of a detector trained on many imagers
    /// (`[data.randomise]`); `psf_fwhm_pixels` is then its geometric middle. Absent: one PSF.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub psf_fwhm_pixels_range: Option<[f64; 2]>,
}

impl TrainedOn {
    /// The PSF FWHM range (pixels) the detector was trained for: `psf_fwhm_pixels_range`, or
    /// the single `psf_fwhm_pixels`.
    pub fn fwhm_range(&self) -> [f64; 2] {
        self.psf_fwhm_pixels_range
            .unwrap_or([self.psf_fwhm_pixels, self.psf_fwhm_pixels])
    }
}

/// A detector: its network, parameters and card, on a device.
pub struct Detector {
    vars: SeededVarMap,
    net: DetectorNet,
    card: ModelCard,
    device: Device,
}

/// Stack normalised square images into a `(b, 1, h, w)` tensor.
pub fn images_tensor(
    examples: &[&ndarray::Array2<f32>],
    device: &Device,
) -> candle_core::Result<Tensor> {
    let (h, w) = examples.first().map(|e| e.dim()).unwrap_or((0, 0));
    let mut flat = Vec::with_capacity(examples.len() * h * w);
    for e in examples {
        if e.dim() != (h, w) {
            candle_core::bail!("images of different sizes in one batch");
        }
        flat.extend(e.iter().copied());
    }
    Tensor::from_vec(flat, (examples.len(), 1, h, w), device)
}

struct DetectTask<'a> {
    det: &'a Detector,
    data: &'a TrainData,
    anchors: Vec<(f32, f32, f32)>,
    assign: AssignConfig,
    loss: LossConfig,
}

impl TrainTask for DetectTask<'_> {
    fn len(&self) -> usize {
        self.data.len()
    }
    fn loss(&self, b: &Batch<'_>) -> candle_core::Result<Tensor> {
        // Validation examples are drawn once (as in epoch 0) so that validation losses of
        // different epochs compare the same images.
        let epoch = if b.train { b.epoch } else { 0 };
        let examples: Vec<Example> = self
            .data
            .batch(b.indices, epoch)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let imgs: Vec<&ndarray::Array2<f32>> = examples.iter().map(|e| &e.image).collect();
        let x = images_tensor(&imgs, &self.det.device)?;
        let out = self.det.net.forward(&x, b.train)?;
        let targets: Vec<_> = examples.into_iter().map(|e| e.targets).collect();
        Ok(detection_loss(&out, &targets, &self.anchors, &self.assign, &self.loss)?.total)
    }
}

impl Detector {
    /// A detector of architecture `model` with fresh weights drawn from `seed`, which will see
    /// images through `preprocess`; `trained_on` describes its training images for the card.
    pub fn init(
        model: &DetectorConfig,
        preprocess: &Preprocess,
        trained_on: TrainedOn,
        seed: u64,
        device: &Device,
    ) -> Result<Detector, NnError> {
        model.validate().map_err(|e| e.within("model"))?;
        let vars = SeededVarMap::new(seed);
        let net = DetectorNet::new(model, vars.builder(device).pp("det"))?;
        Ok(Detector {
            vars,
            net,
            card: ModelCard {
                format_version: 1,
                kind: "deepsky-detect".into(),
                model: model.clone(),
                preprocess: preprocess.clone(),
                seed,
                trained_on,
                operating_point: None,
            },
            device: device.clone(),
        })
    }

    /// The model card: architecture, preprocessing, seed and training images.
    pub fn card(&self) -> &ModelCard {
        &self.card
    }

    /// Set the calibrated operating point ([`crate::calibrate::calibrate`]), saved with the
    /// card.
    pub fn set_operating_point(&mut self, point: crate::calibrate::OperatingPoint) {
        self.card.operating_point = Some(point);
    }

    /// Class names, in class-index order.
    pub fn classes(&self) -> &[String] {
        &self.card.model.classes
    }

    /// The preprocessing the network expects.
    pub fn preprocess(&self) -> &Preprocess {
        &self.card.preprocess
    }

    /// The network.
    pub fn net(&self) -> &DetectorNet {
        &self.net
    }

    /// Where it computes.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Number of trainable parameters.
    pub fn parameter_count(&self) -> usize {
        parameter_count(self.vars.varmap())
    }

    /// The training loop's view of this detector on `data`.
    fn task<'a>(
        &'a self,
        data: &'a TrainData,
        assign: &AssignConfig,
        loss: &LossConfig,
    ) -> DetectTask<'a> {
        let n = data.cfg.crop;
        DetectTask {
            det: self,
            data,
            anchors: anchors(n, n),
            assign: *assign,
            loss: *loss,
        }
    }

    /// Train the weights on examples drawn from `data`, with the loop `trainer` describes
    /// (settings, checkpoints, resume, hooks).
    pub fn fit(
        &mut self,
        data: &TrainData,
        assign: &AssignConfig,
        loss: &LossConfig,
        trainer: Trainer<'_>,
    ) -> Result<TrainOutcome, NnError> {
        let task = self.task(data, assign, loss);
        trainer.run(&task, self.vars.varmap())
    }

    /// Mean loss over examples `indices` of epoch 0, in evaluation mode.
    pub fn evaluate_loss(
        &self,
        data: &TrainData,
        indices: &[usize],
        assign: &AssignConfig,
        loss: &LossConfig,
    ) -> Result<f64, NnError> {
        let task = self.task(data, assign, loss);
        train::evaluate(&task, indices, 8, 0)
    }

    /// Write `model.safetensors` and `model.json` into `dir` (each atomically).
    pub fn save(&self, dir: &Path) -> Result<(), NnError> {
        deepsky_nn::checkpoint::save_model(self.vars.varmap(), &self.card, dir)
    }

    /// Load a detector saved by [`Detector::save`].
    pub fn load(dir: &Path, device: &Device) -> Result<Detector, NnError> {
        let path = dir.join("model.json");
        let card: ModelCard = deepsky_nn::checkpoint::load_card(dir, "deepsky detector")?;
        if card.kind != "deepsky-detect" || card.format_version != 1 {
            return Err(NnError::checkpoint(
                &path,
                format!(
                    "a `{}` model of format {}, not a deepsky-detect model of format 1",
                    card.kind, card.format_version
                ),
            ));
        }
        let t = Detector::init(
            &card.model,
            &card.preprocess,
            card.trained_on.clone(),
            card.seed,
            device,
        )?;
        deepsky_nn::checkpoint::load_varmap(t.vars.varmap(), &dir.join("model.safetensors"))?;
        Ok(Detector { card, ..t })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::DataConfig;
    use deepsky_nn::train::TrainConfig;

    #[test]
    fn training_lowers_the_loss_and_saved_models_reload_equal() {
        let mut data_cfg = DataConfig {
            fields: 2,
            crops_per_field: 8,
            crop: 64,
            ..Default::default()
        };
        data_cfg.sky.width = 128;
        data_cfg.sky.height = 128;
        let pre = Preprocess::default();
        let data = TrainData::simulate(&data_cfg, &pre, 3).unwrap();
        let mut det = Detector::init(
            &DetectorConfig::default(),
            &pre,
            TrainedOn::default(),
            5,
            &Device::Cpu,
        )
        .unwrap();
        let cfg = TrainConfig {
            epochs: 8,
            batch_size: 4,
            lr: 5e-3,
            val_fraction: 0.0,
            ..Default::default()
        };
        let t = std::time::Instant::now();
        let out = det
            .fit(
                &data,
                &AssignConfig::default(),
                &LossConfig::default(),
                Trainer::new(&cfg),
            )
            .unwrap();
        eprintln!(
            "{} steps in {:.1}s",
            out.state.steps,
            t.elapsed().as_secs_f64()
        );
        let h = &out.state.history;
        eprintln!("{:?}", h.iter().map(|r| r.train_loss).collect::<Vec<_>>());
        assert!(
            h.last().unwrap().train_loss < 0.75 * h[0].train_loss,
            "{h:?}"
        );

        let dir = tempfile::tempdir().unwrap();
        det.save(dir.path()).unwrap();
        let back = Detector::load(dir.path(), &Device::Cpu).unwrap();
        assert_eq!(back.card(), det.card());
        assert_eq!(back.parameter_count(), det.parameter_count());
        let all: Vec<usize> = (0..data.len()).collect();
        let (assign, loss) = (AssignConfig::default(), LossConfig::default());
        let loss_of = |d: &Detector| d.evaluate_loss(&data, &all, &assign, &loss).unwrap();
        assert_eq!(loss_of(&back), loss_of(&det));
    }
}
