//! Reading shower files for training and validation: either layout, the particle from the
//! config or the file, the readout threshold applied.

use std::path::Path;

use deepsky_fastsim::data::{apply_threshold, Sample, N_CELLS};
use deepsky_io::calo::{CaloChallengeShowers, CaloGanShowers};
use deepsky_io::h5::{AttrValue, H5Reader};
use deepsky_runtime::RunError;

/// A shower file, its layout (`calogan` or `calochallenge`) and particle.
pub struct ShowerFile {
    pub sample: Sample,
    pub layout: &'static str,
}

/// Read `path` (CaloGAN, or CaloChallenge with 504 voxels in CaloGAN cell order), with
/// `particle`, else the file's `particle` attribute, else `default_particle`.
pub fn read(
    path: &Path,
    particle: &str,
    default_particle: Option<&str>,
    threshold_mev: f32,
) -> Result<ShowerFile, RunError> {
    let f = H5Reader::open(path)?;
    let items: Vec<String> = f.items()?.into_iter().map(|i| i.path).collect();
    let has = |n: &str| items.iter().any(|i| i.trim_start_matches('/') == n);
    let particle = if particle.is_empty() {
        match f.root_attrs()?.into_iter().find(|(k, _)| k == "particle") {
            Some((_, AttrValue::Str(p))) => p,
            _ if default_particle.is_some() => default_particle.unwrap_or_default().to_string(),
            _ => {
                return Err(RunError::input(format!(
                    "{}: no `particle` attribute; name it in the config (data.samples = [{{ path = \"…\", particle = \"e-\" }}])",
                    path.display()
                )))
            }
        }
    } else {
        particle.to_string()
    };
    let (mut showers, layout) = if has("layer_0") {
        (CaloGanShowers::read(path)?, "calogan")
    } else if has("showers") {
        let cc = CaloChallengeShowers::read(path)?;
        if cc.showers.ncols() != N_CELLS {
            return Err(RunError::input(format!(
                "{}: CaloChallenge file with {} voxels; fastsim learns the CaloGAN segmentation ({N_CELLS} cells)",
                path.display(),
                cc.showers.ncols()
            )));
        }
        let n = cc.showers.nrows();
        let energies: Vec<f32> = cc.incident_energies.iter().map(|e| e / 1000.0).collect();
        let cells: Vec<f32> = cc.showers.iter().copied().collect();
        (
            deepsky_fastsim::data::unflatten_cells(&cells, &vec![0.0; n * 3], &energies),
            "calochallenge",
        )
    } else {
        return Err(RunError::input(format!(
            "{}: neither a CaloGAN file (layer_0, layer_1, layer_2, energy) nor a CaloChallenge file (incident_energies, showers)",
            path.display()
        )));
    };
    if showers.is_empty() {
        return Err(RunError::input(format!("{}: no showers", path.display())));
    }
    if let Some(e) = showers
        .energy
        .iter()
        .find(|e| !(e.is_finite() && **e > 0.0))
    {
        return Err(RunError::input(format!(
            "{}: incident energy {e} GeV is not a positive number",
            path.display()
        )));
    }
    let finite = |a: &[f32]| a.iter().all(|v| v.is_finite());
    let cells_ok = [&showers.layer_0, &showers.layer_1, &showers.layer_2]
        .iter()
        .all(|l| l.iter().all(|v| v.is_finite()));
    if !cells_ok || !finite(showers.overflow.as_slice().unwrap_or(&[])) {
        return Err(RunError::input(format!(
            "{}: cell or overflow energies contain NaN or infinity",
            path.display()
        )));
    }
    apply_threshold(&mut showers, threshold_mev);
    Ok(ShowerFile {
        sample: Sample { particle, showers },
        layout,
    })
}
