//! [`BlockingTree`]: the object tree for the synchronous storage layer.
//!
//! `Storage` is synchronous by design (callers on the async runtime reach it through the
//! blocking pool), while `object_store` is async. Each call here runs on one process-wide
//! I/O runtime and the calling thread waits for its answer on a channel. That works from any
//! thread, including one inside another runtime, where `Runtime::block_on` would panic: no
//! request can reach a panic through this bridge.
//!
//! It also keeps what `/health` and `/performance` report about the store: bytes and requests
//! fetched, and whether the last call reached it.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectMeta, ObjectStoreExt};

use super::error::{ObjectError, ObjectResult};
use super::tree::ObjectTree;

/// The one runtime object-store futures run on; two threads are plenty for I/O waits.
fn io_runtime() -> Option<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<Option<tokio::runtime::Runtime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("object-io")
                .enable_all()
                .build()
                .map_err(
                    |e| tracing::error!(error = %e, "cannot start the object-store I/O runtime"),
                )
                .ok()
        })
        .as_ref()
}

/// Traffic and reachability of the object store, as this process saw them.
#[derive(Debug, Default)]
pub struct StoreStats {
    bytes_read: AtomicU64,
    requests: AtomicU64,
    failures: AtomicU64,
    /// The last failure that meant "store unreachable" and when, cleared by the next success.
    outage: Mutex<Option<(SystemTime, String)>>,
}

/// A snapshot of [`StoreStats`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreCounters {
    /// Bytes of object data fetched (footers, column chunks, entries).
    pub bytes_read: u64,
    /// Calls made to the store.
    pub requests: u64,
    /// Calls that failed because the store was unreachable or answered 5xx.
    pub failures: u64,
    /// Why the store is considered down, while it is.
    pub outage: Option<String>,
}

/// The object tree with synchronous calls, for `Storage`.
#[derive(Debug, Clone)]
pub struct BlockingTree {
    tree: ObjectTree,
    stats: Arc<StoreStats>,
}

impl BlockingTree {
    /// Wraps `tree`.
    pub fn new(tree: ObjectTree) -> Self {
        Self {
            tree,
            stats: Arc::new(StoreStats::default()),
        }
    }

    /// The async tree, for callers already on a runtime.
    pub fn tree(&self) -> &ObjectTree {
        &self.tree
    }

    /// Traffic and reachability so far.
    pub fn counters(&self) -> StoreCounters {
        StoreCounters {
            bytes_read: self.stats.bytes_read.load(Ordering::Relaxed),
            requests: self.stats.requests.load(Ordering::Relaxed),
            failures: self.stats.failures.load(Ordering::Relaxed),
            outage: self
                .stats
                .outage
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
                .map(|(_, why)| why.clone()),
        }
    }

    /// Runs `call` on the I/O runtime and waits for it, bounded by `limit` so a store that
    /// neither answers nor fails cannot hold the calling thread for ever.
    fn run<T, F>(&self, key: &str, call: F) -> ObjectResult<T>
    where
        T: Send + 'static,
        F: std::future::Future<Output = ObjectResult<T>> + Send + 'static,
    {
        const LIMIT: Duration = Duration::from_secs(30);
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let outcome = match io_runtime() {
            None => Err(unavailable(
                key,
                "the object-store I/O runtime could not start",
            )),
            Some(runtime) => {
                let (sender, receiver) = std::sync::mpsc::sync_channel(1);
                runtime.spawn(async move {
                    let _ = sender.send(call.await);
                });
                match receiver.recv_timeout(LIMIT) {
                    Ok(outcome) => outcome,
                    Err(_) => Err(unavailable(key, "the object store did not answer in time")),
                }
            }
        };
        self.record(&outcome);
        outcome
    }

    fn record<T>(&self, outcome: &ObjectResult<T>) {
        let mut outage = self.stats.outage.lock().unwrap_or_else(|p| p.into_inner());
        match outcome {
            Err(error @ ObjectError::Unavailable { .. }) => {
                self.stats.failures.fetch_add(1, Ordering::Relaxed);
                *outage = Some((SystemTime::now(), error.to_string()));
            }
            Err(ObjectError::Denied { .. }) => {
                self.stats.failures.fetch_add(1, Ordering::Relaxed);
            }
            _ => *outage = None,
        }
    }

    fn count_read(&self, bytes: u64) {
        self.stats.bytes_read.fetch_add(bytes, Ordering::Relaxed);
    }

    /// See [`ObjectTree::probe`].
    pub fn probe(&self, bucket: &str) -> ObjectResult<()> {
        let (tree, bucket) = (self.tree.clone(), bucket.to_owned());
        self.run("", async move { tree.probe(&bucket).await })
    }

