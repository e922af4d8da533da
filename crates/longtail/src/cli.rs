//! The command-line interface: every command's flags, their types, defaults and environment
//! variables. Raw arguments become typed values here (clap `ValueEnum`s and parsed types), so a
//! command module receives validated settings.
//!
//! Defaults have one source: where a library has an options struct, the flag's default is read
//! from that struct's `Default`, so `--help`, the code and the library agree by construction.
//! Environment variables follow one rule, applied in [`command`]: `LONGTAIL_<COMMAND>_<FLAG>`
//! (`longtail train --seed` is `LONGTAIL_TRAIN_SEED`, `longtail train-interest --max-steps` is
//! `LONGTAIL_TRAIN_INTEREST_MAX_STEPS`), so no variable means two things in two commands.

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use longtail_classify::TrainConfig;
use longtail_data::{PrepareOptions, SplitSpec, TailRule};
use longtail_model::{DeviceSpec, Pooling, Precision};
use longtail_train::SchedulerType;
use std::path::PathBuf;

/// The whole interface, with every argument's environment variable named by [`env_var_name`].
pub fn command() -> clap::Command {
    with_env_vars(Cli::command(), &[])
}

/// `LONGTAIL_<COMMAND>_<FLAG>`: the command path and the flag, upper-case, `-` as `_`.
pub fn env_var_name(path: &[String], arg_id: &str) -> String {
    let mut name = String::from("LONGTAIL");
    for part in path.iter().map(String::as_str).chain([arg_id]) {
        name.push('_');
        name.push_str(&part.to_ascii_uppercase().replace('-', "_"));
    }
    name
}

fn with_env_vars(cmd: clap::Command, path: &[String]) -> clap::Command {
    let mut cmd = if path.is_empty() {
        cmd
    } else {
        cmd.mut_args(|a| {
            let id = a.get_id().as_str();
            let name = env_var_name(path, id);
            let global = id == "device"
                && std::env::var_os(&name).is_none()
                && std::env::var_os(DEVICE_ENV).is_some();
            a.env(if global { DEVICE_ENV.to_string() } else { name })
        })
    };
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    for name in names {
        let sub_path: Vec<String> = path.iter().cloned().chain([name.clone()]).collect();
        cmd = cmd.mut_subcommand(name, |sub| with_env_vars(sub, &sub_path));
    }
    cmd
}

/// The library defaults the flags show and use.
pub(crate) mod defaults {
    use super::*;

    pub fn prepare() -> PrepareOptions {
        PrepareOptions::new("", "", "")
    }

    pub fn train() -> TrainConfig {
        TrainConfig::default()
    }

    pub fn train_interest() -> longtail_interest::TrainInterestConfig {
        longtail_interest::TrainInterestConfig::default()
    }

    pub fn eval_rec() -> longtail_eval::rec::RecOptions {
        longtail_eval::rec::RecOptions::default()
    }

    pub fn stream() -> longtail_infer::StreamOptions {
        longtail_infer::StreamOptions::new("", "")
    }

    /// A library default held as a string (e.g. `TrainConfig::pooling`), as the flag's type.
    pub fn value<T: ValueEnum>(name: &str) -> T {
        T::from_str(name, false)
            .unwrap_or_else(|e| panic!("library default {name:?} is not a valid value: {e}"))
    }
}

/// The name a `ValueEnum` value has on the command line (and in library configs that still
/// take strings).
pub fn value_name<T: ValueEnum>(v: &T) -> String {
    v.to_possible_value()
        .expect("no skipped variants")
        .get_name()
        .to_string()
}

