//! The change bus: with `online.backend = "redis"`, every replica tells the others what it
//! changed, so they serve it at once instead of at their next poll of the bucket.
//!
//! # Messages
//! One Redis pub/sub channel, `<key_prefix>events` (`featurestore:events` by default). Each
//! message is a small JSON object:
//!
//! ```json
//! {"origin": "5f0c1a9e3b7d2c41", "kind": "table", "group": "user", "name": "user_stats"}
//! ```
//!
//! - `origin`: the sending replica's id, random at each start; a replica ignores its own
//!   messages. Messages without one (the online tier's own notices) are applied by every
//!   replica, the sender included, which is harmless: they only make it re-read state.
//! - `kind`: `table` (a save, replace, offline push/append or fold committed the table),
//!   `table_deleted`, `registry` (an apply or a delete of a registered object), `cache` (a cache
//!   clear: of one table when `name` is set, else of everything) or `online_views` (the online
//!   tier's set of views with rows in Redis changed).
//! - `group`, `name`: the table, for `table`, `table_deleted` and a one-table `cache`.
//!
//! A message is a hint, never data: the receiver re-reads the table's newest commit entry
//! (or the registry's newest entry, or the online tier's view marks) from the shared stores.
//! So messages may be lost, duplicated or reordered without harm beyond delay: polling
//! (`storage.poll_interval_ms`) stays on as the safety net, and after every (re)connection
//! the subscriber re-checks everything it may have missed (a full poll round, a registry
//! reload and the online views). Cache clears missed while disconnected are not replayed:
//! cached entries are keyed by table version, so they are never stale, only kept.
//!
//! # Hazards
//! Publishing never blocks or fails a request: the message is handed to the Redis runtime
//! and a failure is logged. Applying a message does blocking I/O (object store reads), so it
//! runs on a thread of its own ([`listen`]), never on the Redis runtime's one worker.

pub mod listen;

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

pub use listen::{BusGuard, Job};

/// What one replica changed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Change {
    /// A table was committed (saved, replaced, appended to, folded).
    Table {
        /// Its group, when the writer knew it.
        group: Option<String>,
        /// The table.
        name: String,
    },
    /// A table was deleted.
    TableDeleted {
        /// Its group.
        group: Option<String>,
        /// The table.
        name: String,
    },
    /// Registered definitions changed.
    Registry,
    /// Cached reads were dropped: of one table, or all when `name` is `None`.
    Cache {
        /// The table's group.
        group: Option<String>,
        /// The table; `None` for the whole cache.
        name: Option<String>,
    },
    /// The online tier's views with rows in Redis changed.
    OnlineViews,
}

/// The wire form of a [`Change`] (see the module doc).
#[derive(Debug, Serialize, Deserialize)]
struct Message {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    origin: Option<String>,
    kind: Kind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Kind {
    Table,
    TableDeleted,
    Registry,
    Cache,
    OnlineViews,
}

/// The bus's side of one replica: its id, what it sent and received, and whether its
/// subscription is up.
#[derive(Debug)]
pub struct ChangeBus {
    origin: String,
    sent: AtomicU64,
    received: AtomicU64,
    connection: Mutex<Connection>,
}

#[derive(Debug, Clone)]
struct Connection {
    connected: bool,
    reason: Option<String>,
    since: SystemTime,
}

/// The bus as `/health` and `/metrics` report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusStatus {
    /// This replica's id (the `origin` of its messages).
    pub replica_id: String,
    /// Whether the subscription is up: others' changes arrive at once.
    pub connected: bool,
    /// Why it is not, while it is not.
    pub reason: Option<String>,
    /// Since when it is in its current state.
    pub since: SystemTime,
    /// Messages this replica published.
    pub sent: u64,
    /// Messages from other replicas it applied.
    pub received: u64,
}

impl Default for ChangeBus {
    fn default() -> Self {
        Self::new()
    }
}

