//! The registry of the s3 kind against a real S3 server (SeaweedFS on loopback, see
//! `common/s3.rs`): two `Registry` instances on one bucket play two replicas. What one
//! applies the other serves after its next poll; concurrent applies of different objects all
//! survive; a stale `If-Match` loses with `registry_changed`; a store that is down or refuses
//! answers 503 `storage_unavailable` and nothing is half-written.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use actix_web::ResponseError;
use featurestore::api::ApiError;
use featurestore::model::{Entity, GroupName, RegistryDocument, TableName, ValueType};
use featurestore::registry::{Columns, LOG_PREFIX, Registry, RegistryError, Writer, version_tag};
use featurestore::storage::object::{BlockingTree, ObjectTree, S3Config};
use featurestore::store::StoreError;
use futures_util::stream::BoxStream;
use object_store::path::Path as ObjectPath;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

use crate::common::TestResult;
use crate::common::s3::s3_bucket;

fn no_tables(_: &GroupName, _: &TableName) -> Option<Columns> {
    None
}

fn entity(name: &str) -> RegistryDocument {
    RegistryDocument {
        entities: vec![Entity {
            name: name.into(),
            join_key: None,
            value_type: ValueType::Int64,
            description: String::new(),
        }],
        ..RegistryDocument::default()
    }
}

fn names(registry: &Registry) -> Vec<String> {
    registry
        .snapshot()
        .entities
        .iter()
        .map(|e| e.name.clone())
        .collect()
}

fn entries(tree: &BlockingTree) -> TestResult<usize> {
    Ok(tree.list(&ObjectPath::from(LOG_PREFIX))?.len())
}

/// What the API answers for `error`: status and problem `code`.
async fn answer(error: RegistryError) -> TestResult<(u16, String, String)> {
    let response = ApiError::Store(StoreError::Registry(error)).error_response();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = actix_web::body::to_bytes(response.into_body())
        .await
        .map_err(|e| format!("body: {e:?}"))?;
    let problem: serde_json::Value = serde_json::from_slice(&body)?;
    let code = problem["code"].as_str().unwrap_or_default().to_owned();
    assert_eq!(content_type, "application/problem+json");
    Ok((status, code, problem["detail"].to_string()))
}

#[test]
fn an_apply_on_replica_a_is_served_by_replica_b_after_one_cheap_poll() -> TestResult {
    let Some(bucket) = s3_bucket() else {
        return Ok(());
    };
    let a = Registry::open_object(BlockingTree::new(bucket.tree()?))?;
    let b_tree = BlockingTree::new(bucket.tree()?);
    let b = Registry::open_object(b_tree.clone())?;

    let before = b_tree.counters();
    assert!(!b.reload()?, "nothing applied yet");
    let idle = b_tree.counters();
    assert_eq!(
        (
            idle.requests - before.requests,
            idle.bytes_read - before.bytes_read
        ),
        (1, 0),
        "a poll with nothing new is one LIST and reads no object"
    );

    let (report, committed) =
        a.apply_if(entity("user_id"), None, &Writer::default(), &no_tables)?;
    let tag = committed.tag;
    assert_eq!(report.created, ["entity user_id"]);
    let applied = Instant::now();
    assert!(b.reload()?, "B's poll reports the change");
    assert!(
        applied.elapsed() < Duration::from_secs(1),
        "one poll took {:?}",
        applied.elapsed()
    );
    assert_eq!(names(&b), ["user_id"]);
    assert_eq!(
        version_tag(&b.snapshot()),
        tag,
        "both replicas give one ETag"
    );
    assert!(!b.reload()?);

    // A third replica starting now reads the latest entry.
    let c = Registry::open_object(BlockingTree::new(bucket.tree()?))?;
    assert_eq!(c.snapshot(), a.snapshot());
    Ok(())
}