#[derive(Parser, Debug)]
#[command(
    name = "longtail",
    version,
    about = "Find and recommend long-tail products with a pretrained text encoder",
    long_about = "longtail reads product text (title, brand, categories, description) with a \
pretrained BERT-family encoder, so an item with three sales is as understandable as one with \
three thousand.\n\nTypical flow:\n  longtail model fetch sentence-transformers/all-MiniLM-L6-v2\n  \
longtail prepare --items items.jsonl --interactions interactions.csv --out runs/office",
    after_help = "Every flag can also be given as an environment variable \
LONGTAIL_<COMMAND>_<FLAG> (e.g. LONGTAIL_PREPARE_TAIL_RULE=quantile:0.2), shown in each \
command's --help. Every command takes --config FILE: the [<command>] table of a TOML file whose \
keys are the flag names in snake_case. Precedence: command line, environment, config file, \
built-in default."
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
    /// Train the user-interest model on next-item prediction: by default a causal transformer
    /// over item vectors made from frozen text embeddings (+ ID embeddings for frequent items),
    /// full-catalogue softmax, early-stopped on validation NDCG@10 (see docs/interest.md).
    /// Writes an interest checkpoint (interest.json, sequence.safetensors, the text encoder,
    /// its item embeddings, optimizer and trainer state).
    TrainInterest(crate::commands::train_interest::TrainInterestArgs),
    /// Top-K recommendations per user from an interest checkpoint, with head/tail re-ranking,
    /// calibrated P(interest), an explanation per item and pseudonymised user ids.
    Recommend(crate::commands::recommend::RecommendArgs),
    /// Choose the served recommender on your own validation split: fits the candidates
    /// (interest checkpoints, their frozen text, EASE, item-kNN, most popular) on training
    /// interactions, searches the weights of their z-scored blend on validation NDCG@10, picks
    /// the tail weight by --relevance-budget, and writes plan.json with the fitted artefacts.
    /// `recommend`, `serve` and `eval-rec` take the directory as --plan.
    Plan(crate::commands::plan::PlanArgs),
    /// Serve p_tail scoring, recommendations and feedback events over HTTP (see docs/serve.md):
    /// one model thread behind a batching queue, a durable event store (SQLite, or PostgreSQL
    /// for replicas) whose clicks and dismissals change the next list, hot reload, Prometheus
    /// metrics at /metrics, the API at /openapi.json.
    Serve(crate::commands::serve::ServeArgs),
    /// The event store: export it for re-training.
    #[command(subcommand)]
    Events(crate::commands::serve::EventsCommand),
}

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

    /// TOML file whose [model.fetch] table supplies defaults.
    #[arg(long)]
    pub config: Option<PathBuf>,

    /// Git revision (branch, tag or commit) on the hub.
    #[arg(long, default_value = "main")]
    pub revision: String,

    /// Also copy the files into this directory (a local model directory for --model).
    #[arg(long)]
    pub to: Option<PathBuf>,
}

/// When `train` evaluates on validation (and saves a checkpoint), as in `transformers`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
#[value(rename_all = "snake_case")]
pub enum EvalStrategy {
    /// After every epoch.
    Epoch,
    /// Every --eval-steps updates.
    Steps,
    /// Never (the last checkpoint is the model).
    No,
}

/// The validation metric that picks the best checkpoint.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
#[value(rename_all = "snake_case")]
pub enum MetricForBestModel {
    /// ROC-AUC of p_tail (higher is better).
    #[value(alias = "roc_auc")]
    Auc,
    /// Validation cross-entropy (lower is better).
    Loss,
}

/// Per-class weights of the cross-entropy.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
#[value(rename_all = "snake_case")]
pub enum ClassWeights {
    /// Every class weighs 1.
    None,
    /// Inverse class frequency on the train split.
    Auto,
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Prepared dataset directory (the --out of `longtail prepare`).
    #[arg(long)]
    pub data: PathBuf,

    /// Base model: a local directory (config.json, model.safetensors, tokenizer.json) or a hub id.
    #[arg(long)]
    pub model: String,

    /// Output directory for checkpoints and the final model.
    #[arg(long)]
    pub out: PathBuf,

    /// TOML file whose [train] table supplies defaults for any flag (see configs/train.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,

    /// Peak learning rate of AdamW.
    #[arg(long, default_value_t = defaults::train().learning_rate)]
    pub learning_rate: f64,

    /// Decoupled weight decay (not applied to biases and LayerNorm weights).
    #[arg(long, default_value_t = defaults::train().weight_decay)]
    pub weight_decay: f64,

