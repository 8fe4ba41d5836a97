//! A small seeded generator for tests that pick random timings: the seed is printed, and a
//! failing run is replayed by setting the variable it names.

/// splitmix64: tiny, fast and good enough to spread kill times; not for anything secret.
#[derive(Debug, Clone)]
pub struct SplitMix(u64);

impl SplitMix {
    /// A generator from a fixed seed, for data that must be random-looking, not random.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The seed in `var` when set, else one from the clock; printed either way, so a failure
    /// can be replayed with `var=<seed>`.
    pub fn from_env_or_clock(var: &str) -> Self {
        let seed = std::env::var(var)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            });
        eprintln!("random seed: {var}={seed}");
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}
