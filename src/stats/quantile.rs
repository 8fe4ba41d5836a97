//! A mergeable quantile sketch with a relative-error guarantee, for the percentiles of a
//! version built by appends (the exact values are gone by then).
//!
//! Values fall in log-linear buckets taken straight from the float's bits: the exponent and
//! the top [`MANTISSA_BITS`] mantissa bits. A bucket spans `[l, l·(1 + 2⁻⁶))`, and the value a
//! query returns for it is the one equally far, relatively, from both ends, so every value at a
//! given rank is answered within a relative error of `2⁻⁶ / (2 + 2⁻⁶)` < **0.78 %** (the same
//! guarantee as DDSketch, Masson et al. 2019, with α = 0.0078). Integers below 128 keep a
//! bucket each, so small counts and ratings stay exact. Bucketing needs no logarithm: a few
//! bit operations per value.
//!
//! Why not `sketches-ddsketch`: it has no weighted insert (the dense integer path adds each
//! distinct value once with its count) and serialises its bins as a JSON array, where this
//! one stores a compact varint string. At most [`MAX_BUCKETS`] buckets are kept; beyond, the
//! lowest buckets are folded together, which costs accuracy only at the very bottom of a
//! column spanning more than 60 powers of two.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use rustc_hash::FxBuildHasher;
use serde::{Deserialize, Serialize};

use super::numeric::lerp;

/// Mantissa bits in a bucket key: 64 buckets per power of two.
const MANTISSA_BITS: u32 = 6;

/// Buckets kept at most (a few KB stored).
const MAX_BUCKETS: usize = 4096;

/// Ordered bucket key of a finite value: 0 for zero, positive above, negative below.
fn key(x: f64) -> i64 {
    if x == 0.0 {
        return 0;
    }
    let k = (x.abs().to_bits() >> (52 - MANTISSA_BITS)) as i64 + 1;
    if x > 0.0 { k } else { -k }
}

/// The edges `[lower, upper)` of bucket `k`'s values (mirrored for negative keys).
fn bounds(k: i64) -> (f64, f64) {
    if k == 0 {
        return (0.0, 0.0);
    }
    let bits = (k.unsigned_abs() - 1) << (52 - MANTISSA_BITS);
    let (lower, upper) = (
        f64::from_bits(bits),
        f64::from_bits(bits + (1 << (52 - MANTISSA_BITS))),
    );
    if k > 0 {
        (lower, upper)
    } else {
        (-upper, -lower)
    }
}

/// The value standing for a bucket: relatively equidistant from its edges.
fn representative(k: i64) -> f64 {
    if k == 0 {
        return 0.0;
    }
    let (lower, upper) = bounds(k.abs());
    let v = if upper.is_finite() {
        2.0 * lower * upper / (lower + upper)
    } else {
        lower
    };
    if k > 0 { v } else { -v }
}

/// Builds a sketch value by value (or value and count).
pub(crate) struct SketchBuilder {
    buckets: HashMap<i64, u64, FxBuildHasher>,
}

impl SketchBuilder {
    /// An empty builder.
    pub(crate) fn new() -> Self {
        SketchBuilder {
            buckets: HashMap::with_hasher(FxBuildHasher),
        }
    }

    /// Adds `n` occurrences of the finite value `x`.
    pub(crate) fn add(&mut self, x: f64, n: u64) {
        *self.buckets.entry(key(x)).or_insert(0) += n;
    }

    /// The finished sketch.
    pub(crate) fn finish(self) -> QuantileSketch {
        let mut buckets: Vec<(i64, u64)> = self.buckets.into_iter().collect();
        buckets.sort_unstable();
        let mut sketch = QuantileSketch { buckets };
        sketch.collapse();
        sketch
    }
}

/// Counts per bucket, in value order.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct QuantileSketch {
    buckets: Vec<(i64, u64)>,
}

impl QuantileSketch {
    /// The sketch of both value sets.
    pub(crate) fn merge(&self, other: &QuantileSketch) -> QuantileSketch {
        let (a, b) = (&self.buckets, &other.buckets);
        let mut buckets = Vec::with_capacity(a.len() + b.len());
        let (mut i, mut j) = (0, 0);
        while i < a.len() || j < b.len() {
            if j == b.len() || (i < a.len() && a[i].0 < b[j].0) {
                buckets.push(a[i]);
                i += 1;
            } else if i == a.len() || b[j].0 < a[i].0 {
                buckets.push(b[j]);
                j += 1;
            } else {
                buckets.push((a[i].0, a[i].1 + b[j].1));
                i += 1;
                j += 1;
            }
        }
        let mut merged = QuantileSketch { buckets };
        merged.collapse();
        merged
    }

