//! Where a Parquet file's bytes come from: a local file read with positional reads, or an
//! object read by byte ranges. Both are one `ChunkReader`, so the decoding in `reader` is the
//! same for every kind of storage.
//!
//! A local file keeps its descriptor open and reads with `pread`: parquet's own `File` reader
//! clones the descriptor and seeks, and clones share one offset, so concurrent readers would
//! race; and an open descriptor keeps reading the inode it was opened on, so a reader that
//! started before an atomic replace finishes on the version it started with.
//!
//! An object is immutable (the commit protocol never rewrites a data key), so a snapshot can
//! read it by ranges at any time. Its tail (footer and page index) is fetched once when it is
//! opened and kept; a page read then fetches only the pages it decodes, and a whole-column
//! read prefetches its column chunks with `get_ranges`, which merges nearby ranges into few
//! requests.

use std::fs::File;
use std::io::{self, Read};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use object_store::path::Path as ObjectPath;
use parquet::errors::ParquetError;
use parquet::file::reader::{ChunkReader, Length};

use super::object::{BlockingTree, ObjectError};

/// Bytes fetched from an object's end when it is opened: the footer and page index of our
/// tables fit in it, so opening costs one request.
pub(super) const TAIL_BYTES: u64 = 64 * 1024;

/// Bytes a sequential read (page headers of files without a page index) fetches at a time.
const READ_AHEAD: u64 = 64 * 1024;

/// A file read with `pread`, shareable across threads.
#[derive(Debug, Clone)]
pub(super) struct PreadFile {
    pub(super) file: Arc<File>,
    pub(super) len: u64,
}

/// An immutable object read by ranges.
#[derive(Debug, Clone)]
pub(super) struct ObjectSource {
    tree: BlockingTree,
    key: ObjectPath,
    len: u64,
    /// Byte spans already fetched, `(start, bytes)`, sorted by start.
    held: Arc<Vec<(u64, Bytes)>>,
    /// The last failure of the store during a read, so the reader can report "store
    /// unavailable" (503), or "version expired" for an object the history sweep removed,
    /// instead of the parquet error it was wrapped in.
    failure: Arc<Mutex<Option<ReadFailure>>>,
}

/// A store failure seen while reading an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ReadFailure {
    /// The object is gone: the history sweep removed it (objects are never rewritten, and
    /// the newest state's are never removed), so the version being read has expired.
    Missing {
        /// Its key.
        key: String,
    },
    /// The store failed (network, 5xx, refusal): retryable.
    Store {
        /// What the store said.
        reason: String,
    },
}

impl From<&ObjectError> for ReadFailure {
    fn from(error: &ObjectError) -> Self {
        match error {
            ObjectError::NotFound { key } => ReadFailure::Missing { key: key.clone() },
            other => ReadFailure::Store {
                reason: other.reason(),
            },
        }
    }
}

/// A Parquet file's bytes.
#[derive(Debug, Clone)]
pub(super) enum Source {
    /// A local file.
    File(PreadFile),
    /// An object in the store.
    Object(ObjectSource),
}

impl ObjectSource {
    /// Opens `key` (of `len` bytes), fetching its tail; `tail` when the caller already has
    /// the bytes (it just wrote them), which then costs no request.
    pub(super) fn open(
        tree: &BlockingTree,
        key: &ObjectPath,
        len: u64,
        written: Option<&[u8]>,
    ) -> Result<Self, ObjectError> {
        let start = len.saturating_sub(TAIL_BYTES);
        let tail = match written {
            Some(bytes) if bytes.len() as u64 == len => {
                Bytes::copy_from_slice(&bytes[usize::try_from(start).unwrap_or(0)..])
            }
            _ if len == 0 => Bytes::new(),
            _ => tree.get_range(key, start..len)?,
        };
        Ok(Self {
            tree: tree.clone(),
            key: key.clone(),
            len,
            held: Arc::new(vec![(start, tail)]),
            failure: Arc::new(Mutex::new(None)),
        })
    }

