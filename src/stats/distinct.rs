//! Distinct counts: exact while a column has at most [`EXACT_DISTINCT`] distinct values, a
//! HyperLogLog sketch above; the stored, mergeable form keeps the exact keys only up to
//! [`STORED_KEYS`], so a column's state stays a few KB whatever its size.
//!
//! Keys are the values themselves for integers, timestamps and floats (their bits, `-0.0`
//! folded into `0.0`), so those counts are exact; strings are keyed by a 64-bit hash, whose
//! collisions (about n² / 2⁶⁵: 3 × 10⁻¹⁰ at 100 000 values) are negligible.
//!
//! The sketch is a small HyperLogLog (Flajolet et al. 2007) written here rather than taken from
//! a crate: it has to take pre-hashed keys, merge, and serialise as a compact byte string
//! (see the README section on statistics for why not `hyperloglogplus`). With 2¹² registers its
//! standard error is 1.04 / √4096 = 1.6 %; estimates are documented as within 5 % (3 σ).

use std::collections::HashSet;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use rustc_hash::FxBuildHasher;
use serde::{Deserialize, Serialize};

/// Distinct values counted exactly while computing; above it the count is a sketch estimate.
pub(crate) const EXACT_DISTINCT: usize = 100_000;

/// Exact keys kept in the stored state (8 bytes each): above it the state is the sketch, and a
/// merge that needs the count estimates it.
pub(crate) const STORED_KEYS: usize = 512;

/// Register index bits of the sketch: 4 096 one-byte registers.
const P: u32 = 12;
const M: usize = 1 << P;

/// A 64-bit mix (splitmix64's finaliser): keys that are small integers become uniformly
/// spread hashes, as the sketch needs.
pub(crate) fn mix(key: u64) -> u64 {
    let mut z = key.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The key of a string value.
pub(crate) fn string_key(value: &str) -> u64 {
    use std::hash::BuildHasher;
    mix(FxBuildHasher.hash_one(value))
}

/// The key of a float value: its bits, with both zeros the same value.
pub(crate) fn float_key(value: f64) -> u64 {
    if value == 0.0 { 0 } else { value.to_bits() }
}

/// A HyperLogLog sketch over keys.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Hll {
    registers: Vec<u8>,
}

impl Hll {
    fn new() -> Self {
        Hll {
            registers: vec![0; M],
        }
    }

    fn add(&mut self, key: u64) {
        let h = mix(key);
        let index = (h >> (64 - P)) as usize;
        let rank = ((h << P) | (1 << (P - 1))).leading_zeros() as u8 + 1;
        if self.registers[index] < rank {
            self.registers[index] = rank;
        }
    }

    fn merge(&mut self, other: &Hll) {
        for (a, b) in self.registers.iter_mut().zip(&other.registers) {
            *a = (*a).max(*b);
        }
    }

    fn estimate(&self) -> u64 {
        let m = M as f64;
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let sum: f64 = self.registers.iter().map(|&r| (-(r as f64)).exp2()).sum();
        let raw = alpha * m * m / sum;
        let zeros = self.registers.iter().filter(|&&r| r == 0).count();
        if raw <= 2.5 * m && zeros > 0 {
            (m * (m / zeros as f64).ln()).round() as u64
        } else {
            raw.round() as u64
        }
    }
}

/// Counts distinct keys while computing: a set up to [`EXACT_DISTINCT`], then a sketch.
pub(crate) struct DistinctCounter {
    keys: HashSet<u64, FxBuildHasher>,
    sketch: Option<Hll>,
}

impl DistinctCounter {
    /// An empty counter.
    pub(crate) fn new() -> Self {
        DistinctCounter {
            keys: HashSet::with_hasher(FxBuildHasher),
            sketch: None,
        }
    }

