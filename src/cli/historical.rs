//! `featurestore historical`: training data from the data root into a Parquet file, without
//! a server. Entity rows come from a Parquet or CSV file; `--table-version` and
//! `--snapshot-time` pin the versions the views' tables are read at, and the summary names
//! the versions read so the same file can be written again later.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use clap::Args;

use super::{CommonArgs, open_store, progress_bar};
use crate::config::Config;
use crate::store::{HistoricalEntities, HistoricalQuery, LocalDatabases, to_parquet_bytes};

#[derive(Debug, Args)]
pub(super) struct HistoricalArgs {
    #[command(flatten)]
    pub(super) common: CommonArgs,
    /// Entity rows: a Parquet or CSV file with the join keys and event_timestamp (RFC 3339).
    #[arg(long)]
    entities: PathBuf,
    /// Feature references `view:feature`, comma-separated or repeated.
    #[arg(
        long,
        value_delimiter = ',',
        conflicts_with = "service",
        required_unless_present = "service"
    )]
    features: Option<Vec<String>>,
    /// A registered feature service instead of --features.
    #[arg(long)]
    service: Option<String>,
    /// Where to write the training data (Parquet).
    #[arg(long)]
    out: PathBuf,
    /// Name features `view__feature`.
    #[arg(long)]
    full_feature_names: bool,
    /// Also exclude feature rows created after each entity row's timestamp.
    #[arg(long)]
    created_timestamp_cutoff: bool,
    /// Read every view's table as the version that was current at this instant (RFC 3339).
    #[arg(long)]
    snapshot_time: Option<DateTime<Utc>>,
    /// Read a view's table at a version, `view=N` (repeat for several views); wins over
    /// --snapshot-time for that view. The summary prints the versions every run read.
    #[arg(long = "table-version", value_name = "VIEW=N", value_parser = parse_pin)]
    table_versions: Vec<(String, u64)>,
}

/// One `--table-version`: `view=N`.
fn parse_pin(text: &str) -> std::result::Result<(String, u64), String> {
    let (view, version) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not view=N (e.g. user_profile=7)"))?;
    let version = version
        .trim()
        .parse()
        .map_err(|_| format!("{text:?}: the version must be a positive integer"))?;
    Ok((view.trim().to_owned(), version))
}

/// The pins as a map; a view pinned twice is an error rather than a silent choice.
fn pins(list: Vec<(String, u64)>) -> Result<BTreeMap<String, u64>> {
    let mut pins = BTreeMap::new();
    for (view, version) in list {
        if let Some(other) = pins.insert(view.clone(), version) {
            anyhow::bail!(
                "--table-version pins {view} twice ({other} and {version}); give each view once"
            );
        }
    }
    Ok(pins)
}

/// Runs `featurestore historical`.
pub(super) async fn run(config: Config, args: HistoricalArgs) -> Result<()> {
    let started = Instant::now();
    let table_versions = pins(args.table_versions)?;
    let bar = progress_bar(3, "reading entity rows");
    bar.enable_steady_tick(Duration::from_millis(200));
    let bytes = std::fs::read(&args.entities)
        .with_context(|| format!("cannot read {}", args.entities.display()))?;
    let is_csv = args
        .entities
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    let entities = if is_csv {
        let text = String::from_utf8(bytes)
            .with_context(|| format!("{} is not UTF-8 text", args.entities.display()))?;
        HistoricalEntities::Columns(
            csv_columns(&text)
                .with_context(|| format!("cannot parse {}", args.entities.display()))?,
        )
    } else {
        HistoricalEntities::Parquet(bytes.into())
    };
    bar.inc(1);
    bar.set_message("joining");
    let store = open_store(&config, LocalDatabases::None)?;
    let answer = store
        .historical(HistoricalQuery {
            features: args.features,
            feature_service: args.service,
            entities,
            full_feature_names: args.full_feature_names,
            created_timestamp_cutoff: args.created_timestamp_cutoff,
            table_versions,
            snapshot_time: args.snapshot_time,
        })
        .await?;
    bar.inc(1);
    bar.set_message("writing");
    let parquet = to_parquet_bytes(&answer.batch)?;
    let temp = args.out.with_extension("parquet.partial");
    std::fs::write(&temp, &parquet).with_context(|| format!("cannot write {}", temp.display()))?;
    std::fs::rename(&temp, &args.out)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    bar.inc(1);
    bar.finish_and_clear();
    let rows = answer.batch.num_rows();
    println!(
        "{} rows x {} columns written to {} ({:.1} MB); {} rows ({:.1} %) matched at least one view; {:.2} s",
        rows,
        answer.batch.num_columns(),
        args.out.display(),
        parquet.len() as f64 / 1048576.0,
        answer.matched_rows,
        if rows == 0 {
            0.0
        } else {
            answer.matched_rows as f64 * 100.0 / rows as f64
        },
        started.elapsed().as_secs_f64()
    );
    // The versions read, as the flags that read them again: the file can be rebuilt exactly
    // while retention keeps them. The Parquet file holds them too (featurestore.table_versions).
    let flags: Vec<String> = answer
        .table_versions
        .iter()
        .map(|(view, version)| format!("--table-version {view}={version}"))
        .collect();
    println!("table versions read: {}", flags.join(" "));
    Ok(())
}

/// A CSV file with a header as JSON columns: empty cells are null, integers and numbers are
/// numbers, `true`/`false` booleans, anything else text. Fields may be double-quoted (with
/// `""` for a quote inside).
fn csv_columns(text: &str) -> Result<Vec<(String, Vec<serde_json::Value>)>> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header = lines.next().context("the CSV file is empty")?;
    let names = csv_fields(header);
    let mut columns: Vec<(String, Vec<serde_json::Value>)> =
        names.into_iter().map(|n| (n, Vec::new())).collect();
    for (i, line) in lines.enumerate() {
        let fields = csv_fields(line);
        if fields.len() != columns.len() {
            anyhow::bail!(
                "line {} has {} fields, the header has {}",
                i + 2,
                fields.len(),
                columns.len()
            );
        }
        for ((_, values), field) in columns.iter_mut().zip(fields) {
            values.push(csv_value(field));
        }
    }
    Ok(columns)
}

fn csv_value(field: String) -> serde_json::Value {
    use serde_json::Value;
    if field.is_empty() {
        Value::Null
    } else if let Ok(i) = field.parse::<i64>() {
        Value::from(i)
    } else if let Some(n) = field
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
    {
        Value::Number(n)
    } else if field == "true" || field == "false" {
        Value::Bool(field == "true")
    } else {
        Value::String(field)
    }
}

fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut chars = line.trim_end_matches('\r').chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                current.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut current)),
            (c, _) => current.push(c),
        }
    }
    fields.push(current);
    fields
}
