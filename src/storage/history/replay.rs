//! From a table's log (local lines or s3 commit entries) to its versions and where each one's
//! rows are read from.

use serde::{Deserialize, Serialize};

use super::VersionRecord;

/// Where a version's rows are: a base file, the first `parts` parts appended to it, or the
/// first `prefix_rows` rows of the base alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Content {
    /// The base: its id on the local kind (`v7`), its data key on the s3 kind.
    pub base: String,
    /// How many of the base's parts, in append order.
    #[serde(default)]
    pub parts: usize,
    /// When set, only this many leading rows of the base (and no part): a version folded
    /// into a newer base file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_rows: Option<u64>,
}

/// A fold: base `from_base` and its first `parts_folded` parts were written, in that order,
/// as the new base `to_base`, to which the base's later parts (if any) were carried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compaction {
    /// The base folded.
    pub from_base: String,
    /// Its parts folded with it.
    pub parts_folded: usize,
    /// The new base.
    pub to_base: String,
}

/// A table's versions, oldest first, each with its content (`None` for a delete).
#[derive(Debug, Clone, Default)]
pub struct Replayed {
    /// The versions in increasing number.
    pub versions: Vec<(VersionRecord, Option<Content>)>,
}

/// One step of a log.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // built while reading a log, consumed by `replay`
pub enum Step {
    /// A write that made a version.
    Version(VersionRecord, Option<Content>),
    /// A fold: the same versions, read from a new base.
    Compaction(Compaction),
}

/// Replays `steps` in log order. A version number seen twice keeps the later line (a crashed
/// writer's record re-appended by the recovery describes the same content).
pub fn replay(steps: impl IntoIterator<Item = Step>) -> Replayed {
    let mut versions: Vec<(VersionRecord, Option<Content>)> = Vec::new();
    for step in steps {
        match step {
            Step::Version(record, content) => {
                if let Some(last) = versions.last()
                    && last.0.version >= record.version
                {
                    versions.retain(|(r, _)| r.version < record.version);
                }
                versions.push((record, content));
            }
            Step::Compaction(fold) => {
                for (record, content) in &mut versions {
                    if let Some(content) = content {
                        repoint(record, content, &fold);
                    }
                }
            }
        }
    }
    Replayed { versions }
}

/// The rows of a version that lived in `fold.from_base` are the same rows of `fold.to_base`:
/// a prefix when the version ended within the folded parts, else the carried parts after it.
fn repoint(record: &VersionRecord, content: &mut Content, fold: &Compaction) {
    if content.base != fold.from_base {
        return;
    }
    content.base = fold.to_base.clone();
    if content.prefix_rows.is_some() {
        return;
    }
    if content.parts <= fold.parts_folded {
        content.prefix_rows = Some(record.rows);
        content.parts = 0;
    } else {
        content.parts -= fold.parts_folded;
    }
}

#[cfg(test)]
mod tests {
    use super::super::VersionOp;
    use super::*;

    fn record(version: u64, rows: u64) -> VersionRecord {
        VersionRecord {
            version,
            op: VersionOp::Append,
            became_current_ms: version as i64,
            rows,
            rows_written: 0,
            bytes_written: 0,
            columns: Vec::new(),
            columns_added: Vec::new(),
            columns_removed: Vec::new(),
            columns_retyped: Vec::new(),
            written_by: None,
            restored_from: None,
            entity_key: Vec::new(),
            timestamp_field: None,
        }
    }

    fn at(base: &str, parts: usize) -> Option<Content> {
        Some(Content {
            base: base.into(),
            parts,
            prefix_rows: None,
        })
    }

    #[test]
    fn a_fold_turns_folded_versions_into_prefixes_and_carries_later_parts() {
        let steps = vec![
            Step::Version(record(1, 10), at("v1", 0)),
            Step::Version(record(2, 12), at("v1", 1)),
            Step::Version(record(3, 15), at("v1", 2)),
            Step::Version(record(4, 16), at("v1", 3)),
            Step::Compaction(Compaction {
                from_base: "v1".into(),
                parts_folded: 2,
                to_base: "v3".into(),
            }),
            Step::Version(record(5, 20), at("v3", 2)),
            Step::Compaction(Compaction {
                from_base: "v3".into(),
                parts_folded: 2,
                to_base: "v5".into(),
            }),
        ];
        let replayed = replay(steps);
        let contents: Vec<_> = replayed
            .versions
            .iter()
            .map(|(r, c)| (r.version, c.clone().unwrap_or_else(|| unreachable!())))
            .collect();
        for (version, content) in &contents {
            assert_eq!(content.base, "v5", "version {version}");
            assert_eq!(content.parts, 0);
        }
        let prefixes: Vec<_> = contents.iter().map(|(_, c)| c.prefix_rows).collect();
        assert_eq!(
            prefixes,
            vec![Some(10), Some(12), Some(15), Some(16), Some(20)]
        );
    }

    #[test]
    fn a_fold_of_another_base_leaves_versions_alone_and_deletes_have_no_content() {
        let steps = vec![
            Step::Version(record(1, 10), at("v1", 0)),
            Step::Version(record(2, 0), None),
            Step::Version(record(3, 5), at("v3", 0)),
            Step::Version(record(4, 6), at("v3", 1)),
            Step::Compaction(Compaction {
                from_base: "v3".into(),
                parts_folded: 1,
                to_base: "v4".into(),
            }),
        ];
        let replayed = replay(steps);
        assert_eq!(replayed.versions[0].1, at("v1", 0));
        assert_eq!(replayed.versions[1].1, None);
        assert_eq!(
            replayed.versions[2]
                .1
                .as_ref()
                .map(|c| (&c.base[..], c.prefix_rows)),
            Some(("v4", Some(5)))
        );
    }

    #[test]
    fn a_version_recorded_again_replaces_the_first_record() {
        let steps = vec![
            Step::Version(record(1, 10), at("v1", 0)),
            Step::Version(record(2, 11), at("v1", 1)),
            Step::Version(record(2, 11), at("v1", 1)),
        ];
        assert_eq!(replay(steps).versions.len(), 2);
    }
}
