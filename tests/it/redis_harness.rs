//! The Redis test harness itself (`common::redis`): the online-tier and change-bus tests rely
//! on it starting a real server, keeping append-only data across a clean restart, and coming
//! back on the same URL after a crash.

use std::net::TcpStream;

use crate::common::TestResult;
use crate::common::redis::{Reply, dedicated_redis, shared_redis, unique_prefix};

#[test]
fn shared_redis_answers_ping_and_keeps_tests_apart_by_prefix() -> TestResult {
    let Some(redis) = shared_redis() else {
        return Ok(());
    };
    assert_eq!(redis.cmd(&["PING"]), "PONG");
    let info = redis.cmd(&["INFO", "server"]);
    // Valkey also reports the Redis version it is compatible with; its own comes first here.
    let version = ["valkey_version:", "redis_version:"]
        .iter()
        .find_map(|key| info.lines().find(|l| l.starts_with(key)))
        .unwrap_or("version unknown");
    println!(
        "Redis test server: {} ({})",
        redis.binary().display(),
        version.trim()
    );
    assert!(
        redis.url().starts_with("redis://127.0.0.1:"),
        "{}",
        redis.url()
    );
    assert!(redis.url().ends_with("/0"), "{}", redis.url());
    let (mine, theirs) = (unique_prefix("harness"), unique_prefix("harness"));
    assert_ne!(mine, theirs);
    redis.cmd(&["HSET", &format!("{mine}user:1"), "f", "1"]);
    redis.cmd(&["HSET", &format!("{theirs}user:1"), "f", "2"]);
    assert_eq!(redis.keys(&format!("{mine}*")), [format!("{mine}user:1")]);
    assert_eq!(
        redis.hgetall(&format!("{theirs}user:1")),
        [("f".to_owned(), "2".to_owned())]
    );
    // The same server for a test running beside this one.
    let again = shared_redis().ok_or("the shared server went away")?;
    assert_eq!(again.port(), redis.port());
    Ok(())
}

#[test]
fn dedicated_redis_keeps_a_written_key_across_a_clean_stop_and_start() -> TestResult {
    let Some(redis) = dedicated_redis() else {
        return Ok(());
    };
    let url = redis.url();
    redis.cmd(&[
        "HSET",
        "fs:driver:1001",
        "conv_rate",
        "0.5",
        "_ts:stats",
        "1700000000",
    ]);
    redis.stop();
    assert!(!redis.is_running());
    assert!(
        TcpStream::connect(("127.0.0.1", redis.port())).is_err(),
        "a stopped server still accepts connections"
    );
    assert!(redis.query(&["PING"]).is_err());
    redis.start()?;
    assert_eq!(redis.url(), url, "restarted on another URL");
    assert_eq!(
        redis.hgetall("fs:driver:1001"),
        [
            ("_ts:stats".to_owned(), "1700000000".to_owned()),
            ("conv_rate".to_owned(), "0.5".to_owned())
        ],
        "log: {}",
        redis.log_tail()
    );
    assert_eq!(redis.cmd(&["DBSIZE"]), "1");
    assert_eq!(
        redis.cmd(&["CONFIG", "GET", "appendonly"]),
        "appendonly\nyes"
    );
    Ok(())
}

#[test]
fn killed_dedicated_redis_restarts_on_the_same_port() -> TestResult {
    let Some(redis) = dedicated_redis() else {
        return Ok(());
    };
    let port = redis.port();
    redis.kill();
    assert!(redis.query(&["PING"]).is_err(), "a killed server answered");
    redis.start()?;
    assert_eq!(redis.port(), port);
    assert_eq!(redis.query(&["PING"])?, Reply::Status("PONG".into()));
    assert_eq!(redis.cmd(&["SET", "k", "v"]), "OK");
    assert_eq!(redis.cmd(&["GET", "k"]), "v");
    assert_eq!(redis.cmd(&["GET", "missing"]), "");
    Ok(())
}
