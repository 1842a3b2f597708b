//! The official augmentations (reference §4.1 for 2D, §4.2 for 3D), with the size constants
//! scaled by the configured output size (exactly official at 224 and [16, 96, 96]), and the
//! fine-tuning augmentations of labelled samples ([`spatial`]).
//!
//! Randomness comes only from [`sample_rng`], seeded by (seed, epoch, sample index, stream), so
//! a sample's views never depend on thread count or timing.

pub mod intensity;
pub mod kernels;
pub mod spatial;
pub mod view2d;
pub mod view3d;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The random stream used by every augmentation.
pub type AugRng = ChaCha8Rng;

/// Which random stream of a sample: the context crop or one of the two views (pretraining),
/// or the fine-tuning augmentation of a labelled sample ([`spatial::Augmenter`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Context,
    View(usize),
    Labelled,
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The deterministic RNG for (seed, epoch, sample index, stream).
pub fn sample_rng(seed: u64, epoch: usize, index: usize, stream: Stream) -> AugRng {
    let s = match stream {
        Stream::Context => 0u64,
        Stream::View(v) => 1 + v as u64,
        Stream::Labelled => 1 << 32,
    };
    let mut h = splitmix(seed);
    for x in [epoch as u64, index as u64, s] {
        h = splitmix(h ^ x);
    }
    ChaCha8Rng::seed_from_u64(h)
}

/// Uniform in [lo, hi).
pub fn uniform(rng: &mut AugRng, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * rng.random::<f64>()
}

/// Uniform integer in [lo, hi] (inclusive, as Python's `random.randint`).
pub fn randint(rng: &mut AugRng, lo: usize, hi: usize) -> usize {
    if hi <= lo {
        lo
    } else {
        rng.random_range(lo..=hi)
    }
}

/// True with probability p.
pub fn coin(rng: &mut AugRng, p: f64) -> bool {
    rng.random::<f64>() < p
}
