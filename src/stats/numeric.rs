//! The exact figures of a numeric column: moments, pandas-identical percentiles and a
//! numpy-identical histogram, over the column's non-null values in one owned buffer.
//!
//! Integers with a small range (the common case: ids, ratings, durations) are counted into a
//! dense array instead: every figure then comes from the counts in O(values + range), with no
//! sort, no selection and no hashing per row.

use super::distinct::{DistinctCounter, DistinctState, float_key};
use super::figures::{HistogramBin, NumericStats, Percentiles};
use super::quantile::{QuantileSketch, SketchBuilder};

/// Bins of every histogram with more than one distinct value.
pub(crate) const BINS: usize = 20;

/// The percentiles reported, as fractions, in the order of [`Percentiles`]' fields.
pub(crate) const QUANTILES: [f64; 7] = [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99];

/// The widest integer range counted densely: 4 Mi counters of 4 bytes (16 MiB) at most, and
/// never more than four counters per value, so the array never costs more than the values.
const DENSE_RANGE: u64 = 1 << 22;

/// Non-null values of one numeric column, in their exact representation.
pub(crate) enum Values {
    /// Integers, kept exact for distinct counts and sums.
    Ints(Vec<i64>),
    /// Finite floats (NaN and infinities count as null).
    Floats(Vec<f64>),
}

impl Values {
    /// How many values.
    pub(crate) fn len(&self) -> usize {
        match self {
            Values::Ints(v) => v.len(),
            Values::Floats(v) => v.len(),
        }
    }
}

/// Count, mean and the sum of squared deviations: the state that merges exactly (Chan et al.'s
/// parallel formula).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Moments {
    /// Values counted.
    pub(crate) n: u64,
    /// Their mean.
    pub(crate) mean: f64,
    /// Σ (x − mean)².
    pub(crate) m2: f64,
}

impl Moments {
    /// The moments of both value sets together.
    pub(crate) fn merge(&self, other: &Moments) -> Moments {
        if self.n == 0 {
            return *other;
        }
        if other.n == 0 {
            return *self;
        }
        let n = self.n + other.n;
        let (na, nb, nf) = (self.n as f64, other.n as f64, n as f64);
        let delta = other.mean - self.mean;
        Moments {
            n,
            mean: self.mean + delta * nb / nf,
            m2: self.m2 + other.m2 + delta * delta * na * nb / nf,
        }
    }

    /// Sample standard deviation (n − 1), 0 for a single value.
    pub(crate) fn std(&self) -> f64 {
        if self.n < 2 {
            0.0
        } else {
            (self.m2 / (self.n - 1) as f64).sqrt()
        }
    }
}

/// A histogram's edges exactly as `numpy.histogram(values, bins=20)` places them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Binning {
    first: f64,
    last: f64,
    step: f64,
}

impl Binning {
    /// Equal-width bins from `min` to `max` (`None` when the range is empty or its width is not
    /// finite).
    pub(crate) fn new(min: f64, max: f64) -> Option<Binning> {
        // A range wider than the largest float (e.g. -1e308..1e308) would put infinite edges
        // in the figures, which JSON cannot carry: one bin then.
        ((max - min).is_finite() && max > min).then(|| Binning {
            first: min,
            last: max,
            step: (max - min) / BINS as f64,
        })
    }

    /// Edge `i` of `0..=BINS`, as `numpy.linspace` computes it (the last one is `max` itself).
    pub(crate) fn edge(&self, i: usize) -> f64 {
        if i == BINS {
            self.last
        } else {
            i as f64 * self.step + self.first
        }
    }

    /// The bin of `x` given its distance from `min` (exact for integers), with numpy's
    /// corrections for values that rounding put one bin off.
    pub(crate) fn bin(&self, x: f64, offset: f64) -> usize {
        let f = offset / (self.last - self.first) * BINS as f64;
        let mut i = (f as usize).min(BINS - 1);
        if i > 0 && x < self.edge(i) {
            i -= 1;
        } else if i != BINS - 1 && x >= self.edge(i + 1) {
            i += 1;
        }
        i
    }

    /// The bins with their counts.
    pub(crate) fn bins(&self, counts: &[u64; BINS]) -> Vec<HistogramBin> {
        (0..BINS)
            .map(|i| HistogramBin {
                lower: self.edge(i),
                upper: self.edge(i + 1),
                count: counts[i],
            })
            .collect()
    }
}

