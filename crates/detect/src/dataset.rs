//! Training examples: crops of simulated fields with their truth boxes, made afresh for every
//! epoch with the augmentations that suit sky images.
//!
//! Each field is simulated once without noise (sky included). An example is then: a random
//! square crop; a flux scaling of everything above the sky (log-uniform, so the network sees
//! each source at many signal-to-noise ratios); a fresh Poisson + read-noise realisation (as
//! Gaussian noise of variance `counts/gain + (read noise/gain)²`, clipped at saturation); the
//! same background estimation and asinh normalisation as at prediction time; and one of the
//! eight flips and 90° rotations of the square. Every draw is seeded by `(seed, epoch, index)`,
//! so an epoch can be replayed exactly (which `--resume` relies on).

use deepsky_core::config::{ConfigError, Validate};
use ndarray::{s, Array2, ArrayView2};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use deepsky_nn::init::named_rng;
use deepsky_sim::sky::{simulate_sky, SkyConfig};

use crate::assign::Target;
use crate::boxes::BBox;
use crate::error::{DetectError, Result};
use crate::metrics::TruthObject;
use crate::Preprocess;

/// How training examples are made (`[data]`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// Number of simulated training fields.
    pub fields: usize,
    /// Examples drawn from each field per epoch.
    pub crops_per_field: usize,
    /// Side of the square crops, pixels (a multiple of 16).
    pub crop: usize,
    /// Sources (stars, galaxies) whose truth S/N after flux scaling is below this are not
    /// targets: nobody can find them, and teaching the network that they are background would
    /// be teaching it to ignore faint real sources too.
    pub min_snr: f64,
    /// Range of the log-uniform flux scaling of the sources.
    pub flux_scale: [f64; 2],
    /// First seed of the training fields (field k uses `field_seed + k`); keep it away from
    /// the seeds of evaluation fields.
    pub field_seed: u64,
    /// The simulator's settings for the training fields (`[data.sky]`, every key of
    /// `deepsky simulate sky`'s config); `seed` and `noise.enabled` are set per field.
    pub sky: SkyConfig,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            fields: 32,
            crops_per_field: 8,
            crop: 128,
            min_snr: 2.0,
            flux_scale: [0.5, 2.0],
            field_seed: 10_000,
            sky: SkyConfig::default(),
        }
    }
}

impl Validate for DataConfig {
    /// Range checks, keys relative to the `[data]` section.
    fn validate(&self) -> std::result::Result<(), ConfigError> {
        let bad = |k: &str, m: &str| Err(ConfigError::at(k, m));
        if self.fields == 0 {
            return bad("fields", "must be at least 1");
        }
        if self.crops_per_field == 0 {
            return bad("crops_per_field", "must be at least 1");
        }
        if self.crop < 32 || self.crop % crate::model::SIZE_MULTIPLE != 0 {
            return bad("crop", "must be a multiple of 16, at least 32");
        }
        if self.crop > self.sky.width || self.crop > self.sky.height {
            return bad(
                "crop",
                "is larger than the simulated field (data.sky.width/height)",
            );
        }
        if !(self.flux_scale[0] > 0.0 && self.flux_scale[0] <= self.flux_scale[1]) {
            return bad("flux_scale", "must be [lo, hi] with 0 < lo <= hi");
        }
        if let Err(e) = self.sky.validate() {
            return bad("sky", &e.to_string());
        }
        Ok(())
    }
}

impl DataConfig {
    /// The simulator's settings of an unseen field for validation: the seed after the
    /// training fields'.
    pub fn validation_sky(&self) -> SkyConfig {
        let mut sky = self.sky.clone();
        sky.seed = self.field_seed + self.fields as u64;
        sky
    }
}

/// A simulated field ready for cropping.
pub struct Field {
    /// Expected counts in ADU, sky included, no noise.
    pub expected: Array2<f32>,
    /// Truth objects.
    pub truth: Vec<TruthObject>,
}

/// The training fields and how to draw examples from them.
pub struct TrainData {
    /// Fields.
    pub fields: Vec<Field>,
    /// Settings.
    pub cfg: DataConfig,
    /// Preprocessing (shared with prediction).
    pub pre: Preprocess,
    /// Seed of the augmentation draws.
    pub seed: u64,
}

/// One example.
pub struct Example {
    /// Normalised image, `crop × crop`.
    pub image: Array2<f32>,
    /// Its targets.
    pub targets: Vec<Target>,
}

/// Truth objects of a simulated catalogue for [`crate::metrics::evaluate`], at the catalogue's
/// positions (not the box centres: saturated stars' boxes follow their bleed trails).
pub fn truth_objects(cat: &deepsky_sim::sky::SkyCatalog) -> Vec<TruthObject> {
    (0..cat.len())
        .filter(|&i| cat.bbox_xmin[i] <= cat.bbox_xmax[i] && cat.bbox_ymin[i] <= cat.bbox_ymax[i])
        .map(|i| {
            TruthObject::from_catalog(
                (cat.x[i], cat.y[i]),
                [
                    cat.bbox_xmin[i],
                    cat.bbox_ymin[i],
                    cat.bbox_xmax[i],
                    cat.bbox_ymax[i],
                ],
                cat.class[i].id() as usize,
                Some(cat.class[i]),
                cat.snr[i],
            )
        })
        .collect()
}

