//! The one pseudo-random generator of the workspace (xorshift64*, Vigna 2016): small, seeded and
//! deterministic, for what must repeat from a seed (the stress suites' workloads, the host tests'
//! randomized schedules, the fuzzer's mutations, the simulated device's choices). Not for anything
//! that must be unpredictable.

/// xorshift64*: a 64-bit xorshift state, output multiplied by a constant.
#[derive(Clone, Debug)]
pub struct Rng(u64);

const MULTIPLIER: u64 = 0x2545_f491_4f6c_dd1d;

impl Rng {
    /// The generator for `seed`; every seed (0 included) gives a non-zero state.
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(MULTIPLIER) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(MULTIPLIER)
    }

    /// Uniform-ish in `0..n` (modulo bias, negligible for small `n`); 0 when `n` is 0.
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    /// True one time in `one_in` on average (always when `one_in` is 0 or 1).
    pub fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_per_seed_and_differs_between_seeds() {
        let take = |seed| {
            let mut r = Rng::new(seed);
            [r.next_u64(), r.next_u64(), r.next_u64()]
        };
        assert_eq!(take(7), take(7));
        assert_ne!(take(7), take(8));
        assert_ne!(take(0), [0; 3], "seed 0 is not a stuck state");
    }

    #[test]
    fn below_stays_in_range_and_reaches_every_value() {
        let mut r = Rng::new(1);
        let mut seen = [false; 7];
        for _ in 0..1000 {
            let v = r.below(7);
            assert!(v < 7);
            seen[v] = true;
        }
        assert!(seen.iter().all(|&s| s), "{seen:?}");
        assert_eq!(r.below(0), 0);
        assert!(r.chance(1));
    }
}
