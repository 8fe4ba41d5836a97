//! The command line: `serve`, `demo`, `info`, `apply`, `materialize`,
//! `materialize-incremental`, `historical`, `import-feast`, `token` and `openapi`.
//!
//! It parses arguments, loads the layered configuration, starts tracing and calls into the
//! library; the work itself lives in `store`, `server` and `demo`.

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use crate::api::{AppState, openapi::openapi_json};
use crate::auth::{Scope, generate_token, sha256_hex};
use crate::config::{Config, LoggingConfig};
use crate::demo::{self, DemoSpec, DemoTable};
use crate::model::{GroupName, TableName};
use crate::store::{Declaration, FeatureStore, LocalDatabases, MaterializeRequest};

mod historical;
mod import_feast;

/// featurestore: a lightweight, file-system feature store with a REST API.
#[derive(Debug, Parser)]
#[command(name = "featurestore", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the REST API (Swagger UI at /docs, the console at /ui).
    Serve(ServeArgs),
    /// Write the movie-recommendation demo tables (replacing them if present).
    Demo(DemoArgs),
    /// Print the tables of the data root.
    Info(CommonArgs),
    /// Validate registry definitions (a JSON document of entities, feature_views and
    /// feature_services) against the tables and apply them. Safe beside a running server,
    /// which serves them within about a second.
    Apply(ApplyArgs),
    /// Persist the online state of feature views into the durable online store (so a
    /// restart serves them without reading Parquet) and set their watermark to --end.
    /// Refused while a server holds the data root: use its POST /materialize instead.
    Materialize(MaterializeArgs),
    /// Like materialize, each view's window starting where its previous run ended.
    MaterializeIncremental(MaterializeIncrementalArgs),
    /// Point-in-time correct training data: each entity row of FILE with its features as of
    /// its event_timestamp, written as Parquet.
    Historical(historical::HistoricalArgs),
    /// Import a Feast repository: apply the definitions in FILE (the JSON `feast
    /// registry-dump` prints) and copy the rows of views on local Parquet files into their
    /// tables; what cannot be mapped is listed. Safe beside a running server.
    ImportFeast(import_feast::ImportFeastArgs),
    /// Print the OpenAPI document.
    Openapi,
    /// Bearer tokens for `[auth]`.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Print a new random token once, and the `[[auth.tokens]]` lines (its sha256) to add to
    /// the config file. The token itself is stored nowhere.
    Create(TokenCreateArgs),
}

#[derive(Debug, Args)]
struct TokenCreateArgs {
    /// What the token may do: `read`, or `write` (which implies read).
    #[arg(long, value_enum)]
    scope: Scope,
    /// Who holds it, for logs and 403 messages (default: the scope and the hash's first 8
    /// hex digits).
    #[arg(long)]
    name: Option<String>,
}

#[derive(Debug, Args)]
struct MaterializeArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Start of the window (RFC 3339); default the beginning.
    #[arg(long)]
    start: Option<DateTime<Utc>>,
    /// End of the window (RFC 3339); default now.
    #[arg(long)]
    end: Option<DateTime<Utc>>,
    /// Views to materialize (default: every registered view).
    #[arg(long, num_args = 1..)]
    views: Option<Vec<String>>,
}

#[derive(Debug, Args)]
struct MaterializeIncrementalArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// End of the window (RFC 3339).
    #[arg(long)]
    end: DateTime<Utc>,
    /// Views to materialize (default: every registered view).
    #[arg(long, num_args = 1..)]
    views: Option<Vec<String>>,
}

#[derive(Debug, Args)]
struct CommonArgs {
    /// A TOML file layered over the defaults.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The data root (overrides storage.data_dir).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct ServeArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Address to bind (overrides server.host).
    #[arg(long)]
    host: Option<String>,
    /// Port to bind (overrides server.port; 0 picks a free one).
    #[arg(long)]
    port: Option<u16>,
    /// Create the demo tables first if the data root has no tables.
    #[arg(long)]
    demo: bool,
    /// Benchmarking only: also answer `/_bench/floor` with this many bytes of fixed JSON,
    /// the HTTP floor `benches/load/run.sh` compares every workload with.
    #[arg(long, hide = true)]
    bench_floor_bytes: Option<usize>,
}

#[derive(Debug, Args)]
struct ApplyArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// The definitions file (JSON, the body of POST /registry/apply).
    file: PathBuf,
}

#[derive(Debug, Args)]
struct DemoArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Users (3 profile snapshots each).
    #[arg(long, default_value_t = 100_000)]
    users: usize,
    /// Movies.
    #[arg(long, default_value_t = 10_000)]
    movies: usize,
    /// Interaction rows.
    #[arg(long, default_value_t = 1_000_000)]
    interactions: usize,
    /// Random seed: the same seed and as-of give identical tables.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// The instant the data ends at (RFC 3339); default now.
    #[arg(long)]
    as_of: Option<DateTime<Utc>>,
}

