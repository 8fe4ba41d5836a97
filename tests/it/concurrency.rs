//! Concurrency: many readers and writers on one table through HTTP at once.
//!
//! Writers replace `misc/conc` with contents that say who wrote them: every row of a replace
//! carries the same `writer` and `seq`, and the write's row count and values follow from
//! them. Pushers append batches (offline, or online and offline) whose rows carry their own
//! `writer` (from 100 up) and `seq`. Readers read the whole table in one page, batch lookups
//! and online lookups, and check each answer by itself and against the history:
//! - *one version per answer*: a page is the rows of one replace, complete and in order,
//!   followed by whole push batches; a batch or online lookup shows the rows of one replace;
//! - *the version says what the content is*: the rows of a page at version `v` are those of
//!   the latest replace acknowledged with a version up to `v`, followed by exactly the pushes
//!   acknowledged with versions between the two, in version order;
//! - *versions never go back*: each reader sees versions (and, in lookups that carry none,
//!   replaces) in non-decreasing order;
//! - *no write is lost*: every write is acknowledged with its own version; the final version
//!   is the first plus one per write (and one per compaction a push reports); and the final
//!   table is the last replace plus every push acknowledged after it. A replace supersedes
//!   everything before it by design, so "not lost" for a replace means it was the table at its
//!   version (seen by any reader that read that version) and for a push that it is in every
//!   later version until the next replace.
//!
//! A second test checks that a large write holds up neither readers of the same table nor a
//! writer of another table: writes are serialised per table, readers never wait for them.
//! It runs one worker, so every connection shares the large write's event loop: a body that
//! was deserialized there (2.5 s for these 300 k records in a debug build) stalled them all
//! until large bodies moved to the blocking pool (`api/body.rs`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{TestResult, TestServer, read};

const GROUP: &str = "misc";
const TABLE: &str = "conc";
/// Rows per push batch.
const PUSH_ROWS: u64 = 40;
/// First `writer` of pushers: replace writers are below.
const PUSHER_BASE: u64 = 100;
/// First entity id of pushed rows: lookups of ids below it see only replaced rows.
const PUSHED_IDS: u64 = 1_000_000;
const EVENT_TS: &str = "2025-01-01T00:00:00Z";
const PUSH_TS: &str = "2025-01-02T00:00:00Z";
/// How long readers and writers hammer the table.
const HAMMER: Duration = Duration::from_secs(4);

/// Rows of replace `(w, s)`.
fn replace_rows(w: u64, s: u64) -> u64 {
    2000 + (w * 311 + s * 173) % 1000
}

/// The value of row `i` of write `(w, s)`.
fn value(w: u64, s: u64, i: u64) -> u64 {
    (w * 10_000 + s) * 10_000 + i
}

fn replace_body(w: u64, s: u64) -> Value {
    let records: Vec<Value> = (0..replace_rows(w, s))
        .map(|i| {
            json!({"entity_id": i, "event_timestamp": EVENT_TS, "writer": w, "seq": s,
                   "value": value(w, s, i)})
        })
        .collect();
    json!({"entity_key": ["entity_id"], "timestamp_field": "event_timestamp", "records": records})
}

fn push_body(p: u64, q: u64) -> Value {
    let n = PUSH_ROWS as usize;
    json!({
        "feature_view": TABLE,
        "to": if q.is_multiple_of(2) { "offline" } else { "online_and_offline" },
        "df": {
            "entity_id": (0..PUSH_ROWS).map(|j| PUSHED_IDS + j).collect::<Vec<_>>(),
            "event_timestamp": vec![PUSH_TS; n],
            "writer": vec![p; n],
            "seq": vec![q; n],
            "value": (0..PUSH_ROWS).map(|j| value(p, q, j)).collect::<Vec<_>>(),
        },
    })
}

