//! The Redis online tier: rows pushed online through one replica served by every other, as
//! one node would serve them; out-of-order pushes; materialized rows served after a restart
//! without an index; Redis going away and coming back; a deleted table's rows dropped.
//!
//! Replicas here are in-process servers over copies of one small demo (the same tables), so
//! what they share is Redis only: exactly the online tier under test. Tables shared through
//! a bucket are covered by the replica tests.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use featurestore::config::Config;
use featurestore::online::redis::OnlineBackend;
use serde_json::{Value, json};

use crate::common::redis::{RedisServer, dedicated_redis, shared_redis, unique_prefix};
use crate::common::{TestResult, TestServer, assert_problem, online_slots, slot, small_demo_dir};

/// Points a server at `redis` with `prefix`.
fn on_redis(url: String, prefix: String) -> impl Fn(&mut Config) {
    move |config: &mut Config| {
        config.online.backend = OnlineBackend::Redis;
        config.online.redis.url = url.clone();
        config.online.redis.key_prefix = prefix.clone();
    }
}

fn copy_dir(from: &Path, to: &Path) -> TestResult {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
            // The local kind names a table snapshot by its file's size and modification
            // time: a copy must keep both to hold the same snapshot.
            let modified = entry.metadata()?.modified()?;
            std::fs::File::options()
                .write(true)
                .open(&target)?
                .set_modified(modified)?;
        }
    }
    Ok(())
}

/// `n` data roots holding the same small demo (30 users, 12 movies, 300 interactions).
fn demo_copies(n: usize) -> TestResult<Vec<tempfile::TempDir>> {
    let mut dirs = vec![small_demo_dir()?];
    for _ in 1..n {
        let copy = tempfile::tempdir()?;
        copy_dir(dirs[0].path(), copy.path())?;
        dirs.push(copy);
    }
    Ok(dirs)
}

/// Two replicas on `tier`, over copies of the same small demo.
fn two_replicas(tier: &impl Fn(&mut Config)) -> TestResult<(TestServer, TestServer)> {
    let mut dirs = demo_copies(2)?.into_iter();
    let (Some(a), Some(b)) = (dirs.next(), dirs.next()) else {
        return Err("two copies".into());
    };
    Ok((
        TestServer::start_on(a, tier)?,
        TestServer::start_on(b, tier)?,
    ))
}

