//! `longtail prepare`: raw arguments -> validated `PrepareOptions` -> the data crate.

use crate::progress::ProgressDisplay;
use anyhow::Result;
use longtail_data::{prepare, PrepareOptions, PrepareSummary};
use std::cell::RefCell;
use std::path::Path;

pub fn run(args: PrepareArgs) -> Result<()> {
    let opts = options(args);
    let display = RefCell::new(ProgressDisplay::new("prepare", "rows"));
    let summary =
        prepare(&opts, &|e| display.borrow_mut().on_event(e)).map_err(anyhow::Error::from)?;
    display.borrow_mut().finish();
    print_summary(&summary, &opts.out_dir);
    Ok(())
}

/// Prepare's typed arguments as the data crate's options.
fn options(args: PrepareArgs) -> PrepareOptions {
    let mut opts = PrepareOptions::new(args.items, args.interactions, args.out);
    opts.item_id_field = args.item_id_field;
    opts.text_fields = args.text_fields;
    opts.user_column = args.user_col;
    opts.item_column = args.item_col;
    opts.timestamp_column = args.timestamp_col;
    opts.tail_rule = args.tail_rule;
    opts.tiers = args.tiers;
    opts.split = args.split;
    opts.seed = args.seed;
    opts.max_line_bytes = args.max_line_bytes;
    opts.invocation = std::env::args().collect();
    opts
}

fn print_summary(s: &PrepareSummary, out: &Path) {
    for f in &s.files {
        println!(
            "{:<13} {}: read {} = kept {} + rejected {}",
            f.role, f.path, f.read, f.kept, f.rejected
        );
    }
    println!(
        "items {} ({} with interactions, {} with empty text), users {}, interactions {}",
        s.n_items, s.n_items_with_interactions, s.empty_text, s.n_users, s.n_interactions
    );
    println!("labels ({}):", s.tail_rule.description);
    for (label, st) in &s.labels {
        println!(
            "  {label:<6} {:>7} items ({:>5.1}%) {:>5.1}% of interactions",
            st.items,
            100.0 * st.item_share,
            100.0 * st.interaction_share
        );
    }
    println!("gini of item popularity: {:.3}", s.gini);
    for (split, by_label) in &s.splits {
        let parts: Vec<String> = by_label.iter().map(|(l, n)| format!("{l} {n}")).collect();
        println!("  {split:<10} {}", parts.join(", "));
    }
    println!("wrote {}", out.display());
}

// The command's arguments (raw flags -> typed values; defaults from the library).
use clap::Args;
use longtail_data::{SplitSpec, TailRule};
use std::path::PathBuf;

use crate::shared_args::defaults;

#[derive(Args, Debug)]
pub struct PrepareArgs {
    /// Catalogue: JSONL, CSV or Parquet, optionally gzip-compressed (.jsonl.gz, .csv.gz).
    #[arg(long)]
    pub items: PathBuf,

    /// Interaction log: CSV, JSONL or Parquet (user, item, timestamp[, rating]), optionally gzipped.
    #[arg(long)]
    pub interactions: PathBuf,

    /// Output directory (created if missing).
    #[arg(long)]
    pub out: PathBuf,

    /// TOML file whose [prepare] table supplies defaults for any flag (see datasets/*.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,

    /// Field of a catalogue row holding the item id.
    #[arg(long, default_value_t = defaults::prepare().item_id_field)]
    pub item_id_field: String,

    /// Text fields of a catalogue row, in rendering order; any present subset works.
    #[arg(long, value_delimiter = ',', default_values_t = defaults::prepare().text_fields)]
    pub text_fields: Vec<String>,

    /// Interaction column holding the user id.
    #[arg(long, default_value_t = defaults::prepare().user_column)]
    pub user_col: String,

    /// Interaction column holding the item id.
    #[arg(long, default_value_t = defaults::prepare().item_column)]
    pub item_col: String,

    /// Interaction column holding the unix timestamp (seconds).
    #[arg(long, default_value_t = defaults::prepare().timestamp_column)]
    pub timestamp_col: String,

    /// How items are labelled head or tail from their interaction counts:
    /// `pareto:S` (head = most popular items covering a share S of interactions, ties by item id),
    /// `quantile:Q` (head = top Q of items by count), `min-count:N` (tail = fewer than N).
    /// With --tiers 3: `pareto:S,H`, `quantile:Q,H`, `min-count:N,M`.
    #[arg(long, default_value_t = defaults::prepare().tail_rule)]
    pub tail_rule: TailRule,

    /// 2 for head/tail, 3 for head/torso/tail.
    #[arg(long, default_value_t = defaults::prepare().tiers, value_parser = clap::value_parser!(u8).range(2..=3))]
    pub tiers: u8,

    /// `random:TRAIN,VALIDATION,TEST` (stratified by label, seeded) or `time:DATE[,VAL]`
    /// (items first seen after DATE, YYYY-MM-DD or unix seconds, form the cold-start test set).
    #[arg(long, default_value_t = defaults::prepare().split)]
    pub split: SplitSpec,

    /// Seed for the random split.
    #[arg(long, default_value_t = defaults::prepare().seed)]
    pub seed: u64,

    /// Lines longer than this many bytes are rejected without being loaded.
    #[arg(long, default_value_t = defaults::prepare().max_line_bytes)]
    pub max_line_bytes: usize,
}
