//! Unit tests of the registry on an object store, over a local folder (`LocalFileSystem`
//! honours write-once puts with a hard link), so they need no S3 server. The same protocol
//! against SeaweedFS is in `tests/it/registry_object.rs`.

use std::sync::{Arc, Barrier};

use object_store::path::Path as ObjectPath;

use super::object::{EntryLog, LOG_PREFIX};
use super::*;
use crate::model::{Entity, ValueType};
use crate::storage::object::{BlockingTree, ObjectTree, S3Config, local_store};

type TestResult = Result<(), Box<dyn std::error::Error>>;

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

fn local_tree(dir: &std::path::Path) -> Result<BlockingTree, Box<dyn std::error::Error>> {
    Ok(BlockingTree::new(ObjectTree::new(local_store(dir)?)))
}

fn entry_keys(tree: &BlockingTree) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    Ok(tree
        .list(&ObjectPath::from(LOG_PREFIX))?
        .iter()
        .map(|m| m.location.to_string())
        .collect())
}

#[test]
fn an_apply_on_one_replica_is_served_by_another_after_reload() -> TestResult {
    let dir = tempfile::tempdir()?;
    let tree = local_tree(dir.path())?;
    let a = Registry::open_object(tree.clone())?;
    let b = Registry::open_object(tree.clone())?;
    a.apply(entity("user_id"), &no_tables)?;
    assert_eq!(
        entry_keys(&tree)?,
        ["registry/log/00000000000000000001.json"]
    );
    assert!(names(&b).is_empty());
    assert!(b.reload()?, "B must report the change");
    assert_eq!(names(&b), ["user_id"]);
    assert!(!b.reload()?, "nothing changed since");
    // The ETag is the document's digest, the same on every replica and on the local kind.
    assert_eq!(
        version_tag(&a.snapshot()),
        version_tag(&b.snapshot()),
        "same definitions, same version"
    );
    let reopened = Registry::open_object(tree)?;
    assert_eq!(reopened.snapshot(), a.snapshot());
    Ok(())
}

#[test]
fn a_stale_replica_merges_into_the_latest_entry_and_reapplying_writes_nothing() -> TestResult {
    let dir = tempfile::tempdir()?;
    let tree = local_tree(dir.path())?;
    let a = Registry::open_object(tree.clone())?;
    let b = Registry::open_object(tree.clone())?;
    a.apply(entity("a"), &no_tables)?;
    // B never reloaded: its write must start from entry 1, not from its empty copy.
    let report = b.apply(entity("b"), &no_tables)?;
    assert_eq!(report.created, ["entity b"]);
    assert_eq!(names(&b), ["a", "b"]);
    let again = b.apply(entity("b"), &no_tables)?;
    assert_eq!(again.unchanged, ["entity b"]);
    assert_eq!(
        entry_keys(&tree)?.len(),
        2,
        "an unchanged apply adds no entry"
    );
    Ok(())
}

#[test]
fn a_stale_if_match_fails_with_changed_and_writes_nothing() -> TestResult {
    let dir = tempfile::tempdir()?;
    let tree = local_tree(dir.path())?;
    let a = Registry::open_object(tree.clone())?;
    let b = Registry::open_object(tree.clone())?;
    let (_, read_by_b) = b.apply_if(entity("a"), None, &Writer::default(), &no_tables)?;
    let read_by_b = read_by_b.tag;
    a.apply(entity("x"), &no_tables)?;
    match b.apply_if(
        entity("b"),
        Some(&read_by_b),
        &Writer::default(),
        &no_tables,
    ) {
        Err(RegistryError::Changed { expected, current }) => {
            assert_eq!(expected, read_by_b);
            assert_eq!(current, version_tag(&a.snapshot()));
        }
        other => return Err(format!("expected Changed, got {other:?}").into()),
    }
    assert_eq!(entry_keys(&tree)?.len(), 2);
    assert_eq!(
        names(&b),
        ["a", "x"],
        "the loser now serves the winner's version"
    );
    // With the current version the same write goes through.
    let current = version_tag(&b.snapshot());
    b.apply_if(entity("b"), Some(&current), &Writer::default(), &no_tables)?;
    assert_eq!(names(&b), ["a", "b", "x"]);
    Ok(())
}

