//! Crash safety: the real binary killed with SIGKILL in the middle of large writes, restarted
//! on the same data root, must serve every table as exactly its old or its new complete
//! version, with nothing left of the interrupted writes.
//!
//! Each cycle sets four writes going at once on a running `featurestore serve`:
//! - a replace of `misc/crash_replace` with a new *generation* (100–150 k rows, or
//!   `FEATURESTORE_CRASH_ROWS` and half as many again; every row carries the generation, so
//!   old and new contents are told apart row by row);
//! - a push of 2–6 k rows to `crash_push`, alternately `offline` and `online_and_offline`
//!   (a new part file, or, every `COMPACT_AFTER_PARTS` parts, a compaction: a rewrite of the
//!   whole table);
//! - a push of 10 rows `to: online` (the durable online store, sled);
//! - `POST /materialize` of both views (a sled batch of the latest rows),
//!
//! then kills the process after a random delay (seeded: the seed and every delay are
//! printed, and `FEATURESTORE_CRASH_SEED=<seed>` replays a run) spread over how long the four
//! writes take when left alone. It restarts the binary on the same root and checks:
//! - each table reads back as exactly the old or the new content, row count and every value
//!   (a write acknowledged before the kill must be the new one): never a prefix, never a mix;
//! - each pushed batch is entirely visible or entirely absent, offline and online;
//! - no temporary file is left anywhere under the data root, and no parts folder of a
//!   replaced base file;
//! - `GET /health` is healthy with the disk cache tier on (its sled tree reopened), the
//!   durable online store is open, and online lookups answer the tables' latest rows;
//! - each table's history, read by another process on the data root, is consistent with
//!   the content: numbers strictly increase, every version whose write was acknowledged
//!   (in any cycle so far) is listed, and every listed version opens with the rows it lists.
//!
//! The outcome of each write in each cycle is counted: acknowledged, applied without an
//! acknowledgement (killed between the commit and the answer), or not applied; the totals
//! are printed at the end, to show the kills land in every phase.
//!
//! `cargo test` runs [`DEFAULT_CYCLES`] cycles (about 30 s in a debug build on 2 cores). More,
//! with larger tables:
//! `FEATURESTORE_CRASH_CYCLES=50 FEATURESTORE_CRASH_ROWS=200000 cargo test --test it crash:: -- --nocapture`.
//!
//! Two more tests build the states a crash leaves at its narrowest points by hand (temporary
//! files and orphan parts everywhere; a sidecar whose update was lost after an append) and
//! check start-up repairs them.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::common::child::ChildServer;
use crate::common::history::check_history;
use crate::common::rng::SplitMix;
use crate::common::{TestResult, list_files, online_slots, read};

/// Kill-and-restart cycles in a plain `cargo test`.
const DEFAULT_CYCLES: u64 = 3;
/// Rows of the smallest replace in a plain `cargo test` (a few seconds of writing in a debug
/// build; the replace takes the longest of the four writes).
const DEFAULT_ROWS: u64 = 100_000;
const GROUP: &str = "misc";
const REPLACED: &str = "crash_replace";
const PUSHED: &str = "crash_push";
/// Rows of `crash_push` before any push (batch 0).
const BASE_ROWS: u64 = 1000;
/// First entity id of rows pushed `to: online` (far from the offline ones).
const ONLINE_IDS: u64 = 50_000_000;
/// Rows per online push.
const ONLINE_ROWS: u64 = 10;
/// Cycles between two measures of how long the writes take when left alone.
const REMEASURE_EVERY: u64 = 10;
/// Small, so that the cycles also kill compactions.
const COMPACT_AFTER_PARTS: &str = "4";

/// The configuration of the child: pages large enough to read a whole table in one response.
const ENV: [(&str, &str); 4] = [
    ("FEATURESTORE__API__MAX_PAGE_LIMIT", "10000000"),
    ("FEATURESTORE__API__MAX_BODY_MB", "256"),
    (
        "FEATURESTORE__STORAGE__COMPACT_AFTER_PARTS",
        COMPACT_AFTER_PARTS,
    ),
    ("FEATURESTORE__SERVER__WORKERS", "2"),
];