/// What one pass over a numeric column yields.
pub(crate) struct Exact {
    /// The served figures, all exact.
    pub(crate) stats: NumericStats,
    /// For merging moments.
    pub(crate) moments: Moments,
    /// For percentiles after a merge.
    pub(crate) sketch: QuantileSketch,
    /// Distinct values.
    pub(crate) distinct: u64,
    /// Whether `distinct` is exact.
    pub(crate) distinct_exact: bool,
    /// For distinct counts after a merge.
    pub(crate) distinct_state: DistinctState,
}

/// The exact figures of `values` (at least one), plus the state that merges them later.
pub(crate) fn exact(values: &mut Values) -> Exact {
    match values {
        Values::Ints(v) => {
            let (min, max) = min_max_ints(v);
            let range = max.abs_diff(min);
            if range < DENSE_RANGE && range <= 4 * v.len() as u64 && v.len() < u32::MAX as usize {
                return dense_ints(v, min, max);
            }
            let mut distinct = DistinctCounter::new();
            let mut sketch = SketchBuilder::new();
            let mut sum = 0i128;
            for &x in v.iter() {
                distinct.add(x as u64);
                sketch.add(x as f64, 1);
                sum += x as i128;
            }
            let mut floats: Vec<f64> = v.iter().map(|&x| x as f64).collect();
            let mean = sum as f64 / v.len() as f64;
            let (stats, moments) = sorted_figures(&mut floats, min as f64, max as f64, mean, |x| {
                x - min as f64
            });
            finish(stats, moments, sketch, distinct)
        }
        Values::Floats(v) => {
            let mut distinct = DistinctCounter::new();
            let mut sketch = SketchBuilder::new();
            let (mut min, mut max, mut sum) = (f64::INFINITY, f64::NEG_INFINITY, 0.0);
            for &x in v.iter() {
                distinct.add(float_key(x));
                if x.is_finite() {
                    sketch.add(x, 1);
                }
                min = min.min(x);
                max = max.max(x);
                sum += x;
            }
            let mean = sum / v.len() as f64;
            let (stats, moments) = sorted_figures(v, min, max, mean, |x| x - min);
            finish(stats, moments, sketch, distinct)
        }
    }
}

fn finish(
    stats: NumericStats,
    moments: Moments,
    sketch: SketchBuilder,
    distinct: DistinctCounter,
) -> Exact {
    let (count, distinct_exact, distinct_state) = distinct.finish();
    Exact {
        stats,
        moments,
        sketch: sketch.finish(),
        distinct: count,
        distinct_exact,
        distinct_state,
    }
}

fn min_max_ints(v: &[i64]) -> (i64, i64) {
    v.iter()
        .fold((i64::MAX, i64::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)))
}

/// Figures of integers counted into a dense array indexed by `x − min`.
fn dense_ints(v: &[i64], min: i64, max: i64) -> Exact {
    let mut counts = vec![0u32; (max.abs_diff(min) + 1) as usize];
    for &x in v {
        // In range: every x is within [min, max], and the array holds max − min + 1 slots.
        counts[x.abs_diff(min) as usize] += 1;
    }
    let n = v.len() as u64;
    let sum: i128 = counts
        .iter()
        .enumerate()
        .map(|(i, &c)| c as i128 * (min as i128 + i as i128))
        .sum();
    let mean = sum as f64 / n as f64;
    let mut m2 = 0.0;
    let binning = Binning::new(min as f64, max as f64);
    let mut hist = [0u64; BINS];
    let mut sketch = SketchBuilder::new();
    let mut keys = Vec::new();
    for (i, &c) in counts.iter().enumerate() {
        if c == 0 {
            continue;
        }
        let value = min.wrapping_add(i as i64);
        keys.push(value as u64);
        let x = value as f64;
        sketch.add(x, c as u64);
        let d = x - mean;
        m2 += c as f64 * d * d;
        if let Some(b) = &binning {
            hist[b.bin(x, i as f64)] += c as u64;
        }
    }
    // The value at rank r is the first x whose cumulative count passes r.
    let ranks = needed_ranks(n);
    let mut at_rank = Vec::with_capacity(ranks.len());
    let mut cumulative = 0u64;
    let mut next = ranks.iter().peekable();
    for (i, &c) in counts.iter().enumerate() {
        cumulative += c as u64;
        while let Some(&&r) = next.peek() {
            if r < cumulative {
                at_rank.push((r, (min as i128 + i as i128) as f64));
                next.next();
            } else {
                break;
            }
        }
    }
    let moments = Moments { n, mean, m2 };
    let stats = NumericStats {
        min: min as f64,
        max: max as f64,
        mean,
        std: moments.std(),
        percentiles: interpolate(n, &at_rank),
        histogram: histogram(binning, &hist, (min as f64, max as f64), n),
    };
    Exact {
        stats,
        moments,
        sketch: sketch.finish(),
        distinct: keys.len() as u64,
        distinct_exact: true,
        distinct_state: DistinctState::from_keys(keys.into_iter()),
    }
}

