//! Time as the caches see it, injected so tests control it instead of sleeping.

use std::fmt::Debug;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A source of time: monotonic for cache ages, wall-clock for TTLs of feature values.
pub trait Clock: Send + Sync + Debug {
    /// The current instant.
    fn now(&self) -> Instant;
    /// Wall-clock time in microseconds since the Unix epoch (UTC).
    fn wall_micros(&self) -> i64;
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn wall_micros(&self) -> i64 {
        chrono::Utc::now().timestamp_micros()
    }
}

/// A clock that only moves when told to: TTL tests advance it instead of sleeping.
#[derive(Debug)]
pub struct ManualClock {
    base: Instant,
    base_wall_micros: i64,
    offset: Mutex<Duration>,
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::starting_at(chrono::Utc::now().timestamp_micros())
    }
}

impl ManualClock {
    /// A clock whose wall time starts at `wall_micros` (µs since the epoch).
    pub fn starting_at(wall_micros: i64) -> Self {
        Self {
            base: Instant::now(),
            base_wall_micros: wall_micros,
            offset: Mutex::new(Duration::ZERO),
        }
    }

    fn offset(&self) -> Duration {
        *self.offset.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut offset = self.offset.lock().unwrap_or_else(|p| p.into_inner());
        *offset += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.base + self.offset()
    }
    fn wall_micros(&self) -> i64 {
        self.base_wall_micros
            .saturating_add(i64::try_from(self.offset().as_micros()).unwrap_or(i64::MAX))
    }
}