impl ChangeBus {
    /// A bus side with a fresh random replica id, not connected yet.
    pub fn new() -> Self {
        let mut bytes = [0u8; 8];
        // Without randomness, the clock still tells two replicas apart in practice.
        let origin = match getrandom::fill(&mut bytes) {
            Ok(()) => bytes.iter().map(|b| format!("{b:02x}")).collect(),
            Err(_) => format!(
                "{:x}-{:x}",
                std::process::id(),
                SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos())
            ),
        };
        Self {
            origin,
            sent: AtomicU64::new(0),
            received: AtomicU64::new(0),
            connection: Mutex::new(Connection {
                connected: false,
                reason: Some("not subscribed yet".into()),
                since: SystemTime::now(),
            }),
        }
    }

    /// This replica's id.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The JSON message announcing `change` from this replica.
    pub fn encode(&self, change: &Change) -> String {
        let (kind, group, name) = match change {
            Change::Table { group, name } => (Kind::Table, group.clone(), Some(name.clone())),
            Change::TableDeleted { group, name } => {
                (Kind::TableDeleted, group.clone(), Some(name.clone()))
            }
            Change::Registry => (Kind::Registry, None, None),
            Change::Cache { group, name } => (Kind::Cache, group.clone(), name.clone()),
            Change::OnlineViews => (Kind::OnlineViews, None, None),
        };
        let message = Message {
            origin: Some(self.origin.clone()),
            kind,
            group,
            name,
        };
        // A struct of strings always serializes.
        serde_json::to_string(&message).unwrap_or_default()
    }

    /// The change a message announces, unless this replica sent it or it cannot be read
    /// (logged: a newer replica's kind, or not ours at all).
    pub fn decode(&self, text: &str) -> Option<Change> {
        let message: Message = match serde_json::from_str(text) {
            Ok(message) => message,
            Err(e) => {
                tracing::debug!(message = text, error = %e, "ignored an unreadable change-bus message");
                return None;
            }
        };
        if message.origin.as_deref() == Some(self.origin.as_str()) {
            return None;
        }
        let table = |name: Option<String>| {
            let name = name.filter(|n| !n.is_empty());
            if name.is_none() {
                tracing::debug!(
                    message = text,
                    "ignored a change-bus message without a table name"
                );
            }
            name
        };
        Some(match message.kind {
            Kind::Table => Change::Table {
                group: message.group,
                name: table(message.name)?,
            },
            Kind::TableDeleted => Change::TableDeleted {
                group: message.group,
                name: table(message.name)?,
            },
            Kind::Registry => Change::Registry,
            Kind::Cache => Change::Cache {
                group: message.group,
                name: message.name,
            },
            Kind::OnlineViews => Change::OnlineViews,
        })
    }

    /// Counts a message published.
    pub fn sent_one(&self) {
        self.sent.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a message received from another replica.
    pub fn received_one(&self) {
        self.received.fetch_add(1, Ordering::Relaxed);
    }

    /// Records that the subscription is up (`None`) or down, and why.
    pub fn set_connected(&self, down: Option<String>) {
        let mut connection = self.connection.lock().unwrap_or_else(|p| p.into_inner());
        if connection.connected != down.is_none() {
            connection.since = SystemTime::now();
        }
        connection.connected = down.is_none();
        connection.reason = down;
    }

    /// The bus as `/health` and `/metrics` report it.
    pub fn status(&self) -> BusStatus {
        let connection = self
            .connection
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        BusStatus {
            replica_id: self.origin.clone(),
            connected: connection.connected,
            reason: connection.reason,
            since: connection.since,
            sent: self.sent.load(Ordering::Relaxed),
            received: self.received.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_round_trips_between_replicas_and_is_ignored_by_its_sender() {
        let (a, b) = (ChangeBus::new(), ChangeBus::new());
        assert_ne!(a.origin(), b.origin());
        for change in [
            Change::Table {
                group: Some("user".into()),
                name: "t".into(),
            },
            Change::TableDeleted {
                group: None,
                name: "t".into(),
            },
            Change::Registry,
            Change::Cache {
                group: None,
                name: None,
            },
            Change::Cache {
                group: Some("user".into()),
                name: Some("t".into()),
            },
            Change::OnlineViews,
        ] {
            let text = a.encode(&change);
            assert_eq!(b.decode(&text), Some(change), "{text}");
            assert_eq!(a.decode(&text), None, "{text}");
        }
    }

    #[test]
    fn the_wire_form_is_the_documented_json() -> Result<(), serde_json::Error> {
        let bus = ChangeBus::new();
        let text = bus.encode(&Change::Table {
            group: Some("user".into()),
            name: "stats".into(),
        });
        let value: serde_json::Value = serde_json::from_str(&text)?;
        assert_eq!(
            value,
            serde_json::json!({"origin": bus.origin(), "kind": "table", "group": "user", "name": "stats"})
        );
        let registry: serde_json::Value = serde_json::from_str(&bus.encode(&Change::Registry))?;
        assert_eq!(
            registry,
            serde_json::json!({"origin": bus.origin(), "kind": "registry"})
        );
        Ok(())
    }

    #[test]
    fn notices_without_origin_are_applied_and_garbage_is_ignored() {
        let bus = ChangeBus::new();
        assert_eq!(
            bus.decode(r#"{"kind":"online_views"}"#),
            Some(Change::OnlineViews)
        );
        assert_eq!(bus.decode("not json"), None);
        assert_eq!(bus.decode(r#"{"kind":"somethingnew"}"#), None);
        assert_eq!(bus.decode(r#"{"origin":"x","kind":"table"}"#), None);
    }
}
