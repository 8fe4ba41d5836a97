//! What statistics cost: the save of the demo's 1 M-row interaction table with `[stats]
//! enabled` and with it off, in the same run (issue 17: at most 20 % more wall time), and a
//! repeated `GET .../stats` of the current version through the store (issue 17: at most
//! 100 µs of server CPU; the store call is the whole of the route's work but the HTTP
//! framing).
//!
//! Run: `cargo bench --bench save_stats -- --quick` (add `save` or `get` to run one group).
//! The tables are generated before the timed loops; each save writes a new version, as a
//! replace does. The statistics are computed on a second thread beside the Parquet write, so
//! the save's wall time grows by what the two threads contend for (this machine: 2 cores).
//! The stats read uses a current-thread runtime: its answer is a cache lookup plus the
//! timestamp ages, on the calling thread (no blocking pool), so wall time is CPU time.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use featurestore::demo::{DemoSpec, user_movie_interactions};
use featurestore::storage::{Storage, VersionSelector};
use featurestore::store::{FeatureStore, LocalDatabases};

#[path = "common/interactions.rs"]
mod interactions;
use interactions::{ROWS, config, declaration, names, spec, storage_config};

fn bench_save(c: &mut Criterion) {
    let table = user_movie_interactions(&spec(ROWS, 42), &mut |_| {}).expect("demo data");
    let (group, name) = names();
    let mut save = c.benchmark_group("save");
    save.sample_size(10)
        .measurement_time(Duration::from_secs(20));
    save.throughput(Throughput::Elements(ROWS as u64));
    for (label, stats) in [("stats_on", true), ("stats_off", false)] {
        let dir = tempfile::tempdir().expect("temp dir");
        let storage = Storage::open(storage_config(dir.path(), stats)).expect("open storage");
        save.bench_function(format!("1M_interactions_{label}"), |b| {
            b.iter(|| {
                storage
                    .save_batch(&group, &name, black_box(&table.batch), declaration())
                    .expect("save")
            })
        });
    }
    save.finish();
}

fn bench_get(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let small = DemoSpec {
        interactions: 10_000,
        ..spec(ROWS, 42)
    };
    let table = user_movie_interactions(&small, &mut |_| {}).expect("demo data");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut options = config(dir.path(), true).store_options();
    options.local_databases = LocalDatabases::None;
    let store = FeatureStore::open(options).expect("open store");
    let (group, name) = names();
    runtime
        .block_on(store.save_batch(group.clone(), name.clone(), table.batch, declaration()))
        .expect("save");
    // The first read renders the answer; the timed ones find it.
    runtime
        .block_on(store.table_stats(group.clone(), name.clone(), VersionSelector::Current))
        .expect("stats");
    let mut get = c.benchmark_group("get");
    get.throughput(Throughput::Elements(1));
    get.bench_function("stats_of_the_current_version", |b| {
        b.iter(|| {
            runtime
                .block_on(store.table_stats(
                    black_box(group.clone()),
                    name.clone(),
                    VersionSelector::Current,
                ))
                .expect("stats")
        })
    });
    get.finish();
}

criterion_group!(benches, bench_save, bench_get);
criterion_main!(benches);
