//! Statistics benchmarks: `VersionStats::compute` over the demo's 1 M-row interaction table
//! next to `Storage::save_batch` of the same batch in the same run, so the share statistics
//! would add to a save is read off directly; and the merge of a 1 000-row part's statistics
//! into the 1 M-row version's (what an append costs).
//!
//! Run: `cargo bench --bench stats` (`-- --quick` for a short run, `-- merge` for one group).
//! Fixtures (the demo table, generated deterministically; the 1 M-row statistics) are built
//! outside the timed loops. Everything is single-threaded, so wall time is CPU time.

use std::hint::black_box;
use std::time::Duration;

use chrono::DateTime;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use featurestore::config::Config;
use featurestore::demo::{DemoSpec, user_movie_interactions};
use featurestore::model::{GroupName, TableName};
use featurestore::stats::VersionStats;
use featurestore::storage::{Declaration, Storage, StorageConfig};

const ROWS: usize = 1_000_000;
const PART: usize = 1_000;

fn spec(interactions: usize, seed: u64) -> DemoSpec {
    DemoSpec {
        users: 100_000,
        movies: 10_000,
        interactions,
        seed,
        as_of: DateTime::from_timestamp(1_790_000_000, 0).unwrap_or_default(),
    }
}

fn storage_config(dir: &std::path::Path) -> StorageConfig {
    let mut config = Config::defaults()
        .expect("the shipped defaults load")
        .storage;
    config.data_dir = dir.to_path_buf();
    config
}

fn declaration() -> Declaration {
    Declaration {
        entity_key: Some(vec!["user_id".into(), "movie_id".into()]),
        timestamp_field: Some("event_timestamp".into()),
        ..Declaration::default()
    }
}

fn bench_stats(c: &mut Criterion) {
    let table = user_movie_interactions(&spec(ROWS, 42), &mut |_| {}).expect("demo data");
    let dir = tempfile::tempdir().expect("temp dir");
    let storage = Storage::open(storage_config(dir.path())).expect("open storage");
    let group: GroupName = "interaction".parse().expect("valid group");
    let name: TableName = "user_movie_interactions".parse().expect("valid name");

    // Compute and save side by side: the figure is compute's time over save's.
    let mut write = c.benchmark_group("write_1M_interactions");
    write
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    write.throughput(Throughput::Elements(ROWS as u64));
    write.bench_function("stats_compute", |b| {
        b.iter(|| VersionStats::compute(black_box(std::slice::from_ref(&table.batch))))
    });
    write.bench_function("save_batch", |b| {
        b.iter(|| {
            storage
                .save_batch(&group, &name, black_box(&table.batch), declaration())
                .expect("save")
        })
    });
    write.finish();

    let version = VersionStats::compute(std::slice::from_ref(&table.batch));
    let part = user_movie_interactions(&spec(PART, 43), &mut |_| {}).expect("demo part");
    let part_stats = VersionStats::compute(std::slice::from_ref(&part.batch));
    let mut merge = c.benchmark_group("merge");
    merge.throughput(Throughput::Elements(1));
    merge.bench_function("1M_version_plus_1000_row_part", |b| {
        b.iter(|| black_box(&version).merge(black_box(&part_stats)))
    });
    merge.bench_function("1000_row_part_compute", |b| {
        b.iter(|| VersionStats::compute(black_box(std::slice::from_ref(&part.batch))))
    });
    merge.finish();
}

criterion_group!(benches, bench_stats);
criterion_main!(benches);
