//! Cache benchmarks: a memory-tier hit, a disk-tier hit and a miss read from Parquet, for a
//! 100-row page and a 10 000-row, 3-column projection of the demo's `user_profile`.
//!
//! Run: `cargo bench --bench cache`. The fixture (300 000 rows, the demo's seed) is written and
//! both tiers are filled outside the timed loops. The disk-tier hit includes decoding Arrow IPC;
//! the miss is the read the server does on a cold cache (row groups and pages skipped through
//! the page index).

use std::hint::black_box;
use std::sync::Arc;

use chrono::DateTime;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use featurestore::cache::{CacheConfig, CacheKey, DiskCache, ReadKind, SystemClock, TieredCache};
use featurestore::config::Config;
use featurestore::demo::{DemoSpec, user_profile};
use featurestore::model::{GroupName, TableName};
use featurestore::storage::{Declaration, Storage};

fn bench_cache(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config::defaults().expect("the shipped defaults load");
    config.storage.data_dir = dir.path().to_path_buf();
    let storage = Storage::open(config.storage.clone()).expect("open storage");
    let spec = DemoSpec {
        users: 100_000,
        movies: 10_000,
        interactions: 0,
        seed: 42,
        as_of: DateTime::from_timestamp(1_790_000_000, 0).unwrap_or_default(),
    };
    let table = user_profile(&spec).expect("demo data");
    let group: GroupName = "user".parse().expect("valid group");
    let name: TableName = "user_profile".parse().expect("valid name");
    let declaration = Declaration {
        entity_key: Some(vec!["user_id".into()]),
        timestamp_field: Some("event_timestamp".into()),
        ..Declaration::default()
    };
    storage
        .save_batch(&group, &name, &table.batch, declaration)
        .expect("save");
    let handle = storage.get(&name).expect("saved table");
    let file = &handle.file;

    let cache_config = CacheConfig {
        memory_max_entries: 1000,
        memory_max_mb: 512,
        memory_ttl_secs: 3600,
        disk_max_mb: 1000,
        history_max_mb: 0,
    };
    let tiered = TieredCache::open(
        &cache_config,
        &dir.path().join("cache-tiered"),
        Arc::new(SystemClock),
    );
    let disk = DiskCache::open(&dir.path().join("cache-disk"), 1000 * 1024 * 1024);

    let projection = ["user_id", "avg_rating", "favorite_genre"]
        .map(String::from)
        .to_vec();
    let cases = [
        ("page_100_rows", None, 150_000u64, 100u64),
        (
            "projection_10000_rows_3_columns",
            Some(projection),
            50_000,
            10_000,
        ),
    ];
    for (label, columns, offset, limit) in cases {
        let indices = match &columns {
            Some(c) => file.column_indices(c).expect("columns exist"),
            None => file.all_columns(),
        };
        let key = CacheKey {
            table: name.to_string(),
            version: handle.version,
            snapshot: file.snapshot_id(),
            kind: ReadKind::Page {
                columns,
                offset,
                limit,
            },
        };
        let batch = file.read_range(&indices, offset, limit).expect("read");
        tiered.put(key.clone(), &batch);
        disk.put(&key, &batch);

        let mut group = c.benchmark_group(label);
        group.throughput(Throughput::Elements(limit));
        group.bench_function("memory_hit", |b| {
            b.iter(|| tiered.get_memory(black_box(&key)).expect("hit"))
        });
        group.bench_function("disk_hit", |b| {
            b.iter(|| disk.get(black_box(&key)).expect("hit"))
        });
        group.bench_function("miss_parquet", |b| {
            b.iter(|| {
                file.read_range(black_box(&indices), offset, limit)
                    .expect("read")
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench_cache);
criterion_main!(benches);
