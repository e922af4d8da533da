//! `longtail recommend`: top-K items per user from an interest checkpoint, with head/tail
//! re-ranking, calibrated P(interest), an explanation per item, and pseudonymised user ids.
//! The ranking is longtail-interest's [`Recommender`]; this module parses, calls it per user
//! and writes the JSONL.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use longtail_interest::recommend::{EaseBlend, Recommender, RecommenderOptions};
use longtail_interest::{CacheStatus, Pseudonymiser};
use longtail_rec::Knob;
use serde::Serialize;

#[derive(Args, Debug)]
pub struct RecommendArgs {
    /// TOML file whose [recommend] table supplies defaults for any flag.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Interest checkpoint (the --out of `longtail train-interest`).
    #[arg(long, required_unless_present = "plan", conflicts_with = "plan")]
    pub checkpoint: Option<PathBuf>,
    /// A served plan (the --out of `longtail plan`): its blend and its tail knob (a
    /// --tail-weight or --tail-share given here replaces the knob).
    #[arg(long, conflicts_with_all = ["ease_weight", "ease_lambda"])]
    pub plan: Option<PathBuf>,
    /// Prepared dataset directory: the catalogue and the users' interaction histories.
    #[arg(long)]
    pub data: PathBuf,
    /// Raw user ids, one per line (default: every user in the interactions).
    #[arg(long)]
    pub users: Option<PathBuf>,
    /// Recommendations per user.
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// Output JSONL, one line per user.
    #[arg(long)]
    pub output: PathBuf,
    /// Re-rank: add L to the z-scored similarity of tail items (0 = pure relevance).
    #[arg(long, conflicts_with = "tail_share")]
    pub tail_weight: Option<f64>,
    /// Re-rank: at least this share of each list is tail items (when available), in [0, 1].
    #[arg(long)]
    pub tail_share: Option<f64>,
    /// Blend with EASE as `eval-rec`'s `longtail+ease` does: rank by
    /// `(1 - W) z(cosine) + W z(EASE)`, each z-scored over the user's unseen items; W is
    /// `1 - w` of the report's blend. EASE is fitted on every interaction of --data.
    #[arg(long, requires = "ease_lambda")]
    pub ease_weight: Option<f64>,
    /// EASE L2 regularisation λ (use the one eval-rec chose on validation).
    #[arg(long, requires = "ease_weight")]
    pub ease_lambda: Option<f64>,
    /// Write raw user ids instead of keyed pseudonyms.
    #[arg(long, default_value_t = false)]
    pub keep_user_ids: bool,
    /// Pseudonymisation key (at least 16 bytes). Default: the hex key in --user-id-key-file.
    #[arg(long, hide_env_values = true)]
    pub user_id_key: Option<String>,
    /// Key file (hex), created with a random key if missing. Default: user_id.key next to
    /// --output.
    #[arg(long)]
    pub user_id_key_file: Option<PathBuf>,
    /// Item embedding cache (default: item_embeddings.safetensors in the checkpoint).
    #[arg(long)]
    pub embedding_cache: Option<PathBuf>,
    /// Items per inference batch when the cache must be (re)computed.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,

    #[command(flatten)]
    pub device: crate::shared_args::DeviceArg,
}

#[derive(Serialize)]
struct OutRec<'a> {
    rank: usize,
    item_id: &'a str,
    /// Cosine similarity of user and item (what `p_interest` is calibrated on).
    score: f32,
    /// The blended score the list is ranked by (with --ease-weight).
    #[serde(skip_serializing_if = "Option::is_none")]
    blend_score: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    p_interest: Option<f64>,
    tail: bool,
    because_of: Option<&'a str>,
}

#[derive(Serialize)]
struct OutLine<'a> {
    user: String,
    history_len: usize,
    recommendations: Vec<OutRec<'a>>,
}

pub fn pseudonymiser(
    keep: bool,
    key: Option<&str>,
    key_file: Option<PathBuf>,
    default_dir: &std::path::Path,
) -> Result<(Pseudonymiser, Option<PathBuf>)> {
    if keep {
        return Ok((Pseudonymiser::keep_ids(), None));
    }
    if let Some(k) = key {
        return Ok((Pseudonymiser::keyed(k.as_bytes())?, None));
    }
    let path = key_file.unwrap_or_else(|| default_dir.join("user_id.key"));
    let key = Pseudonymiser::load_or_create_key_file(&path)?;
    Ok((Pseudonymiser::keyed(&key)?, Some(path)))
}

fn parse_knob(args: &RecommendArgs) -> Result<Option<Knob>> {
    Knob::from_options(args.tail_weight, args.tail_share)
        .map_err(|e| anyhow::anyhow!("--tail-weight / --tail-share: {e}"))
}

