//! The movie-recommendation demo data of the 2.5 guide, generated deterministically.
//!
//! Three tables, identical for the same seed and as-of instant:
//! - `content/movie_metadata`: one row per movie, updated within the 30 days before as-of;
//! - `user/user_profile`: exactly three snapshots per user over the 90 days before as-of, the
//!   latest within the last 3 days (so point-in-time lookups have history to choose from);
//! - `interaction/user_movie_interactions`: ratings and watches over the 90 days before as-of,
//!   keyed by (`user_id`, `movie_id`).
//!
//! The generator is its own SplitMix64 so the data does not change when a dependency does.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{Field, Schema};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, Utc};

use crate::model::{Entity, FeatureService, FeatureView, RegistryDocument, ValueType};

const MICROS_PER_DAY: i64 = 86_400 * 1_000_000;

/// Genres of the demo catalogue.
pub const GENRES: [&str; 12] = [
    "Action",
    "Adventure",
    "Animation",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Horror",
    "Romance",
    "Sci-Fi",
    "Thriller",
];

const INTERACTION_TYPES: [&str; 4] = ["view", "rating", "like", "watchlist"];

/// What to generate.
#[derive(Debug, Clone)]
pub struct DemoSpec {
    /// Users (ids 1..=users).
    pub users: usize,
    /// Movies (ids 1..=movies).
    pub movies: usize,
    /// Interaction rows.
    pub interactions: usize,
    /// Random seed.
    pub seed: u64,
    /// The instant the data ends at.
    pub as_of: DateTime<Utc>,
}

/// One generated table and how it is declared.
#[derive(Debug, Clone)]
pub struct DemoTable {
    /// Group folder.
    pub group: &'static str,
    /// Table name.
    pub name: &'static str,
    /// Entity key columns.
    pub entity_key: Vec<String>,
    /// Timestamp column.
    pub timestamp_field: &'static str,
    /// The rows, with logical types.
    pub batch: RecordBatch,
}

/// SplitMix64: tiny, fast, and stable forever.
struct Rng(u64);

impl Rng {
    fn new(seed: u64, stream: u64) -> Self {
        Rng(seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `[lo, hi]`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        let span = (hi - lo + 1).max(1) as u64;
        lo + (self.next() % span) as i64
    }
    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

fn batch(columns: Vec<(&str, ArrayRef)>) -> Result<RecordBatch, ArrowError> {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
        .collect();
    RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns.into_iter().map(|(_, a)| a).collect(),
    )
}

fn timestamps(values: Vec<i64>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from(values).with_timezone("UTC"))
}

/// `content/movie_metadata`.
pub fn movie_metadata(spec: &DemoSpec) -> Result<DemoTable, ArrowError> {
    let mut rng = Rng::new(spec.seed, 1);
    let as_of = spec.as_of.timestamp_micros();
    let n = spec.movies;
    let (mut ids, mut titles, mut genres, mut secondary, mut years, mut durations) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut ratings, mut counts, mut popularity, mut ts) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for id in 1..=n as i64 {
        ids.push(id);
        titles.push(format!("Movie {id}"));
        genres.push(rng.pick(&GENRES));
        secondary.push(rng.pick(&GENRES));
        years.push(rng.range(1950, 2026));
        durations.push(rng.range(70, 200));
        ratings.push(round(1.0 + rng.unit() * 4.0, 1));
        counts.push(rng.range(0, 50_000));
        popularity.push(round(rng.unit() * 100.0, 2));
        ts.push(as_of - rng.range(0, 30 * MICROS_PER_DAY - 1));
    }
    Ok(DemoTable {
        group: "content",
        name: "movie_metadata",
        entity_key: vec!["movie_id".into()],
        timestamp_field: "event_timestamp",
        batch: batch(vec![
            ("movie_id", Arc::new(Int64Array::from(ids))),
            ("title", Arc::new(StringArray::from(titles))),
            ("genre", Arc::new(StringArray::from(genres))),
            ("secondary_genre", Arc::new(StringArray::from(secondary))),
            ("release_year", Arc::new(Int64Array::from(years))),
            ("duration_minutes", Arc::new(Int64Array::from(durations))),
            ("avg_rating", Arc::new(Float64Array::from(ratings))),
            ("rating_count", Arc::new(Int64Array::from(counts))),
            ("popularity_score", Arc::new(Float64Array::from(popularity))),
            ("event_timestamp", timestamps(ts)),
        ])?,
    })
}

