//! kill -9 of the real server during a stream of registry applies, restarted each time: the
//! registry's history stays consistent with its document. Every version listed is readable,
//! the numbers run without gaps, the latest version holds exactly the definitions served,
//! every acknowledged apply is in the version its answer named, a version once read never
//! changes (no number is reused), and an apply killed after its document was written is
//! recorded as the apply it was.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::TestResult;
use crate::common::child::ChildServer;
use crate::common::rng::SplitMix;

/// Kill-and-restart cycles (`FEATURESTORE_REGISTRY_CRASH_CYCLES` overrides).
const DEFAULT_CYCLES: u64 = 6;

/// Applies one new entity after another until the server stops answering; returns the
/// acknowledged ones with the registry version their answer named.
async fn apply_until_killed(server_url: String, cycle: u64) -> Vec<(String, u64)> {
    let client = reqwest::Client::new();
    let mut acked = Vec::new();
    for i in 0.. {
        let name = format!("c{cycle}_e{i}");
        let sent = client
            .post(format!("{server_url}/registry/apply"))
            .json(&json!({"entities": [{"name": name, "value_type": "int64"}]}))
            .send()
            .await;
        let Ok(response) = sent else { break };
        let version = response
            .headers()
            .get("x-registry-version")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        match (response.status().as_u16(), version) {
            (200, Some(version)) => acked.push((name, version)),
            _ => break,
        }
    }
    acked
}

async fn get_json(server: &ChildServer, path: &str) -> TestResult<Value> {
    let response = server.client.get(server.url(path)).send().await?;
    let status = response.status().as_u16();
    let body: Value = response.json().await?;
    if status != 200 {
        return Err(format!("GET {path} answered {status}: {body}").into());
    }
    Ok(body)
}

/// The entity names of a registry document.
fn entity_names(document: &Value) -> Vec<String> {
    let mut names: Vec<String> = document["entities"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter_map(|e| e["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Checks the history after a restart; returns every version's entity names.
async fn check_history(
    server: &ChildServer,
    acked: &[(String, u64)],
    seen: &BTreeMap<u64, Vec<String>>,
) -> TestResult<BTreeMap<u64, Vec<String>>> {
    let page = get_json(server, "/registry/history?limit=1000").await?;
    let numbers: Vec<u64> = page["versions"]
        .as_array()
        .ok_or("versions")?
        .iter()
        .filter_map(|v| v["version"].as_u64())
        .collect();
    let current = page["current_version"].as_u64().ok_or("current_version")?;
    let expected: Vec<u64> = (1..=current).rev().collect();
    assert_eq!(
        numbers, expected,
        "every version from 1 to the current one, no gap"
    );
    let mut documents = BTreeMap::new();
    for version in numbers {
        let body = get_json(server, &format!("/registry/history/{version}")).await?;
        // Only applies ran: a write killed after replacing the document is committed as the
        // apply it prepared, never left `unrecorded`.
        assert_eq!(body["operation"], "apply", "version {version}: {body}");
        documents.insert(version, entity_names(&body["document"]));
    }
    let served = entity_names(&get_json(server, "/registry/entities").await?);
    // Killed before its first write committed, the registry is still empty at version 0.
    let latest = documents.get(&current).cloned().unwrap_or_default();
    assert_eq!(
        latest, served,
        "the latest version holds exactly what is served"
    );
    for (name, version) in acked {
        let names = documents
            .get(version)
            .ok_or("an acknowledged version is missing")?;
        assert!(
            names.contains(name),
            "{name} is in version {version}, as acknowledged"
        );
        assert!(
            served.contains(name),
            "{name} was acknowledged, so it is served"
        );
    }
    for (version, names) in seen {
        assert_eq!(
            documents.get(version),
            Some(names),
            "version {version} read before the crash is unchanged"
        );
    }
    Ok(documents)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_applies_leaves_a_history_consistent_with_the_registry() -> TestResult {
    let data = tempfile::tempdir()?;
    let logs = tempfile::tempdir()?;
    let log = logs.path().join("server.log");
    let mut rng = SplitMix::from_env_or_clock("FEATURESTORE_REGISTRY_CRASH_SEED");
    let cycles = std::env::var("FEATURESTORE_REGISTRY_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CYCLES);
    let mut server = ChildServer::start(data.path(), &log, &[])?;
    let mut seen = BTreeMap::new();
    let mut unacknowledged = 0;
    for cycle in 1..=cycles {
        let writes = tokio::spawn(apply_until_killed(server.base.clone(), cycle));
        tokio::time::sleep(Duration::from_millis(50 + rng.below(250))).await;
        server.kill()?;
        let acked = writes.await?;
        server = ChildServer::start(data.path(), &log, &[])?;
        match check_history(&server, &acked, &seen).await {
            Ok(documents) => {
                // Versions beyond the previous ones and the acknowledged applies: an apply
                // killed after its document was written, committed as prepared.
                unacknowledged += documents.len() - seen.len() - acked.len();
                eprintln!(
                    "registry crash cycle {cycle}: {} acknowledged, {} versions",
                    acked.len(),
                    documents.len()
                );
                seen = documents;
            }
            Err(e) => {
                return Err(format!("cycle {cycle}: {e}\nlog:\n{}", server.log_tail()).into());
            }
        }
    }
    eprintln!(
        "registry crash: {cycles} cycles, {} versions, {unacknowledged} applied and committed without an acknowledgement, none unrecorded",
        seen.len()
    );
    server.kill()?;
    Ok(())
}
