//! The facade's side of the change bus (`crate::bus`): announcing this replica's writes and
//! applying the other replicas' ones the way a poll round would, one table at a time.

use std::sync::Arc;
use std::time::Duration;

use super::FeatureStore;
use crate::bus::{self, BusGuard, BusStatus, Change, Job};
use crate::model::TableName;

/// Wait before the one retry of a failed publish.
const PUBLISH_RETRY: Duration = Duration::from_millis(200);

impl FeatureStore {
    /// Tells the other replicas about `change`, without waiting: a publish that fails is
    /// logged (they see the change at their next poll), never the caller's failure. Nothing
    /// to do without Redis.
    pub(super) fn announce(&self, change: Change) {
        let (Some(redis), Some(bus)) = (&self.redis, &self.bus) else {
            return;
        };
        let message = bus.encode(&change);
        let (publisher, bus) = (Arc::clone(redis), Arc::clone(bus));
        redis.spawn(async move {
            // One retry: the first command on a connection Redis dropped (a restart) fails
            // while the connection is re-made behind it. A message sent twice is harmless.
            for attempt in 0..2 {
                match publisher.publish(&message).await {
                    Ok(()) => {
                        bus.sent_one();
                        return;
                    }
                    Err(e) if attempt == 0 => {
                        tracing::debug!(error = %e, "publishing a change failed; retrying once");
                        tokio::time::sleep(PUBLISH_RETRY).await;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, message, "could not publish a change on the bus; other replicas see it at their next poll")
                    }
                }
            }
        });
    }

    /// [`Self::announce`] of a table commit.
    pub(super) fn announce_table(&self, group: Option<&str>, name: &str) {
        self.announce(Change::Table {
            group: group.map(str::to_owned),
            name: name.to_owned(),
        });
    }

    /// Starts listening to the other replicas' changes (with `online.backend = "redis"`);
    /// `None` without Redis or when the listener cannot start (logged: polling still
    /// follows the others). Dropping the guard stops it.
    pub fn start_change_bus(&self) -> Option<BusGuard> {
        let (Some(redis), Some(bus)) = (&self.redis, &self.bus) else {
            return None;
        };
        let store = self.clone();
        match bus::listen::start(Arc::clone(redis), Arc::clone(bus), move |job| {
            store.apply_job(job)
        }) {
            Ok(guard) => Some(guard),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the change bus listener; other replicas' changes are seen at the next poll");
                None
            }
        }
    }

    /// The change bus, for `/health` and `/metrics`; `None` without Redis.
    pub fn change_bus_status(&self) -> Option<BusStatus> {
        self.bus.as_ref().map(|b| b.status())
    }

    /// Applies one job of the bus (blocking; on the bus's apply thread).
    fn apply_job(&self, job: &Job) {
        match job {
            Job::Apply(Change::Table { name, .. } | Change::TableDeleted { name, .. }) => {
                let Ok(name) = name.parse::<TableName>() else {
                    tracing::debug!(
                        table = name,
                        "ignored a change-bus message naming an invalid table"
                    );
                    return;
                };
                // The writer may have registered or followed the table's view: definitions
                // first, so the view sync below checks against what the writer left.
                self.reload_registry();
                let changed = self.storage.rescan_one(&name);
                for name in &changed {
                    self.cache.invalidate_table(name);
                }
                self.follow_views(&changed);
                if !changed.is_empty() {
                    tracing::debug!(tables = ?changed, "followed another replica's table change");
                }
            }
            Job::Apply(Change::Registry) => {
                if self.reload_registry() {
                    tracing::debug!("followed another replica's registry change");
                }
            }
            Job::Apply(Change::Cache { name, .. }) => match name {
                Some(name) => {
                    self.cache.invalidate_table(name);
                }
                None => {
                    self.cache.clear();
                }
            },
            Job::Apply(Change::OnlineViews) => self.refresh_online_views(),
            Job::CatchUp => {
                self.reload_registry();
                let changed = self.refresh_tree();
                if !changed.is_empty() {
                    tracing::info!(tables = ?changed, "tables changed while the change bus was away; reloaded");
                }
                self.refresh_online_views();
            }
        }
    }

    /// Re-reads which views have rows in Redis (blocking).
    fn refresh_online_views(&self) {
        let Some(redis) = &self.redis else {
            return;
        };
        let refresher = Arc::clone(redis);
        if let Err(e) = redis.wait(async move { refresher.refresh_views().await }) {
            tracing::warn!(error = %e, "could not re-read the online views from redis");
        }
    }
}
