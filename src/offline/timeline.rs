//! One view's timeline: the feature rows some entity row could match, grouped by key, each
//! group ordered by `(event, created, row)`; and the probe of entity rows against it.
//!
//! Built in two passes over the feature rows, each split across threads:
//! 1. by row chunks: each row's group (or none) and per-thread counts per group, which
//!    prefix-sum to every group's start;
//! 2. by group ranges balanced on row counts: each thread scans all rows' groups, places its
//!    groups' rows (in row order, so the placement is a stable counting sort) into its own
//!    part, then sorts each of its groups. Threads write only their own part, no locking.
//!
//! A placed row is a packed 12-byte [`Version`]: its event time beside its row index, so the
//! probe's binary search and the winner's row share cache lines. Created timestamps are not
//! copied: they are read from the view's column only to break ties of equal event times and,
//! with the cutoff option, in the probe's backward scan.

use super::keys::{Groups, KeyColumn, NO_GROUP};
use super::{Instants, in_parallel, threads_for};

/// An index-array entry for an entity row without a match.
pub(crate) const NO_ROW: u32 = u32::MAX;

/// One feature row in its group.
#[derive(Clone, Copy, Default)]
#[repr(C, packed)]
struct Version {
    event: i64,
    row: u32,
}

/// The groups `first_group..end_group`, placed by one thread.
struct Part {
    end_group: u32,
    /// The position in the view's whole timeline of `versions[0]`.
    base: u32,
    versions: Vec<Version>,
}

/// Feature rows grouped by key and ordered within each group.
pub(super) struct Timeline {
    /// Group `g` occupies global positions `starts[g]..starts[g + 1]`.
    starts: Vec<u32>,
    parts: Vec<Part>,
}

/// The view columns a timeline is built from.
pub(super) struct ViewTimes<'a> {
    /// Event times.
    pub events: &'a Instants,
    /// Created times, when the view has them.
    pub created: Option<&'a Instants>,
}

impl ViewTimes<'_> {
    /// The created time of `row`, with null (or no created column) lowest.
    #[inline]
    fn created(&self, row: u32) -> i64 {
        match self.created {
            Some(c) if c.is_valid(row as usize) => c.values[row as usize],
            _ => i64::MIN,
        }
    }
}

impl Timeline {
    /// Groups the rows of the view whose key some entity row has (`groups`, from `keys`) and
    /// whose event time lies in `oldest..=latest`, the union of all entity rows' windows.
    pub fn build(
        groups: &Groups<'_>,
        keys: &[KeyColumn],
        times: &ViewTimes<'_>,
        oldest: i64,
        latest: i64,
    ) -> Timeline {
        let events = times.events;
        let rows = events.values.len();
        let group_count = groups.count;

        // Pass 1: groups and counts, by row chunks.
        let mut group_of = vec![0u32; rows];
        let chunk = rows.div_ceil(threads_for(rows)).max(1);
        let chunks: Vec<(usize, &mut [u32])> = group_of
            .chunks_mut(chunk)
            .enumerate()
            .map(|(i, out)| (i * chunk, out))
            .collect();
        let counts = in_parallel(chunks, |(first_row, out)| {
            let mut counts = vec![0u32; group_count];
            groups.of_rows(keys, first_row, out, &mut counts, |row| {
                let e = events.values[row];
                e <= latest && e >= oldest && events.is_valid(row)
            });
            counts
        });
        let mut starts = Vec::with_capacity(group_count + 1);
        let mut total = 0u32;
        starts.push(0);
        for g in 0..group_count {
            total += counts.iter().map(|c| c[g]).sum::<u32>();
            starts.push(total);
        }
        drop(counts);

        // Pass 2: placement and per-group sort, by group ranges of about equal row counts.
        let threads = threads_for(total as usize);
        let mut bounds: Vec<u32> = (1..threads)
            .map(|t| {
                let target = (total as u64 * t as u64 / threads as u64) as u32;
                starts.partition_point(|&s| s < target).min(group_count) as u32
            })
            .collect();
        bounds.insert(0, 0);
        bounds.push(group_count as u32);
        bounds.dedup();
        let ranges: Vec<(u32, u32)> = bounds.windows(2).map(|w| (w[0], w[1])).collect();
        let group_of = &group_of;
        let starts_ref = &starts;
        let parts = in_parallel(ranges, |(first, end)| {
            let base = starts_ref[first as usize];
            let len = (starts_ref[end as usize] - base) as usize;
            let mut next: Vec<u32> = starts_ref[first as usize..end as usize]
                .iter()
                .map(|s| s - base)
                .collect();
            let mut versions = vec![Version::default(); len];
            let width = end - first;
            for (row, &g) in group_of.iter().enumerate() {
                // NO_GROUP and groups below `first` wrap to at least `width`.
                let local = g.wrapping_sub(first);
                if local >= width {
                    continue;
                }
                let slot = &mut next[local as usize];
                versions[*slot as usize] = Version {
                    event: events.values[row],
                    row: row as u32,
                };
                *slot += 1;
            }
            let local_starts = &starts_ref[first as usize..=end as usize];
            sort_groups(&mut versions, local_starts, base, times);
            Part {
                end_group: end,
                base,
                versions,
            }
        });
        Timeline { starts, parts }
    }

