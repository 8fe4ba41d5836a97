//! How entity ids sent as strings meet integer keys.

/// The integer a string id stands for, when it is the canonical decimal form of one: an
/// optional `-` and digits without leading zeros (`"0"`, `"42"`, `"-7"`). Anything else —
/// `"01"`, `" 1"`, `"+1"`, `"1.0"` — names no integer key, so it matches nothing instead of
/// silently matching the key a lenient parse would pick.
pub fn canonical_i64(text: &str) -> Option<i64> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let canonical = match digits.as_bytes() {
        [] => false,
        [b'0'] => !text.starts_with('-'),
        [first, ..] => *first != b'0' && digits.bytes().all(|b| b.is_ascii_digit()),
    };
    if canonical { text.parse().ok() } else { None }
}

#[cfg(test)]
mod tests {
    use super::canonical_i64;

    #[test]
    fn only_canonical_decimal_strings_are_integers() {
        assert_eq!(canonical_i64("0"), Some(0));
        assert_eq!(canonical_i64("42"), Some(42));
        assert_eq!(canonical_i64("-7"), Some(-7));
        assert_eq!(canonical_i64("9223372036854775807"), Some(i64::MAX));
        for text in [
            "",
            "-",
            "01",
            " 1",
            "1 ",
            "+1",
            "1.0",
            "-0",
            "00",
            "1e3",
            "9223372036854775808",
        ] {
            assert_eq!(canonical_i64(text), None, "{text:?}");
        }
    }
}
