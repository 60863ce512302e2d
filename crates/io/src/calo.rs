//! The two calorimeter-shower layouts the field uses, as typed readers and writers.
//!
//! * **CaloGAN** (Paganini, de Oliveira, Nachman 2018): `layer_0` (N,3,96), `layer_1` (N,12,12),
//!   `layer_2` (N,12,6) cell energies in MeV, `energy` (N,1) incident energy in GeV,
//!   `overflow` (N,3) energy outside each layer's grid in MeV.
//! * **CaloChallenge** (Fast Calorimeter Simulation Challenge 2022): `incident_energies` (N,1)
//!   and `showers` (N, voxels), both in MeV, gzip-compressed.
//!
//! Dataset names are constants here so that every writer and reader agrees on them.

use std::path::Path;

use ndarray::{Array2, Array3, Axis};

use crate::data::NdData;
use crate::error::{ErrorKind, IoError, Result};
use crate::h5::{AttrValue, H5Reader, H5Writer, WriteOptions};

/// CaloGAN dataset names.
pub mod calogan_names {
    /// Layer 0: 3 × 96 cells (MeV).
    pub const LAYER_0: &str = "layer_0";
    /// Layer 1: 12 × 12 cells (MeV).
    pub const LAYER_1: &str = "layer_1";
    /// Layer 2: 12 × 6 cells (MeV).
    pub const LAYER_2: &str = "layer_2";
    /// Incident energy (GeV), shape (N,1).
    pub const ENERGY: &str = "energy";
    /// Energy outside each layer's grid (MeV), shape (N,3).
    pub const OVERFLOW: &str = "overflow";
}

/// CaloChallenge dataset names.
pub mod calochallenge_names {
    /// Incident energy (MeV), shape (N,1).
    pub const INCIDENT_ENERGIES: &str = "incident_energies";
    /// Voxel energies (MeV), shape (N, voxels).
    pub const SHOWERS: &str = "showers";
}

/// Cells per layer in the CaloGAN segmentation: (rows, columns).
pub const CALOGAN_LAYER_SHAPES: [(usize, usize); 3] = [(3, 96), (12, 12), (12, 6)];

/// Showers in the CaloGAN layout.
#[derive(Debug, Clone, PartialEq)]
pub struct CaloGanShowers {
    /// (N,3,96) MeV.
    pub layer_0: Array3<f32>,
    /// (N,12,12) MeV.
    pub layer_1: Array3<f32>,
    /// (N,12,6) MeV.
    pub layer_2: Array3<f32>,
    /// (N,1) GeV.
    pub energy: Array2<f32>,
    /// (N,3) MeV.
    pub overflow: Array2<f32>,
}

impl CaloGanShowers {
    /// Number of showers.
    pub fn len(&self) -> usize {
        self.energy.nrows()
    }

