//! The Parquet tree on an object store (S3 or a local folder) through one
//! `Arc<dyn ObjectStore>`, and the commit protocol that lets several featurestore processes
//! share one bucket (issue #14).
//!
//! Status: a library piece, not yet selected by configuration. [`S3Config`] builds the store,
//! [`ObjectTree`] offers the calls the protocol needs (write-once put, atomic replace, ranged
//! and whole reads, listing, idempotent delete) with failures sorted into [`ObjectError`]
//! kinds, and [`ObjectParquetReader`] reads a Parquet object by ranges. The live data path
//! (`Storage`) still uses `std::fs`; routing it through here is the next step.
//!
//! # Commit protocol (intended; what the data path will implement on these calls)
//!
//! The only primitive every kind honours atomically is "create this key if absent"
//! (`PutMode::Create`: If-None-Match on S3 and SeaweedFS, a hard link on `LocalFileSystem`).
//! Compare-and-swap of one object (`PutMode::Update`) is not available locally, so the
//! protocol uses write-once objects only, like a Delta log: a table's state is the highest
//! numbered commit entry, and publishing version N+1 means creating entry N+1.
//!
//! Keys, relative to `[storage.s3].prefix` (or the data root for the local kind):
//!
//! - `tables/<name>/data/<version>-<writer>.parquet`: immutable data objects (a full base,
//!   or one appended part). `<writer>` is a random id per process, so two writers never
//!   choose the same data key and these plain puts never collide.
//! - `tables/<name>/log/<version, 20 digits>.json`: the commit entries, write-once. An
//!   entry names the group, the operation (`replace`, `append`, `compact`, `delete`), the
//!   base object and the ordered list of part objects that make up the version (each with its
//!   size, so readers fetch footers with one ranged GET), the column metadata (the sidecar) and
//!   the writer and time.
//! - `features/<group>/<name>.parquet`: the plain copy of the latest full content, for any
//!   tool that opens Parquet (pandas, DuckDB). Replicas do not trust it for reads; they
//!   compare its ETag with the one the last entry recorded to notice a replacement written by
//!   an outside tool, which is then adopted by committing an entry that names it.
//! - `registry/...`: the registry, committed the same way (entry N+1 per change).
//!
//! A write, in order:
//! 1. Put the new data object(s) under a fresh data key (plain put; nothing refers to them
//!    yet, so no reader can see them).
//! 2. Create `log/<N+1>.json` with [`ObjectTree::put_if_absent`]. This is the commit point:
//!    the write is acknowledged only after it succeeds. On [`ObjectError::AlreadyExists`]
//!    another writer published N+1: read it, rebase and retry at N+2. An append re-applies its
//!    part on top of the winner (so no acknowledged row is lost); a replace simply retries
//!    (last writer wins, versions strictly increase); a compaction whose input parts are no
//!    longer exactly the latest ones gives up and leaves its output to the sweep.
//! 3. Refresh the plain copy `features/<group>/<name>.parquet` (atomic put) after a replace
//!    or compaction, recording its ETag in the next entry's view of the table.
//!
//! What a reader trusts: only the highest entry it has listed (`list_after` its known version:
//! one cheap LIST when nothing changed) and the objects that entry names, which are immutable,
//! so a reader holding version N reads N to the end even while N+1 is published. S3 gives
//! read-after-write consistency for objects and listings, so an acknowledged commit is
//! visible to the next poll of any replica.
//!
//! A crash at each step leaves:
//! - during or after step 1: orphan data objects that no entry names; invisible, swept.
//! - during step 2: the entry exists entirely or not at all (an atomic put); if not, the
//!   write was never acknowledged and its data objects are orphans.
//! - after step 2, before step 3: the version is committed and served; only the plain copy
//!   lags. The next writer, or the sweep, notices that its ETag is not the one the latest
//!   entry expects and rewrites it.
//!
//! The sweep (run by any replica, idempotent, since [`ObjectTree::delete`] of a missing key
//! succeeds) deletes: data objects not named by any entry from the latest full base onward,
//! and log entries older than that base, in both cases only when older than a grace period
//! far longer than a commit takes (an hour), so a slow writer between steps 1 and 2 never
//! loses its objects; and after a `delete` entry, the table's objects once the grace has
//! passed.
//!
//! The local kind keeps today's guarantees: `LocalFileSystem` writes a temp file and renames
//! it but does not fsync, so the local store is to be wrapped to fsync the file and its folder
//! before a put returns.

mod blocking;
mod config;
mod error;
mod parquet;
mod tree;

pub use blocking::{BlockingTree, StoreCounters};
pub use config::{S3Config, local_store};
pub use error::{ObjectError, ObjectResult};
pub use parquet::{FOOTER_HINT_BYTES, ObjectParquetReader, ParquetRead};
pub use tree::ObjectTree;
