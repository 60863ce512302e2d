//! Training examples: crops of simulated fields with per-pixel truth masks, made afresh for
//! every epoch.
//!
//! Each field is a different imager (`[data.randomise]`, the detector's
//! [`DomainRandomisation`]: PSF profile and width, pixel scale, sky, gain, read noise, sky
//! subtracted or not, source density) with its own artefact counts drawn from
//! `[data.artefacts]` (cosmic rays with the simulator's physical model, trails, saturated stars
//! with bleed trails, bad columns, hot pixels), simulated once without noise together with its
//! truth masks ([`deepsky_sim::sky::TruthMasks`]). An example is a random square crop, a fresh
//! Poisson + read-noise realisation clipped at saturation, the prediction's background
//! estimation and asinh normalisation, and one of the eight flips/rotations (masks alike).
//! Every draw is seeded by `(seed, epoch, index)`, so `--resume` replays an epoch exactly.

use deepsky_core::config::{ensure, ConfigError, Validate};
use deepsky_core::mask::MaskPlane;
use deepsky_detect::dataset::{dihedral, DomainRandomisation};
use deepsky_detect::{DetectError, Preprocess, Result};
use deepsky_nn::init::named_rng;
use deepsky_sim::sky::{simulate_sky, CosmicRayModel, NoiseConfig, SkyConfig};
use ndarray::{s, Array2, ArrayView2};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Ranges `[lo, hi]` (inclusive, uniform) of the artefacts put in each training field
/// (`[data.artefacts]`), so that the network sees empty fields and crowded ones.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ArtefactRanges {
    /// Cosmic-ray hits (the simulator's physical model: tracks, worms, spots).
    pub cosmic_rays: [usize; 2],
    /// Satellite and aircraft trails.
    pub trails: [usize; 2],
    /// Stars bright enough to saturate and bleed.
    pub saturated_stars: [usize; 2],
    /// Dead or hot partial columns.
    pub bad_columns: [usize; 2],
    /// Hot pixels.
    pub hot_pixels: [usize; 2],
    /// Factor on the cosmic rays' charge (the physical model's charge per µm and spot
    /// charges), log-uniform per field: how bright a hit is against the noise depends on the
    /// detector's depletion depth, gain and sky, so the network must see hits from a few σ
    /// (which look like faint stars) to thousands.
    pub cosmic_ray_charge_scale: [f64; 2],
    /// σ of the cosmic rays' charge diffusion, pixels, uniform per field (thick, deep-depleted
    /// CCDs blur hits more).
    pub cosmic_ray_diffusion_px: [f64; 2],
}

impl Default for ArtefactRanges {
    fn default() -> Self {
        ArtefactRanges {
            cosmic_rays: [5, 60],
            trails: [0, 1],
            saturated_stars: [0, 3],
            bad_columns: [0, 2],
            hot_pixels: [0, 20],
            cosmic_ray_charge_scale: [0.05, 2.0],
            cosmic_ray_diffusion_px: [0.0, 0.6],
        }
    }
}

impl Validate for ArtefactRanges {
    fn validate(&self) -> std::result::Result<(), ConfigError> {
        for (k, [lo, hi]) in [
            ("cosmic_rays", self.cosmic_rays),
            ("trails", self.trails),
            ("saturated_stars", self.saturated_stars),
            ("bad_columns", self.bad_columns),
            ("hot_pixels", self.hot_pixels),
        ] {
            ensure(
                lo <= hi && hi <= 100_000,
                k,
                "must be [lo, hi] with lo <= hi <= 100000",
            )?;
        }
        Ok(())
    }
}

/// How training examples are made (`[data]`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// Number of simulated training fields.
    pub fields: usize,
    /// Examples drawn from each field per epoch.
    pub crops_per_field: usize,
    /// Side of the square crops, pixels (a multiple of the network's size multiple).
    pub crop: usize,
    /// First seed of the training fields (field k uses `field_seed + k`); calibration fields
    /// follow them, so keep evaluation seeds away from this range.
    pub field_seed: u64,
    /// Artefacts per field.
    pub artefacts: ArtefactRanges,
    /// The simulator's settings for the fields (`[data.sky]`, every key of `deepsky simulate
    /// sky`'s config); seed, imager and artefact counts are set per field.
    pub sky: SkyConfig,
    /// The imager drawn per field (`[data.randomise]`); absent: every field is `sky`'s imager.
    pub randomise: Option<DomainRandomisation>,
}

