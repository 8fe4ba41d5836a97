//! What changed in a keyed table between two versions, by entity key: keys added, removed,
//! changed and unchanged. A pure function over the two versions' rows.
//!
//! A key is *changed* when the multiset of its rows, over the columns both versions have,
//! differs; row order never matters (a fold or a restore may reorder nothing, but a replace
//! may). Rows are compared through arrow's row format (`RowConverter`), which encodes any
//! column types into comparable bytes, so no row is ever turned into JSON. Each row is hashed
//! (64 bits) and a key's sorted hashes stand for its multiset: two different multisets can only
//! compare equal through a hash collision, about one chance in 2^64 per pair of rows.
//!
//! A column whose type differs between the versions (a retype) is compared through its text
//! form, so `1` (integer) and `1.0` (float) differ, as they would to a reader.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::compute::cast;
use arrow::datatypes::DataType;
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, Rows, SortField};

/// Keys of the newer version against the older one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyChanges {
    /// Keys only the newer version has.
    pub added: u64,
    /// Keys only the older version has.
    pub removed: u64,
    /// Keys both have, with different rows.
    pub changed: u64,
    /// Keys both have, with the same rows.
    pub unchanged: u64,
}

/// The key changes from `from` to `to`, comparing rows over the columns both have. `None`
/// when `entity_key` is empty or a key column is missing from either version (then keys of
/// the two cannot be matched).
pub fn key_changes(
    from: &RecordBatch,
    to: &RecordBatch,
    entity_key: &[String],
) -> Result<Option<KeyChanges>, ArrowError> {
    if entity_key.is_empty()
        || entity_key
            .iter()
            .any(|k| from.column_by_name(k).is_none() || to.column_by_name(k).is_none())
    {
        return Ok(None);
    }
    let shared: Vec<String> = to
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .filter(|n| from.column_by_name(n).is_some())
        .collect();
    let (from_keys, to_keys) = comparable_rows(from, to, entity_key)?;
    let (from_rows, to_rows) = comparable_rows(from, to, &shared)?;
    let older = multisets(&from_keys, &from_rows);
    let newer = multisets(&to_keys, &to_rows);
    let mut changes = KeyChanges::default();
    for (key, rows) in &newer {
        match older.get(key) {
            None => changes.added += 1,
            Some(before) if before == rows => changes.unchanged += 1,
            Some(_) => changes.changed += 1,
        }
    }
    changes.removed = older.keys().filter(|k| !newer.contains_key(*k)).count() as u64;
    Ok(Some(changes))
}

/// Per key (its row-format bytes), the sorted hashes of its rows.
fn multisets<'a>(keys: &'a Rows, rows: &Rows) -> HashMap<&'a [u8], Vec<u64>> {
    let mut out: HashMap<&[u8], Vec<u64>> = HashMap::new();
    for i in 0..keys.num_rows() {
        let mut hasher = DefaultHasher::new();
        rows.row(i).as_ref().hash(&mut hasher);
        out.entry(keys.row(i).data())
            .or_default()
            .push(hasher.finish());
    }
    for hashes in out.values_mut() {
        hashes.sort_unstable();
    }
    out
}

/// `columns` of both batches in the row format, with one converter, so equal values encode
/// to equal bytes whichever version they come from.
fn comparable_rows(
    from: &RecordBatch,
    to: &RecordBatch,
    columns: &[String],
) -> Result<(Rows, Rows), ArrowError> {
    let mut fields = Vec::with_capacity(columns.len());
    let mut older = Vec::with_capacity(columns.len());
    let mut newer = Vec::with_capacity(columns.len());
    for name in columns {
        let (Some(a), Some(b)) = (from.column_by_name(name), to.column_by_name(name)) else {
            return Err(ArrowError::SchemaError(format!(
                "column {name:?} is not in both versions"
            )));
        };
        let (a, b, common) = unify(a, b)?;
        fields.push(SortField::new(common));
        older.push(a);
        newer.push(b);
    }
    let converter = RowConverter::new(fields)?;
    Ok((
        converter.convert_columns(&older)?,
        converter.convert_columns(&newer)?,
    ))
}

/// The two versions of a column in one type: their value type when they agree (a dictionary
/// in one file and plain strings in the other are the same strings), else text.
fn unify(a: &ArrayRef, b: &ArrayRef) -> Result<(ArrayRef, ArrayRef, DataType), ArrowError> {
    let (ta, tb) = (value_type(a.data_type()), value_type(b.data_type()));
    let common = if ta == tb { ta } else { DataType::Utf8 };
    let convert = |array: &ArrayRef| -> Result<ArrayRef, ArrowError> {
        if array.data_type() == &common {
            Ok(Arc::clone(array))
        } else {
            cast(array, &common)
        }
    };
    Ok((convert(a)?, convert(b)?, common))
}