/// Rows of the smallest generation of `crash_replace`: `FEATURESTORE_CRASH_ROWS`, else
/// [`DEFAULT_ROWS`].
fn scale() -> u64 {
    std::env::var("FEATURESTORE_CRASH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n >= 2000)
        .unwrap_or(DEFAULT_ROWS)
}

/// Rows of generation `g` of `crash_replace`: between one and one and a half [`scale`].
fn replace_rows(g: u64) -> u64 {
    let scale = scale();
    scale + (g * 7919) % (scale / 2)
}

/// Value of row `i` of generation `g`.
fn replace_value(g: u64, i: u64) -> u64 {
    g * 1_000_000 + i
}

/// Rows of offline push batch `b`: small enough that 50 cycles leave a table a compaction
/// still rewrites in seconds (about 200 k rows).
fn push_rows(b: u64) -> u64 {
    2_000 + (b * 104_729) % 4_000
}

/// Entity id of row `j` of offline push batch `b`: four id ranges in turn, so later batches
/// overwrite the online value of earlier ones' keys (and batch 4's those of the base rows).
fn push_id(b: u64, j: u64) -> u64 {
    (b % 4) * 100_000 + j
}

/// Value of row `j` of push batch `b` (offline or online).
fn push_value(b: u64, j: u64) -> u64 {
    b * 1_000_000 + j
}

/// Entity id of row `j` of online push batch `b`.
fn online_id(b: u64, j: u64) -> u64 {
    ONLINE_IDS + b * ONLINE_ROWS + j
}

/// Event time of batch `b` (0 for the base rows): later batches are newer.
fn event_time(b: u64) -> String {
    format!(
        "2025-01-01T{:02}:{:02}:{:02}Z",
        b / 3600,
        (b / 60) % 60,
        b % 60
    )
}

/// The body of a replace with generation `g`, built as text: a few hundred thousand
/// `serde_json::Value`s would cost more than the write under test.
fn replace_body(g: u64) -> String {
    use std::fmt::Write;
    let ts = event_time(0);
    let mut body = String::with_capacity(replace_rows(g) as usize * 90);
    body.push_str(r#"{"entity_key":["entity_id"],"timestamp_field":"event_timestamp","records":["#);
    for i in 0..replace_rows(g) {
        if i > 0 {
            body.push(',');
        }
        let _ = write!(
            body,
            r#"{{"entity_id":{i},"event_timestamp":"{ts}","generation":{g},"value":{}}}"#,
            replace_value(g, i)
        );
    }
    body.push_str("]}");
    body
}

/// A push body: the rows `(id, value)` of batch `b`, with `to`.
fn push_body(b: u64, rows: impl Iterator<Item = (u64, u64)>, to: &str) -> String {
    let (ids, values): (Vec<u64>, Vec<u64>) = rows.unzip();
    let ts = vec![event_time(b); ids.len()];
    json!({
        "feature_view": PUSHED,
        "to": to,
        "df": {"entity_id": ids, "event_timestamp": ts, "batch": vec![b; values.len()], "value": values},
    })
    .to_string()
}

/// The registry: both tables as views of one entity, without a TTL (the rows are from 2025).
fn registry() -> Value {
    json!({
        "entities": [{"name": "entity_id", "value_type": "int64"}],
        "feature_views": [
            {"name": REPLACED, "group": GROUP, "entities": ["entity_id"], "timestamp_field": "event_timestamp"},
            {"name": PUSHED, "group": GROUP, "entities": ["entity_id"], "timestamp_field": "event_timestamp"},
        ],
    })
}

/// What the data root holds as of the last check: everything before is known exactly.
#[derive(Debug, Clone, Copy)]
struct State {
    /// Generation of `crash_replace`.
    generation: u64,
    /// Offline push batches 1..=n are in `crash_push`.
    offline_batches: u64,
    /// Online push batches 1..=n are in the online store.
    online_batches: u64,
}

/// How each write of a cycle ended: acknowledged (2xx read in full) or not known (the
/// connection died with the server).
#[derive(Debug, Clone, Copy, Default)]
struct Acks {
    replace: bool,
    offline: bool,
    online: bool,
    /// The version the acknowledged replace answered.
    replace_version: Option<u64>,
    /// The version of `crash_push` the acknowledged offline push answered.
    push_version: Option<u64>,
}

/// The versions of each table whose writes were acknowledged, over the whole run: each must
/// stay listed, and readable, after every crash.
#[derive(Debug, Default)]
struct Acknowledged {
    replaced: Vec<u64>,
    pushed: Vec<u64>,
}

impl Acknowledged {
    fn add(&mut self, acks: &Acks) {
        self.replaced.extend(acks.replace_version);
        self.pushed.extend(acks.push_version);
    }
}

/// POSTs `body` to `path`: `Ok(Some(answer))` when acknowledged, `Ok(None)` when the
/// connection failed (the server died), an error for any other answer.
async fn post_raw(client: reqwest::Client, url: String, body: String) -> TestResult<Option<Value>> {
    let sent = client
        .post(&url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await;
    let response = match sent {
        Ok(response) => response,
        Err(_) => return Ok(None),
    };
    let status = response.status().as_u16();
    match response.bytes().await {
        Ok(bytes) if (200..300).contains(&status) => {
            Ok(Some(serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
        }
        Ok(bytes) => Err(format!(
            "{url} answered {status}: {}",
            String::from_utf8_lossy(&bytes)
        )
        .into()),
        Err(_) => Ok(None),
    }
}

/// Starts the four writes of a cycle on top of `state`.
fn start_writes(server: &ChildServer, state: State) -> Vec<JoinHandle<TestResult<Option<Value>>>> {
    let g = state.generation + 1;
    let b = state.offline_batches + 1;
    let ob = state.online_batches + 1;
    let to = if b % 2 == 1 {
        "offline"
    } else {
        "online_and_offline"
    };
    let writes = [
        (format!("/features/{GROUP}/{REPLACED}"), replace_body(g)),
        (
            "/push".to_owned(),
            push_body(
                b,
                (0..push_rows(b)).map(|j| (push_id(b, j), push_value(b, j))),
                to,
            ),
        ),
        (
            "/push".to_owned(),
            push_body(
                ob,
                (0..ONLINE_ROWS).map(|j| (online_id(ob, j), push_value(ob, j))),
                "online",
            ),
        ),
        (
            "/materialize".to_owned(),
            json!({"start_ts": "1970-01-01T00:00:00Z", "end_ts": "2030-01-01T00:00:00Z",
                   "feature_views": [REPLACED, PUSHED]})
            .to_string(),
        ),
    ];
    writes
        .into_iter()
        .map(|(path, body)| tokio::spawn(post_raw(server.client.clone(), server.url(&path), body)))
        .collect()
}

/// Waits for the writes; their acknowledgements.
async fn finish_writes(writes: Vec<JoinHandle<TestResult<Option<Value>>>>) -> TestResult<Acks> {
    let mut acked = Vec::new();
    for write in writes {
        acked.push(write.await??);
    }
    Ok(Acks {
        replace: acked[0].is_some(),
        offline: acked[1].is_some(),
        online: acked[2].is_some(),
        replace_version: acked[0].as_ref().and_then(|a| a["version"].as_u64()),
        push_version: acked[1]
            .as_ref()
            .and_then(|a| a["offline"]["version"].as_u64()),
    })
}

/// The history of both tables, read by another process on the same data root (as the CLI
/// would) after a crash: numbers strictly increase, every acknowledged version is listed,
/// and every listed version opens with the rows it lists.
fn check_histories(root: &Path, acknowledged: &Acknowledged) -> TestResult {
    let mut config = featurestore::config::Config::defaults()?.storage;
    config.data_dir = root.to_path_buf();
    let storage = featurestore::storage::Storage::open(config)?;
    check_history(&storage, REPLACED, &acknowledged.replaced)?;
    check_history(&storage, PUSHED, &acknowledged.pushed)?;
    Ok(())
}

/// GET `path`, checked to be a 200.
async fn get_ok(server: &ChildServer, path: &str) -> TestResult<Value> {
    let (status, body) = read(server.client.get(server.url(path)).send().await?).await?;
    if status != 200 {
        return Err(format!("GET {path} answered {status}: {body}").into());
    }
    Ok(body)
}

/// Integer column `column` of every row of a page.
fn column(page: &Value, name: &str) -> TestResult<Vec<u64>> {
    page["data"]
        .as_array()
        .ok_or_else(|| format!("no data in the page of {name}"))?
        .iter()
        .map(|row| {
            row[name]
                .as_u64()
                .ok_or_else(|| format!("row without an integer {name}: {row}").into())
        })
        .collect()
}

/// Checks `what` is the old value, or the new one when the write may have happened; an
/// acknowledged write must have happened.
fn old_or_new(what: &str, seen: u64, old: u64, in_flight: bool, acked: bool) -> TestResult {
    let ok = if acked {
        seen == old + 1
    } else if in_flight {
        seen == old || seen == old + 1
    } else {
        seen == old
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what}: found {seen}, expected {old}{} (acknowledged: {acked})",
            if in_flight { " or the next" } else { "" }
        )
        .into())
    }
}

/// Reads `crash_replace` in full and returns its generation, checking every row.
async fn check_replaced(server: &ChildServer) -> TestResult<u64> {
    let page = get_ok(
        server,
        &format!("/features/{GROUP}/{REPLACED}?columns=entity_id,generation,value&limit=10000000"),
    )
    .await?;
    let generations = column(&page, "generation")?;
    let ids = column(&page, "entity_id")?;
    let values = column(&page, "value")?;
    let g = *generations.first().ok_or("crash_replace is empty")?;
    let rows = replace_rows(g);
    if generations.len() as u64 != rows || page["metadata"]["total_rows"] != rows {
        return Err(format!(
            "crash_replace generation {g} has {} rows (total_rows {}), expected {rows}",
            generations.len(),
            page["metadata"]["total_rows"]
        )
        .into());
    }
    for (i, ((&gen_i, &id), &value)) in generations.iter().zip(&ids).zip(&values).enumerate() {
        let i = i as u64;
        if gen_i != g || id != i || value != replace_value(g, i) {
            return Err(format!(
                "crash_replace row {i} is ({id}, {gen_i}, {value}) in generation {g}: a torn table"
            )
            .into());
        }
    }
    Ok(g)
}

/// Reads `crash_push` in full and returns how many offline batches it holds, checking that
/// the base rows come first and then each batch, complete and in push order.
async fn check_pushed(server: &ChildServer) -> TestResult<u64> {
    let page = get_ok(
        server,
        &format!("/features/{GROUP}/{PUSHED}?columns=entity_id,batch,value&limit=10000000"),
    )
    .await?;
    let ids = column(&page, "entity_id")?;
    let batches = column(&page, "batch")?;
    let values = column(&page, "value")?;
    let mut expected: Vec<(u64, u64, u64)> = (0..BASE_ROWS).map(|i| (i, 0, i)).collect();
    let mut b = 0;
    while expected.len() < ids.len() {
        b += 1;
        expected.extend((0..push_rows(b)).map(|j| (push_id(b, j), b, push_value(b, j))));
    }
    let found: Vec<(u64, u64, u64)> = ids
        .into_iter()
        .zip(batches)
        .zip(values)
        .map(|((id, batch), value)| (id, batch, value))
        .collect();
    if found != expected {
        let at = found.iter().zip(&expected).position(|(a, e)| a != e);
        return Err(format!(
            "crash_push has {} rows, not the base and batches 1..={b} ({} rows); first difference at row {at:?}",
            found.len(),
            expected.len()
        )
        .into());
    }
    Ok(b)
}

/// Online values of `features` of `view` for `ids`: `(value, status)` per feature and id.
async fn online(
    server: &ChildServer,
    view: &str,
    features: &[&str],
    ids: &[u64],
) -> TestResult<Vec<Vec<(Value, String)>>> {
    let refs: Vec<String> = features.iter().map(|f| format!("{view}:{f}")).collect();
    let answer = server
        .post_ok(
            "/get-online-features",
            &json!({"features": refs, "entities": {"entity_id": ids}}),
        )
        .await?;
    features
        .iter()
        .map(|f| {
            Ok(online_slots(&answer, f)?
                .into_iter()
                .map(|(value, status, _)| (value, status))
                .collect())
        })
        .collect()
}

/// The online lookups of both views answer the latest rows of their tables, and each online
/// push batch is all there or all absent; returns how many online batches are there.
async fn check_online(
    server: &ChildServer,
    state: &State,
    online_in_flight: bool,
) -> TestResult<u64> {
    let g = state.generation;
    let rows = replace_rows(g);
    let ids: Vec<u64> = (0..rows).step_by(997).chain([rows - 1]).collect();
    let answer = online(server, REPLACED, &["generation", "value"], &ids).await?;
    for (k, &id) in ids.iter().enumerate() {
        let expected = [
            (json!(g), "PRESENT".to_owned()),
            (json!(replace_value(g, id)), "PRESENT".to_owned()),
        ];
        if answer[0][k] != expected[0] || answer[1][k] != expected[1] {
            return Err(format!(
                "online crash_replace entity {id}: {:?} {:?}, the table has generation {g}",
                answer[0][k], answer[1][k]
            )
            .into());
        }
    }
    // Offline keys: the latest visible batch covering each key wins (batches are newer in
    // push order); a sample of each id range, the base rows' included.
    let n = state.offline_batches;
    let mut ids: Vec<u64> = (0..4u64)
        .flat_map(|range| {
            (0..40_000u64)
                .step_by(1999)
                .map(move |j| range * 100_000 + j)
        })
        .collect();
    ids.push(BASE_ROWS - 1);
    let expected_offline = |id: u64| -> (Value, String) {
        let j = id % 100_000;
        let pushed = (1..=n)
            .rev()
            .find(|&b| push_id(b, j) == id && j < push_rows(b));
        match pushed {
            Some(b) => (json!(push_value(b, j)), "PRESENT".to_owned()),
            None if id < BASE_ROWS => (json!(id), "PRESENT".to_owned()),
            None => (Value::Null, "NOT_FOUND".to_owned()),
        }
    };
    let answer = online(server, PUSHED, &["value"], &ids).await?;
    for (k, &id) in ids.iter().enumerate() {
        if answer[0][k] != expected_offline(id) {
            return Err(format!(
                "online crash_push entity {id}: {:?}, expected {:?} with offline batches 1..={n}",
                answer[0][k],
                expected_offline(id)
            )
            .into());
        }
    }
    // Online pushes: every batch up to the known count, and the next one all or nothing.
    let last = state.online_batches + u64::from(online_in_flight);
    let ids: Vec<u64> = (1..=last)
        .flat_map(|b| (0..ONLINE_ROWS).map(move |j| online_id(b, j)))
        .collect();
    if ids.is_empty() {
        return Ok(0);
    }
    let answer = online(server, PUSHED, &["value"], &ids).await?;
    let mut visible = 0;
    for b in 1..=last {
        let slots = &answer[0][((b - 1) * ONLINE_ROWS) as usize..(b * ONLINE_ROWS) as usize];
        let present: Vec<bool> = (0..ONLINE_ROWS)
            .map(|j| slots[j as usize] == (json!(push_value(b, j)), "PRESENT".to_owned()))
            .collect();
        let absent = slots.iter().all(|(v, s)| v.is_null() && s == "NOT_FOUND");
        if present.iter().all(|p| *p) {
            if visible != b - 1 {
                return Err(format!(
                    "online push batch {b} is there but batch {visible} + 1 is not"
                )
                .into());
            }
            visible = b;
        } else if !absent {
            return Err(format!("online push batch {b} is partly there: {slots:?}").into());
        }
    }
    Ok(visible)
}

/// No temporary file anywhere under the data root (the start-up sweeps removed them), and no
/// parts folder other than the current base file's.
fn check_no_leftovers(root: &Path) -> TestResult {
    let files = list_files(root);
    let leftovers: Vec<_> = files
        .iter()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.contains(".tmp") || n.ends_with(".partial"))
        })
        .collect();
    if !leftovers.is_empty() {
        return Err(format!("temporary files left after start-up: {leftovers:?}").into());
    }
    let appends = root.join("features").join(GROUP).join("_appends");
    for table in [REPLACED, PUSHED] {
        let bases: Vec<_> = std::fs::read_dir(appends.join(table))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        if bases.len() > 1 {
            return Err(format!("parts of replaced base files of {table} left: {bases:?}").into());
        }
    }
    Ok(())
}

