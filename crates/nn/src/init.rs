//! Seeded parameter initialisation.
//!
//! candle's CPU backend draws initial weights from an unseedable thread RNG. deepsky promises
//! that the same config and seed give the same model, so parameters are created through
//! [`SeededVarMap`], which draws each tensor from a PCG stream keyed by the seed and the
//! parameter's *name* — independent of construction order and thread count.

use std::hash::{Hash, Hasher};

use candle_core::{DType, Device, Result, Shape, Tensor, Var};
use candle_nn::init::{Init, NormalOrUniform};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{VarBuilder, VarMap};
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};
use rand_pcg::Pcg64Mcg;

/// A [`VarMap`] whose new variables are drawn from a seeded RNG.
pub struct SeededVarMap {
    map: VarMap,
    seed: u64,
}

impl SeededVarMap {
    /// A new, empty map.
    pub fn new(seed: u64) -> SeededVarMap {
        SeededVarMap {
            map: VarMap::new(),
            seed,
        }
    }

    /// The underlying map (for the optimiser and for saving).
    pub fn varmap(&self) -> &VarMap {
        &self.map
    }

    /// A VarBuilder that creates missing variables in this map, deterministically.
    pub fn builder(&self, device: &Device) -> VarBuilder<'static> {
        let backend = SeededVarMap {
            map: self.map.clone(),
            seed: self.seed,
        };
        VarBuilder::from_backend(Box::new(backend), DType::F32, device.clone())
    }
}

/// An RNG for one named purpose under a seed (stable across runs, platforms and versions of
/// Rust's hasher: FNV-1a over the name).
pub fn named_rng(seed: u64, name: &str) -> Pcg64Mcg {
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    name.hash(&mut h);
    Pcg64Mcg::seed_from_u64(seed ^ h.0.rotate_left(17))
}

struct Fnv(u64);
impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= *b as u64;
            self.0 = self.0.wrapping_mul(0x100_0000_01b3);
        }
    }
}

fn draw(init: &Init, shape: &Shape, rng: &mut Pcg64Mcg) -> Vec<f32> {
    let n = shape.elem_count();
    let uniform = |rng: &mut Pcg64Mcg, lo: f64, up: f64| -> Vec<f32> {
        (0..n).map(|_| rng.random_range(lo..up) as f32).collect()
    };
    let normal = |rng: &mut Pcg64Mcg, mean: f64, std: f64| -> Vec<f32> {
        (0..n)
            .map(|_| {
                let z: f64 = StandardNormal.sample(rng);
                (mean + std * z) as f32
            })
            .collect()
    };
    match init {
        Init::Const(c) => vec![*c as f32; n],
        Init::Uniform { lo, up } => uniform(rng, *lo, *up),
        Init::Randn { mean, stdev } => normal(rng, *mean, *stdev),
        Init::Kaiming {
            dist,
            fan,
            non_linearity,
        } => {
            let fan = fan.for_shape(shape).max(1);
            let std = non_linearity.gain() / (fan as f64).sqrt();
            match dist {
                NormalOrUniform::Uniform => {
                    let bound = 3f64.sqrt() * std;
                    uniform(rng, -bound, bound)
                }
                NormalOrUniform::Normal => normal(rng, 0.0, std),
            }
        }
    }
}

impl SimpleBackend for SeededVarMap {
    fn get(&self, s: Shape, name: &str, h: Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        let mut data = self.map.data().lock().expect("varmap lock");
        if let Some(var) = data.get(name) {
            if var.shape() != &s {
                candle_core::bail!("shape mismatch on {name}: {s:?} <> {:?}", var.shape())
            }
            return Ok(var.as_tensor().clone());
        }
        let mut rng = named_rng(self.seed, name);
        let values = draw(&h, &s, &mut rng);
        let tensor = Tensor::from_vec(values, s, dev)?.to_dtype(dtype)?;
        let var = Var::from_tensor(&tensor)?;
        let t = var.as_tensor().clone();
        data.insert(name.to_string(), var);
        Ok(t)
    }

    fn get_unchecked(&self, name: &str, _dtype: DType, _dev: &Device) -> Result<Tensor> {
        let data = self.map.data().lock().expect("varmap lock");
        match data.get(name) {
            Some(v) => Ok(v.as_tensor().clone()),
            None => candle_core::bail!("no variable `{name}`"),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.map
            .data()
            .lock()
            .expect("varmap lock")
            .contains_key(name)
    }
}
