//! Giving freed memory back to the system while the server runs.
//!
//! The soak (`benches/load/soak.sh`) drifted about 5 MiB a minute. A heap profile of its
//! workload (heaptrack, BENCHMARKS.md "Issue 18", "Soak") showed the live heap growing far
//! slower than RSS (about 1 MiB a minute, in sled's in-memory trees), while RSS climbed:
//! glibc keeps the pages of chunks freed inside its arenas (index rebuilds, folds and page
//! reads free tens of MiB at a time, in the middle of a heap it cannot shrink from the top),
//! so RSS ratchets up to each new high-water mark of fragmentation. `malloc_trim(0)` hands
//! every whole free page inside the arenas back (`madvise`), so RSS follows the live heap.

use std::time::Duration;

use crate::poll::PollGuard;

/// How often the server trims: often enough that a burst's freed pages are back within
/// seconds, rare enough that the walk over the arenas' free lists stays off the figures.
pub const TRIM_INTERVAL: Duration = Duration::from_secs(5);

/// Trims glibc's arenas every `every` on a thread of its own until the guard is dropped;
/// `None` where there is nothing to trim (another allocator) or the thread cannot start.
pub fn start_trimming(every: Duration) -> Option<PollGuard> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let round = || {
            // SAFETY: malloc_trim only walks glibc's own free lists under its arena locks;
            // it takes no pointer of ours.
            unsafe {
                libc::malloc_trim(0);
            }
        };
        match crate::poll::poll("malloc-trim", every, round) {
            Ok(guard) => Some(guard),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start trimming the allocator; freed memory is returned only as glibc decides");
                None
            }
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        let _ = every;
        None
    }
}