    /// Share of the total updates spent warming the learning rate up from 0.
    #[arg(long, default_value_t = defaults::train().warmup_ratio)]
    pub warmup_ratio: f64,

    /// Learning-rate schedule after warmup.
    #[arg(long, value_enum, default_value_t = defaults::value(&defaults::train().lr_scheduler_type))]
    pub lr_scheduler_type: SchedulerType,

    /// Clip the global gradient L2 norm to this value.
    #[arg(long, default_value_t = defaults::train().max_grad_norm)]
    pub max_grad_norm: f64,

    /// Micro-batches per optimizer update.
    #[arg(long, default_value_t = defaults::train().gradient_accumulation_steps)]
    pub gradient_accumulation_steps: usize,

    /// Items per micro-batch.
    #[arg(long, default_value_t = defaults::train().per_device_train_batch_size)]
    pub per_device_train_batch_size: usize,

    /// Items per batch when scoring validation.
    #[arg(long, default_value_t = defaults::train().per_device_eval_batch_size)]
    pub per_device_eval_batch_size: usize,

    /// Passes over the train split.
    #[arg(long, default_value_t = defaults::train().num_train_epochs)]
    pub num_train_epochs: u64,

    /// If > 0: total optimizer updates, overriding --num-train-epochs.
    #[arg(long, default_value_t = defaults::train().max_steps, allow_negative_numbers = true)]
    pub max_steps: i64,

    /// When to evaluate on validation (and save a checkpoint).
    #[arg(long, value_enum, default_value_t = defaults::value(&defaults::train().eval_strategy))]
    pub eval_strategy: EvalStrategy,

    /// Updates between evaluations with --eval-strategy steps.
    #[arg(long, default_value_t = defaults::train().eval_steps)]
    pub eval_steps: u64,

    /// Updates between metrics.jsonl lines.
    #[arg(long, default_value_t = defaults::train().logging_steps)]
    pub logging_steps: u64,

    /// Keep at most this many checkpoints (plus the best); 0 keeps all.
    #[arg(long, default_value_t = defaults::train().save_total_limit)]
    pub save_total_limit: usize,

    /// Stop after this many evaluations without improvement; 0 disables early stopping.
    #[arg(long, default_value_t = defaults::train().early_stopping_patience)]
    pub early_stopping_patience: u32,

    /// Validation metric choosing the best checkpoint.
    #[arg(long, value_enum, default_value_t = defaults::value(&defaults::train().metric_for_best_model))]
    pub metric_for_best_model: MetricForBestModel,

    /// Seed of the classifier initialisation, data order and dropout.
    #[arg(long, default_value_t = defaults::train().seed)]
    pub seed: u64,

    /// Maximum tokens per item (fields cut description first, title last).
    #[arg(long, default_value_t = defaults::train().max_len)]
    pub max_len: usize,

    /// Sentence representation fed to the classifier. cls_pooler is the head of transformers'
    /// BertForSequenceClassification, so only it gives the same logits there.
    #[arg(long, value_enum, default_value_t = defaults::value(&defaults::train().pooling))]
    pub pooling: Pooling,

    /// Class weights of the cross-entropy.
    #[arg(long, value_enum, default_value_t = defaults::value(&defaults::train().class_weights))]
    pub class_weights: ClassWeights,

    /// Label smoothing of the cross-entropy, in [0, 1).
    #[arg(long, default_value_t = defaults::train().label_smoothing)]
    pub label_smoothing: f64,

    /// Freeze the embeddings and the lowest N encoder layers.
    #[arg(long, default_value_t = defaults::train().freeze_layers)]
    pub freeze_layers: usize,

    /// Train only the classification head (and pooler).
    #[arg(long, default_value_t = defaults::train().freeze_encoder)]
    pub freeze_encoder: bool,

    /// Continue from the last checkpoint in --out (same arguments as the interrupted run).
    #[arg(long, default_value_t = false)]
    pub resume: bool,

    /// Field template rendering an item.
    #[arg(long, default_value_t = defaults::train().template)]
    pub template: String,

