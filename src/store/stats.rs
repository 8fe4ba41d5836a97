//! Statistics and drift through the facade: a version's statistics as `GET .../stats`
//! answers them, the drift between two versions, and the background pass that gives
//! statistics to the versions written without them.
//!
//! `GET .../stats` is meant to cost a lookup: the answer of each (table, version) is
//! serialized once and kept ([`StatsAnswers`]), cut where the timestamp columns' ages go, so
//! a repeated read of the current version joins the pieces with the ages of now, on the
//! request's thread, without the blocking pool. Statistics of a version never change (a fold
//! keeps the rows), so nothing is invalidated: a new version is a new key.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use utoipa::ToSchema;

use super::versions::{compared_versions, resolve};
use super::{FeatureStore, Result, StoreError};
use crate::model::{GroupName, TableName};
use crate::poll::PollGuard;
use crate::stats::{ColumnDrift, ColumnStats};
use crate::storage::{Storage, VersionSelector};

/// Rendered answers kept (each a few KB).
const CACHED_ANSWERS: usize = 512;

/// How often the background pass looks for current versions without statistics.
pub const STATS_BACKFILL_INTERVAL: Duration = Duration::from_secs(1);

/// `GET /features/{group}/{name}/stats`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "group": "user", "table": "user_profile", "version": 3, "rows": 2,
    "columns": [
        {"name": "age", "dtype": "int64", "kind": "numeric", "rows": 2, "null_count": 0,
         "null_rate": 0.0, "distinct": 2, "approximate": [],
         "numeric": {"min": 31.0, "max": 45.0, "mean": 38.0, "std": 9.899,
             "percentiles": {"p1": 31.14, "p5": 31.7, "p25": 34.5, "p50": 38.0, "p75": 41.5,
                 "p95": 44.3, "p99": 44.86},
             "histogram": [{"lower": 31.0, "upper": 31.7, "count": 1},
                 {"lower": 44.3, "upper": 45.0, "count": 1}]}},
        {"name": "country", "dtype": "string", "kind": "string", "rows": 2, "null_count": 0,
         "null_rate": 0.0, "distinct": 2, "approximate": [],
         "top_values": {"values": [{"value": "DE", "count": 1, "share": 0.5},
             {"value": "FR", "count": 1, "share": 0.5}], "other_count": 0, "other_share": 0.0}},
        {"name": "event_timestamp", "dtype": "timestamp[us, UTC]", "kind": "timestamp",
         "rows": 2, "null_count": 0, "null_rate": 0.0, "distinct": 2, "approximate": [],
         "timestamps": {"min": "2026-12-01T00:00:00Z", "max": "2026-12-02T00:00:00Z",
             "newest_age_seconds": 3600.0}}
    ]
}))]
pub struct TableStats {
    /// Group.
    pub group: String,
    /// Table.
    pub table: String,
    /// The version described.
    pub version: u64,
    /// Rows in the version.
    pub rows: u64,
    /// One entry per column, in table order. Timestamp columns' `newest_age_seconds` is
    /// measured when the answer is sent.
    pub columns: Vec<ColumnStats>,
}

/// `GET /features/{group}/{name}/drift`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "group": "user", "table": "user_profile", "from_version": 2, "to_version": 3,
    "threshold": 0.2,
    "columns": [
        {"name": "age", "status": "compared", "psi": 0.41, "over_threshold": true,
         "null_rate_from": 0.0, "null_rate_to": 0.1, "null_rate_change": 0.1,
         "mean_from": 38.0, "mean_to": 52.5, "mean_change": 14.5},
        {"name": "segment", "status": "added", "psi": null, "over_threshold": false,
         "null_rate_from": null, "null_rate_to": 0.0, "null_rate_change": null,
         "mean_from": null, "mean_to": null, "mean_change": null}
    ],
    "over_threshold": ["age"]
}))]
pub struct DriftReport {
    /// Group.
    pub group: String,
    /// Table.
    pub table: String,
    /// The older version compared.
    pub from_version: u64,
    /// The newer version compared.
    pub to_version: u64,
    /// The PSI at or over which a column is flagged (`stats.psi_threshold`).
    pub threshold: f64,
    /// How each column moved, in `to`'s column order, then the columns `to` no longer has.
    pub columns: Vec<ColumnDrift>,
    /// The columns whose PSI is at or over `threshold`.
    pub over_threshold: Vec<String>,
}

/// A value no age can have, so its text marks where the ages go in a rendered answer.
const GAP: f64 = -7.291_828_364_719_283e307;

