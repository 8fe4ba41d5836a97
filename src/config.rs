//! Configuration: each layer owns its section's struct; this module only composes, loads and
//! validates them.
//!
//! Layers, later winning: the defaults compiled in from `config/featurestore.toml` → the file
//! given with `--config` → environment variables `FEATURESTORE__SECTION__KEY` → command-line
//! flags (applied by the CLI). Unknown sections and keys are errors, so a typo is reported
//! instead of silently ignored.

use std::path::Path;

use serde::Deserialize;

use crate::api::ApiConfig;
use crate::auth::AuthConfig;
use crate::cache::CacheConfig;
use crate::online::redis::OnlineConfig;
use crate::server::ServerConfig;
use crate::storage::{StatsConfig, StorageConfig};
use crate::store::{HealthConfig, StoreOptions};

/// The shipped defaults, compiled in.
pub const DEFAULTS_TOML: &str = include_str!("../config/featurestore.toml");

/// Prefix of environment overrides.
pub const ENV_PREFIX: &str = "FEATURESTORE__";

/// `[serving]`: online serving.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServingConfig {
    /// Build every registered view's online index at start-up.
    pub preload: bool,
}

/// `[logging]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingConfig {
    /// A tracing filter directive.
    pub level: String,
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[server]`.
    pub server: ServerConfig,
    /// `[storage]`.
    pub storage: StorageConfig,
    /// `[cache]`.
    pub cache: CacheConfig,
    /// `[serving]`.
    pub serving: ServingConfig,
    /// `[online]`.
    pub online: OnlineConfig,
    /// `[api]`.
    pub api: ApiConfig,
    /// `[auth]`.
    pub auth: AuthConfig,
    /// `[stats]`.
    pub stats: StatsConfig,
    /// `[health]`.
    pub health: HealthConfig,
    /// `[logging]`.
    pub logging: LoggingConfig,
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A layer is not valid TOML.
    #[error("config {origin} is not valid TOML: {source}")]
    Syntax {
        /// Which layer.
        origin: String,
        /// Why.
        #[source]
        source: toml::de::Error,
    },
    /// An environment variable does not name a `SECTION__KEY`.
    #[error("environment variable {0} must look like FEATURESTORE__SECTION__KEY")]
    BadEnvName(String),
    /// The merged layers do not form a valid configuration (unknown key, wrong type).
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// The compiled-in defaults.
    pub fn defaults() -> Result<Self, ConfigError> {
        Self::load(None, std::iter::empty())
    }

    /// Defaults, then `file`, then `env` (pairs of name and value; names without the prefix
    /// are ignored).
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut merged = parse(DEFAULTS_TOML, "defaults")?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.display().to_string(),
                source,
            })?;
            merge(&mut merged, parse(&text, &path.display().to_string())?);
        }
        for (name, value) in env {
            let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            // `SECTION__KEY`, or `SECTION__SUBSECTION__KEY` for nested tables such as
            // `[storage.s3]`.
            let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
            if path.len() < 2 || path.iter().any(String::is_empty) {
                return Err(ConfigError::BadEnvName(name));
            }
            let mut layer = toml::Table::new();
            let (key, tables) = path.split_last().unwrap_or((&path[0], &[]));
            layer.insert(key.clone(), env_value(&value));
            for table in tables.iter().rev() {
                let mut outer = toml::Table::new();
                outer.insert(table.clone(), toml::Value::Table(layer));
                layer = outer;
            }
            merge(&mut merged, layer);
        }
        let config: Config = toml::Value::Table(merged)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(e.message().to_owned()))?;
        config.validate()?;
        Ok(config)
    }

    /// What the store is opened with.
    pub fn store_options(&self) -> StoreOptions {
        let mut storage = self.storage.clone();
        storage.stats = self.stats.clone();
        let mut options = StoreOptions::new(storage, self.cache.clone(), self.api.max_batch_rows);
        options.online = self.online.clone();
        options.health_check_interval = self.health.interval();
        options
    }

    /// Range checks of every section; the message names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.server.validate().map_err(ConfigError::Invalid)?;
        self.storage.validate().map_err(ConfigError::Invalid)?;
        self.cache.validate().map_err(ConfigError::Invalid)?;
        self.online.validate().map_err(ConfigError::Invalid)?;
        self.api.validate().map_err(ConfigError::Invalid)?;
        self.stats.validate().map_err(ConfigError::Invalid)?;
        self.health.validate().map_err(ConfigError::Invalid)?;
        self.auth.validate().map_err(ConfigError::Invalid)
    }
}

fn parse(text: &str, origin: &str) -> Result<toml::Table, ConfigError> {
    text.parse::<toml::Table>()
        .map_err(|source| ConfigError::Syntax {
            origin: origin.to_owned(),
            source,
        })
}

/// An environment value as TOML when it parses as a scalar (`8001`, `true`, `0.5`), else as a
/// plain string (`/data/fs`, `info`).
fn env_value(value: &str) -> toml::Value {
    format!("v = {value}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .filter(|v| !v.is_table())
        .unwrap_or_else(|| toml::Value::String(value.to_owned()))
}

fn merge(base: &mut toml::Table, layer: toml::Table) {
    for (key, value) in layer {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(l)) => merge(b, l),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_defaults_load_and_validate() -> Result<(), ConfigError> {
        let config = Config::defaults()?;
        assert_eq!(config.server.host, "127.0.0.1");
        assert_eq!(config.server.port, 8001);
        assert_eq!(config.api.max_page_limit, 10_000);
        assert_eq!(config.api.max_body_mb, 64);
        assert!(config.stats.enabled);
        assert_eq!(config.stats.psi_threshold, 0.2);
        assert!(config.store_options().storage.stats.enabled);
        Ok(())
    }

    #[test]
    fn environment_overrides_the_defaults() -> Result<(), ConfigError> {
        let env = [
            ("FEATURESTORE__SERVER__PORT".to_owned(), "9000".to_owned()),
            (
                "FEATURESTORE__STORAGE__DATA_DIR".to_owned(),
                "/tmp/x".to_owned(),
            ),
            ("PATH".to_owned(), "/usr/bin".to_owned()),
        ];
        let config = Config::load(None, env)?;
        assert_eq!(config.server.port, 9000);
        assert_eq!(config.storage.data_dir, Path::new("/tmp/x"));
        Ok(())
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let unknown = Config::load(
            None,
            [("FEATURESTORE__SERVER__PROT".to_owned(), "1".to_owned())],
        );
        assert!(matches!(unknown, Err(ConfigError::Invalid(m)) if m.contains("prot")));
        let bad = Config::load(
            None,
            [(
                "FEATURESTORE__API__MAX_PAGE_LIMIT".to_owned(),
                "0".to_owned(),
            )],
        );
        assert!(matches!(bad, Err(ConfigError::Invalid(m)) if m.contains("api.max_page_limit")));
        for (key, value, named) in [
            ("STORAGE__FOLD_DELAY_MS", "60001", "storage.fold_delay_ms"),
            ("STORAGE__FOLD_MAX_SHARE", "0", "storage.fold_max_share"),
            ("STATS__PSI_THRESHOLD", "0", "stats.psi_threshold"),
            // Enum values are named by their choices (serde does not give the key here).
            (
                "STORAGE__INTEGER_DOWNCAST",
                "\"sometimes\"",
                "`signed`, `unsigned`, `never`",
            ),
        ] {
            let bad = Config::load(None, [(format!("FEATURESTORE__{key}"), value.to_owned())]);
            assert!(
                matches!(&bad, Err(ConfigError::Invalid(m)) if m.contains(named)),
                "{key}: {bad:?}"
            );
        }
    }
}
