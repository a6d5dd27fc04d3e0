//! Seeded randomness, in one place: the stream generator ([`DegradeRng`], ChaCha8: crops,
//! degradations, data order), the seed mixer and small generator ([`SplitMix64`]:
//! [`derive_seed`], the fixed DPA prototypes), one normal sampler ([`box_muller`]) and one
//! hash ([`fnv1a`]: seeds from names, checkpoint checksums).

use rand::{Rng, SeedableRng};

/// The random generator every seeded function of this crate uses: ChaCha8, whose stream for a
/// given seed is fixed by its specification (unlike `rand::rngs::StdRng`, which may change
/// between `rand` releases), so a seed reproduces the same images on every platform.
pub type DegradeRng = rand_chacha::ChaCha8Rng;

/// A [`DegradeRng`] seeded with `seed`.
pub fn rng_from_seed(seed: u64) -> DegradeRng {
    DegradeRng::seed_from_u64(seed)
}

/// Mixes a base seed with further values (epoch, index, a name hash...) into a new seed
/// (SplitMix64 finaliser over each part), so that derived streams are independent and stable.
pub fn derive_seed(base: u64, parts: &[u64]) -> u64 {
    let mut h = splitmix(base ^ 0x5EED_D99D_0000_0001);
    for &p in parts {
        h = splitmix(h ^ splitmix(p.wrapping_add(0x9E37_79B9_7F4A_7C15)));
    }
    h
}

/// The FNV-1a 64 offset basis: the start value of [`fnv1a`].
pub(crate) const FNV_OFFSET: u64 = 0xCBF2_9CE4_8422_2325;

/// FNV-1a 64 of `bytes`, continuing from `h` ([`FNV_OFFSET`] to start).
pub(crate) fn fnv1a(bytes: &[u8], mut h: u64) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    }
    h
}

/// A stable 64-bit hash of a string (FNV-1a), for seeds derived from file names.
pub fn name_hash(name: &str) -> u64 {
    fnv1a(name.as_bytes(), FNV_OFFSET)
}

/// SplitMix64 (Steele, Lea and Flood 2014): a tiny generator whose stream is fixed by its
/// definition, for values that must never change across versions (the DPA prototypes), and
/// the mixer of [`derive_seed`].
pub(crate) struct SplitMix64(pub u64);

impl SplitMix64 {
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    pub(crate) fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    /// One standard normal sample ([`box_muller`], the first of the pair).
    pub(crate) fn normal(&mut self) -> f64 {
        let (u1, u2) = (self.uniform(), self.uniform());
        box_muller(u1, u2).0
    }
}

/// SplitMix64's output for the state before `z` (one step from state `z`).
fn splitmix(z: u64) -> u64 {
    SplitMix64(z).next_u64()
}

/// The Box–Muller transform: two independent standard normal samples from `u1` in (0, 1] and
/// `u2` in [0, 1).
pub(crate) fn box_muller(u1: f64, u2: f64) -> (f64, f64) {
    let r = (-2.0 * u1.ln()).sqrt();
    let (s, c) = (std::f64::consts::TAU * u2).sin_cos();
    (r * c, r * s)
}

/// Two uniforms of `rng` for [`box_muller`].
fn uniforms<R: Rng + ?Sized>(rng: &mut R) -> (f64, f64) {
    let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]
    (u1, rng.random::<f64>())
}

/// One standard normal sample (Box–Muller; uses two uniforms, discards the second normal).
pub(crate) fn normal<R: Rng + ?Sized>(rng: &mut R) -> f32 {
    let (u1, u2) = uniforms(rng);
    box_muller(u1, u2).0 as f32
}

/// Fills `out` with standard normal samples (Box–Muller, both normals of each pair used).
pub(crate) fn fill_normal<R: Rng + ?Sized>(rng: &mut R, out: &mut [f32]) {
    let mut chunks = out.chunks_exact_mut(2);
    for pair in &mut chunks {
        let (u1, u2) = uniforms(rng);
        let (a, b) = box_muller(u1, u2);
        pair[0] = a as f32;
        pair[1] = b as f32;
    }
    for v in chunks.into_remainder() {
        *v = normal(rng);
    }
}

/// A uniform sample from `[lo, hi]` (returns `lo` when the range is empty or inverted).
pub(crate) fn uniform<R: Rng + ?Sized>(rng: &mut R, (lo, hi): (f32, f32)) -> f32 {
    if hi <= lo {
        lo
    } else {
        lo + (hi - lo) * rng.random::<f32>()
    }
}

/// A Poisson sample with mean `lambda` (Knuth's product method below 30, a rounded normal
/// approximation `max(0, round(λ + √λ·z))` from 30 on).
pub(crate) fn poisson<R: Rng + ?Sized>(rng: &mut R, lambda: f32) -> f32 {
    if lambda <= 0.0 {
        return 0.0;
    }
    if lambda < 30.0 {
        let limit = (-lambda as f64).exp();
        let mut k = 0u32;
        let mut p = rng.random::<f64>();
        while p > limit {
            k += 1;
            p *= rng.random::<f64>();
        }
        k as f32
    } else {
        (lambda + lambda.sqrt() * normal(rng)).round().max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_samples_have_unit_variance() {
        let mut rng = rng_from_seed(1);
        let mut v = vec![0.0f32; 100_001];
        fill_normal(&mut rng, &mut v);
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.015, "var {var}");
    }

    #[test]
    fn poisson_mean_and_variance() {
        let mut rng = rng_from_seed(2);
        for lambda in [3.0f32, 80.0] {
            let v: Vec<f64> = (0..50_000)
                .map(|_| poisson(&mut rng, lambda) as f64)
                .collect();
            let mean = v.iter().sum::<f64>() / v.len() as f64;
            let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64;
            let l = lambda as f64;
            assert!((mean - l).abs() < 0.03 * l, "λ {l}: mean {mean}");
            assert!((var - l).abs() < 0.06 * l, "λ {l}: var {var}");
        }
    }

    #[test]
    fn derived_seeds_differ_and_are_stable() {
        assert_eq!(derive_seed(7, &[1, 2]), derive_seed(7, &[1, 2]));
        assert_ne!(derive_seed(7, &[1, 2]), derive_seed(7, &[2, 1]));
        assert_ne!(derive_seed(7, &[1]), derive_seed(8, &[1]));
        assert_eq!(name_hash("a"), 0xAF63_DC4C_8601_EC8C);
    }
}
