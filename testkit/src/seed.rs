//! Seeds for randomised tests.
//!
//! A test picks a default seed; `IXTCP_SEED=N` overrides it, so that a run
//! that failed can be replayed exactly. [`Seeded`] prints the seed when the
//! test starts and, if the test panics while it lives, once more with the
//! command line that replays it.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The environment variable that overrides a test's seed.
pub const SEED_VAR: &str = "IXTCP_SEED";

/// Reads a seed written in decimal or as `0x` hexadecimal.
fn parse(text: &str) -> Option<u64> {
    let t = text.trim();
    match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => t.parse().ok(),
    }
}

/// The seed from `IXTCP_SEED`, or `default` when it is not set. Panics when
/// it is set to something that is not a number, rather than quietly running
/// another seed than the one asked for.
pub fn seed_from_env(default: u64) -> u64 {
    match std::env::var(SEED_VAR) {
        Ok(text) => parse(&text).unwrap_or_else(|| panic!("{SEED_VAR}={text:?} is not a number (decimal or 0x hex)")),
        Err(std::env::VarError::NotPresent) => default,
        Err(e) => panic!("{SEED_VAR}: {e}"),
    }
}

/// A test's seed and an RNG seeded with it. Printed at creation; dropped
/// during a panic, it prints the seed again with the way to replay it.
pub struct Seeded {
    /// The seed (from `IXTCP_SEED`, or the test's default).
    pub seed: u64,
    /// ChaCha8 seeded with [`seed`](Self::seed).
    pub rng: ChaCha8Rng,
}

impl Seeded {
    /// The seed from `IXTCP_SEED` or `default`, announced on stderr.
    pub fn new(default: u64) -> Seeded {
        let seed = seed_from_env(default);
        eprintln!("seed {seed} ({SEED_VAR}={seed} replays this run)");
        Seeded { seed, rng: ChaCha8Rng::seed_from_u64(seed) }
    }

    /// Another RNG from the same seed, starting from the beginning of the
    /// stream (for a second, independent consumer).
    pub fn fresh_rng(&self) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(self.seed)
    }
}

impl std::fmt::Debug for Seeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Seeded").field("seed", &self.seed).finish_non_exhaustive()
    }
}

impl Drop for Seeded {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test failed with seed {} (rerun with {SEED_VAR}={})", self.seed, self.seed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn seeds_parse_in_decimal_and_hex() {
        assert_eq!(parse("42"), Some(42));
        assert_eq!(parse(" 0x5eed "), Some(0x5eed));
        assert_eq!(parse("0XFF"), Some(255));
        assert_eq!(parse("seed"), None);
        assert_eq!(parse(""), None);
        assert_eq!(parse("-1"), None);
    }

    #[test]
    fn the_same_seed_gives_the_same_stream() {
        let a = Seeded { seed: 7, rng: ChaCha8Rng::seed_from_u64(7) };
        let mut b = a.fresh_rng();
        let mut a = a;
        let xs: Vec<u64> = (0..4).map(|_| a.rng.random()).collect();
        let ys: Vec<u64> = (0..4).map(|_| b.random()).collect();
        assert_eq!(xs, ys);
        let mut c = ChaCha8Rng::seed_from_u64(8);
        assert_ne!(xs[0], c.random::<u64>());
    }
}
