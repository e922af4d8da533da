//! The command-line interface: the command enum and the environment-variable rule. The
//! options several commands share (`--device`, `NAME=DIR` checkpoints, the library defaults)
//! are in `shared_args.rs`. Each command's own flags live beside its code (`commands/<command>.rs`, an
//! `...Args` struct), where raw arguments become typed values (clap `ValueEnum`s and parsed
//! types), so the command receives validated settings.
//!
//! Defaults have one source: where a library has an options struct, the flag's default is read
//! from that struct's `Default`, so `--help`, the code and the library agree by construction.
//! Environment variables follow one rule, applied in [`command`]: `LONGTAIL_<COMMAND>_<FLAG>`
//! (`longtail train --seed` is `LONGTAIL_TRAIN_SEED`, `longtail train-interest --max-steps` is
//! `LONGTAIL_TRAIN_INTEREST_MAX_STEPS`), so no variable means two things in two commands.

use crate::shared_args::DEVICE_ENV;
use clap::{CommandFactory, Parser, Subcommand};

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
    Prepare(crate::commands::prepare::PrepareArgs),
    /// Fine-tune a BERT-family encoder to tell tail items from head items.
    ///
    /// Writes to --out: checkpoint-N/ directories (model.safetensors with HF names, config.json
    /// with id2label, tokenizer.json, optimizer state, trainer_state.json, train_args.toml),
    /// metrics.jsonl (one line per logging step and evaluation), train_args.toml, and the best
    /// model (by --metric-for-best-model on validation) copied to the top of --out.
    Train(crate::commands::train::TrainArgs),
    /// Score validation and test with a checkpoint; metrics, baselines, report and plots.
    ///
    /// The decision threshold is chosen on validation (max macro-F1). Writes FILE.json,
    /// FILE.md, and ROC / training-curve PNGs beside --report, and prints the Markdown table.
    Eval(crate::commands::eval::EvalArgs),
    /// Top-K recommendation evaluation, leave-last-out, with a head/tail breakdown.
    ///
    /// Ranks every catalogue item for each user's last (test) and second-last (validation)
    /// interaction, seen items excluded. Baselines: most popular, item-kNN (cosine), EASE
    /// (lambda chosen on validation). Writes FILE.json, FILE.md, FILE_head_tail.png,
    /// FILE_frontier.png (each row's NDCG@10 against its tail-item recall) and
    /// FILE_tradeoff.png (re-ranking knob vs NDCG@10 on the best baseline).
    EvalRec(crate::commands::eval_rec::EvalRecArgs),
    /// Batch-score a catalogue dump: p_tail and label per row, in input order, resumable and
    /// shardable (see docs/score.md).
    Score(crate::commands::score::ScoreArgs),
    /// Obtain pretrained encoders from the Hugging Face hub.
    #[command(subcommand)]
    Model(crate::commands::model::ModelCommand),
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
    /// interactions, searches the weights of their z-scored blend on validation NDCG@10, then
    /// moves the weights and the tail weight for validation tail-item recall within
    /// --relevance-budget, and writes plan.json with the fitted artefacts.
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

#[cfg(test)]
mod tests {
    use super::*;
    use longtail_classify::TrainConfig;
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
        // The command line is the library's struct: with only the required flags, the
        // library's defaults.
        assert_eq!(
            a.train,
            TrainConfig {
                data: "d".into(),
                model: "m".into(),
                out: "o".into(),
                ..TrainConfig::default()
            }
        );
        assert_eq!(
            a.train.pooling,
            longtail_model::Pooling::ClsPooler,
            "README and configs/train.toml say cls_pooler"
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
        assert_eq!(
            a.train,
            longtail_interest::TrainInterestConfig {
                data: "d".into(),
                model: "m".into(),
                out: "o".into(),
                ..Default::default()
            }
        );
        assert_eq!(
            a.train.history_len, 1,
            "configs/interest.toml and docs/interest.md: user = last item"
        );
        assert!(
            a.train.logq_correction,
            "--no-logq absent: the correction is on"
        );
        let m = Cli::command()
            .try_get_matches_from([
                "longtail",
                "train-interest",
                "--data",
                "d",
                "--out",
                "o",
                "--no-logq",
            ])
            .unwrap();
        let Command::TrainInterest(a) = <Cli as clap::FromArgMatches>::from_arg_matches(&m)
            .unwrap()
            .command
        else {
            panic!("not train-interest")
        };
        assert!(!a.train.logq_correction);
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
