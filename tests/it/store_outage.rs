//! The object store stopped under a running replica and started again (issue #14): cached
//! reads still answer, uncached reads and writes answer 503 `storage_unavailable` with
//! `Retry-After` and write nothing, `/health` says `degraded` with the reason, and once the
//! store is back writes work again without restarting featurestore and nothing acknowledged
//! is lost. A server of the test's own ([`dedicated_s3`]), since the shared one cannot stop.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::TestResult;
use crate::common::replicas::{
    AT, Replicas, delete, get, post, read_all, save, single_write, table, wait_for, write_rows,
};
use crate::common::rng::SplitMix;
use crate::common::s3::{ACCESS_KEY, SECRET_KEY, dedicated_s3};

/// Rows of the large table: enough that its data is well past the 64 KiB a replica fetches
/// from a table's end when it opens it.
const COLD_ROWS: usize = 4000;

/// The rows of write `w` with a 32-character pseudo-random `pad` each (incompressible, so the
/// file really is large), as a save body.
fn padded_rows(w: &str, rows: usize) -> Value {
    let mut rng = SplitMix::new(rows as u64);
    let records: Vec<Value> = (0..rows)
        .map(|id| {
            let pad = format!("{:016x}{:016x}", rng.next_u64(), rng.next_u64());
            json!({"entity_id": id, "w": w, "pad": pad, "event_timestamp": AT})
        })
        .collect();
    json!({"records": records, "entity_key": ["entity_id"]})
}

#[tokio::test]
async fn an_object_store_outage_answers_503_with_retry_after_then_recovers_with_nothing_lost()
-> TestResult {
    let Some(mut s3) = dedicated_s3() else {
        return Ok(());
    };
    let replicas = Replicas::start(&s3.config, &s3.env(), 1)?;
    let a = replicas.node(0)?;
    let (status, _, health) = get(a, "/health").await?;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["status"], "healthy", "{health}");
    assert_eq!(health["backend"], "s3", "{health}");
    assert_eq!(health["bucket"], s3.config.bucket.as_str(), "{health}");
    assert_eq!(health["prefix"], "", "{health}");
    let (status, body) = save(a, "kept", "k1", 30).await?;
    assert_eq!(status, 201, "{body}\n{}", replicas.logs());
    // `cold` is larger than the tail a replica fetches when it opens a table (footer and
    // page index), so its first page is only ever read from the store.
    let (status, _, body) = post(a, &table("cold"), &padded_rows("c1", COLD_ROWS)).await?;
    assert_eq!(status, 201, "{body}\n{}", replicas.logs());
    // Nothing cached, then one page of `kept` read (and so cached).
    let (status, _, body) = delete(a, "/cache").await?;
    assert_eq!(status, 200, "{body}");
    let first_page = format!("{}?limit=10", table("kept"));
    let (status, _, before) = get(a, &first_page).await?;
    assert_eq!(status, 200, "{before}");

    s3.stop();
    let outage = Instant::now();
    let (status, _, cached) = get(a, &first_page).await?;
    assert_eq!(
        (status, &cached["data"]),
        (200, &before["data"]),
        "a cached page during the outage"
    );
    let uncached = get(a, &format!("{}?limit=10", table("cold"))).await?;
    let replace = post(a, &table("cold"), &padded_rows("c2", 40)).await?;
    let create = post(a, &table("born_in_outage"), &write_rows("n1", 2)).await?;
    for (what, (status, retry_after, body)) in [
        ("uncached read", uncached),
        ("replace", replace),
        ("create", create),
    ] {
        assert_eq!(status, 503, "{what} during the outage: {body}");
        assert_eq!(body["code"], "storage_unavailable", "{what}: {body}");
        let seconds: u64 = retry_after
            .ok_or(format!("{what}: no Retry-After"))?
            .parse()?;
        assert!((1..=10).contains(&seconds), "{what}: Retry-After {seconds}");
    }
    let (health, _) = wait_for(Duration::from_secs(10), "/health degraded", || async {
        let (status, _, health) = get(a, "/health").await?;
        Ok((status == 200 && health["status"] == "degraded").then_some(health))
    })
    .await?;
    let reason = health["storage_unavailable_reason"]
        .as_str()
        .unwrap_or_default();
    assert!(!reason.is_empty(), "degraded without a reason: {health}");
    let text = health.to_string();
    assert!(
        !text.contains(SECRET_KEY) && !text.contains(ACCESS_KEY),
        "/health shows a credential: {health}"
    );
    println!(
        "outage answered 503s for {:?}; /health said: {reason}",
        outage.elapsed()
    );

    s3.restart()?;
    // Writes work again without restarting featurestore.
    let (_, recovered) = wait_for(
        Duration::from_secs(30),
        "a write after the restart",
        || async {
            let (status, _, body) = post(a, &table("after_outage"), &write_rows("n2", 3)).await?;
            match status {
                201 => Ok(Some(())),
                _ => Err(format!("{status}: {body}").into()),
            }
        },
    )
    .await?;
    println!("writes recovered {recovered:?} after the S3 server restarted");
    wait_for(Duration::from_secs(10), "/health healthy again", || async {
        let (_, _, health) = get(a, "/health").await?;
        Ok(
            (health["status"] == "healthy" && health["storage_unavailable_reason"].is_null())
                .then_some(()),
        )
    })
    .await?;
    // Nothing acknowledged lost, nothing refused written: `cold` is still the first write,
    // read from the store now.
    let (_, kept) = read_all(a, "kept").await?.ok_or("kept is gone")?;
    assert_eq!((kept.len(), single_write(&kept)?.as_str()), (30, "k1"));
    let (_, cold) = read_all(a, "cold").await?.ok_or("cold is gone")?;
    assert_eq!(
        (cold.len(), single_write(&cold)?.as_str()),
        (COLD_ROWS, "c1")
    );
    let (status, _, body) = get(a, &table("born_in_outage")).await?;
    assert_eq!(
        status, 404,
        "a create refused during the outage exists: {body}"
    );
    let (_, _, performance) = get(a, "/performance").await?;
    let store = &performance["object_store"];
    assert!(store["requests"].as_u64().unwrap_or(0) > 0, "{performance}");
    assert!(store["failures"].as_u64().unwrap_or(0) > 0, "{performance}");
    // `cold`'s pages were fetched just now (a writer holds what it wrote, not the rest).
    assert!(
        store["bytes_read"].as_u64().unwrap_or(0) > 0,
        "{performance}"
    );
    Ok(())
}
