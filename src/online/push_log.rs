//! Which rows of the durable push log still matter, so the log can be compacted.
//!
//! Rows pushed online exist only in the log (`durable.rs`), and every push used to add an
//! entry forever: a server taking a push a second grew its online store, and sled's memory
//! with it, for as long as it ran. An online answer only ever uses, per entity key, the pushed
//! row with the latest event at or before the lookup (ties: later created time, then later
//! push). Rows that lost that contest at some instant lose it at every later one too, since a
//! clock that moves forward only adds candidates. So a log can be replaced by its survivors:
//! per key the row an index built now would keep, plus every row whose event is still in the
//! future (it will win once the clock reaches it, and until then the older row must answer).

use arrow::array::{Array, UInt32Array};
use arrow::compute::take;
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, SortField};

use super::{Timing, key_column, micros_of};
use crate::model::FeatureView;
use crate::storage::StorageError;

/// The rows of `rows` (pushed rows of one schema, in push order) that can still decide an
/// online answer of `view` at `now_micros` or later, in their original order. `None` when the
/// rows lack a join key or the event timestamp column: the index cannot use them either, and
/// they are kept as they are rather than judged.
pub fn survivors(
    rows: &RecordBatch,
    view: &FeatureView,
    join_keys: &[String],
    now_micros: i64,
) -> Result<Option<RecordBatch>, StorageError> {
    let Some(event_column) = rows.column_by_name(&view.timestamp_field) else {
        return Ok(None);
    };
    let mut key_columns = Vec::with_capacity(join_keys.len());
    for name in join_keys {
        let Some(column) = rows.column_by_name(name) else {
            return Ok(None);
        };
        // The same normalisation as the index's maps, so "the same key" means the same here.
        key_columns.push(key_column(column)?.0);
    }
    let event = micros_of(event_column)?;
    let created = match view
        .created_timestamp_field
        .as_deref()
        .and_then(|name| rows.column_by_name(name))
    {
        Some(column) => Some(micros_of(column)?),
        None => None,
    };
    let converter = RowConverter::new(
        key_columns
            .iter()
            .map(|c| SortField::new(c.data_type().clone()))
            .collect(),
    )?;
    let keys = converter.convert_columns(&key_columns)?;
    let has_null_key = |row: usize| key_columns.iter().any(|c| c.is_null(row));
    let timing = Timing {
        event: &event,
        created: created.as_deref(),
        now_micros,
    };
    let mut future = i64::MAX;
    let winners = timing.winners(rows.num_rows(), &mut future, |row| {
        (!has_null_key(row)).then(|| keys.row(row))
    });
    let mut kept: Vec<u32> = winners.into_iter().map(|(_, row)| row).collect();
    kept.extend(
        (0..rows.num_rows())
            .filter(|&row| !has_null_key(row) && event[row].is_some_and(|ts| ts > now_micros))
            .map(|row| row as u32),
    );
    kept.sort_unstable();
    let indices = UInt32Array::from(kept);
    let columns = rows
        .columns()
        .iter()
        .map(|c| take(c.as_ref(), &indices, None))
        .collect::<Result<Vec<_>, _>>()?;
    let options =
        arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(indices.len()));
    Ok(Some(RecordBatch::try_new_with_options(
        rows.schema(),
        columns,
        &options,
    )?))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray, TimestampMicrosecondArray};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};

    use super::*;

    fn view(created: bool) -> FeatureView {
        serde_json::from_value(serde_json::json!({
            "name": "profile",
            "group": "user",
            "entities": ["user"],
            "timestamp_field": "event_timestamp",
            "created_timestamp_field": if created { Some("created") } else { None },
        }))
        .expect("a valid view")
    }

    fn pushed(users: &[Option<i64>], events: &[i64], created: &[i64], ages: &[i64]) -> RecordBatch {
        let micros = || DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let schema = Arc::new(Schema::new(vec![
            Field::new("user_id", DataType::Int64, true),
            Field::new("event_timestamp", micros(), true),
            Field::new("created", micros(), true),
            Field::new("age", DataType::Int64, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(users.to_vec())),
                Arc::new(TimestampMicrosecondArray::from(events.to_vec()).with_timezone("UTC")),
                Arc::new(TimestampMicrosecondArray::from(created.to_vec()).with_timezone("UTC")),
                Arc::new(Int64Array::from(ages.to_vec())),
            ],
        )
        .expect("a valid batch")
    }

    fn ages(batch: &RecordBatch) -> Vec<i64> {
        batch
            .column_by_name("age")
            .expect("age")
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("int64")
            .values()
            .to_vec()
    }

    #[test]
    fn keeps_the_latest_row_per_key_and_every_future_row_in_push_order() {
        let rows = pushed(
            &[Some(1), Some(2), Some(1), Some(1), None, Some(2), Some(1)],
            &[10, 10, 30, 20, 50, 5, 90],
            &[0; 7],
            &[1, 2, 3, 4, 5, 6, 7],
        );
        let kept = survivors(&rows, &view(false), &["user_id".into()], 40)
            .expect("compacts")
            .expect("has the columns");
        // User 1: 30 wins among the past rows, 90 is still to come; user 2: 10 beats 5; the
        // row without a key can never be found.
        assert_eq!(ages(&kept), vec![2, 3, 7]);
    }

    #[test]
    fn ties_go_to_the_later_created_time_then_the_later_push() {
        let rows = pushed(
            &[Some(1), Some(1), Some(2), Some(2)],
            &[10, 10, 10, 10],
            &[7, 3, 4, 4],
            &[1, 2, 3, 4],
        );
        let with_created = survivors(&rows, &view(true), &["user_id".into()], 40)
            .expect("compacts")
            .expect("has the columns");
        assert_eq!(ages(&with_created), vec![1, 4]);
        let without = survivors(&rows, &view(false), &["user_id".into()], 40)
            .expect("compacts")
            .expect("has the columns");
        assert_eq!(ages(&without), vec![2, 4]);
    }

    #[test]
    fn rows_without_a_join_key_column_are_not_judged() {
        let batch = pushed(&[Some(1)], &[10], &[0], &[1]);
        let other = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("name", DataType::Utf8, true)])),
            vec![Arc::new(StringArray::from(vec!["x"]))],
        )
        .expect("a valid batch");
        assert!(
            survivors(&batch, &view(false), &["movie_id".into()], 40)
                .expect("no error")
                .is_none()
        );
        assert!(
            survivors(&other, &view(false), &["user_id".into()], 40)
                .expect("no error")
                .is_none()
        );
    }
}
