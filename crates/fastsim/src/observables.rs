//! High-level shower observables: the physics quantities a fast simulator is judged on.
//!
//! A generator can match the cell-by-cell marginals and still get the physics wrong (or the
//! other way round), so the CaloGAN and CaloChallenge papers compare a fixed set of derived
//! quantities between generated and reference showers: the energy in each layer and its share
//! of the total, the response (deposited over incident energy), the longitudinal depth and its
//! spread, the lateral width in each layer, the fraction of empty cells and the hottest cell.
//! [`observables`] computes them for every shower of a [`CaloGanShowers`] sample, in the fixed
//! order of [`observable_list`], so that [`crate::metrics`] can compare them column by column.
//!
//! The module also builds the inputs of the two classifier two-sample tests
//! ([`crate::two_sample`]): [`cell_features`] (every cell, for the "all cells" classifier of
//! CaloChallenge) and [`high_level_features`] (the observables, for the "high-level"
//! classifier).
//!
//! # Conventions
//!
//! * Everything is computed in `f64`: sums over 504 cells of values spanning six decades lose
//!   precision in `f32`.
//! * Cell positions are the cell centres of [`Calorimeter::calogan`]'s grids, which are centred
//!   on the shower axis: cell `i` of a layer with `n` cells of size `s` along an axis sits at
//!   `(i + ½)·s − n·s/2` mm. Axis 1 of a layer array is "eta", axis 2 is "phi".
//! * Negative cell energies (a generator without an output ReLU can produce small ones) are
//!   treated as zero: a negative energy has no physical meaning and would make the
//!   energy-weighted variances negative. NaN cells are not hidden: they propagate into the
//!   observables, so broken generator output stays visible.
//! * Overflow (energy outside the cell grids) is *not* counted: the observables describe what
//!   the cells measure, which is what the generator produces.
//! * Showers or layers without energy give finite values: widths, fractions and the depth are
//!   0 there, never NaN.

use deepsky_io::calo::CaloGanShowers;
use deepsky_sim::shower::{Calorimeter, LayerSpec};
use ndarray::{Array2, ArrayView2, Axis};
use rayon::prelude::*;

use crate::data::axis_centres_mm;

/// One observable: how it is named, labelled and best binned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observable {
    /// snake_case name, used as JSON key and file name (e.g. `e_layer_0`).
    pub name: &'static str,
    /// Axis label with unit (e.g. `energy in layer 0 [GeV]`).
    pub label: &'static str,
    /// Whether the distribution spans decades, so that log-spaced bins suit it.
    pub log_x: bool,
}

/// How [`high_level_features`] transforms an observable for the classifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transform {
    /// Used as is (bounded quantities: fractions, depth, widths, sparsity).
    Identity,
    /// An energy in GeV, fed as ln(1 + E/MeV): heavy-tailed and spanning decades, and finite
    /// for empty layers.
    LogEnergyGev,
}

const fn obs(name: &'static str, label: &'static str, log_x: bool) -> Observable {
    Observable { name, label, log_x }
}

/// Number of observables per shower (the columns of [`observables`]).
pub const N_OBSERVABLES: usize = 16;

/// The observables in column order, with their classifier transform. Indices used by
/// [`shower_observables`] are the positions in this table.
const TABLE: [(Observable, Transform); N_OBSERVABLES] = [
    (
        obs("e_layer_0", "energy in layer 0 [GeV]", true),
        Transform::LogEnergyGev,
    ),
    (
        obs("e_layer_1", "energy in layer 1 [GeV]", true),
        Transform::LogEnergyGev,
    ),
    (
        obs("e_layer_2", "energy in layer 2 [GeV]", true),
        Transform::LogEnergyGev,
    ),
    (
        obs(
            "e_total_over_incident",
            "deposited energy / incident energy",
            false,
        ),
        Transform::Identity,
    ),
    (
        obs("frac_layer_0", "energy fraction in layer 0", false),
        Transform::Identity,
    ),
    (
        obs("frac_layer_1", "energy fraction in layer 1", false),
        Transform::Identity,
    ),
    (
        obs("frac_layer_2", "energy fraction in layer 2", false),
        Transform::Identity,
    ),
    (
        obs("depth", "shower depth (energy-weighted layer index)", false),
        Transform::Identity,
    ),
    (
        obs(
            "depth_width",
            "shower depth width (energy-weighted std of layer index)",
            false,
        ),
        Transform::Identity,
    ),
    (
        obs("width_layer_0", "lateral width in layer 0 [mm]", false),
        Transform::Identity,
    ),
    (
        obs("width_layer_1", "lateral width in layer 1 [mm]", false),
        Transform::Identity,
    ),
    (
        obs("width_layer_2", "lateral width in layer 2 [mm]", false),
        Transform::Identity,
    ),
    (
        obs(
            "sparsity_layer_0",
            "fraction of empty cells in layer 0",
            false,
        ),
        Transform::Identity,
    ),
    (
        obs(
            "sparsity_layer_1",
            "fraction of empty cells in layer 1",
            false,
        ),
        Transform::Identity,
    ),
    (
        obs(
            "sparsity_layer_2",
            "fraction of empty cells in layer 2",
            false,
        ),
        Transform::Identity,
    ),
    (
        obs("e_max", "hottest cell energy [GeV]", true),
        Transform::LogEnergyGev,
    ),
];