/// Everything a restarted server must show; returns the state it holds.
async fn check_restarted(
    server: &ChildServer,
    root: &Path,
    before: State,
    acks: Acks,
    in_flight: bool,
) -> TestResult<State> {
    check_no_leftovers(root)?;
    let health = get_ok(server, "/health").await?;
    if health["status"] != "healthy" || health["disk_cache_enabled"] != true {
        return Err(format!("unhealthy after a restart: {health}").into());
    }
    let listing = get_ok(server, "/features").await?;
    if listing["table_count"] != 2 {
        return Err(format!("the listing is not the two tables: {listing}").into());
    }
    // Materializing no view touches nothing but answers 503 when the store is not open.
    server.post_ok("/materialize",
        &json!({"start_ts": "1970-01-01T00:00:00Z", "end_ts": "1970-01-01T00:00:00Z", "feature_views": []}),
    )
    .await?;
    let generation = check_replaced(server).await?;
    old_or_new(
        "crash_replace generation",
        generation,
        before.generation,
        in_flight,
        acks.replace,
    )?;
    let offline_batches = check_pushed(server).await?;
    old_or_new(
        "crash_push offline batches",
        offline_batches,
        before.offline_batches,
        in_flight,
        acks.offline,
    )?;
    let mut state = State {
        generation,
        offline_batches,
        online_batches: before.online_batches,
    };
    let online_batches = check_online(server, &state, in_flight).await?;
    old_or_new(
        "crash_push online batches",
        online_batches,
        before.online_batches,
        in_flight,
        acks.online,
    )?;
    state.online_batches = online_batches;
    Ok(state)
}