    /// The view row each entity row joins with, [`NO_ROW`] for none: for an entity row of
    /// group `g` at time `t`, the last version of `g` with `t - ttl <= event <= t` (and, with
    /// `cutoff`, created not after `t`).
    pub fn probe(
        &self,
        entity_groups: &[u32],
        entity_times: &Instants,
        times: &ViewTimes<'_>,
        ttl: i64,
        cutoff: bool,
    ) -> Vec<u32> {
        let cutoff = cutoff && times.created.is_some();
        let rows = entity_groups.len();
        let mut indices = vec![0u32; rows];
        let chunk = rows.div_ceil(threads_for(rows)).max(1);
        let chunks: Vec<(usize, &mut [u32])> = indices
            .chunks_mut(chunk)
            .enumerate()
            .map(|(i, out)| (i * chunk, out))
            .collect();
        let cutoff = cutoff.then_some(times);
        in_parallel(chunks, |(first, out)| {
            for (block, out) in out.chunks_mut(PROBE_BLOCK).enumerate() {
                self.probe_block(
                    first + block * PROBE_BLOCK,
                    out,
                    entity_groups,
                    entity_times,
                    ttl,
                    cutoff,
                );
            }
        });
        indices
    }

    /// Probes the entity rows `first..first + out.len()` in three sweeps, so that the cache
    /// misses of different rows overlap instead of queueing behind each other: the groups'
    /// bounds, then each group's middle version, then the rest of each search.
    #[inline]
    fn probe_block(
        &self,
        first: usize,
        out: &mut [u32],
        entity_groups: &[u32],
        entity_times: &Instants,
        ttl: i64,
        cutoff: Option<&ViewTimes<'_>>,
    ) {
        let mut spans = [(0usize, 0usize, 0usize); PROBE_BLOCK];
        for (i, span) in spans.iter_mut().enumerate().take(out.len()) {
            let row = first + i;
            let g = entity_groups[row];
            *span = if g == NO_GROUP || !entity_times.is_valid(row) {
                (0, 0, 0)
            } else {
                let part = match self.parts.as_slice() {
                    [_] => 0,
                    parts => parts.partition_point(|p| p.end_group <= g),
                };
                let base = self.parts[part].base;
                let lo = (self.starts[g as usize] - base) as usize;
                let hi = (self.starts[g as usize + 1] - base) as usize;
                (part, lo, hi)
            };
        }
        let mut middle = [0i64; PROBE_BLOCK];
        for (m, &(part, lo, hi)) in middle.iter_mut().zip(&spans).take(out.len()) {
            if hi > lo {
                *m = self.parts[part].versions[lo + (hi - lo) / 2].event;
            }
        }
        for (i, index) in out.iter_mut().enumerate() {
            let (part, lo, hi) = spans[i];
            *index = if hi > lo {
                let t = entity_times.values[first + i];
                let versions = &self.parts[part].versions[lo..hi];
                find(versions, middle[i], t, t.saturating_sub(ttl), cutoff)
            } else {
                NO_ROW
            };
        }
    }
}

/// Entity rows probed together; enough to keep many misses in flight, few enough that the
/// block's state stays in registers and L1.
const PROBE_BLOCK: usize = 16;

/// The winning row among one group's `versions` for an entity row at `t`, or [`NO_ROW`]:
/// the last version with `oldest <= event <= t` (with `cutoff`, also created `<= t`).
/// `middle` is the event of the middle version, already loaded.
#[inline]
fn find(
    versions: &[Version],
    middle: i64,
    t: i64,
    oldest: i64,
    cutoff: Option<&ViewTimes<'_>>,
) -> u32 {
    let mid = versions.len() / 2;
    let mut at = if middle <= t {
        mid + 1 + versions[mid + 1..].partition_point(|v| v.event <= t)
    } else {
        versions[..mid].partition_point(|v| v.event <= t)
    };
    while at > 0 {
        at -= 1;
        let version = versions[at];
        if version.event < oldest {
            return NO_ROW;
        }
        match cutoff {
            Some(times) if times.created(version.row) > t => continue,
            _ => return version.row,
        }
    }
    NO_ROW
}

/// Orders each group of `versions` (group `i` at `starts[i] - base..starts[i + 1] - base`) by
/// `(event, created, row)`. Groups arrive in row order, so a group whose events ascend (with
/// created ascending among equal events) is already in order, the common case for
/// append-only history; only the others are sorted.
fn sort_groups(versions: &mut [Version], starts: &[u32], base: u32, times: &ViewTimes<'_>) {
    let mut scratch: Vec<(i64, i64, u32)> = Vec::new();
    for bounds in starts.windows(2) {
        let group = &mut versions[(bounds[0] - base) as usize..(bounds[1] - base) as usize];
        if group.len() < 2 {
            continue;
        }
        let in_order = group.windows(2).all(|pair| {
            let (a, b) = (pair[0], pair[1]);
            a.event < b.event
                || (a.event == b.event && times.created(a.row) <= times.created(b.row))
        });
        if in_order {
            continue;
        }
        scratch.clear();
        scratch.extend(group.iter().map(|v| (v.event, times.created(v.row), v.row)));
        scratch.sort_unstable();
        for (slot, &(event, _, row)) in group.iter_mut().zip(&scratch) {
            *slot = Version { event, row };
        }
    }
}
