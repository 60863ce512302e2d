//! The two calorimeter-shower layouts the field uses, as typed readers and writers.
//!
//! * **CaloGAN** (Paganini, de Oliveira, Nachman 2018): `layer_0` (N,3,96), `layer_1` (N,12,12),
//!   `layer_2` (N,12,6) cell energies in MeV, `energy` (N,1) incident energy in GeV,
//!   `overflow` (N,3) energy outside each layer's grid in MeV.
//! * **CaloChallenge** (Fast Calorimeter Simulation Challenge 2022): `incident_energies` (N,1)
//!   and `showers` (N, voxels), both in MeV, gzip-compressed.
//!
//! Dataset names are constants here so that every writer and reader agrees on them.
//! [`read_showers`] reads either layout into [`CaloGanShowers`], telling which it found
//! ([`ShowerLayout`]); [`CaloGanShowers::cells`] and [`CaloGanShowers::from_cells`] are the one
//! flattening of the three layers into 504 cells (the CaloChallenge voxel order).
//!
//! ```no_run
//! use deepsky_io::calo::{read_showers, ShowerLayout};
//!
//! let (showers, layout) = read_showers("data/showers_calogan.h5")?;
//! assert_eq!(layout, ShowerLayout::CaloGan);
//! assert_eq!(showers.cells().ncols(), 504);
//! # Ok::<(), deepsky_io::IoError>(())
//! ```

use std::path::Path;

use ndarray::{Array2, Array3, ArrayView2, Axis};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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

/// Cells per shower in the CaloGAN segmentation (3·96 + 12·12 + 12·6), which is also the
/// number of voxels of a CaloChallenge file holding CaloGAN showers.
pub const CALOGAN_CELLS: usize = 504;

/// The layout of a shower file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ShowerLayout {
    /// CaloGAN: one dataset per layer (`layer_0` 3×96, `layer_1` 12×12, `layer_2` 12×6).
    #[serde(rename = "calogan")]
    CaloGan,
    /// CaloChallenge: one flat `showers` dataset of voxels per shower, energies in MeV.
    #[serde(rename = "calochallenge")]
    CaloChallenge,
}

impl ShowerLayout {
    /// The layout's name as written in configs and reports: `calogan` or `calochallenge`.
    pub fn name(&self) -> &'static str {
        match self {
            ShowerLayout::CaloGan => "calogan",
            ShowerLayout::CaloChallenge => "calochallenge",
        }
    }

    /// The layout of the HDF5 file at `path`, from its datasets: `layer_0` makes it CaloGAN,
    /// `showers` CaloChallenge; anything else is an error naming what was expected.
    pub fn of_file(path: impl AsRef<Path>) -> Result<ShowerLayout> {
        let path = path.as_ref();
        let f = H5Reader::open(path)?;
        let items: Vec<String> = f.items()?.into_iter().map(|i| i.path).collect();
        let has = |n: &str| items.iter().any(|i| i.trim_start_matches('/') == n);
        if has(calogan_names::LAYER_0) {
            Ok(ShowerLayout::CaloGan)
        } else if has(calochallenge_names::SHOWERS) {
            Ok(ShowerLayout::CaloChallenge)
        } else {
            Err(IoError::new(
                path,
                ErrorKind::InvalidInput,
                "neither a CaloGAN file (layer_0, layer_1, layer_2, energy) nor a CaloChallenge file (incident_energies, showers)",
            ))
        }
    }
}

impl std::fmt::Display for ShowerLayout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for ShowerLayout {
    type Err = String;

    /// `calogan` or `calochallenge`, in any case.
    fn from_str(s: &str) -> std::result::Result<ShowerLayout, String> {
        match s.to_ascii_lowercase().as_str() {
            "calogan" => Ok(ShowerLayout::CaloGan),
            "calochallenge" => Ok(ShowerLayout::CaloChallenge),
            _ => Err(format!(
                "unknown layout `{s}`: expected calogan or calochallenge"
            )),
        }
    }
}

/// The one flattening of the CaloGAN segmentation: each shower's three (N, rows, columns)
/// layers as one row of [`CALOGAN_CELLS`], layer 0, 1, 2, each in C order over (η, φ). This
/// is the CaloChallenge voxel order.
///
/// # Panics
///
/// When the layers do not have the CaloGAN shapes for the same N.
pub fn flatten_layers(layers: [ndarray::ArrayView3<f32>; 3]) -> Array2<f32> {
    let n = layers[0].len_of(Axis(0));
    for (l, (r, c)) in layers.iter().zip(CALOGAN_LAYER_SHAPES) {
        assert_eq!(l.shape(), [n, r, c], "not the CaloGAN layer shapes");
    }
    let mut out = Array2::<f32>::zeros((n, CALOGAN_CELLS));
    for (i, mut row) in out.axis_iter_mut(Axis(0)).enumerate() {
        let cells = layers.iter().flat_map(|l| l.index_axis(Axis(0), i));
        for (d, &v) in row.iter_mut().zip(cells) {
            *d = v;
        }
    }
    out
}

