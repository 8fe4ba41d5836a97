//! Narrowing logical columns to the smallest type that stores them exactly.
//!
//! The rules (ARCHITECTURE.md "Types"): integers → the smallest of i8/i16/i32 holding the
//! column's minimum and maximum, bounds inclusive (`storage.integer_downcast = "signed"`, the
//! default: pandas computes with the stored type, and `age - 40` must not wrap); the seed's
//! rule, non-negative columns to u8/u16/u32, behind `"unsigned"`; or never. Float64 → Float32
//! only if every value survives the round trip (unless the policy says `always` or `never`);
//! strings → dictionary when distinct / total < the dictionary ratio. Nulls never take part
//! in min/max, and an all-null or empty column is left as it is.
//!
//! A table keeps its stored types from write to write: rows appended or folded into a table
//! are stored with the types its file already has ([`fit_exactly`], [`downcast_onto`]), and a
//! column changes type only when a value needs a wider one. Then it gets the narrowest type
//! that holds both the old type's range and the new values, so parts and base file always
//! share one stored schema and any Parquet dataset reader can read them together.
//!
//! Readers cast back to the logical type, so what a client sees does not change from one
//! write to the next even when the stored type does; files written with unsigned types by
//! earlier versions read back the same way.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, StringArray, new_null_array};
use arrow::compute::{CastOptions, cast, cast_with_options, max, min};
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema, SchemaRef};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use serde::{Deserialize, Serialize};

use super::error::Result;
use super::meta::{ColumnMeta, LogicalType};

/// When Float64 columns may be stored as Float32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FloatDowncast {
    /// Only when every value round-trips exactly (the default).
    #[default]
    Lossless,
    /// Whenever every finite value is within Float32's range: the 2.5 sketch's lossy rule. The
    /// column's logical type becomes float32, so readers are not shown widened noise.
    Always,
    /// Never.
    Never,
}

/// Which integer types Int64 columns may be stored as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum IntegerDowncast {
    /// The smallest of int8/int16/int32 that holds the column (the default): every reader
    /// computes with signed values, so differences and means come out right.
    #[default]
    Signed,
    /// Non-negative columns to the smallest of uint8/uint16/uint32 (the seed's rule), columns
    /// with negatives to int8/int16/int32. Smaller by a bit for some ranges, but pandas and
    /// NumPy wrap around on `uint8 - 40`.
    Unsigned,
    /// Keep int64.
    Never,
}

/// How to narrow columns.
#[derive(Debug, Clone, Copy)]
pub struct DowncastPolicy {
    /// Float rule.
    pub float: FloatDowncast,
    /// Integer rule.
    pub integer: IntegerDowncast,
    /// Strings become dictionaries when distinct / total is below this.
    pub dictionary_ratio: f64,
}

impl Default for DowncastPolicy {
    fn default() -> Self {
        Self {
            float: FloatDowncast::Lossless,
            integer: IntegerDowncast::Signed,
            dictionary_ratio: 0.5,
        }
    }
}

/// Narrows every column of a logical batch; returns the stored batch and the logical types.
pub fn downcast(
    batch: &RecordBatch,
    policy: DowncastPolicy,
) -> Result<(RecordBatch, Vec<ColumnMeta>)> {
    downcast_onto(batch, policy, None)
}

/// Narrows every column of a logical batch that holds a table's rows, keeping the types the
/// table stores now (`previous`, matched by column name) where the values fit them and
/// widening where they do not. Columns `previous` lacks are narrowed as new.
pub fn downcast_onto(
    batch: &RecordBatch,
    policy: DowncastPolicy,
    previous: Option<&Schema>,
) -> Result<(RecordBatch, Vec<ColumnMeta>)> {
    let schema = batch.schema();
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut arrays = Vec::with_capacity(batch.num_columns());
    let mut logical = Vec::with_capacity(batch.num_columns());
    for (field, array) in schema.fields().iter().zip(batch.columns()) {
        let before = previous
            .and_then(|s| s.field_with_name(field.name()).ok())
            .map(|f| f.data_type());
        let (stored, logical_type) = match before.and_then(|t| fit(array, t)) {
            Some(kept) => (kept, logical_of(array)?),
            None => {
                let (fresh, logical_type) = narrow(array, policy)?;
                match before.map(|t| union(t, fresh.data_type(), policy)) {
                    Some(wider) if &wider != fresh.data_type() => {
                        (cast(array, &wider)?, logical_type)
                    }
                    _ => (fresh, logical_type),
                }
            }
        };
        fields.push(Field::new(field.name(), stored.data_type().clone(), true));
        arrays.push(stored);
        logical.push(ColumnMeta {
            name: field.name().clone(),
            logical_type,
        });
    }
    let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    let stored =
        RecordBatch::try_new_with_options(Arc::new(Schema::new(fields)), arrays, &options)?;
    Ok((stored, logical))
}

