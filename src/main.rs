//! The `featurestore` binary: everything is in the library's `cli` module.

fn main() -> anyhow::Result<()> {
    tune_malloc();
    featurestore::cli::main()
}

/// Makes glibc's malloc give memory back, before any thread starts.
///
/// The server's blocking pool runs table writes, compactions and index builds on many
/// threads, each allocating tens of MiB at a time. With glibc's defaults, the five-minute soak
/// (`benches/load/soak.sh`) saw RSS climb from 918 to 1 154 MiB with the caches nearly empty:
/// - glibc gives threads up to eight arenas per core, and each keeps what is freed into it;
///   one arena per core held the soak at 326 to 362 MiB, still creeping;
/// - glibc raises its mmap threshold each time a large block is freed, so later large blocks
///   come from the arenas' heaps and stay there; a fixed 1 MiB threshold keeps every large
///   block in its own mapping, returned when freed, and held the soak near 180 to 220 MiB.
fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let arenas = libc::c_int::try_from(cores.max(2)).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt only sets allocator parameters; it is called before any other
        // thread exists, and a failure (returned as 0) leaves glibc's default in place.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, arenas);
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES);
        }
    }
}

/// Allocations from this size up get their own mapping (see [`tune_malloc`]).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD_BYTES: libc::c_int = 1024 * 1024;
