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
//!
//! With `[data.randomise]` ([`DomainRandomisation`]) every training field is a different
//! imager: PSF profile, width and ellipticity, pixel scale, sky, gain, read noise, whether the
//! sky was subtracted and the source density are drawn per field (seeded by the field's seed),
//! and the exposure time is set so that the faintest stars sit at a drawn S/N, so that faint
//! sources are as common at 8-pixel seeing on a bright sky as at 1.5 pixels on a dark one.
//! A detector trained so has to read sizes relative to the image's own PSF, which is what
//! lets one bundled model work on any camera's images.

use deepsky_core::config::{ensure, ConfigError, Validate};
use ndarray::{s, Array2, ArrayView2};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use deepsky_nn::init::named_rng;
use deepsky_sim::sky::{simulate_sky, NoiseConfig, Psf, SkyConfig};

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
    /// Draw a different imager for every field (`[data.randomise]`); absent: every field is
    /// `sky`'s imager.
    pub randomise: Option<DomainRandomisation>,
    /// Real images labelled by a catalogue (`[[data.images]]`), trained on beside the
    /// simulated fields (or alone with `fields = 0`): crops, flips and rotations, but no flux
    /// scaling and no added noise, since their noise is real.
    pub images: Vec<LabelledImage>,
}

/// A real image and the catalogue of its sources (`[[data.images]]`), e.g. a single exposure
/// labelled by a deeper coadd's catalogue.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LabelledImage {
    /// The FITS image.
    pub image: std::path::PathBuf,
    /// Its HDU (index or EXTNAME; empty: the primary, or the first extension when the primary
    /// is empty).
    #[serde(default)]
    pub hdu: String,
    /// The catalogue: FITS table, CSV or Parquet with x/y (FITS 1-based pixels) or RA/Dec
    /// (degrees, through the image's WCS), optionally class and size.
    pub catalog: std::path::PathBuf,
    /// Which catalogue columns to use; absent: found by their usual names.
    #[serde(default)]
    pub columns: crate::labelled::CatalogColumns,
    /// The image's PSF FWHM, pixels; absent: from the header, else measured.
    #[serde(default)]
    pub psf_fwhm_pixels: Option<f64>,
    /// Times the image is sampled per epoch, relative to one simulated field's crops.
    #[serde(default = "one")]
    pub weight: usize,
}

fn one() -> usize {
    1
}

/// The ranges of imager properties drawn per training field (`[data.randomise]`). Ranges
/// `[lo, hi]` are drawn log-uniformly for scales (sizes, levels) and uniformly otherwise.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DomainRandomisation {
    /// PSF FWHM, pixels (log-uniform).
    pub psf_fwhm_pixels: [f64; 2],
    /// Fraction of fields with a Gaussian PSF; the others are Moffat.
    pub gaussian_fraction: f64,
    /// Moffat β (uniform): 2 has broad wings, 5 is close to a Gaussian.
    pub moffat_beta: [f64; 2],
    /// Largest PSF ellipticity `1 − b/a` (uniform from 0), at a random angle.
    pub psf_ellipticity_max: f64,
    /// Pixel scale, arcsec (log-uniform): galaxy sizes are in arcsec, so this sets how many
    /// pixels a galaxy spans relative to the PSF.
    pub pixel_scale: [f64; 2],
    /// Sky background, electrons per pixel (log-uniform).
    pub sky_level: [f64; 2],
    /// Gain, electrons per ADU (log-uniform).
    pub gain: [f64; 2],
    /// Read noise, electrons (log-uniform).
    pub read_noise: [f64; 2],
    /// Fraction of fields whose sky has been subtracted (pixels around 0, not the sky level).
    pub sky_subtracted_fraction: f64,
    /// Factor on `sky.n_stars` and `sky.n_galaxies` (log-uniform): sparse to crowded fields.
    pub density: [f64; 2],
    /// Slope of the galaxies' magnitude counts, `dN/dm ∝ 10^(slope·m)` (uniform): flat slopes
    /// give many bright, large galaxies, whose outskirts a detector must not shred into
    /// several sources; steep ones mostly faint galaxies.
    pub galaxy_slope: [f64; 2],
    /// Matched-filter S/N of a point source of magnitude `sky.stars.max` (log-uniform): sets
    /// each field's exposure time, so that the faint end of the source counts is always near
    /// the detection limit whatever the PSF and the noise.
    pub faint_star_snr: [f64; 2],
}

