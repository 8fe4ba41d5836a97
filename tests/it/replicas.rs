//! Two `featurestore serve` processes on one S3 bucket (issue #14): what one writes the other
//! serves within a second, concurrent pushes and compactions lose no acknowledged row,
//! concurrent replaces publish each version once and every read is one whole version, and a
//! replica killed mid-write leaves the other serving. (`store_outage.rs`: the store down.)
//!
//! Every table here has rows that all carry the id (`w`) of the write that made them, so a
//! read mixing two writes, or missing rows of one, is seen at once. Tables are small and
//! rounds few: the file runs in well under a minute and a half on two cores.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::TestResult;
use crate::common::replicas::{
    AT, GROUP, Replicas, get, post, read_all, save, single_write, table, wait_for, write_rows,
};
use crate::common::s3::s3_bucket;

/// The promise is 1 s (the default poll interval); the slack is for a loaded 2-core
/// machine running debug builds.
const SEEN_WITHIN: Duration = Duration::from_millis(1500);
/// How long two replicas may take to agree once writes stop (a poll, a background fold).
const CONVERGE: Duration = Duration::from_secs(15);

#[tokio::test]
async fn a_table_written_on_one_replica_is_listed_paged_and_looked_up_on_the_other_within_a_second()
-> TestResult {
    let Some(bucket) = s3_bucket() else {
        return Ok(());
    };
    // Under a prefix, as two deployments sharing a bucket would be.
    let mut config = bucket.config.clone();
    config.prefix = "team-a/features".into();
    let replicas = Replicas::start(&config, &bucket.env(), 2)?;
    let (a, b) = (replicas.node(0)?, replicas.node(1)?);
    let (status, _, health) = get(b, "/health").await?;
    assert_eq!(status, 200, "{health}\n{}", replicas.logs());
    assert_eq!(
        (&health["backend"], &health["bucket"], &health["prefix"]),
        (
            &json!("s3"),
            &json!(bucket.name()),
            &json!("team-a/features")
        ),
        "{health}"
    );

    let (status, body) = save(a, "seen_on_b", "a1", 20).await?;
    assert_eq!(status, 201, "{body}\n{}", replicas.logs());
    // Pages and lookups first, with no listing (a listing rescans the bucket at once): this
    // measures what B's polling alone delivers.
    let (_, delay) = wait_for(Duration::from_secs(10), "B serves A's table", || async {
        let (status, _, page) =
            get(b, &format!("{}?limit=5&offset=10", table("seen_on_b"))).await?;
        let paged = status == 200
            && page["metadata"]["total_rows"] == 20
            && page["data"].as_array().is_some_and(|d| d.len() == 5)
            && page["data"][0]["entity_id"] == 10;
        let lookup = json!({"feature_names": ["seen_on_b"], "entity_ids": [7]});
        let (status, _, found) = post(b, "/features/batch", &lookup).await?;
        let looked_up = status == 200 && found["features"]["seen_on_b"][0]["w"] == "a1";
        Ok((paged && looked_up).then_some(()))
    })
    .await?;
    println!("write on A paged and looked up on B after {delay:?}");
    assert!(
        delay < SEEN_WITHIN,
        "B served A's table after {delay:?}, more than {SEEN_WITHIN:?}"
    );
    let (status, _, list) = get(b, "/features").await?;
    let listed = list["groups"][GROUP].as_array().is_some_and(|t| {
        t.iter()
            .any(|t| t["name"] == "seen_on_b" && t["rows"] == 20)
    });
    assert!(status == 200 && listed, "B does not list A's table: {list}");

    // A replace on B is seen on A the same way.
    let (status, body) = save(b, "seen_on_b", "b1", 4).await?;
    assert_eq!(status, 200, "{body}");
    let (_, delay) = wait_for(Duration::from_secs(10), "A serves B's replace", || async {
        Ok(read_all(a, "seen_on_b")
            .await?
            .filter(|(_, rows)| rows.len() == 4 && rows[0]["w"] == "b1"))
    })
    .await?;
    println!("replace on B seen on A after {delay:?}");
    assert!(delay < SEEN_WITHIN, "A served B's replace after {delay:?}");
    Ok(())
}

/// What happened to each pushed id.
#[derive(Default)]
struct Pushes {
    /// Answered 200: must be in the table.
    acknowledged: BTreeSet<i64>,
    /// Answered 503 `storage_*`: must not be in the table.
    refused: BTreeSet<i64>,
    /// Sent at all (a dropped connection leaves the outcome open).
    attempted: BTreeSet<i64>,
    /// Compactions answered, by status.
    compactions: BTreeMap<u16, usize>,
    /// The table versions the acknowledged pushes answered, by replica.
    versions: [Vec<u64>; 2],
}

