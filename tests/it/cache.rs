//! The read-path caches as a user sees them: hits and misses per tier in `/cache/stats`, TTL,
//! LRU and byte bounds, promotion from disk to memory, read-your-writes, external changes
//! picked up by the watcher, a damaged or locked disk tier, the clearing routes, and the
//! `/performance` and `/metrics` reports.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, Int64Array};
use arrow::datatypes::{Field, Schema};
use arrow::record_batch::RecordBatch;
use featurestore::cache::ManualClock;
use featurestore::store::PageRequest;
use serde_json::{Value, json};

use crate::common::{TestResult, TestServer, assert_problem, parquet_bytes, replace_externally};

/// How often the watcher tests look again.
const POLL_EVERY: Duration = Duration::from_millis(20);
/// How soon the watcher must have noticed an external change.
const WITHIN: Duration = Duration::from_secs(1);

/// Calls `probe` every 20 ms until it returns `Some`; fails if that takes over a second.
async fn within_a_second<T>(
    what: &str,
    mut probe: impl AsyncFnMut() -> TestResult<Option<T>>,
) -> TestResult<T> {
    let deadline = Instant::now() + WITHIN;
    loop {
        if let Some(found) = probe().await? {
            return Ok(found);
        }
        if Instant::now() >= deadline {
            return Err(format!("{what}: not seen within {WITHIN:?}").into());
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// One tier's lookup counters and size, as `/cache/stats` reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counts {
    hits: u64,
    misses: u64,
    items: u64,
}

/// Both tiers' statistics, checked to be a 200.
async fn cache_stats(server: &TestServer) -> TestResult<Value> {
    let (status, body) = server.get("/cache/stats").await?;
    if status != 200 {
        return Err(format!("/cache/stats answered {status}: {body}").into());
    }
    Ok(body)
}

/// A [`Counts`] from hits, misses and items, in that order.
const fn hits_misses_items(hits: u64, misses: u64, items: u64) -> Counts {
    Counts {
        hits,
        misses,
        items,
    }
}

fn counts(stats: &Value, tier: &str) -> TestResult<Counts> {
    let field = |name: &str| {
        stats[tier][name]
            .as_u64()
            .ok_or_else(|| format!("{tier}.{name} is not a count in {stats}"))
    };
    Ok(Counts {
        hits: field("hits")?,
        misses: field("misses")?,
        items: field("items")?,
    })
}

/// Memory and disk counters in one call.
async fn tiers(server: &TestServer) -> TestResult<(Counts, Counts)> {
    let stats = cache_stats(server).await?;
    Ok((counts(&stats, "memory")?, counts(&stats, "disk")?))
}

/// Every cacheable read asks memory once, and every memory miss asks disk once.
fn assert_lookups_add_up(memory: Counts, disk: Counts, reads: u64) {
    assert_eq!(memory.hits + memory.misses, reads, "memory lookups");
    assert_eq!(disk.hits + disk.misses, memory.misses, "disk lookups");
}

/// GETs a page and checks it is a 200; returns the body.
async fn page(server: &TestServer, path: &str) -> TestResult<Value> {
    let (status, body) = server.get(path).await?;
    if status != 200 {
        return Err(format!("GET {path} answered {status}: {body}").into());
    }
    Ok(body)
}

/// GET `path`; returns status and the raw body, for checks on key order.
async fn get_text(server: &TestServer, path: &str) -> TestResult<(u16, String)> {
    let response = server.client.get(server.url(path)).send().await?;
    Ok((response.status().as_u16(), response.text().await?))
}

/// Records `{"entity_id": i, "v": value}` for each id.
fn rows(ids: impl IntoIterator<Item = i64>, value: i64) -> Value {
    let records: Vec<Value> = ids
        .into_iter()
        .map(|i| json!({"entity_id": i, "v": value}))
        .collect();
    Value::Array(records)
}

/// An Arrow batch of int64 columns, as another tool would write.
fn int_batch(columns: &[(&str, Vec<i64>)]) -> TestResult<RecordBatch> {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(name, _)| Field::new(*name, arrow::datatypes::DataType::Int64, false))
        .collect();
    let arrays: Vec<ArrayRef> = columns
        .iter()
        .map(|(_, values)| Arc::new(Int64Array::from(values.clone())) as ArrayRef)
        .collect();
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?)
}