impl Default for DomainRandomisation {
    fn default() -> Self {
        DomainRandomisation {
            psf_fwhm_pixels: [1.5, 8.0],
            gaussian_fraction: 0.25,
            moffat_beta: [2.0, 5.0],
            psf_ellipticity_max: 0.15,
            pixel_scale: [0.15, 0.6],
            sky_level: [50.0, 10_000.0],
            gain: [0.5, 5.0],
            read_noise: [2.0, 15.0],
            sky_subtracted_fraction: 0.3,
            density: [0.5, 3.0],
            galaxy_slope: [0.1, 0.4],
            faint_star_snr: [2.0, 8.0],
        }
    }
}

impl Validate for DomainRandomisation {
    /// Range checks, keys relative to the `[data.randomise]` section.
    fn validate(&self) -> std::result::Result<(), ConfigError> {
        let positive_range = |k: &str, r: [f64; 2]| {
            ensure(
                r[0] > 0.0 && r[0] <= r[1] && r[1].is_finite(),
                k,
                "must be [lo, hi] with 0 < lo <= hi",
            )
        };
        positive_range("psf_fwhm_pixels", self.psf_fwhm_pixels)?;
        ensure(
            self.psf_fwhm_pixels[0] >= 0.8,
            "psf_fwhm_pixels",
            "must be at least 0.8 pixel (the simulator samples PSFs down to 0.5 pixel)",
        )?;
        ensure(
            self.moffat_beta[0] > 1.0 && self.moffat_beta[0] <= self.moffat_beta[1],
            "moffat_beta",
            "must be [lo, hi] with 1 < lo <= hi",
        )?;
        positive_range("pixel_scale", self.pixel_scale)?;
        positive_range("sky_level", self.sky_level)?;
        positive_range("gain", self.gain)?;
        positive_range("read_noise", self.read_noise)?;
        positive_range("density", self.density)?;
        positive_range("faint_star_snr", self.faint_star_snr)?;
        ensure(
            self.galaxy_slope[0] <= self.galaxy_slope[1]
                && self.galaxy_slope.iter().all(|v| v.is_finite()),
            "galaxy_slope",
            "must be [lo, hi] with lo <= hi",
        )?;
        for (k, f) in [
            ("gaussian_fraction", self.gaussian_fraction),
            ("sky_subtracted_fraction", self.sky_subtracted_fraction),
        ] {
            ensure((0.0..=1.0).contains(&f), k, "must be within [0, 1]")?;
        }
        ensure(
            (0.0..=0.5).contains(&self.psf_ellipticity_max),
            "psf_ellipticity_max",
            "must be within [0, 0.5]",
        )
    }
}

/// One training field's imager, drawn by [`DomainRandomisation::draw`].
#[derive(Debug, Clone, PartialEq)]
pub struct Imager {
    /// The simulator's settings for the field.
    pub sky: SkyConfig,
    /// Whether the sky level is subtracted from the noisy image.
    pub sky_subtracted: bool,
}

impl Imager {
    /// PSF FWHM, pixels.
    pub fn psf_fwhm_pixels(&self) -> f64 {
        self.sky.psf.fwhm() / self.sky.pixel_scale
    }
}

impl DomainRandomisation {
    /// The imager of the field simulated with seed `field_seed`: `base` with the drawn
    /// properties (the draw depends on the seed only).
    pub fn draw(&self, base: &SkyConfig, field_seed: u64) -> Imager {
        let mut rng = named_rng(field_seed, "domain");
        let mut log_uniform = |[lo, hi]: [f64; 2]| {
            if hi > lo {
                rng.random_range(lo.ln()..hi.ln()).exp()
            } else {
                lo
            }
        };
        let fwhm_px = log_uniform(self.psf_fwhm_pixels);
        let scale = log_uniform(self.pixel_scale);
        let sky_level = log_uniform(self.sky_level);
        let gain = log_uniform(self.gain);
        let read_noise = log_uniform(self.read_noise);
        let density = log_uniform(self.density);
        let faint_snr = log_uniform(self.faint_star_snr);
        let mut uniform = |[lo, hi]: [f64; 2]| {
            if hi > lo {
                rng.random_range(lo..hi)
            } else {
                lo
            }
        };
        let beta = uniform(self.moffat_beta);
        let ellipticity = uniform([0.0, self.psf_ellipticity_max]);
        let angle = uniform([0.0, 180.0]);
        let gaussian = uniform([0.0, 1.0]) < self.gaussian_fraction;
        let sky_subtracted = uniform([0.0, 1.0]) < self.sky_subtracted_fraction;
        let galaxy_slope = uniform(self.galaxy_slope);

        let mut sky = base.clone();
        sky.seed = field_seed;
        sky.pixel_scale = scale;
        sky.cd = None;
        sky.psf = if gaussian {
            Psf::Gaussian {
                fwhm: fwhm_px * scale,
            }
        } else {
            Psf::Moffat {
                fwhm: fwhm_px * scale,
                beta,
            }
        };
        sky.psf_ellipticity = ellipticity;
        sky.psf_angle = angle;
        sky.noise = NoiseConfig {
            enabled: base.noise.enabled,
            sky_level,
            gain,
            read_noise,
        };
        // Keep the sky well below saturation whatever the gain.
        sky.saturation = sky.saturation.max(4.0 * sky.noise.sky_adu());
        sky.n_stars = (base.n_stars as f64 * density).round() as usize;
        sky.n_galaxies = (base.n_galaxies as f64 * density).round() as usize;
        sky.galaxies.magnitudes.slope = galaxy_slope;
        // Exposure: a point source of magnitude `stars.max` at matched-filter S/N `faint_snr`,
        // for a Gaussian PSF of this FWHM on this sky: S/N = F / (σ_pix · sqrt(4π) · σ_psf).
        let sigma_psf = fwhm_px / 2.354_820_045;
        let flux_adu = faint_snr
            * sky.noise.background_sigma_adu()
            * (4.0 * std::f64::consts::PI).sqrt()
            * sigma_psf;
        sky.exposure_time = flux_adu / 10f64.powf(0.4 * (sky.zeropoint - sky.stars.max));
        Imager {
            sky,
            sky_subtracted,
        }
    }
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
            randomise: None,
            images: Vec::new(),
        }
    }
}

