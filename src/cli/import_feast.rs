//! `featurestore import-feast`: a Feast repository's definitions (the JSON `feast
//! registry-dump` prints) applied to the data root, and the rows of its views on local Parquet
//! files copied in as their tables. `--dry-run` prints the same plan and writes nothing.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use clap::Args;
use indicatif::ProgressBar;

use super::{CommonArgs, open_store, print_report, progress_bar};
use crate::config::Config;
use crate::store::{CopyStatus, FeastImport, FeastImportOptions, LocalDatabases, Unmappable};

/// Files with fewer rows than this are copied without a progress bar: it would only flash.
const PROGRESS_MIN_ROWS: u64 = 100_000;

#[derive(Debug, Args)]
pub(super) struct ImportFeastArgs {
    #[command(flatten)]
    pub(super) common: CommonArgs,
    /// The JSON `feast registry-dump` printed (run it in the Feast repository).
    file: PathBuf,
    /// The Feast repository, against which relative FileSource paths resolve (default: the
    /// folder of FILE).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Print what would be applied and copied, and what cannot be mapped; write nothing.
    #[arg(long)]
    dry_run: bool,
}

/// Runs the import.
pub(super) async fn run(config: Config, args: ImportFeastArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let dump: serde_json::Value = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not JSON; pass the output of `feast registry-dump`",
            args.file.display()
        )
    })?;
    let data = args.data.clone().unwrap_or_else(|| folder_of(&args.file));
    if !data.is_dir() {
        anyhow::bail!(
            "--data {} is not a folder; point it at the Feast repository (the folder of feature_store.yaml)",
            data.display()
        );
    }
    let store = open_store(&config, LocalDatabases::None)?;
    let options = FeastImportOptions {
        data_dir: Some(data),
        dry_run: args.dry_run,
        writer: crate::store::Writer::default(),
    };
    let bar: Arc<Mutex<Option<(String, ProgressBar)>>> = Arc::new(Mutex::new(None));
    let progress_state = Arc::clone(&bar);
    let progress = Arc::new(move |view: &str, read: u64, total: u64| {
        if total < PROGRESS_MIN_ROWS {
            return;
        }
        let mut current = progress_state.lock().unwrap_or_else(|p| p.into_inner());
        if current.as_ref().is_none_or(|(name, _)| name != view) {
            if let Some((_, old)) = current.take() {
                old.finish_and_clear();
            }
            *current = Some((
                view.to_owned(),
                progress_bar(total, &format!("copying {view}")),
            ));
        }
        if let Some((_, bar)) = current.as_ref() {
            bar.set_position(read);
        }
    });
    let outcome = store
        .import_feast(dump, options, progress)
        .await
        .with_context(|| format!("cannot import {}", args.file.display()))?;
    if let Some((_, bar)) = bar.lock().unwrap_or_else(|p| p.into_inner()).take() {
        bar.finish_and_clear();
    }
    print_import(&outcome);
    Ok(())
}

/// The folder a relative FILE is in (`.` for a bare name).
fn folder_of(file: &Path) -> PathBuf {
    match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn print_import(outcome: &FeastImport) {
    let dry = outcome.dry_run;
    println!(
        "Feast project {}{}",
        outcome.project,
        if dry {
            " (dry run: nothing is written)"
        } else {
            ""
        }
    );
    if !outcome.tables.is_empty() {
        println!("tables:");
    }
    for table in &outcome.tables {
        let verb = match table.status {
            CopyStatus::Copied => "copied",
            CopyStatus::WouldCopy => "would copy",
            CopyStatus::NotCopied => "kept",
        };
        match (&table.source, table.rows) {
            (Some(source), Some(rows)) => {
                println!("  {verb:<10} {} <- {source} ({rows} rows)", table.table)
            }
            _ => println!("  {verb:<10} {}: {}", table.table, table.message),
        }
    }
    println!("{}", if dry { "would apply:" } else { "applied:" });
    print_report(&outcome.report);
    print_list("skipped (no table)", &outcome.skipped);
    print_list("cannot be mapped", &outcome.unmappable);
    if !outcome.notes.is_empty() {
        println!("notes:");
        for note in &outcome.notes {
            println!("  {note}");
        }
    }
    if let Some(committed) = &outcome.committed {
        println!("registry version {}", committed.version);
    }
}

fn print_list(title: &str, items: &[Unmappable]) {
    if items.is_empty() {
        return;
    }
    println!("{title}:");
    for item in items {
        println!("  {} {}: {}", item.kind, item.name, item.reason);
    }
}
