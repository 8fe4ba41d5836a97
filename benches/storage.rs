//! Storage benchmarks: save of 1 M interaction rows, a 100-row page deep into that table,
//! a full read, a 100 k-record JSON save, and the fold of one pushed part into the demo's
//! 300 k-row `user_profile` (what the background folder does after a push; one thread, so its
//! wall time is its CPU time).
//!
//! Run: `cargo bench --bench storage` (add `-- page` to run one group). Fixtures (the demo's
//! interaction table, generated deterministically) are built outside the timed loops. The
//! page read opens the table snapshot once, as the server does, and decodes only the row
//! group and pages holding the rows: it is the uncached cost of a page.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use featurestore::demo::{user_movie_interactions, user_profile};
use featurestore::model::{GroupName, TableName};
use featurestore::storage::{Declaration, RecordColumns, Storage};

#[path = "common/interactions.rs"]
mod interactions;
use interactions::{ROWS, declaration, names, spec, storage_config};

fn bench_storage(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let storage = Storage::open(storage_config(dir.path(), true)).expect("open storage");
    let table = user_movie_interactions(&spec(ROWS, 42), &mut |_| {}).expect("demo data");
    let (group, name) = names();

    let mut save = c.benchmark_group("save");
    save.sample_size(10)
        .measurement_time(Duration::from_secs(15));
    save.throughput(Throughput::Elements(ROWS as u64));
    save.bench_function("1M_interactions_from_arrow", |b| {
        b.iter(|| {
            storage
                .save_batch(&group, &name, black_box(&table.batch), declaration())
                .expect("save")
        })
    });
    save.finish();

    // With a filter that skips `save` (e.g. `-- fold`), the table is saved once here.
    if storage.get(&name).is_err() {
        storage
            .save_batch(&group, &name, &table.batch, declaration())
            .expect("save");
    }
    let handle = storage.get(&name).expect("table saved");
    let all = handle.file.all_columns();
    let mut page = c.benchmark_group("page");
    page.throughput(Throughput::Elements(100));
    page.bench_function("100_rows_at_offset_500000", |b| {
        b.iter(|| {
            handle
                .file
                .read_range(black_box(&all), 500_000, 100)
                .expect("page")
        })
    });
    page.finish();

    let mut full = c.benchmark_group("full_read");
    full.sample_size(10);
    full.throughput(Throughput::Elements(ROWS as u64));
    full.bench_function("1M_interactions", |b| {
        b.iter(|| handle.file.read_all(black_box(&all)).expect("read"))
    });
    full.finish();

    // 100 k records as a client would POST them: JSON text → columns → Arrow → Parquet.
    let json = records_json(100_000);
    let mut ingest = c.benchmark_group("json_save");
    ingest
        .sample_size(10)
        .measurement_time(Duration::from_secs(15));
    ingest.throughput(Throughput::Elements(100_000));
    let small: TableName = "user_movie_interactions_100k".parse().expect("valid name");
    ingest.bench_function("100k_records", |b| {
        b.iter(|| {
            let records: RecordColumns =
                serde_json::from_slice(black_box(&json)).expect("valid JSON");
            storage
                .save_records(&group, &small, &records, declaration())
                .expect("save")
        })
    });
    ingest.finish();

    // One pushed row (a part) folded into the 300 k-row user_profile, as after a push.
    let profile = user_profile(&spec(ROWS, 42)).expect("demo data");
    let (user, profile_name): (GroupName, TableName) = (
        "user".parse().expect("valid group"),
        "user_profile".parse().expect("valid name"),
    );
    let keyed = Declaration {
        entity_key: Some(vec!["user_id".into()]),
        timestamp_field: Some("event_timestamp".into()),
        ..Declaration::default()
    };
    storage
        .save_batch(&user, &profile_name, &profile.batch, keyed)
        .expect("save user_profile");
    let pushed = profile.batch.slice(0, 1);
    let mut fold = c.benchmark_group("fold");
    fold.sample_size(10)
        .measurement_time(Duration::from_secs(15));
    fold.throughput(Throughput::Elements(profile.batch.num_rows() as u64));
    fold.bench_function("user_profile_300k_plus_one_part", |b| {
        b.iter_batched(
            || {
                storage
                    .append_batch(&user, &profile_name, &pushed, Declaration::default())
                    .expect("append")
            },
            |_| {
                storage
                    .fold(Some(&user), black_box(&profile_name))
                    .expect("fold")
            },
            BatchSize::PerIteration,
        )
    });
    fold.finish();
}

/// The first `rows` demo interactions as a JSON array of records.
fn records_json(rows: usize) -> Vec<u8> {
    let table = user_movie_interactions(&spec(rows, 42), &mut |_| {}).expect("demo data");
    let mut out = Vec::new();
    featurestore::api::records::write_records(&table.batch, &mut out);
    out
}

criterion_group!(benches, bench_storage);
criterion_main!(benches);