/// The history of `name` in the bucket, as a third replica (the library, nothing cached)
/// lists it: numbers strictly increase, every version in `acknowledged` is listed, and every
/// listed version opens with the rows it lists.
fn check_bucket_history(
    bucket: &crate::common::s3::S3Bucket,
    name: &str,
    acknowledged: &[u64],
) -> TestResult<Vec<featurestore::storage::VersionRecord>> {
    let local = tempfile::tempdir()?;
    let mut config = featurestore::config::Config::defaults()?.storage;
    config.data_dir = local.path().to_path_buf();
    config.backend = featurestore::storage::StorageBackend::S3;
    config.s3 = bucket.config.clone();
    let storage = featurestore::storage::Storage::open_on(
        config,
        featurestore::storage::object::BlockingTree::new(bucket.tree()?),
    )?;
    crate::common::history::check_history(&storage, name, acknowledged)
}

#[tokio::test]
async fn concurrent_offline_pushes_and_compactions_on_two_replicas_keep_every_acknowledged_row()
-> TestResult {
    let Some(bucket) = s3_bucket() else {
        return Ok(());
    };
    let replicas = Replicas::start(&bucket.config, &bucket.env(), 2)?;
    let (a, b) = (replicas.node(0)?, replicas.node(1)?);
    let (status, body) = save(a, "pushed", "seed", 1).await?;
    assert_eq!(status, 201, "{body}\n{}", replicas.logs());
    // A's save registered the view on A; it is applied on B as well, once B serves the table:
    // this test is about the table's log, not about how the registry reaches a replica.
    let definitions = json!({
        "entities": [{"name": "entity_id", "value_type": "int64"}],
        "feature_views": [{"name": "pushed", "group": GROUP, "entities": ["entity_id"],
                           "timestamp_field": "event_timestamp"}],
    });
    wait_for(Duration::from_secs(10), "B registers the view", || async {
        let (status, _, body) = post(b, "/registry/apply", &definitions).await?;
        match status {
            200 => Ok(Some(())),
            _ => Err(format!("{status}: {body}").into()),
        }
    })
    .await?;
    let push = |id: i64, writer: &str| {
        json!({"push_source_name": "pushed", "to": "offline",
               "df": {"entity_id": [id], "w": [writer], "event_timestamp": [AT]}})
    };
    let pushes = Arc::new(Mutex::new(Pushes::default()));
    // B pushes once it serves the table.
    wait_for(Duration::from_secs(10), "B accepts a push", || async {
        let (status, _, body) = post(b, "/push", &push(1, "b")).await?;
        match status {
            200 => Ok(Some(())),
            _ => Err(format!("{status}: {body}").into()),
        }
    })
    .await?;
    if let Ok(mut p) = pushes.lock() {
        p.acknowledged.insert(1);
        p.attempted.insert(1);
    }

    // Three tasks per replica, 16 pushes each with a compaction every fifth: ~50 pushes and
    // ~10 compactions per replica, all racing on one table's log.
    let mut tasks = Vec::new();
    for (replica, node) in [a, b].into_iter().enumerate() {
        for task in 0..3 {
            let (client, base) = (node.client.clone(), node.base.clone());
            let pushes = Arc::clone(&pushes);
            let writer = if replica == 0 { "a" } else { "b" };
            let bodies: Vec<(i64, Value)> = (0..16)
                .map(|k| {
                    let id = 1000 * (replica as i64 + 1) + 100 * task + k;
                    (id, push(id, writer))
                })
                .collect();
            tasks.push(tokio::spawn(async move {
                for (k, (id, body)) in bodies.into_iter().enumerate() {
                    if let Ok(mut p) = pushes.lock() {
                        p.attempted.insert(id);
                    }
                    let sent = client
                        .post(format!("{base}/push"))
                        .json(&body)
                        .timeout(Duration::from_secs(30))
                        .send()
                        .await;
                    let Ok(response) = sent else { continue };
                    let status = response.status().as_u16();
                    let answer: Value = response.json().await.unwrap_or(Value::Null);
                    let code = answer["code"].as_str().unwrap_or_default();
                    if let Ok(mut p) = pushes.lock() {
                        if status == 200 {
                            p.acknowledged.insert(id);
                            p.versions[replica].extend(answer["offline"]["version"].as_u64());
                        } else if status == 503 && code.starts_with("storage_") {
                            p.refused.insert(id);
                        }
                    }
                    if k % 5 == 4 {
                        let compact = format!("{base}/features/{GROUP}/pushed/compact");
                        if let Ok(response) = client.post(compact).send().await {
                            let status = response.status().as_u16();
                            if let Ok(mut p) = pushes.lock() {
                                *p.compactions.entry(status).or_default() += 1;
                            }
                        }
                    }
                }
            }));
        }
    }
    for task in tasks {
        task.await?;
    }
    for node in [a, b] {
        let (status, _, body) =
            post(node, &format!("{}/compact", table("pushed")), &json!({})).await?;
        assert!(status == 200, "final compact answered {status}: {body}");
    }

    let (acknowledged, refused, attempted, versions) = match pushes.lock() {
        Ok(p) => {
            println!(
                "pushes: {} acknowledged, {} refused (503), {} attempted; compactions by status: {:?}",
                p.acknowledged.len(),
                p.refused.len(),
                p.attempted.len(),
                p.compactions
            );
            (
                p.acknowledged.clone(),
                p.refused.clone(),
                p.attempted.clone(),
                p.versions.clone(),
            )
        }
        Err(_) => return Err("a push task panicked".into()),
    };
    // No version number went to two pushes (three tasks per replica: acknowledgements come
    // in any order), and the history lists every one of them, each readable.
    let mut all: Vec<u64> = versions.concat();
    all.sort_unstable();
    let pushed = all.len();
    all.dedup();
    assert_eq!(
        all.len(),
        pushed,
        "two pushes acknowledged with one version"
    );
    let history = check_bucket_history(&bucket, "pushed", &all)?;
    assert!(history.len() > all.len(), "the seed's create is listed too");
    assert!(
        acknowledged.len() * 10 >= attempted.len() * 9,
        "fewer than 90% of the pushes were acknowledged: {} of {}\n{}",
        acknowledged.len(),
        attempted.len(),
        replicas.logs()
    );
    // Both replicas converge on one content holding every acknowledged row.
    let ((ids, version), delay) =
        wait_for(CONVERGE, "A and B agree on the pushed rows", || async {
            let (Some((va, ra)), Some((vb, rb))) =
                (read_all(a, "pushed").await?, read_all(b, "pushed").await?)
            else {
                return Ok(None);
            };
            let ids = |rows: &[Value]| -> Vec<i64> {
                rows.iter()
                    .filter_map(|r| r["entity_id"].as_i64())
                    .collect()
            };
            let (ia, ib) = (ids(&ra), ids(&rb));
            let mut sa = ia.clone();
            sa.sort_unstable();
            let mut sb = ib.clone();
            sb.sort_unstable();
            let complete = acknowledged.iter().all(|id| sa.binary_search(id).is_ok());
            Ok((va == vb && sa == sb && complete).then_some((sa, va)))
        })
        .await?;
    println!(
        "converged on version {version} with {} rows after {delay:?}",
        ids.len()
    );
    let unique: BTreeSet<i64> = ids.iter().copied().collect();
    assert_eq!(
        unique.len(),
        ids.len(),
        "a pushed row appears twice: {ids:?}"
    );
    assert!(unique.contains(&0), "the seed row is gone");
    let unexpected: Vec<&i64> = unique
        .iter()
        .filter(|id| **id != 0 && !attempted.contains(id))
        .collect();
    assert!(unexpected.is_empty(), "rows nobody pushed: {unexpected:?}");
    let half_written: Vec<&i64> = unique.intersection(&refused).collect();
    assert!(
        half_written.is_empty(),
        "pushes answered 503 are in the table: {half_written:?}"
    );
    Ok(())
}