impl Default for DataConfig {
    fn default() -> Self {
        let mut sky = SkyConfig {
            width: 192,
            height: 192,
            n_stars: 40,
            n_galaxies: 30,
            ..SkyConfig::default()
        };
        sky.artefacts.cosmic_ray_model = CosmicRayModel::Physical;
        DataConfig {
            fields: 48,
            crops_per_field: 16,
            crop: 64,
            field_seed: 50_000,
            artefacts: ArtefactRanges::default(),
            sky,
            randomise: Some(DomainRandomisation::default()),
        }
    }
}

impl Validate for DataConfig {
    /// Range checks, keys relative to the `[data]` section.
    fn validate(&self) -> std::result::Result<(), ConfigError> {
        ensure(self.fields >= 1, "fields", "must be at least 1")?;
        ensure(
            self.crops_per_field >= 1,
            "crops_per_field",
            "must be at least 1",
        )?;
        ensure(self.crop >= 16, "crop", "must be at least 16 pixels")?;
        ensure(
            self.crop <= self.sky.width.min(self.sky.height),
            "crop",
            "must fit in the simulated field (sky.width, sky.height)",
        )?;
        self.artefacts
            .validate()
            .map_err(|e| e.within("artefacts"))?;
        self.sky.validate().map_err(|e| e.within("sky"))?;
        if let Some(r) = &self.randomise {
            r.validate().map_err(|e| e.within("randomise"))?;
        }
        Ok(())
    }
}

/// One simulated field ready for cropping.
#[derive(Clone)]
pub struct Field {
    /// Expected counts in ADU, sky and artefacts included, no noise.
    pub expected: Array2<f32>,
    /// Truth bitmask ([`MaskPlane`] bits).
    pub bits: Array2<u32>,
    /// Sky, gain and read noise, for the noise drawn per example.
    pub noise: NoiseConfig,
    /// Saturation level, ADU.
    pub saturation: f32,
    /// Whether the sky is subtracted after the noise is drawn.
    pub sky_subtracted: bool,
}

impl DataConfig {
    /// The settings of the field simulated with `seed`: the drawn imager and artefact counts.
    pub fn field_sky(&self, seed: u64) -> (SkyConfig, bool) {
        let (mut sky, subtracted) = match &self.randomise {
            Some(r) => {
                let im = r.draw(&self.sky, seed);
                (im.sky, im.sky_subtracted)
            }
            None => {
                let mut sky = self.sky.clone();
                sky.seed = seed;
                (sky, false)
            }
        };
        let mut rng = named_rng(seed, "segment.artefacts");
        let mut draw = |[lo, hi]: [usize; 2]| rng.random_range(lo..=hi);
        let a = &self.artefacts;
        sky.artefacts.cosmic_rays = draw(a.cosmic_rays);
        sky.artefacts.trails = draw(a.trails);
        sky.artefacts.saturated_stars = draw(a.saturated_stars);
        sky.artefacts.bad_columns = draw(a.bad_columns);
        sky.artefacts.hot_pixels = draw(a.hot_pixels);
        let [lo, hi] = a.cosmic_ray_charge_scale;
        let scale = if hi > lo {
            rng.random_range(lo.ln()..hi.ln()).exp()
        } else {
            lo
        };
        let [lo, hi] = a.cosmic_ray_diffusion_px;
        let diffusion = if hi > lo {
            rng.random_range(lo..hi)
        } else {
            lo
        };
        let cr = &mut sky.artefacts.physical_cosmic_rays;
        cr.mpv_e_per_um *= scale;
        cr.landau_scale_e_per_um *= scale;
        cr.spot_charge_e = cr.spot_charge_e.map(|q| q * scale);
        cr.diffusion_sigma_px = diffusion;
        (sky, subtracted)
    }