impl Validate for DataConfig {
    /// Range checks, keys relative to the `[data]` section.
    fn validate(&self) -> std::result::Result<(), ConfigError> {
        let bad = |k: &str, m: &str| Err(ConfigError::at(k, m));
        if self.fields == 0 && self.images.is_empty() {
            return bad(
                "fields",
                "must be at least 1 (or give labelled images in [[data.images]])",
            );
        }
        for (i, im) in self.images.iter().enumerate() {
            if im.weight == 0 {
                return bad(&format!("images[{i}].weight"), "must be at least 1");
            }
            if im
                .psf_fwhm_pixels
                .is_some_and(|f| !(f.is_finite() && f > 0.0))
            {
                return bad(
                    &format!("images[{i}].psf_fwhm_pixels"),
                    "must be a positive number of pixels",
                );
            }
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
        if let Some(r) = &self.randomise {
            r.validate().map_err(|e| e.within("randomise"))?;
        }
        Ok(())
    }
}

impl DataConfig {
    /// The imager of training field `k` (seed `field_seed + k`).
    pub fn imager(&self, k: usize) -> Imager {
        self.imager_of_seed(self.field_seed + k as u64)
    }

    /// The imager of the field simulated with `seed`: `sky`, or a draw of `randomise`.
    pub fn imager_of_seed(&self, seed: u64) -> Imager {
        match &self.randomise {
            Some(r) => r.draw(&self.sky, seed),
            None => {
                let mut sky = self.sky.clone();
                sky.seed = seed;
                Imager {
                    sky,
                    sky_subtracted: false,
                }
            }
        }
    }

