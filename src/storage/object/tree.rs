//! [`ObjectTree`]: the handful of object-store calls the commit protocol is built from, each
//! returning an [`ObjectError`] kind instead of the store's raw error.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use super::error::{ObjectError, ObjectResult};

/// The Parquet tree's objects, on any `ObjectStore` (S3, or a local folder).
///
/// Cheap to clone: it holds one `Arc`. Every call is async and holds no lock across its
/// `.await`s, so many may run at once from one process or many.
#[derive(Debug, Clone)]
pub struct ObjectTree {
    store: Arc<dyn ObjectStore>,
}

impl ObjectTree {
    /// A tree over `store` (already scoped to the configured prefix).
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self { store }
    }

    /// The underlying store, for readers (such as the Parquet one) that call it directly.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Checks at start-up that the bucket exists and the credentials may list it, so a
    /// wrong setting stops the process with one line naming it instead of failing the first
    /// request. A missing bucket is reported as [`ObjectError::Config`] on `bucket`.
    pub async fn probe(&self, bucket: &str) -> ObjectResult<()> {
        match self.store.list_with_delimiter(None).await {
            Ok(_) => Ok(()),
            Err(error) => match ObjectError::from_store("", error) {
                ObjectError::NotFound { .. } => Err(ObjectError::Config {
                    setting: "bucket",
                    reason: format!("bucket {bucket:?} does not exist"),
                }),
                other => Err(other),
            },
        }
    }

    /// Writes `bytes` at `key` only if nothing is there yet: the commit point of the protocol.
    /// Of several writers racing on one key exactly one succeeds; the others get
    /// [`ObjectError::AlreadyExists`] and the object is left as the winner wrote it.
    pub async fn put_if_absent(&self, key: &ObjectPath, bytes: Bytes) -> ObjectResult<()> {
        let options = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        self.store
            .put_opts(key, PutPayload::from(bytes), options)
            .await
            .map(drop)
            .map_err(|error| ObjectError::from_store(key.as_ref(), error))
    }

    /// Writes `bytes` at `key`, replacing what is there. Atomic on every kind: a reader sees
    /// the old object or the new one, never a mix. Last writer wins.
    pub async fn put(&self, key: &ObjectPath, bytes: Bytes) -> ObjectResult<()> {
        self.store
            .put(key, PutPayload::from(bytes))
            .await
            .map(drop)
            .map_err(|error| ObjectError::from_store(key.as_ref(), error))
    }

    /// The whole object.
    pub async fn get(&self, key: &ObjectPath) -> ObjectResult<Bytes> {
        let fail = |error| ObjectError::from_store(key.as_ref(), error);
        self.store
            .get(key)
            .await
            .map_err(fail)?
            .bytes()
            .await
            .map_err(fail)
    }

    /// The object's size, ETag and modification time, without its bytes.
    pub async fn head(&self, key: &ObjectPath) -> ObjectResult<ObjectMeta> {
        self.store
            .head(key)
            .await
            .map_err(|error| ObjectError::from_store(key.as_ref(), error))
    }

    /// Byte ranges of one object, in the order asked. The store merges ranges that lie close
    /// together into one request and runs the rest concurrently.
    pub async fn get_ranges(
        &self,
        key: &ObjectPath,
        ranges: &[Range<u64>],
    ) -> ObjectResult<Vec<Bytes>> {
        self.store
            .get_ranges(key, ranges)
            .await
            .map_err(|error| ObjectError::from_store(key.as_ref(), error))
    }

    /// Every object under `prefix` (recursively), sorted by key so callers can rely on the
    /// order (zero-padded version numbers sort as numbers).
    pub async fn list(&self, prefix: &ObjectPath) -> ObjectResult<Vec<ObjectMeta>> {
        let mut objects: Vec<ObjectMeta> = self
            .store
            .list(Some(prefix))
            .try_collect()
            .await
            .map_err(|error| ObjectError::from_store(prefix.as_ref(), error))?;
        objects.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(objects)
    }

    /// The objects under `prefix` whose key sorts after `offset`, sorted by key: how a reader
    /// that knows version N asks only for what was committed since (cheap when nothing was).
    pub async fn list_after(
        &self,
        prefix: &ObjectPath,
        offset: &ObjectPath,
    ) -> ObjectResult<Vec<ObjectMeta>> {
        let mut objects: Vec<ObjectMeta> = self
            .store
            .list_with_offset(Some(prefix), offset)
            .try_collect()
            .await
            .map_err(|error| ObjectError::from_store(prefix.as_ref(), error))?;
        objects.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(objects)
    }

    /// Removes `key`. Deleting what is already gone succeeds, as on S3, so a sweep that a
    /// crash interrupted can simply run again.
    pub async fn delete(&self, key: &ObjectPath) -> ObjectResult<()> {
        match self.store.delete(key).await {
            Ok(()) => Ok(()),
            Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(ObjectError::from_store(key.as_ref(), error)),
        }
    }
}