    /// Simulate the field of `seed` without noise, with its truth masks.
    pub fn simulate_field(&self, seed: u64) -> Result<Field> {
        let (mut sky, sky_subtracted) = self.field_sky(seed);
        sky.noise.enabled = false;
        let f = simulate_sky(&sky, &())
            .map_err(|e| DetectError::Sim(format!("training field of seed {seed}: {e}")))?;
        Ok(Field {
            expected: f.image,
            bits: f.masks.bits,
            noise: sky.noise,
            saturation: sky.saturation as f32,
            sky_subtracted,
        })
    }
}

/// The training fields and how examples are drawn from them.
pub struct TrainData {
    /// Fields.
    pub fields: Vec<Field>,
    /// Settings.
    pub cfg: DataConfig,
    /// Preprocessing (shared with prediction).
    pub pre: Preprocess,
    /// The planes learned, in output order.
    pub planes: Vec<MaskPlane>,
    /// Seed of the augmentation draws.
    pub seed: u64,
}

/// One example: the normalised crop and one 0/1 target image per plane.
pub struct Example {
    /// Normalised image, `crop × crop`.
    pub image: Array2<f32>,
    /// Targets `(planes, crop, crop)` flattened, 1 where the plane is set.
    pub targets: Vec<f32>,
}

impl TrainData {
    /// Simulate the training fields (in parallel).
    pub fn simulate(
        cfg: &DataConfig,
        pre: &Preprocess,
        planes: &[MaskPlane],
        seed: u64,
    ) -> Result<TrainData> {
        cfg.validate().map_err(|e| e.within("data"))?;
        let fields = (0..cfg.fields)
            .into_par_iter()
            .map(|k| cfg.simulate_field(cfg.field_seed + k as u64))
            .collect::<Result<Vec<_>>>()?;
        Ok(TrainData {
            fields,
            cfg: cfg.clone(),
            pre: pre.clone(),
            planes: planes.to_vec(),
            seed,
        })
    }

    /// Examples per epoch.
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
        let mut rng = named_rng(self.seed, &format!("segment.example/{epoch}/{index}"));
        let n = self.cfg.crop;
        let (h, w) = field.expected.dim();
        let (r0, c0) = (rng.random_range(0..=h - n), rng.random_range(0..=w - n));
        let crop = field.expected.slice(s![r0..r0 + n, c0..c0 + n]);
        let noisy = noisy_image(
            crop,
            &field.noise,
            field.saturation,
            field.sky_subtracted,
            &mut rng,
        );
        let image = self.pre.normalise(noisy.view())?;
        let (transpose, flip_x, flip_y) = (rng.random(), rng.random(), rng.random());
        let image = dihedral(image.view(), transpose, flip_x, flip_y);
        let bits = field.bits.slice(s![r0..r0 + n, c0..c0 + n]);
        let mut targets = Vec::with_capacity(self.planes.len() * n * n);
        for p in &self.planes {
            let plane = bits.mapv(|b| if p.is_set(b) { 1.0f32 } else { 0.0 });
            targets.extend(dihedral(plane.view(), transpose, flip_x, flip_y).iter());
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

/// `expected` (ADU, sky included) with Gaussian noise of the Poisson + read-noise variance,
/// clipped at `saturation`, the sky subtracted afterwards if asked.
pub fn noisy_image(
    expected: ArrayView2<f32>,
    noise: &NoiseConfig,
    saturation: f32,
    sky_subtracted: bool,
    rng: &mut impl Rng,
) -> Array2<f32> {
    let sky = noise.sky_adu() as f32;
    let (gain, rn) = (noise.gain as f32, (noise.read_noise / noise.gain) as f32);
    let mut img = expected.to_owned();
    for v in img.iter_mut() {
        let var = v.max(0.0) / gain + rn * rn;
        let z: f32 = StandardNormal.sample(rng);
        // Saturated pixels read the saturation level, without noise, as on a real CCD.
        *v = if *v >= saturation {
            saturation
        } else {
            (*v + var.sqrt() * z).min(saturation)
        };
        if sky_subtracted {
            *v -= sky;
        }
    }
    img
}