/// The logical batch cast to exactly `stored` (same columns, same order), or `None` when a
/// value needs a wider type than the one stored: then the table must be rewritten with
/// wider types before these rows can join it.
pub fn fit_exactly(batch: &RecordBatch, stored: &SchemaRef) -> Result<Option<RecordBatch>> {
    let mut arrays = Vec::with_capacity(stored.fields().len());
    for field in stored.fields() {
        let Some(column) = batch.column_by_name(field.name()) else {
            return Ok(None);
        };
        match fit(column, field.data_type()) {
            Some(array) => arrays.push(array),
            None => return Ok(None),
        }
    }
    let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    Ok(Some(RecordBatch::try_new_with_options(
        Arc::clone(stored),
        arrays,
        &options,
    )?))
}

fn logical_of(array: &ArrayRef) -> Result<LogicalType> {
    let data_type = array.data_type();
    Ok(LogicalType::from_arrow(data_type).ok_or_else(|| {
        arrow::error::ArrowError::InvalidArgumentError(format!(
            "featurestore does not write columns of type {data_type}"
        ))
    })?)
}

/// `array` (logical) stored as `stored` when every value survives exactly.
fn fit(array: &ArrayRef, stored: &DataType) -> Option<ArrayRef> {
    if array.data_type() == stored {
        return Some(Arc::clone(array));
    }
    if array.null_count() == array.len() || array.data_type() == &DataType::Null {
        return Some(new_null_array(stored, array.len()));
    }
    if stored == &DataType::Null {
        return None;
    }
    match (array.data_type(), stored) {
        (DataType::Int64, t) if t.is_integer() => {
            let values = array.as_primitive::<Int64Type>();
            let (lo, hi) = (min(values)?, max(values)?);
            let (t_lo, t_hi) = integer_range(t)?;
            (i128::from(lo) >= t_lo && i128::from(hi) <= t_hi)
                .then(|| cast(array, stored).ok())
                .flatten()
        }
        (DataType::Float64, DataType::Float32) => {
            floats_round_trip(array.as_primitive::<Float64Type>())
                .then(|| cast(array, stored).ok())
                .flatten()
        }
        (DataType::Int64 | DataType::Float64 | DataType::Float32, _) if !stored.is_floating() => {
            None
        }
        _ => {
            // Strings into a dictionary fail on key overflow, timestamps on range: a strict
            // cast says whether the stored type holds the values.
            let strict = CastOptions {
                safe: false,
                ..Default::default()
            };
            cast_with_options(array, stored, &strict).ok()
        }
    }
}

/// The range of an integer type, bounds inclusive.
fn integer_range(t: &DataType) -> Option<(i128, i128)> {
    Some(match t {
        DataType::Int8 => (i8::MIN.into(), i8::MAX.into()),
        DataType::Int16 => (i16::MIN.into(), i16::MAX.into()),
        DataType::Int32 => (i32::MIN.into(), i32::MAX.into()),
        DataType::Int64 => (i64::MIN.into(), i64::MAX.into()),
        DataType::UInt8 => (0, u8::MAX.into()),
        DataType::UInt16 => (0, u16::MAX.into()),
        DataType::UInt32 => (0, u32::MAX.into()),
        DataType::UInt64 => (0, u64::MAX.into()),
        _ => return None,
    })
}

/// The narrowest type holding every value of `before` and of `fresh`, under `policy`.
fn union(before: &DataType, fresh: &DataType, policy: DowncastPolicy) -> DataType {
    match (before, fresh) {
        (DataType::Null, _) => fresh.clone(),
        (b, f) if b.is_integer() && f.is_integer() => match (integer_range(b), integer_range(f)) {
            (Some((b_lo, b_hi)), Some((f_lo, f_hi))) => {
                let (lo, hi) = (b_lo.min(f_lo), b_hi.max(f_hi));
                match (i64::try_from(lo), i64::try_from(hi)) {
                    (Ok(lo), Ok(hi)) => {
                        integer_target(lo, hi, policy.integer).unwrap_or(DataType::Int64)
                    }
                    _ => DataType::Int64,
                }
            }
            _ => DataType::Int64,
        },
        (DataType::Float64, DataType::Float32) => DataType::Float64,
        (DataType::Dictionary(bk, _), DataType::Dictionary(fk, v)) => {
            let key = match (integer_range(bk), integer_range(fk)) {
                (Some((_, b)), Some((_, f))) if b > f => bk.clone(),
                _ => fk.clone(),
            };
            DataType::Dictionary(key, v.clone())
        }
        (DataType::Utf8, DataType::Dictionary(_, _)) => DataType::Utf8,
        _ => fresh.clone(),
    }
}