/// Figures from an owned buffer of values: percentiles by selection (no full sort).
fn sorted_figures(
    v: &mut [f64],
    min: f64,
    max: f64,
    mean: f64,
    offset: impl Fn(f64) -> f64,
) -> (NumericStats, Moments) {
    let n = v.len() as u64;
    let binning = Binning::new(min, max);
    let mut hist = [0u64; BINS];
    let mut m2 = 0.0;
    for &x in v.iter() {
        let d = x - mean;
        m2 += d * d;
        if let Some(b) = &binning {
            hist[b.bin(x, offset(x))] += 1;
        }
    }
    let ranks = needed_ranks(n);
    let mut at_rank = Vec::with_capacity(ranks.len());
    let mut start = 0usize;
    for &r in &ranks {
        let r = r as usize;
        let rest = &mut v[start..];
        let (_, nth, _) = rest.select_nth_unstable_by(r - start, f64::total_cmp);
        at_rank.push((r as u64, *nth));
        start = r + 1;
    }
    let moments = Moments { n, mean, m2 };
    let stats = NumericStats {
        min,
        max,
        mean,
        std: moments.std(),
        percentiles: interpolate(n, &at_rank),
        histogram: histogram(binning, &hist, (min, max), n),
    };
    (stats, moments)
}

fn histogram(
    binning: Option<Binning>,
    counts: &[u64; BINS],
    (min, max): (f64, f64),
    n: u64,
) -> Vec<HistogramBin> {
    match binning {
        Some(b) => b.bins(counts),
        None => vec![HistogramBin {
            lower: min,
            upper: max,
            count: n,
        }],
    }
}

/// The fractional rank of quantile `q` among `n` values (numpy's "linear" method).
fn virtual_rank(n: u64, q: f64) -> f64 {
    (n - 1) as f64 * q
}

/// The ranks (0-based, ascending, unique) whose values the percentiles interpolate between.
fn needed_ranks(n: u64) -> Vec<u64> {
    let mut ranks: Vec<u64> = QUANTILES
        .iter()
        .flat_map(|&q| {
            let r = virtual_rank(n, q);
            [r.floor() as u64, (r.ceil() as u64).min(n - 1)]
        })
        .collect();
    ranks.sort_unstable();
    ranks.dedup();
    ranks
}

/// numpy's `_lerp`: the form it picks by the side of the fraction, for identical rounding.
pub(crate) fn lerp(a: f64, b: f64, t: f64) -> f64 {
    let diff = b - a;
    if t >= 0.5 {
        b - diff * (1.0 - t)
    } else {
        a + diff * t
    }
}

fn interpolate(n: u64, at_rank: &[(u64, f64)]) -> Percentiles {
    let value = |r: u64| {
        at_rank
            .iter()
            .find(|(rank, _)| *rank == r)
            .map(|(_, v)| *v)
            .unwrap_or(f64::NAN)
    };
    let q = |q: f64| {
        let r = virtual_rank(n, q);
        let lo = r.floor();
        let hi = (r.ceil() as u64).min(n - 1);
        lerp(value(lo as u64), value(hi), r - lo)
    };
    Percentiles {
        p1: q(QUANTILES[0]),
        p5: q(QUANTILES[1]),
        p25: q(QUANTILES[2]),
        p50: q(QUANTILES[3]),
        p75: q(QUANTILES[4]),
        p95: q(QUANTILES[5]),
        p99: q(QUANTILES[6]),
    }
}
