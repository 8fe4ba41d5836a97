//! Polling: a thread that calls back at a fixed interval, for what cannot be watched — the
//! s3 kind's bucket, where other replicas commit tables (and the registry) without any event
//! reaching this process.
//!
//! The [`PollGuard`] owns the thread; dropping it stops the thread at once (it waits on a
//! channel, not in a sleep) and joins it.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Keeps the polling thread alive; dropping it stops and joins the thread.
pub struct PollGuard {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for PollGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PollGuard").finish_non_exhaustive()
    }
}

impl Drop for PollGuard {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Calls `round` every `interval` on a thread named `name` until the guard is dropped. A
/// round that takes longer than the interval delays the next one; rounds never overlap.
pub fn poll(
    name: &str,
    interval: Duration,
    mut round: impl FnMut() + Send + 'static,
) -> std::io::Result<PollGuard> {
    let (stop, stopped) = mpsc::channel::<()>();
    let thread = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            // Rounds start every `interval` (not `interval` after the previous one ended), so
            // a change waits at most one interval plus one round to be seen.
            let mut next = Instant::now() + interval;
            loop {
                let wait = next.saturating_duration_since(Instant::now());
                if !matches!(stopped.recv_timeout(wait), Err(RecvTimeoutError::Timeout)) {
                    return;
                }
                round();
                next = (next + interval).max(Instant::now());
            }
        })?;
    Ok(PollGuard {
        stop: Some(stop),
        thread: Some(thread),
    })
}