/// Stops `server`, lets `offline` change its data root as other tools would while it is down,
/// and starts another server on it. sled 0.34 sometimes cannot take its lock again right
/// after the previous handle dropped, which turns the disk tier off; such a start is retried
/// after a short pause (the pause is not a timing assertion).
async fn restart(
    server: TestServer,
    offline: impl FnOnce(&Path) -> TestResult,
) -> TestResult<TestServer> {
    let mut data = server.stop();
    offline(data.path())?;
    for _ in 0..20 {
        let server = TestServer::start_on(data, |_| {})?;
        let (status, health) = server.get("/health").await?;
        assert_eq!(status, 200, "body: {health}");
        if health["disk_cache_enabled"] == true {
            return Ok(server);
        }
        data = server.stop();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err("the disk cache tier stayed off after 20 restarts".into())
}

#[tokio::test]
async fn a_repeated_page_is_a_memory_hit_and_lookups_add_up() -> TestResult {
    let server = TestServer::start()?;
    let records = rows([1, 2], 7);
    server
        .save("user", "profile", json!({"records": records}))
        .await?;
    let (memory, disk) = tiers(&server).await?;
    assert_eq!(memory, hits_misses_items(0, 0, 0));
    assert_eq!(disk, hits_misses_items(0, 0, 0));

    for _ in 0..3 {
        let body = page(&server, "/features/user/profile").await?;
        assert_eq!(body["data"], records);
        assert_eq!(body["metadata"]["version"], 1);
    }
    let stats = cache_stats(&server).await?;
    let (memory, disk) = (counts(&stats, "memory")?, counts(&stats, "disk")?);
    assert_eq!(memory, hits_misses_items(2, 1, 1), "{stats}");
    assert_eq!(disk, hits_misses_items(0, 1, 1), "{stats}");
    assert_eq!(stats["memory"]["hit_rate"], 0.667, "{stats}");
    assert_eq!(stats["memory"]["enabled"], true, "{stats}");
    assert_eq!(stats["disk"]["enabled"], true, "{stats}");
    assert_lookups_add_up(memory, disk, 3);

    // A read that fails is not a cache lookup.
    let (status, body) = server.get("/features/user/nope").await?;
    assert_problem(status, &body, 404, "table_not_found");
    let (memory, disk) = tiers(&server).await?;
    assert_lookups_add_up(memory, disk, 3);
    Ok(())
}

#[tokio::test]
async fn a_cached_page_keeps_the_column_order_asked() -> TestResult {
    let server = TestServer::start()?;
    server
        .save(
            "misc",
            "ordered",
            json!({"records": [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]}),
        )
        .await?;
    // Twice each, interleaved: the second round is served from memory.
    for _ in 0..2 {
        let (status, text) = get_text(&server, "/features/misc/ordered?columns=b,a").await?;
        assert_eq!(status, 200, "body: {text}");
        // serde_json's map sorts keys, so key order is checked on the raw body.
        assert!(
            text.contains(r#""data":[{"b":"x","a":1},{"b":"y","a":2}]"#),
            "body: {text}"
        );
        assert!(text.contains(r#""columns":["b","a"]"#), "body: {text}");
        let (status, text) = get_text(&server, "/features/misc/ordered?columns=a,b").await?;
        assert_eq!(status, 200, "body: {text}");
        assert!(
            text.contains(r#""data":[{"a":1,"b":"x"},{"a":2,"b":"y"}]"#),
            "body: {text}"
        );
        assert!(text.contains(r#""columns":["a","b"]"#), "body: {text}");
    }
    let (memory, disk) = tiers(&server).await?;
    assert_eq!(memory, hits_misses_items(2, 2, 2));
    assert_lookups_add_up(memory, disk, 4);
    Ok(())
}

#[tokio::test]
async fn a_memory_entry_expires_after_its_ttl_and_is_served_from_disk() -> TestResult {
    let clock = Arc::new(ManualClock::default());
    let server = TestServer::start_with_clock(clock.clone(), |c| c.cache.memory_ttl_secs = 60)?;
    let records = rows([1, 2], 3);
    server
        .save("user", "ttl", json!({"records": records}))
        .await?;

    page(&server, "/features/user/ttl").await?;
    page(&server, "/features/user/ttl").await?;
    let (memory, disk) = tiers(&server).await?;
    assert_eq!(memory, hits_misses_items(1, 1, 1));
    assert_eq!(disk, hits_misses_items(0, 1, 1));

    clock.advance(Duration::from_secs(59));
    page(&server, "/features/user/ttl").await?;
    let stats = cache_stats(&server).await?;
    assert_eq!(
        stats["memory"]["hits"], 2,
        "59 s is within the TTL: {stats}"
    );
    assert_eq!(stats["memory"]["average_age_seconds"], 59.0, "{stats}");

    clock.advance(Duration::from_secs(1));
    let body = page(&server, "/features/user/ttl").await?;
    assert_eq!(body["data"], records);
    let stats = cache_stats(&server).await?;
    assert_eq!(stats["memory"]["expired_items"], 1, "{stats}");
    assert_eq!(
        counts(&stats, "memory")?,
        hits_misses_items(2, 2, 1),
        "the expired entry is replaced by the disk tier's: {stats}"
    );
    assert_eq!(
        counts(&stats, "disk")?,
        hits_misses_items(1, 1, 1),
        "{stats}"
    );
    assert_eq!(stats["memory"]["average_age_seconds"], 0.0, "{stats}");

    // The promoted entry lives a fresh TTL.
    page(&server, "/features/user/ttl").await?;
    let (memory, disk) = tiers(&server).await?;
    assert_eq!(memory.hits, 3);
    assert_lookups_add_up(memory, disk, 5);
    Ok(())
}

#[tokio::test]
async fn a_page_cached_on_disk_survives_a_restart_and_is_promoted_to_memory() -> TestResult {
    let server = TestServer::start()?;
    let records = rows([1, 2, 3], 9);
    server
        .save("user", "kept", json!({"records": records}))
        .await?;
    page(&server, "/features/user/kept").await?;
    assert_eq!(tiers(&server).await?.1.items, 1);

    let server = restart(server, |_| Ok(())).await?;
    let (memory, disk) = tiers(&server).await?;
    assert_eq!(memory, hits_misses_items(0, 0, 0));
    assert_eq!(disk, hits_misses_items(0, 0, 1));

    let body = page(&server, "/features/user/kept").await?;
    assert_eq!(body["data"], records);
    assert_eq!(body["metadata"]["version"], 1);
    let (memory, disk) = tiers(&server).await?;
    assert_eq!(memory, hits_misses_items(0, 1, 1));
    assert_eq!(disk, hits_misses_items(1, 0, 1));

    let body = page(&server, "/features/user/kept").await?;
    assert_eq!(body["data"], records);
    let (memory, disk) = tiers(&server).await?;
    assert_eq!(memory, hits_misses_items(1, 1, 1));
    assert_eq!(disk, hits_misses_items(1, 0, 1));
    Ok(())
}

#[tokio::test]
async fn the_least_recently_used_page_is_evicted_first() -> TestResult {
    let server = TestServer::start_with(|c| c.cache.memory_max_entries = 2)?;
    server
        .save("misc", "lru", json!({"records": rows([1, 2, 3], 0)}))
        .await?;
    let (a, b, c) = (
        "/features/misc/lru?limit=1",
        "/features/misc/lru?limit=2",
        "/features/misc/lru?limit=3",
    );
    page(&server, a).await?;
    page(&server, b).await?;
    page(&server, a).await?; // A is now more recent than B.
    page(&server, c).await?; // Full: B goes.
    let stats = cache_stats(&server).await?;
    assert_eq!(
        counts(&stats, "memory")?,
        hits_misses_items(1, 3, 2),
        "{stats}"
    );
    assert_eq!(stats["memory"]["evictions"], 1, "{stats}");
    assert_eq!(stats["memory"]["max_items"], 2, "{stats}");
    assert_eq!(stats["memory"]["usage_ratio"], 1.0, "{stats}");

    let body = page(&server, b).await?;
    assert_eq!(body["data"], rows([1, 2], 0));
    let (memory, disk) = tiers(&server).await?;
    assert_eq!(memory, hits_misses_items(1, 4, 2));
    assert_eq!(disk.hits, 1, "B came back from the disk tier");

    // Promoting B evicted A, the least recently used; C is still in memory.
    page(&server, c).await?;
    let (memory, _) = tiers(&server).await?;
    assert_eq!(memory.hits, 2);
    page(&server, a).await?;
    let stats = cache_stats(&server).await?;
    assert_eq!(counts(&stats, "memory")?.misses, 5, "{stats}");
    assert!(stats["memory"]["evictions"].as_u64() >= Some(2), "{stats}");
    let (memory, disk) = tiers(&server).await?;
    assert_lookups_add_up(memory, disk, 7);
    Ok(())
}

/// `n` records of `entity_id` = i and a 100-character string unique to the row.
fn wide_rows(n: i64) -> Value {
    let records: Vec<Value> = (0..n)
        .map(|i| json!({"entity_id": i, "text": format!("{i:0>100}")}))
        .collect();
    Value::Array(records)
}

#[tokio::test]
async fn the_memory_tier_stays_within_memory_max_mb() -> TestResult {
    const MIB: u64 = 1024 * 1024;
    let server = TestServer::start_with(|c| c.cache.memory_max_mb = 1)?;
    server
        .save("misc", "wide", json!({"records": wide_rows(10_000)}))
        .await?;
    // Each half of the table takes about 0.7 MiB of Arrow memory: one fits, two do not.
    let (first, second) = (
        "/features/misc/wide?limit=5000",
        "/features/misc/wide?offset=5000&limit=5000",
    );
    page(&server, first).await?;
    let stats = cache_stats(&server).await?;
    let one = stats["memory"]["bytes"].as_u64().ok_or("bytes")?;
    assert!(
        (MIB / 2..=MIB).contains(&one),
        "a half page holds {one} bytes: {stats}"
    );
    assert_eq!(stats["memory"]["max_bytes"], MIB, "{stats}");

    let body = page(&server, second).await?;
    assert_eq!(body["data"][0]["entity_id"], 5000);
    let stats = cache_stats(&server).await?;
    assert_eq!(counts(&stats, "memory")?.items, 1, "{stats}");
    assert_eq!(stats["memory"]["evictions"], 1, "{stats}");
    assert!(
        stats["memory"]["bytes"].as_u64() <= Some(MIB),
        "over the bound: {stats}"
    );

    // The first half was evicted from memory, and the disk tier still has it.
    let body = page(&server, first).await?;
    assert_eq!(body["data"][4999]["entity_id"], 4999);
    let (memory, disk) = tiers(&server).await?;
    assert_eq!((memory.hits, memory.misses), (0, 3));
    assert_eq!((disk.hits, disk.misses), (1, 2));
    Ok(())
}

#[tokio::test]
async fn a_zero_memory_bound_disables_the_memory_tier_and_reads_still_work() -> TestResult {
    for bound in ["memory_max_mb", "memory_max_entries"] {
        let server = TestServer::start_with(|c| match bound {
            "memory_max_mb" => c.cache.memory_max_mb = 0,
            _ => c.cache.memory_max_entries = 0,
        })?;
        let records = rows([1, 2], 1);
        server
            .save("user", "plain", json!({"records": records}))
            .await?;
        for _ in 0..2 {
            let body = page(&server, "/features/user/plain").await?;
            assert_eq!(body["data"], records, "{bound} = 0");
        }
        let stats = cache_stats(&server).await?;
        assert_eq!(stats["memory"]["enabled"], false, "{bound} = 0: {stats}");
        assert!(
            stats["memory"]["disabled_reason"]
                .as_str()
                .is_some_and(|r| r.contains(bound)),
            "{bound} = 0: {stats}"
        );
        assert_eq!(
            counts(&stats, "memory")?,
            hits_misses_items(0, 2, 0),
            "{bound} = 0: {stats}"
        );
        // Every read reaches the disk tier, which answers the second.
        assert_eq!(
            counts(&stats, "disk")?,
            hits_misses_items(1, 1, 1),
            "{bound} = 0: {stats}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_write_is_seen_by_the_next_read_though_the_old_page_was_cached() -> TestResult {
    let server = TestServer::start()?;
    server
        .save("user", "fresh", json!({"records": rows([1, 2], 1)}))
        .await?;
    for _ in 0..2 {
        let body = page(&server, "/features/user/fresh").await?;
        assert_eq!(body["data"], rows([1, 2], 1));
    }
    assert_eq!(tiers(&server).await?.0.hits, 1, "the old page was cached");

    let saved = server
        .save("user", "fresh", json!({"records": rows([1, 2, 3], 2)}))
        .await?;
    assert_eq!(saved["version"], 2);
    let body = page(&server, "/features/user/fresh").await?;
    assert_eq!(body["data"], rows([1, 2, 3], 2));
    assert_eq!(body["metadata"]["version"], 2);
    assert_eq!(body["metadata"]["total_rows"], 3);
    // The write dropped the old entries from both tiers before it answered.
    let (memory, disk) = tiers(&server).await?;
    assert_eq!((memory.items, disk.items), (1, 1));

    // Deleting is a write too.
    let (status, body) = server.delete("/features/user/fresh").await?;
    assert_eq!(status, 200, "body: {body}");
    let (status, body) = server.get("/features/user/fresh").await?;
    assert_problem(status, &body, 404, "table_not_found");
    let (memory, disk) = tiers(&server).await?;
    assert_eq!((memory.items, disk.items), (0, 0));
    Ok(())
}

#[tokio::test]
async fn a_repeated_batch_lookup_is_a_memory_hit_and_a_write_is_seen_at_once() -> TestResult {
    let server = TestServer::start()?;
    server
        .save("user", "scores", json!({"records": rows([1, 2, 3], 1)}))
        .await?;
    let query = json!({"feature_names": ["scores"], "entity_ids": [3, 1]});
    for _ in 0..2 {
        let (status, body) = server.post("/features/batch", &query).await?;
        assert_eq!(status, 200, "body: {body}");
        assert_eq!(
            body["features"]["scores"],
            json!([{"entity_id": 1, "v": 1}, {"entity_id": 3, "v": 1}])
        );
    }
    let (memory, disk) = tiers(&server).await?;
    assert_eq!(memory, hits_misses_items(1, 1, 1));
    assert_lookups_add_up(memory, disk, 2);

    server
        .save("user", "scores", json!({"records": rows([1, 2, 3], 2)}))
        .await?;
    let (status, body) = server.post("/features/batch", &query).await?;
    assert_eq!(status, 200, "body: {body}");
    assert_eq!(
        body["features"]["scores"],
        json!([{"entity_id": 1, "v": 2}, {"entity_id": 3, "v": 2}])
    );
    Ok(())
}

/// Rows of generation `g`: every row carries `g`, and generation `g` is saved as version `g`.
fn generation(g: i64) -> Value {
    json!({"records": rows(0..50, g)})
}

/// Reads `user/churn` until `done` is set (and at least three times), checking each response
/// is one whole version; returns the versions seen, in order. The last read started after the
/// writer had finished.
async fn read_whole_versions(server: &TestServer, done: &AtomicBool) -> TestResult<Vec<u64>> {
    let mut seen = Vec::new();
    loop {
        let finished = done.load(Ordering::SeqCst);
        let body = page(server, "/features/user/churn?limit=100").await?;
        let version = body["metadata"]["version"].as_u64().ok_or("version")?;
        let data = body["data"].as_array().ok_or("data")?;
        if data.len() != 50 || data.iter().any(|r| r["v"] != version) {
            return Err(format!("version {version} mixed generations: {body}").into());
        }
        seen.push(version);
        if finished && seen.len() >= 3 {
            return Ok(seen);
        }
    }
}

#[tokio::test]
async fn concurrent_readers_see_whole_versions_that_never_go_back() -> TestResult {
    let server = TestServer::start_with(|c| c.server.workers = 2)?;
    server.save("user", "churn", generation(1)).await?;
    let done = AtomicBool::new(false);
    let writer = async {
        let result = async {
            for g in 2..=11 {
                let (status, body) = server.post("/features/user/churn", &generation(g)).await?;
                if status != 200 || body["version"] != g {
                    return Err(format!("write {g} answered {status}: {body}").into());
                }
            }
            TestResult::Ok(())
        }
        .await;
        done.store(true, Ordering::SeqCst);
        result
    };
    let (written, r1, r2, r3, r4) = tokio::join!(
        writer,
        read_whole_versions(&server, &done),
        read_whole_versions(&server, &done),
        read_whole_versions(&server, &done),
        read_whole_versions(&server, &done),
    );
    written?;
    let seen = [r1?, r2?, r3?, r4?];
    let reads = seen.iter().map(|s| s.len() as u64).sum::<u64>();
    for seen in seen {
        assert!(
            seen.windows(2).all(|w| w[0] <= w[1]),
            "versions went back: {seen:?}"
        );
        assert_eq!(
            seen.last(),
            Some(&11),
            "a read after the last write: {seen:?}"
        );
    }
    let body = page(&server, "/features/user/churn?limit=100").await?;
    assert_eq!(body["metadata"]["version"], 11);
    assert_eq!(body["data"], rows(0..50, 11));
    let (memory, disk) = tiers(&server).await?;
    assert!(
        memory.hits > 0,
        "no read was served from memory: {memory:?}"
    );
    assert_lookups_add_up(memory, disk, reads + 1);
    Ok(())
}

#[tokio::test]
async fn a_table_replaced_by_another_tool_is_served_within_a_second() -> TestResult {
    let server = TestServer::start()?;
    server
        .save("misc", "shared", json!({"records": rows([1, 2], 1)}))
        .await?;
    // Cached in memory, so only the watcher can make the server look again.
    for _ in 0..2 {
        let body = page(&server, "/features/misc/shared").await?;
        assert_eq!(body["data"], rows([1, 2], 1));
    }
    assert_eq!(tiers(&server).await?.0.hits, 1);

    let replacement = int_batch(&[("entity_id", vec![3, 4, 5]), ("v", vec![30, 40, 50])])?;
    replace_externally(
        &server.root().join("features/misc/shared.parquet"),
        &replacement,
    )?;
    let expected = json!([
        {"entity_id": 3, "v": 30}, {"entity_id": 4, "v": 40}, {"entity_id": 5, "v": 50}
    ]);
    let body = within_a_second("the replaced rows", async || {
        let body = page(&server, "/features/misc/shared").await?;
        Ok((body["data"] == expected).then_some(body))
    })
    .await?;
    assert_eq!(body["metadata"]["total_rows"], 3);
    let version = body["metadata"]["version"].as_u64().ok_or("version")?;
    assert!(
        version > 1,
        "new rows served under the old version {version}"
    );
    Ok(())
}

#[tokio::test]
async fn a_table_added_or_removed_by_another_tool_is_seen_within_a_second() -> TestResult {
    let server = TestServer::start()?;
    server
        .save("user", "ours", json!({"records": rows([1], 1)}))
        .await?;
    let theirs = server.root().join("features/content/theirs.parquet");
    replace_externally(&theirs, &int_batch(&[("entity_id", vec![1, 2])])?)?;
    // `/health` counts the catalog without rescanning the tree (a listing would rescan it), so
    // this waits for the watcher.
    within_a_second("the new table in the catalog", async || {
        let (status, health) = server.get("/health").await?;
        assert_eq!(status, 200, "body: {health}");
        Ok((health["table_count"] == 2).then_some(()))
    })
    .await?;
    let (status, listing) = server.get("/features").await?;
    assert_eq!(status, 200, "body: {listing}");
    assert_eq!(listing["table_count"], 2, "{listing}");
    assert_eq!(
        listing["groups"]["content"][0]["name"], "theirs",
        "{listing}"
    );

    // Cached in memory, then removed by the other tool.
    for _ in 0..2 {
        let body = page(&server, "/features/content/theirs").await?;
        assert_eq!(body["data"], json!([{"entity_id": 1}, {"entity_id": 2}]));
    }
    std::fs::remove_file(&theirs)?;
    let body = within_a_second("the removed table gone", async || {
        let (status, body) = server.get("/features/content/theirs").await?;
        Ok((status == 404).then_some(body))
    })
    .await?;
    assert_problem(404, &body, 404, "table_not_found");
    let (status, listing) = server.get("/features").await?;
    assert_eq!(status, 200, "body: {listing}");
    assert_eq!(listing["table_count"], 1, "{listing}");
    Ok(())
}

#[tokio::test]
async fn a_half_written_file_is_never_served_and_the_finished_one_is() -> TestResult {
    let server = TestServer::start()?;
    server
        .save("user", "healthy", json!({"records": rows([1], 1)}))
        .await?;
    let ids: Vec<i64> = (0..200).collect();
    let whole = parquet_bytes(&int_batch(&[("entity_id", ids)])?)?;
    let target = server.root().join("features/misc/partial.parquet");
    std::fs::write(&target, &whole[..whole.len() / 2])?;

    // Past the debounce, the half file is still not a table.
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(300) {
        let (status, listing) = server.get("/features").await?;
        assert_eq!(status, 200, "body: {listing}");
        assert_eq!(listing["table_count"], 1, "{listing}");
        tokio::time::sleep(POLL_EVERY).await;
    }
    let (status, health) = server.get("/health").await?;
    assert_eq!(status, 200, "body: {health}");
    assert_eq!(health["table_count"], 1, "{health}");
    let (status, body) = server.get("/features/misc/partial").await?;
    assert!(
        status == 404 || status == 500,
        "a half-written file answered {status}: {body}"
    );
    assert_eq!(body["status"], status, "{body}");
    let body = page(&server, "/features/user/healthy").await?;
    assert_eq!(body["data"], rows([1], 1));

    std::fs::write(&target, &whole)?;
    let body = within_a_second("the finished file", async || {
        let (status, body) = server.get("/features/misc/partial?limit=2").await?;
        match status {
            200 => Ok(Some(body)),
            404 | 500 => Ok(None),
            _ => Err(format!("answered {status}: {body}").into()),
        }
    })
    .await?;
    assert_eq!(body["data"], json!([{"entity_id": 0}, {"entity_id": 1}]));
    assert_eq!(body["metadata"]["total_rows"], 200);
    Ok(())
}

#[tokio::test]
async fn a_corrupt_disk_entry_is_a_miss_and_is_replaced() -> TestResult {
    // Without a memory tier, every read reaches the disk tier.
    let server = TestServer::start_with(|c| c.cache.memory_max_entries = 0)?;
    let records = rows([1, 2], 5);
    server
        .save("user", "damaged", json!({"records": records}))
        .await?;
    for _ in 0..2 {
        page(&server, "/features/user/damaged?limit=10").await?;
    }
    let (_, disk) = tiers(&server).await?;
    assert_eq!(disk, hits_misses_items(1, 1, 1));

    let request = PageRequest {
        columns: None,
        offset: 0,
        limit: 10,
    };
    let key = server
        .store
        .page_cache_key_for_test(&"damaged".parse()?, &request)
        .ok_or("the table is in the catalog")?;
    assert!(
        server.store.cache_for_test().disk().corrupt_for_test(&key),
        "no disk entry under {key:?}"
    );

    let body = page(&server, "/features/user/damaged?limit=10").await?;
    assert_eq!(body["data"], records);
    let (_, disk) = tiers(&server).await?;
    assert_eq!(
        disk,
        hits_misses_items(1, 2, 1),
        "the corrupt entry was a miss, deleted, then stored afresh"
    );
    let body = page(&server, "/features/user/damaged?limit=10").await?;
    assert_eq!(body["data"], records);
    let (memory, disk) = tiers(&server).await?;
    assert_eq!(disk, hits_misses_items(2, 2, 1));
    assert_lookups_add_up(memory, disk, 4);
    Ok(())
}

#[tokio::test]
async fn a_locked_disk_cache_leaves_the_server_up_without_that_tier() -> TestResult {
    let data = tempfile::tempdir()?;
    // Another process (here: this one) holds the disk tier's lock.
    let holder = sled::open(data.path().join("cache"))?;
    let server = TestServer::start_on(data, |_| {})?;

    let (status, health) = server.get("/health").await?;
    assert_eq!(status, 200, "body: {health}");
    assert_eq!(health["status"], "healthy", "{health}");
    assert_eq!(health["disk_cache_enabled"], false, "{health}");
    assert!(
        health["disk_cache_disabled_reason"]
            .as_str()
            .is_some_and(|r| !r.is_empty()),
        "{health}"
    );

    let records = rows([1, 2], 4);
    server
        .save("user", "served", json!({"records": records}))
        .await?;
    for _ in 0..2 {
        let body = page(&server, "/features/user/served").await?;
        assert_eq!(body["data"], records);
    }
    let stats = cache_stats(&server).await?;
    assert_eq!(
        counts(&stats, "memory")?,
        hits_misses_items(1, 1, 1),
        "{stats}"
    );
    assert_eq!(stats["disk"]["enabled"], false, "{stats}");
    assert_eq!(
        stats["disk"]["disabled_reason"], health["disk_cache_disabled_reason"],
        "{stats}"
    );
    assert_eq!(counts(&stats, "disk")?.items, 0, "{stats}");
    drop(holder);
    Ok(())
}

#[tokio::test]
async fn clearing_the_cache_empties_both_tiers_or_one_tables_entries() -> TestResult {
    let server = TestServer::start()?;
    server
        .save("user", "first", json!({"records": rows([1], 1)}))
        .await?;
    server
        .save("user", "second", json!({"records": rows([2], 2)}))
        .await?;
    page(&server, "/features/user/first").await?;
    page(&server, "/features/user/second").await?;
    let (memory, disk) = tiers(&server).await?;
    assert_eq!((memory.items, disk.items), (2, 2));

    let (status, body) = server.delete("/cache/user/first").await?;
    assert_eq!(status, 200, "body: {body}");
    assert_eq!(body["message"], "cache entries of first cleared");
    // One entry in each tier.
    assert_eq!(body["entries_removed"], 2, "{body}");
    let (memory, disk) = tiers(&server).await?;
    assert_eq!((memory.items, disk.items), (1, 1));
    // The other table is still in memory; the cleared one is read from Parquet again.
    page(&server, "/features/user/second").await?;
    let (after, _) = tiers(&server).await?;
    assert_eq!(after.hits, memory.hits + 1);
    let (memory, disk) = tiers(&server).await?;
    let body = page(&server, "/features/user/first").await?;
    assert_eq!(body["data"], rows([1], 1));
    let (memory_after, disk_after) = tiers(&server).await?;
    assert_eq!(memory_after.misses, memory.misses + 1);
    assert_eq!(disk_after.misses, disk.misses + 1);

    let (status, body) = server.delete("/cache").await?;
    assert_eq!(status, 200, "body: {body}");
    // Both pages, each in both tiers: a full clear counts what it removed too.
    assert_eq!(body["entries_removed"], 4, "{body}");
    assert_eq!(body["message"], "cache cleared: 4 entries removed");
    let stats = cache_stats(&server).await?;
    for tier in ["memory", "disk"] {
        assert_eq!(stats[tier]["items"], 0, "{stats}");
        assert_eq!(stats[tier]["bytes"], 0, "{stats}");
    }
    let body = page(&server, "/features/user/second").await?;
    assert_eq!(body["data"], rows([2], 2));

    let (status, body) = server.delete("/cache/user/nope").await?;
    assert_problem(status, &body, 404, "table_not_found");
    let (status, body) = server.delete("/cache/content/first").await?;
    assert_problem(status, &body, 404, "table_not_found");
    let (status, body) = server.delete("/cache/bad.name/x").await?;
    assert_problem(status, &body, 400, "invalid_name");
    Ok(())
}

#[tokio::test]
async fn the_disk_tier_stays_within_disk_max_mb_and_evicts_the_oldest_first() -> TestResult {
    const MIB: u64 = 1024 * 1024;
    // Without a memory tier, every read shows in the disk tier's counters.
    let server = TestServer::start_with(|c| {
        c.cache.memory_max_entries = 0;
        c.cache.disk_max_mb = 1;
    })?;
    server
        .save("misc", "wide", json!({"records": wide_rows(12_000)}))
        .await?;
    // Three thirds of the table, each well under the budget, together over it.
    let thirds = [
        "/features/misc/wide?limit=4000",
        "/features/misc/wide?offset=4000&limit=4000",
        "/features/misc/wide?offset=8000&limit=4000",
    ];
    for path in thirds {
        page(&server, path).await?;
    }
    let stats = cache_stats(&server).await?;
    assert_eq!(stats["disk"]["max_bytes"], MIB, "{stats}");
    let bytes = stats["disk"]["bytes"].as_u64().ok_or("bytes")?;
    assert!(
        0 < bytes && bytes <= MIB * 8 / 10,
        "over 80 % of the budget: {stats}"
    );
    assert!(stats["disk"]["evictions"].as_u64() >= Some(1), "{stats}");

    // The newest third is still on disk, the oldest is not.
    let body = page(&server, thirds[2]).await?;
    assert_eq!(body["data"][0]["entity_id"], 8000);
    assert_eq!(counts(&cache_stats(&server).await?, "disk")?.hits, 1);
    let body = page(&server, thirds[0]).await?;
    assert_eq!(body["data"][0]["entity_id"], 0);
    let (_, disk) = tiers(&server).await?;
    assert_eq!((disk.hits, disk.misses), (1, 4));
    Ok(())
}

#[tokio::test]
async fn a_table_recreated_while_the_server_was_down_is_not_served_from_the_old_disk_entry()
-> TestResult {
    let server = TestServer::start()?;
    server
        .save("user", "reborn", json!({"records": rows([1, 2], 1)}))
        .await?;
    page(&server, "/features/user/reborn").await?;
    assert_eq!(tiers(&server).await?.1.items, 1);

    // While the server is down, the table's files are removed (the table file and its
    // metadata) and another tool writes a new table of the same name.
    let server = restart(server, |root| {
        std::fs::remove_file(root.join("features/user/reborn.parquet"))?;
        std::fs::remove_file(root.join("metadata/user/reborn.json"))?;
        replace_externally(
            &root.join("features/user/reborn.parquet"),
            &int_batch(&[("entity_id", vec![7, 8, 9]), ("v", vec![70, 80, 90])])?,
        )
    })
    .await?;
    let body = page(&server, "/features/user/reborn").await?;
    assert_eq!(
        body["data"],
        json!([{"entity_id": 7, "v": 70}, {"entity_id": 8, "v": 80}, {"entity_id": 9, "v": 90}]),
        "stale rows from the disk tier: {body}"
    );
    assert_eq!(body["metadata"]["total_rows"], 3);
    Ok(())
}

#[tokio::test]
async fn an_external_replace_is_seen_within_a_second_while_another_table_is_written_steadily()
-> TestResult {
    let server = TestServer::start()?;
    server
        .save("misc", "shared", json!({"records": rows([1, 2], 1)}))
        .await?;
    server
        .save("user", "busy", json!({"records": rows([1], 0)}))
        .await?;
    for _ in 0..2 {
        page(&server, "/features/misc/shared").await?;
    }
    let done = AtomicBool::new(false);
    // An ingestion job saving another table through the API, twenty times a second.
    let busy_writer = async {
        let mut n = 0;
        while !done.load(Ordering::SeqCst) {
            n += 1;
            server
                .save("user", "busy", json!({"records": rows([1], n)}))
                .await?;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        TestResult::Ok(())
    };
    let replaced = async {
        replace_externally(
            &server.root().join("features/misc/shared.parquet"),
            &int_batch(&[("entity_id", vec![3]), ("v", vec![30])])?,
        )?;
        let seen = within_a_second("the replaced rows", async || {
            let body = page(&server, "/features/misc/shared").await?;
            Ok((body["data"] == json!([{"entity_id": 3, "v": 30}])).then_some(()))
        })
        .await;
        done.store(true, Ordering::SeqCst);
        seen
    };
    let (written, seen) = tokio::join!(busy_writer, replaced);
    written?;
    seen
}

#[tokio::test]
async fn a_table_file_half_overwritten_in_place_never_serves_the_new_half() -> TestResult {
    let server = TestServer::start()?;
    let ids: Vec<i64> = (0..1000).collect();
    let old = int_batch(&[("a", ids.clone()), ("b", ids.clone())])?;
    let new = int_batch(&[
        ("a", ids.iter().map(|i| i + 100_000).collect()),
        ("b", ids.iter().map(|i| i + 100_000).collect()),
    ])?;
    let target = server.root().join("features/misc/inplace.parquet");
    replace_externally(&target, &old)?;
    let body = page(&server, "/features/misc/inplace?limit=2").await?;
    assert_eq!(body["data"], json!([{"a": 0, "b": 0}, {"a": 1, "b": 1}]));

    // Another tool starts rewriting the file in place and has written half of it.
    let bytes = parquet_bytes(&new)?;
    std::fs::write(&target, &bytes[..bytes.len() / 2])?;

    let (status, body) = server
        .get("/features/misc/inplace?columns=a&limit=2")
        .await?;
    if status == 200 {
        assert_eq!(
            body["data"],
            json!([{"a": 0}, {"a": 1}]),
            "rows of the half-written file were served: {body}"
        );
    } else {
        assert_eq!(body["status"], status, "{body}");
    }
    Ok(())
}

/// The value of the series `series` (name and labels exactly as exposed) in Prometheus text.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn performance_and_metrics_count_requests_errors_cache_and_tables() -> TestResult {
    // A manual clock keeps the memory tier's ages still between the two reports.
    let server = TestServer::start_with_clock(Arc::new(ManualClock::default()), |_| {})?;
    server
        .save("user", "clicks", json!({"records": rows([1, 2, 3], 1)}))
        .await?;
    server
        .save("content", "items", json!({"records": rows([1, 2], 1)}))
        .await?;
    for _ in 0..2 {
        page(&server, "/features/user/clicks").await?;
    }
    for path in ["/features/user/nope", "/features/content/nope"] {
        let (status, body) = server.get(path).await?;
        assert_problem(status, &body, 404, "table_not_found");
    }
    let (status, body) = server.get("/no/such/route").await?;
    assert_eq!(status, 404, "body: {body}");

    let (status, report) = server.get("/performance").await?;
    assert_eq!(status, 200, "body: {report}");
    let requests = &report["performance_metrics"];
    assert_eq!(requests["total_requests"], 7, "{report}");
    assert_eq!(requests["error_count"], 3, "{report}");
    let p50 = requests["latency_p50_ms"].as_f64().ok_or("p50")?;
    let p99 = requests["latency_p99_ms"].as_f64().ok_or("p99")?;
    let mean = requests["latency_mean_ms"].as_f64().ok_or("mean")?;
    assert!(0.0 <= p50 && p50 <= p99, "{report}");
    assert!(mean > 0.0 && mean <= p99, "{report}");
    assert_eq!(
        report["storage_info"]["total_feature_groups"], 2,
        "{report}"
    );
    assert_eq!(report["storage_info"]["tables"], 2, "{report}");
    let stats = cache_stats(&server).await?;
    assert_eq!(report["memory_cache_stats"], stats["memory"]);
    let mut disk = report["disk_cache_stats"].clone();
    let mut expected_disk = stats["disk"].clone();
    // The disk tier's ages follow the wall clock.
    for d in [&mut disk, &mut expected_disk] {
        d["average_age_seconds"] = Value::Null;
    }
    assert_eq!(disk, expected_disk);

    let response = server.client.get(server.url("/metrics")).send().await?;
    assert_eq!(response.status().as_u16(), 200);
    let content_type = crate::common::content_type(&response);
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = response.text().await?;
    let table_route = r#"route="/features/{group}/{name}""#;
    for (series, value) in [
        (
            format!(
                r#"featurestore_http_requests_total{{{table_route},method="GET",status="200"}}"#
            ),
            2.0,
        ),
        (
            format!(
                r#"featurestore_http_requests_total{{{table_route},method="GET",status="404"}}"#
            ),
            2.0,
        ),
        (
            format!(
                r#"featurestore_http_requests_total{{{table_route},method="POST",status="201"}}"#
            ),
            2.0,
        ),
        (
            r#"featurestore_http_requests_total{route="/performance",method="GET",status="200"}"#
                .to_owned(),
            1.0,
        ),
        (
            format!(
                r#"featurestore_http_request_duration_seconds_bucket{{{table_route},method="GET",le="+Inf"}}"#
            ),
            4.0,
        ),
        (
            format!(
                r#"featurestore_http_request_duration_seconds_count{{{table_route},method="GET"}}"#
            ),
            4.0,
        ),
        (
            r#"featurestore_cache_hits_total{tier="memory"}"#.to_owned(),
            1.0,
        ),
        (
            r#"featurestore_cache_misses_total{tier="memory"}"#.to_owned(),
            1.0,
        ),
        (
            r#"featurestore_cache_misses_total{tier="disk"}"#.to_owned(),
            1.0,
        ),
        (r#"featurestore_cache_items{tier="disk"}"#.to_owned(), 1.0),
        (
            r#"featurestore_table_rows{group="user",table="clicks"}"#.to_owned(),
            3.0,
        ),
        (
            r#"featurestore_table_rows{group="content",table="items"}"#.to_owned(),
            2.0,
        ),
    ] {
        assert_eq!(metric(&text, &series), Some(value), "{series} in:\n{text}");
    }
    // Buckets are cumulative and end at the count.
    let buckets: Vec<f64> = text
        .lines()
        .filter(|l| {
            l.starts_with("featurestore_http_request_duration_seconds_bucket{")
                && l.contains(table_route)
                && l.contains(r#"method="GET""#)
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    assert_eq!(buckets.len(), 15, "{text}");
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
    Ok(())
}
