//! The most frequent values of a string or boolean column: exact counts while the distinct
//! values stay under a bound, a space-saving summary (Metwally et al.) above it.

use std::collections::HashMap;

use rustc_hash::FxBuildHasher;

use serde::{Deserialize, Serialize};

use super::column::rate;
use super::distinct::{DistinctCounter, DistinctState, string_key};
use super::figures::{TopValues, ValueCount};

/// Values reported in `top_values`.
pub(crate) const TOP: usize = 10;

/// Distinct values counted exactly while computing: above it the counts become a
/// [`SpaceSaving`] summary, so memory stays bounded whatever the column holds.
pub(crate) const EXACT_VALUES: usize = 100_000;

/// Counters the summary keeps (between this and twice this): each count it reports is under
/// by at most `rows / (SUMMARY + 1)` (the summary's `error`), and every value more frequent
/// than that is in it.
pub(crate) const SUMMARY: usize = 1_000;

/// Exact counts by value, borrowing the values from the batch (no allocation per row).
pub(crate) struct Counter<'a> {
    counts: HashMap<&'a str, u64, FxBuildHasher>,
    overflow: Option<(SpaceSaving, DistinctCounter)>,
}

/// What counting a column's values yields.
pub(crate) struct Finished {
    /// The counts.
    pub(crate) frequencies: Frequencies,
    /// Distinct values.
    pub(crate) distinct: u64,
    /// Whether the counts (and so `distinct`) are exact.
    pub(crate) exact: bool,
    /// For distinct counts after a merge.
    pub(crate) distinct_state: DistinctState,
}

impl<'a> Counter<'a> {
    /// An empty counter.
    pub(crate) fn new() -> Self {
        Counter {
            counts: HashMap::with_hasher(FxBuildHasher),
            overflow: None,
        }
    }

    /// Counts one occurrence of `value`.
    pub(crate) fn add(&mut self, value: &'a str) {
        if let Some((summary, distinct)) = &mut self.overflow {
            summary.add(value, 1);
            distinct.add(string_key(value));
            return;
        }
        if let Some(c) = self.counts.get_mut(value) {
            *c += 1;
        } else if self.counts.len() < EXACT_VALUES {
            self.counts.insert(value, 1);
        } else {
            let mut distinct = DistinctCounter::new();
            self.counts.keys().for_each(|v| distinct.add(string_key(v)));
            distinct.add(string_key(value));
            let mut summary = SpaceSaving::from_counts(
                self.counts
                    .drain()
                    .map(|(v, c)| (v.to_owned(), c))
                    .collect(),
            );
            summary.add(value, 1);
            self.overflow = Some((summary, distinct));
        }
    }

    /// The counts: exact, or the summary they overflowed into.
    pub(crate) fn finish(self) -> Finished {
        match self.overflow {
            Some((summary, distinct)) => {
                let (count, _, distinct_state) = distinct.finish();
                Finished {
                    frequencies: Frequencies::Summary(summary),
                    distinct: count,
                    exact: false,
                    distinct_state,
                }
            }
            None => Finished {
                distinct: self.counts.len() as u64,
                exact: true,
                distinct_state: DistinctState::from_keys(
                    self.counts
                        .keys()
                        .map(|v| string_key(v))
                        .collect::<Vec<_>>()
                        .into_iter(),
                ),
                frequencies: Frequencies::Exact(
                    self.counts
                        .into_iter()
                        .map(|(v, c)| (v.to_owned(), c))
                        .collect(),
                ),
            },
        }
    }
}

/// How often each value occurs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Frequencies {
    /// Every distinct value with its exact count.
    Exact(Vec<(String, u64)>),
    /// The heavy hitters, counts under by at most `error`.
    Summary(SpaceSaving),
}

impl Frequencies {
    /// The top values among `non_null` values: most frequent first, ties by value.
    pub(crate) fn top(&self, non_null: u64) -> TopValues {
        match self {
            Frequencies::Exact(c) => top(c.iter().map(|(v, c)| (v.as_str(), *c)), non_null),
            Frequencies::Summary(s) => {
                top(s.counters.iter().map(|(v, c)| (v.as_str(), *c)), non_null)
            }
        }
    }

    /// The bounded form kept in the stored state.
    pub(crate) fn stored(self) -> FrequentState {
        match self {
            Frequencies::Exact(counts) => FrequentState::complete(counts),
            Frequencies::Summary(s) => {
                FrequentState::trimmed(s.counters.into_iter().collect(), s.error)
            }
        }
    }
}

