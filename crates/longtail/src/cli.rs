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
    /// Fine-tune a BERT-family encoder to tell tail items from head items.
    ///
    /// Writes to --out: checkpoint-N/ directories (model.safetensors with HF names, config.json
    /// with id2label, tokenizer.json, optimizer state, trainer_state.json, train_args.toml),
    /// metrics.jsonl (one line per logging step and evaluation), train_args.toml, and the best
    /// model (by --metric-for-best-model on validation) copied to the top of --out.
    Train(TrainArgs),
    /// Score validation and test with a checkpoint; metrics, baselines, report and plots.
    ///
    /// The decision threshold is chosen on validation (max macro-F1). Writes FILE.json,
    /// FILE.md, and ROC / training-curve PNGs beside --report, and prints the Markdown table.
    Eval(EvalArgs),
    /// Top-K recommendation evaluation, leave-last-out, with a head/tail breakdown.
    ///
    /// Ranks every catalogue item for each user's last (test) and second-last (validation)
    /// interaction, seen items excluded. Baselines: most popular, item-kNN (cosine), EASE
    /// (lambda chosen on validation). Writes FILE.json, FILE.md, FILE_head_tail.png and
    /// FILE_tradeoff.png (re-ranking knob vs NDCG@10 on the best baseline).
    EvalRec(EvalRecArgs),
    /// Batch-score a catalogue dump: p_tail and label per row, in input order, resumable and
    /// shardable (see docs/score.md).
    Score(crate::commands::score::ScoreArgs),
    /// Obtain pretrained encoders from the Hugging Face hub.
    #[command(subcommand)]
    Model(ModelCommand),
    /// Train the user-interest bi-encoder (InfoNCE with in-batch negatives and logQ
    /// correction) on next-item pairs; writes an interest checkpoint (model.safetensors,
    /// config.json, tokenizer.json, interest.json, optimizer and trainer state, item
    /// embeddings).
    TrainInterest(crate::commands::train_interest::TrainInterestArgs),
    /// Top-K recommendations per user from an interest checkpoint, with head/tail re-ranking,
    /// calibrated P(interest), an explanation per item and pseudonymised user ids.
    Recommend(crate::commands::recommend::RecommendArgs),
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

#[derive(Args, Debug, Serialize, Deserialize)]
pub struct TrainArgs {
    /// Prepared dataset directory (the --out of `longtail prepare`).
    #[arg(long, env = "LONGTAIL_DATA")]
    pub data: Option<PathBuf>,

    /// Base model: a local directory (config.json, model.safetensors, tokenizer.json) or a hub id.
    #[arg(long, env = "LONGTAIL_MODEL")]
    pub model: Option<String>,

    /// Output directory for checkpoints and the final model.
    #[arg(long, env = "LONGTAIL_OUT")]
    pub out: Option<PathBuf>,

    /// TOML file whose [train] table supplies defaults for any flag below (see configs/train.toml).
    #[arg(long, env = "LONGTAIL_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// Peak learning rate of AdamW.
    #[arg(long, env = "LONGTAIL_LEARNING_RATE", default_value_t = 5e-5)]
    pub learning_rate: f64,

    /// Decoupled weight decay (not applied to biases and LayerNorm weights).
    #[arg(long, env = "LONGTAIL_WEIGHT_DECAY", default_value_t = 0.01)]
    pub weight_decay: f64,

    /// Share of the total updates spent warming the learning rate up from 0.
    #[arg(long, env = "LONGTAIL_WARMUP_RATIO", default_value_t = 0.1)]
    pub warmup_ratio: f64,

    /// linear, cosine or constant_with_warmup.
    #[arg(long, env = "LONGTAIL_LR_SCHEDULER_TYPE", default_value = "linear")]
    pub lr_scheduler_type: String,

    /// Clip the global gradient L2 norm to this value.
    #[arg(long, env = "LONGTAIL_MAX_GRAD_NORM", default_value_t = 1.0)]
    pub max_grad_norm: f64,

