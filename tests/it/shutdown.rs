//! Graceful shutdown of the real binary: on SIGTERM or SIGINT it stops accepting connections,
//! lets the requests in flight finish (within `server.shutdown_timeout_secs`), flushes the
//! durable stores and exits 0; nothing it acknowledged is lost.
//!
//! Two requests are in flight when the signal arrives: a large table write being parsed and
//! written, and a write whose body the client is still sending (half of it before the signal,
//! the rest after). Both must get a complete success answer, not a reset.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::child::ChildServer;
use crate::common::{TestResult, list_files, online_slots, read};

const GROUP: &str = "misc";
/// Rows of the large write: a few seconds of work in a debug build.
const BIG_ROWS: u64 = 300_000;
const SHUTDOWN_TIMEOUT_SECS: u64 = 20;
const ENV: [(&str, &str); 3] = [
    ("FEATURESTORE__SERVER__SHUTDOWN_TIMEOUT_SECS", "20"),
    ("FEATURESTORE__SERVER__WORKERS", "2"),
    ("FEATURESTORE__API__MAX_BODY_MB", "256"),
];

fn big_body() -> String {
    use std::fmt::Write;
    let mut body = String::from(r#"{"records":["#);
    for i in 0..BIG_ROWS {
        if i > 0 {
            body.push(',');
        }
        let _ = write!(body, r#"{{"entity_id":{i},"score":{}}}"#, i * 7);
    }
    body.push_str("]}");
    body
}

/// Sends a POST of `body` to `path` on a raw connection: the head and the first half of the
/// body at once, the rest when `go` says so. Returns the status and the body of the answer,
/// read to the end of the connection.
fn slow_post(
    addr: SocketAddr,
    path: &str,
    body: &[u8],
    sent_half: mpsc::Sender<()>,
    go: mpsc::Receiver<()>,
) -> TestResult<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let half = body.len() / 2;
    stream.write_all(head.as_bytes())?;
    stream.write_all(&body[..half])?;
    stream.flush()?;
    sent_half.send(())?;
    go.recv()?;
    stream.write_all(&body[half..])?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    let text = String::from_utf8_lossy(&answer);
    let (head, rest) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("an incomplete answer: {text:?}"))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status in {head:?}"))?;
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .and_then(|v| v.trim().parse().ok())
        })
        .ok_or_else(|| format!("no content-length in {head:?}"))?;
    if rest.len() != length {
        return Err(format!("the answer was cut: {} of {length} bytes", rest.len()).into());
    }
    Ok((status, rest.as_bytes().to_vec()))
}

async fn get_ok(server: &ChildServer, path: &str) -> TestResult<Value> {
    let (status, answer) = read(server.client.get(server.url(path)).send().await?).await?;
    if status != 200 {
        return Err(format!("GET {path} answered {status}: {answer}").into());
    }
    Ok(answer)
}

/// The online value of `profile:score` for entity 1.
async fn online_score(server: &ChildServer) -> TestResult<(Value, String)> {
    let answer = server
        .post_ok(
            "/get-online-features",
            &json!({"features": ["profile:score"], "entities": {"entity_id": [1]}}),
        )
        .await?;
    let (value, status, _) = online_slots(&answer, "score")?.remove(0);
    Ok((value, status))
}

/// Whether a new connection to `addr` is refused now.
fn refused(addr: SocketAddr) -> bool {
    matches!(TcpStream::connect_timeout(&addr, Duration::from_millis(200)), Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused)
}