#[test]
fn concurrent_applies_of_different_objects_from_two_replicas_all_survive() -> TestResult {
    let Some(bucket) = s3_bucket() else {
        return Ok(());
    };
    // Every round both replicas apply at the same moment: a real race for one entry.
    const ROUNDS: usize = 20;
    let tree = BlockingTree::new(bucket.tree()?);
    let replicas = [
        Arc::new(Registry::open_object(BlockingTree::new(bucket.tree()?))?),
        Arc::new(Registry::open_object(BlockingTree::new(bucket.tree()?))?),
    ];
    let start = Arc::new(Barrier::new(2));
    let threads: Vec<_> = replicas
        .iter()
        .enumerate()
        .map(|(replica, registry)| {
            let (registry, start) = (Arc::clone(registry), Arc::clone(&start));
            std::thread::spawn(move || -> Result<(), String> {
                for round in 0..ROUNDS {
                    start.wait();
                    let name = format!("r{replica}_{round}");
                    registry
                        .apply(entity(&name), &no_tables)
                        .map_err(|e| format!("{name}: {e}"))?;
                }
                Ok(())
            })
        })
        .collect();
    for thread in threads {
        thread.join().map_err(|_| "a writer panicked")??;
    }
    let mut expected: Vec<String> = (0..2)
        .flat_map(|r| (0..ROUNDS).map(move |i| format!("r{r}_{i}")))
        .collect();
    expected.sort();
    for registry in &replicas {
        registry.reload()?;
        assert_eq!(
            names(registry),
            expected,
            "every acknowledged apply survives"
        );
    }
    assert_eq!(entries(&tree)?, 2 * ROUNDS, "one entry per apply");
    Ok(())
}

#[tokio::test]
async fn a_stale_if_match_loses_with_registry_changed_and_writes_nothing() -> TestResult {
    let Some(bucket) = s3_bucket() else {
        return Ok(());
    };
    let tree = BlockingTree::new(bucket.tree()?);
    let a = Registry::open_object(tree.clone())?;
    let b = Registry::open_object(BlockingTree::new(bucket.tree()?))?;
    let (_, read) = a.apply_if(entity("first"), None, &Writer::default(), &no_tables)?;
    let read = read.tag;
    b.reload()?;
    // Both read version `read`; B writes first, so A's write is made on a stale version.
    b.apply_if(
        entity("from_b"),
        Some(&read),
        &Writer::default(),
        &no_tables,
    )?;
    let error = match a.apply_if(
        entity("from_a"),
        Some(&read),
        &Writer::default(),
        &no_tables,
    ) {
        Err(error @ RegistryError::Changed { .. }) => error,
        other => return Err(format!("expected Changed, got {other:?}").into()),
    };
    assert_eq!(entries(&tree)?, 2, "the loser wrote no entry");
    assert_eq!(
        names(&a),
        ["first", "from_b"],
        "the loser serves the winner"
    );
    let (status, code, _) = answer(error).await?;
    assert_eq!((status, code.as_str()), (409, "registry_changed"));
    Ok(())
}

/// `[storage.s3]` pointing at a loopback port nobody listens on.
fn refusing_tree() -> TestResult<BlockingTree> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let config = S3Config {
        bucket: "registry-down".into(),
        endpoint: Some(format!("http://127.0.0.1:{port}")),
        region: Some("us-east-1".into()),
        allow_http: true,
        ..S3Config::default()
    };
    let base = object_store::aws::AmazonS3Builder::new()
        .with_access_key_id("someone")
        .with_secret_access_key("not-to-be-printed");
    Ok(BlockingTree::new(ObjectTree::new(config.build_from(base)?)))
}

#[tokio::test]
async fn a_store_that_refuses_connections_is_storage_unavailable_at_open() -> TestResult {
    let started = Instant::now();
    let error = match Registry::open_object(refusing_tree()?) {
        Err(error @ RegistryError::Unavailable { .. }) => error,
        other => return Err(format!("expected Unavailable, got {other:?}").into()),
    };
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    let (status, code, detail) = answer(error).await?;
    assert_eq!((status, code.as_str()), (503, "storage_unavailable"));
    assert!(!detail.contains("not-to-be-printed"), "{detail}");
    Ok(())
}

#[tokio::test]
async fn wrong_credentials_are_storage_unavailable_not_a_server_error() -> TestResult {
    let Some(bucket) = s3_bucket() else {
        return Ok(());
    };
    let base = object_store::aws::AmazonS3Builder::new()
        .with_access_key_id("someone-else")
        .with_secret_access_key("wrong-secret");
    let tree = BlockingTree::new(ObjectTree::new(bucket.config.build_from(base)?));
    let error = match Registry::open_object(tree) {
        Err(error @ RegistryError::Unavailable { .. }) => error,
        other => return Err(format!("expected Unavailable, got {other:?}").into()),
    };
    let (status, code, detail) = answer(error).await?;
    assert_eq!((status, code.as_str()), (503, "storage_unavailable"));
    assert!(!detail.contains("wrong-secret"), "{detail}");
    Ok(())
}

