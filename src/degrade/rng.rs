//! Seeded random numbers shared by the degradations.

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

/// A stable 64-bit hash of a string (FNV-1a), for seeds derived from file names.
pub fn name_hash(name: &str) -> u64 {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for b in name.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01B3);
    }
    h
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One standard normal sample (Box–Muller; uses two uniforms, discards the second normal).
pub(crate) fn normal<R: Rng + ?Sized>(rng: &mut R) -> f32 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]
    let u2: f64 = rng.random::<f64>();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

/// Fills `out` with standard normal samples (Box–Muller, both normals of each pair used).
pub(crate) fn fill_normal<R: Rng + ?Sized>(rng: &mut R, out: &mut [f32]) {
    let mut chunks = out.chunks_exact_mut(2);
    for pair in &mut chunks {
        let u1: f64 = 1.0 - rng.random::<f64>();
        let u2: f64 = rng.random::<f64>();
        let r = (-2.0 * u1.ln()).sqrt();
        let (s, c) = (std::f64::consts::TAU * u2).sin_cos();
        pair[0] = (r * c) as f32;
        pair[1] = (r * s) as f32;
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