impl TrainData {
    /// Simulate the training fields (in parallel).
    pub fn simulate(cfg: &DataConfig, pre: &Preprocess, seed: u64) -> Result<TrainData> {
        cfg.validate().map_err(|e| e.within("data"))?;
        let fields = (0..cfg.fields)
            .into_par_iter()
            .map(|k| {
                let mut sky = cfg.sky.clone();
                sky.seed = cfg.field_seed + k as u64;
                sky.noise.enabled = false;
                let f = simulate_sky(&sky, &()).map_err(|e| DetectError::Sim(e.to_string()))?;
                Ok(Field {
                    truth: truth_objects(&f.catalog),
                    expected: f.image,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(TrainData {
            fields,
            cfg: cfg.clone(),
            pre: pre.clone(),
            seed,
        })
    }

    /// Number of examples per epoch.
    pub fn len(&self) -> usize {
        self.fields.len() * self.cfg.crops_per_field
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Example `index` of epoch `epoch`.
    pub fn example(&self, index: usize, epoch: usize) -> Result<Example> {
        let field = &self.fields[index % self.fields.len()];
        let cfg = &self.cfg;
        let mut rng = named_rng(self.seed, &format!("example/{epoch}/{index}"));
        let n = cfg.crop;
        let (h, w) = field.expected.dim();
        let (r0, c0) = (rng.random_range(0..=h - n), rng.random_range(0..=w - n));
        let (lo, hi) = (cfg.flux_scale[0].ln(), cfg.flux_scale[1].ln());
        let scale = if hi > lo {
            rng.random_range(lo..hi).exp()
        } else {
            lo.exp()
        };
        let noise = &cfg.sky.noise;
        let sky = noise.sky_adu() as f32;
        let (gain, rn) = (noise.gain as f32, (noise.read_noise / noise.gain) as f32);
        let sat = cfg.sky.saturation as f32;
        let crop = field.expected.slice(s![r0..r0 + n, c0..c0 + n]);
        let mut img = crop.mapv(|v| sky + scale as f32 * (v - sky));
        for v in img.iter_mut() {
            let var = v.max(0.0) / gain + rn * rn;
            let z: f32 = StandardNormal.sample(&mut rng);
            *v = (*v + var.sqrt() * z).min(sat);
        }
        let image = self.pre.normalise(img.view())?;
        // Truth in crop coordinates.
        let mut targets = Vec::new();
        for t in &field.truth {
            let (cx, cy) = t.bbox.centre();
            let (cx, cy) = (cx - c0 as f32, cy - r0 as f32);
            if cx < 0.0 || cy < 0.0 || cx >= n as f32 || cy >= n as f32 {
                continue;
            }
            if !t.artefact && !(t.snr * scale >= cfg.min_snr) {
                continue;
            }
            let b = t
                .bbox
                .shifted(-(c0 as f32), -(r0 as f32))
                .clipped(n as f32, n as f32);
            if b.width() <= 0.0 || b.height() <= 0.0 {
                continue;
            }
            targets.push(Target {
                bbox: b,
                class: t.class,
            });
        }
        let (transpose, flip_x, flip_y) = (
            rng.random::<bool>(),
            rng.random::<bool>(),
            rng.random::<bool>(),
        );
        let image = dihedral(image.view(), transpose, flip_x, flip_y);
        for t in &mut targets {
            t.bbox = dihedral_box(t.bbox, n as f32, transpose, flip_x, flip_y);
        }
        Ok(Example { image, targets })
    }

    /// Examples for a batch of indices, made in parallel.
    pub fn batch(&self, indices: &[usize], epoch: usize) -> Result<Vec<Example>> {
        indices
            .par_iter()
            .map(|&i| self.example(i, epoch))
            .collect()
    }
}

/// One of the eight symmetries of a square: optional transpose, then optional mirror in x
/// (columns) and in y (rows).
pub fn dihedral(img: ArrayView2<f32>, transpose: bool, flip_x: bool, flip_y: bool) -> Array2<f32> {
    let mut v = if transpose { img.reversed_axes() } else { img };
    if flip_x {
        v = v.slice_move(s![.., ..;-1]);
    }
    if flip_y {
        v = v.slice_move(s![..;-1, ..]);
    }
    v.as_standard_layout().to_owned()
}

/// The box of [`dihedral`] on a square of side `n`.
pub fn dihedral_box(b: BBox, n: f32, transpose: bool, flip_x: bool, flip_y: bool) -> BBox {
    let mut b = if transpose {
        BBox::new(b.y0, b.x0, b.y1, b.x1)
    } else {
        b
    };
    if flip_x {
        b = BBox::new(n - b.x1, b.y0, n - b.x0, b.y1);
    }
    if flip_y {
        b = BBox::new(b.x0, n - b.y1, b.x1, n - b.y0);
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dihedral_moves_pixels_and_boxes_together() {
        let n = 8usize;
        let mut img = Array2::<f32>::zeros((n, n));
        // A 2×1 object at columns 1..3, row 5.
        img[[5, 1]] = 1.0;
        img[[5, 2]] = 1.0;
        let b = BBox::new(1.0, 5.0, 3.0, 6.0);
        for bits in 0..8u8 {
            let (t, fx, fy) = (bits & 1 != 0, bits & 2 != 0, bits & 4 != 0);
            let out = dihedral(img.view(), t, fx, fy);
            let ob = dihedral_box(b, n as f32, t, fx, fy);
            let mut inside = 0.0;
            for ((r, c), &v) in out.indexed_iter() {
                if ob.contains(c as f32 + 0.5, r as f32 + 0.5) {
                    inside += v;
                }
            }
            assert_eq!(inside, 2.0, "transform {bits}");
            assert_eq!(out.sum(), 2.0);
        }
    }
}