/// Runs the four writes to completion and checks them; returns the state and how long they
/// took, in milliseconds.
async fn undisturbed(
    server: &ChildServer,
    root: &Path,
    state: State,
    acknowledged: &mut Acknowledged,
) -> TestResult<(State, u64)> {
    let started = Instant::now();
    let acks = finish_writes(start_writes(server, state)).await?;
    let took = started.elapsed().as_millis() as u64;
    if !(acks.replace && acks.offline && acks.online) {
        return Err(format!("the undisturbed writes failed; log:\n{}", server.log_tail()).into());
    }
    acknowledged.add(&acks);
    let state = check_restarted(server, root, state, acks, true).await?;
    check_histories(root, acknowledged)?;
    Ok((state, took))
}

/// The number of cycles: `FEATURESTORE_CRASH_CYCLES`, else [`DEFAULT_CYCLES`].
fn cycles() -> u64 {
    std::env::var("FEATURESTORE_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CYCLES)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_large_writes_leaves_old_or_new_tables_and_no_leftovers() -> TestResult {
    let data = tempfile::tempdir()?;
    let logs = tempfile::tempdir()?;
    let root = data.path();
    let log = logs.path().join("server.log");
    let mut rng = SplitMix::from_env_or_clock("FEATURESTORE_CRASH_SEED");
    let cycles = cycles();

    // Cycle 0 sets the tables up and times the four writes left alone.
    let server = ChildServer::start(root, &log, &ENV)?;
    let mut acknowledged = Acknowledged::default();
    for (name, body) in [
        (REPLACED, replace_body(1)),
        (
            PUSHED,
            json!({"entity_key": ["entity_id"], "timestamp_field": "event_timestamp",
                   "records": (0..BASE_ROWS).map(|i| json!({"entity_id": i,
                       "event_timestamp": event_time(0), "batch": 0, "value": i})).collect::<Vec<_>>()})
            .to_string(),
        ),
    ] {
        let Some(answer) = post_raw(server.client.clone(), server.url(&format!("/features/{GROUP}/{name}")), body).await? else {
            return Err(format!("saving {name} failed; log:\n{}", server.log_tail()).into());
        };
        let version = answer["version"].as_u64().ok_or("a save answers its version")?;
        if name == REPLACED {
            acknowledged.replaced.push(version);
        } else {
            acknowledged.pushed.push(version);
        }
    }
    server.post_ok("/registry/apply", &registry()).await?;
    let mut state = State {
        generation: 1,
        offline_batches: 0,
        online_batches: 0,
    };
    let (next, mut window_ms) = undisturbed(&server, root, state, &mut acknowledged).await?;
    state = next;
    eprintln!("crash: the four writes take {window_ms} ms undisturbed; {cycles} cycles");

    let mut server = server;
    let run = Instant::now();
    // Per write (replace, offline push, online push): acknowledged, applied without an
    // acknowledgement, not applied.
    let mut outcomes = [[0u32; 3]; 3];
    for cycle in 1..=cycles {
        if cycle % REMEASURE_EVERY == 0 {
            // The pushed table grows, and with it the time the writes take.
            let (next, window) = undisturbed(&server, root, state, &mut acknowledged).await?;
            eprintln!("crash: the four writes take {window} ms undisturbed");
            (state, window_ms) = (next, window);
        }
        let writes = start_writes(&server, state);
        // Up to a little past the undisturbed time, so some kills land after every write.
        let delay = rng.below(window_ms * 13 / 10 + 50);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        server.kill()?;
        let acks = finish_writes(writes).await?;
        server = ChildServer::start(root, &log, &ENV)?;
        acknowledged.add(&acks);
        let checked = match check_restarted(&server, root, state, acks, true).await {
            Ok(next) => check_histories(root, &acknowledged).map(|()| next),
            Err(e) => Err(e),
        };
        match checked {
            Ok(next) => {
                let applied = [
                    (acks.replace, next.generation > state.generation),
                    (acks.offline, next.offline_batches > state.offline_batches),
                    (acks.online, next.online_batches > state.online_batches),
                ];
                for (counts, (acked, applied)) in outcomes.iter_mut().zip(applied) {
                    counts[if acked {
                        0
                    } else if applied {
                        1
                    } else {
                        2
                    }] += 1;
                }
                eprintln!(
                    "crash cycle {cycle}: killed after {delay} ms; acked {acks:?}; now {next:?}"
                );
                state = next;
            }
            Err(e) => {
                return Err(format!(
                    "cycle {cycle} (killed after {delay} ms, acked {acks:?}, before {state:?}): {e}\nlog:\n{}",
                    server.log_tail()
                )
                .into());
            }
        }
    }
    eprintln!(
        "crash: {cycles} kill-and-restart cycles in {:.1} s, 0 lost or torn tables",
        run.elapsed().as_secs_f64()
    );
    for (write, [acked, unacked, not]) in ["replace", "offline push", "online push"]
        .iter()
        .zip(outcomes)
    {
        eprintln!(
            "crash: {write}: {acked} acknowledged, {unacked} applied unacknowledged, {not} not applied"
        );
    }
    Ok(())
}

/// A temporary file name as `storage::layout` makes them, for file `target`.
fn temp_name(target: &str, n: u32) -> String {
    format!(".{target}.tmp-4242-{n}")
}

#[tokio::test]
async fn start_up_sweeps_temporary_files_and_orphan_parts_everywhere() -> TestResult {
    let server = crate::common::TestServer::start()?;
    server
        .save(
            GROUP,
            "t",
            json!({"entity_key": ["entity_id"], "timestamp_field": "event_timestamp",
                   "records": [{"entity_id": 1, "v": 1, "event_timestamp": "2025-01-01T00:00:00Z"}]}),
        )
        .await?;
    let (status, answer) = server
        .post(
            "/push",
            &json!({"feature_view": "t", "to": "offline",
                    "df": {"entity_id": [2], "v": [2], "event_timestamp": ["2025-01-02T00:00:00Z"]}}),
        )
        .await?;
    assert_eq!(status, 200, "{answer}");
    let root = server.root().to_path_buf();
    let appends = root.join("features").join(GROUP).join("_appends").join("t");
    let base_dirs: Vec<_> = std::fs::read_dir(&appends)?
        .flatten()
        .map(|e| e.path())
        .collect();
    let [base_dir] = base_dirs.as_slice() else {
        return Err(format!("expected one parts folder, found {base_dirs:?}").into());
    };
    let data = server.stop();
    // What writes killed at every step leave behind: a temporary beside each kind of file, and
    // the parts of a base file a replace superseded before it could remove them.
    let planted = [
        root.join(temp_name("write-probe", 1)),
        root.join("features")
            .join(GROUP)
            .join(temp_name("t.parquet", 2)),
        root.join("metadata")
            .join(GROUP)
            .join(temp_name("t.json", 3)),
        root.join("registry").join(temp_name("registry.json", 4)),
        base_dir.join(temp_name("part-000002.parquet", 5)),
    ];
    for path in &planted {
        std::fs::write(path, b"half a file")?;
    }
    let orphan = appends.join("v0");
    std::fs::create_dir_all(&orphan)?;
    std::fs::write(orphan.join("part-000001.parquet"), b"an old part")?;

    let server = crate::common::TestServer::start_on(data, |_| {})?;
    let left: Vec<_> = planted.iter().filter(|p| p.exists()).collect();
    assert!(
        left.is_empty(),
        "temporary files left after start-up: {left:?}"
    );
    assert!(
        !orphan.exists(),
        "the parts of a replaced base file were kept"
    );
    let (status, page) = server.get(&format!("/features/{GROUP}/t")).await?;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        page["metadata"]["total_rows"], 2,
        "the table and its part: {page}"
    );
    Ok(())
}