fn narrow(array: &ArrayRef, policy: DowncastPolicy) -> Result<(ArrayRef, LogicalType)> {
    let data_type = array.data_type();
    let logical = logical_of(array)?;
    let target = match data_type {
        DataType::Int64 => array
            .as_primitive_opt::<Int64Type>()
            .and_then(|values| integer_target(min(values)?, max(values)?, policy.integer)),
        DataType::Float64 => {
            let values = array.as_primitive_opt::<Float64Type>();
            match (policy.float, values) {
                (FloatDowncast::Lossless, Some(v)) if floats_round_trip(v) => {
                    Some(DataType::Float32)
                }
                (FloatDowncast::Always, Some(v)) if floats_fit_f32(v) => {
                    let narrowed = cast(array, &DataType::Float32)?;
                    return Ok((narrowed, LogicalType::Float32));
                }
                _ => None,
            }
        }
        DataType::Utf8 => array
            .as_string_opt::<i32>()
            .and_then(|s| dictionary_target(s, policy.dictionary_ratio)),
        _ => None,
    };
    Ok(match target {
        Some(t) => (cast(array, &t)?, logical),
        None => (array.clone(), logical),
    })
}

/// The narrowest integer type holding `[lo, hi]`, bounds inclusive, under `rule`; `None` when
/// only int64 holds it (or the rule is `never`).
fn integer_target(lo: i64, hi: i64, rule: IntegerDowncast) -> Option<DataType> {
    let fits = |t: DataType| {
        integer_range(&t)
            .is_some_and(|(t_lo, t_hi)| i128::from(lo) >= t_lo && i128::from(hi) <= t_hi)
            .then_some(t)
    };
    let signed = || {
        fits(DataType::Int8)
            .or_else(|| fits(DataType::Int16))
            .or_else(|| fits(DataType::Int32))
    };
    match rule {
        IntegerDowncast::Never => None,
        IntegerDowncast::Signed => signed(),
        IntegerDowncast::Unsigned if lo >= 0 => fits(DataType::UInt8)
            .or_else(|| fits(DataType::UInt16))
            .or_else(|| fits(DataType::UInt32)),
        IntegerDowncast::Unsigned => signed(),
    }
}

fn floats_round_trip(values: &Float64Array) -> bool {
    values.null_count() < values.len()
        && values
            .iter()
            .flatten()
            .all(|v| v.is_nan() || f64::from(v as f32) == v)
}

fn floats_fit_f32(values: &Float64Array) -> bool {
    values.null_count() < values.len()
        && values
            .iter()
            .flatten()
            .all(|v| !v.is_finite() || v.abs() <= f64::from(f32::MAX))
}