    /// Testing aid: stop as if interrupted after N updates of this invocation (0 = never).
    #[arg(long, default_value_t = 0, hide = true)]
    pub stop_after_steps: u64,

    /// fp32 (default) or bf16: mixed precision for a GPU, the encoder's matmuls on bf16 copies
    /// (f32 accumulation) while weights and AdamW moments stay f32. Slower on a CPU.
    #[arg(long, value_enum, default_value_t = Precision::Fp32)]
    pub precision: Precision,

    /// Print where an update's time goes (forward, backward, clip, AdamW per update), with the
    /// device synchronised after each phase; a little slower, for profiling a GPU run.
    #[arg(long, default_value_t = false)]
    pub phase_times: bool,

    #[command(flatten)]
    pub device: DeviceArg,
}

/// The split `eval` reports on.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
#[value(rename_all = "snake_case")]
pub enum EvalSplit {
    Validation,
    Test,
}

impl From<EvalSplit> for longtail_data::Split {
    fn from(s: EvalSplit) -> Self {
        match s {
            EvalSplit::Validation => longtail_data::Split::Validation,
            EvalSplit::Test => longtail_data::Split::Test,
        }
    }
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Prepared dataset directory.
    #[arg(long)]
    pub data: PathBuf,

    /// Checkpoint directory (the --out of `longtail train`, or one of its checkpoint-N).
    #[arg(long)]
    pub checkpoint: PathBuf,

    /// TOML file whose [eval] table supplies defaults for any flag.
    #[arg(long)]
    pub config: Option<PathBuf>,

    /// Split the metrics are reported on (the threshold is always chosen on validation).
    #[arg(long, value_enum, default_value_t = EvalSplit::Test)]
    pub split: EvalSplit,

    /// Report path (FILE.json); FILE.md, FILE.roc.png and training curves go beside it.
    #[arg(long)]
    pub report: PathBuf,

    /// Items per scoring batch.
    #[arg(long, default_value_t = defaults::train().per_device_eval_batch_size)]
    pub batch_size: usize,

    /// Maximum tokens per item (default: the checkpoint's train_args.toml, else 128).
    #[arg(long)]
    pub max_len: Option<usize>,

    /// Skip the TF-IDF and majority baselines.
    #[arg(long, default_value_t = false)]
    pub no_baselines: bool,

    /// Score with this precision (fp32, int8 on the CPU, bf16 for a GPU). With int8 or bf16
    /// the f32 model runs too: the report gets an `fp32` row, and REPORT.precision.json the
    /// ROC-AUC of both and max / mean |p_tail difference| on validation and the reported split.
    #[arg(long, value_enum, default_value_t = Precision::Fp32)]
    pub precision: Precision,

    #[command(flatten)]
    pub device: DeviceArg,
}

/// `NAME=DIR`: a checkpoint and the row name it gets in a report.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedCheckpoint {
    pub name: String,
    pub dir: PathBuf,
}

impl std::str::FromStr for NamedCheckpoint {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once('=') {
            Some((name, dir)) if !name.trim().is_empty() && !dir.is_empty() => Ok(Self {
                name: name.trim().to_string(),
                dir: PathBuf::from(dir),
            }),
            _ => Err(format!("expected NAME=DIR, got {s:?}")),
        }
    }
}

#[derive(Args, Debug)]
pub struct EvalRecArgs {
    /// Prepared dataset directory (items.jsonl, interactions.csv, stats.json).
    #[arg(long)]
    pub data: PathBuf,

    /// Report path (FILE.json); FILE.md and the PNGs go beside it.
    #[arg(long)]
    pub report: PathBuf,

    /// TOML file whose [eval-rec] table supplies defaults for any flag.
    #[arg(long)]
    pub config: Option<PathBuf>,

    /// Interest checkpoint to evaluate next to the baselines (row `longtail`). A sequence
    /// checkpoint also adds the frozen-text rows of its text embeddings: `text-last-item` (the
    /// user is their last item's text embedding) and its EASE blend.
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,