fn parse_ease(args: &RecommendArgs) -> Result<Option<EaseBlend>> {
    let (Some(weight), Some(lambda)) = (args.ease_weight, args.ease_lambda) else {
        return Ok(None);
    };
    if !(0.0..=1.0).contains(&weight) {
        bail!("--ease-weight must be in [0, 1], got {weight}");
    }
    if !(lambda.is_finite() && lambda > 0.0) {
        bail!("--ease-lambda must be a positive number, got {lambda}");
    }
    Ok(Some(EaseBlend { weight, lambda }))
}

/// Raw ids of the users to serve: --users, else every user of the interactions.
fn wanted_users(args: &RecommendArgs, rec: &Recommender) -> Result<Vec<String>> {
    Ok(match &args.users {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("reading {}", path.display()))?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect(),
        None => rec.interactions().users.clone(),
    })
}

pub fn run(args: RecommendArgs) -> Result<()> {
    if args.k == 0 {
        bail!("--k must be at least 1");
    }
    let knob = parse_knob(&args)?;
    let opts = RecommenderOptions {
        embedding_cache: args.embedding_cache.as_deref(),
        batch_size: args.batch_size,
        ease: parse_ease(&args)?,
        device: args.device.resolve()?,
    };
    let (source, loaded) = match (&args.plan, &args.checkpoint) {
        (Some(plan), _) => (plan, Recommender::load_plan(plan, &args.data, &opts)),
        (None, Some(ckpt)) => (ckpt, Recommender::load(ckpt, &args.data, &opts)),
        (None, None) => bail!("give --checkpoint DIR or --plan DIR"),
    };
    let (rec, loaded) = loaded.with_context(|| {
        format!(
            "loading {} with the data in {}",
            source.display(),
            args.data.display()
        )
    })?;
    let knob = knob.or(rec.plan_knob());
    if rec.plan().is_some() {
        eprintln!(
            "plan {}: {}; knob {}",
            source.display(),
            rec.components()
                .iter()
                .map(|(n, w)| format!("{n} {w:.3}"))
                .collect::<Vec<_>>()
                .join(" + "),
            knob.map_or("none".to_string(), |k| format!(
                "{} {}",
                k.kind(),
                k.value()
            ))
        );
    }
    if let Some(fit) = &loaded.ease_fit {
        eprintln!(
            "EASE (λ={}) fitted on {} users' interactions in {:.1}s; blend weight {}",
            fit.blend.lambda, fit.users, fit.seconds, fit.blend.weight
        );
    }
    eprintln!(
        "item embeddings: {} ({} items)",
        match loaded.embeddings {
            CacheStatus::Hit => "cache hit",
            CacheStatus::Computed => "computed and cached",
        },
        rec.num_items()
    );
    let out_dir = args
        .output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let (pseudo, key_path) = pseudonymiser(
        args.keep_user_ids,
        args.user_id_key.as_deref(),
        args.user_id_key_file.clone(),
        &out_dir,
    )?;
    let wanted = wanted_users(&args, &rec)?;

    let mut text = String::new();
    let (mut written, mut cold) = (0usize, 0usize);
    let mut tail_slots = 0usize;
    let mut slots = 0usize;
    for raw in &wanted {
        let history = rec.history(raw).unwrap_or(&[]);
        let line = match rec.recommend(history, args.k, knob)? {
            // No history: nothing to personalise on; reported, not guessed.
            None => {
                cold += 1;
                OutLine {
                    user: pseudo.apply(raw),
                    history_len: 0,
                    recommendations: Vec::new(),
                }
            }
            Some(list) => {
                let recs: Vec<OutRec<'_>> = list
                    .iter()
                    .enumerate()
                    .map(|(r, x)| OutRec {
                        rank: r + 1,
                        item_id: rec.item_id(x.item),
                        score: x.score,
                        blend_score: x.blend_score,
                        p_interest: x.p_interest,
                        tail: x.tail,
                        because_of: x.because_of.map(|h| rec.item_id(h)),
                    })
                    .collect();
                slots += recs.len();
                tail_slots += recs.iter().filter(|r| r.tail).count();
                written += 1;
                OutLine {
                    user: pseudo.apply(raw),
                    history_len: history.len(),
                    recommendations: recs,
                }
            }
        };
        text.push_str(&serde_json::to_string(&line)?);
        text.push('\n');
    }
    longtail_fs::write_atomic(&args.output, text.as_bytes())?;
    println!(
        "{} users: {written} with recommendations, {cold} without history (empty list); tail \
         share of recommended slots {:.3}; wrote {}",
        wanted.len(),
        tail_slots as f64 / slots.max(1) as f64,
        args.output.display()
    );
    match (pseudo.is_keyed(), key_path) {
        (false, _) => println!("user ids kept as-is (--keep-user-ids)"),
        (true, Some(p)) => println!(
            "user ids pseudonymised with HMAC-SHA256, key in {}",
            p.display()
        ),
        (true, None) => {
            println!("user ids pseudonymised with HMAC-SHA256 (key from --user-id-key)")
        }
    }
    Ok(())
}