#[test]
fn concurrent_applies_of_different_objects_from_two_replicas_all_survive() -> TestResult {
    const ROUNDS: usize = 40;
    let dir = tempfile::tempdir()?;
    let tree = local_tree(dir.path())?;
    let replicas = [
        Arc::new(Registry::open_object(tree.clone())?),
        Arc::new(Registry::open_object(tree.clone())?),
    ];
    // Both replicas write at the same moment every round, so every round is a real race
    // for the same entry.
    let start = Arc::new(Barrier::new(2));
    let threads: Vec<_> = replicas
        .iter()
        .enumerate()
        .map(|(replica, registry)| {
            let (registry, start) = (Arc::clone(registry), Arc::clone(&start));
            std::thread::spawn(move || -> Result<(), String> {
                for round in 0..ROUNDS {
                    start.wait();
                    let name = format!("r{replica}_{round:02}");
                    registry
                        .apply(entity(&name), &no_tables)
                        .map_err(|e| format!("{name}: {e}"))?;
                }
                Ok(())
            })
        })
        .collect();
    for thread in threads {
        thread.join().map_err(|_| "writer panicked")??;
    }
    replicas[0].reload()?;
    let mut expected: Vec<String> = (0..2)
        .flat_map(|r| (0..ROUNDS).map(move |i| format!("r{r}_{i:02}")))
        .collect();
    expected.sort();
    assert_eq!(names(&replicas[0]), expected);
    let keys = entry_keys(&tree)?;
    assert_eq!(keys.len(), 2 * ROUNDS, "one entry per write, none lost");
    assert_eq!(
        keys.last().map(String::as_str),
        Some(EntryLog::key(80).as_ref())
    );
    Ok(())
}

/// Writes entry `seq` as another replica would, between this write's read and its put.
fn commit_behind_its_back(tree: &BlockingTree, seq: u64, doc: &RegistryDocument) {
    let bytes = serde_json::to_vec(doc).unwrap_or_default();
    let _ = tree.put_if_absent(&EntryLog::key(seq), bytes::Bytes::from(bytes));
}

#[test]
fn a_write_that_loses_the_race_runs_again_on_the_winner() -> TestResult {
    let dir = tempfile::tempdir()?;
    let tree = local_tree(dir.path())?;
    let registry = Registry::open_object(tree.clone())?;
    let mut calls = 0;
    let (report, tag) =
        registry.update(RegistryOperation::Apply, &Writer::default(), |current| {
            calls += 1;
            if calls == 1 {
                commit_behind_its_back(&tree, 1, &entity("theirs"));
            }
            merge::merge(current, entity("mine"), &no_tables).map(|(doc, r)| (Some(doc), r))
        })?;
    assert_eq!(
        calls, 2,
        "run once on the empty registry, once on the winner"
    );
    assert_eq!(report.created, ["entity mine"]);
    assert_eq!(names(&registry), ["mine", "theirs"]);
    assert_eq!(tag.tag, version_tag(&registry.snapshot()));
    assert_eq!(entry_keys(&tree)?.len(), 2);
    Ok(())
}

/// [`entity`] with another value type: the same object, defined differently.
fn entity_as_string(name: &str) -> RegistryDocument {
    let mut doc = entity(name);
    doc.entities[0].value_type = ValueType::String;
    doc
}

/// An apply of `mine` on `registry` whose first attempt loses the race for the next entry
/// to another replica's apply of `theirs`, committed in between.
fn apply_losing_to(
    tree: &BlockingTree,
    registry: &Registry,
    theirs: &RegistryDocument,
    mine: RegistryDocument,
) -> Result<(ApplyReport, Committed), RegistryError> {
    let mut change = merge::applying(mine, None, &no_tables);
    let mut raced = false;
    registry.update(RegistryOperation::Apply, &Writer::default(), |current| {
        if !std::mem::replace(&mut raced, true) {
            let mut doc = current.clone();
            doc.entities.extend(theirs.entities.iter().cloned());
            let next = entry_keys(tree).map_or(1, |k| k.len() as u64 + 1);
            commit_behind_its_back(tree, next, &doc);
        }
        change(current)
    })
}

#[test]
fn a_racing_apply_that_defines_the_same_object_differently_loses_with_conflict() -> TestResult {
    let dir = tempfile::tempdir()?;
    let tree = local_tree(dir.path())?;
    let registry = Registry::open_object(tree.clone())?;
    let outcome = apply_losing_to(
        &tree,
        &registry,
        &entity_as_string("user_id"),
        entity("user_id"),
    );
    assert!(
        matches!(&outcome, Err(RegistryError::Conflict { kind: "entity", name }) if name == "user_id"),
        "{outcome:?}"
    );
    registry.reload()?;
    assert_eq!(
        registry.snapshot().entities[0].value_type,
        ValueType::String,
        "the winner's definition stays"
    );
    assert_eq!(entry_keys(&tree)?.len(), 1, "the loser wrote nothing");
    Ok(())
}