    /// More interest checkpoints as plain rows, `NAME=DIR` (repeatable), e.g.
    /// `--compare sasrec=runs/sasrec` for `train-interest --item-features id`.
    #[arg(long, value_name = "NAME=DIR")]
    pub compare: Vec<NamedCheckpoint>,

    /// A served plan (the --out of `longtail plan`): adds the row `served`, ranked through the
    /// same code as `recommend --plan` and `serve --plan` (blend, knob, exclusions), and the
    /// plan's components and validation numbers to the report.
    #[arg(long)]
    pub plan: Option<PathBuf>,

    /// More served plans as rows, `NAME=DIR` (repeatable), each ranked as `serve --plan DIR`
    /// ranks, e.g. `--compare-plan serving=runs/office-plan` for the plan in service.
    #[arg(long, value_name = "NAME=DIR")]
    pub compare_plan: Vec<NamedCheckpoint>,

    /// Promotion gate: exit with status 3 unless the candidate (`served` with --plan, else
    /// --checkpoint's `longtail`) keeps validation NDCG@10 and tail-item Recall@10 within
    /// --gate-tolerance standard errors of the row NAME (a --compare or --compare-plan row: the
    /// model in service). The re-training cycle (docs/serve.md) reloads only what passes.
    #[arg(long, value_name = "NAME")]
    pub gate: Option<String>,

    /// How far below the incumbent the gate lets each validation metric fall, in standard
    /// errors of the incumbent's value (sqrt(m (1 - m) / users)); 0 = no drop at all.
    #[arg(long, default_value_t = 1.0)]
    pub gate_tolerance: f64,

    /// Head/tail rule applied to training interaction counts (pareto:S, quantile:Q, min-count:N).
    #[arg(long, default_value_t = defaults::eval_rec().tail_rule)]
    pub tail_rule: TailRule,

    /// Share of evaluated users, shortest training histories first, counted as tail users.
    #[arg(long, default_value_t = defaults::eval_rec().tail_user_fraction)]
    pub tail_user_fraction: f64,

    /// EASE lambda grid searched on validation.
    #[arg(long, value_delimiter = ',', default_values_t = defaults::eval_rec().lambda_grid)]
    pub ease_lambdas: Vec<f64>,

    #[command(flatten)]
    pub device: DeviceArg,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn all_commands(
        cmd: &clap::Command,
        path: Vec<String>,
        out: &mut Vec<(Vec<String>, clap::Command)>,
    ) {
        for sub in cmd.get_subcommands() {
            let p: Vec<String> = path
                .iter()
                .cloned()
                .chain([sub.get_name().to_string()])
                .collect();
            if sub.has_subcommands() {
                all_commands(sub, p, out);
            } else {
                out.push((p, sub.clone()));
            }
        }
    }

    #[test]
    fn the_interface_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn every_flag_has_its_own_environment_variable() {
        let mut commands = Vec::new();
        all_commands(&command(), Vec::new(), &mut commands);
        assert!(commands.len() >= 8, "{commands:?}");
        let mut owner: BTreeMap<String, String> = BTreeMap::new();
        for (path, cmd) in &commands {
            assert!(
                cmd.get_arguments().any(|a| a.get_id() == "config"),
                "`longtail {}` has no --config",
                path.join(" ")
            );
            for arg in cmd.get_arguments() {
                let env = arg
                    .get_env()
                    .unwrap_or_else(|| panic!("{path:?} {} has no env var", arg.get_id()))
                    .to_string_lossy()
                    .into_owned();
                assert_eq!(env, env_var_name(path, arg.get_id().as_str()));
                assert!(
                    !env.starts_with("LONGTAIL_TEST_"),
                    "{env} is reserved for tests"
                );
                let here = format!("{} --{}", path.join(" "), arg.get_id());
                if let Some(other) = owner.insert(env.clone(), here.clone()) {
                    panic!("{env} is used by both `{other}` and `{here}`");
                }
            }
        }
        assert_eq!(
            env_var_name(&["train-interest".into()], "max_steps"),
            "LONGTAIL_TRAIN_INTEREST_MAX_STEPS"
        );
    }