    fn collapse(&mut self) {
        if self.buckets.len() > MAX_BUCKETS {
            let excess = self.buckets.len() - MAX_BUCKETS;
            let folded: u64 = self.buckets[..=excess].iter().map(|b| b.1).sum();
            self.buckets.drain(..excess);
            self.buckets[0].1 = folded;
        }
    }

    /// Values counted.
    pub(crate) fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.1).sum()
    }

    /// The estimated value at each 0-based rank of `ranks` (ascending), clamped to the known
    /// `min` and `max`.
    fn at_ranks(&self, ranks: &[u64], min: f64, max: f64) -> Vec<f64> {
        let mut out = Vec::with_capacity(ranks.len());
        let mut cumulative = 0u64;
        let mut buckets = self.buckets.iter();
        let mut current = None;
        for &r in ranks {
            while cumulative <= r {
                match buckets.next() {
                    Some(&(k, c)) => {
                        cumulative += c;
                        current = Some(k);
                    }
                    None => break,
                }
            }
            let v = current.map(representative).unwrap_or(f64::NAN);
            // `clamp` would panic on a reversed or NaN range: only clamp to a real one.
            out.push(if min <= max { v.clamp(min, max) } else { v });
        }
        out
    }

    /// Quantile `q` with numpy's linear interpolation between the two closest ranks.
    pub(crate) fn quantile(&self, q: f64, min: f64, max: f64) -> f64 {
        let n = self.count();
        if n == 0 {
            return f64::NAN;
        }
        let r = (n - 1) as f64 * q;
        let (lo, hi) = (r.floor() as u64, (r.ceil() as u64).min(n - 1));
        let v = self.at_ranks(&[lo, hi], min, max);
        lerp(v[0], v[1], r - r.floor())
    }

    /// The fraction of the sketched values below `edge`: whole buckets below it, and the
    /// part of the bucket it cuts in proportion to the cut (values taken as uniform within a
    /// bucket, which is at most 1.6 % wide).
    pub(crate) fn fraction_below(&self, edge: f64) -> f64 {
        let n = self.count();
        if n == 0 {
            return 0.0;
        }
        let mut below = 0.0;
        for &(k, c) in &self.buckets {
            let (lower, upper) = bounds(k);
            if upper <= edge && lower < upper || (k == 0 && edge > 0.0) {
                below += c as f64;
            } else if lower < edge && edge < upper {
                below += c as f64 * (edge - lower) / (upper - lower);
            } else if lower >= edge {
                break;
            }
        }
        below / n as f64
    }

    /// The fraction of the sketched values in the bucket holding `x`.
    pub(crate) fn fraction_at(&self, x: f64) -> f64 {
        let n = self.count().max(1) as f64;
        let k = key(x);
        self.buckets
            .iter()
            .find(|b| b.0 == k)
            .map(|b| b.1 as f64 / n)
            .unwrap_or(0.0)
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*at)?;
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Some(v);
        }
    }
    None
}

/// Serialised as `"ll6:<base64>"`: per bucket the zigzag key delta and the count as varints.
impl Serialize for QuantileSketch {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut bytes = Vec::with_capacity(self.buckets.len() * 3);
        let mut previous = 0i64;
        for &(k, c) in &self.buckets {
            let delta = k.wrapping_sub(previous);
            put_varint(&mut bytes, ((delta << 1) ^ (delta >> 63)) as u64);
            put_varint(&mut bytes, c);
            previous = k;
        }
        s.serialize_str(&format!("ll6:{}", BASE64.encode(bytes)))
    }
}

impl<'de> Deserialize<'de> for QuantileSketch {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let text = String::deserialize(d)?;
        let b64 = text
            .strip_prefix("ll6:")
            .ok_or_else(|| D::Error::custom("unknown quantile sketch"))?;
        let bytes = BASE64.decode(b64).map_err(D::Error::custom)?;
        let (mut at, mut previous, mut buckets) = (0usize, 0i64, Vec::new());
        while at < bytes.len() {
            let z = get_varint(&bytes, &mut at).ok_or_else(|| D::Error::custom("truncated"))?;
            let c = get_varint(&bytes, &mut at).ok_or_else(|| D::Error::custom("truncated"))?;
            let delta = ((z >> 1) as i64) ^ -((z & 1) as i64);
            previous = previous.wrapping_add(delta);
            buckets.push((previous, c));
        }
        Ok(QuantileSketch { buckets })
    }
}
