//! `longtail serve` and `longtail events export`: flags to a validated
//! [`longtail_serve::ServeConfig`], then the library runs the service.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use longtail_infer::Precision;
use longtail_serve::{Limits, ModelPaths, ServeConfig, ServiceKeys, StoreUrl};

fn limits() -> Limits {
    Limits::default()
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// TOML file whose [serve] table supplies defaults for any flag.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Tail classifier checkpoint (the --out of `longtail train`): POST /v1/tail/score.
    #[arg(long)]
    pub classifier: PathBuf,
    /// Interest checkpoint (the --out of `longtail train-interest`): POST /v1/recommend.
    /// With --plan, default: the plan's checkpoint.
    #[arg(long, required_unless_present = "plan")]
    pub interest: Option<PathBuf>,
    /// A served plan (the --out of `longtail plan`): /v1/recommend ranks by its blend and, when
    /// a request sets no knob, re-ranks with the plan's tail weight.
    #[arg(long)]
    pub plan: Option<PathBuf>,
    /// Prepared dataset directory: the catalogue and the users' histories.
    #[arg(long)]
    pub data: PathBuf,
    /// Event store: `sqlite:PATH` (one file, WAL, every commit synced) or
    /// `postgres://USER[:PASSWORD]@HOST:PORT/DB` for several replicas sharing one store.
    #[arg(long, default_value = "sqlite:runs/serve/events.db")]
    pub store: String,
    /// /admin/reload accepts only paths under this directory, and /info shows paths relative
    /// to it. Default: the working directory.
    #[arg(long)]
    pub model_root: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,
    /// Key for the /v1 routes and /info (header `x-api-key` or `Authorization: Bearer`), at
    /// least 16 bytes. Prefer --api-key-file or the environment variable: a command line is
    /// visible to every local user in `ps`. Without a key the /v1 routes are open, which is
    /// refused unless --bind is a loopback address.
    #[arg(long, hide_env_values = true, conflicts_with = "api_key_file")]
    pub api_key: Option<String>,
    /// File holding the API key (its first line).
    #[arg(long)]
    pub api_key_file: Option<PathBuf>,
    /// Key for /admin and /v1/users (at least 16 bytes, not the API key). Without it those
    /// routes answer 403.
    #[arg(long, hide_env_values = true, conflicts_with = "admin_key_file")]
    pub admin_key: Option<String>,
    /// File holding the admin key (its first line).
    #[arg(long)]
    pub admin_key_file: Option<PathBuf>,
    /// p_tail at or above this gets the tail label (as `longtail score --threshold`).
    #[arg(long, default_value_t = 0.5)]
    pub threshold: f32,
    /// Arithmetic of the classifier's encoder for /v1/tail/score and /v1/items, as `longtail
    /// score --precision` (int8: faster, accuracy cost measured by `longtail eval
    /// --precision int8`). Kept across /admin/reload.
    #[arg(long, value_enum, default_value_t = Precision::Fp32)]
    pub precision: Precision,
    /// Pseudonymisation key for user ids (at least 16 bytes); the same key as `recommend`
    /// gives the same pseudonyms. Default: the hex key in --user-id-key-file.
    #[arg(long, hide_env_values = true)]
    pub user_id_key: Option<String>,
    /// Key file (hex), created with a random key if missing. Default: user_id.key beside the
    /// SQLite store. With PostgreSQL, give this or --user-id-key: replicas must share one key.
    #[arg(long)]
    pub user_id_key_file: Option<PathBuf>,
    /// Largest request body in bytes.
    #[arg(long, default_value_t = limits().max_body_bytes)]
    pub max_body_bytes: usize,
    /// Most listings per /v1/tail/score or /v1/items request.
    #[arg(long, default_value_t = limits().max_listings)]
    pub max_listings: usize,
    /// Most events per /v1/events request.
    #[arg(long, default_value_t = limits().max_events)]
    pub max_events: usize,
    /// Longest explicit history (and exclusion list) per /v1/recommend request.
    #[arg(long, default_value_t = limits().max_history)]
    pub max_history: usize,
    /// Largest k per /v1/recommend request.
    #[arg(long, default_value_t = limits().max_k)]
    pub max_k: usize,
    /// Requests waiting for or in the model thread; more are answered 429.
    #[arg(long, default_value_t = limits().max_concurrent_requests)]
    pub max_concurrent_requests: usize,
    /// Token budget of one scoring batch (requests waiting together share a forward pass);
    /// default 8192, and 4096 with `--precision int8`, as for `longtail score`.
    #[arg(long)]
    pub max_batch_tokens: Option<usize>,
    /// Seconds before a request is answered 408.
    #[arg(long, default_value_t = limits().timeout_seconds)]
    pub timeout_seconds: u64,
    /// Open connections at most; more wait in the kernel's backlog.
    #[arg(long, default_value_t = limits().max_connections)]
    pub max_connections: usize,
    /// Seconds a client has to send a request's headers; idle keep-alive connections close
    /// after the same time.
    #[arg(long, default_value_t = limits().header_read_timeout_seconds)]
    pub header_read_timeout_seconds: u64,

    #[command(flatten)]
    pub device: crate::shared_args::DeviceArg,
}

