//! The `featurestore` binary: everything is in the library's `cli` module.

fn main() -> anyhow::Result<()> {
    limit_malloc_arenas();
    featurestore::cli::main()
}

/// Caps glibc's malloc arenas at one per core before any thread starts.
///
/// glibc gives threads up to eight arenas per core, and each keeps the memory freed into it.
/// The server's blocking pool runs table writes, compactions and index builds on many
/// threads, each allocating tens of MiB at a time: in the five-minute soak
/// (`benches/load/soak.sh`) RSS grew from 918 to 1 154 MiB with the caches nearly empty.
/// With the arenas capped it held 326 to 362 MiB.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let arenas = libc::c_int::try_from(cores.max(2)).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt only sets an allocator parameter; it is called before any other
        // thread exists, and a failure (returned as 0) leaves glibc's default in place.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, arenas);
        }
    }
}