#[tokio::test]
async fn an_append_whose_sidecar_update_was_lost_keeps_its_version_after_a_restart() -> TestResult {
    let server = crate::common::TestServer::start()?;
    let saved = server
        .save(
            GROUP,
            "t",
            json!({"entity_key": ["entity_id"], "timestamp_field": "event_timestamp",
                   "records": [{"entity_id": 1, "v": 1, "event_timestamp": "2025-01-01T00:00:00Z"}]}),
        )
        .await?;
    let sidecar = server.root().join("metadata").join(GROUP).join("t.json");
    let before_push = std::fs::read(&sidecar)?;
    let (status, pushed) = server
        .post(
            "/push",
            &json!({"feature_view": "t", "to": "offline",
                    "df": {"entity_id": [2], "v": [2], "event_timestamp": ["2025-01-02T00:00:00Z"]}}),
        )
        .await?;
    assert_eq!(status, 200, "{pushed}");
    let version = pushed["offline"]["version"].as_u64().ok_or("no version")?;
    assert!(version > saved["version"].as_u64().ok_or("no version")?);
    // A kill after the part file was renamed into place, before the sidecar was rewritten.
    std::fs::write(&sidecar, before_push)?;
    let server = crate::common::restart(server).await?;
    let (status, page) = server.get(&format!("/features/{GROUP}/t")).await?;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["metadata"]["total_rows"], 2);
    // The version readers saw without the pushed row must not now name the table with it.
    assert_eq!(page["metadata"]["version"], version, "{page}");
    Ok(())
}
