//! The registry across two replicas sharing a bucket and a Redis (issue #15, item 4): applies
//! racing on the two replicas. Objects only one of them defines all survive; an object both
//! define differently at the same moment is not silently overwritten by the later commit:
//! its loser answers 409 `registry_conflict` and applies nothing of its document.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::child::ChildServer;
use crate::common::redis::{RedisServer, shared_redis, unique_prefix};
use crate::common::replicas::{Replicas, get, post, wait_for};
use crate::common::s3::{S3Bucket, s3_bucket};
use crate::common::{TestResult, assert_problem};

/// Rounds of racing applies: enough that several really overlap on two cores.
const ROUNDS: usize = 12;

/// The entities `node` serves: name → value type.
async fn entities(node: &ChildServer) -> TestResult<BTreeMap<String, String>> {
    let (status, _, body) = get(node, "/registry/entities").await?;
    if status != 200 {
        return Err(format!("GET /registry/entities answered {status}: {body}").into());
    }
    Ok(body["entities"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            Some((
                e["name"].as_str()?.to_owned(),
                e["value_type"].as_str()?.to_owned(),
            ))
        })
        .collect())
}

/// Two replicas on `bucket` sharing `redis`, polling only every minute: what one serves of
/// the other's applies within a second came through the change bus.
fn two_replicas(bucket: &S3Bucket, redis: &RedisServer) -> TestResult<Replicas> {
    let mut env: Vec<(String, String)> = redis
        .env(&unique_prefix("registry-race"))
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    env.push((
        "FEATURESTORE__STORAGE__POLL_INTERVAL_MS".into(),
        "60000".into(),
    ));
    Replicas::start_with_env(&bucket.config, &bucket.env(), 2, &env)
}

fn document(shared: &str, value_type: &str, own: &str) -> Value {
    json!({"entities": [
        {"name": shared, "value_type": value_type},
        {"name": own, "value_type": "int64"},
    ]})
}

#[tokio::test]
async fn racing_applies_keep_every_other_object_and_refuse_a_conflicting_definition_with_409()
-> TestResult {
    let (Some(bucket), Some(redis)) = (s3_bucket(), shared_redis()) else {
        return Ok(());
    };
    let replicas = two_replicas(&bucket, &redis)?;
    let (a, b) = (replicas.node(0)?, replicas.node(1)?);
    let mut conflicts = 0;
    let mut expected = BTreeMap::new();
    for round in 0..ROUNDS {
        let shared = format!("shared_{round:02}");
        let (from_a, from_b) = (format!("a_{round:02}"), format!("b_{round:02}"));
        let (doc_a, doc_b) = (
            document(&shared, "int64", &from_a),
            document(&shared, "string", &from_b),
        );
        let (answer_a, answer_b) = tokio::join!(
            post(a, "/registry/apply", &doc_a),
            post(b, "/registry/apply", &doc_b),
        );
        let ((status_a, _, body_a), (status_b, _, body_b)) = (answer_a?, answer_b?);
        match (status_a, status_b) {
            (200, 200) => {
                // One committed after the other had: a plain update, as on one replica.
                expected.insert(from_a, "int64".to_owned());
                expected.insert(from_b, "int64".to_owned());
            }
            (200, _) => {
                assert_problem(status_b, &body_b, 409, "registry_conflict");
                conflicts += 1;
                expected.insert(shared.clone(), "int64".to_owned());
                expected.insert(from_a, "int64".to_owned());
            }
            (_, 200) => {
                assert_problem(status_a, &body_a, 409, "registry_conflict");
                conflicts += 1;
                expected.insert(shared.clone(), "string".to_owned());
                expected.insert(from_b, "int64".to_owned());
            }
            _ => {
                return Err(format!(
                    "round {round}: neither apply succeeded: {status_a} {body_a}, {status_b} {body_b}"
                )
                .into());
            }
        }
    }
    // Both replicas converge through the bus (the poll is a minute away), on exactly the
    // winners: a loser's own entity was not applied either.
    for node in [a, b] {
        wait_for(
            Duration::from_secs(1),
            "the same registry on both replicas",
            || async {
                let served = entities(node).await?;
                // Every round leaves one `shared_` entity, and only the winners' own ones.
                let own = expected
                    .keys()
                    .filter(|n| !n.starts_with("shared_"))
                    .count();
                let agrees = expected
                    .iter()
                    .all(|(name, kind)| served.get(name) == Some(kind))
                    && served.len() == ROUNDS + own;
                Ok(agrees.then_some(()))
            },
        )
        .await
        .map_err(|e| format!("{e}\n{}", replicas.logs()))?;
    }
    eprintln!("{conflicts} of {ROUNDS} rounds raced");
    assert!(
        conflicts > 0,
        "no round of {ROUNDS} raced: the test did not exercise a conflict"
    );
    Ok(())
}

#[tokio::test]
async fn concurrent_applies_of_different_objects_on_two_replicas_all_survive_and_are_served_by_both()
-> TestResult {
    let (Some(bucket), Some(redis)) = (s3_bucket(), shared_redis()) else {
        return Ok(());
    };
    let replicas = two_replicas(&bucket, &redis)?;
    let (a, b) = (replicas.node(0)?, replicas.node(1)?);
    let mut expected = BTreeMap::new();
    for round in 0..6 {
        let (from_a, from_b) = (format!("a_{round}"), format!("b_{round}"));
        let (doc_a, doc_b) = (
            json!({"entities": [{"name": from_a, "value_type": "int64"}]}),
            json!({"entities": [{"name": from_b, "value_type": "string"}]}),
        );
        let (answer_a, answer_b) = tokio::join!(
            post(a, "/registry/apply", &doc_a),
            post(b, "/registry/apply", &doc_b),
        );
        for (status, _, body) in [answer_a?, answer_b?] {
            assert_eq!(status, 200, "{body}");
        }
        expected.insert(from_a, "int64".to_owned());
        expected.insert(from_b, "string".to_owned());
    }
    for node in [a, b] {
        wait_for(
            Duration::from_secs(1),
            "every apply on both replicas",
            || async { Ok((entities(node).await? == expected).then_some(())) },
        )
        .await
        .map_err(|e| format!("{e}\n{}", replicas.logs()))?;
    }
    Ok(())
}