/// The observables computed by [`observables`], in its column order:
///
/// | name | meaning |
/// |---|---|
/// | `e_layer_0/1/2` | energy in the cells of the layer, GeV |
/// | `e_total_over_incident` | sum of all cells (not overflow) / incident energy |
/// | `frac_layer_0/1/2` | layer energy / sum of all cells |
/// | `depth` | energy-weighted mean layer index (0..=2) |
/// | `depth_width` | energy-weighted standard deviation of the layer index |
/// | `width_layer_0/1/2` | energy-weighted lateral RMS radius about the layer's centroid, mm |
/// | `sparsity_layer_0/1/2` | fraction of the layer's cells with energy ≤ 0 |
/// | `e_max` | energy of the hottest cell, GeV |
pub fn observable_list() -> Vec<Observable> {
    TABLE.iter().map(|(o, _)| *o).collect()
}

/// Cell-centre positions (mm) along the two axes of one layer.
struct LayerGeometry {
    eta_mm: Vec<f64>,
    phi_mm: Vec<f64>,
}

impl LayerGeometry {
    fn new(spec: &LayerSpec) -> LayerGeometry {
        LayerGeometry {
            eta_mm: axis_centres_mm(spec.n_eta, spec.cell_eta_mm),
            phi_mm: axis_centres_mm(spec.n_phi, spec.cell_phi_mm),
        }
    }
}

/// What one layer of one shower contributes.
struct LayerStats {
    /// Sum of (non-negative) cell energies, MeV.
    energy_mev: f64,
    /// Energy-weighted RMS radius about the centroid, mm (0 for an empty layer).
    width_mm: f64,
    /// Fraction of cells with energy ≤ 0.
    sparsity: f64,
    /// Hottest cell, MeV.
    max_mev: f64,
}

/// A negative energy counts as zero; NaN stays NaN (see the module docs).
#[inline]
fn clip(e: f32) -> f64 {
    if e < 0.0 {
        0.0
    } else {
        f64::from(e)
    }
}

fn layer_stats(cells: ArrayView2<'_, f32>, geo: &LayerGeometry) -> LayerStats {
    if cells.iter().any(|e| e.is_nan()) {
        // Keep broken input visible (module docs) instead of silently dropping the cell.
        return LayerStats {
            energy_mev: f64::NAN,
            width_mm: f64::NAN,
            sparsity: f64::NAN,
            max_mev: f64::NAN,
        };
    }
    let (mut s, mut sx, mut sy) = (0.0, 0.0, 0.0);
    let mut empty = 0usize;
    let mut max_mev = 0f64;
    for ((i, j), &e) in cells.indexed_iter() {
        if e <= 0.0 {
            empty += 1;
            continue;
        }
        let w = f64::from(e);
        s += w;
        sx += w * geo.eta_mm[i];
        sy += w * geo.phi_mm[j];
        max_mev = max_mev.max(w);
    }
    // Second pass about the centroid: the one-pass E[x²] − E[x]² cancels badly for narrow
    // showers far from the grid centre.
    let width_mm = if s > 0.0 {
        let (cx, cy) = (sx / s, sy / s);
        let mut v = 0.0;
        for ((i, j), &e) in cells.indexed_iter() {
            if e > 0.0 {
                let (dx, dy) = (geo.eta_mm[i] - cx, geo.phi_mm[j] - cy);
                v += f64::from(e) * (dx * dx + dy * dy);
            }
        }
        (v / s).sqrt()
    } else {
        0.0
    };
    LayerStats {
        energy_mev: s,
        width_mm,
        sparsity: empty as f64 / cells.len().max(1) as f64,
        max_mev,
    }
}