fn at(offset: chrono::Duration) -> String {
    (Utc::now() + offset).to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// A push of user profiles: `(user_id, age, event time)`; an age of `None` is a null.
fn profile_push(to: &str, rows: &[(i64, Option<i64>, &str)]) -> Value {
    json!({
        "push_source_name": "user_profile_push",
        "to": to,
        "df": {
            "user_id": rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            "age": rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            "avg_rating": rows.iter().map(|_| 2.5).collect::<Vec<_>>(),
            "total_movies_watched": rows.iter().map(|_| 7).collect::<Vec<_>>(),
            "favorite_genre": rows.iter().map(|_| "Noir").collect::<Vec<_>>(),
            "account_created_days": rows.iter().map(|_| 3).collect::<Vec<_>>(),
            "event_timestamp": rows.iter().map(|r| r.2).collect::<Vec<_>>(),
        }
    })
}

async fn push_ok(server: &TestServer, body: &Value) -> TestResult {
    let (status, answer) = server.post("/push", body).await?;
    if status != 200 {
        return Err(format!("push answered {status}: {answer}").into());
    }
    Ok(())
}

async fn lookup(server: &TestServer, body: &Value) -> TestResult<Value> {
    let (status, answer) = server.post("/get-online-features", body).await?;
    if status != 200 {
        return Err(format!("lookup answered {status}: {answer}").into());
    }
    Ok(answer)
}

fn profile_query(users: &[i64]) -> Value {
    json!({"features": ["user_profile:age", "user_profile:favorite_genre"],
           "entities": {"user_id": users}})
}

/// The first answer of `server` to `query` equal to `expected`, or the last one after
/// `within`.
async fn seen_within(
    server: &TestServer,
    query: &Value,
    expected: &Value,
    within: Duration,
) -> TestResult<Value> {
    let deadline = Instant::now() + within;
    loop {
        let answer = lookup(server, query).await?;
        if &answer == expected || Instant::now() > deadline {
            return Ok(answer);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until `server`'s change bus is subscribed (`/health`'s `change_bus.connected`).
async fn bus_connected(server: &TestServer) -> TestResult {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, health) = server.get("/health").await?;
        if health["change_bus"]["connected"] == json!(true) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("the change bus never connected: {health}").into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn redis_or_skip() -> Option<Arc<RedisServer>> {
    shared_redis()
}

#[tokio::test]
async fn a_row_pushed_through_one_replica_is_served_by_another_exactly_as_one_node_serves_it()
-> TestResult {
    let Some(redis) = redis_or_skip() else {
        return Ok(());
    };
    let prefix = unique_prefix("same_answers");
    let mut dirs = demo_copies(3)?.into_iter();
    let (Some(a), Some(b), Some(c)) = (dirs.next(), dirs.next(), dirs.next()) else {
        return Err("three copies".into());
    };
    let tier = on_redis(redis.url(), prefix.clone());
    let replica_a = TestServer::start_on(a, &tier)?;
    let replica_b = TestServer::start_on(b, &tier)?;
    let one_node = TestServer::start_on(c, |_| {})?;
    // A must be listening before B's first push, as a replica is once it has started: the
    // bound below is the bus's, not a subscription still being set up.
    bus_connected(&replica_a).await?;

    let (now, old) = (
        at(chrono::Duration::zero()),
        at(chrono::Duration::days(-30)),
    );
    let profiles = profile_push(
        "online",
        &[
            // A known user's newer row, a null value, a new user, and a row older than the
            // view's 7-day TTL for a user the table does not know.
            (1, Some(77), &now),
            (2, None, &now),
            (5000, Some(5), &now),
            (6000, Some(6), &old),
        ],
    );
    let interactions = json!({
        "push_source_name": "user_movie_interactions_push",
        "to": "online",
        "df": interaction_columns(&one_node, &[(3, 4, &now), (9000, 1, &now)]).await?,
    });
    for server in [&replica_b, &one_node] {
        push_ok(server, &profiles).await?;
        push_ok(server, &interactions).await?;
    }
    let mut queries = vec![
        profile_query(&[1, 2, 3, 5000, 6000, 7000]),
        json!({"feature_service": "movie_recommendation_service",
               "entities": {"user_id": [1, 3, 9000, 2], "movie_id": [1, 4, 1, 2]}}),
    ];
    queries.push(
        json!({"features": ["user_profile:age"], "entities": {"user_id": ["1", "01", 5000]}}),
    );
    for query in &queries {
        let expected = lookup(&one_node, query).await?;
        assert_eq!(lookup(&replica_b, query).await?, expected, "{query}");
        // Replica A hears of the views' first rows in Redis through the change bus, in
        // milliseconds (the once-a-second re-read of the marks would take up to a second).
        let seen = seen_within(&replica_a, query, &expected, Duration::from_millis(250)).await?;
        assert_eq!(seen, expected, "{query}");
    }
    // The statuses the comparison covered, spelled out.
    let slots = online_slots(&lookup(&replica_a, &queries[0]).await?, "age")?;
    let statuses: Vec<&str> = slots.iter().map(|s| s.1.as_str()).collect();
    assert_eq!(
        statuses,
        [
            "PRESENT",
            "NULL_VALUE",
            "PRESENT",
            "PRESENT",
            "OUTSIDE_MAX_AGE",
            "NOT_FOUND"
        ]
    );
    assert_eq!(slots[0], slot(json!(77), "PRESENT", &now));
    // The rows are in Redis under the configured prefix, nowhere near another test's keys.
    let keys = redis.keys(&format!("{prefix}*"));
    assert!(
        keys.iter()
            .any(|k| k == &format!("{prefix}v:user_profile:i5000")),
        "{keys:?}"
    );
    Ok(())
}

/// The interaction table's columns for pushed `(user, movie, event time)` rows, every other
/// column filled from the table's first row (the push must carry every column).
async fn interaction_columns(server: &TestServer, rows: &[(i64, i64, &str)]) -> TestResult<Value> {
    let (status, page) = server
        .get("/features/interaction/user_movie_interactions?limit=1")
        .await?;
    if status != 200 {
        return Err(format!("reading the interactions answered {status}: {page}").into());
    }
    let first = page["data"][0]
        .as_object()
        .ok_or_else(|| format!("no row in {page}"))?;
    let mut columns = serde_json::Map::new();
    for (name, value) in first {
        let values: Vec<Value> = rows
            .iter()
            .map(|(user, movie, time)| match name.as_str() {
                "user_id" => json!(user),
                "movie_id" => json!(movie),
                "event_timestamp" => json!(time),
                _ => value.clone(),
            })
            .collect();
        columns.insert(name.clone(), Value::Array(values));
    }
    Ok(Value::Object(columns))
}

#[tokio::test]
async fn out_of_order_pushes_through_two_replicas_keep_the_newest_event() -> TestResult {
    let Some(redis) = redis_or_skip() else {
        return Ok(());
    };
    let tier = on_redis(redis.url(), unique_prefix("out_of_order"));
    let (replica_a, replica_b) = two_replicas(&tier)?;
    let (newer, older) = (
        at(chrono::Duration::seconds(-10)),
        at(chrono::Duration::seconds(-20)),
    );
    push_ok(
        &replica_a,
        &profile_push("online", &[(4000, Some(2), &newer)]),
    )
    .await?;
    // Arrives later, but happened earlier: it must not replace the newer row.
    push_ok(
        &replica_b,
        &profile_push("online", &[(4000, Some(1), &older)]),
    )
    .await?;
    for server in [&replica_a, &replica_b] {
        let slots = online_slots(&lookup(server, &profile_query(&[4000])).await?, "age")?;
        assert_eq!(slots, vec![slot(json!(2), "PRESENT", &newer)]);
    }
    // Equal event times: the later write wins, as on one node.
    push_ok(
        &replica_b,
        &profile_push("online", &[(4000, Some(3), &newer)]),
    )
    .await?;
    let slots = online_slots(&lookup(&replica_a, &profile_query(&[4000])).await?, "age")?;
    assert_eq!(slots, vec![slot(json!(3), "PRESENT", &newer)]);
    Ok(())
}

#[tokio::test]
async fn materialized_rows_are_served_after_a_restart_without_building_an_index() -> TestResult {
    let Some(redis) = redis_or_skip() else {
        return Ok(());
    };
    let tier = on_redis(redis.url(), unique_prefix("materialized"));
    let mut dirs = demo_copies(2)?.into_iter();
    let (Some(a), Some(b)) = (dirs.next(), dirs.next()) else {
        return Err("two copies".into());
    };
    let replica_a = TestServer::start_on(a, &tier)?;
    let now = at(chrono::Duration::zero());
    push_ok(&replica_a, &profile_push("online", &[(1, Some(70), &now)])).await?;
    let (status, body) = replica_a
        .post(
            "/materialize",
            &json!({"feature_views": ["user_profile"], "start_ts": "2000-01-01T00:00:00Z",
                    "end_ts": at(chrono::Duration::zero())}),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["views"][0]["entities"], json!(30), "{body}");
    let query = profile_query(&[1, 2, 29, 31]);
    let expected = lookup(&replica_a, &query).await?;
    // The pushed row outlived the materialization of the older table row of user 1.
    assert_eq!(
        online_slots(&expected, "age")?[0],
        slot(json!(70), "PRESENT", &now)
    );

    let replica_b = TestServer::start_on(b, &tier)?;
    assert_eq!(lookup(&replica_b, &query).await?, expected);
    assert!(
        replica_b.store.local_indexes_for_test().is_empty(),
        "replica B built {:?} although Redis holds a materialization of its table",
        replica_b.store.local_indexes_for_test()
    );
    Ok(())
}

#[tokio::test]
async fn while_redis_is_down_lookups_answer_from_tables_pushes_online_fail_and_all_recovers()
-> TestResult {
    let Some(redis) = dedicated_redis() else {
        return Ok(());
    };
    let tier = on_redis(redis.url(), unique_prefix("outage"));
    let server = TestServer::start_on(small_demo_dir()?, &tier)?;
    let now = at(chrono::Duration::seconds(-5));
    push_ok(&server, &profile_push("online", &[(1, Some(71), &now)])).await?;
    let before = lookup(&server, &profile_query(&[1, 2])).await?;
    assert_eq!(
        online_slots(&before, "age")?[0],
        slot(json!(71), "PRESENT", &now)
    );

    redis.stop();
    // The table's rows are still served (user 1's pushed row lives in Redis only).
    let during = lookup(&server, &profile_query(&[1, 2])).await?;
    let age = online_slots(&during, "age")?;
    assert_eq!(age[1], online_slots(&before, "age")?[1]);
    assert_ne!(age[0].0, json!(71));
    let (status, health) = server.get("/health").await?;
    assert_eq!(status, 200);
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["online_backend"], "redis");
    assert!(
        health["online_store_unavailable_reason"]
            .as_str()
            .is_some_and(|r| r.contains("redis")),
        "{health}"
    );
    let metrics = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await?
        .text()
        .await?;
    assert!(
        metrics.contains("featurestore_online_store_up{backend=\"redis\"} 0"),
        "{metrics}"
    );
    // A push online stores nothing and says why; a push offline still lands.
    let lost = at(chrono::Duration::zero());
    let (status, body) = server
        .post("/push", &profile_push("online", &[(2, Some(99), &lost)]))
        .await?;
    assert_problem(status, &body, 503, "online_store_unavailable");
    push_ok(&server, &profile_push("offline", &[(3, Some(33), &lost)])).await?;
    let offline = online_slots(&lookup(&server, &profile_query(&[3])).await?, "age")?;
    assert_eq!(offline, vec![slot(json!(33), "PRESENT", &lost)]);

    redis.start()?;
    // Recovery needs no restart: within a few seconds Redis answers again.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, health) = server.get("/health").await?;
        if health["online_store_unavailable_reason"].is_null() {
            assert_eq!(health["status"], "healthy", "{health}");
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("redis never came back: {health}").into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = lookup(&server, &profile_query(&[1, 2, 3])).await?;
    let age = online_slots(&after, "age")?;
    // The push acknowledged before the outage survived it (append-only file); the refused
    // one was never stored.
    assert_eq!(age[0], slot(json!(71), "PRESENT", &now));
    assert_ne!(age[1].0, json!(99));
    assert_eq!(age[2], slot(json!(33), "PRESENT", &lost));
    push_ok(&server, &profile_push("online", &[(2, Some(98), &lost)])).await?;
    let age = online_slots(&lookup(&server, &profile_query(&[2])).await?, "age")?;
    assert_eq!(age, vec![slot(json!(98), "PRESENT", &lost)]);
    Ok(())
}

#[tokio::test]
async fn deleting_a_table_drops_its_rows_from_redis_so_they_never_resurface() -> TestResult {
    let Some(redis) = redis_or_skip() else {
        return Ok(());
    };
    let prefix = unique_prefix("delete");
    let tier = on_redis(redis.url(), prefix.clone());
    let server = TestServer::start_with(&tier)?;
    let now = at(chrono::Duration::zero());
    let rows = json!({"records": [{"entity_id": 1, "score": 0.5, "event_timestamp": now}]});
    server.save("misc", "scores", rows.clone()).await?;
    let push = json!({"feature_view": "scores", "to": "online",
                      "df": {"entity_id": [2], "score": [0.75], "event_timestamp": [now]}});
    push_ok(&server, &push).await?;
    let query = json!({"features": ["scores:score"], "entities": {"entity_id": [1, 2]}});
    let slots = online_slots(&lookup(&server, &query).await?, "score")?;
    assert_eq!(slots[1], slot(json!(0.75), "PRESENT", &now));
    assert!(!redis.keys(&format!("{prefix}v:scores:*")).is_empty());

    let (status, body) = server.delete("/features/misc/scores").await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        redis.keys(&format!("{prefix}v:scores:*")),
        Vec::<String>::new()
    );
    server.save("misc", "scores", rows).await?;
    let slots = online_slots(&lookup(&server, &query).await?, "score")?;
    assert_eq!(slots[1].1, "NOT_FOUND", "{slots:?}");
    Ok(())
}

#[tokio::test]
async fn a_push_online_and_offline_is_served_by_every_replica_and_lands_in_the_table() -> TestResult
{
    let Some(redis) = redis_or_skip() else {
        return Ok(());
    };
    let tier = on_redis(redis.url(), unique_prefix("both"));
    let (replica_a, replica_b) = two_replicas(&tier)?;
    let now = at(chrono::Duration::zero());
    push_ok(
        &replica_b,
        &profile_push("online_and_offline", &[(8000, Some(8), &now)]),
    )
    .await?;
    let expected = vec![slot(json!(8), "PRESENT", &now)];
    for server in [&replica_b, &replica_a] {
        let answer = seen_within(
            server,
            &profile_query(&[8000]),
            &lookup(&replica_b, &profile_query(&[8000])).await?,
            Duration::from_secs(2),
        )
        .await?;
        assert_eq!(online_slots(&answer, "age")?, expected);
    }
    // Offline, the row is in B's table (replicas sharing a bucket share it; see replicas.rs).
    let (status, page) = replica_b
        .get("/features/user/user_profile?limit=10000")
        .await?;
    assert_eq!(status, 200);
    let rows = page["data"].as_array().ok_or("rows")?;
    assert!(
        rows.iter()
            .any(|r| r["user_id"] == json!(8000) && r["age"] == json!(8))
    );
    Ok(())
}

#[tokio::test]
async fn each_write_sets_the_rows_expiry_to_key_ttl_seconds_as_feast_does() -> TestResult {
    let Some(redis) = redis_or_skip() else {
        return Ok(());
    };
    let prefix = unique_prefix("key_ttl");
    let tier = on_redis(redis.url(), prefix.clone());
    let server = TestServer::start_on(small_demo_dir()?, |config: &mut Config| {
        tier(config);
        config.online.redis.key_ttl_seconds = 3600;
    })?;
    let now = at(chrono::Duration::zero());
    push_ok(&server, &profile_push("online", &[(1, Some(50), &now)])).await?;
    let ttl = redis.cmd(&["TTL", &format!("{prefix}v:user_profile:i1")]);
    let seconds: i64 = ttl
        .trim_start_matches(':')
        .trim()
        .parse()
        .map_err(|e| format!("{ttl:?}: {e}"))?;
    assert!((3590..=3600).contains(&seconds), "TTL {ttl}");
    Ok(())
}

#[test]
fn a_redis_url_that_can_never_work_stops_serve_naming_the_setting() -> TestResult {
    let data = tempfile::tempdir()?;
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_featurestore"))
        .args(["serve", "--port", "0", "--data-dir"])
        .arg(data.path())
        .env("FEATURESTORE__ONLINE__BACKEND", "redis")
        .env(
            "FEATURESTORE__ONLINE__REDIS__URL",
            "http://:hunter2@127.0.0.1:6379",
        )
        .output()?;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("online.redis.url"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
    Ok(())
}

#[test]
fn the_materialize_command_writes_the_views_rows_into_redis() -> TestResult {
    let Some(redis) = redis_or_skip() else {
        return Ok(());
    };
    let prefix = unique_prefix("cli_materialize");
    let data = small_demo_dir()?;
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_featurestore"))
        .args(["materialize", "--views", "movie_metadata", "--data-dir"])
        .arg(data.path())
        .envs(redis.env(&prefix))
        .output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(
        redis.keys(&format!("{prefix}v:movie_metadata:*")).len(),
        12,
        "{stderr}"
    );
    let record = redis.cmd(&["HGET", &format!("{prefix}materialized"), "movie_metadata"]);
    assert!(record.contains("\"rows\":12"), "{record}");
    Ok(())
}