#[tokio::test]
async fn concurrent_replaces_on_two_replicas_publish_each_version_once_and_reads_see_whole_versions()
-> TestResult {
    let Some(bucket) = s3_bucket() else {
        return Ok(());
    };
    let replicas = Replicas::start(&bucket.config, &bucket.env(), 2)?;
    let (a, b) = (replicas.node(0)?, replicas.node(1)?);
    // Every write has its own size, so a read with the rows of one write but the count of
    // another is caught too.
    let size = |w: &str| 3 + w.bytes().map(usize::from).sum::<usize>() % 7;
    let (status, body) = save(a, "replaced", "a0", size("a0")).await?;
    assert_eq!(status, 201, "{body}\n{}", replicas.logs());
    wait_for(Duration::from_secs(10), "B serves the table", || async {
        Ok(read_all(b, "replaced").await?.map(|_| ()))
    })
    .await?;

    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for (name, node) in [("a", a), ("b", b)] {
        let (client, base) = (node.client.clone(), node.base.clone());
        writers.push(tokio::spawn(async move {
            let mut acks: Vec<(u64, String)> = Vec::new();
            for k in 1..=8 {
                let w = format!("{name}{k}");
                let response = client
                    .post(format!("{base}/features/{GROUP}/replaced"))
                    .json(&write_rows(&w, size(&w)))
                    .timeout(Duration::from_secs(30))
                    .send()
                    .await;
                let Ok(response) = response else { continue };
                let ok = response.status().is_success();
                let answer: Value = response.json().await.unwrap_or(Value::Null);
                if ok && let Some(version) = answer["version"].as_u64() {
                    acks.push((version, w));
                }
            }
            acks
        }));
    }
    let mut readers = Vec::new();
    for node in [a, b] {
        let (client, base) = (node.client.clone(), node.base.clone());
        let done = Arc::clone(&done);
        readers.push(tokio::spawn(async move {
            // (version, write, rows of a whole read, total_rows) of each read, and what was
            // wrong with each read that failed or did not hold one write.
            let mut seen: Vec<(u64, String, Option<usize>, u64)> = Vec::new();
            let mut torn: Vec<String> = Vec::new();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                for (query, whole) in [("limit=100", true), ("limit=2&offset=1", false)] {
                    let url = format!("{base}/features/{GROUP}/replaced?{query}");
                    let Ok(response) = client.get(url).send().await else {
                        continue;
                    };
                    let status = response.status().as_u16();
                    let page: Value = response.json().await.unwrap_or(Value::Null);
                    if status != 200 {
                        torn.push(format!("{query} answered {status}: {page}"));
                        continue;
                    }
                    let rows = page["data"].as_array().cloned().unwrap_or_default();
                    let version = page["metadata"]["version"].as_u64().unwrap_or(0);
                    let total = page["metadata"]["total_rows"].as_u64().unwrap_or(0);
                    match single_write(&rows) {
                        Ok(w) => seen.push((version, w, whole.then_some(rows.len()), total)),
                        Err(e) => torn.push(format!("{query} v{version}: {e}")),
                    }
                }
            }
            (seen, torn)
        }));
    }
    let mut acks: Vec<(u64, String)> = Vec::new();
    for writer in writers {
        let mine = writer.await?;
        // One replica's acknowledged versions rise strictly, in the order it acknowledged them.
        assert!(
            mine.windows(2).all(|p| p[0].0 < p[1].0),
            "versions acknowledged out of order: {mine:?}"
        );
        acks.extend(mine);
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut reads = Vec::new();
    for reader in readers {
        let (seen, torn) = reader.await?;
        assert!(torn.is_empty(), "failed or torn reads: {torn:?}");
        reads.extend(seen);
    }
    println!(
        "{} replaces acknowledged, {} reads checked",
        acks.len(),
        reads.len()
    );
    assert!(
        acks.len() >= 12,
        "only {} of 16 replaces acknowledged: {acks:?}\n{}",
        acks.len(),
        replicas.logs()
    );

    // No version published twice: each names one write, in the acks and in every read.
    let mut write_of: BTreeMap<u64, String> = BTreeMap::new();
    write_of.insert(1, "a0".into());
    for (version, w) in &acks {
        if let Some(other) = write_of.insert(*version, w.clone()) {
            panic!("version {version} acknowledged for both {other} and {w}");
        }
    }
    for (version, w, rows, total) in &reads {
        if let Some(expected) = write_of.get(version) {
            assert_eq!(
                expected, w,
                "a read of version {version} shows write {w}, not {expected}"
            );
        }
        assert_eq!(
            *total as usize,
            size(w),
            "version {version} of write {w} reports {total} rows"
        );
        if let Some(rows) = rows {
            assert_eq!(*rows, size(w), "a whole read of {w} returned {rows} rows");
        }
    }
    // The history lists every acknowledged replace, once, readable with its rows.
    let acked: Vec<u64> = write_of.keys().copied().collect();
    let history = check_bucket_history(&bucket, "replaced", &acked)?;
    for record in &history {
        if let Some(w) = write_of.get(&record.version) {
            assert_eq!(
                record.rows as usize,
                size(w),
                "version {} of {w}",
                record.version
            );
        }
    }
    // Last writer wins: both replicas end on the highest acknowledged version.
    let (last_version, last_write) = acks.iter().max().cloned().ok_or("no acks")?;
    for node in [a, b] {
        wait_for(CONVERGE, "the replicas end on the last replace", || async {
            Ok(read_all(node, "replaced").await?.filter(|(v, rows)| {
                *v == last_version
                    && rows.len() == size(&last_write)
                    && single_write(rows).ok().as_deref() == Some(last_write.as_str())
            }))
        })
        .await?;
    }
    Ok(())
}

