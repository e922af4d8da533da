//! Raw command-line arguments. Every flag can also be set through a `LONGTAIL_*` environment
//! variable, and (for commands with `--config`) through a TOML config file; see `config.rs`.

use clap::{Args, Parser, Subcommand};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "longtail",
    version,
    about = "Find and recommend long-tail products with a pretrained text encoder",
    long_about = "longtail reads product text (title, brand, categories, description) with a \
pretrained BERT-family encoder, so an item with three sales is as understandable as one with \
three thousand.\n\nTypical flow:\n  longtail model fetch sentence-transformers/all-MiniLM-L6-v2\n  \
longtail prepare --items items.jsonl --interactions interactions.csv --out runs/office",
    after_help = "Every flag can also be given as an environment variable LONGTAIL_<FLAG> \
(e.g. LONGTAIL_TAIL_RULE=quantile:0.2). Commands with --config read defaults from the \
[<command>] table of a TOML file; the command line wins over the file."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Ingest a catalogue and an interaction log: validate, clean, label head/tail, split.
    ///
    /// Writes to --out: items.jsonl (item_id, text, fields, n_interactions, first_seen, label,
    /// split), interactions.csv (the kept rows), stats.json, popularity.png, rejects.jsonl
    /// (every rejected row with file, line and reason) and prepare.json (how it was made).
    Prepare(PrepareArgs),
    /// Obtain pretrained encoders from the Hugging Face hub.
    #[command(subcommand)]
    Model(ModelCommand),
}

#[derive(Args, Debug, Serialize, Deserialize)]
pub struct PrepareArgs {
    /// Catalogue: JSONL, CSV or Parquet, optionally gzip-compressed (.jsonl.gz, .csv.gz).
    #[arg(long, env = "LONGTAIL_ITEMS")]
    pub items: Option<PathBuf>,

    /// Interaction log: CSV, JSONL or Parquet (user, item, timestamp[, rating]), optionally gzipped.
    #[arg(long, env = "LONGTAIL_INTERACTIONS")]
    pub interactions: Option<PathBuf>,

    /// Output directory (created if missing).
    #[arg(long, env = "LONGTAIL_OUT")]
    pub out: Option<PathBuf>,

    /// TOML file whose [prepare] table supplies defaults for any flag below.
    #[arg(long, env = "LONGTAIL_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// Field of a catalogue row holding the item id.
    #[arg(long, env = "LONGTAIL_ITEM_ID_FIELD", default_value = "item_id")]
    pub item_id_field: String,

    /// Text fields of a catalogue row, in rendering order; any present subset works.
    #[arg(
        long,
        env = "LONGTAIL_TEXT_FIELDS",
        value_delimiter = ',',
        default_value = "title,brand,categories,description"
    )]
    pub text_fields: Vec<String>,

    /// Interaction column holding the user id.
    #[arg(long, env = "LONGTAIL_USER_COL", default_value = "user_id")]
    pub user_col: String,

    /// Interaction column holding the item id.
    #[arg(long, env = "LONGTAIL_ITEM_COL", default_value = "item_id")]
    pub item_col: String,

    /// Interaction column holding the unix timestamp (seconds).
    #[arg(long, env = "LONGTAIL_TIMESTAMP_COL", default_value = "timestamp")]
    pub timestamp_col: String,

    /// How items are labelled head or tail from their interaction counts:
    /// `pareto:S` (head = most popular items covering a share S of interactions, ties by item id),
    /// `quantile:Q` (head = top Q of items by count), `min-count:N` (tail = fewer than N).
    #[arg(long, env = "LONGTAIL_TAIL_RULE", default_value = "pareto:0.8")]
    pub tail_rule: String,

    /// 2 for head/tail, 3 for head/torso/tail.
    #[arg(long, env = "LONGTAIL_TIERS", default_value_t = 2, value_parser = clap::value_parser!(u8).range(2..=3))]
    pub tiers: u8,

    /// `random:TRAIN,VALIDATION,TEST` (stratified by label, seeded) or `time:DATE`
    /// (items first seen after DATE, YYYY-MM-DD or unix seconds, form the cold-start test set).
    #[arg(long, env = "LONGTAIL_SPLIT", default_value = "random:0.7,0.1,0.2")]
    pub split: String,

    /// Seed for the random split.
    #[arg(long, env = "LONGTAIL_SEED", default_value_t = 0)]
    pub seed: u64,

    /// Lines longer than this many bytes are rejected without being loaded.
    #[arg(long, env = "LONGTAIL_MAX_LINE_BYTES", default_value_t = 1 << 20)]
    pub max_line_bytes: usize,
}

#[derive(Subcommand, Debug)]
pub enum ModelCommand {
    /// Download a model (config.json, model.safetensors, tokenizer.json) through the Hugging Face
    /// hub into the usual cache (HF_HOME), and optionally copy it into a directory.
    Fetch(FetchArgs),
}

#[derive(Args, Debug)]
pub struct FetchArgs {
    /// Hub repository id, e.g. sentence-transformers/all-MiniLM-L6-v2.
    pub repo_id: String,

    /// Git revision (branch, tag or commit) on the hub.
    #[arg(long, env = "LONGTAIL_REVISION", default_value = "main")]
    pub revision: String,

    /// Also copy the files into this directory (a local model directory for --model).
    #[arg(long, env = "LONGTAIL_MODEL_DIR")]
    pub to: Option<PathBuf>,
}