/// The top values of `counts` among `non_null` values: most frequent first, ties by value.
fn top<'a>(counts: impl Iterator<Item = (&'a str, u64)>, non_null: u64) -> TopValues {
    let mut counts: Vec<(&str, u64)> = counts.collect();
    counts.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    counts.truncate(TOP);
    let listed: u64 = counts.iter().map(|(_, c)| c).sum();
    let other_count = non_null.saturating_sub(listed);
    TopValues {
        values: counts
            .into_iter()
            .map(|(v, c)| ValueCount {
                value: v.to_owned(),
                count: c,
                share: rate(c, non_null),
            })
            .collect(),
        other_count,
        other_share: rate(other_count, non_null),
    }
}

/// Values kept in the stored state of a column: with more distinct values, the state keeps
/// the most frequent and an error bound (a Misra-Gries summary of its own).
pub(crate) const STORED_VALUES: usize = 100;

/// The stored, mergeable value counts of a string or boolean column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct FrequentState {
    /// Values with their counts (lower bounds when not `complete`), most frequent first.
    values: Vec<(String, u64)>,
    /// Every distinct value is listed with its exact count.
    complete: bool,
    /// The largest undercount of any value (0 when complete).
    error: u64,
}

impl FrequentState {
    /// Exact counts of every distinct value (trimmed, and then not complete, above the bound).
    pub(crate) fn complete(counts: Vec<(String, u64)>) -> Self {
        Self::trimmed(counts, 0)
    }

    fn trimmed(mut counts: Vec<(String, u64)>, error: u64) -> Self {
        counts.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let complete = error == 0 && counts.len() <= STORED_VALUES;
        let cut = counts.get(STORED_VALUES).map(|(_, c)| *c).unwrap_or(0);
        counts.truncate(STORED_VALUES);
        FrequentState {
            values: counts,
            complete,
            error: error + cut,
        }
    }

    /// Values with their counts.
    pub(crate) fn values(&self) -> &[(String, u64)] {
        &self.values
    }

    /// Whether every count is exact.
    pub(crate) fn is_complete(&self) -> bool {
        self.complete
    }

    /// The top values among `non_null` values.
    pub(crate) fn top(&self, non_null: u64) -> TopValues {
        top(self.values.iter().map(|(v, c)| (v.as_str(), *c)), non_null)
    }

    /// Both sides' counts added; complete only when both sides were and the union fits.
    pub(crate) fn merge(&self, other: &FrequentState) -> FrequentState {
        let mut counts: HashMap<&str, u64, FxBuildHasher> = HashMap::with_hasher(FxBuildHasher);
        for (v, c) in self.values.iter().chain(&other.values) {
            *counts.entry(v.as_str()).or_insert(0) += c;
        }
        let counts = counts.into_iter().map(|(v, c)| (v.to_owned(), c)).collect();
        let mut merged = Self::trimmed(counts, self.error + other.error);
        merged.complete &= self.complete && other.complete;
        merged
    }
}

/// A Misra-Gries summary (mergeable, Agarwal et al. 2012): at most `2 × SUMMARY` counters;
/// when full, the `SUMMARY`-th largest count is subtracted from every counter and the
/// non-positive ones dropped (amortised O(1) per value). Each count is under its true count by
/// at most `error` (the sum of the subtractions, ≤ rows / (SUMMARY + 1)), and every value
/// occurring more than `error` times is kept.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SpaceSaving {
    /// Value and lower-bound count.
    pub(crate) counters: HashMap<String, u64, FxBuildHasher>,
    /// The largest undercount of any value.
    pub(crate) error: u64,
}

impl SpaceSaving {
    /// A summary starting from exact counts.
    pub(crate) fn from_counts(counts: Vec<(String, u64)>) -> Self {
        let mut summary = SpaceSaving {
            counters: counts.into_iter().collect(),
            error: 0,
        };
        summary.purge();
        summary
    }

    /// Counts `n` more occurrences of `value`.
    pub(crate) fn add(&mut self, value: &str, n: u64) {
        if let Some(c) = self.counters.get_mut(value) {
            *c += n;
            return;
        }
        self.counters.insert(value.to_owned(), n);
        self.purge();
    }

    fn purge(&mut self) {
        if self.counters.len() <= 2 * SUMMARY {
            return;
        }
        let mut counts: Vec<u64> = self.counters.values().copied().collect();
        let (_, &mut cut, _) = counts.select_nth_unstable_by(SUMMARY, |a, b| b.cmp(a));
        self.counters.retain(|_, c| {
            *c = c.saturating_sub(cut);
            *c > 0
        });
        self.error += cut;
    }
}
