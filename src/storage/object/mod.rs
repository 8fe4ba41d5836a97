//! The Parquet tree on an object store (S3 or a local folder) through one
//! `Arc<dyn ObjectStore>`, and the commit protocol that lets several featurestore processes
//! share one bucket (issue #14).
//!
//! [`S3Config`] builds the store, [`ObjectTree`] offers the calls the protocol needs
//! (write-once put, atomic replace, ranged and whole reads, listing, idempotent delete) with
//! failures sorted into [`ObjectError`] kinds, [`BlockingTree`] makes them callable from the
//! synchronous storage layer, and [`ObjectParquetReader`] reads a Parquet object by ranges
//! for async callers. `storage::remote` speaks the protocol below on top of them when
//! `storage.backend = "s3"`; the local kind keeps its files (temp file, fsync, rename).
//!
//! # Commit protocol
//!
//! The only primitive every store honours atomically is "create this key if absent"
//! (`PutMode::Create`: If-None-Match on S3 and SeaweedFS, a hard link on `LocalFileSystem`).
//! Compare-and-swap of one object (`PutMode::Update`) is not available everywhere, so the
//! protocol uses write-once objects only, like a Delta log: a table's state is its highest
//! numbered commit entry, and publishing a new state means creating the next entry.
//!
//! Keys, relative to `[storage.s3].prefix`:
//!
//! - `tables/<name>/data/<writer>-<n>.parquet`: immutable data objects (a full base, or one
//!   appended part). `<writer>` is a random id per process and `<n>` a counter, so two
//!   writers never choose the same data key and these plain puts never collide.
//! - `tables/<name>/log/<seq, 20 digits>.json`: the commit entries, write-once. An entry
//!   names the operation (`replace`, `append`, `compact`, `delete`), the table's version
//!   and group, the base object and the ordered part objects that make up the state (each
//!   with its size, so a reader fetches a footer with one ranged GET), the entity key and
//!   timestamp field, and the writer.
//! - `features/<group>/<name>.parquet`: a plain copy of the latest base, for any tool that
//!   opens Parquet (pandas, DuckDB). Replicas never read tables from it; a copy another
//!   tool writes there is adopted as the next version.
//!
//! A write, in order, under the table's lock in this process:
//! 1. List the log after the newest entry known (one LIST; usually empty) and, if there is a
//!    newer one, read it and bring the catalog to it: the write applies to the newest state.
//! 2. Put the new data object under a fresh key (nothing names it: no reader can see it).
//! 3. Create entry `seq + 1` with [`ObjectTree::put_if_absent`]: the commit point; the write
//!    is acknowledged only after it. On [`ObjectError::AlreadyExists`] another writer
//!    committed first: the data object is deleted and the whole write runs again from step 1
//!    (bounded; then 503 `storage_contended`). So an append always lands on top of every
//!    earlier commit (no acknowledged row is lost), a replace is last writer wins, and
//!    versions strictly increase. A fold (compaction) commits only if the table still starts
//!    with the base and parts it folded (parts pushed meanwhile are carried over); otherwise
//!    it folds again what is there.
//! 4. Refresh the plain copy (server-side copy) after a replace, fold or delete; a writer
//!    that then sees a newer entry copies again, so the last one to check copies the newest.
//!
//! What a reader trusts: only the newest entry it has listed and the objects that entry names,
//! which never change, so a reader holding a state reads it to the end even while newer ones
//! are published. S3 gives read-after-write consistency for objects and listings: other
//! replicas see a commit at their next poll (`storage.poll_interval_ms`, one LIST of the log
//! per known table, one of `tables/` and one of `features/` per round).
//!
//! A crash at each step leaves:
//! - during or after step 2: an orphan data object no entry names: invisible, swept.
//! - during step 3: the entry exists entirely or not at all (one atomic put); if not, the
//!   write was never acknowledged and its data object is an orphan.
//! - after step 3, before step 4: the state is committed and served everywhere; only the
//!   plain copy lags, and the next polling round of any replica restores it.
//!
//! The entries are also the table's history (`storage::history`): each says what its
//! version's record needs, and any retained version is read again from the objects its
//! entry names. The sweep (`remote::sweep`, every 10 minutes in every polling process and on
//! `Storage::sweep_history`; idempotent) keeps the versions `[storage.history]` retains (now
//! or an hour ago) and every state that was the newest at some moment of the last hour; it
//! deletes the entries below the oldest one kept, then the data objects older than an hour
//! that nothing kept names. An hour is far longer than any commit or read of one state takes.

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
