//! `[online]` settings: which online tier serves pushed and materialized rows.

use std::time::Duration;

use serde::Deserialize;

/// `[online]` configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnlineConfig {
    /// `local` (the in-process index and sled, one replica) or `redis` (shared by replicas).
    pub backend: OnlineBackend,
    /// `[online.redis]`, used by the redis backend.
    #[serde(default)]
    pub redis: RedisConfig,
}

impl Default for OnlineConfig {
    fn default() -> Self {
        Self {
            backend: OnlineBackend::Local,
            redis: RedisConfig::default(),
        }
    }
}

/// Where rows pushed online and materialized rows live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnlineBackend {
    /// This process's sled database under the data root.
    Local,
    /// The Redis (or Valkey) server of `[online.redis]`, shared by every replica.
    Redis,
}

/// `[online.redis]` configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// `redis://host:port/db` or `rediss://` for TLS; a password may be in the URL, else
    /// `REDIS_PASSWORD` is used.
    pub url: String,
    /// Prefix of every key this store writes, so several stores can share one server.
    pub key_prefix: String,
    /// Expire each entity's row this long after its last write (Feast's `key_ttl_seconds`);
    /// 0 keeps rows until they are replaced or their view is deleted.
    pub key_ttl_seconds: u64,
    /// Multiplexed connections requests are spread over.
    pub pool_size: usize,
    /// Most time to establish a connection, in milliseconds.
    pub connect_timeout_ms: u64,
    /// Most time one command or pipeline may take, in milliseconds; a lookup that runs out
    /// of it answers from the local index instead.
    pub response_timeout_ms: u64,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379/0".into(),
            key_prefix: "featurestore:".into(),
            key_ttl_seconds: 0,
            pool_size: 2,
            connect_timeout_ms: 1000,
            response_timeout_ms: 250,
        }
    }
}

impl OnlineConfig {
    /// Checks ranges once at start-up; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.backend == OnlineBackend::Redis {
            self.redis.validate()?;
        }
        Ok(())
    }
}

impl RedisConfig {
    /// Checks ranges and the URL's form; the message names the key and never the password.
    pub fn validate(&self) -> Result<(), String> {
        let scheme_ok = ["redis://", "rediss://", "valkey://", "valkeys://"]
            .iter()
            .any(|s| self.url.starts_with(s));
        if !scheme_ok || redis::parse_redis_url(&self.url).is_none() {
            return Err(format!(
                "online.redis.url must look like redis://host:port/db (rediss:// for TLS), got {}",
                redacted(&self.url)
            ));
        }
        if self.key_prefix.is_empty() {
            return Err("online.redis.key_prefix must not be empty (say \"featurestore:\")".into());
        }
        if !(1..=64).contains(&self.pool_size) {
            return Err("online.redis.pool_size must be between 1 and 64".into());
        }
        if !(10..=60_000).contains(&self.connect_timeout_ms) {
            return Err("online.redis.connect_timeout_ms must be between 10 and 60000".into());
        }
        if !(1..=60_000).contains(&self.response_timeout_ms) {
            return Err("online.redis.response_timeout_ms must be between 1 and 60000".into());
        }
        Ok(())
    }

    /// The connect timeout.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    /// The per-command timeout.
    pub fn response_timeout(&self) -> Duration {
        Duration::from_millis(self.response_timeout_ms)
    }

    /// The URL as it may be logged or shown in `/health`: without its password.
    pub fn display_url(&self) -> String {
        redacted(&self.url)
    }
}

/// `url` with any `user:password@` part replaced, so it can be logged.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        let config = RedisConfig {
            url: "redis://:hunter2@10.0.0.1:6379/0".into(),
            ..RedisConfig::default()
        };
        assert_eq!(config.display_url(), "redis://***@10.0.0.1:6379/0");
        let bad = RedisConfig {
            url: "http://:hunter2@10.0.0.1".into(),
            ..RedisConfig::default()
        };
        let message = bad.validate().err().unwrap_or_default();
        assert!(message.contains("online.redis.url"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }

    #[test]
    fn ranges_name_their_key() {
        let config = RedisConfig {
            pool_size: 0,
            ..RedisConfig::default()
        };
        assert!(config.validate().is_err_and(|m| m.contains("pool_size")));
        assert!(RedisConfig::default().validate().is_ok());
    }
}