/// A version's answer, serialized once: `pieces` joined with the age of each timestamp
/// column's newest value (`newest_ms`, one between each two pieces).
#[derive(Debug)]
struct Rendered {
    pieces: Vec<String>,
    newest_ms: Vec<i64>,
}

impl Rendered {
    /// Serializes `document`, leaving a gap where each timestamp column's age goes.
    fn of(mut document: TableStats) -> Result<Self> {
        let mut newest_ms = Vec::new();
        for column in &mut document.columns {
            if let Some(times) = &mut column.timestamps
                && let Ok(max) = chrono::DateTime::parse_from_rfc3339(&times.max)
            {
                times.newest_age_seconds = Some(GAP);
                newest_ms.push(max.timestamp_millis());
            }
        }
        let text = serde_json::to_string(&document).map_err(|e| StoreError::Task(e.to_string()))?;
        let gap = serde_json::to_string(&GAP).map_err(|e| StoreError::Task(e.to_string()))?;
        let pieces: Vec<String> = text.split(gap.as_str()).map(str::to_owned).collect();
        if pieces.len() != newest_ms.len() + 1 {
            // A figure with the very text of the gap: serve it without ages rather than wrong.
            for column in &mut document.columns {
                if let Some(times) = &mut column.timestamps {
                    times.newest_age_seconds = None;
                }
            }
            let text =
                serde_json::to_string(&document).map_err(|e| StoreError::Task(e.to_string()))?;
            return Ok(Self {
                pieces: vec![text],
                newest_ms: Vec::new(),
            });
        }
        Ok(Self { pieces, newest_ms })
    }

    /// The answer at `now_ms`.
    fn at(&self, now_ms: i64) -> String {
        let mut out =
            String::with_capacity(self.pieces.iter().map(String::len).sum::<usize>() + 24);
        for (i, piece) in self.pieces.iter().enumerate() {
            out.push_str(piece);
            if let Some(newest) = self.newest_ms.get(i) {
                let age = (now_ms - newest) as f64 / 1000.0;
                out.push_str(ryu::Buffer::new().format(age));
            }
        }
        out
    }
}

/// The rendered answers, the `/metrics` figures of each table's current version, and the
/// versions the background pass has seen to.
#[derive(Debug)]
pub(super) struct StatsAnswers {
    rendered: Mutex<lru::LruCache<(TableName, u64), Arc<Rendered>>>,
    gauges: Mutex<HashMap<TableName, (u64, Arc<TableStatsGauges>)>>,
}