/// A dictionary type when few enough values are distinct; the key is the narrowest signed
/// integer that indexes them (signed keys are what pandas and most readers expect).
fn dictionary_target(values: &StringArray, ratio: f64) -> Option<DataType> {
    let total = values.len();
    if total == 0 {
        return None;
    }
    // Stop counting as soon as the ratio is out of reach: a high-cardinality column of a
    // million rows must not pay for a full distinct count.
    let budget = (ratio * total as f64).ceil() as usize;
    let mut distinct = HashSet::new();
    for value in values.iter().flatten() {
        if distinct.insert(value) && distinct.len() >= budget {
            return None;
        }
    }
    if (distinct.len() as f64) / (total as f64) >= ratio {
        return None;
    }
    let key = match distinct.len() {
        n if n <= i8::MAX as usize => DataType::Int8,
        n if n <= i16::MAX as usize => DataType::Int16,
        _ => DataType::Int32,
    };
    Some(DataType::Dictionary(
        Box::new(key),
        Box::new(DataType::Utf8),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;

    fn stored_type(array: ArrayRef, policy: DowncastPolicy) -> DataType {
        narrow(&array, policy)
            .expect("narrow")
            .0
            .data_type()
            .clone()
    }

    fn ints_with(values: &[Option<i64>], integer: IntegerDowncast) -> DataType {
        let policy = DowncastPolicy {
            integer,
            ..DowncastPolicy::default()
        };
        stored_type(Arc::new(Int64Array::from(values.to_vec())), policy)
    }

    fn ints(values: &[Option<i64>]) -> DataType {
        ints_with(values, IntegerDowncast::Signed)
    }

    #[test]
    fn integers_are_signed_by_default_with_inclusive_bounds() {
        assert_eq!(ints(&[Some(0), Some(127)]), DataType::Int8);
        assert_eq!(ints(&[Some(0), Some(128)]), DataType::Int16);
        assert_eq!(ints(&[Some(18), Some(80)]), DataType::Int8);
        assert_eq!(ints(&[Some(32767)]), DataType::Int16);
        assert_eq!(ints(&[Some(32768)]), DataType::Int32);
        assert_eq!(ints(&[Some(i32::MAX as i64)]), DataType::Int32);
        assert_eq!(ints(&[Some(i32::MAX as i64 + 1)]), DataType::Int64);
    }

    #[test]
    fn the_unsigned_rule_keeps_the_seeds_boundaries() {
        let u = |v: &[Option<i64>]| ints_with(v, IntegerDowncast::Unsigned);
        assert_eq!(u(&[Some(0), Some(255)]), DataType::UInt8);
        assert_eq!(u(&[Some(0), Some(256)]), DataType::UInt16);
        assert_eq!(u(&[Some(65535)]), DataType::UInt16);
        assert_eq!(u(&[Some(65536)]), DataType::UInt32);
        assert_eq!(u(&[Some(u32::MAX as i64)]), DataType::UInt32);
        assert_eq!(u(&[Some(u32::MAX as i64 + 1)]), DataType::Int64);
        assert_eq!(u(&[Some(-1), Some(5)]), DataType::Int8);
        assert_eq!(
            ints_with(&[Some(1)], IntegerDowncast::Never),
            DataType::Int64
        );
    }

    #[test]
    fn nulls_in_integer_columns_do_not_count_and_survive() {
        let array: ArrayRef = Arc::new(Int64Array::from(vec![None, Some(3), None]));
        let (stored, logical) = narrow(&array, DowncastPolicy::default()).expect("narrow");
        assert_eq!(stored.data_type(), &DataType::Int8);
        assert_eq!(stored.null_count(), 2);
        assert_eq!(logical, LogicalType::Int64);
        assert_eq!(ints(&[None, None]), DataType::Int64);
        assert_eq!(ints(&[]), DataType::Int64);
    }

    #[test]
    fn floats_narrow_only_when_they_round_trip() {
        let policy = DowncastPolicy::default();
        let exact: ArrayRef = Arc::new(Float64Array::from(vec![Some(0.5), None, Some(f64::NAN)]));
        assert_eq!(stored_type(exact, policy), DataType::Float32);
        let inexact: ArrayRef = Arc::new(Float64Array::from(vec![0.5, 2.4]));
        assert_eq!(stored_type(inexact.clone(), policy), DataType::Float64);
        let never = DowncastPolicy {
            float: FloatDowncast::Never,
            ..policy
        };
        let exact: ArrayRef = Arc::new(Float64Array::from(vec![0.5]));
        assert_eq!(stored_type(exact, never), DataType::Float64);
        let always = DowncastPolicy {
            float: FloatDowncast::Always,
            ..policy
        };
        let (stored, logical) = narrow(&inexact, always).expect("narrow");
        assert_eq!(stored.data_type(), &DataType::Float32);
        assert_eq!(logical, LogicalType::Float32);
        let huge: ArrayRef = Arc::new(Float64Array::from(vec![1e300]));
        assert_eq!(stored_type(huge, always), DataType::Float64);
    }

    #[test]
    fn strings_become_dictionaries_below_the_ratio_only() {
        let policy = DowncastPolicy::default();
        let repeated: ArrayRef = Arc::new(StringArray::from(vec!["a", "b", "a", "b", "a"]));
        assert!(matches!(
            stored_type(repeated, policy),
            DataType::Dictionary(_, _)
        ));
        // Exactly half distinct is not below 0.5.
        let half: ArrayRef = Arc::new(StringArray::from(vec!["a", "b", "a", "b"]));
        assert_eq!(stored_type(half, policy), DataType::Utf8);
        let unique: ArrayRef = Arc::new(StringArray::from(vec!["a", "b", "c"]));
        assert_eq!(stored_type(unique, policy), DataType::Utf8);
        let empty: ArrayRef = Arc::new(StringArray::from(Vec::<&str>::new()));
        assert_eq!(stored_type(empty, policy), DataType::Utf8);
        let nulls: ArrayRef = Arc::new(StringArray::from(vec![None::<&str>, None, None]));
        assert!(matches!(
            stored_type(nulls, policy),
            DataType::Dictionary(_, _)
        ));
    }

    fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
        RecordBatch::try_from_iter(columns).expect("batch")
    }

    #[test]
    fn rows_that_fit_keep_the_stored_types_and_others_widen_just_enough() {
        let policy = DowncastPolicy::default();
        let first = batch(vec![(
            "id",
            Arc::new(Int64Array::from(vec![1, 100])) as ArrayRef,
        )]);
        let (stored, _) = downcast(&first, policy).expect("downcast");
        assert_eq!(stored.schema().field(0).data_type(), &DataType::Int8);
        // Values that an int8 holds stay int8 even though they alone would need no more.
        let small = batch(vec![(
            "id",
            Arc::new(Int64Array::from(vec![5])) as ArrayRef,
        )]);
        let (kept, _) = downcast_onto(&small, policy, Some(&stored.schema())).expect("onto");
        assert_eq!(kept.schema().field(0).data_type(), &DataType::Int8);
        let fitted = fit_exactly(&small, &stored.schema()).expect("fit");
        assert!(fitted.is_some());
        let large = batch(vec![(
            "id",
            Arc::new(Int64Array::from(vec![300])) as ArrayRef,
        )]);
        assert!(
            fit_exactly(&large, &stored.schema())
                .expect("fit")
                .is_none()
        );
        let (wider, _) = downcast_onto(&large, policy, Some(&stored.schema())).expect("onto");
        assert_eq!(wider.schema().field(0).data_type(), &DataType::Int16);
        // An unsigned type of an earlier version is kept while values fit, and widened to a
        // type that holds both ranges when they do not.
        let old = Schema::new(vec![Field::new("id", DataType::UInt8, true)]);
        let (kept, _) = downcast_onto(&small, policy, Some(&old)).expect("onto");
        assert_eq!(kept.schema().field(0).data_type(), &DataType::UInt8);
        let negative = batch(vec![(
            "id",
            Arc::new(Int64Array::from(vec![-1])) as ArrayRef,
        )]);
        let (widened, _) = downcast_onto(&negative, policy, Some(&old)).expect("onto");
        assert_eq!(widened.schema().field(0).data_type(), &DataType::Int16);
    }

    #[test]
    fn an_all_null_column_takes_the_first_type_rows_bring() {
        let policy = DowncastPolicy::default();
        let before = Schema::new(vec![Field::new("x", DataType::Null, true)]);
        let values = batch(vec![(
            "x",
            Arc::new(Float64Array::from(vec![Some(0.5), None])) as ArrayRef,
        )]);
        assert!(
            fit_exactly(&values, &Arc::new(before.clone()))
                .expect("fit")
                .is_none()
        );
        let (stored, logical) = downcast_onto(&values, policy, Some(&before)).expect("onto");
        assert_eq!(stored.schema().field(0).data_type(), &DataType::Float32);
        assert_eq!(logical[0].logical_type, LogicalType::Float64);
        // And nulls fit any stored type.
        let nulls = batch(vec![(
            "x",
            Arc::new(Float64Array::from(vec![None::<f64>])) as ArrayRef,
        )]);
        assert!(
            fit_exactly(&nulls, &stored.schema())
                .expect("fit")
                .is_some()
        );
    }

    #[test]
    fn a_float32_column_widens_when_a_value_does_not_round_trip() {
        let policy = DowncastPolicy::default();
        let before = Schema::new(vec![Field::new("x", DataType::Float32, true)]);
        let exact = batch(vec![(
            "x",
            Arc::new(Float64Array::from(vec![0.25])) as ArrayRef,
        )]);
        assert!(
            fit_exactly(&exact, &Arc::new(before.clone()))
                .expect("fit")
                .is_some()
        );
        let inexact = batch(vec![(
            "x",
            Arc::new(Float64Array::from(vec![0.1])) as ArrayRef,
        )]);
        assert!(
            fit_exactly(&inexact, &Arc::new(before.clone()))
                .expect("fit")
                .is_none()
        );
        let (stored, _) = downcast_onto(&inexact, policy, Some(&before)).expect("onto");
        assert_eq!(stored.schema().field(0).data_type(), &DataType::Float64);
    }
}
