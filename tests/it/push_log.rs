//! The durable log of rows pushed online is compacted as it grows (the rows that can no longer
//! win a lookup are dropped), without changing a single answer, before or after a restart.

use featurestore::online::durable::OnlineDb;
use serde_json::{Value, json};

use crate::common::instants::*;
use crate::common::{TestResult, slot, start_again_on};
use crate::push::{ages, fixture_on_system_clock, hold_folds, profile_row, push_profile};

/// An event time still to come whenever the suite runs.
const FUTURE: &str = "2999-01-01T00:00:00Z";

/// A `user_profile` df of one row per user of `users`, all with `age` at `at`.
fn profiles(users: &[i64], age: i64, at: &str) -> Value {
    let n = users.len();
    json!({
        "user_id": users, "age": vec![age; n], "avg_rating": vec![1.0; n],
        "favorite_genre": vec!["Drama"; n], "event_timestamp": vec![at; n],
    })
}

/// The durable online store of a stopped server's data root. sled may need a moment to give
/// up the previous handle's lock in this same process (see `restart_with`).
async fn open_online_store(root: &std::path::Path) -> TestResult<OnlineDb> {
    let mut last = None;
    for _ in 0..20 {
        match OnlineDb::open(&root.join("online")) {
            Ok(db) => return Ok(db),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    Err(format!("the online store did not open: {last:?}").into())
}

#[tokio::test]
async fn compacting_the_push_log_changes_no_answer_before_or_after_a_restart() -> TestResult {
    let server = fixture_on_system_clock(hold_folds).await?;
    let users: Vec<i64> = (1000..1600).collect();
    // 1 200 rows: past the first compaction's threshold.
    push_profile(&server, profiles(&users, 1, T0_MINUS_2H), "online").await?;
    push_profile(&server, profiles(&users, 2, T0_MINUS_1H), "online").await?;
    // After it: older rows lose; a tie with the latest goes to the later push; a row from the
    // future waits for its time; then enough older rows for a second compaction.
    push_profile(&server, profiles(&users, 3, T0_MINUS_2H), "online").await?;
    push_profile(
        &server,
        profile_row(1001, 7, 1.0, "Noir", T0_MINUS_1H),
        "online",
    )
    .await?;
    push_profile(
        &server,
        profile_row(1002, 99, 1.0, "Noir", FUTURE),
        "online",
    )
    .await?;
    push_profile(&server, profiles(&users, 4, T0_MINUS_3H), "online").await?;

    let probe = [1, 1000, 1001, 1002, 1599];
    let expected = vec![
        slot(json!(30), "PRESENT", T0_MINUS_1H),
        slot(json!(2), "PRESENT", T0_MINUS_1H),
        slot(json!(7), "PRESENT", T0_MINUS_1H),
        slot(json!(2), "PRESENT", T0_MINUS_1H),
        slot(json!(2), "PRESENT", T0_MINUS_1H),
    ];
    assert_eq!(ages(&server, &probe).await?, expected);

    let data = server.stop();
    {
        let db = open_online_store(data.path()).await?;
        let log = db.pushed("user_profile")?;
        let rows: usize = log.iter().map(|b| b.num_rows()).sum();
        // 2 402 rows were pushed in 6 pushes; what can still answer is one row per user plus
        // the one from the future.
        assert_eq!(rows, users.len() + 1, "{} batches", log.len());
    }
    let server = start_again_on(data, hold_folds).await?;
    assert_eq!(ages(&server, &probe).await?, expected);
    Ok(())
}