impl DemoArgs {
    fn spec(&self) -> DemoSpec {
        DemoSpec {
            users: self.users,
            movies: self.movies,
            interactions: self.interactions,
            seed: self.seed,
            as_of: self.as_of.unwrap_or_else(Utc::now),
        }
    }
}

/// Parses the command line and runs it.
pub fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Openapi => {
            print!("{}", openapi_json());
            Ok(())
        }
        Command::Token(TokenCommand::Create(args)) => {
            print!("{}", create_token(&args)?);
            Ok(())
        }
        Command::Serve(args) => {
            let mut config = load_config(&args.common)?;
            if let Some(host) = args.host {
                config.server.host = host;
            }
            if let Some(port) = args.port {
                config.server.port = port;
            }
            init_tracing(&config.logging);
            let missing = if args.demo {
                MissingRoot::Create
            } else {
                MissingRoot::Refuse
            };
            check_data_root(&config, missing)?;
            actix_web::rt::System::new().block_on(serve(config, args.demo, args.bench_floor_bytes))
        }
        Command::Demo(args) => {
            let config = load_config(&args.common)?;
            init_tracing(&config.logging);
            check_data_root(&config, MissingRoot::Create)?;
            actix_web::rt::System::new().block_on(async {
                let store = open_store(&config, LocalDatabases::None)?;
                write_demo(&store, &args.spec()).await
            })
        }
        Command::Apply(args) => {
            let config = load_config(&args.common)?;
            init_tracing(&config.logging);
            check_data_root(&config, MissingRoot::Refuse)?;
            let text = std::fs::read_to_string(&args.file)
                .with_context(|| format!("cannot read {}", args.file.display()))?;
            let doc: crate::model::RegistryDocument = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a registry document", args.file.display()))?;
            actix_web::rt::System::new().block_on(async {
                let store = open_store(&config, LocalDatabases::None)?;
                let (report, committed) = store
                    .apply_if(doc, None, crate::store::Writer::default())
                    .await?;
                print_report(&report);
                // The number `GET /registry/history` lists this write under (unchanged when
                // nothing changed), so a training job can record the definitions it used.
                println!("registry version {}", committed.version);
                Ok(())
            })
        }
        Command::Materialize(args) => {
            let config = load_config(&args.common)?;
            init_tracing(&config.logging);
            check_data_root(&config, MissingRoot::Refuse)?;
            let request = MaterializeRequest {
                feature_views: args.views,
                start_micros: args.start.map(|t| t.timestamp_micros()),
                end_micros: args.end.unwrap_or_else(Utc::now).timestamp_micros(),
                incremental: false,
            };
            actix_web::rt::System::new().block_on(materialize(config, request))
        }
        Command::MaterializeIncremental(args) => {
            let config = load_config(&args.common)?;
            init_tracing(&config.logging);
            check_data_root(&config, MissingRoot::Refuse)?;
            let request = MaterializeRequest {
                feature_views: args.views,
                start_micros: None,
                end_micros: args.end.timestamp_micros(),
                incremental: true,
            };
            actix_web::rt::System::new().block_on(materialize(config, request))
        }
        Command::Historical(args) => {
            let config = load_config(&args.common)?;
            init_tracing(&config.logging);
            check_data_root(&config, MissingRoot::Refuse)?;
            actix_web::rt::System::new().block_on(historical::run(config, args))
        }
        Command::ImportFeast(args) => {
            let config = load_config(&args.common)?;
            init_tracing(&config.logging);
            check_data_root(&config, MissingRoot::Refuse)?;
            actix_web::rt::System::new().block_on(import_feast::run(config, args))
        }
        Command::Info(args) => {
            let config = load_config(&args)?;
            init_tracing(&config.logging);
            check_data_root(&config, MissingRoot::Refuse)?;
            actix_web::rt::System::new().block_on(info(config))
        }
    }
}

fn load_config(args: &CommonArgs) -> Result<Config> {
    let mut config = Config::load(args.config.as_deref(), std::env::vars())?;
    if let Some(dir) = &args.data_dir {
        config.storage.data_dir = dir.clone();
    }
    Ok(config)
}

fn init_tracing(logging: &LoggingConfig) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&logging.level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Whether a missing data root is created (`demo`, `serve --demo`) or is an error (every
/// other command: a mistyped `--data-dir` must not silently start an empty store).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MissingRoot {
    Create,
    Refuse,
}

