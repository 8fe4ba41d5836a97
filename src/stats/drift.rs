//! Drift between two versions of a table: per column the population stability index (PSI)
//! and the change of null rate and mean.
//!
//! PSI = Σ (q − p) · ln(q / p) over bins, `p` a bin's share in `from`, `q` in `to`, each share
//! floored at [`SHARE_FLOOR`] so an empty bin gives a large but finite term (an empty bin on
//! one side against 1 % on the other adds about 0.046). Usual reading: under 0.1 stable,
//! 0.1–0.2 moderate, 0.2 and over (the default threshold) shifted.
//!
//! Numbers are compared over `from`'s histogram bins; `to`'s shares in them are its exact bin
//! counts when both histograms have the same edges (identical versions give exactly 0), else
//! they are read off `to`'s quantile sketch (values outside `from`'s range count in the first
//! or last bin). Strings and booleans are compared over the union of both sides' frequent
//! values plus one "other" share.

use super::VersionStats;
use super::column::ColumnState;
use super::figures::{ColumnDrift, ColumnKind, ColumnStats, DriftStatus};

/// The smallest share a bin counts with, so that PSI stays finite.
pub const SHARE_FLOOR: f64 = 1e-4;

/// PSI of shares `q` against shares `p` (same bins, each summing to about 1).
pub(crate) fn psi(p: &[f64], q: &[f64]) -> f64 {
    p.iter()
        .zip(q)
        .map(|(&p, &q)| {
            let (p, q) = (p.max(SHARE_FLOOR), q.max(SHARE_FLOOR));
            (q - p) * (q / p).ln()
        })
        .sum()
}

/// How each column moved from `from` to `to`: `from`'s columns in order, then those only in
/// `to`.
pub(crate) fn drift(from: &VersionStats, to: &VersionStats, threshold: f64) -> Vec<ColumnDrift> {
    let mut out: Vec<ColumnDrift> = from
        .columns
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let side = (a, from.state_of(i));
            match to.columns.iter().position(|c| c.name == a.name) {
                Some(j) => compare(side, (&to.columns[j], to.state_of(j)), threshold),
                None => one_sided(a, DriftStatus::Removed),
            }
        })
        .collect();
    out.extend(
        to.columns
            .iter()
            .filter(|b| !from.columns.iter().any(|a| a.name == b.name))
            .map(|b| one_sided(b, DriftStatus::Added)),
    );
    out
}

fn mean(c: &ColumnStats) -> Option<f64> {
    c.numeric.as_ref().map(|n| n.mean)
}

fn one_sided(c: &ColumnStats, status: DriftStatus) -> ColumnDrift {
    let (rate, mean) = (Some(c.null_rate), mean(c));
    let (from, to) = match status {
        DriftStatus::Added => ((None, None), (rate, mean)),
        _ => ((rate, mean), (None, None)),
    };
    ColumnDrift {
        name: c.name.clone(),
        status,
        psi: None,
        over_threshold: false,
        null_rate_from: from.0,
        null_rate_to: to.0,
        null_rate_change: None,
        mean_from: from.1,
        mean_to: to.1,
        mean_change: None,
    }
}

fn compare(
    (a, sa): (&ColumnStats, &ColumnState),
    (b, sb): (&ColumnStats, &ColumnState),
    threshold: f64,
) -> ColumnDrift {
    let comparable = a.kind == b.kind;
    let psi = if comparable {
        match a.kind {
            ColumnKind::Numeric => numeric_psi(a, b, sb),
            ColumnKind::String | ColumnKind::Boolean => categorical_psi((a, sa), (b, sb)),
            ColumnKind::Timestamp | ColumnKind::Other => None,
        }
    } else {
        None
    };
    let (mean_from, mean_to) = (mean(a), mean(b));
    ColumnDrift {
        name: a.name.clone(),
        status: if comparable {
            DriftStatus::Compared
        } else {
            DriftStatus::Incomparable
        },
        psi,
        over_threshold: psi.is_some_and(|p| p >= threshold),
        null_rate_from: Some(a.null_rate),
        null_rate_to: Some(b.null_rate),
        null_rate_change: Some(b.null_rate - a.null_rate),
        mean_from,
        mean_to,
        mean_change: mean_from.zip(mean_to).map(|(x, y)| y - x),
    }
}