    /// `--help` defaults are the library's (one source), and the recipe/README values agree.
    #[test]
    fn defaults_come_from_the_libraries() {
        // Cli::command() has no environment variables: another test sets some.
        let m = Cli::command()
            .try_get_matches_from([
                "longtail", "train", "--data", "d", "--model", "m", "--out", "o",
            ])
            .unwrap();
        let Command::Train(a) = <Cli as clap::FromArgMatches>::from_arg_matches(&m)
            .unwrap()
            .command
        else {
            panic!("not train")
        };
        let d = TrainConfig::default();
        assert_eq!(value_name(&a.pooling), d.pooling);
        assert_eq!(
            a.pooling,
            Pooling::ClsPooler,
            "README and configs/train.toml say cls_pooler"
        );
        assert_eq!(value_name(&a.lr_scheduler_type), d.lr_scheduler_type);
        assert_eq!(value_name(&a.eval_strategy), d.eval_strategy);
        assert_eq!(
            value_name(&a.metric_for_best_model),
            d.metric_for_best_model
        );
        assert_eq!(value_name(&a.class_weights), d.class_weights);
        assert_eq!(
            (a.learning_rate, a.max_len, a.seed),
            (d.learning_rate, d.max_len, d.seed)
        );

        let m = Cli::command()
            .try_get_matches_from([
                "longtail",
                "train-interest",
                "--data",
                "d",
                "--model",
                "m",
                "--out",
                "o",
            ])
            .unwrap();
        let Command::TrainInterest(a) = <Cli as clap::FromArgMatches>::from_arg_matches(&m)
            .unwrap()
            .command
        else {
            panic!("not train-interest")
        };
        let d = longtail_interest::TrainInterestConfig::default();
        assert_eq!(
            a.history_len, 1,
            "configs/interest.toml and docs/interest.md: user = last item"
        );
        assert_eq!(
            (a.history_len, a.recency_decay),
            (d.history_len, d.recency_decay)
        );
        assert_eq!(
            (a.max_steps, a.max_len, a.batch_size),
            (d.max_steps, d.max_len, d.batch_size)
        );
    }