/// `user/user_profile`: three snapshots per user.
pub fn user_profile(spec: &DemoSpec) -> Result<DemoTable, ArrowError> {
    let mut rng = Rng::new(spec.seed, 2);
    let as_of = spec.as_of.timestamp_micros();
    let n = spec.users * 3;
    let (mut ids, mut ages, mut ratings, mut watched, mut favourite, mut created, mut ts) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    // Snapshot windows, oldest first: [90, 45) days ago, [45, 3) days ago, [3, 0) days ago.
    let windows = [
        (45 * MICROS_PER_DAY, 90 * MICROS_PER_DAY - 1),
        (3 * MICROS_PER_DAY, 45 * MICROS_PER_DAY - 1),
        (0, 3 * MICROS_PER_DAY - 1),
    ];
    for id in 1..=spec.users as i64 {
        let age = rng.range(18, 75);
        let account_days_at_as_of = rng.range(90, 3650);
        let mut total = rng.range(0, 200);
        let mut rating = 1.5 + rng.unit() * 3.5;
        let genre = rng.pick(&GENRES);
        for (lo, hi) in windows {
            let ago = rng.range(lo, hi);
            ids.push(id);
            ages.push(age);
            rating = (rating + (rng.unit() - 0.5) * 0.4).clamp(1.0, 5.0);
            ratings.push(round(rating, 2));
            total += rng.range(0, 40);
            watched.push(total);
            favourite.push(if rng.unit() < 0.8 {
                genre
            } else {
                rng.pick(&GENRES)
            });
            created.push(account_days_at_as_of - ago / MICROS_PER_DAY);
            ts.push(as_of - ago);
        }
    }
    Ok(DemoTable {
        group: "user",
        name: "user_profile",
        entity_key: vec!["user_id".into()],
        timestamp_field: "event_timestamp",
        batch: batch(vec![
            ("user_id", Arc::new(Int64Array::from(ids))),
            ("age", Arc::new(Int64Array::from(ages))),
            ("avg_rating", Arc::new(Float64Array::from(ratings))),
            ("total_movies_watched", Arc::new(Int64Array::from(watched))),
            ("favorite_genre", Arc::new(StringArray::from(favourite))),
            ("account_created_days", Arc::new(Int64Array::from(created))),
            ("event_timestamp", timestamps(ts)),
        ])?,
    })
}

/// `interaction/user_movie_interactions`; `progress` is called with rows generated so far.
pub fn user_movie_interactions(
    spec: &DemoSpec,
    progress: &mut dyn FnMut(u64),
) -> Result<DemoTable, ArrowError> {
    let mut rng = Rng::new(spec.seed, 3);
    let as_of = spec.as_of.timestamp_micros();
    let n = spec.interactions;
    let (mut users, mut movies, mut ratings, mut minutes, mut completed, mut kinds, mut ts) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (max_user, max_movie) = (spec.users.max(1) as i64, spec.movies.max(1) as i64);
    for i in 0..n {
        users.push(rng.range(1, max_user));
        movies.push(rng.range(1, max_movie));
        ratings.push(rng.range(1, 5));
        let watched = rng.range(1, 180);
        minutes.push(watched);
        completed.push(watched >= 90);
        kinds.push(rng.pick(&INTERACTION_TYPES));
        ts.push(as_of - rng.range(0, 90 * MICROS_PER_DAY - 1));
        if i % 65_536 == 65_535 {
            progress(i as u64 + 1);
        }
    }
    progress(n as u64);
    Ok(DemoTable {
        group: "interaction",
        name: "user_movie_interactions",
        entity_key: vec!["user_id".into(), "movie_id".into()],
        timestamp_field: "event_timestamp",
        batch: batch(vec![
            ("user_id", Arc::new(Int64Array::from(users))),
            ("movie_id", Arc::new(Int64Array::from(movies))),
            ("rating", Arc::new(Int64Array::from(ratings))),
            ("watch_minutes", Arc::new(Int64Array::from(minutes))),
            ("completed", Arc::new(BooleanArray::from(completed))),
            ("interaction_type", Arc::new(StringArray::from(kinds))),
            ("event_timestamp", timestamps(ts)),
        ])?,
    })
}

