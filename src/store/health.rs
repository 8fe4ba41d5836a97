//! `/health`'s facts: the deep checks (data root writability, unreadable and duplicated table
//! files, whether Redis answers) run off the request path every `health.check_interval_seconds`
//! and leave their last result here; a request reads it with what is known in memory at once
//! (table count, uptime, the object store's and Redis's last outcome), so answering costs no
//! file system, object store or Redis call.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use super::{DuplicateTable, FeatureStore, UnreadableTable, refresh_tree};

/// A check older than this many intervals is stale: the checker is stuck (a hung file system,
/// a saturated blocking pool) and its last result no longer describes the server.
pub const STALE_AFTER_INTERVALS: u32 = 3;

/// The least age at which a check is stale, whatever the interval: a round that waits on a
/// Redis timeout or a busy disk must not flip a short-interval server to `degraded`.
pub const STALE_AFTER_AT_LEAST: Duration = Duration::from_secs(5);

/// `[health]` configuration.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// Seconds between rounds of deep checks.
    pub check_interval_seconds: u64,
}

impl HealthConfig {
    /// Checks ranges once at start-up; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=86_400).contains(&self.check_interval_seconds) {
            return Err(format!(
                "health.check_interval_seconds must be 1 to 86400, not {}",
                self.check_interval_seconds
            ));
        }
        Ok(())
    }

    /// The interval as a duration.
    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.check_interval_seconds)
    }
}

/// The outcome of one round of deep checks.
#[derive(Debug, Clone)]
pub struct DeepCheck {
    /// When the round finished (wall clock, for `checked_at`).
    pub checked_at: SystemTime,
    /// When the round finished (monotonic, for its age).
    pub finished: Instant,
    /// How long the round took.
    pub took: Duration,
    /// Whether a file could be created in the data root (on the s3 kind: whether the object
    /// store answered its last call).
    pub data_root_writable: bool,
    /// Table files that could not be opened.
    pub unreadable_tables: Vec<UnreadableTable>,
    /// Table names found in several groups (one file served, the others ignored).
    pub duplicate_tables: Vec<DuplicateTable>,
}

/// The server's state as `/health` reports it: the last deep check and what memory says now.
#[derive(Debug, Clone)]
pub struct HealthReport {
    /// Time since the store was opened.
    pub uptime: Duration,
    /// Tables in the catalog.
    pub table_count: usize,
    /// Why the disk cache tier is off, if it is.
    pub disk_cache_disabled: Option<String>,
    /// The last round of deep checks; `None` until the first one finished.
    pub last_check: Option<Arc<DeepCheck>>,
    /// The configured interval between rounds.
    pub check_interval: Duration,
}

impl HealthReport {
    /// Age of the last check, `None` before the first.
    pub fn check_age(&self) -> Option<Duration> {
        self.last_check.as_ref().map(|c| c.finished.elapsed())
    }

    /// Why the deep checks cannot be trusted, if they cannot: none has finished yet, or the
    /// last one is older than [`STALE_AFTER_INTERVALS`] intervals (and
    /// [`STALE_AFTER_AT_LEAST`]). Either way `/health` says `degraded`: a checker that stopped
    /// must not leave a server looking healthy forever.
    pub fn checks_stale_reason(&self) -> Option<String> {
        let Some(age) = self.check_age() else {
            return Some("the background health checks have not completed yet".to_owned());
        };
        let limit = (self.check_interval * STALE_AFTER_INTERVALS).max(STALE_AFTER_AT_LEAST);
        (age > limit).then(|| {
            format!(
                "the background health checks last completed {:.1} s ago (every {:.1} s expected): the checker may be stuck on the file system",
                age.as_secs_f64(),
                self.check_interval.as_secs_f64()
            )
        })
    }

    /// Whether the data root is writable, by the last check (false before the first).
    pub fn data_root_writable(&self) -> bool {
        self.last_check
            .as_ref()
            .is_some_and(|c| c.data_root_writable)
    }

    /// Unreadable table files, by the last check.
    pub fn unreadable_tables(&self) -> &[UnreadableTable] {
        self.last_check
            .as_deref()
            .map_or(&[], |c| &c.unreadable_tables)
    }

    /// Duplicated table names, by the last check.
    pub fn duplicate_tables(&self) -> &[DuplicateTable] {
        self.last_check
            .as_deref()
            .map_or(&[], |c| &c.duplicate_tables)
    }
}

/// Where the rounds leave their result; shared by every clone of the store.
#[derive(Debug)]
pub(super) struct HealthChecks {
    last: RwLock<Option<Arc<DeepCheck>>>,
    interval: Duration,
    /// Set by tests to make rounds do nothing, as a checker stuck on a hung disk would.
    paused: AtomicBool,
}

impl HealthChecks {
    /// No check yet; rounds every `interval`.
    pub(super) fn new(interval: Duration) -> Self {
        Self {
            last: RwLock::new(None),
            interval,
            paused: AtomicBool::new(false),
        }
    }
}

impl FeatureStore {
    /// `/health`'s facts, from memory only: the last deep check and the catalog's count.
    pub fn health(&self) -> HealthReport {
        HealthReport {
            uptime: self.started.elapsed(),
            table_count: self.storage.table_count(),
            disk_cache_disabled: self.cache.disk_disabled_reason(),
            last_check: self
                .health
                .last
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            check_interval: self.health.interval,
        }
    }

    /// The interval between rounds of deep checks (`health.check_interval_seconds`).
    pub fn health_check_interval(&self) -> Duration {
        self.health.interval
    }

    /// One round of deep checks; its result replaces the last one. A rescan first (a stat
    /// per table) on the local kind, so a file damaged since the watcher last looked is
    /// reported; not on the s3 kind, whose poll already lists the bucket every
    /// `storage.poll_interval_ms`. Then Redis is asked whether it answers (bounded by its
    /// timeouts), which also records its outage for the answers that read it from memory.
    pub async fn run_health_checks(&self) {
        if self.health.paused.load(Ordering::Relaxed) {
            return;
        }
        let started = Instant::now();
        let checked = self
            .blocking(|s, c| {
                if s.poll_interval().is_none() {
                    refresh_tree(s, c);
                }
                Ok((s.is_writable(), s.unreadable(), s.duplicates()))
            })
            .await;
        let (data_root_writable, unreadable_tables, duplicate_tables) = match checked {
            Ok(facts) => facts,
            Err(e) => {
                // The last result stays and ages into `degraded` if this keeps failing.
                tracing::warn!(error = %e, "a round of health checks failed; it is retried at the next round");
                return;
            }
        };
        self.check_online_store().await;
        let check = DeepCheck {
            checked_at: SystemTime::now(),
            finished: Instant::now(),
            took: started.elapsed(),
            data_root_writable,
            unreadable_tables,
            duplicate_tables,
        };
        *self.health.last.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(check));
    }

    /// Stops (or resumes) the rounds' work, so a test can watch the last check go stale as
    /// it would behind a checker stuck on a hung file system.
    #[doc(hidden)]
    pub fn pause_health_checks_for_test(&self, paused: bool) {
        self.health.paused.store(paused, Ordering::Relaxed);
    }
}
