//! Online serving benchmarks: building the index of the demo's `user_profile` view (100 000
//! users, 300 000 rows) and in-process lookups of 1 and 100 entity rows × 5 features through
//! `FeatureStore::online_features` (planning, index probes and the gather; no HTTP).
//!
//! Run: `cargo bench --bench online`. The fixture is written and registered, and the index
//! built once, outside the timed loops; the build is also timed on its own. The index's
//! memory against the Arrow size of the latest rows is printed before the runs.

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use featurestore::config::Config;
use featurestore::demo::{DemoSpec, registry_document, user_movie_interactions, user_profile};
use featurestore::model::RegistryDocument;
use featurestore::online::ViewIndex;
use featurestore::storage::Storage;
use featurestore::store::{Declaration, FeatureStore, OnlineQuery};
use serde_json::Value;

const FEATURES: [&str; 5] = [
    "user_profile:age",
    "user_profile:avg_rating",
    "user_profile:total_movies_watched",
    "user_profile:favorite_genre",
    "user_profile:account_created_days",
];

fn query(rows: usize) -> OnlineQuery {
    let ids: Vec<Value> = (0..rows)
        .map(|i| Value::from((i * 997 % 100_000) as i64 + 1))
        .collect();
    OnlineQuery {
        features: Some(FEATURES.map(String::from).to_vec()),
        feature_service: None,
        entities: vec![("user_id".to_owned(), ids)],
        full_feature_names: false,
    }
}

fn bench_online(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config::defaults().expect("the shipped defaults load");
    config.storage.data_dir = dir.path().to_path_buf();
    let now = chrono::Utc::now();
    let spec = DemoSpec {
        users: 100_000,
        movies: 10_000,
        interactions: 0,
        seed: 42,
        as_of: now,
    };
    let table = user_profile(&spec).expect("demo data");
    let store = FeatureStore::open(config.store_options()).expect("open store");
    let doc = registry_document();
    let view_doc = RegistryDocument {
        entities: doc
            .entities
            .iter()
            .filter(|e| e.name == "user_id")
            .cloned()
            .collect(),
        feature_views: doc
            .feature_views
            .iter()
            .filter(|v| v.name == "user_profile")
            .cloned()
            .collect(),
        feature_services: Vec::new(),
    };
    runtime.block_on(async {
        let declaration = Declaration {
            entity_key: Some(vec!["user_id".into()]),
            timestamp_field: Some("event_timestamp".into()),
            ..Declaration::default()
        };
        store
            .save_batch(
                "user".parse().expect("group"),
                "user_profile".parse().expect("name"),
                table.batch,
                declaration,
            )
            .await
            .expect("save");
        store.apply(view_doc).await.expect("apply");
        store
            .online_features(query(1))
            .await
            .expect("warm-up builds the index");
    });

    // The build on its own, and the index's memory, outside criterion's loop.
    let storage = Storage::open(config.storage.clone()).expect("storage");
    let handle = storage
        .get(&"user_profile".parse().expect("name"))
        .expect("table");
    let view = store
        .registry()
        .feature_views
        .iter()
        .find(|v| v.name == "user_profile")
        .cloned()
        .expect("view");
    let started = Instant::now();
    let index = ViewIndex::build(
        &view,
        vec!["user_id".into()],
        &handle.file,
        handle.version,
        0,
        now.timestamp_micros(),
    )
    .expect("build");
    eprintln!(
        "index build: {} entities from {} rows in {:.0} ms; index {:.1} MiB = {:.2}x the {:.1} MiB of Arrow of the latest rows",
        index.len(),
        handle.file.row_count(),
        started.elapsed().as_secs_f64() * 1000.0,
        index.memory_bytes() as f64 / 1048576.0,
        index.memory_bytes() as f64 / index.latest_bytes() as f64,
        index.latest_bytes() as f64 / 1048576.0
    );

    // The composite-key view: 1 M interactions keyed by (user_id, movie_id).
    let interactions = user_movie_interactions(
        &DemoSpec {
            interactions: 1_000_000,
            ..spec.clone()
        },
        &mut |_| {},
    )
    .expect("demo interactions");
    let pair_view = doc
        .feature_views
        .iter()
        .find(|v| v.name == "user_movie_interactions")
        .cloned()
        .expect("view");
    runtime.block_on(async {
        let declaration = Declaration {
            entity_key: Some(vec!["user_id".into(), "movie_id".into()]),
            timestamp_field: Some("event_timestamp".into()),
            ..Declaration::default()
        };
        store
            .save_batch(
                "interaction".parse().expect("group"),
                "user_movie_interactions".parse().expect("name"),
                interactions.batch,
                declaration,
            )
            .await
            .expect("save interactions");
    });
    let storage = Storage::open(config.storage.clone()).expect("storage");
    let pairs = storage
        .get(&"user_movie_interactions".parse().expect("name"))
        .expect("table");
    let mut pair_view = pair_view;
    pair_view.features = ["rating", "watch_minutes", "completed", "interaction_type"]
        .map(|f| featurestore::model::FeatureDef {
            name: f.into(),
            dtype: None,
        })
        .to_vec();
    let started = Instant::now();
    let index = ViewIndex::build(
        &pair_view,
        vec!["user_id".into(), "movie_id".into()],
        &pairs.file,
        pairs.version,
        0,
        now.timestamp_micros(),
    )
    .expect("build");
    eprintln!(
        "composite index build: {} key pairs from {} rows in {:.0} ms; index {:.1} MiB = {:.2}x the {:.1} MiB of Arrow of the latest rows",
        index.len(),
        pairs.file.row_count(),
        started.elapsed().as_secs_f64() * 1000.0,
        index.memory_bytes() as f64 / 1048576.0,
        index.memory_bytes() as f64 / index.latest_bytes() as f64,
        index.latest_bytes() as f64 / 1048576.0
    );
    drop(index);

    let mut group = c.benchmark_group("online_lookup_5_features");
    for rows in [1usize, 100] {
        let q = query(rows);
        group.throughput(Throughput::Elements(rows as u64));
        group.bench_function(format!("{rows}_entity_rows"), |b| {
            b.iter(|| {
                runtime
                    .block_on(store.online_features(black_box(q.clone())))
                    .expect("lookup")
            })
        });
    }
    group.finish();

    let mut build = c.benchmark_group("online_index_build");
    build.sample_size(10);
    build.throughput(Throughput::Elements(handle.file.row_count()));
    build.bench_function("user_profile_300k_rows", |b| {
        b.iter(|| {
            ViewIndex::build(
                &view,
                vec!["user_id".into()],
                &handle.file,
                handle.version,
                0,
                now.timestamp_micros(),
            )
            .expect("build")
        })
    });
    build.finish();
}

criterion_group!(benches, bench_online);
criterion_main!(benches);