/// Checks the data root before anything is opened, so a wrong path is one clear line rather
/// than an I/O error from deep inside.
fn check_data_root(config: &Config, missing: MissingRoot) -> Result<()> {
    let dir = &config.storage.data_dir;
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => anyhow::bail!(
            "the data root {} is not a directory; point --data-dir (or storage.data_dir) at a directory",
            dir.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => match missing {
            MissingRoot::Create => Ok(()),
            // On the s3 kind the tables are in the bucket; the data root only holds this
            // replica's caches, which start empty.
            MissingRoot::Refuse if config.storage.backend == crate::storage::StorageBackend::S3 => {
                Ok(())
            }
            MissingRoot::Refuse => anyhow::bail!(
                "the data root {} does not exist; create it (mkdir -p {}) or run `featurestore serve --demo --data-dir {}` to create it with the demo tables",
                dir.display(),
                dir.display(),
                dir.display()
            ),
        },
        Err(e) => anyhow::bail!("cannot read the data root {}: {e}", dir.display()),
    }
}

/// Opens the store with the single-process databases the command needs: a command that
/// works beside a running server on the same data root (`apply`, `demo`, `historical`,
/// `info`) opens neither, so it never competes with the server for them.
fn open_store(config: &Config, databases: LocalDatabases) -> Result<FeatureStore> {
    let mut options = config.store_options();
    options.local_databases = databases;
    FeatureStore::open(options).with_context(|| match config.storage.backend {
        crate::storage::StorageBackend::S3 => format!(
            "cannot open the S3 bucket {:?} (storage.backend = \"s3\")",
            config.storage.s3.bucket
        ),
        crate::storage::StorageBackend::Local => format!(
            "cannot open the data root {}",
            config.storage.data_dir.display()
        ),
    })
}

async fn serve(config: Config, demo: bool, bench_floor_bytes: Option<usize>) -> Result<()> {
    let store = open_store(&config, LocalDatabases::All)?;
    if demo && store.is_empty().await? {
        tracing::info!("the data root has no tables: creating the demo tables");
        let args = DemoArgs {
            common: CommonArgs {
                config: None,
                data_dir: None,
            },
            users: 100_000,
            movies: 10_000,
            interactions: 1_000_000,
            seed: 42,
            as_of: None,
        };
        write_demo(&store, &args.spec()).await?;
    }
    let address = format!("{}:{}", config.server.host, config.server.port);
    let auth = config.auth.authenticator().map_err(anyhow::Error::msg)?;
    let listener = TcpListener::bind(&address).with_context(|| format!("cannot bind {address}"))?;
    let local = listener.local_addr()?;
    if auth.is_some() {
        tracing::info!(
            tokens = config.auth.tokens.len(),
            "bearer tokens required on every route but /health, /docs/, /openapi.json and the console's pages (/, /ui/)"
        );
    } else if !config.server.is_loopback() {
        tracing::warn!(%local, "listening on a non-loopback address without authentication: anyone who can reach it can read and change every table; set [auth] enabled = true");
    }
    tracing::info!(%local, data_dir = %config.storage.data_dir.display(), "featurestore listening; Swagger UI at http://{local}/docs/, the console at http://{local}/ui/");
    if config.serving.preload {
        let preload = store.clone();
        std::thread::spawn(move || preload.preload_indexes());
    }
    let mut state = AppState::new(store, config.api.clone()).with_auth(auth);
    if let Some(bytes) = bench_floor_bytes {
        tracing::warn!(
            bytes,
            path = crate::api::floor::FLOOR_PATH,
            "benchmark floor route enabled"
        );
        state = state.with_bench_floor(bytes);
    }
    crate::server::run(listener, state, &config.server, shutdown_signal()).await?;
    Ok(())
}