/// What a reader saw in one answer.
#[derive(Debug, Clone)]
enum Seen {
    /// A whole-table page: its version, its replace and its push batches in order.
    Page {
        version: u64,
        base: (u64, u64),
        pushes: Vec<(u64, u64)>,
    },
    /// A lookup that carries no version (batch or online): the replace its rows came from.
    Base((u64, u64), &'static str),
}

/// The `(writer, seq, value)` of a row, checked to be an integer triple.
fn triple(row: &Value) -> TestResult<(u64, u64, u64, u64)> {
    let field = |name: &str| {
        row[name]
            .as_u64()
            .ok_or_else(|| format!("row without an integer {name}: {row}"))
    };
    Ok((
        field("entity_id")?,
        field("writer")?,
        field("seq")?,
        field("value")?,
    ))
}

/// Parses and checks a whole-table page by itself.
fn parse_page(page: &Value) -> TestResult<Seen> {
    let rows = page["data"].as_array().ok_or("a page without data")?;
    let version = page["metadata"]["version"]
        .as_u64()
        .ok_or("a page without a version")?;
    if page["metadata"]["total_rows"] != rows.len() as u64 {
        return Err(format!(
            "version {version}: total_rows {} but {} rows in the answer",
            page["metadata"]["total_rows"],
            rows.len()
        )
        .into());
    }
    let (_, w, s, _) = triple(rows.first().ok_or("an empty page")?)?;
    let n = replace_rows(w, s) as usize;
    if rows.len() < n || !((rows.len() - n) as u64).is_multiple_of(PUSH_ROWS) {
        return Err(format!("version {version}: {} rows do not make replace ({w}, {s}) of {n} rows and whole pushes", rows.len()).into());
    }
    for (i, row) in rows[..n].iter().enumerate() {
        let i = i as u64;
        if triple(row)? != (i, w, s, value(w, s, i)) {
            return Err(format!(
                "version {version}: row {i} is {row}, not of replace ({w}, {s}): a mix"
            )
            .into());
        }
    }
    let mut pushes = Vec::new();
    for batch in rows[n..].chunks(PUSH_ROWS as usize) {
        let (_, p, q, _) = triple(&batch[0])?;
        for (j, row) in batch.iter().enumerate() {
            let j = j as u64;
            if p < PUSHER_BASE || triple(row)? != (PUSHED_IDS + j, p, q, value(p, q, j)) {
                return Err(format!(
                    "version {version}: pushed row {j} is {row}, not of push ({p}, {q})"
                )
                .into());
            }
        }
        pushes.push((p, q));
    }
    Ok(Seen::Page {
        version,
        base: (w, s),
        pushes,
    })
}

/// The replace that rows of ids below [`PUSHED_IDS`] came from, checking they agree.
fn one_base(
    rows: impl Iterator<Item = (u64, u64, u64, u64)>,
    what: &str,
) -> TestResult<(u64, u64)> {
    let mut base = None;
    for (id, w, s, v) in rows {
        if v != value(w, s, id) || *base.get_or_insert((w, s)) != (w, s) {
            return Err(format!(
                "{what}: entity {id} has ({w}, {s}, {v}) beside rows of {base:?}: a mix"
            )
            .into());
        }
    }
    base.ok_or_else(|| format!("{what}: no rows").into())
}

/// Sample ids present in every replace (the smallest has 2000 rows).
const LOOKUP_IDS: [u64; 4] = [0, 7, 1000, 1999];

async fn read_page(client: &reqwest::Client, base: &str) -> TestResult<Seen> {
    let url =
        format!("{base}/features/{GROUP}/{TABLE}?columns=entity_id,writer,seq,value&limit=100000");
    let (status, page) = read(client.get(url).send().await?).await?;
    if status != 200 {
        return Err(format!("a page read answered {status}: {page}").into());
    }
    parse_page(&page)
}

async fn read_batch(client: &reqwest::Client, base: &str) -> TestResult<Seen> {
    let body = json!({"feature_names": [TABLE], "entity_ids": LOOKUP_IDS});
    let (status, answer) = read(
        client
            .post(format!("{base}/features/batch"))
            .json(&body)
            .send()
            .await?,
    )
    .await?;
    if status != 200 {
        return Err(format!("a batch lookup answered {status}: {answer}").into());
    }
    let rows = answer["features"][TABLE]
        .as_array()
        .ok_or("a batch answer without rows")?;
    if rows.len() != LOOKUP_IDS.len() {
        return Err(format!(
            "a batch lookup of {LOOKUP_IDS:?} answered {} rows: {answer}",
            rows.len()
        )
        .into());
    }
    let rows = rows.iter().map(triple).collect::<TestResult<Vec<_>>>()?;
    Ok(Seen::Base(
        one_base(rows.into_iter(), "batch lookup")?,
        "batch",
    ))
}

async fn read_online(client: &reqwest::Client, base: &str) -> TestResult<Seen> {
    let body = json!({"features": [format!("{TABLE}:writer"), format!("{TABLE}:seq"), format!("{TABLE}:value")],
                      "entities": {"entity_id": LOOKUP_IDS}});
    let (status, answer) = read(
        client
            .post(format!("{base}/get-online-features"))
            .json(&body)
            .send()
            .await?,
    )
    .await?;
    if status != 200 {
        return Err(format!("an online lookup answered {status}: {answer}").into());
    }
    let column = |name: &str| -> TestResult<Vec<u64>> {
        let slots = crate::common::online_slots(&answer, name)?;
        slots
            .into_iter()
            .map(|(v, status, _)| {
                v.as_u64()
                    .filter(|_| status == "PRESENT")
                    .ok_or_else(|| format!("online {name} is {v} ({status}): {answer}").into())
            })
            .collect()
    };
    let (writers, seqs, values) = (column("writer")?, column("seq")?, column("value")?);
    let rows = (0..LOOKUP_IDS.len()).map(|k| (LOOKUP_IDS[k], writers[k], seqs[k], values[k]));
    Ok(Seen::Base(one_base(rows, "online lookup")?, "online"))
}

/// A table's content: the replace `(writer, seq)` it is and the pushes on top, in order.
type TableState = ((u64, u64), Vec<(u64, u64)>);

/// An acknowledged write: its version, for a push whether it compacted, and when the
/// acknowledgement arrived.
#[derive(Debug, Clone, Copy)]
struct Ack {
    version: u64,
    compacted: bool,
    at: Instant,
}

/// Replaces by `(writer, seq)` and pushes by `(pusher, seq)`, with their acknowledgements.
#[derive(Debug, Default)]
struct History {
    replaces: HashMap<(u64, u64), Ack>,
    pushes: HashMap<(u64, u64), Ack>,
}

impl History {
    /// The version a write's rows first appear at. A push is one version, whether it appended a part or widened the table with a fold;
    /// background folds change no row and keep the version.
    fn first_version(ack: &Ack) -> u64 {
        ack.version
    }