    /// True when there are no showers.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Check the shapes against the layout; the error names the dataset.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let n = self.len();
        let layers = [
            (&self.layer_0, calogan_names::LAYER_0),
            (&self.layer_1, calogan_names::LAYER_1),
            (&self.layer_2, calogan_names::LAYER_2),
        ];
        for ((arr, name), (r, c)) in layers.iter().zip(CALOGAN_LAYER_SHAPES) {
            if arr.shape() != [n, r, c] {
                return Err(format!(
                    "`{name}` has shape {:?}, expected [{n}, {r}, {c}]",
                    arr.shape()
                ));
            }
        }
        if self.energy.shape() != [n, 1] {
            return Err(format!(
                "`energy` has shape {:?}, expected [{n}, 1]",
                self.energy.shape()
            ));
        }
        if self.overflow.shape() != [n, 3] {
            return Err(format!(
                "`overflow` has shape {:?}, expected [{n}, 3]",
                self.overflow.shape()
            ));
        }
        Ok(())
    }

    /// Read a CaloGAN file. A file without `overflow` (some public samples lack it) gets zeros.
    pub fn read(path: impl AsRef<Path>) -> Result<CaloGanShowers> {
        let f = H5Reader::open(path.as_ref())?;
        let bad = |m: String| {
            IoError::new(
                path.as_ref(),
                ErrorKind::InvalidInput,
                format!("not a CaloGAN file: {m}"),
            )
        };
        let arr3 = |name: &str| -> Result<Array3<f32>> {
            f.read_f32(name)?
                .into_dimensionality()
                .map_err(|_| bad(format!("`{name}` is not 3-D")))
        };
        let layer_0 = arr3(calogan_names::LAYER_0)?;
        let layer_1 = arr3(calogan_names::LAYER_1)?;
        let layer_2 = arr3(calogan_names::LAYER_2)?;
        let energy: Array2<f32> = {
            let e = f.read_f32(calogan_names::ENERGY)?;
            let n = e.len();
            e.into_shape_with_order((n, 1))
                .map_err(|_| bad("`energy` cannot be shaped (N,1)".into()))?
        };
        let overflow = match f.read_f32(calogan_names::OVERFLOW) {
            Ok(o) => o
                .into_dimensionality()
                .map_err(|_| bad("`overflow` is not 2-D".into()))?,
            Err(e) if *e.kind() == ErrorKind::NotFound => Array2::zeros((energy.nrows(), 3)),
            Err(e) => return Err(e),
        };
        let s = CaloGanShowers {
            layer_0,
            layer_1,
            layer_2,
            energy,
            overflow,
        };
        s.validate().map_err(bad)?;
        Ok(s)
    }

    /// Write a CaloGAN file (gzip + shuffle, chunked by showers) with extra root attributes.
    pub fn write(&self, path: impl AsRef<Path>, attrs: &[(String, AttrValue)]) -> Result<()> {
        self.validate()
            .map_err(|m| IoError::new(path.as_ref(), ErrorKind::InvalidInput, m))?;
        let w = H5Writer::create(path.as_ref())?;
        let o = WriteOptions::default();
        w.write(
            calogan_names::LAYER_0,
            &NdData::F32(self.layer_0.clone().into_dyn()),
            &o,
        )?;
        w.write(
            calogan_names::LAYER_1,
            &NdData::F32(self.layer_1.clone().into_dyn()),
            &o,
        )?;
        w.write(
            calogan_names::LAYER_2,
            &NdData::F32(self.layer_2.clone().into_dyn()),
            &o,
        )?;
        w.write(
            calogan_names::ENERGY,
            &NdData::F32(self.energy.clone().into_dyn()),
            &o,
        )?;
        w.write(
            calogan_names::OVERFLOW,
            &NdData::F32(self.overflow.clone().into_dyn()),
            &o,
        )?;
        w.set_attr("/", "layout", "CaloGAN".into())?;
        w.set_attr(
            "/",
            "units",
            "cells and overflow in MeV; energy in GeV".into(),
        )?;
        for (k, v) in attrs {
            w.set_attr("/", k, v.clone())?;
        }
        w.finish()?;
        Ok(())
    }

    /// The same showers in the CaloChallenge layout: energies in MeV, cells flattened
    /// layer by layer in C order (3·96 + 12·12 + 12·6 = 504 voxels).
    pub fn to_calochallenge(&self) -> CaloChallengeShowers {
        let n = self.len();
        let flat = |a: &Array3<f32>| {
            a.to_shape((n, a.len_of(Axis(1)) * a.len_of(Axis(2))))
                .expect("contiguous")
                .to_owned()
        };
        let showers = ndarray::concatenate(
            Axis(1),
            &[
                flat(&self.layer_0).view(),
                flat(&self.layer_1).view(),
                flat(&self.layer_2).view(),
            ],
        )
        .expect("same rows");
        CaloChallengeShowers {
            incident_energies: self.energy.mapv(|e| e * 1000.0),
            showers,
        }
    }
}

/// Showers in the CaloChallenge layout.
#[derive(Debug, Clone, PartialEq)]
pub struct CaloChallengeShowers {
    /// (N,1) MeV.
    pub incident_energies: Array2<f32>,
    /// (N, voxels) MeV.
    pub showers: Array2<f32>,
}

impl CaloChallengeShowers {
    /// Read a CaloChallenge file.
    pub fn read(path: impl AsRef<Path>) -> Result<CaloChallengeShowers> {
        let f = H5Reader::open(path.as_ref())?;
        let bad = |m: &str| {
            IoError::new(
                path.as_ref(),
                ErrorKind::InvalidInput,
                format!("not a CaloChallenge file: {m}"),
            )
        };
        let e = f.read_f32(calochallenge_names::INCIDENT_ENERGIES)?;
        let n = e.len();
        let incident_energies = e
            .into_shape_with_order((n, 1))
            .map_err(|_| bad("`incident_energies` is not (N,1)"))?;
        let showers: Array2<f32> = f
            .read_f32(calochallenge_names::SHOWERS)?
            .into_dimensionality()
            .map_err(|_| bad("`showers` is not 2-D"))?;
        if showers.nrows() != n {
            return Err(bad(
                "`showers` and `incident_energies` have different numbers of rows",
            ));
        }
        Ok(CaloChallengeShowers {
            incident_energies,
            showers,
        })
    }

    /// Write a CaloChallenge file (gzip).
    pub fn write(&self, path: impl AsRef<Path>, attrs: &[(String, AttrValue)]) -> Result<()> {
        let w = H5Writer::create(path.as_ref())?;
        let o = WriteOptions::default();
        w.write(
            calochallenge_names::INCIDENT_ENERGIES,
            &NdData::F32(self.incident_energies.clone().into_dyn()),
            &o,
        )?;
        w.write(
            calochallenge_names::SHOWERS,
            &NdData::F32(self.showers.clone().into_dyn()),
            &o,
        )?;
        w.set_attr("/", "layout", "CaloChallenge".into())?;
        w.set_attr("/", "units", "MeV".into())?;
        for (k, v) in attrs {
            w.set_attr("/", k, v.clone())?;
        }
        w.finish()?;
        Ok(())
    }
}
