//! Feast's value types and durations in featurestore's terms.

use crate::model::ValueType;

/// The featurestore dtype a Feast feature's `ValueType` is stored and served as, or why it has
/// none. Feast's `FLOAT` (32-bit) becomes `float64`: the widening is exact, and the served JSON
/// number is the same.
pub fn feature_dtype(value_type: Option<&str>) -> Result<&'static str, String> {
    match value_type.unwrap_or("") {
        "INT64" | "INT32" => Ok("int64"),
        "DOUBLE" | "FLOAT" => Ok("float64"),
        "STRING" => Ok("string"),
        "BOOL" => Ok("bool"),
        "UNIX_TIMESTAMP" => Ok("timestamp[us, UTC]"),
        "" | "INVALID" | "UNKNOWN" => Err("Feast records no value type for it".into()),
        other => Err(format!(
            "Feast type {other} has no featurestore dtype (int64, float64, string, bool and timestamps are stored)"
        )),
    }
}

/// The key type of a Feast entity's `ValueType`, or why it has none.
pub fn key_type(value_type: Option<&str>) -> Result<ValueType, String> {
    match value_type.unwrap_or("") {
        "INT64" | "INT32" => Ok(ValueType::Int64),
        "STRING" => Ok(ValueType::String),
        "" | "INVALID" | "UNKNOWN" => Err("Feast records no value type for its join key".into()),
        other => Err(format!(
            "its join key is {other}; featurestore keys are int64 or string"
        )),
    }
}

/// Seconds of a protobuf `Duration` in its JSON form (`"86400s"`, `"0.5s"`): `None` for zero
/// or absent (Feast's "forever"), a fraction rounded up so a TTL never shortens.
pub fn ttl_seconds(duration: Option<&str>) -> Result<Option<u64>, String> {
    let Some(text) = duration else {
        return Ok(None);
    };
    let bad = || format!("ttl {text:?} is not a duration such as \"86400s\"");
    let number = text.strip_suffix('s').ok_or_else(bad)?;
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let whole: u64 = whole.parse().map_err(|_| bad())?;
    if !fraction.chars().all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    let seconds = whole + u64::from(fraction.chars().any(|c| c != '0'));
    Ok((seconds > 0).then_some(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_whole_seconds_with_zero_as_forever() {
        assert_eq!(ttl_seconds(Some("86400s")), Ok(Some(86_400)));
        assert_eq!(ttl_seconds(Some("0s")), Ok(None));
        assert_eq!(ttl_seconds(None), Ok(None));
        assert_eq!(ttl_seconds(Some("1.500s")), Ok(Some(2)));
        assert_eq!(ttl_seconds(Some("0.000s")), Ok(None));
        assert!(ttl_seconds(Some("1d")).is_err());
        assert!(ttl_seconds(Some("-5s")).is_err());
    }

    #[test]
    fn list_and_bytes_types_have_no_dtype() {
        assert_eq!(feature_dtype(Some("FLOAT")), Ok("float64"));
        assert_eq!(feature_dtype(Some("INT32")), Ok("int64"));
        assert!(feature_dtype(Some("INT64_LIST")).is_err());
        assert!(feature_dtype(Some("BYTES")).is_err());
        assert!(feature_dtype(None).is_err());
        assert_eq!(key_type(Some("STRING")), Ok(ValueType::String));
        assert!(key_type(Some("BYTES")).is_err());
    }
}
