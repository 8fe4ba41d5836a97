//! Validated names for feature groups and tables.
//!
//! Both become path components (`features/<group>/<name>.parquet`), so the accepted alphabet is
//! deliberately tiny: ASCII letters, digits, `_` and `-`. That excludes `.`, `/`, `\`, NUL and
//! every other byte that could make a name escape its folder or mean something special to a
//! filesystem.

use std::fmt;
use std::str::FromStr;

/// Longest accepted group or table name, in bytes. Error messages quote this constant.
pub const MAX_NAME_LEN: usize = 128;

/// Why a string is not a valid group or table name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is the empty string.
    #[error("{kind} name must not be empty")]
    Empty {
        /// "group" or "table".
        kind: &'static str,
    },
    /// The name is longer than [`MAX_NAME_LEN`] bytes.
    #[error("{kind} name is {len} bytes long; the limit is {MAX_NAME_LEN}")]
    TooLong {
        /// "group" or "table".
        kind: &'static str,
        /// Length of the rejected name in bytes.
        len: usize,
    },
    /// The name contains a character outside `[A-Za-z0-9_-]`.
    #[error(
        "{kind} name {value:?} contains {ch:?}; only ASCII letters, digits, '_' and '-' are allowed"
    )]
    BadChar {
        /// "group" or "table".
        kind: &'static str,
        /// The rejected name, for the message.
        value: String,
        /// The first offending character.
        ch: char,
    },
}

fn validate(kind: &'static str, value: &str) -> Result<(), NameError> {
    if value.is_empty() {
        return Err(NameError::Empty { kind });
    }
    if value.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong {
            kind,
            len: value.len(),
        });
    }
    if let Some(ch) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        return Err(NameError::BadChar {
            kind,
            value: value.to_owned(),
            ch,
        });
    }
    Ok(())
}

macro_rules! validated_name {
    ($(#[$doc:meta])* $ty:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $ty(String);

        impl $ty {
            /// The validated name as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $ty {
            type Error = NameError;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                validate($kind, &value)?;
                Ok(Self(value))
            }
        }

        impl FromStr for $ty {
            type Err = NameError;
            fn from_str(value: &str) -> Result<Self, Self::Err> {
                Self::try_from(value.to_owned())
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

validated_name!(
    /// A feature group: the folder under `features/` (`content`, `user`, `interaction`, `misc`,
    /// or any other validated name).
    GroupName,
    "group"
);

validated_name!(
    /// A table (feature view) name, unique across groups: the file stem of its Parquet file.
    TableName,
    "table"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_letters_digits_underscore_and_dash() {
        assert!("user_profile-v2".parse::<TableName>().is_ok());
        assert!("a".repeat(MAX_NAME_LEN).parse::<GroupName>().is_ok());
    }

    #[test]
    fn rejects_traversal_and_separators() {
        for bad in [
            "..", "../etc", "a/b", "a\\b", ".hidden", "a b", "é", "a\0b", "%2F",
        ] {
            assert!(bad.parse::<TableName>().is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn rejects_empty_and_overlong_names() {
        assert_eq!(
            "".parse::<GroupName>(),
            Err(NameError::Empty { kind: "group" })
        );
        let long = "a".repeat(MAX_NAME_LEN + 1);
        assert_eq!(
            long.parse::<TableName>(),
            Err(NameError::TooLong {
                kind: "table",
                len: MAX_NAME_LEN + 1
            })
        );
    }
}
