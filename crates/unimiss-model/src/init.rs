//! Seeded parameter initialisation.
//!
//! candle's CPU device cannot be seeded (`Device::Cpu.set_seed` is an error), so a model built
//! from a plain [`VarMap`] gets different weights on every run. [`SeededVarMap`] is a
//! [`VarBuilder`] backend that stores its variables in a [`VarMap`] like candle's own, but draws
//! each new variable's initial values from a ChaCha8 stream keyed by `(seed, parameter name)`.
//! The weights therefore depend only on the seed and the names — not on construction order,
//! thread count or device — and two models built with the same seed are bit-identical.

use candle::{DType, Device, Result, Shape, Tensor, Var, bail};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder, VarMap};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Uniform};

/// A [`VarMap`] whose new variables are initialised from `(seed, name)`.
#[derive(Clone)]
pub struct SeededVarMap {
    map: VarMap,
    seed: u64,
}

impl SeededVarMap {
    /// Wrap `map` (new variables are inserted into it).
    pub fn new(map: &VarMap, seed: u64) -> Self {
        Self { map: map.clone(), seed }
    }

    /// A [`VarBuilder`] over `map` whose new variables are seeded with `seed`.
    pub fn var_builder(map: &VarMap, seed: u64, dtype: DType, dev: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(Self::new(map, seed)), dtype, dev.clone())
    }

    /// The initial values of the parameter `name` of shape `shape` under `init`, as f32 on the CPU.
    pub fn initial_values(&self, shape: &Shape, name: &str, init: Init) -> Result<Tensor> {
        let n = shape.elem_count();
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ fnv1a(name.as_bytes()));
        let values: Vec<f32> = match init {
            Init::Const(c) => vec![c as f32; n],
            Init::Randn { mean, stdev } => normal(&mut rng, n, mean, stdev, name)?,
            Init::Uniform { lo, up } => {
                if !(lo < up) {
                    bail!("init {name}: empty uniform range [{lo}, {up})")
                }
                let d = Uniform::new(lo, up).map_err(|e| candle::Error::Msg(format!("init {name}: {e}")))?;
                (0..n).map(|_| d.sample(&mut rng) as f32).collect()
            }
            Init::Kaiming { dist, fan, non_linearity } => {
                let fan = fan.for_shape(shape) as f64;
                if fan == 0.0 {
                    bail!("init {name}: Kaiming init of shape {shape:?} has zero fan")
                }
                let std = non_linearity.gain() / fan.sqrt();
                match dist {
                    candle_nn::init::NormalOrUniform::Normal => normal(&mut rng, n, 0.0, std, name)?,
                    candle_nn::init::NormalOrUniform::Uniform => {
                        let b = 3f64.sqrt() * std;
                        (0..n).map(|_| rng.random_range(-b..b) as f32).collect()
                    }
                }
            }
        };
        Tensor::from_vec(values, shape.clone(), &Device::Cpu)
    }
}

fn normal(rng: &mut ChaCha8Rng, n: usize, mean: f64, stdev: f64, name: &str) -> Result<Vec<f32>> {
    let d = Normal::new(mean, stdev).map_err(|e| candle::Error::Msg(format!("init {name}: {e}")))?;
    Ok((0..n).map(|_| d.sample(rng) as f32).collect())
}

/// FNV-1a, a stable 64-bit hash (std's hasher is not guaranteed stable across releases).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

impl SimpleBackend for SeededVarMap {
    fn get(&self, s: Shape, name: &str, h: Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        let mut data = self.map.data().lock().map_err(|_| candle::Error::Msg("var map lock poisoned".into()))?;
        if let Some(v) = data.get(name) {
            if v.shape() != &s {
                bail!("init {name}: exists with shape {:?}, asked for {s:?}", v.shape())
            }
            return Ok(v.as_tensor().clone());
        }
        let t = self.initial_values(&s, name, h)?.to_dtype(dtype)?.to_device(dev)?;
        let v = Var::from_tensor(&t)?;
        let out = v.as_tensor().clone();
        data.insert(name.to_string(), v);
        Ok(out)
    }

    fn get_unchecked(&self, name: &str, _dtype: DType, _dev: &Device) -> Result<Tensor> {
        bail!("init {name}: a seeded var map creates variables only with a shape (use `get`)")
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.map.data().lock().map(|d| d.contains_key(name)).unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_values_other_seed_other_values() -> Result<()> {
        let build = |seed| -> Result<Vec<f32>> {
            let vm = VarMap::new();
            let vb = SeededVarMap::var_builder(&vm, seed, DType::F32, &Device::Cpu);
            vb.get_with_hints((64, 8), "w", Init::Randn { mean: 0.0, stdev: 0.02 })?.flatten_all()?.to_vec1()
        };
        let (a, b, c) = (build(3)?, build(3)?, build(4)?);
        assert_eq!(a, b);
        assert_ne!(a, c);
        let mean = a.iter().sum::<f32>() / a.len() as f32;
        let std = (a.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / a.len() as f32).sqrt();
        assert!(mean.abs() < 0.005 && (std - 0.02).abs() < 0.004, "mean {mean} std {std}");
        Ok(())
    }

    #[test]
    fn values_depend_on_the_name_not_the_order() -> Result<()> {
        let dev = Device::Cpu;
        let (v1, v2) = (VarMap::new(), VarMap::new());
        let (b1, b2) = (SeededVarMap::var_builder(&v1, 9, DType::F32, &dev), SeededVarMap::var_builder(&v2, 9, DType::F32, &dev));
        let u = Init::Uniform { lo: -1.0, up: 1.0 };
        let x1 = b1.get_with_hints(5, "x", u)?;
        let y1 = b1.get_with_hints(5, "y", u)?;
        let y2 = b2.get_with_hints(5, "y", u)?;
        let x2 = b2.get_with_hints(5, "x", u)?;
        assert_eq!(x1.to_vec1::<f32>()?, x2.to_vec1::<f32>()?);
        assert_eq!(y1.to_vec1::<f32>()?, y2.to_vec1::<f32>()?);
        assert_ne!(x1.to_vec1::<f32>()?, y1.to_vec1::<f32>()?);
        // The variables live in the map and train like candle's own.
        assert_eq!(v1.all_vars().len(), 2);
        assert!(b1.get_with_hints(6, "x", u).is_err(), "a shape clash must be an error");
        Ok(())
    }
}
