//! Checks of a table's history that every crash and concurrency test shares: the versions
//! listed are consistent with the content.

use std::collections::BTreeMap;

use featurestore::model::TableName;
use featurestore::storage::{Storage, VersionOp, VersionRecord, VersionSelector};

use super::TestResult;

/// Checks the history of `name` as `storage` lists it, and returns it oldest first:
/// - version numbers strictly increase (no number was given to two writes);
/// - every version in `acknowledged` (versions whose write was answered) is listed;
/// - every listed version other than a deletion opens, and holds the rows its record says.
pub fn check_history(
    storage: &Storage,
    name: &str,
    acknowledged: &[u64],
) -> TestResult<Vec<VersionRecord>> {
    let table: TableName = name.parse()?;
    let mut versions = storage.history(&table)?.versions;
    versions.reverse();
    let numbers: Vec<u64> = versions.iter().map(|v| v.version).collect();
    if numbers.windows(2).any(|w| w[0] >= w[1]) {
        return Err(
            format!("{name}: version numbers do not strictly increase: {numbers:?}").into(),
        );
    }
    let missing: Vec<&u64> = acknowledged
        .iter()
        .filter(|v| numbers.binary_search(v).is_err())
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "{name}: acknowledged versions {missing:?} are not listed; listed: {numbers:?}"
        )
        .into());
    }
    for record in &versions {
        if record.op == VersionOp::Delete {
            continue;
        }
        let handle = storage
            .table_at(&table, VersionSelector::Number(record.version))
            .map_err(|e| {
                format!(
                    "{name}: listed version {} cannot be opened: {e}",
                    record.version
                )
            })?;
        let rows = handle.file.read_all(&handle.file.all_columns())?.num_rows() as u64;
        if rows != record.rows || handle.version != record.version {
            return Err(format!(
                "{name}: version {} lists {} rows but opens as version {} with {rows}",
                record.version, record.rows, handle.version
            )
            .into());
        }
    }
    Ok(versions)
}

/// The versions of a history by number, for lookups.
pub fn by_number(versions: &[VersionRecord]) -> BTreeMap<u64, &VersionRecord> {
    versions.iter().map(|v| (v.version, v)).collect()
}