impl Default for StatsAnswers {
    fn default() -> Self {
        Self {
            rendered: Mutex::new(lru::LruCache::new(
                std::num::NonZeroUsize::new(CACHED_ANSWERS).unwrap_or(std::num::NonZeroUsize::MIN),
            )),
            gauges: Mutex::new(HashMap::new()),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Each update is one insert or lookup: a poisoned map is still consistent.
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// The `/metrics` figures of one table's current version, from stored statistics only.
#[derive(Debug, Clone)]
pub struct TableStatsGauges {
    /// Group.
    pub group: String,
    /// Table.
    pub table: String,
    /// (column, null rate) of the current version.
    pub null_rates: Vec<(String, f64)>,
    /// (column, PSI) of the current version against the previous one, for the columns
    /// compared; empty when there is no previous version or it has no statistics.
    pub drift_psi: Vec<(String, f64)>,
}

impl FeatureStore {
    fn stats_on(&self) -> Result<()> {
        if self.storage.stats_enabled() {
            Ok(())
        } else {
            Err(StoreError::StatsDisabled)
        }
    }

    /// The statistics of `group/name` at the version `at` selects, as the JSON text of a
    /// [`TableStats`], with timestamp ages of now. A version without stored statistics gets
    /// them computed (once) and stored.
    pub async fn table_stats(
        &self,
        group: GroupName,
        name: TableName,
        at: VersionSelector,
    ) -> Result<String> {
        self.stats_on()?;
        let now_ms = self.clock.wall_micros() / 1000;
        if at == VersionSelector::Current
            && let Some(current) = self.storage.peek(&name).filter(|t| t.group == group)
            && let Some(rendered) = lock(&self.stats.rendered).get(&(name.clone(), current.version))
        {
            return Ok(rendered.at(now_ms));
        }
        let answers = Arc::clone(&self.stats);
        let rendered = self
            .blocking(move |s, _| {
                let table = resolve(s, &group, &name, at)?;
                let key = (name.clone(), table.version);
                if let Some(rendered) = lock(&answers.rendered).get(&key) {
                    return Ok(Arc::clone(rendered));
                }
                let stats = s.stats_of(&table)?;
                let rendered = Arc::new(Rendered::of(TableStats {
                    group: group.to_string(),
                    table: name.to_string(),
                    version: table.version,
                    rows: stats.rows(),
                    columns: stats.columns().to_vec(),
                })?);
                lock(&answers.rendered).put(key, Arc::clone(&rendered));
                Ok(rendered)
            })
            .await?;
        Ok(rendered.at(now_ms))
    }

    /// How `group/name` moved from version `from` to version `to`: by default the version
    /// before the current one and the current one.
    pub async fn drift(
        &self,
        group: GroupName,
        name: TableName,
        from: Option<u64>,
        to: Option<u64>,
    ) -> Result<DriftReport> {
        self.stats_on()?;
        self.blocking(move |s, _| {
            let (from, to) = match compared_versions(s, &group, &name, from, to)? {
                (Some(from), to) => (from, to),
                (None, to) => {
                    return Err(StoreError::NoPreviousVersion {
                        table: name.to_string(),
                        version: to,
                    });
                }
            };
            let older = resolve(s, &group, &name, VersionSelector::Number(from))?;
            let newer = resolve(s, &group, &name, VersionSelector::Number(to))?;
            let (older, newer) = (s.stats_of(&older)?, s.stats_of(&newer)?);
            let threshold = s.stats_config().psi_threshold;
            let columns = crate::stats::drift(&older, &newer, threshold);
            let over_threshold = columns
                .iter()
                .filter(|c| c.over_threshold)
                .map(|c| c.name.clone())
                .collect();
            Ok(DriftReport {
                group: group.to_string(),
                table: name.to_string(),
                from_version: from,
                to_version: to,
                threshold,
                columns,
                over_threshold,
            })
        })
        .await
    }

    /// The null rates and drift of every table's current version, for `/metrics`: from
    /// stored statistics only (a scrape never decodes a table), and worked out once per
    /// version. A table whose current version has no statistics yet has no entry.
    pub async fn stats_gauges(&self) -> Result<Vec<Arc<TableStatsGauges>>> {
        if !self.storage.stats_enabled() {
            return Ok(Vec::new());
        }
        let answers = Arc::clone(&self.stats);
        self.blocking(move |s, _| {
            let tables = s.list();
            let mut out = Vec::with_capacity(tables.len());
            let mut gauges = lock(&answers.gauges);
            gauges.retain(|name, _| tables.iter().any(|t| &t.name == name));
            for table in tables {
                if let Some((version, known)) = gauges.get(&table.name)
                    && *version == table.version
                {
                    out.push(Arc::clone(known));
                    continue;
                }
                let Some((figures, complete)) = table_gauges(s, &table) else {
                    continue;
                };
                let figures = Arc::new(figures);
                if complete {
                    gauges.insert(table.name.clone(), (table.version, Arc::clone(&figures)));
                }
                out.push(figures);
            }
            Ok(out)
        })
        .await
    }

    /// Starts the background pass that computes the statistics of current versions written
    /// without them (other tools' files, versions older than statistics), every
    /// [`STATS_BACKFILL_INTERVAL`], so that a first `GET .../stats` rarely waits for them.
    /// `None` when statistics are off or the thread cannot start. Dropping the guard stops it.
    pub fn start_stats_backfill(&self) -> Option<PollGuard> {
        if !self.storage.stats_enabled() {
            return None;
        }
        let storage = Arc::clone(&self.storage);
        let mut seen: HashSet<(TableName, u64)> = HashSet::new();
        let mut niced = false;
        let round = move || {
            if !niced {
                lower_priority();
                niced = true;
            }
            backfill_round(&storage, &mut seen)
        };
        match crate::poll::poll("stats-backfill", STATS_BACKFILL_INTERVAL, round) {
            Ok(guard) => Some(guard),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the statistics pass; versions without statistics get them when first asked for");
                None
            }
        }
    }
}

/// Makes the calling thread yield to request threads: the background pass decodes whole
/// tables, and on a small machine it must not slow the answers it exists to spare.
fn lower_priority() {
    // SAFETY: `setpriority` only reads its arguments; on Linux, `who = 0` with
    // `PRIO_PROCESS` names the calling thread. A failure leaves the priority as it was.
    let outcome = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 10) };
    if outcome != 0 {
        tracing::debug!("cannot lower the statistics pass's priority; it runs at the default");
    }
}

