//! Narrowing logical columns to the smallest type that stores them exactly.
//!
//! The rules (ARCHITECTURE.md "Types"): non-negative integers → the smallest of u8/u16/u32
//! whose maximum is ≥ the column's maximum; integers with negatives → i8/i16/i32 likewise
//! (bounds inclusive on both sides); Float64 → Float32 only if every value survives the round
//! trip (unless the policy says `always` or `never`); strings → dictionary when
//! distinct / total < the dictionary ratio. Nulls never take part in min/max, and an all-null
//! or empty column is left as it is.
//!
//! Readers cast back to the logical type, so what a client sees does not change from one
//! write to the next even when the stored type does.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, StringArray};
use arrow::compute::{cast, max, min};
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema};
use arrow::record_batch::RecordBatch;
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

/// How to narrow columns.
#[derive(Debug, Clone, Copy)]
pub struct DowncastPolicy {
    /// Float rule.
    pub float: FloatDowncast,
    /// Strings become dictionaries when distinct / total is below this.
    pub dictionary_ratio: f64,
}

impl Default for DowncastPolicy {
    fn default() -> Self {
        Self {
            float: FloatDowncast::Lossless,
            dictionary_ratio: 0.5,
        }
    }
}

/// Narrows every column of a logical batch; returns the stored batch and the logical types.
pub fn downcast(
    batch: &RecordBatch,
    policy: DowncastPolicy,
) -> Result<(RecordBatch, Vec<ColumnMeta>)> {
    let schema = batch.schema();
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut arrays = Vec::with_capacity(batch.num_columns());
    let mut logical = Vec::with_capacity(batch.num_columns());
    for (field, array) in schema.fields().iter().zip(batch.columns()) {
        let (stored, logical_type) = narrow(array, policy)?;
        fields.push(Field::new(field.name(), stored.data_type().clone(), true));
        arrays.push(stored);
        logical.push(ColumnMeta {
            name: field.name().clone(),
            logical_type,
        });
    }
    let stored = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?;
    Ok((stored, logical))
}

fn narrow(array: &ArrayRef, policy: DowncastPolicy) -> Result<(ArrayRef, LogicalType)> {
    let data_type = array.data_type();
    let logical = LogicalType::from_arrow(data_type).ok_or_else(|| {
        arrow::error::ArrowError::InvalidArgumentError(format!(
            "featurestore does not write columns of type {data_type}"
        ))
    })?;
    let target = match data_type {
        DataType::Int64 => array
            .as_primitive_opt::<Int64Type>()
            .and_then(integer_target),
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

/// The narrowest integer type holding `[min, max]`, bounds inclusive.
fn integer_target(values: &Int64Array) -> Option<DataType> {
    let (lo, hi) = (min(values)?, max(values)?);
    let target = if lo >= 0 {
        if hi <= i64::from(u8::MAX) {
            DataType::UInt8
        } else if hi <= i64::from(u16::MAX) {
            DataType::UInt16
        } else if hi <= i64::from(u32::MAX) {
            DataType::UInt32
        } else {
            return None;
        }
    } else if lo >= i64::from(i8::MIN) && hi <= i64::from(i8::MAX) {
        DataType::Int8
    } else if lo >= i64::from(i16::MIN) && hi <= i64::from(i16::MAX) {
        DataType::Int16
    } else if lo >= i64::from(i32::MIN) && hi <= i64::from(i32::MAX) {
        DataType::Int32
    } else {
        return None;
    };
    Some(target)
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

    fn stored_type(array: ArrayRef, policy: DowncastPolicy) -> DataType {
        narrow(&array, policy)
            .expect("narrow")
            .0
            .data_type()
            .clone()
    }

    fn ints(values: &[Option<i64>]) -> DataType {
        stored_type(
            Arc::new(Int64Array::from(values.to_vec())),
            DowncastPolicy::default(),
        )
    }

    #[test]
    fn unsigned_boundaries_are_inclusive() {
        assert_eq!(ints(&[Some(0), Some(255)]), DataType::UInt8);
        assert_eq!(ints(&[Some(0), Some(256)]), DataType::UInt16);
        assert_eq!(ints(&[Some(65535)]), DataType::UInt16);
        assert_eq!(ints(&[Some(65536)]), DataType::UInt32);
        assert_eq!(ints(&[Some(u32::MAX as i64)]), DataType::UInt32);
        assert_eq!(ints(&[Some(u32::MAX as i64 + 1)]), DataType::Int64);
    }

    #[test]
    fn signed_boundaries_are_inclusive() {
        assert_eq!(ints(&[Some(-128), Some(127)]), DataType::Int8);
        assert_eq!(ints(&[Some(-129), Some(0)]), DataType::Int16);
        assert_eq!(ints(&[Some(-1), Some(128)]), DataType::Int16);
        assert_eq!(ints(&[Some(-32768), Some(32767)]), DataType::Int16);
        assert_eq!(ints(&[Some(-32769)]), DataType::Int32);
        assert_eq!(
            ints(&[Some(i32::MIN as i64), Some(i32::MAX as i64)]),
            DataType::Int32
        );
        assert_eq!(ints(&[Some(i32::MIN as i64 - 1)]), DataType::Int64);
        assert_eq!(
            ints(&[Some(-1), Some(i32::MAX as i64 + 1)]),
            DataType::Int64
        );
    }

    #[test]
    fn nulls_in_integer_columns_do_not_count_and_survive() {
        let array: ArrayRef = Arc::new(Int64Array::from(vec![None, Some(3), None]));
        let (stored, logical) = narrow(&array, DowncastPolicy::default()).expect("narrow");
        assert_eq!(stored.data_type(), &DataType::UInt8);
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
}