/// The demo's registry: entities `user_id` and `movie_id`, the three views with the TTLs of the
/// seed's Feast example (user profile 7 days, movie metadata 30 days, interactions 1 day), and
/// the `movie_recommendation_service` feature service (whose feature names are distinct, so
/// clients need not ask for full feature names).
pub fn registry_document() -> RegistryDocument {
    const DAY: u64 = 86_400;
    let view = |name: &str, group: &str, entities: &[&str], ttl_days: u64, description: &str| {
        FeatureView {
            name: name.into(),
            group: group.into(),
            entities: entities.iter().map(|e| (*e).to_owned()).collect(),
            timestamp_field: "event_timestamp".into(),
            created_timestamp_field: None,
            ttl_seconds: Some(ttl_days * DAY),
            features: Vec::new(),
            description: description.into(),
            owner: "recsys@example.com".into(),
            tags: [("example".to_owned(), "movie-recommendation".to_owned())].into(),
            push_source: Some(format!("{name}_push")),
            inferred: false,
        }
    };
    let entity = |name: &str, description: &str| Entity {
        name: name.into(),
        join_key: None,
        value_type: ValueType::Int64,
        description: description.into(),
    };
    RegistryDocument {
        entities: vec![
            entity("user_id", "A user of the service"),
            entity("movie_id", "A movie of the catalogue"),
        ],
        feature_views: vec![
            view(
                "user_profile",
                "user",
                &["user_id"],
                7,
                "Profile snapshots of users",
            ),
            view(
                "movie_metadata",
                "content",
                &["movie_id"],
                30,
                "Catalogue metadata and popularity of movies",
            ),
            view(
                "user_movie_interactions",
                "interaction",
                &["user_id", "movie_id"],
                1,
                "A user's latest interaction with a movie",
            ),
        ],
        feature_services: vec![FeatureService {
            name: "movie_recommendation_service".into(),
            features: [
                "user_profile:age",
                "user_profile:avg_rating",
                "user_profile:total_movies_watched",
                "user_profile:favorite_genre",
                "movie_metadata:genre",
                "movie_metadata:rating_count",
                "movie_metadata:popularity_score",
                "user_movie_interactions:rating",
                "user_movie_interactions:watch_minutes",
            ]
            .map(String::from)
            .to_vec(),
            description: "Features of the movie recommender".into(),
            table_versions: Default::default(),
        }],
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Int64Type, TimestampMicrosecondType};

    use super::*;

    fn spec() -> DemoSpec {
        DemoSpec {
            users: 50,
            movies: 20,
            interactions: 500,
            seed: 7,
            as_of: DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default(),
        }
    }

    #[test]
    fn same_seed_and_as_of_give_identical_tables() -> Result<(), ArrowError> {
        let s = spec();
        assert_eq!(user_profile(&s)?.batch, user_profile(&s)?.batch);
        assert_eq!(movie_metadata(&s)?.batch, movie_metadata(&s)?.batch);
        assert_eq!(
            user_movie_interactions(&s, &mut |_| {})?.batch,
            user_movie_interactions(&s, &mut |_| {})?.batch
        );
        let other = DemoSpec {
            seed: 8,
            ..s.clone()
        };
        assert_ne!(user_profile(&s)?.batch, user_profile(&other)?.batch);
        Ok(())
    }

    #[test]
    fn user_profile_has_three_snapshots_per_user_the_latest_within_three_days()
    -> Result<(), ArrowError> {
        let s = spec();
        let table = user_profile(&s)?;
        assert_eq!(table.batch.num_rows(), s.users * 3);
        let ids = table.batch.column(0).as_primitive::<Int64Type>();
        let ts = table
            .batch
            .column(6)
            .as_primitive::<TimestampMicrosecondType>();
        let as_of = s.as_of.timestamp_micros();
        for user in 0..s.users {
            let rows = user * 3..user * 3 + 3;
            assert!(rows.clone().all(|r| ids.value(r) == user as i64 + 1));
            assert!(
                rows.clone()
                    .all(|r| ts.value(r) <= as_of && ts.value(r) > as_of - 90 * MICROS_PER_DAY)
            );
            let latest = rows.map(|r| ts.value(r)).max().unwrap_or_default();
            assert!(latest > as_of - 3 * MICROS_PER_DAY);
        }
        assert_eq!(ts.null_count(), 0);
        Ok(())
    }
}