#[tokio::test]
async fn a_replica_killed_mid_write_leaves_the_other_serving_every_table_old_or_new() -> TestResult
{
    let Some(bucket) = s3_bucket() else {
        return Ok(());
    };
    let mut replicas = Replicas::start(&bucket.config, &bucket.env(), 2)?;
    let names = ["k0", "k1", "k2", "k3"];
    // The versions acknowledged, per table: each must stay listed and readable.
    let mut versions: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for name in names {
        let (status, body) = save(replicas.node(0)?, name, "old", 5).await?;
        assert_eq!(status, 201, "{body}\n{}", replicas.logs());
        versions
            .entry(name)
            .or_default()
            .extend(body["version"].as_u64());
    }
    // A rewrites every table (and pushes to one) in a loop; it is killed while doing so.
    let (client, base) = {
        let a = replicas.node(0)?;
        (a.client.clone(), a.base.clone())
    };
    let writer = tokio::spawn(async move {
        // The last round A acknowledged, and the versions, per table.
        let mut acked: BTreeMap<&str, u64> = BTreeMap::new();
        let mut versions: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
        for round in 0..1000 {
            for name in names {
                let body = write_rows(&format!("new{round}"), 7);
                let url = format!("{base}/features/{GROUP}/{name}");
                match client.post(url).json(&body).send().await {
                    Ok(response) if response.status().is_success() => {
                        acked.insert(name, round);
                        // The answer may be cut by the kill: the round still counts.
                        if let Ok(answer) = response.json::<Value>().await {
                            versions
                                .entry(name)
                                .or_default()
                                .extend(answer["version"].as_u64());
                        }
                    }
                    Ok(_) => {}
                    Err(_) => return (round, acked, versions),
                }
            }
        }
        (1000, acked, versions)
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    replicas.kill(0)?;
    let (rounds, acked, acked_versions) = writer.await?;
    println!("A was killed during round {rounds} of rewrites");
    for (name, mine) in acked_versions {
        versions.entry(name).or_default().extend(mine);
    }

    let b = replicas.node(1)?;
    for name in names {
        // Old (5 rows of `old`) or new (7 rows of one round), never a mix or a missing table;
        // and once B has caught up, at least the last round A acknowledged.
        let floor = acked.get(name).copied();
        let ((version, rows), _) =
            wait_for(CONVERGE, "B serves A's last acknowledged write", || async {
                let Some((version, rows)) = read_all(b, name).await? else {
                    return Ok(None);
                };
                let round = single_write(&rows)?
                    .strip_prefix("new")
                    .and_then(|r| r.parse::<u64>().ok());
                let caught_up = match (floor, round) {
                    (None, _) => true,
                    (Some(floor), Some(round)) => round >= floor,
                    (Some(_), None) => false,
                };
                Ok(caught_up.then_some((version, rows)))
            })
            .await?;
        let w = single_write(&rows)?;
        let expected = if w == "old" { 5 } else { 7 };
        assert_eq!(
            rows.len(),
            expected,
            "{name} v{version} holds {} rows of {w}",
            rows.len()
        );
    }
    // After the kill, each table's history lists every version A acknowledged, in order,
    // each readable: what A left half done is not a version.
    for name in names {
        check_bucket_history(
            &bucket,
            name,
            versions.get(name).map_or(&[][..], |v| &v[..]),
        )?;
    }
    // B still writes: whatever A left half done does not block the table.
    let (status, body) = save(b, "k0", "after", 3).await?;
    assert_eq!(
        status,
        200,
        "B's write after the kill answered {status}: {body}\n{}",
        replicas.logs()
    );
    let (status, _, health) = get(b, "/health").await?;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["table_count"], names.len(), "{health}");
    // A restarted (empty caches) serves what B serves: nothing A left behind is trusted.
    replicas.restart(0)?;
    let (a, b) = (replicas.node(0)?, replicas.node(1)?);
    for name in names {
        wait_for(CONVERGE, "restarted A agrees with B", || async {
            let (on_a, on_b) = (read_all(a, name).await?, read_all(b, name).await?);
            Ok((on_a.is_some() && on_a == on_b).then_some(()))
        })
        .await?;
    }
    Ok(())
}