    /// The table as of `version`: its replace and its pushes in version order.
    fn at(&self, version: u64) -> Option<TableState> {
        let (base, ack) = self
            .replaces
            .iter()
            .filter(|(_, a)| a.version <= version)
            .max_by_key(|(_, a)| a.version)?;
        let mut pushes: Vec<(u64, (u64, u64))> = self
            .pushes
            .iter()
            .map(|(id, a)| (Self::first_version(a), *id))
            .filter(|(v, _)| *v > ack.version && *v <= version)
            .collect();
        pushes.sort();
        Some((*base, pushes.into_iter().map(|(_, id)| id).collect()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_readers_never_see_a_mix_and_no_write_is_lost() -> TestResult {
    let server = TestServer::start_with(|c| {
        c.server.workers = 4;
        c.storage.compact_after_parts = 3;
        c.api.max_page_limit = 100_000;
    })?;
    let first = server.save(GROUP, TABLE, replace_body(0, 0)).await?;
    server
        .apply(&json!({
            "entities": [{"name": "entity_id", "value_type": "int64"}],
            "feature_views": [{"name": TABLE, "group": GROUP, "entities": ["entity_id"],
                               "timestamp_field": "event_timestamp"}],
        }))
        .await?;
    let history = Arc::new(std::sync::Mutex::new(History::default()));
    let v0 = first["version"].as_u64().ok_or("no version")?;
    history.lock().map_err(|_| "poisoned")?.replaces.insert(
        (0, 0),
        Ack {
            version: v0,
            compacted: false,
            at: Instant::now(),
        },
    );
    let deadline = Instant::now() + HAMMER;

    let mut writers = Vec::new();
    for w in 1..=3u64 {
        let (client, base, history) = (server.client.clone(), server.base.clone(), history.clone());
        writers.push(tokio::spawn(async move {
            let mut s = 0;
            while Instant::now() < deadline {
                s += 1;
                let url = format!("{base}/features/{GROUP}/{TABLE}");
                let (status, answer) =
                    read(client.post(url).json(&replace_body(w, s)).send().await?).await?;
                let version = answer["version"].as_u64().filter(|_| status == 200);
                let version = version
                    .ok_or_else(|| format!("replace ({w}, {s}) answered {status}: {answer}"))?;
                history.lock().map_err(|_| "poisoned")?.replaces.insert(
                    (w, s),
                    Ack {
                        version,
                        compacted: false,
                        at: Instant::now(),
                    },
                );
            }
            TestResult::Ok(())
        }));
    }
    for p in PUSHER_BASE..PUSHER_BASE + 2 {
        let (client, base, history) = (server.client.clone(), server.base.clone(), history.clone());
        writers.push(tokio::spawn(async move {
            let mut q = 0;
            while Instant::now() < deadline {
                q += 1;
                let (status, answer) = read(
                    client
                        .post(format!("{base}/push"))
                        .json(&push_body(p, q))
                        .send()
                        .await?,
                )
                .await?;
                let offline = &answer["offline"];
                let version = offline["version"].as_u64().filter(|_| status == 200);
                let version = version
                    .ok_or_else(|| format!("push ({p}, {q}) answered {status}: {answer}"))?;
                let compacted = offline["compacted"] == true;
                history.lock().map_err(|_| "poisoned")?.pushes.insert(
                    (p, q),
                    Ack {
                        version,
                        compacted,
                        at: Instant::now(),
                    },
                );
            }
            TestResult::Ok(())
        }));
    }
    let mut readers = Vec::new();
    for r in 0..6u64 {
        let (client, base) = (server.client.clone(), server.base.clone());
        readers.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            while Instant::now() < deadline {
                let sent = Instant::now();
                let answer = match r % 3 {
                    0 => read_page(&client, &base).await?,
                    1 => read_batch(&client, &base).await?,
                    _ => read_online(&client, &base).await?,
                };
                seen.push((sent, answer));
            }
            TestResult::Ok(seen)
        }));
    }
    for writer in writers {
        writer.await??;
    }
    let mut observations = Vec::new();
    for reader in readers {
        observations.push(reader.await??);
    }
    let history = Arc::try_unwrap(history)
        .map_err(|_| "writers still hold the history")?
        .into_inner()
        .map_err(|_| "poisoned")?;

    // Every write has a version of its own, and the count of versions adds up.
    let mut versions: Vec<u64> = history
        .replaces
        .values()
        .chain(history.pushes.values())
        .map(|a| a.version)
        .collect();
    let writes = versions.len();
    versions.sort_unstable();
    versions.dedup();
    assert_eq!(
        versions.len(),
        writes,
        "two writes were acknowledged with one version"
    );
    let compactions = history.pushes.values().filter(|a| a.compacted).count() as u64;
    let last = server
        .get(&format!("/features/{GROUP}/{TABLE}/info"))
        .await?
        .1;
    let final_version = last["storage_info"]["version"]
        .as_u64()
        .ok_or("no final version")?;
    assert_eq!(
        final_version,
        v0 + writes as u64 - 1,
        "versions: first {v0}, {writes} writes, {compactions} widening pushes"
    );
    assert!(
        history.replaces.len() > 3 && history.pushes.len() > 2,
        "too few writes to mean anything: {history:?}"
    );

    // The final table is the last replace and every push after it.
    let Seen::Page {
        version,
        base,
        pushes,
    } = read_page(&server.client, &server.base).await?
    else {
        return Err("a page read gave no page".into());
    };
    assert_eq!(version, final_version);
    assert_eq!(
        Some((base, pushes)),
        history.at(version),
        "the final table is not the history's last state"
    );

    // Every answer is the history's state at its version, and nobody went back in time.
    let mut pages = 0;
    for seen in &observations {
        let mut newest = 0;
        for (sent, observation) in seen {
            let replace_version = |base: &(u64, u64)| {
                history
                    .replaces
                    .get(base)
                    .map(|a| a.version)
                    .ok_or_else(|| format!("rows of a replace never acknowledged: {base:?}"))
            };
            // Writes acknowledged before the request was sent must be in the answer.
            let acked_before = |acks: &HashMap<(u64, u64), Ack>| {
                acks.values()
                    .filter(|a| a.at < *sent)
                    .map(|a| a.version)
                    .max()
                    .unwrap_or(0)
            };
            let order = match observation {
                Seen::Page {
                    version,
                    base,
                    pushes,
                } => {
                    pages += 1;
                    let expected = history.at(*version);
                    if expected.as_ref() != Some(&(*base, pushes.clone())) {
                        return Err(format!("version {version} showed {base:?} + {pushes:?}; the history says {expected:?}").into());
                    }
                    let required =
                        acked_before(&history.replaces).max(acked_before(&history.pushes));
                    if *version < required {
                        return Err(format!("a stale page: version {version} after version {required} was acknowledged").into());
                    }
                    *version
                }
                Seen::Base(base, kind) => {
                    let version = replace_version(base)?;
                    let required = acked_before(&history.replaces);
                    if version < required {
                        return Err(format!("a stale {kind} lookup: {observation:?} (version {version}) after the replace of version {required} was acknowledged").into());
                    }
                    version
                }
            };
            if order < newest {
                return Err(format!(
                    "a reader went back from version {newest} to {order}: {observation:?}"
                )
                .into());
            }
            newest = newest.max(order);
        }
    }
    let answers: usize = observations.iter().map(Vec::len).sum();
    eprintln!(
        "concurrency: {} replaces, {} pushes ({compactions} compactions), {answers} answers ({pages} pages) checked",
        history.replaces.len(),
        history.pushes.len()
    );
    Ok(())
}

/// A replace of `big` with `rows` rows, as text (building that many `Value`s would take
/// longer than the write).
fn big_body(rows: u64) -> String {
    use std::fmt::Write;
    let mut body = String::from(r#"{"entity_key":["entity_id"],"records":["#);
    for i in 0..rows {
        if i > 0 {
            body.push(',');
        }
        let _ = write!(
            body,
            r#"{{"entity_id":{i},"score":{},"label":"row-{}"}}"#,
            i * 3,
            i % 97
        );
    }
    body.push_str("]}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_large_write_holds_up_neither_readers_nor_writers_of_other_tables() -> TestResult {
    let server = TestServer::start_with(|c| c.server.workers = 1)?;
    server
        .save(
            GROUP,
            "big",
            json!({"records": [{"entity_id": 0, "score": 0, "label": "x"}]}),
        )
        .await?;
    server
        .save(
            GROUP,
            "other",
            json!({"records": [{"entity_id": 0, "n": 0}]}),
        )
        .await?;
    let body = big_body(300_000);
    let (client, url) = (
        server.client.clone(),
        server.url(&format!("/features/{GROUP}/big")),
    );
    let started = Instant::now();
    let write = tokio::spawn(async move {
        let response = client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        TestResult::Ok((status, text, started.elapsed()))
    });
    let mut read_latency = Duration::ZERO;
    let mut write_latency = Duration::ZERO;
    let (mut reads, mut writes) = (0, 0);
    while !write.is_finished() {
        let t = Instant::now();
        let (status, page) = server
            .get(&format!("/features/{GROUP}/big?limit=10"))
            .await?;
        read_latency = read_latency.max(t.elapsed());
        assert_eq!(status, 200, "{page}");
        // The old table until the new one is complete (it may be, just before the answer).
        let rows = &page["metadata"]["total_rows"];
        assert!(
            *rows == 1 || *rows == 300_000,
            "a table of {rows} rows while it is replaced"
        );
        let t = Instant::now();
        writes += 1;
        server
            .save(
                GROUP,
                "other",
                json!({"records": [{"entity_id": 0, "n": writes}]}),
            )
            .await?;
        write_latency = write_latency.max(t.elapsed());
        reads += 1;
    }
    let (status, text, took) = write.await??;
    assert_eq!(status, 200, "{text}");
    eprintln!(
        "large write: {} ms; meanwhile {reads} reads (slowest {} ms) and {writes} writes to another table (slowest {} ms)",
        took.as_millis(),
        read_latency.as_millis(),
        write_latency.as_millis()
    );
    assert!(
        reads >= 3,
        "too few reads during the write to mean anything"
    );
    assert!(
        read_latency * 4 < took,
        "a reader waited for the writer: {read_latency:?} of {took:?}"
    );
    assert!(
        write_latency * 4 < took,
        "a writer of another table waited: {write_latency:?} of {took:?}"
    );
    let (_, page) = server
        .get(&format!("/features/{GROUP}/big?limit=0"))
        .await?;
    assert_eq!(page["metadata"]["total_rows"], 300_000);
    Ok(())
}

// The same tests on the s3 kind (those that look at files under the data root have none).
crate::on_s3_too!(
    concurrent_readers_never_see_a_mix_and_no_write_is_lost,
    a_large_write_holds_up_neither_readers_nor_writers_of_other_tables,
);
