//! `[storage.s3]`: where the Parquet tree lives in an S3-compatible bucket, and the
//! `Arc<dyn ObjectStore>` built from it.
//!
//! Credentials are never configuration: they come from the variables S3 users already set
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), read by
//! `AmazonS3Builder::from_env`, so they cannot end up in a config file, a log line or `/health`.
//! `AWS_REGION` and `AWS_ENDPOINT_URL` are read the same way; `region` and `endpoint` here win
//! over them when set.

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use serde::Deserialize;

use super::error::{ObjectError, ObjectResult};

/// The shortest and longest bucket names S3 accepts. SeaweedFS silently ignores a shorter
/// one, so it is refused here rather than failing later with a puzzling 404.
const BUCKET_LEN: std::ops::RangeInclusive<usize> = 3..=63;

/// `[storage.s3]` configuration: the bucket and where in it the tree starts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    /// The bucket (S3 naming rules: 3–63 lowercase letters, digits, `-` or `.`).
    pub bucket: String,
    /// A key prefix under which the whole tree lives, so several deployments can share one
    /// bucket; empty for the bucket root. Leading and trailing `/` are ignored.
    pub prefix: String,
    /// The endpoint of an S3-compatible server (`http://127.0.0.1:8333`); unset for AWS,
    /// or to take `AWS_ENDPOINT_URL`.
    pub endpoint: Option<String>,
    /// The region; unset to take `AWS_REGION` (AWS's default, `us-east-1`, otherwise).
    pub region: Option<String>,
    /// Allow plain `http://` endpoints (a server on loopback); off by default so credentials
    /// are not sent in clear by mistake.
    pub allow_http: bool,
}

impl S3Config {
    /// Checks every setting, naming the one at fault, without contacting the store.
    pub fn validate(&self) -> ObjectResult<()> {
        validate_bucket(&self.bucket)?;
        self.prefix_path()?;
        if let Some(endpoint) = &self.endpoint {
            let plain = endpoint.starts_with("http://");
            if !plain && !endpoint.starts_with("https://") {
                return Err(ObjectError::Config {
                    setting: "endpoint",
                    reason: format!("{endpoint:?} must start with http:// or https://"),
                });
            }
            if plain && !self.allow_http {
                return Err(ObjectError::Config {
                    setting: "endpoint",
                    reason: format!(
                        "{endpoint:?} is plain http; set storage.s3.allow_http = true to allow it"
                    ),
                });
            }
        }
        if self.region.as_deref().is_some_and(str::is_empty) {
            return Err(ObjectError::Config {
                setting: "region",
                reason: "is empty; remove the key to take AWS_REGION".to_owned(),
            });
        }
        Ok(())
    }

    /// The prefix as an object path (`None` for the bucket root).
    pub fn prefix_path(&self) -> ObjectResult<Option<ObjectPath>> {
        let trimmed = self.prefix.trim_matches('/');
        if trimmed.is_empty() {
            return Ok(None);
        }
        ObjectPath::parse(trimmed)
            .map(Some)
            .map_err(|error| ObjectError::Config {
                setting: "prefix",
                reason: format!("{:?} is not a valid key prefix: {error}", self.prefix),
            })
    }

    /// Builds the store: S3 with credentials from the environment, scoped to `prefix`. It does
    /// not contact the server; the first call tells whether the bucket and credentials work.
    pub fn build(&self) -> ObjectResult<Arc<dyn ObjectStore>> {
        self.build_from(AmazonS3Builder::from_env())
    }

    /// Builds the store from `base`, which carries the credentials (a test hands its own
    /// rather than changing the process environment); these settings override it.
    pub fn build_from(&self, base: AmazonS3Builder) -> ObjectResult<Arc<dyn ObjectStore>> {
        self.validate()?;
        // Bounded so a store that is down answers 503 within seconds instead of stalling
        // requests through object_store's default three minutes of retries.
        let retry = object_store::RetryConfig {
            max_retries: 2,
            retry_timeout: std::time::Duration::from_secs(5),
            ..object_store::RetryConfig::default()
        };
        let client = object_store::ClientOptions::new()
            .with_timeout(std::time::Duration::from_secs(10))
            .with_connect_timeout(std::time::Duration::from_secs(2))
            .with_allow_http(self.allow_http);
        let mut builder = base
            .with_bucket_name(&self.bucket)
            .with_allow_http(self.allow_http)
            .with_retry(retry)
            .with_client_options(client);
        if let Some(endpoint) = &self.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(region) = &self.region {
            builder = builder.with_region(region);
        }
        let s3 = builder.build().map_err(|error| ObjectError::Config {
            setting: "bucket",
            // The builder's messages name missing settings, never secret values.
            reason: format!("the S3 client cannot be built: {error}"),
        })?;
        Ok(match self.prefix_path()? {
            Some(prefix) => Arc::new(PrefixStore::new(s3, prefix)),
            None => Arc::new(s3),
        })
    }
}