/// One round of the background pass: every current version not seen to yet gets its
/// statistics (read if stored, else computed and stored).
fn backfill_round(storage: &Storage, seen: &mut HashSet<(TableName, u64)>) {
    let tables = storage.list();
    let current: HashSet<(&TableName, u64)> = tables.iter().map(|t| (&t.name, t.version)).collect();
    seen.retain(|(name, version)| current.contains(&(name, *version)));
    for table in tables {
        let key = (table.name.clone(), table.version);
        if seen.contains(&key) {
            continue;
        }
        if let Err(e) = storage.stats_of(&table) {
            // Seen all the same: a table that cannot be read is retried at its next version
            // (or when asked for), not every second.
            tracing::warn!(table = %table.name, version = table.version, error = %e, "cannot compute the version's statistics");
        }
        seen.insert(key);
    }
}

/// The `/metrics` figures of `table` (its current version) and whether they are final
/// (false while the previous version's statistics are missing: asked again next scrape).
fn table_gauges(
    s: &Storage,
    table: &crate::storage::TableHandle,
) -> Option<(TableStatsGauges, bool)> {
    let current = s
        .stored_stats(&table.group, &table.name, table.version)
        .ok()
        .flatten()?;
    let mut figures = TableStatsGauges {
        group: table.group.to_string(),
        table: table.name.to_string(),
        null_rates: current
            .columns()
            .iter()
            .map(|c| (c.name.clone(), c.null_rate))
            .collect(),
        drift_psi: Vec::new(),
    };
    let previous = match compared_versions(s, &table.group, &table.name, None, Some(table.version))
    {
        Ok((Some(previous), _)) => previous,
        Ok((None, _)) => return Some((figures, true)),
        Err(_) => return Some((figures, false)),
    };
    let Ok(Some(older)) = s.stored_stats(&table.group, &table.name, previous) else {
        return Some((figures, false));
    };
    let threshold = s.stats_config().psi_threshold;
    figures.drift_psi = crate::stats::drift(&older, &current, threshold)
        .into_iter()
        .filter_map(|c| c.psi.map(|psi| (c.name, psi)))
        .collect();
    Some((figures, true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{ColumnKind, TimestampStats};

    fn column(name: &str, max: &str) -> ColumnStats {
        ColumnStats {
            name: name.into(),
            dtype: "timestamp[us, UTC]".into(),
            kind: ColumnKind::Timestamp,
            rows: 1,
            null_count: 0,
            null_rate: 0.0,
            distinct: 1,
            numeric: None,
            top_values: None,
            timestamps: Some(TimestampStats {
                min: max.into(),
                max: max.into(),
                newest_age_seconds: None,
            }),
            approximate: Vec::new(),
        }
    }

    fn document(columns: Vec<ColumnStats>) -> TableStats {
        TableStats {
            group: "user".into(),
            table: "t".into(),
            version: 1,
            rows: 1,
            columns,
        }
    }

    #[test]
    fn a_rendered_answer_gets_each_timestamp_columns_age_at_the_moment_it_is_sent()
    -> Result<(), Box<dyn std::error::Error>> {
        let rendered = Rendered::of(document(vec![
            column("a", "2026-12-01T00:00:00Z"),
            column("b", "2026-12-01T00:00:10Z"),
        ]))?;
        let at = chrono::DateTime::parse_from_rfc3339("2026-12-01T00:01:00.5Z")?;
        let answer: serde_json::Value = serde_json::from_str(&rendered.at(at.timestamp_millis()))?;
        assert_eq!(
            answer["columns"][0]["timestamps"]["newest_age_seconds"],
            60.5
        );
        assert_eq!(
            answer["columns"][1]["timestamps"]["newest_age_seconds"],
            50.5
        );
        assert_eq!(
            answer["columns"][1]["timestamps"]["max"],
            "2026-12-01T00:00:10Z"
        );
        Ok(())
    }

    #[test]
    fn a_column_named_like_the_gap_is_served_without_ages_rather_than_wrong()
    -> Result<(), Box<dyn std::error::Error>> {
        let gap = serde_json::to_string(&GAP)?;
        let rendered = Rendered::of(document(vec![column(&gap, "2026-12-01T00:00:00Z")]))?;
        let answer: serde_json::Value = serde_json::from_str(&rendered.at(0))?;
        assert_eq!(answer["columns"][0]["name"], gap.as_str());
        assert!(answer["columns"][0]["timestamps"]["newest_age_seconds"].is_null());
        Ok(())
    }
}