/// An object store that can be switched off: every call fails as a network error would,
/// until it is switched on again.
#[derive(Debug)]
struct Switch {
    inner: Arc<dyn ObjectStore>,
    down: AtomicBool,
}

impl Switch {
    fn check(&self) -> object_store::Result<()> {
        if self.down.load(Ordering::SeqCst) {
            return Err(object_store::Error::Generic {
                store: "Switch",
                source: "connection refused (switched off by the test)".into(),
            });
        }
        Ok(())
    }
}

impl fmt::Display for Switch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Switch({})", self.inner)
    }
}

#[async_trait::async_trait]
impl ObjectStore for Switch {
    async fn put_opts(
        &self,
        location: &ObjectPath,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.check()?;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &ObjectPath,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.check()?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &ObjectPath,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.check()?;
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<ObjectPath>>,
    ) -> BoxStream<'static, object_store::Result<ObjectPath>> {
        self.inner.delete_stream(locations)
    }

    fn list(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        match self.check() {
            Ok(()) => self.inner.list(prefix),
            Err(e) => Box::pin(futures_util::stream::iter([Err(e)])),
        }
    }

    fn list_with_offset(
        &self,
        prefix: Option<&ObjectPath>,
        offset: &ObjectPath,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        match self.check() {
            Ok(()) => self.inner.list_with_offset(prefix, offset),
            Err(e) => Box::pin(futures_util::stream::iter([Err(e)])),
        }
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> object_store::Result<ListResult> {
        self.check()?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &ObjectPath,
        to: &ObjectPath,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.check()?;
        self.inner.copy_opts(from, to, options).await
    }
}

#[tokio::test]
async fn a_store_outage_fails_writes_with_storage_unavailable_and_they_work_once_it_is_back()
-> TestResult {
    let Some(bucket) = s3_bucket() else {
        return Ok(());
    };
    let switch = Arc::new(Switch {
        inner: bucket.tree()?.store().clone(),
        down: AtomicBool::new(false),
    });
    let a = Registry::open_object(BlockingTree::new(ObjectTree::new(switch.clone())))?;
    let observer = BlockingTree::new(bucket.tree()?);
    let b = Registry::open_object(observer.clone())?;
    a.apply(entity("before"), &no_tables)?;

    switch.down.store(true, Ordering::SeqCst);
    let error = match a.apply(entity("during"), &no_tables) {
        Err(error @ RegistryError::Unavailable { .. }) => error,
        other => return Err(format!("expected Unavailable, got {other:?}").into()),
    };
    assert!(matches!(a.reload(), Err(RegistryError::Unavailable { .. })));
    assert_eq!(
        names(&a),
        ["before"],
        "the last definitions read stay served"
    );
    let (status, code, _) = answer(error).await?;
    assert_eq!((status, code.as_str()), (503, "storage_unavailable"));
    b.reload()?;
    assert_eq!(
        names(&b),
        ["before"],
        "nothing of the failed apply is visible"
    );
    assert_eq!(entries(&observer)?, 1);

    switch.down.store(false, Ordering::SeqCst);
    a.apply(entity("after"), &no_tables)?;
    assert!(b.reload()?);
    assert_eq!(names(&b), ["after", "before"]);
    Ok(())
}

/// Several writer threads per replica, each applying as fast as it can: the replicas' writer
/// mutexes serialise each side, and the two sides race for every entry.
#[test]
fn many_writers_on_two_replicas_applying_freely_lose_nothing() -> TestResult {
    let Some(bucket) = s3_bucket() else {
        return Ok(());
    };
    const EACH: usize = 15;
    let replicas = [
        Arc::new(Registry::open_object(BlockingTree::new(bucket.tree()?))?),
        Arc::new(Registry::open_object(BlockingTree::new(bucket.tree()?))?),
    ];
    let threads: Vec<_> = (0..6)
        .map(|t| {
            let registry = Arc::clone(&replicas[t % 2]);
            std::thread::spawn(move || -> Result<(), String> {
                for i in 0..EACH {
                    let name = format!("t{t}_{i:02}");
                    registry
                        .apply(entity(&name), &no_tables)
                        .map_err(|e| format!("{name}: {e}"))?;
                }
                Ok(())
            })
        })
        .collect();
    for thread in threads {
        thread.join().map_err(|_| "a writer panicked")??;
    }
    for registry in &replicas {
        registry.reload()?;
        assert_eq!(
            names(registry).len(),
            6 * EACH,
            "every acknowledged apply survives"
        );
    }
    Ok(())
}