async fn in_flight_requests_finish_on(signal: &str) -> TestResult {
    let data = tempfile::tempdir()?;
    let logs = tempfile::tempdir()?;
    let root = data.path();
    let log = logs.path().join("server.log");
    let mut server = ChildServer::start(root, &log, &ENV)?;
    server.post_ok(&format!("/features/{GROUP}/profile"),
        &json!({"entity_key": ["entity_id"], "timestamp_field": "event_timestamp",
                "records": [{"entity_id": 1, "score": 10, "event_timestamp": "2025-01-01T00:00:00Z"}]}),
    )
    .await?;
    // Rows pushed online live only in sled: they survive only if it was flushed.
    server.post_ok("/push",
        &json!({"feature_view": "profile", "to": "online",
                "df": {"entity_id": [1], "score": [99], "event_timestamp": ["2025-01-02T00:00:00Z"]}}),
    )
    .await?;

    let big = {
        let (client, url) = (
            server.client.clone(),
            server.url(&format!("/features/{GROUP}/big")),
        );
        let body = big_body();
        tokio::spawn(async move {
            let response = client
                .post(url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body)
                .send()
                .await?;
            let status = response.status().as_u16();
            let bytes = response.bytes().await?;
            TestResult::Ok((
                status,
                serde_json::from_slice::<Value>(&bytes)?,
                Instant::now(),
            ))
        })
    };
    let (sent_half, half_sent) = mpsc::channel();
    let (go, wait_go) = mpsc::channel();
    let slow = {
        let addr = server.addr;
        let body = json!({"records": [{"entity_id": 5, "note": "sent slowly"}]}).to_string();
        std::thread::spawn(move || {
            slow_post(
                addr,
                &format!("/features/{GROUP}/slow"),
                body.as_bytes(),
                sent_half,
                wait_go,
            )
        })
    };
    half_sent.recv_timeout(Duration::from_secs(10))?;
    // Long enough for the large body to have reached the server and be in work.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let signalled = Instant::now();
    server.signal(signal)?;

    // The listener closes while the slow request still waits for the rest of its body.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !refused(server.addr) {
        if Instant::now() > deadline {
            return Err(format!(
                "still accepting connections after SIG{signal}; log:\n{}",
                server.log_tail()
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    go.send(())?;
    let (status, body) = slow.join().map_err(|_| "the slow client panicked")??;
    assert_eq!(
        status,
        201,
        "the slow write: {}",
        String::from_utf8_lossy(&body)
    );
    let (status, answer, answered) = big.await??;
    assert_eq!(status, 201, "the large write: {answer}");
    assert_eq!(answer["rows_saved"], BIG_ROWS);
    assert!(
        answered > signalled,
        "the large write finished before the signal: the test proved nothing"
    );

    let exit = server.wait_timeout(Duration::from_secs(SHUTDOWN_TIMEOUT_SECS + 10))?;
    let took = signalled.elapsed();
    let log_text = server.log_tail();
    let exit =
        exit.ok_or_else(|| format!("still running {took:?} after SIG{signal}; log:\n{log_text}"))?;
    assert!(
        exit.success(),
        "exit status {exit} after SIG{signal}; log:\n{log_text}"
    );
    eprintln!(
        "SIG{signal}: in-flight writes answered {} ms after the signal, exited 0 after {} ms",
        (answered - signalled).as_millis(),
        took.as_millis()
    );
    drop(server);

    no_temp_files(root)?;
    let server = ChildServer::start(root, &log, &ENV)?;
    let page = get_ok(&server, &format!("/features/{GROUP}/big?limit=0")).await?;
    assert_eq!(page["metadata"]["total_rows"], BIG_ROWS);
    let page = get_ok(&server, &format!("/features/{GROUP}/slow")).await?;
    assert_eq!(
        page["data"],
        json!([{"entity_id": 5, "note": "sent slowly"}])
    );
    assert_eq!(
        online_score(&server).await?,
        (json!(99), "PRESENT".to_owned())
    );
    Ok(())
}

fn no_temp_files(root: &Path) -> TestResult {
    let temps: Vec<_> = list_files(root)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(".tmp-"))
        .collect();
    if temps.is_empty() {
        Ok(())
    } else {
        Err(format!("temporary files after a clean shutdown: {temps:?}").into())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_requests_refuses_new_ones_and_exits_0() -> TestResult {
    in_flight_requests_finish_on("TERM").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_finishes_in_flight_requests_refuses_new_ones_and_exits_0() -> TestResult {
    in_flight_requests_finish_on("INT").await
}