    /// (command path, required arguments, key, default, file, env, command line)
    type PrecedenceCase = (
        &'static [&'static str],
        &'static [&'static str],
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
    );

    /// For one key of every command: the command line beats the environment, which beats the
    /// config file, which beats the built-in default. The only test in this crate that sets
    /// environment variables (each command's are its own, by the naming rule).
    #[test]
    fn command_line_beats_environment_beats_config_file_beats_default() {
        let dir = tempfile::tempdir().unwrap();
        // (command path, required arguments, key, default, file, env, command line)
        let cases: [PrecedenceCase; 9] = [
            (
                &["prepare"],
                &["--items", "i", "--interactions", "x", "--out", "o"],
                "seed",
                "0",
                "1",
                "2",
                "3",
            ),
            (
                &["train"],
                &["--data", "d", "--model", "m", "--out", "o"],
                "learning_rate",
                "0.00005",
                "0.1",
                "0.2",
                "0.3",
            ),
            (
                &["eval"],
                &["--data", "d", "--checkpoint", "c", "--report", "r.json"],
                "split",
                "test",
                "validation",
                "test",
                "validation",
            ),
            (
                &["eval-rec"],
                &["--data", "d", "--report", "r.json"],
                "tail_user_fraction",
                "0.2",
                "0.3",
                "0.4",
                "0.5",
            ),
            (
                &["score"],
                &["--checkpoint", "c", "--input", "i", "--output", "o"],
                "chunk_rows",
                "4096",
                "10",
                "20",
                "30",
            ),
            (
                &["train-interest"],
                &["--data", "d", "--out", "o"],
                "max_steps",
                "2000",
                "10",
                "20",
                "30",
            ),
            (
                &["recommend"],
                &["--checkpoint", "c", "--data", "d", "--output", "o"],
                "k",
                "10",
                "5",
                "6",
                "7",
            ),
            (
                &["serve"],
                &["--classifier", "c", "--interest", "i", "--data", "d"],
                "max_k",
                "200",
                "50",
                "60",
                "70",
            ),
            (
                &["model", "fetch"],
                &["some/repo"],
                "revision",
                "main",
                "v1",
                "v2",
                "v3",
            ),
        ];
        for (path, required, key, default, file, env, cli) in cases {
            let path: Vec<String> = path.iter().map(|s| s.to_string()).collect();
            let env_var = env_var_name(&path, key);
            let config_var = env_var_name(&path, "config");
            std::env::remove_var(&env_var);
            std::env::remove_var(&config_var);
            let table = path.join(".");
            let toml_value = if file.parse::<f64>().is_ok() {
                file.to_string()
            } else {
                format!("{file:?}")
            };
            let cfg = dir.path().join(format!("{}.toml", path.join("-")));
            std::fs::write(&cfg, format!("[{table}]\n{key} = {toml_value}\n")).unwrap();
            let flag = format!("--{}", key.replace('_', "-"));
            let value = |extra: &[&str]| -> String {
                let mut argv: Vec<String> = vec!["longtail".into()];
                argv.extend(path.iter().cloned());
                argv.extend(required.iter().map(|s| s.to_string()));
                argv.extend(extra.iter().map(|s| s.to_string()));
                let m = crate::config::parse_args(command(), &argv)
                    .unwrap_or_else(|_| panic!("{argv:?} did not parse"));
                let mut m = &m;
                for p in &path {
                    m = m.subcommand_matches(p).unwrap();
                }
                m.get_raw(key)
                    .unwrap()
                    .map(|v| v.to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join(",")
            };
            let cfg_arg = cfg.to_str().unwrap();
            assert_eq!(value(&[]), default, "{path:?} {key}: built-in default");
            assert_eq!(
                value(&["--config", cfg_arg]),
                file,
                "{path:?} {key}: config file"
            );
            std::env::set_var(&config_var, cfg_arg);
            assert_eq!(
                value(&[]),
                file,
                "{path:?} {key}: config file named by {config_var}"
            );
            std::env::set_var(&env_var, env);
            assert_eq!(
                value(&[]),
                env,
                "{path:?} {key}: {env_var} beats the config file"
            );
            assert_eq!(
                value(&[&flag, cli]),
                cli,
                "{path:?} {key}: the command line beats all"
            );
            std::env::remove_var(&env_var);
            std::env::remove_var(&config_var);
        }
    }

    /// The shipped recipes pass the same validation as any config file.
    #[test]
    fn shipped_recipes_are_valid_config_files() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        for (file, cmd) in [
            ("configs/train.toml", "train"),
            ("configs/interest.toml", "train-interest"),
            ("configs/interest-bi-encoder.toml", "train-interest"),
            ("configs/sasrec.toml", "train-interest"),
            ("datasets/amazon-office-2014.toml", "prepare"),
            ("datasets/movielens-100k.toml", "prepare"),
        ] {
            crate::config::apply_config_file(command(), &[cmd.to_string()], &root.join(file))
                .unwrap_or_else(|e| panic!("{file}: {e:#}"));
        }
    }
}

/// Names the device for every command at once; a command's own `LONGTAIL_<COMMAND>_DEVICE`
/// wins over it.
pub const DEVICE_ENV: &str = "LONGTAIL_DEVICE";

/// `--device`, shared by every command that runs a model.
#[derive(Args, Debug, Clone)]
pub struct DeviceArg {
    /// Where the model runs: auto (a CUDA GPU when this binary was built with CUDA and one
    /// answers, else the CPU), cpu, cuda (GPU 0) or cuda:N. LONGTAIL_DEVICE sets it for every
    /// command.
    #[arg(long, value_name = "DEVICE", default_value_t = DeviceSpec::Auto)]
    pub device: DeviceSpec,
}

impl DeviceArg {
    /// The candle device, or a one-line error that says what to do instead.
    pub fn resolve(&self) -> anyhow::Result<longtail_model::Device> {
        Ok(self.device.resolve()?)
    }
}