#[test]
fn a_racing_apply_of_the_same_definition_or_of_other_objects_succeeds() -> TestResult {
    let dir = tempfile::tempdir()?;
    let tree = local_tree(dir.path())?;
    let registry = Registry::open_object(tree.clone())?;
    let (report, _) = apply_losing_to(&tree, &registry, &entity("same"), entity("same"))?;
    assert_eq!(report.created, ["entity same"]);
    let (report, _) = apply_losing_to(&tree, &registry, &entity("theirs"), entity("mine"))?;
    assert_eq!(report.created, ["entity mine"]);
    assert_eq!(names(&registry), ["mine", "same", "theirs"]);
    // Not a race: a later apply redefining an object is an update, as on one replica.
    let (report, _) = registry.apply_if(
        entity_as_string("mine"),
        None,
        &Writer::default(),
        &no_tables,
    )?;
    assert_eq!(report.updated, ["entity mine"]);
    Ok(())
}

#[test]
fn many_writer_threads_per_replica_applying_freely_lose_nothing() -> TestResult {
    const EACH: usize = 25;
    let dir = tempfile::tempdir()?;
    let tree = local_tree(dir.path())?;
    let replicas = [
        Arc::new(Registry::open_object(tree.clone())?),
        Arc::new(Registry::open_object(tree.clone())?),
    ];
    let threads: Vec<_> = (0..8)
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
        thread.join().map_err(|_| "writer panicked")??;
    }
    replicas[1].reload()?;
    assert_eq!(names(&replicas[1]).len(), 8 * EACH);
    assert_eq!(entry_keys(&tree)?.len(), 8 * EACH);
    Ok(())
}

#[test]
fn a_write_whose_entry_is_already_there_with_its_document_answers_success() -> TestResult {
    // What a retried put finds when its first attempt timed out after the store wrote it:
    // the next entry already holds exactly the document this write makes.
    let dir = tempfile::tempdir()?;
    let tree = local_tree(dir.path())?;
    let registry = Registry::open_object(tree.clone())?;
    let mut calls = 0;
    let (report, tag) =
        registry.update(RegistryOperation::Apply, &Writer::default(), |current| {
            calls += 1;
            let (next, report) = merge::merge(current, entity("same"), &no_tables)?;
            if calls == 1 {
                commit_behind_its_back(&tree, 1, &next);
            }
            Ok((Some(next), report))
        })?;
    assert_eq!(calls, 1);
    assert_eq!(report.created, ["entity same"]);
    assert_eq!(tag.tag, version_tag(&entity("same")));
    assert_eq!(entry_keys(&tree)?.len(), 1);
    Ok(())
}

#[test]
fn a_write_that_keeps_losing_gives_up_as_contended_without_writing() -> TestResult {
    let dir = tempfile::tempdir()?;
    let tree = local_tree(dir.path())?;
    let mut registry = Registry::open_object(tree.clone())?;
    if let Backend::Object(log) = &mut registry.backend {
        log.patience = std::time::Duration::ZERO;
    }
    let mut calls = 0u64;
    let outcome = registry.update(RegistryOperation::Apply, &Writer::default(), |current| {
        calls += 1;
        commit_behind_its_back(&tree, calls, &entity(&format!("theirs_{calls}")));
        merge::merge(current, entity("mine"), &no_tables).map(|(doc, r)| (Some(doc), r))
    });
    assert!(
        matches!(outcome, Err(RegistryError::Contended { attempts }) if attempts == MIN_ATTEMPTS),
        "{outcome:?}"
    );
    assert_eq!(calls, u64::from(MIN_ATTEMPTS));
    assert!(!names(&registry).contains(&"mine".to_owned()));
    Ok(())
}

/// A registry on `tree` whose history reads time from `now` (µs), which the test moves.
fn registry_at(
    tree: &BlockingTree,
    now: &Arc<std::sync::atomic::AtomicI64>,
) -> Result<Registry, RegistryError> {
    let now = Arc::clone(now);
    Registry::open_object_with(
        tree.clone(),
        HistoryOptions {
            clock: Arc::new(move || now.load(std::sync::atomic::Ordering::SeqCst)),
            retention: Retention::default(),
        },
    )
}