/// The request limits of `args`; an unset `--max-batch-tokens` follows `--precision` as in
/// `longtail score`.
fn limits_of(args: &ServeArgs) -> Limits {
    Limits {
        max_body_bytes: args.max_body_bytes,
        max_listings: args.max_listings,
        max_events: args.max_events,
        max_history: args.max_history,
        max_k: args.max_k,
        max_concurrent_requests: args.max_concurrent_requests,
        max_batch_tokens: args
            .max_batch_tokens
            .unwrap_or_else(|| longtail_infer::default_max_batch_tokens(args.precision)),
        timeout_seconds: args.timeout_seconds,
        max_connections: args.max_connections,
        header_read_timeout_seconds: args.header_read_timeout_seconds,
    }
}

/// A key given inline or in a file (its first line).
fn key_text(inline: &Option<String>, file: &Option<PathBuf>, flag: &str) -> Result<Option<String>> {
    Ok(match (inline, file) {
        (Some(k), _) => Some(k.clone()),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--{flag}-file {}: cannot read it", path.display()))?;
            Some(longtail_serve::keys::key_from_file_text(&text).to_string())
        }
        (None, None) => None,
    })
}

pub fn run(args: ServeArgs) -> Result<()> {
    let device = args.device.resolve()?;
    let store = StoreUrl::parse(&args.store)?;
    if !(0.0..=1.0).contains(&args.threshold) {
        bail!("--threshold must be in [0, 1], got {}", args.threshold);
    }
    let keys = ServiceKeys::new(
        key_text(&args.api_key, &args.api_key_file, "api-key")?.as_deref(),
        key_text(&args.admin_key, &args.admin_key_file, "admin-key")?.as_deref(),
        args.bind,
    )?;
    if matches!(store, StoreUrl::Postgres(_))
        && args.user_id_key.is_none()
        && args.user_id_key_file.is_none()
    {
        bail!(
            "a PostgreSQL store is shared by replicas, and they must pseudonymise user ids with \
             one key: give --user-id-key-file PATH (the same file on every replica) or \
             --user-id-key"
        );
    }
    let key_dir = match &store {
        StoreUrl::Sqlite(p) => p
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(".")),
        StoreUrl::Postgres(_) => PathBuf::from("."),
    };
    std::fs::create_dir_all(&key_dir).with_context(|| format!("creating {}", key_dir.display()))?;
    let (pseudonymiser, key_path) = super::recommend::pseudonymiser(
        false,
        args.user_id_key.as_deref(),
        args.user_id_key_file.clone(),
        &key_dir,
    )?;
    if let Some(p) = key_path {
        eprintln!(
            "user ids pseudonymised with HMAC-SHA256, key in {}",
            p.display()
        );
    }
    if keys.api.is_none() {
        eprintln!(
            "warning: no --api-key: the /v1 routes are open to anyone who can connect to {}",
            args.bind
        );
    }
    if keys.admin.is_none() {
        eprintln!("note: no --admin-key: /admin/reload and /v1/users are disabled (403)");
    }
    let limits = limits_of(&args);
    let model_root = match &args.model_root {
        Some(p) => p.clone(),
        None => std::env::current_dir().context("the working directory")?,
    };
    let model_root = model_root
        .canonicalize()
        .with_context(|| format!("--model-root {}", model_root.display()))?;
    let interest = match (&args.interest, &args.plan) {
        (Some(dir), _) => dir.clone(),
        (None, Some(plan)) => {
            let p: longtail_rec::Plan =
                longtail_fs::read_json(&plan.join(longtail_rec::plan::PLAN_FILE))
                    .with_context(|| format!("--plan {}", plan.display()))?;
            longtail_interest::recommend::plan_checkpoint(&p)
                .with_context(|| format!("--plan {}: it names no checkpoint", plan.display()))?
                .to_path_buf()
        }
        (None, None) => anyhow::bail!("give --interest DIR or --plan DIR"),
    };
    let config = ServeConfig {
        models: ModelPaths {
            classifier: args.classifier,
            interest,
            plan: args.plan,
            precision: args.precision,
            device,
        },
        data: args.data,
        store,
        bind: args.bind,
        keys,
        model_root,
        pseudonymiser,
        threshold: args.threshold,
        limits,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(longtail_serve::serve(
        config,
        longtail_serve::shutdown_signal(),
    ))?;
    Ok(())
}