    /// See [`ObjectTree::put_if_absent`].
    pub fn put_if_absent(&self, key: &ObjectPath, bytes: Bytes) -> ObjectResult<()> {
        let (tree, owned) = (self.tree.clone(), key.clone());
        self.run(key.as_ref(), async move {
            tree.put_if_absent(&owned, bytes).await
        })
    }

    /// See [`ObjectTree::put`].
    pub fn put(&self, key: &ObjectPath, bytes: Bytes) -> ObjectResult<()> {
        let (tree, owned) = (self.tree.clone(), key.clone());
        self.run(key.as_ref(), async move { tree.put(&owned, bytes).await })
    }

    /// See [`ObjectTree::get`].
    pub fn get(&self, key: &ObjectPath) -> ObjectResult<Bytes> {
        let (tree, owned) = (self.tree.clone(), key.clone());
        let bytes = self.run(key.as_ref(), async move { tree.get(&owned).await })?;
        self.count_read(bytes.len() as u64);
        Ok(bytes)
    }

    /// Byte ranges of one object (merged into few requests when close).
    pub fn get_ranges(
        &self,
        key: &ObjectPath,
        ranges: Vec<Range<u64>>,
    ) -> ObjectResult<Vec<Bytes>> {
        let (tree, owned) = (self.tree.clone(), key.clone());
        let parts = self.run(key.as_ref(), async move {
            tree.get_ranges(&owned, &ranges).await
        })?;
        self.count_read(parts.iter().map(|b| b.len() as u64).sum());
        Ok(parts)
    }

    /// One byte range of an object.
    pub fn get_range(&self, key: &ObjectPath, range: Range<u64>) -> ObjectResult<Bytes> {
        let (tree, owned) = (self.tree.clone(), key.clone());
        let mut parts = self.run(key.as_ref(), async move {
            tree.get_ranges(&owned, std::slice::from_ref(&range)).await
        })?;
        let bytes = parts.pop().unwrap_or_default();
        self.count_read(bytes.len() as u64);
        Ok(bytes)
    }

    /// See [`ObjectTree::head`].
    pub fn head(&self, key: &ObjectPath) -> ObjectResult<ObjectMeta> {
        let (tree, owned) = (self.tree.clone(), key.clone());
        self.run(key.as_ref(), async move { tree.head(&owned).await })
    }

    /// See [`ObjectTree::list`].
    pub fn list(&self, prefix: &ObjectPath) -> ObjectResult<Vec<ObjectMeta>> {
        let (tree, owned) = (self.tree.clone(), prefix.clone());
        self.run(prefix.as_ref(), async move { tree.list(&owned).await })
    }

    /// See [`ObjectTree::list_after`].
    pub fn list_after(
        &self,
        prefix: &ObjectPath,
        offset: &ObjectPath,
    ) -> ObjectResult<Vec<ObjectMeta>> {
        let (tree, owned, after) = (self.tree.clone(), prefix.clone(), offset.clone());
        self.run(prefix.as_ref(), async move {
            tree.list_after(&owned, &after).await
        })
    }

    /// The names of the "folders" directly under `prefix` (one LIST with a delimiter).
    pub fn list_dirs(&self, prefix: &ObjectPath) -> ObjectResult<Vec<String>> {
        let (tree, owned) = (self.tree.clone(), prefix.clone());
        self.run(prefix.as_ref(), async move {
            let listed = tree
                .store()
                .list_with_delimiter(Some(&owned))
                .await
                .map_err(|e| ObjectError::from_store(owned.as_ref(), e))?;
            Ok(listed
                .common_prefixes
                .iter()
                .filter_map(|p| p.filename().map(str::to_owned))
                .collect())
        })
    }

    /// Copies `from` to `to` inside the store (no bytes through this process), replacing `to`.
    pub fn copy(&self, from: &ObjectPath, to: &ObjectPath) -> ObjectResult<()> {
        let (tree, source, target) = (self.tree.clone(), from.clone(), to.clone());
        self.run(to.as_ref(), async move {
            tree.store()
                .copy(&source, &target)
                .await
                .map_err(|e| ObjectError::from_store(target.as_ref(), e))
        })
    }

    /// See [`ObjectTree::delete`].
    pub fn delete(&self, key: &ObjectPath) -> ObjectResult<()> {
        let (tree, owned) = (self.tree.clone(), key.clone());
        self.run(key.as_ref(), async move { tree.delete(&owned).await })
    }
}

fn unavailable(key: &str, why: &'static str) -> ObjectError {
    ObjectError::Unavailable {
        source: object_store::Error::Generic {
            store: "featurestore",
            source: format!("{why} (while at {key:?})").into(),
        },
    }
}
