//! Part files on disk: the folders pushes and folds create durably, and how a base file's
//! parts are found again when a table is opened.

use std::fs;
use std::path::{Path, PathBuf};

use super::error::{Result, StorageError};
use super::layout::Layout;
use super::reader::ParquetFile;
use super::writer::sync_dir;
use super::{Storage, TableFile};
use crate::model::{GroupName, TableName};

impl Storage {
    /// Creates `dir` and its missing parents, syncing each parent so the new entries survive
    /// a crash along with the files later written into them.
    pub(super) fn create_dirs_durably(&self, dir: &Path) -> Result<()> {
        if dir.is_dir() {
            return Ok(());
        }
        if let Some(parent) = dir.parent() {
            self.create_dirs_durably(parent)?;
        }
        match fs::create_dir(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(StorageError::io(dir, e)),
        }
        if let Some(parent) = dir.parent() {
            sync_dir(parent)?;
        }
        Ok(())
    }

    /// Opens a base file with the parts appended to it, in append order.
    pub(super) fn open_with_parts(
        &self,
        group: &GroupName,
        name: &TableName,
        path: &Path,
    ) -> Result<TableFile> {
        let base = ParquetFile::open(path)?;
        let dir = self.layout.parts_dir(group, name, &base.base_id());
        let mut part_paths: Vec<PathBuf> = fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_str().is_some_and(Layout::is_part_file))
            .map(|e| e.path())
            .collect();
        part_paths.sort();
        let parts = part_paths
            .iter()
            .map(|p| ParquetFile::open(p))
            .collect::<Result<Vec<_>>>()?;
        Ok(TableFile::from_segments(base, parts))
    }
}