    /// The object's key.
    pub(super) fn key(&self) -> &ObjectPath {
        &self.key
    }

    /// This source with `ranges` fetched up front (merged by the store where close).
    pub(super) fn prefetched(&self, ranges: Vec<Range<u64>>) -> Result<Self, ObjectError> {
        let wanted: Vec<Range<u64>> = ranges
            .into_iter()
            .filter(|r| r.start < r.end && self.held_slice(r.start, r.end - r.start).is_none())
            .collect();
        if wanted.is_empty() {
            return Ok(self.clone());
        }
        let fetched = self.tree.get_ranges(&self.key, wanted.clone())?;
        let mut held: Vec<(u64, Bytes)> = self.held.as_ref().clone();
        held.extend(wanted.iter().map(|r| r.start).zip(fetched));
        held.sort_by_key(|(start, _)| *start);
        Ok(Self {
            held: Arc::new(held),
            failure: Arc::new(Mutex::new(None)),
            ..self.clone()
        })
    }

    /// Why the store failed during a read through this source, if it did (taken: reported
    /// once).
    pub(super) fn take_failure(&self) -> Option<ReadFailure> {
        self.failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    fn held_slice(&self, start: u64, length: u64) -> Option<Bytes> {
        let end = start.checked_add(length)?;
        self.held.iter().find_map(|(at, bytes)| {
            let held_end = at + bytes.len() as u64;
            if *at > start || end > held_end {
                return None;
            }
            let from = usize::try_from(start - at).ok()?;
            let to = usize::try_from(end - at).ok()?;
            Some(bytes.slice(from..to))
        })
    }

    fn fetch(&self, start: u64, length: u64) -> parquet::errors::Result<Bytes> {
        if let Some(bytes) = self.held_slice(start, length) {
            return Ok(bytes);
        }
        let end = start.saturating_add(length).min(self.len);
        match self.tree.get_range(&self.key, start..end) {
            Ok(bytes) => Ok(bytes),
            Err(error) => {
                *self.failure.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some(ReadFailure::from(&error));
                Err(ParquetError::External(Box::new(error)))
            }
        }
    }
}

impl Length for Source {
    fn len(&self) -> u64 {
        match self {
            Source::File(file) => file.len,
            Source::Object(object) => object.len,
        }
    }
}

/// A `Read` from an offset of a [`Source`].
pub(super) enum SourceCursor {
    /// Positional reads of a local file.
    File { file: Arc<File>, offset: u64 },
    /// Ranged reads of an object, [`READ_AHEAD`] bytes at a time.
    Object {
        source: ObjectSource,
        offset: u64,
        buffer: Bytes,
    },
}

impl Read for SourceCursor {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            SourceCursor::File { file, offset } => {
                let n = file.read_at(buf, *offset)?;
                *offset += n as u64;
                Ok(n)
            }
            SourceCursor::Object {
                source,
                offset,
                buffer,
            } => {
                if buffer.is_empty() {
                    let length = READ_AHEAD.min(source.len.saturating_sub(*offset));
                    if length == 0 {
                        return Ok(0);
                    }
                    *buffer = source.fetch(*offset, length).map_err(io::Error::other)?;
                }
                let n = buf.len().min(buffer.len());
                buf[..n].copy_from_slice(&buffer[..n]);
                *buffer = buffer.slice(n..);
                *offset += n as u64;
                Ok(n)
            }
        }
    }
}

impl ChunkReader for Source {
    type T = SourceCursor;

    fn get_read(&self, start: u64) -> parquet::errors::Result<SourceCursor> {
        Ok(match self {
            Source::File(file) => SourceCursor::File {
                file: Arc::clone(&file.file),
                offset: start,
            },
            Source::Object(object) => SourceCursor::Object {
                source: object.clone(),
                offset: start,
                buffer: Bytes::new(),
            },
        })
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        match self {
            Source::File(file) => {
                let mut buf = vec![0; length];
                file.file.read_exact_at(&mut buf, start)?;
                Ok(buf.into())
            }
            Source::Object(object) => object.fetch(start, length as u64),
        }
    }
}
