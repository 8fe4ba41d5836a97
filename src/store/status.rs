//! Where the tables live and how the object store is doing, for `/health` and
//! `/performance`: read-only facts, so the API can report them without touching storage.

use super::FeatureStore;
use crate::storage::{StorageBackend, StorageConfig};

/// The backend as operators may see it: kind, bucket and prefix, never the endpoint or a
/// credential (an endpoint URL can carry user information, and `/health` is unauthenticated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendInfo {
    /// `local` or `s3`.
    pub kind: &'static str,
    /// The bucket, for the s3 kind.
    pub bucket: Option<String>,
    /// The key prefix inside the bucket (empty for its root), for the s3 kind.
    pub prefix: Option<String>,
}

impl BackendInfo {
    /// The facts of `config`, taken once at open (they do not change while running).
    pub(super) fn of(config: &StorageConfig) -> Self {
        match config.backend {
            StorageBackend::Local => Self {
                kind: "local",
                bucket: None,
                prefix: None,
            },
            StorageBackend::S3 => Self {
                kind: "s3",
                bucket: Some(config.s3.bucket.clone()),
                prefix: Some(config.s3.prefix.trim_matches('/').to_owned()),
            },
        }
    }
}

/// This process's traffic with the object store, and whether it is reachable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectStoreStatus {
    /// Bytes of object data fetched.
    pub bytes_read: u64,
    /// Calls made to the store.
    pub requests: u64,
    /// Calls that failed because the store was unreachable or answered 5xx.
    pub failures: u64,
    /// Why the store is considered down, while it is (cleared by the next successful call).
    pub outage: Option<String>,
}

/// The online tier as operators may see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnlineStatus {
    /// `local` or `redis`.
    pub backend: &'static str,
    /// The Redis server, without its password.
    pub url: Option<String>,
    /// Why Redis is considered unavailable, while it is: lookups answer from the local index
    /// and pushes online fail with 503 meanwhile.
    pub unavailable: Option<String>,
}

impl FeatureStore {
    /// The online tier and whether it answered lately (no I/O).
    pub fn online_status(&self) -> OnlineStatus {
        match &self.redis {
            None => OnlineStatus {
                backend: "local",
                url: None,
                unavailable: None,
            },
            Some(redis) => {
                let status = redis.status();
                OnlineStatus {
                    backend: "redis",
                    url: Some(status.url),
                    unavailable: status.unavailable,
                }
            }
        }
    }

    /// Asks the shared online tier whether it answers now (bounded by its timeouts), so
    /// `/health` reports the present rather than the last request's outcome.
    pub async fn check_online_store(&self) {
        if let Some(redis) = &self.redis {
            // The outcome is recorded in the status read right after.
            let _ = redis.ping().await;
        }
    }

    /// The backend's kind, bucket and prefix.
    pub fn backend(&self) -> &BackendInfo {
        &self.backend
    }

    /// The object store's counters and outage, for the s3 kind; `None` for the local kind.
    pub fn object_store_status(&self) -> Option<ObjectStoreStatus> {
        self.storage.object_tree().map(|tree| {
            let counters = tree.counters();
            ObjectStoreStatus {
                bytes_read: counters.bytes_read,
                requests: counters.requests,
                failures: counters.failures,
                outage: counters.outage,
            }
        })
    }
}