/// The local kind: the same interface over a folder (created if missing), so one code path
/// serves both kinds. `LocalFileSystem` writes through a temp file and rename and honours
/// `PutMode::Create` with a hard link; it does not fsync, which the local data path must add
/// (see the module doc).
pub fn local_store(root: &std::path::Path) -> ObjectResult<Arc<dyn ObjectStore>> {
    std::fs::create_dir_all(root).map_err(|error| ObjectError::Unavailable {
        source: object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(error),
        },
    })?;
    let store = LocalFileSystem::new_with_prefix(root)
        .map_err(|error| ObjectError::from_store(&root.display().to_string(), error))?;
    Ok(Arc::new(store))
}

fn validate_bucket(bucket: &str) -> ObjectResult<()> {
    let reason = if !BUCKET_LEN.contains(&bucket.len()) {
        Some(format!(
            "{bucket:?} must be {} to {} characters long",
            BUCKET_LEN.start(),
            BUCKET_LEN.end()
        ))
    } else if !bucket
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    {
        Some(format!(
            "{bucket:?} may hold only lowercase letters, digits, '-' and '.'"
        ))
    } else if !bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
        || !bucket.ends_with(|c: char| c.is_ascii_alphanumeric())
    {
        Some(format!(
            "{bucket:?} must start and end with a letter or a digit"
        ))
    } else {
        None
    };
    match reason {
        Some(reason) => Err(ObjectError::Config {
            setting: "bucket",
            reason,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(bucket: &str) -> S3Config {
        S3Config {
            bucket: bucket.to_owned(),
            ..S3Config::default()
        }
    }

    fn setting_at_fault(config: &S3Config) -> Option<&'static str> {
        match config.validate() {
            Err(ObjectError::Config { setting, .. }) => Some(setting),
            _ => None,
        }
    }

    #[test]
    fn bucket_names_follow_s3_rules() {
        assert_eq!(setting_at_fault(&config("features-prod.eu")), None);
        for bad in [
            "",
            "fs",
            "Upper",
            "under_score",
            "-dash",
            "dot.",
            &"a".repeat(64),
        ] {
            assert_eq!(setting_at_fault(&config(bad)), Some("bucket"), "{bad:?}");
        }
    }

    #[test]
    fn plain_http_endpoint_needs_allow_http() {
        let mut s3 = config("featurestore");
        s3.endpoint = Some("http://127.0.0.1:8333".to_owned());
        assert_eq!(setting_at_fault(&s3), Some("endpoint"));
        s3.allow_http = true;
        assert_eq!(setting_at_fault(&s3), None);
        s3.endpoint = Some("127.0.0.1:8333".to_owned());
        assert_eq!(setting_at_fault(&s3), Some("endpoint"));
    }

    #[test]
    fn prefix_slashes_are_ignored_and_empty_segments_refused() -> ObjectResult<()> {
        let mut s3 = config("featurestore");
        s3.prefix = "/team/prod/".to_owned();
        assert_eq!(s3.prefix_path()?, Some(ObjectPath::from("team/prod")));
        s3.prefix = "/".to_owned();
        assert_eq!(s3.prefix_path()?, None);
        s3.prefix = "team//prod".to_owned();
        assert_eq!(setting_at_fault(&s3), Some("prefix"));
        Ok(())
    }

    #[test]
    fn unknown_keys_are_refused() {
        let parsed: Result<S3Config, _> = toml::from_str("bucket = \"abc\"\nsecret = \"x\"\n");
        assert!(parsed.is_err());
    }
}
