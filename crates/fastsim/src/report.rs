//! `report.json` of `deepsky fastsim train` ([`TrainReport`]) and `deepsky fastsim images`
//! ([`ImagesReport`]), and the loss curves both plot. (`generate` and `validate` have theirs
//! in [`crate::generate`] and [`crate::validate`].) The keys are a documented contract; a
//! report read back with a key missing is an error naming it.

use std::collections::BTreeMap;

use deepsky_io::calo::ShowerLayout;
use deepsky_nn::gan::GanEpoch;
use deepsky_plot::{Curves, Dash, LegendPos, Series};
use serde::{Deserialize, Serialize};

use crate::image_gan::ImageNormalisation;
use crate::stamps::StampComparison;
use crate::validate::ObservableComparison;

/// Seconds spent by a training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainTiming {
    /// In the adversarial loop.
    pub train_s: f64,
    /// The whole run.
    pub total_s: f64,
}

/// One periodic check during training: generated against training showers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProgressCheck {
    /// The epoch checked.
    pub epoch: usize,
    /// Mean χ² separation over the observables.
    pub mean_chi2: f64,
    /// χ² separation per observable.
    pub chi2: BTreeMap<String, f64>,
}

impl ProgressCheck {
    /// The check of `epoch` from its comparisons.
    pub fn new(epoch: usize, comparisons: &[ObservableComparison]) -> ProgressCheck {
        ProgressCheck {
            epoch,
            mean_chi2: comparisons.iter().map(|c| c.chi2).sum::<f64>() / comparisons.len() as f64,
            chi2: comparisons
                .iter()
                .map(|c| (c.name.clone(), c.chi2))
                .collect(),
        }
    }
}

/// `report.json` of `deepsky fastsim train`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainReport {
    /// The model directory, relative to the output directory.
    pub model: String,
    /// Particle types, in code order.
    pub particles: Vec<String>,
    /// Training showers.
    pub training_showers: usize,
    /// Incident energy range of the training showers, GeV.
    pub energy_range_gev: [f64; 2],
    /// Layout of the training file.
    pub layout: ShowerLayout,
    /// Generator parameters.
    pub generator_parameters: usize,
    /// Critic parameters.
    pub critic_parameters: usize,
    /// Epochs completed.
    pub epochs_run: usize,
    /// Generator steps taken.
    pub steps: usize,
    /// The epoch a resumed run started after.
    pub resumed_from_epoch: Option<usize>,
    /// Every epoch's losses.
    pub history: Vec<GanEpoch>,
    /// The periodic checks.
    pub progress_checks: Vec<ProgressCheck>,
    /// Loss plot files.
    pub plots: Vec<String>,
    /// Seconds spent.
    pub timing: TrainTiming,
}

/// `report.json` of `deepsky fastsim images`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImagesReport {
    /// The model directory, relative to the output directory.
    pub model: String,
    /// Training stamps.
    pub training_stamps: usize,
    /// The `/labels` value trained on (-1: all).
    pub label: i64,
    /// Stamp side, pixels.
    pub image_size: usize,
    /// Generator parameters.
    pub generator_parameters: usize,
    /// Critic parameters.
    pub critic_parameters: usize,
    /// Epochs completed.
    pub epochs_run: usize,
    /// The epoch a resumed run started after.
    pub resumed_from_epoch: Option<usize>,
    /// Every epoch's losses.
    pub history: Vec<GanEpoch>,
    /// Generated stamps.
    pub generated: usize,
    /// Per summary (`flux`, `peak`, `concentration`).
    pub comparison: BTreeMap<String, StampComparison>,
    /// The pixel normalisation learnt from the training stamps.
    pub normalisation: Option<ImageNormalisation>,
    /// Plot files.
    pub plots: Vec<String>,
    /// Seconds spent.
    pub timing: TrainTiming,
}

/// The mean of one extra generator term per epoch (NaN where an epoch lacks it).
fn term(history: &[GanEpoch], name: &str) -> Vec<f64> {
    history
        .iter()
        .map(|e| {
            e.terms
                .iter()
                .find(|t| t.0 == name)
                .map_or(f64::NAN, |t| t.1)
        })
        .collect()
}

/// The shower GAN's losses against epoch (log scale): critic, |adversarial| and the energy
/// term.
pub fn shower_loss_curves(history: &[GanEpoch]) -> Curves {
    Curves {
        x_label: "Epoch".into(),
        y_label: "Loss".into(),
        log_y: true,
        legend: LegendPos::UpperRight,
        series: vec![
            Series::epochs("critic", history.iter().map(|e| e.critic_loss).collect()),
            Series::epochs(
                "generator",
                term(history, "adversarial")
                    .iter()
                    .map(|v| v.abs())
                    .collect(),
            )
            .with_dash(Dash::Dashed),
            Series::epochs("energy term", term(history, "energy")).with_dash(Dash::Dotted),
        ],
        ..Default::default()
    }
}

/// The image GAN's critic and generator losses against epoch.
pub fn image_loss_curves(history: &[GanEpoch]) -> Curves {
    Curves {
        x_label: "Epoch".into(),
        y_label: "Loss".into(),
        series: vec![
            Series::epochs("critic", history.iter().map(|e| e.critic_loss).collect()),
            Series::epochs(
                "generator",
                history.iter().map(|e| e.generator_loss).collect(),
            ),
        ],
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epoch(epoch: usize, adversarial: f64) -> GanEpoch {
        GanEpoch {
            epoch,
            critic_loss: 1.0 / epoch as f64,
            generator_loss: adversarial,
            terms: vec![("adversarial".into(), adversarial), ("energy".into(), 0.1)],
        }
    }

    #[test]
    fn loss_curves_plot_the_magnitude_of_the_adversarial_term() {
        let h = [epoch(1, -2.0), epoch(2, -1.0)];
        let c = shower_loss_curves(&h);
        assert_eq!(c.series.len(), 3);
        assert_eq!(c.series[1].y, [2.0, 1.0]);
        assert_eq!(c.series[2].y, [0.1, 0.1]);
        assert_eq!(image_loss_curves(&h).series[1].y, [-2.0, -1.0]);
    }

    #[test]
    fn progress_checks_average_and_name_each_observable() {
        let c = |name: &str, chi2| ObservableComparison {
            name: name.into(),
            chi2,
            w1: 0.0,
            reference_chi2: None,
            reference_w1: None,
            reference_mean: 0.0,
            generated_mean: 0.0,
        };
        let check = ProgressCheck::new(5, &[c("depth", 0.2), c("e_max", 0.4)]);
        assert!((check.mean_chi2 - 0.3).abs() < 1e-12);
        assert_eq!(check.chi2["e_max"], 0.4);
        let back: ProgressCheck =
            serde_json::from_value(serde_json::to_value(&check).unwrap()).unwrap();
        assert_eq!(back, check);
    }
}
