//! Waiting for `/health` to reach a state: its deep checks run in the background (every
//! second under the harness, `health.check_interval_seconds = 1`), so a change on disk or in
//! a backend shows at the next round; tests poll for it with a deadline rather than sleep.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::{TestResult, TestServer};

/// Longest wait for a state: many rounds of checks even on a loaded machine.
pub const HEALTH_DEADLINE: Duration = Duration::from_secs(20);

/// `/health`'s first answer (a 200) on which `done` holds, polling every 50 ms; an error
/// naming `what` and the last answer after [`HEALTH_DEADLINE`].
pub async fn health_when(
    server: &TestServer,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> TestResult<Value> {
    let deadline = Instant::now() + HEALTH_DEADLINE;
    loop {
        let (status, health) = server.get("/health").await?;
        if status == 200 && done(&health) {
            return Ok(health);
        }
        if Instant::now() > deadline {
            return Err(format!("/health never showed {what}: {status} {health}").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