#[test]
fn the_sweep_keeps_versions_current_within_keep_days_and_the_latest_keep_min() -> TestResult {
    use std::sync::atomic::{AtomicI64, Ordering};
    const DAY: i64 = 24 * 3600 * 1_000_000;
    let dir = tempfile::tempdir()?;
    let tree = local_tree(dir.path())?;
    let t0 = 1_800_000_000_000_000;
    let now = Arc::new(AtomicI64::new(t0));
    let registry = registry_at(&tree, &now)?;
    let sweep_at = 2 * SWEEP_EVERY;
    for i in 1..=20 {
        registry.apply(entity(&format!("e{i:03}")), &no_tables)?;
    }
    now.store(t0 + 6 * DAY, Ordering::SeqCst);
    for i in 21..sweep_at {
        registry.apply(entity(&format!("e{i:03}")), &no_tables)?;
    }
    assert_eq!(
        entry_keys(&tree)?.len() as u64,
        sweep_at - 1,
        "all within 7 days"
    );
    now.store(t0 + 8 * DAY, Ordering::SeqCst);
    registry.apply(entity("last"), &no_tables)?;
    // 1 to 19 stopped being current 8 days ago; 20 was current until 2 days ago, so it stays
    // with everything after it (more than the 10 always kept).
    let keys = entry_keys(&tree)?;
    assert_eq!(
        keys.first().map(String::as_str),
        Some(EntryLog::key(20).as_ref())
    );
    assert_eq!(keys.len() as u64, sweep_at - 19);
    assert!(matches!(
        registry.version_document(19),
        Err(RegistryError::VersionExpired { version: 19, oldest: Some(20), latest }) if latest == sweep_at
    ));
    assert_eq!(registry.version_document(20)?.record.version, 20);
    // Much later, only the latest 10 are kept.
    now.store(t0 + 30 * DAY, Ordering::SeqCst);
    for i in sweep_at + 1..3 * SWEEP_EVERY {
        registry.apply(entity(&format!("f{i:03}")), &no_tables)?;
    }
    now.store(t0 + 40 * DAY, Ordering::SeqCst);
    registry.apply(entity("after_a_quiet_month"), &no_tables)?;
    let keys = entry_keys(&tree)?;
    assert_eq!(keys.len() as u64, DEFAULT_KEEP_MIN_FOR_TESTS);
    let reopened = Registry::open_object(tree)?;
    assert_eq!(reopened.snapshot(), registry.snapshot());
    assert_eq!(reopened.version(), 3 * SWEEP_EVERY);
    Ok(())
}

/// The default `keep_min`.
const DEFAULT_KEEP_MIN_FOR_TESTS: u64 = history::DEFAULT_KEEP_MIN;

#[test]
fn an_entry_that_is_not_a_document_is_reported_and_nothing_is_written() -> TestResult {
    let dir = tempfile::tempdir()?;
    let tree = local_tree(dir.path())?;
    let a = Registry::open_object(tree.clone())?;
    a.apply(entity("a"), &no_tables)?;
    tree.put(&EntryLog::key(2), bytes::Bytes::from_static(b"{not json"))?;
    assert!(matches!(a.reload(), Err(RegistryError::File { .. })));
    assert_eq!(names(&a), ["a"], "the last good definitions stay served");
    assert!(matches!(
        a.apply(entity("b"), &no_tables),
        Err(RegistryError::File { .. })
    ));
    assert_eq!(entry_keys(&tree)?.len(), 2);
    Ok(())
}

#[test]
fn foreign_keys_in_the_log_folder_are_ignored() -> TestResult {
    let dir = tempfile::tempdir()?;
    let tree = local_tree(dir.path())?;
    tree.put(
        &ObjectPath::from(format!("{LOG_PREFIX}/notes.txt")),
        bytes::Bytes::from_static(b"hello"),
    )?;
    let a = Registry::open_object(tree.clone())?;
    a.apply(entity("a"), &no_tables)?;
    let b = Registry::open_object(tree)?;
    assert_eq!(names(&b), ["a"]);
    Ok(())
}

/// A tree whose store refuses connections: `127.0.0.1` on a port just released.
fn unreachable_tree() -> Result<BlockingTree, Box<dyn std::error::Error>> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let config = S3Config {
        bucket: "registry-test".into(),
        endpoint: Some(format!("http://127.0.0.1:{port}")),
        region: Some("us-east-1".into()),
        allow_http: true,
        ..S3Config::default()
    };
    let base = object_store::aws::AmazonS3Builder::new()
        .with_access_key_id("nobody")
        .with_secret_access_key("nothing");
    Ok(BlockingTree::new(ObjectTree::new(config.build_from(base)?)))
}

#[test]
fn an_unreachable_store_is_unavailable_at_open_on_reload_and_on_write() -> TestResult {
    let tree = unreachable_tree()?;
    match Registry::open_object(tree.clone()) {
        Err(RegistryError::Unavailable { reason }) => {
            assert!(!reason.contains("nothing"), "no secret in {reason:?}");
        }
        other => return Err(format!("expected Unavailable, got {other:?}").into()),
    }
    // A replica that opened while the store was up, then lost it.
    let registry = Registry {
        backend: Backend::Object(EntryLog::new(tree, HistoryOptions::default())),
        loaded: RwLock::new(Loaded {
            doc: Arc::new(entity("kept")),
            stamp: Stamp::Entry(3),
            version: 3,
        }),
        writer: Mutex::new(()),
        history: HistoryOptions::default(),
    };
    assert!(matches!(
        registry.reload(),
        Err(RegistryError::Unavailable { .. })
    ));
    assert!(matches!(
        registry.apply(entity("new"), &no_tables),
        Err(RegistryError::Unavailable { .. })
    ));
    assert_eq!(names(&registry), ["kept"], "nothing half-applied");
    Ok(())
}