/// The observables of one shower, in the order of [`TABLE`].
fn shower_observables(
    layers: [ArrayView2<'_, f32>; 3],
    incident_gev: f64,
    geo: &[LayerGeometry; 3],
) -> [f64; N_OBSERVABLES] {
    let stats: Vec<LayerStats> = layers
        .iter()
        .zip(geo)
        .map(|(cells, g)| layer_stats(cells.view(), g))
        .collect();
    let e: [f64; 3] = [
        stats[0].energy_mev,
        stats[1].energy_mev,
        stats[2].energy_mev,
    ];
    let total_mev: f64 = e.iter().sum();
    let frac = |l: usize| {
        if total_mev > 0.0 {
            e[l] / total_mev
        } else if total_mev.is_nan() {
            f64::NAN
        } else {
            0.0
        }
    };
    let f = [frac(0), frac(1), frac(2)];
    // Layer index moments with the energy fractions as weights.
    let depth = f[1] + 2.0 * f[2];
    let depth_sq = f[1] + 4.0 * f[2];
    let depth_width = (depth_sq - depth * depth).max(0.0).sqrt();
    let depth_width = if depth.is_nan() {
        f64::NAN
    } else {
        depth_width
    };
    let response = if incident_gev > 0.0 {
        total_mev / (1000.0 * incident_gev)
    } else if incident_gev.is_nan() {
        f64::NAN
    } else {
        // No meaningful ratio without an incident energy; 0 keeps the column finite.
        0.0
    };
    // f64::max drops NaN, so propagate it explicitly.
    let e_max_mev = if stats.iter().any(|s| s.max_mev.is_nan()) {
        f64::NAN
    } else {
        stats.iter().map(|s| s.max_mev).fold(0.0, f64::max)
    };
    [
        e[0] / 1000.0,
        e[1] / 1000.0,
        e[2] / 1000.0,
        response,
        f[0],
        f[1],
        f[2],
        depth,
        depth_width,
        stats[0].width_mm,
        stats[1].width_mm,
        stats[2].width_mm,
        stats[0].sparsity,
        stats[1].sparsity,
        stats[2].sparsity,
        e_max_mev / 1000.0,
    ]
}

/// Panics with the dataset at fault when `showers` does not have the CaloGAN shapes: the
/// geometry below assumes them, and a silently wrong cell position would be worse.
fn geometry_for(showers: &CaloGanShowers) -> [LayerGeometry; 3] {
    if let Err(m) = showers.validate() {
        panic!("showers do not have the CaloGAN layout: {m}");
    }
    Calorimeter::calogan()
        .layers()
        .map(|l| LayerGeometry::new(&l))
}

/// Computes the observables of every shower: an (N, [`N_OBSERVABLES`]) array whose columns
/// follow [`observable_list`]. Runs in parallel over showers (rayon).
///
/// # Panics
///
/// When the arrays do not have the CaloGAN shapes ([`CaloGanShowers::validate`]).
pub fn observables(showers: &CaloGanShowers) -> Array2<f64> {
    let geo = geometry_for(showers);
    let n = showers.len();
    let rows: Vec<[f64; N_OBSERVABLES]> = (0..n)
        .into_par_iter()
        .map(|i| {
            let layers = [
                showers.layer_0.index_axis(Axis(0), i),
                showers.layer_1.index_axis(Axis(0), i),
                showers.layer_2.index_axis(Axis(0), i),
            ];
            shower_observables(layers, f64::from(showers.energy[[i, 0]]), &geo)
        })
        .collect();
    let flat: Vec<f64> = rows.into_iter().flatten().collect();
    Array2::from_shape_vec((n, N_OBSERVABLES), flat).expect("N × N_OBSERVABLES values")
}

/// Number of columns of [`cell_features`]: the 504 cells and the incident energy.
pub const N_CELL_FEATURES: usize = deepsky_sim::shower::N_CELLS + 1;

/// Inputs of the all-cells classifier: an (N, 505) array holding ln(1 + E/MeV) of every cell
/// (layers 0, 1, 2, each flattened in C order, negative energies as 0), then
/// log10(incident energy / GeV).
///
/// The logarithm turns energies spanning six decades into a range a network can learn from,
/// and ln(1 + ·) keeps empty cells at exactly 0. The incident energy is included because the
/// test must compare showers *given* their energy: a generator is only good if its showers fit
/// their conditioning energy.
///
/// # Panics
///
/// When the arrays do not have the CaloGAN shapes ([`CaloGanShowers::validate`]).
pub fn cell_features(showers: &CaloGanShowers) -> Array2<f32> {
    if let Err(m) = showers.validate() {
        panic!("showers do not have the CaloGAN layout: {m}");
    }
    let cells = showers.cells();
    let n = showers.len();
    let mut out = Array2::<f32>::zeros((n, N_CELL_FEATURES));
    out.axis_iter_mut(Axis(0))
        .into_par_iter()
        .zip(cells.axis_iter(Axis(0)))
        .enumerate()
        .for_each(|(i, (mut row, cells))| {
            for (dst, &e) in row.iter_mut().zip(cells) {
                *dst = clip(e).ln_1p() as f32;
            }
            row[N_CELL_FEATURES - 1] = f64::from(showers.energy[[i, 0]]).log10() as f32;
        });
    out
}

/// Number of columns of [`high_level_features`]: the observables and the incident energy.
pub const N_HIGH_LEVEL_FEATURES: usize = N_OBSERVABLES + 1;

/// Inputs of the high-level classifier: an (N, [`N_HIGH_LEVEL_FEATURES`]) array with the
/// observables of [`observable_list`] in order (the energies `e_layer_*` and `e_max` as
/// ln(1 + E/MeV), because they are heavy-tailed and span decades; the bounded ones as they
/// are), then log10(incident energy / GeV).
///
/// # Panics
///
/// When the arrays do not have the CaloGAN shapes ([`CaloGanShowers::validate`]).
pub fn high_level_features(showers: &CaloGanShowers) -> Array2<f32> {
    let obs = observables(showers);
    let n = obs.nrows();
    let mut out = Array2::<f32>::zeros((n, N_HIGH_LEVEL_FEATURES));
    for ((mut dst, src), e_inc) in out
        .axis_iter_mut(Axis(0))
        .zip(obs.axis_iter(Axis(0)))
        .zip(showers.energy.column(0))
    {
        for ((d, &v), (_, t)) in dst.iter_mut().zip(src).zip(&TABLE) {
            *d = match t {
                Transform::Identity => v,
                Transform::LogEnergyGev => (1000.0 * v).ln_1p(),
            } as f32;
        }
        dst[N_OBSERVABLES] = f64::from(*e_inc).log10() as f32;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array3, ArrayView1};

    /// `n` empty showers of 10 GeV.
    fn empty(n: usize) -> CaloGanShowers {
        CaloGanShowers {
            layer_0: Array3::zeros((n, 3, 96)),
            layer_1: Array3::zeros((n, 12, 12)),
            layer_2: Array3::zeros((n, 12, 6)),
            energy: Array2::from_elem((n, 1), 10.0),
            overflow: Array2::zeros((n, 3)),
        }
    }

    fn column(obs: &Array2<f64>, name: &str) -> Vec<f64> {
        let k = observable_list()
            .iter()
            .position(|o| o.name == name)
            .unwrap_or_else(|| panic!("no observable {name}"));
        obs.column(k).to_vec()
    }

    #[test]
    fn list_matches_columns_and_names_are_unique_snake_case() {
        let list = observable_list();
        assert_eq!(list.len(), N_OBSERVABLES);
        let mut names: Vec<_> = list.iter().map(|o| o.name).collect();
        for n in &names {
            assert!(n
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'));
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), N_OBSERVABLES);
        assert_eq!(observables(&empty(3)).shape(), &[3, N_OBSERVABLES]);
    }

    #[test]
    fn empty_showers_are_finite_with_defined_values() {
        let obs = observables(&empty(2));
        assert!(obs.iter().all(|v| v.is_finite()));
        for name in [
            "depth",
            "depth_width",
            "width_layer_1",
            "frac_layer_0",
            "e_max",
        ] {
            assert_eq!(column(&obs, name), vec![0.0, 0.0], "{name}");
        }
        assert_eq!(column(&obs, "sparsity_layer_2"), vec![1.0, 1.0]);
        let hl = high_level_features(&empty(2));
        assert!(hl.iter().all(|v| v.is_finite()));
        assert_eq!(hl[[0, N_OBSERVABLES]], 1.0); // log10(10 GeV)
    }

    #[test]
    fn hand_made_shower() {
        let mut s = empty(1);
        // Layer 1 (40 mm cells, 12 × 12, centres at ±20, ±60 … mm): 1 GeV in each of two
        // cells at eta = −20 mm and +20 mm (indices 5 and 6), phi = +20 mm (index 6).
        // Centroid (0, 20); RMS radius 20 mm.
        s.layer_1[[0, 5, 6]] = 1000.0;
        s.layer_1[[0, 6, 6]] = 1000.0;
        // Layer 2: 2 GeV in one cell. Layer 0 stays empty.
        s.layer_2[[0, 3, 2]] = 2000.0;
        // Negative energy counts as zero and as empty.
        s.layer_2[[0, 0, 0]] = -5.0;
        s.overflow[[0, 1]] = 3000.0; // not counted
        let obs = observables(&s);
        let get = |n: &str| column(&obs, n)[0];
        assert_eq!(get("e_layer_0"), 0.0);
        assert_eq!(get("e_layer_1"), 2.0);
        assert_eq!(get("e_layer_2"), 2.0);
        assert!((get("e_total_over_incident") - 0.4).abs() < 1e-12);
        assert_eq!(get("frac_layer_1"), 0.5);
        assert_eq!(get("frac_layer_2"), 0.5);
        // Layer index 1 and 2 with equal weights: mean 1.5, std 0.5.
        assert!((get("depth") - 1.5).abs() < 1e-12);
        assert!((get("depth_width") - 0.5).abs() < 1e-12);
        assert!((get("width_layer_1") - 20.0).abs() < 1e-9);
        assert_eq!(get("width_layer_2"), 0.0); // a single cell has no spread
        assert_eq!(get("width_layer_0"), 0.0);
        assert_eq!(get("sparsity_layer_0"), 1.0);
        assert!((get("sparsity_layer_1") - 142.0 / 144.0).abs() < 1e-12);
        assert!((get("sparsity_layer_2") - 71.0 / 72.0).abs() < 1e-12);
        assert_eq!(get("e_max"), 2.0);
    }

    #[test]
    fn layer_0_strips_use_their_own_cell_sizes() {
        // Layer 0: 3 × 96 cells of 160 mm (eta) × 5 mm (phi). Two equal cells in adjacent phi
        // strips: centres 5 mm apart, so the RMS radius is 2.5 mm; two cells in adjacent eta
        // rows: 160 mm apart, radius 80 mm.
        let mut s = empty(2);
        s.layer_0[[0, 1, 47]] = 100.0;
        s.layer_0[[0, 1, 48]] = 100.0;
        s.layer_0[[1, 0, 10]] = 100.0;
        s.layer_0[[1, 1, 10]] = 100.0;
        let w = column(&observables(&s), "width_layer_0");
        assert!((w[0] - 2.5).abs() < 1e-9, "{w:?}");
        assert!((w[1] - 80.0).abs() < 1e-9, "{w:?}");
    }

    #[test]
    fn nan_cells_propagate() {
        let mut s = empty(1);
        s.layer_1[[0, 0, 0]] = f32::NAN;
        let obs = observables(&s);
        assert!(column(&obs, "e_layer_1")[0].is_nan());
        assert!(column(&obs, "e_max")[0].is_nan());
        assert!(column(&obs, "depth")[0].is_nan());
    }

    #[test]
    fn cell_features_layout() {
        let mut s = empty(2);
        s.layer_0[[1, 0, 1]] = 1.0;
        s.layer_1[[1, 11, 11]] = 999.0;
        s.layer_2[[1, 11, 5]] = -3.0;
        s.energy[[1, 0]] = 100.0;
        let f = cell_features(&s);
        assert_eq!(f.shape(), &[2, 505]);
        let row: ArrayView1<f32> = f.row(1);
        assert!((row[1] - 2f32.ln()).abs() < 1e-6);
        assert!((row[288 + 143] - 1000f32.ln()).abs() < 1e-5);
        assert_eq!(row[503], 0.0);
        assert_eq!(row[504], 2.0);
        assert!(f.row(0).iter().take(504).all(|&v| v == 0.0));
    }
}
