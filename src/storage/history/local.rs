//! The local kind's history log: `metadata/<group>/<name>.history.jsonl`, one JSON line per
//! write, appended and synced before the write is acknowledged.
//!
//! A line is appended after the write's data is durable, so every line names content that
//! exists; a crash between the two leaves a version the log lacks, which the catalog records
//! when it next loads the table. A crash during an append leaves a torn last line: it is
//! ignored on read, and the next append starts on a new line so it cannot be glued to it.
//! The sweep rewrites the log (temp file, sync, rename) with only what it keeps.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::super::error::{Result, StorageError};
use super::super::writer::{sync_dir, write_atomic};
use super::VersionRecord;
use super::replay::{Compaction, Content, Step};

/// One line of the log.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)] // one line at a time, never stored
enum Line {
    /// A write that made a version.
    Version {
        #[serde(flatten)]
        record: VersionRecord,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content: Option<Content>,
    },
    /// A fold.
    Compaction(Compaction),
}

/// A table's history log file.
#[derive(Debug, Clone)]
pub struct LocalLog {
    path: PathBuf,
}

impl LocalLog {
    /// The log at `path` (nothing is created until the first append).
    pub fn at(path: PathBuf) -> Self {
        Self { path }
    }

    /// Whether the log file exists.
    pub fn exists(&self) -> bool {
        self.path.is_file()
    }

    /// Every step of the log, in order; a torn last line is left out.
    pub fn read(&self) -> Result<Vec<Step>> {
        let bytes = match fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StorageError::io(&self.path, e)),
        };
        let mut steps = Vec::new();
        for line in bytes.split(|b| *b == b'\n') {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<Line>(line) {
                Ok(Line::Version { record, content }) => steps.push(Step::Version(record, content)),
                Ok(Line::Compaction(fold)) => steps.push(Step::Compaction(fold)),
                Err(e) => {
                    tracing::warn!(log = %self.path.display(), error = %e, "skipped an unreadable history line (a write interrupted by a crash)");
                }
            }
        }
        Ok(steps)
    }

    /// Appends a version and syncs it.
    pub fn append_version(&self, record: &VersionRecord, content: Option<&Content>) -> Result<()> {
        self.append(&Line::Version {
            record: record.clone(),
            content: content.cloned(),
        })
    }

    /// Appends a fold and syncs it.
    pub fn append_compaction(&self, fold: &Compaction) -> Result<()> {
        self.append(&Line::Compaction(fold.clone()))
    }

    fn append(&self, line: &Line) -> Result<()> {
        let mut text = serde_json::to_vec(line).map_err(|source| StorageError::Metadata {
            path: self.path.clone(),
            source,
        })?;
        text.push(b'\n');
        let created = !self.path.exists();
        if let Some(dir) = self.path.parent() {
            fs::create_dir_all(dir).map_err(|e| StorageError::io(dir, e))?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&self.path)
            .map_err(|e| StorageError::io(&self.path, e))?;
        if ends_torn(&file).map_err(|e| StorageError::io(&self.path, e))? {
            text.insert(0, b'\n');
        }
        file.write_all(&text)
            .and_then(|()| file.sync_data())
            .map_err(|e| StorageError::io(&self.path, e))?;
        if created && let Some(dir) = self.path.parent() {
            sync_dir(dir)?;
        }
        Ok(())
    }

    /// Replaces the log with `versions` (oldest first), atomically.
    pub fn rewrite(&self, versions: &[(VersionRecord, Option<Content>)]) -> Result<()> {
        let mut text = Vec::new();
        for (record, content) in versions {
            let line = Line::Version {
                record: record.clone(),
                content: content.clone(),
            };
            serde_json::to_writer(&mut text, &line).map_err(|source| StorageError::Metadata {
                path: self.path.clone(),
                source,
            })?;
            text.push(b'\n');
        }
        write_atomic(&self.path, |file| {
            (&*file)
                .write_all(&text)
                .map_err(|e| StorageError::io(&self.path, e))
        })
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Whether the file's last byte is not a newline (a torn append).
fn ends_torn(file: &File) -> std::io::Result<bool> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(false);
    }
    let mut last = [0u8; 1];
    file.read_exact_at(&mut last, len - 1)?;
    Ok(last[0] != b'\n')
}
