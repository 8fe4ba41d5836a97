//! The demo's interaction table as the benches write it (its generator spec, the store it goes
//! to, its name and declaration), in one place so every bench that saves it measures the same
//! table the same way. Included by path: each bench uses only part of it.
#![allow(dead_code)]

use chrono::DateTime;
use featurestore::config::Config;
use featurestore::demo::DemoSpec;
use featurestore::model::{GroupName, TableName};
use featurestore::storage::{Declaration, StorageConfig};

/// The issue figures' table size.
pub const ROWS: usize = 1_000_000;

/// The demo generator's spec for `interactions` rows (users, movies and the clock fixed, so a
/// run is repeatable; `seed` picks the rows).
pub fn spec(interactions: usize, seed: u64) -> DemoSpec {
    DemoSpec {
        users: 100_000,
        movies: 10_000,
        interactions,
        seed,
        as_of: DateTime::from_timestamp(1_790_000_000, 0).unwrap_or_default(),
    }
}

/// The shipped defaults over `dir`, with statistics on or off.
pub fn config(dir: &std::path::Path, stats: bool) -> Config {
    let mut config = Config::defaults().expect("the shipped defaults load");
    config.storage.data_dir = dir.to_path_buf();
    config.stats.enabled = stats;
    config
}

/// [`config`]'s storage settings, as the server would pass them.
pub fn storage_config(dir: &std::path::Path, stats: bool) -> StorageConfig {
    config(dir, stats).store_options().storage
}

/// Where the demo keeps the table.
pub fn names() -> (GroupName, TableName) {
    (
        "interaction".parse().expect("valid group"),
        "user_movie_interactions".parse().expect("valid name"),
    )
}

/// Its entity key and timestamp, as the demo declares them.
pub fn declaration() -> Declaration {
    Declaration {
        entity_key: Some(vec!["user_id".into(), "movie_id".into()]),
        timestamp_field: Some("event_timestamp".into()),
        ..Declaration::default()
    }
}