/// The output of `token create`: the token alone on the first line (so `head -n 1` gets it),
/// then TOML ready to append to the config file.
fn create_token(args: &TokenCreateArgs) -> Result<String> {
    let token =
        generate_token().map_err(|e| anyhow::anyhow!("no random bytes from the OS: {e}"))?;
    let hash = sha256_hex(&token);
    let name = match &args.name {
        Some(name) if name.trim().is_empty() => anyhow::bail!("--name must not be empty"),
        Some(name) => name.clone(),
        None => format!("{}-{}", args.scope, &hash[..8]),
    };
    // A TOML string literal, escaped as TOML wants whatever the name holds.
    let name = toml::Value::String(name).to_string();
    Ok(format!(
        "{token}\n\
         \n\
         # Add to the config file (the token above is shown only once; only its sha256 is kept),\n\
         # with `[auth] enabled = true`:\n\
         [[auth.tokens]]\n\
         name = {name}\n\
         sha256 = \"{hash}\"\n\
         scope = \"{}\"\n",
        args.scope
    ))
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn progress_bar(len: u64, message: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    let style = ProgressStyle::with_template("{msg:>28} [{bar:30}] {pos}/{len} ({elapsed})")
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message(message.to_owned());
    bar
}

async fn write_demo(store: &FeatureStore, spec: &DemoSpec) -> Result<()> {
    let started = Instant::now();
    println!(
        "writing demo data: {} users, {} movies, {} interactions (seed {}, as of {})",
        spec.users,
        spec.movies,
        spec.interactions,
        spec.seed,
        spec.as_of
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
    );
    let bar = progress_bar(spec.interactions as u64, "generating interactions");
    let interactions = demo::user_movie_interactions(spec, &mut |n| bar.set_position(n))?;
    bar.finish();
    let tables = vec![
        demo::movie_metadata(spec)?,
        demo::user_profile(spec)?,
        interactions,
    ];
    let bar = progress_bar(tables.len() as u64, "writing tables");
    bar.enable_steady_tick(Duration::from_millis(200));
    for table in tables {
        let DemoTable {
            group,
            name,
            entity_key,
            timestamp_field,
            batch,
        } = table;
        let rows = batch.num_rows();
        let group: GroupName = group.parse()?;
        let name: TableName = name.parse()?;
        let declaration = Declaration {
            entity_key: Some(entity_key),
            timestamp_field: Some(timestamp_field.to_owned()),
            ..Declaration::default()
        };
        let outcome = store.save_batch(group, name, batch, declaration).await?;
        // Plain stdout, not `bar.println`: the bar is hidden when the output is piped or
        // logged, and the list of what was written must still appear.
        bar.suspend(|| {
            println!(
                "  {} ({rows} rows, version {})",
                outcome.relative_path, outcome.version
            )
        });
        bar.inc(1);
    }
    bar.finish_and_clear();
    let report = store.apply(demo::registry_document()).await?;
    print_report(&report);
    println!(
        "demo data written in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn print_report(report: &crate::store::ApplyReport) {
    for (verb, items) in [
        ("created", &report.created),
        ("updated", &report.updated),
        ("unchanged", &report.unchanged),
    ] {
        for item in items {
            println!("  {verb:<9} {item}");
        }
    }
}

async fn materialize(config: Config, request: MaterializeRequest) -> Result<()> {
    let started = Instant::now();
    let store = open_store(&config, LocalDatabases::OnlineStore)?;
    if let Some(why) = store.online_store_error() {
        anyhow::bail!(
            "cannot materialize: the online store {} cannot be opened ({why}). If `featurestore serve` is running on this data root, it holds the online store: materialize through it with POST /materialize (or POST /materialize-incremental), or stop it first",
            config.storage.data_dir.join("online").display()
        );
    }
    let registry = store.registry();
    let count = request
        .feature_views
        .as_ref()
        .map_or(registry.feature_views.len(), Vec::len);
    let bar = progress_bar(count as u64, "materializing views");
    bar.enable_steady_tick(Duration::from_millis(200));
    let progress = bar.clone();
    let done = store
        .materialize(request, move |view| {
            progress.set_message(view.feature_view.clone());
            progress.inc(1);
        })
        .await
        .context("materialization failed")?;
    bar.finish_and_clear();
    let time = |micros: i64| {
        DateTime::from_timestamp_micros(micros)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_else(|| "the beginning".into())
    };
    for view in &done {
        if let Some(why) = &view.skipped {
            println!("  {:<28} skipped: {why}", view.feature_view);
            continue;
        }
        println!(
            "  {:<28} {} .. {}: {} rows in the window, {} entities online ({} ms)",
            view.feature_view,
            view.start_micros
                .map_or_else(|| "the beginning".into(), time),
            time(view.end_micros),
            view.rows_in_window,
            view.entities,
            view.millis
        );
    }
    println!(
        "{} view(s) materialized in {:.1} s",
        done.iter().filter(|v| v.skipped.is_none()).count(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn info(config: Config) -> Result<()> {
    let store = open_store(&config, LocalDatabases::None)?;
    let tables = store.list().await?;
    println!("data root: {}", config.storage.data_dir.display());
    println!(
        "{:<12} {:<32} {:>10} {:>10} {:>8}",
        "group", "table", "rows", "size_mb", "version"
    );
    let mut total = 0u64;
    for t in &tables {
        total += t.file_size_bytes;
        println!(
            "{:<12} {:<32} {:>10} {:>10.3} {:>8}",
            t.group,
            t.name,
            t.rows,
            t.file_size_bytes as f64 / 1048576.0,
            t.version
        );
    }
    println!(
        "{} table(s), {:.3} MB",
        tables.len(),
        total as f64 / 1048576.0
    );
    Ok(())
}