/// Read a shower file in either layout as CaloGAN showers, and say which layout it was. A
/// CaloChallenge file must hold CaloGAN showers ([`CALOGAN_CELLS`] voxels in the order of
/// [`CaloGanShowers::cells`]); its energies are converted to GeV and its overflow is zero.
pub fn read_showers(path: impl AsRef<Path>) -> Result<(CaloGanShowers, ShowerLayout)> {
    let path = path.as_ref();
    let layout = ShowerLayout::of_file(path)?;
    let showers = match layout {
        ShowerLayout::CaloGan => CaloGanShowers::read(path)?,
        ShowerLayout::CaloChallenge => CaloChallengeShowers::read(path)?
            .to_calogan()
            .map_err(|m| IoError::new(path, ErrorKind::InvalidInput, m))?,
    };
    Ok((showers, layout))
}

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

    /// Write the showers in `layout`: [`Self::write`] or [`CaloChallengeShowers::write`].
    pub fn write_as(
        &self,
        layout: ShowerLayout,
        path: impl AsRef<Path>,
        attrs: &[(String, AttrValue)],
    ) -> Result<()> {
        match layout {
            ShowerLayout::CaloGan => self.write(path, attrs),
            ShowerLayout::CaloChallenge => self.to_calochallenge().write(path, attrs),
        }
    }

    /// The first `n` showers (all of them when there are fewer).
    pub fn head(&self, n: usize) -> CaloGanShowers {
        let n = n.min(self.len());
        CaloGanShowers {
            layer_0: self.layer_0.slice(ndarray::s![..n, .., ..]).to_owned(),
            layer_1: self.layer_1.slice(ndarray::s![..n, .., ..]).to_owned(),
            layer_2: self.layer_2.slice(ndarray::s![..n, .., ..]).to_owned(),
            energy: self.energy.slice(ndarray::s![..n, ..]).to_owned(),
            overflow: self.overflow.slice(ndarray::s![..n, ..]).to_owned(),
        }
    }

    /// Every shower's cells in one row of [`CALOGAN_CELLS`] (MeV): [`flatten_layers`] of the
    /// three layers. [`Self::from_cells`] inverts it.
    pub fn cells(&self) -> Array2<f32> {
        flatten_layers([
            self.layer_0.view(),
            self.layer_1.view(),
            self.layer_2.view(),
        ])
    }

    /// Showers from (N, [`CALOGAN_CELLS`]) cells in the order of [`Self::cells`], (N, 3)
    /// overflow (MeV) and N incident energies (GeV).
    ///
    /// # Panics
    ///
    /// When the shapes disagree with N = `energies_gev.len()`.
    pub fn from_cells(
        cells: ArrayView2<f32>,
        overflow: ArrayView2<f32>,
        energies_gev: &[f32],
    ) -> CaloGanShowers {
        let n = energies_gev.len();
        assert_eq!(cells.shape(), [n, CALOGAN_CELLS], "cells must be (N, 504)");
        assert_eq!(overflow.shape(), [n, 3], "overflow must be (N, 3)");
        let mut layers = CALOGAN_LAYER_SHAPES.map(|(r, c)| Array3::<f32>::zeros((n, r, c)));
        for (i, row) in cells.axis_iter(Axis(0)).enumerate() {
            let mut values = row.iter();
            for layer in layers.iter_mut() {
                for (d, &v) in layer.index_axis_mut(Axis(0), i).iter_mut().zip(&mut values) {
                    *d = v;
                }
            }
        }
        let [layer_0, layer_1, layer_2] = layers;
        CaloGanShowers {
            layer_0,
            layer_1,
            layer_2,
            energy: Array2::from_shape_vec((n, 1), energies_gev.to_vec()).expect("n energies"),
            overflow: overflow.to_owned(),
        }
    }

    /// The same showers in the CaloChallenge layout: energies in MeV, the cells of
    /// [`Self::cells`] as voxels.
    pub fn to_calochallenge(&self) -> CaloChallengeShowers {
        CaloChallengeShowers {
            incident_energies: self.energy.mapv(|e| e * 1000.0),
            showers: self.cells(),
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

    /// The same showers in the CaloGAN layout (energies in GeV, overflow zero, which the
    /// CaloChallenge layout does not record); an error when the file's voxels are not the
    /// [`CALOGAN_CELLS`] of the CaloGAN segmentation.
    pub fn to_calogan(&self) -> std::result::Result<CaloGanShowers, String> {
        if self.showers.ncols() != CALOGAN_CELLS {
            return Err(format!(
                "CaloChallenge file with {} voxels; the CaloGAN segmentation has {CALOGAN_CELLS} cells",
                self.showers.ncols()
            ));
        }
        let n = self.showers.nrows();
        let energies: Vec<f32> = self.incident_energies.iter().map(|e| e / 1000.0).collect();
        Ok(CaloGanShowers::from_cells(
            self.showers.view(),
            Array2::zeros((n, 3)).view(),
            &energies,
        ))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Three showers whose every cell holds a distinct value.
    fn numbered(n: usize) -> CaloGanShowers {
        let layer = |l: usize, (r, c): (usize, usize)| {
            Array3::from_shape_fn((n, r, c), |(i, j, k)| {
                (i * 1000 + l * 300 + j * c + k) as f32
            })
        };
        CaloGanShowers {
            layer_0: layer(0, CALOGAN_LAYER_SHAPES[0]),
            layer_1: layer(1, CALOGAN_LAYER_SHAPES[1]),
            layer_2: layer(2, CALOGAN_LAYER_SHAPES[2]),
            energy: Array2::from_shape_fn((n, 1), |(i, _)| 10.0 * (i + 1) as f32),
            overflow: Array2::from_shape_fn((n, 3), |(i, j)| (i * 3 + j) as f32),
        }
    }

    #[test]
    fn cells_are_layer_by_layer_in_c_order_and_from_cells_inverts_them() {
        let s = numbered(3);
        let cells = s.cells();
        assert_eq!(cells.shape(), [3, CALOGAN_CELLS]);
        // Shower 1: layer 0 row 2 column 5 is cell 2·96 + 5; layer 1 starts at 288, layer 2
        // at 288 + 144.
        assert_eq!(cells[[1, 2 * 96 + 5]], s.layer_0[[1, 2, 5]]);
        assert_eq!(cells[[1, 288 + 12 + 3]], s.layer_1[[1, 1, 3]]);
        assert_eq!(cells[[2, 432 + 6 * 11 + 5]], s.layer_2[[2, 11, 5]]);
        let energies: Vec<f32> = s.energy.iter().copied().collect();
        let back = CaloGanShowers::from_cells(cells.view(), s.overflow.view(), &energies);
        assert_eq!(back, s);
    }

    #[test]
    fn calochallenge_conversion_round_trips_with_energies_in_mev() {
        let mut s = numbered(2);
        let cc = s.to_calochallenge();
        assert_eq!(cc.incident_energies[[1, 0]], 20_000.0);
        assert_eq!(cc.showers, s.cells());
        // The CaloChallenge layout has no overflow: it comes back as zeros.
        s.overflow.fill(0.0);
        assert_eq!(cc.to_calogan().unwrap(), s);
        let other = CaloChallengeShowers {
            incident_energies: Array2::ones((2, 1)),
            showers: Array2::zeros((2, 368)),
        };
        let err = other.to_calogan().unwrap_err();
        assert!(err.contains("368 voxels"), "{err}");
    }

    #[test]
    fn head_takes_the_first_showers() {
        let s = numbered(3);
        let h = s.head(2);
        assert_eq!(h.len(), 2);
        assert_eq!(h.layer_1[[1, 4, 4]], s.layer_1[[1, 4, 4]]);
        assert_eq!(h.overflow.row(1), s.overflow.row(1));
        assert_eq!(s.head(10).len(), 3);
    }

    #[test]
    fn layouts_are_sniffed_from_the_datasets() {
        let dir = tempfile::tempdir().unwrap();
        let s = numbered(2);
        let gan = dir.path().join("gan.h5");
        let challenge = dir.path().join("challenge.h5");
        s.write_as(ShowerLayout::CaloGan, &gan, &[]).unwrap();
        s.write_as(ShowerLayout::CaloChallenge, &challenge, &[])
            .unwrap();
        let (read, layout) = read_showers(&gan).unwrap();
        assert_eq!((layout, read), (ShowerLayout::CaloGan, s.clone()));
        let (read, layout) = read_showers(&challenge).unwrap();
        assert_eq!(layout, ShowerLayout::CaloChallenge);
        assert_eq!(read.layer_2, s.layer_2);
        assert_eq!(read.energy, s.energy);

        let other = dir.path().join("other.h5");
        let w = H5Writer::create(&other).unwrap();
        w.write(
            "x",
            &NdData::F32(Array2::<f32>::zeros((2, 2)).into_dyn()),
            &WriteOptions::default(),
        )
        .unwrap();
        w.finish().unwrap();
        let err = read_showers(&other).unwrap_err().to_string();
        assert!(
            err.contains("other.h5") && err.contains("neither a CaloGAN"),
            "{err}"
        );
    }

    #[test]
    fn layout_names_parse_and_print() {
        assert_eq!(
            "CaloChallenge".parse::<ShowerLayout>(),
            Ok(ShowerLayout::CaloChallenge)
        );
        assert_eq!(ShowerLayout::CaloGan.to_string(), "calogan");
        assert!("calo"
            .parse::<ShowerLayout>()
            .unwrap_err()
            .contains("expected calogan"));
        assert_eq!(
            serde_json::to_string(&ShowerLayout::CaloChallenge).unwrap(),
            "\"calochallenge\""
        );
    }
}