    /// The simulator's settings of an unseen field for validation: the seed after the
    /// training fields'.
    pub fn validation_sky(&self) -> SkyConfig {
        self.imager_of_seed(self.field_seed + self.fields as u64)
            .sky
    }
}

/// A simulated field (or a labelled real image) ready for cropping.
#[derive(Clone)]
pub struct Field {
    /// Expected counts in ADU, sky included, no noise.
    pub expected: Array2<f32>,
    /// Truth objects.
    pub truth: Vec<TruthObject>,
    /// Sky, gain and read noise of its imager, for the noise drawn per example.
    pub noise: NoiseConfig,
    /// Saturation level, ADU.
    pub saturation: f32,
    /// Whether the sky level is subtracted after the noise is drawn.
    pub sky_subtracted: bool,
    /// A real image (`expected` holds its pixels, noise included): cropped, flipped and
    /// rotated only.
    pub real: bool,
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
                let imager = cfg.imager(k);
                let mut sky = imager.sky;
                sky.noise.enabled = false;
                let f = simulate_sky(&sky, &()).map_err(|e| {
                    DetectError::Sim(format!("training field {k} (seed {}): {e}", sky.seed))
                })?;
                Ok(Field {
                    truth: truth_objects(&f.catalog),
                    expected: f.image,
                    noise: sky.noise,
                    saturation: sky.saturation as f32,
                    sky_subtracted: imager.sky_subtracted,
                    real: false,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut fields = fields;
        let classes = &crate::model::DetectorConfig::default().classes;
        for im in &cfg.images {
            let (image, _, truth) = crate::labelled::labelled_truth_from_files(
                &im.image,
                &im.hdu,
                &im.catalog,
                &im.columns,
                classes,
                im.psf_fwhm_pixels,
            )?;
            let (h, w) = image.dim();
            if h < cfg.crop || w < cfg.crop {
                return Err(DetectError::Input(format!(
                    "{}: {w}x{h} pixels, smaller than the training crop ({}); set data.crop",
                    im.image.display(),
                    cfg.crop
                )));
            }
            tracing::info!(
                "{}: {} labelled sources from {}",
                im.image.display(),
                truth.len(),
                im.catalog.display()
            );
            let field = Field {
                expected: image.mapv(|v| if v.is_finite() { v } else { 0.0 }),
                truth,
                noise: NoiseConfig::default(),
                saturation: f32::INFINITY,
                sky_subtracted: false,
                real: true,
            };
            fields.extend(std::iter::repeat_with(|| field.clone()).take(im.weight));
        }
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
        let noise = &field.noise;
        let sky = noise.sky_adu() as f32;
        let (gain, rn) = (noise.gain as f32, (noise.read_noise / noise.gain) as f32);
        let sat = field.saturation;
        let crop = field.expected.slice(s![r0..r0 + n, c0..c0 + n]);
        // A real image has its own noise and its sources their own fluxes: it is cropped as
        // it is.
        let scale = if field.real { 1.0 } else { scale };
        let mut img = crop.mapv(|v| sky + scale as f32 * (v - sky));
        if field.real {
            img.assign(&crop);
        } else {
            for v in img.iter_mut() {
                let var = v.max(0.0) / gain + rn * rn;
                let z: f32 = StandardNormal.sample(&mut rng);
                *v = (*v + var.sqrt() * z).min(sat);
                if field.sky_subtracted {
                    *v -= sky;
                }
            }
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
    fn randomised_imagers_are_valid_and_span_the_ranges() {
        let r = DomainRandomisation::default();
        let base = SkyConfig::default();
        let imagers: Vec<Imager> = (0..400).map(|k| r.draw(&base, 10_000 + k)).collect();
        for im in &imagers {
            im.sky.validate().unwrap();
            let f = im.psf_fwhm_pixels();
            assert!((1.5 - 1e-9..=8.0 + 1e-9).contains(&f), "fwhm {f}");
        }
        let fwhm: Vec<f64> = imagers.iter().map(Imager::psf_fwhm_pixels).collect();
        let (lo, hi) = fwhm
            .iter()
            .fold((f64::MAX, 0f64), |(a, b), &f| (a.min(f), b.max(f)));
        assert!(lo < 1.7 && hi > 7.0, "fwhm range {lo}..{hi}");
        let sub = imagers.iter().filter(|i| i.sky_subtracted).count() as f64 / 400.0;
        assert!((0.22..0.38).contains(&sub), "sky subtracted on {sub}");
        let gauss = imagers
            .iter()
            .filter(|i| i.sky.psf.name() == "gaussian")
            .count() as f64
            / 400.0;
        assert!((0.17..0.33).contains(&gauss), "gaussian PSFs {gauss}");
        // The same seed draws the same imager; another seed another one.
        assert_eq!(r.draw(&base, 10_003), imagers[3]);
        assert_ne!(imagers[3], imagers[4]);
    }

    #[test]
    fn faint_stars_sit_at_the_drawn_snr_whatever_the_imager() {
        // The exposure time is set so that a star of magnitude `stars.max` has the drawn S/N:
        // check it against the simulator's own matched-filter S/N of such a star.
        let r = DomainRandomisation {
            faint_star_snr: [5.0, 5.0],
            psf_ellipticity_max: 0.0,
            gaussian_fraction: 1.0,
            ..Default::default()
        };
        let mut base = SkyConfig::default();
        base.n_stars = 0;
        base.n_galaxies = 0;
        base.artefacts.cosmic_rays = 0;
        base.artefacts.saturated_stars = 0;
        base.artefacts.bad_columns = 0;
        base.width = 96;
        base.height = 96;
        for seed in [1u64, 2, 3] {
            let mut sky = r.draw(&base, seed).sky;
            sky.injections = vec![deepsky_sim::sky::Injection::Star {
                x: 48.0,
                y: 48.0,
                mag: sky.stars.max,
            }];
            sky.noise.enabled = false;
            let f = simulate_sky(&sky, &()).unwrap();
            let snr = f.catalog.snr[0];
            assert!((4.0..6.0).contains(&snr), "seed {seed}: S/N {snr}");
        }
    }

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