    /// Micro-batches per optimizer update.
    #[arg(
        long,
        env = "LONGTAIL_GRADIENT_ACCUMULATION_STEPS",
        default_value_t = 1
    )]
    pub gradient_accumulation_steps: usize,

    /// Items per micro-batch.
    #[arg(
        long,
        env = "LONGTAIL_PER_DEVICE_TRAIN_BATCH_SIZE",
        default_value_t = 16
    )]
    pub per_device_train_batch_size: usize,

    /// Items per batch when scoring validation.
    #[arg(
        long,
        env = "LONGTAIL_PER_DEVICE_EVAL_BATCH_SIZE",
        default_value_t = 64
    )]
    pub per_device_eval_batch_size: usize,

    /// Passes over the train split.
    #[arg(long, env = "LONGTAIL_NUM_TRAIN_EPOCHS", default_value_t = 2)]
    pub num_train_epochs: u64,

    /// If > 0: total optimizer updates, overriding --num-train-epochs.
    #[arg(long, env = "LONGTAIL_MAX_STEPS", default_value_t = -1, allow_negative_numbers = true)]
    pub max_steps: i64,

    /// When to evaluate on validation (and save a checkpoint): epoch, steps or no.
    #[arg(long, env = "LONGTAIL_EVAL_STRATEGY", default_value = "epoch")]
    pub eval_strategy: String,

    /// Updates between evaluations with --eval-strategy steps.
    #[arg(long, env = "LONGTAIL_EVAL_STEPS", default_value_t = 100)]
    pub eval_steps: u64,

    /// Updates between metrics.jsonl lines.
    #[arg(long, env = "LONGTAIL_LOGGING_STEPS", default_value_t = 10)]
    pub logging_steps: u64,

    /// Keep at most this many checkpoints (plus the best); 0 keeps all.
    #[arg(long, env = "LONGTAIL_SAVE_TOTAL_LIMIT", default_value_t = 2)]
    pub save_total_limit: usize,

    /// Stop after this many evaluations without improvement; 0 disables early stopping.
    #[arg(long, env = "LONGTAIL_EARLY_STOPPING_PATIENCE", default_value_t = 0)]
    pub early_stopping_patience: u32,

    /// Validation metric choosing the best checkpoint: auc (roc_auc) or loss.
    #[arg(long, env = "LONGTAIL_METRIC_FOR_BEST_MODEL", default_value = "auc")]
    pub metric_for_best_model: String,

    /// Seed of the classifier initialisation, data order and dropout.
    #[arg(long, env = "LONGTAIL_SEED", default_value_t = 42)]
    pub seed: u64,

    /// Maximum tokens per item (fields cut description first, title last).
    #[arg(long, env = "LONGTAIL_MAX_LEN", default_value_t = 128)]
    pub max_len: usize,

    /// Sentence representation fed to the classifier: cls_pooler, cls or mean.
    #[arg(long, env = "LONGTAIL_POOLING", default_value = "mean")]
    pub pooling: String,

    /// none, or auto (inverse class frequency on the train split).
    #[arg(long, env = "LONGTAIL_CLASS_WEIGHTS", default_value = "none")]
    pub class_weights: String,

    /// Label smoothing of the cross-entropy, in [0, 1).
    #[arg(long, env = "LONGTAIL_LABEL_SMOOTHING", default_value_t = 0.0)]
    pub label_smoothing: f64,

    /// Freeze the embeddings and the lowest N encoder layers.
    #[arg(long, env = "LONGTAIL_FREEZE_LAYERS", default_value_t = 0)]
    pub freeze_layers: usize,

    /// Train only the classification head (and pooler).
    #[arg(long, env = "LONGTAIL_FREEZE_ENCODER", default_value_t = false)]
    pub freeze_encoder: bool,

    /// Continue from the last checkpoint in --out (same arguments as the interrupted run).
    #[arg(long, env = "LONGTAIL_RESUME", default_value_t = false)]
    pub resume: bool,

    /// Field template rendering an item.
    #[arg(
        long,
        env = "LONGTAIL_TEMPLATE",
        default_value = "{title} | {brand} | {categories} | {description}"
    )]
    pub template: String,

    /// Testing aid: stop as if interrupted after N updates of this invocation (0 = never).
    #[arg(
        long,
        env = "LONGTAIL_STOP_AFTER_STEPS",
        default_value_t = 0,
        hide = true
    )]
    pub stop_after_steps: u64,
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Prepared dataset directory.
    #[arg(long, env = "LONGTAIL_DATA")]
    pub data: PathBuf,

    /// Checkpoint directory (the --out of `longtail train`, or one of its checkpoint-N).
    #[arg(long, env = "LONGTAIL_CHECKPOINT")]
    pub checkpoint: PathBuf,

    /// Split the metrics are reported on (the threshold is always chosen on validation).
    #[arg(long, env = "LONGTAIL_SPLIT", default_value = "test")]
    pub split: String,

    /// Report path (FILE.json); FILE.md, FILE.roc.png and training curves go beside it.
    #[arg(long, env = "LONGTAIL_REPORT")]
    pub report: PathBuf,

    /// Items per scoring batch.
    #[arg(long, env = "LONGTAIL_BATCH_SIZE", default_value_t = 64)]
    pub batch_size: usize,

    /// Maximum tokens per item (default: the checkpoint's train_args.toml, else 128).
    #[arg(long, env = "LONGTAIL_MAX_LEN")]
    pub max_len: Option<usize>,

    /// Skip the TF-IDF and majority baselines.
    #[arg(long, env = "LONGTAIL_NO_BASELINES", default_value_t = false)]
    pub no_baselines: bool,
}

#[derive(Args, Debug)]
pub struct EvalRecArgs {
    /// Prepared dataset directory (items.jsonl, interactions.csv, stats.json).
    #[arg(long, env = "LONGTAIL_DATA")]
    pub data: PathBuf,

    /// Report path (FILE.json); FILE.md and the PNGs go beside it.
    #[arg(long, env = "LONGTAIL_REPORT")]
    pub report: PathBuf,

    /// Interest-model checkpoint to evaluate next to the baselines (needs longtail-interest).
    #[arg(long, env = "LONGTAIL_CHECKPOINT")]
    pub checkpoint: Option<PathBuf>,

    /// Head/tail rule applied to training interaction counts (pareto:S, quantile:Q, min-count:N).
    #[arg(long, env = "LONGTAIL_TAIL_RULE", default_value = "pareto:0.8")]
    pub tail_rule: String,

    /// Share of evaluated users, shortest training histories first, counted as tail users.
    #[arg(long, env = "LONGTAIL_TAIL_USER_FRACTION", default_value_t = 0.2)]
    pub tail_user_fraction: f64,

    /// EASE lambda grid searched on validation.
    #[arg(
        long,
        env = "LONGTAIL_EASE_LAMBDAS",
        value_delimiter = ',',
        default_value = "10,50,100,200,500,1000,2000,5000"
    )]
    pub ease_lambdas: Vec<f64>,
}
