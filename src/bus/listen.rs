//! The subscriber: one pub/sub connection on the Redis runtime that hands each other
//! replica's change to an apply thread, reconnecting by itself with a bounded back-off.
//!
//! Why two halves: a change is applied with blocking calls (object store GETs, and the online
//! tier's own `wait`, which must not run on the Redis runtime's only worker), while reading
//! the subscription must never stop, or Redis drops a subscriber that falls behind.
//!
//! A connection that dies shows up as the end of the message stream; one that hangs (a cut
//! network, a frozen server) is caught by a PING every [`PING_EVERY`] that must answer
//! within the response timeout. Every time the subscription is (re)established, the apply
//! thread gets [`Job::CatchUp`]: whatever was published while this replica was not listening
//! is found by re-reading the shared state.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::watch;

use super::{Change, ChangeBus};
use crate::online::redis::RedisOnline;

/// First wait before reconnecting; doubled after each failure up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between two connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How often a quiet subscription is checked with a PING.
const PING_EVERY: Duration = Duration::from_secs(2);
/// A subscription that stayed up this long starts its next back-off from [`MIN_BACKOFF`].
const STABLE: Duration = Duration::from_secs(10);

/// What the apply thread does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Job {
    /// Apply one change another replica announced.
    Apply(Change),
    /// The subscription was (re)established: re-check everything that may have been missed.
    CatchUp,
}

/// Owns the subscriber and its apply thread; dropping it stops both.
pub struct BusGuard {
    stop: Option<watch::Sender<bool>>,
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for BusGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BusGuard").finish_non_exhaustive()
    }
}

impl Drop for BusGuard {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Subscribes to `redis`'s events channel and calls `apply` (on a thread of its own, one job
/// at a time, duplicates waiting in the queue merged) for every change of another replica.
pub fn start(
    redis: Arc<RedisOnline>,
    bus: Arc<ChangeBus>,
    apply: impl Fn(&Job) + Send + 'static,
) -> std::io::Result<BusGuard> {
    let (jobs, queue) = mpsc::channel::<Job>();
    let thread = std::thread::Builder::new()
        .name("featurestore-bus".into())
        .spawn(move || {
            while let Ok(first) = queue.recv() {
                for job in drain(first, &queue) {
                    apply(&job);
                }
            }
        })?;
    let (stop, stopped) = watch::channel(false);
    let sender = jobs.clone();
    let listener = Arc::clone(&redis);
    redis.spawn(async move { listen(listener, bus, sender, stopped).await });
    Ok(BusGuard {
        stop: Some(stop),
        jobs: Some(jobs),
        thread: Some(thread),
    })
}

/// `first` and whatever else waits in `queue`, in order, without repeats; a catch-up makes
/// the table and registry jobs before it redundant (it re-reads all of them).
fn drain(first: Job, queue: &mpsc::Receiver<Job>) -> VecDeque<Job> {
    let mut jobs = VecDeque::from([first]);
    while let Ok(job) = queue.try_recv() {
        if !jobs.contains(&job) {
            jobs.push_back(job);
        }
    }
    if let Some(at) = jobs.iter().rposition(|j| *j == Job::CatchUp) {
        let mut kept: VecDeque<Job> = jobs
            .iter()
            .take(at)
            .filter(|j| matches!(j, Job::Apply(Change::Cache { .. })))
            .cloned()
            .collect();
        kept.extend(jobs.into_iter().skip(at));
        return kept;
    }
    jobs
}

/// Keeps a subscription up until `stopped`, backing off between attempts.
async fn listen(
    redis: Arc<RedisOnline>,
    bus: Arc<ChangeBus>,
    jobs: mpsc::Sender<Job>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut backoff = MIN_BACKOFF;
    let mut subscribed_before = false;
    loop {
        let started = Instant::now();
        let reason = tokio::select! {
            _ = stopped.changed() => return,
            reason = session(&redis, &bus, &jobs, &mut subscribed_before) => reason,
        };
        let was_up = bus.status().connected;
        bus.set_connected(Some(reason.clone()));
        if was_up {
            tracing::warn!(error = %reason, "the change bus is disconnected; other replicas' changes are seen at the next poll until it reconnects");
        }
        if started.elapsed() >= STABLE {
            backoff = MIN_BACKOFF;
        }
        tokio::select! {
            _ = stopped.changed() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One subscription, from connecting to losing it; returns why it ended.
/// `subscribed_before` tells a reconnection from the first subscription (for the log).
async fn session(
    redis: &RedisOnline,
    bus: &ChangeBus,
    jobs: &mpsc::Sender<Job>,
    subscribed_before: &mut bool,
) -> String {
    let config = redis.config();
    let client = match redis.client() {
        Ok(client) => client,
        Err(e) => return e.to_string(),
    };
    let connecting = async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(redis.events_channel()).await?;
        Ok::<_, redis::RedisError>(pubsub)
    };
    let limit = config.connect_timeout() + config.response_timeout();
    let pubsub = match tokio::time::timeout(limit, connecting).await {
        Ok(Ok(pubsub)) => pubsub,
        Ok(Err(e)) => return format!("redis at {}: {e}", config.display_url()),
        Err(_) => {
            return format!(
                "redis at {}: no subscription within {} ms",
                config.display_url(),
                limit.as_millis()
            );
        }
    };
    bus.set_connected(None);
    if std::mem::replace(subscribed_before, true) {
        tracing::info!("the change bus is connected again; re-checking what was missed");
    } else {
        tracing::info!(channel = %redis.events_channel(), replica = bus.origin(), "listening for other replicas' changes");
    }
    // The first subscription too: changes made between opening the store and now were
    // published before this replica listened.
    if jobs.send(Job::CatchUp).is_err() {
        return "stopping".into();
    }
    let (mut sink, mut stream) = pubsub.split();
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
    loop {
        tokio::select! {
            message = stream.next() => {
                let Some(message) = message else {
                    return format!("redis at {}: the subscription connection closed", config.display_url());
                };
                let Ok(text) = message.get_payload::<String>() else {
                    continue;
                };
                if let Some(change) = bus.decode(&text) {
                    bus.received_one();
                    if jobs.send(Job::Apply(change)).is_err() {
                        return "stopping".into();
                    }
                }
            }
            _ = ticks.tick() => {
                let answer = tokio::time::timeout(config.response_timeout(), sink.ping::<redis::Value>()).await;
                match answer {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return format!("redis at {}: {e}", config.display_url()),
                    Err(_) => return format!("redis at {}: no answer to PING within {} ms", config.display_url(), config.response_timeout().as_millis()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str) -> Job {
        Job::Apply(Change::Table {
            group: None,
            name: name.into(),
        })
    }

    #[test]
    fn queued_jobs_are_merged_and_a_catch_up_replaces_what_it_covers() {
        let (tx, rx) = mpsc::channel();
        let cache = Job::Apply(Change::Cache {
            group: None,
            name: None,
        });
        for job in [
            table("b"),
            table("a"),
            cache.clone(),
            Job::CatchUp,
            table("c"),
        ] {
            let _ = tx.send(job);
        }
        let jobs: Vec<Job> = drain(table("a"), &rx).into();
        assert_eq!(jobs, vec![cache, Job::CatchUp, table("c")]);
        let _ = tx.send(table("a"));
        let _ = tx.send(table("a"));
        let jobs: Vec<Job> = drain(table("b"), &rx).into();
        assert_eq!(jobs, vec![table("b"), table("a")]);
    }
}
