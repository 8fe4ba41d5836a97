//! What kind of failure an object-store call had, in the terms the commit protocol needs.
//!
//! `object_store` reports many shapes of failure; the protocol only has to tell apart a lost
//! race (the key exists), a missing object, a refusal (credentials, bucket policy) and a store
//! that is down or answering 5xx. Messages name keys and settings, never credentials.

/// The result of an object-store call.
pub type ObjectResult<T> = std::result::Result<T, ObjectError>;

/// A failed call on the object store, or a `[storage.s3]` setting that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    /// A write-once put found the key taken: another writer committed first. The caller
    /// re-reads what won and retries at the next key; nothing was written.
    #[error("object {key:?} already exists (another writer committed it first)")]
    AlreadyExists {
        /// The key, relative to the configured prefix.
        key: String,
    },
    /// No object at that key.
    #[error("object {key:?} not found")]
    NotFound {
        /// The key, relative to the configured prefix.
        key: String,
    },
    /// The store refused the call (wrong credentials, no access to the bucket, or a bucket
    /// that does not exist): retrying does not help, the configuration must change.
    #[error(
        "the object store refused access to {key:?}; check storage.s3.bucket and the AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY credentials: {source}"
    )]
    Denied {
        /// The key, relative to the configured prefix.
        key: String,
        /// What the store answered.
        #[source]
        source: object_store::Error,
    },
    /// The store could not be reached or failed (network, timeout, 5xx): transient, the call
    /// may be retried later; a write that failed this way left nothing a reader trusts.
    #[error("the object store is unavailable: {source}")]
    Unavailable {
        /// What went wrong.
        #[source]
        source: object_store::Error,
    },
    /// A `[storage.s3]` setting is invalid; `setting` is the key as written in the config.
    #[error("invalid storage.s3.{setting}: {reason}")]
    Config {
        /// The setting's name under `[storage.s3]`.
        setting: &'static str,
        /// Why, in a sentence.
        reason: String,
    },
    /// A projection names columns the Parquet object does not have.
    #[error("Parquet object {key:?} has no column(s) {unknown:?}")]
    UnknownColumns {
        /// The key, relative to the configured prefix.
        key: String,
        /// The names asked for that are not in the file.
        unknown: Vec<String>,
    },
    /// A Parquet object could not be decoded.
    #[error("Parquet object {key:?} is unreadable: {source}")]
    Parquet {
        /// The key, relative to the configured prefix.
        key: String,
        /// The decoder's error.
        #[source]
        source: parquet::errors::ParquetError,
    },
}

impl ObjectError {
    /// The failure in words for a message that already says "the object store is
    /// unavailable": the store's own error for an outage, this error's text otherwise.
    pub fn reason(&self) -> String {
        match self {
            Self::Unavailable { source } => source.to_string(),
            other => other.to_string(),
        }
    }

    /// Sorts an `object_store` error for `key` into the kinds above.
    pub(crate) fn from_store(key: &str, error: object_store::Error) -> Self {
        use object_store::Error as E;
        match error {
            // `PutMode::Create` on a taken key: S3 answers 412, which `object_store` reports
            // as `AlreadyExists` (its local store too); `Precondition` is kept for servers that
            // surface the 412 as such.
            E::AlreadyExists { .. } | E::Precondition { .. } => Self::AlreadyExists {
                key: key.to_owned(),
            },
            E::NotFound { .. } => Self::NotFound {
                key: key.to_owned(),
            },
            E::PermissionDenied { .. } | E::Unauthenticated { .. } => Self::Denied {
                key: key.to_owned(),
                source: error,
            },
            // Listing (and a few other calls) wrap the HTTP answer in `Generic` rather than
            // sorting it; a 404 or 403 there must still not read as an outage.
            other => match http_status(&other) {
                Some(404) => Self::NotFound {
                    key: key.to_owned(),
                },
                Some(401 | 403) => Self::Denied {
                    key: key.to_owned(),
                    source: other,
                },
                _ => Self::Unavailable { source: other },
            },
        }
    }
}

/// The HTTP status a `Generic` error carries. `object_store` keeps its request error type
/// private, so the status is read from the message it documents ("Server returned non-2xx
/// status code: 404 Not Found: ..."); the tests against SeaweedFS pin that wording.
fn http_status(error: &object_store::Error) -> Option<u16> {
    const MARK: &str = "non-2xx status code: ";
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(layer) = current {
        let text = layer.to_string();
        if let Some(at) = text.find(MARK) {
            let digits = text.get(at + MARK.len()..at + MARK.len() + 3)?;
            return digits.parse().ok();
        }
        current = layer.source();
    }
    None
}
