//! Cache keys: a structured description of a read, hashed for storage.
//!
//! The key always carries the table's version, so after any write (or an external change
//! the catalog noticed) every old entry is simply unreachable: a missed invalidation can cost
//! memory, never correctness. Invalidation matches the table name exactly, unlike the 2.5
//! sketch's substring match that dropped `user:preferences_v2` along with `user:pref`.

use sha2::{Digest, Sha256};

/// What was read.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ReadKind {
    /// A page: columns in the order asked (`None` = all), offset, limit.
    Page {
        /// Projected columns, in order.
        columns: Option<Vec<String>>,
        /// First row.
        offset: u64,
        /// Row count.
        limit: u64,
    },
    /// A batch lookup of one table: canonical (sorted, typed) entity ids, optional as-of.
    Batch {
        /// `None` for every row, else the ids as `i:<n>` / `s:<text>`, sorted and deduplicated.
        ids: Option<Vec<String>>,
        /// As-of instant in µs, if any.
        as_of_micros: Option<i64>,
    },
}

/// A cache key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    /// The table name (unique across groups).
    pub table: String,
    /// The table version the entry was read from.
    pub version: u64,
    /// Identity of the file the entry was read from (a digest of its size and modification
    /// time). With the version, it ties an entry to the exact file it came from, so even a
    /// version number reused after the table's metadata was lost cannot serve another file's
    /// rows from the disk tier, which outlives restarts.
    pub snapshot: u64,
    /// What was read.
    pub kind: ReadKind,
}

impl CacheKey {
    /// The canonical text of the key: the same read always gives the same text, two different
    /// reads never do (every variable part is length-prefixed or quoted as JSON).
    pub fn canonical(&self) -> String {
        let kind = match &self.kind {
            ReadKind::Page {
                columns,
                offset,
                limit,
            } => {
                format!(
                    "page|{}|{offset}|{limit}",
                    serde_json::to_string(columns).unwrap_or_default()
                )
            }
            ReadKind::Batch { ids, as_of_micros } => format!(
                "batch|{}|{}",
                serde_json::to_string(ids).unwrap_or_default(),
                as_of_micros.map_or_else(|| "-".to_owned(), |t| t.to_string())
            ),
        };
        format!(
            "{}|{}|{:016x}|{kind}",
            serde_json::to_string(&self.table).unwrap_or_default(),
            self.version,
            self.snapshot
        )
    }

    /// sha256 of the canonical text: the disk tier's key.
    pub fn digest(&self) -> [u8; 32] {
        Sha256::digest(self.canonical().as_bytes()).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(columns: Option<Vec<&str>>, version: u64) -> CacheKey {
        CacheKey {
            table: "user_profile".into(),
            version,
            snapshot: 7,
            kind: ReadKind::Page {
                columns: columns.map(|c| c.into_iter().map(String::from).collect()),
                offset: 0,
                limit: 10,
            },
        }
    }

    #[test]
    fn column_order_and_version_are_part_of_the_key() {
        assert_ne!(
            page(Some(vec!["a", "b"]), 1).digest(),
            page(Some(vec!["b", "a"]), 1).digest()
        );
        assert_ne!(page(None, 1).digest(), page(None, 2).digest());
        let other_file = CacheKey {
            snapshot: 8,
            ..page(None, 1)
        };
        assert_ne!(page(None, 1).digest(), other_file.digest());
        assert_eq!(
            page(Some(vec!["a"]), 3).digest(),
            page(Some(vec!["a"]), 3).digest()
        );
    }

    #[test]
    fn separators_inside_names_cannot_collide() {
        let a = page(Some(vec!["a,b"]), 1);
        let b = page(Some(vec!["a", "b"]), 1);
        assert_ne!(a.canonical(), b.canonical());
    }
}