fn value_type(data_type: &DataType) -> DataType {
    match data_type {
        DataType::Dictionary(_, value) => value.as_ref().clone(),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{DictionaryArray, Float64Array, Int64Array, StringArray};
    use arrow::datatypes::Int32Type;

    use super::*;

    fn table(ids: &[i64], scores: &[i64]) -> Result<RecordBatch, ArrowError> {
        RecordBatch::try_from_iter([
            (
                "user_id",
                Arc::new(Int64Array::from(ids.to_vec())) as ArrayRef,
            ),
            ("score", Arc::new(Int64Array::from(scores.to_vec()))),
        ])
    }

    fn key() -> Vec<String> {
        vec!["user_id".to_owned()]
    }

    #[test]
    fn keys_added_removed_changed_and_unchanged_are_counted() -> Result<(), ArrowError> {
        let before = table(&[1, 2, 3], &[10, 20, 30])?;
        let after = table(&[2, 3, 4], &[20, 31, 40])?;
        let changes = key_changes(&before, &after, &key())?;
        assert_eq!(
            changes,
            Some(KeyChanges {
                added: 1,
                removed: 1,
                changed: 1,
                unchanged: 1,
            })
        );
        Ok(())
    }

    #[test]
    fn row_order_does_not_make_a_key_changed_but_a_repeated_row_does() -> Result<(), ArrowError> {
        let before = table(&[1, 1, 2], &[10, 11, 20])?;
        let reordered = table(&[2, 1, 1], &[20, 11, 10])?;
        let changes = key_changes(&before, &reordered, &key())?.ok_or("keyed");
        assert_eq!(changes.map(|c| (c.changed, c.unchanged)), Ok((0, 2)));
        let repeated = table(&[1, 1, 1, 2], &[10, 11, 11, 20])?;
        let changes = key_changes(&before, &repeated, &key())?.ok_or("keyed");
        assert_eq!(changes.map(|c| (c.changed, c.unchanged)), Ok((1, 1)));
        Ok(())
    }

    #[test]
    fn only_columns_both_versions_have_are_compared() -> Result<(), ArrowError> {
        let before = table(&[1, 2], &[10, 20])?;
        let widened = RecordBatch::try_from_iter([
            (
                "user_id",
                Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef,
            ),
            ("score", Arc::new(Int64Array::from(vec![10, 20]))),
            ("extra", Arc::new(StringArray::from(vec!["a", "b"]))),
        ])?;
        let changes = key_changes(&before, &widened, &key())?;
        assert_eq!(changes.map(|c| c.unchanged), Some(2));
        Ok(())
    }

    #[test]
    fn a_dictionary_and_plain_strings_with_the_same_values_are_equal() -> Result<(), ArrowError> {
        let plain = RecordBatch::try_from_iter([
            (
                "user_id",
                Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef,
            ),
            ("city", Arc::new(StringArray::from(vec!["Oslo", "Rome"]))),
        ])?;
        let dictionary: DictionaryArray<Int32Type> = vec!["Oslo", "Rome"].into_iter().collect();
        let encoded = RecordBatch::try_from_iter([
            (
                "user_id",
                Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef,
            ),
            ("city", Arc::new(dictionary)),
        ])?;
        let changes = key_changes(&plain, &encoded, &key())?;
        assert_eq!(changes.map(|c| c.unchanged), Some(2));
        Ok(())
    }

    #[test]
    fn a_retyped_column_compares_by_its_text() -> Result<(), ArrowError> {
        let before = table(&[1, 2], &[10, 20])?;
        let floats = RecordBatch::try_from_iter([
            (
                "user_id",
                Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef,
            ),
            ("score", Arc::new(Float64Array::from(vec![10.0, 20.5]))),
        ])?;
        let changes = key_changes(&before, &floats, &key())?;
        // "10" and "10.0" are different text: both keys read differently now.
        assert_eq!(changes.map(|c| c.changed), Some(2));
        Ok(())
    }

    #[test]
    fn no_entity_key_or_a_key_column_missing_gives_no_key_counts() -> Result<(), ArrowError> {
        let before = table(&[1], &[10])?;
        assert_eq!(key_changes(&before, &before, &[])?, None);
        let unkeyed = RecordBatch::try_from_iter([(
            "score",
            Arc::new(Int64Array::from(vec![10])) as ArrayRef,
        )])?;
        assert_eq!(key_changes(&before, &unkeyed, &key())?, None);
        Ok(())
    }
}