/// PSI over `a`'s histogram bins.
fn numeric_psi(a: &ColumnStats, b: &ColumnStats, sb: &ColumnState) -> Option<f64> {
    let (na, nb) = (a.numeric.as_ref()?, b.numeric.as_ref()?);
    let total = |bins: &[super::HistogramBin]| bins.iter().map(|x| x.count).sum::<u64>().max(1);
    let (ta, tb) = (total(&na.histogram), total(&nb.histogram));
    let p: Vec<f64> = na
        .histogram
        .iter()
        .map(|x| x.count as f64 / ta as f64)
        .collect();
    let same_edges = na.histogram.len() == nb.histogram.len()
        && na
            .histogram
            .iter()
            .zip(&nb.histogram)
            .all(|(x, y)| x.lower == y.lower && x.upper == y.upper);
    if same_edges {
        let q: Vec<f64> = nb
            .histogram
            .iter()
            .map(|x| x.count as f64 / tb as f64)
            .collect();
        return Some(psi(&p, &q));
    }
    let sketch = sb.quantiles.as_ref()?;
    if sketch.count() == 0 {
        return None;
    }
    if na.histogram.len() == 1 {
        // `from` held one value: compare the share at that value against the rest.
        let at = sketch.fraction_at(na.min);
        return Some(psi(&[1.0, 0.0], &[at, 1.0 - at]));
    }
    // Cumulative shares of `to` at `from`'s inner edges; the outer bins take the tails.
    let inner: Vec<f64> = na.histogram[1..]
        .iter()
        .map(|bin| sketch.fraction_below(bin.lower))
        .collect();
    let mut q = Vec::with_capacity(p.len());
    let mut previous = 0.0;
    for f in inner.iter().chain(std::iter::once(&1.0)) {
        q.push((f - previous).max(0.0));
        previous = *f;
    }
    Some(psi(&p, &q))
}

/// How often `value` occurs in a string or boolean column, as best known: the stored counts
/// (up to 100 values), else the served top values, else 0.
fn count_of(stats: &ColumnStats, state: &ColumnState, value: &str) -> u64 {
    let stored = state
        .frequent
        .as_ref()
        .and_then(|f| f.values().iter().find(|(v, _)| v == value).map(|(_, c)| *c));
    let served = || {
        stats
            .top_values
            .as_ref()
            .and_then(|t| t.values.iter().find(|v| v.value == value).map(|v| v.count))
    };
    stored.or_else(served).unwrap_or(0)
}

/// PSI over the union of both sides' top values, plus "other".
fn categorical_psi(
    (a, sa): (&ColumnStats, &ColumnState),
    (b, sb): (&ColumnStats, &ColumnState),
) -> Option<f64> {
    let (ta, tb) = (a.top_values.as_ref()?, b.top_values.as_ref()?);
    let mut values: Vec<&str> = ta.values.iter().map(|v| v.value.as_str()).collect();
    for v in &tb.values {
        if !values.contains(&v.value.as_str()) {
            values.push(&v.value);
        }
    }
    let shares = |stats: &ColumnStats, state: &ColumnState| {
        let non_null = (stats.rows - stats.null_count).max(1) as f64;
        let mut shares: Vec<f64> = values
            .iter()
            .map(|v| count_of(stats, state, v) as f64 / non_null)
            .collect();
        let listed: f64 = shares.iter().sum();
        shares.push((1.0 - listed).max(0.0));
        shares
    };
    if a.rows == a.null_count || b.rows == b.null_count {
        return None;
    }
    Some(psi(&shares(a, sa), &shares(b, sb)))
}