    /// Counts one key.
    pub(crate) fn add(&mut self, key: u64) {
        match &mut self.sketch {
            Some(sketch) => sketch.add(key),
            None => {
                self.keys.insert(key);
                if self.keys.len() > EXACT_DISTINCT {
                    let mut sketch = Hll::new();
                    self.keys.drain().for_each(|k| sketch.add(k));
                    self.sketch = Some(sketch);
                }
            }
        }
    }

    /// The count (exact or estimated) and the state to store.
    pub(crate) fn finish(self) -> (u64, bool, DistinctState) {
        match self.sketch {
            Some(sketch) => (sketch.estimate(), false, DistinctState::Sketch(sketch)),
            None => {
                let n = self.keys.len() as u64;
                (n, true, DistinctState::from_keys(self.keys.into_iter()))
            }
        }
    }
}

/// The stored, mergeable distinct state of a column.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum DistinctState {
    /// Every distinct key (at most [`STORED_KEYS`]).
    Exact(Vec<u64>),
    /// A sketch of them.
    Sketch(Hll),
}

impl DistinctState {
    /// The state of a set of distinct keys (each once).
    pub(crate) fn from_keys(keys: impl ExactSizeIterator<Item = u64>) -> Self {
        if keys.len() <= STORED_KEYS {
            let mut keys: Vec<u64> = keys.collect();
            keys.sort_unstable();
            DistinctState::Exact(keys)
        } else {
            let mut sketch = Hll::new();
            keys.for_each(|k| sketch.add(k));
            DistinctState::Sketch(sketch)
        }
    }

    /// The union of both sides' keys, its count, and whether the count is exact (both sides
    /// kept their keys).
    pub(crate) fn merge(&self, other: &DistinctState) -> (DistinctState, u64, bool) {
        match (self, other) {
            (DistinctState::Exact(a), DistinctState::Exact(b)) => {
                let mut keys: Vec<u64> = a.iter().chain(b).copied().collect();
                keys.sort_unstable();
                keys.dedup();
                let count = keys.len() as u64;
                (DistinctState::from_keys(keys.into_iter()), count, true)
            }
            _ => {
                let mut sketch = self.to_sketch();
                sketch.merge(&other.to_sketch());
                let count = sketch.estimate();
                (DistinctState::Sketch(sketch), count, false)
            }
        }
    }

    fn to_sketch(&self) -> Hll {
        match self {
            DistinctState::Exact(keys) => {
                let mut sketch = Hll::new();
                keys.iter().for_each(|&k| sketch.add(k));
                sketch
            }
            DistinctState::Sketch(sketch) => sketch.clone(),
        }
    }
}

/// Serialised as `"exact:<base64 of little-endian keys>"` or `"hll12:<base64 registers>"`.
impl Serialize for DistinctState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let text = match self {
            DistinctState::Exact(keys) => {
                let bytes: Vec<u8> = keys.iter().flat_map(|k| k.to_le_bytes()).collect();
                format!("exact:{}", BASE64.encode(bytes))
            }
            DistinctState::Sketch(sketch) => format!("hll12:{}", BASE64.encode(&sketch.registers)),
        };
        s.serialize_str(&text)
    }
}

impl<'de> Deserialize<'de> for DistinctState {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let text = String::deserialize(d)?;
        let decode = |b64: &str| BASE64.decode(b64).map_err(D::Error::custom);
        if let Some(b64) = text.strip_prefix("exact:") {
            let bytes = decode(b64)?;
            if bytes.len() % 8 != 0 {
                return Err(D::Error::custom("distinct keys are 8 bytes each"));
            }
            let keys = bytes
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect();
            Ok(DistinctState::Exact(keys))
        } else if let Some(b64) = text.strip_prefix("hll12:") {
            let registers = decode(b64)?;
            if registers.len() != M {
                return Err(D::Error::custom("a distinct sketch has 4096 registers"));
            }
            Ok(DistinctState::Sketch(Hll { registers }))
        } else {
            Err(D::Error::custom("unknown distinct state"))
        }
    }
}