#[derive(Subcommand, Debug)]
pub enum EventsCommand {
    /// Write the store's clicks, purchases and new items as `prepare` input (items.jsonl,
    /// interactions.csv) plus export.json with the high-water mark the next export continues
    /// from. With --base, the files are the base data plus what is new.
    Export(ExportArgs),
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// TOML file whose [events.export] table supplies defaults.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Event store: `sqlite:PATH` or a `postgres://` URL.
    #[arg(long)]
    pub store: String,
    /// A previous export's export.json (or its directory): export only what came after it.
    /// Default: everything.
    #[arg(long)]
    pub since: Option<PathBuf>,
    /// Output directory (items.jsonl, interactions.csv, export.json).
    #[arg(long)]
    pub out: PathBuf,
    /// Raw data to start from (items.jsonl + interactions.csv with user_id,item_id,timestamp):
    /// the original dataset, or the previous export's --out.
    #[arg(long)]
    pub base: Option<PathBuf>,
    /// The service's user-id key file: the base's raw user ids are exported as pseudonyms and
    /// erased users' rows are left out. Default: user_id.key beside a SQLite store, when it
    /// exists (where `serve` keeps it).
    #[arg(long)]
    pub user_id_key_file: Option<PathBuf>,
}

pub fn run_events(cmd: EventsCommand) -> Result<()> {
    match cmd {
        EventsCommand::Export(args) => {
            let store = StoreUrl::parse(&args.store)?;
            let since = match &args.since {
                Some(p) => longtail_serve::export::read_mark(p)
                    .with_context(|| format!("reading the mark in {}", p.display()))?,
                None => Default::default(),
            };
            let key_file = args.user_id_key_file.clone().or_else(|| match &store {
                StoreUrl::Sqlite(p) => {
                    Some(p.with_file_name("user_id.key")).filter(|k| k.is_file())
                }
                StoreUrl::Postgres(_) => None,
            });
            let pseudo = match &key_file {
                Some(path) => {
                    anyhow::ensure!(
                        path.is_file(),
                        "--user-id-key-file {}: no such file",
                        path.display()
                    );
                    let key = longtail_interest::Pseudonymiser::load_or_create_key_file(path)?;
                    Some(longtail_interest::Pseudonymiser::keyed(&key)?)
                }
                None => None,
            };
            let s = longtail_serve::export::export(
                &store,
                since,
                &args.out,
                args.base.as_deref(),
                pseudo.as_ref(),
            )?;
            println!(
                "exported {} clicks, {} purchases, {} new items (dismissals not exported: {}) \
                 after events #{} / items #{}; base: {} items, {} interactions ({} of erased \
                 users left out); wrote {} (next export: --since {})",
                s.clicks,
                s.purchases,
                s.new_items,
                s.dismissals,
                s.since.events,
                s.since.items,
                s.base_items,
                s.base_interactions,
                s.erased_interactions,
                args.out.display(),
                args.out.join(longtail_serve::export::EXPORT_FILE).display()
            );
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn serve_args(extra: &[&str]) -> ServeArgs {
        let base = [
            "longtail",
            "serve",
            "--classifier",
            "c",
            "--interest",
            "i",
            "--data",
            "d",
        ];
        match crate::cli::Cli::try_parse_from(base.iter().chain(extra))
            .unwrap()
            .command
        {
            crate::cli::Command::Serve(a) => a,
            _ => unreachable!(),
        }
    }

    #[test]
    fn the_batch_token_budget_follows_the_precision_unless_set() {
        assert_eq!(limits_of(&serve_args(&[])).max_batch_tokens, 8192);
        let int8 = serve_args(&["--precision", "int8"]);
        assert_eq!(limits_of(&int8).max_batch_tokens, 4096);
        let set = serve_args(&["--precision", "int8", "--max-batch-tokens", "1000"]);
        assert_eq!(limits_of(&set).max_batch_tokens, 1000);
    }
}
