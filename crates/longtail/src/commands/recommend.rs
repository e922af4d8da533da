//! `longtail recommend`: top-K items per user from an interest checkpoint, with head/tail
//! re-ranking (longtail-eval's `rerank`), calibrated P(interest), an explanation per item, and
//! pseudonymised user ids.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use longtail_data::{Label, PreparedDataset};
use longtail_eval::rec::scorer::{exclude_history, top_k};
use longtail_eval::rec::{rerank, Ease, ItemIdx, Knob, Scorer};
use longtail_interest::recommend::{CacheStatus, Recommender};
use longtail_interest::scorer::{InterestScorer, ZBlend};
use longtail_interest::{Interactions, Pseudonymiser};
use serde::Serialize;

#[derive(Args, Debug)]
pub struct RecommendArgs {
    /// TOML file whose [recommend] table supplies defaults for any flag.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Interest checkpoint (the --out of `longtail train-interest`).
    #[arg(long)]
    pub checkpoint: PathBuf,
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
    Ok(match (args.tail_weight, args.tail_share) {
        (Some(l), _) => {
            if !l.is_finite() || l < 0.0 {
                bail!("--tail-weight must be a finite number >= 0, got {l}");
            }
            Some(Knob::TailWeight(l))
        }
        (None, Some(s)) => {
            if !(0.0..=1.0).contains(&s) {
                bail!("--tail-share must be in [0, 1], got {s}");
            }
            Some(Knob::TailShare(s))
        }
        (None, None) => None,
    })
}

/// EASE on every user's (deduplicated) interactions, when the blend is asked for.
fn fit_ease(args: &RecommendArgs, inter: &Interactions, n_items: usize) -> Result<Option<Ease>> {
    let (Some(w), Some(lambda)) = (args.ease_weight, args.ease_lambda) else {
        return Ok(None);
    };
    if !(0.0..=1.0).contains(&w) {
        bail!("--ease-weight must be in [0, 1], got {w}");
    }
    if !(lambda.is_finite() && lambda > 0.0) {
        bail!("--ease-lambda must be a positive number, got {lambda}");
    }
    let lists: Vec<Vec<ItemIdx>> = inter
        .seqs
        .iter()
        .map(|s| s.iter().map(|&i| i as ItemIdx).collect())
        .collect();
    let started = std::time::Instant::now();
    let ease = Ease::fit_lists(&lists, n_items, lambda)?;
    eprintln!(
        "EASE (λ={lambda}) fitted on {} users' interactions in {:.1}s; blend weight {w}",
        lists.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(Some(ease))
}

/// The user's list: `ranker`'s scores with the history excluded, re-ranked by `knob` (the
/// same steps as eval-rec's metrics and trade-off curves). Items with their ranking score.
fn rank_list(
    ranker: &dyn Scorer,
    history: &[usize],
    is_tail: &[bool],
    k: usize,
    knob: Option<Knob>,
) -> Result<Vec<(usize, f32)>> {
    let h: Vec<ItemIdx> = history.iter().map(|&i| i as ItemIdx).collect();
    let mut scores = vec![0f32; is_tail.len()];
    ranker.scores(0, &h, &mut scores);
    exclude_history(ranker.name(), 0, &h, &mut scores)?;
    let list = match knob {
        Some(knob) => rerank(&scores, is_tail, k, knob),
        None => top_k(&scores, k),
    };
    Ok(list
        .into_iter()
        .map(|i| (i as usize, scores[i as usize]))
        .collect())
}

/// Raw ids with their user index in the interactions (None: unknown, no history).
fn wanted_users(
    args: &RecommendArgs,
    inter: &Interactions,
) -> Result<Vec<(String, Option<usize>)>> {
    let user_index: HashMap<&str, usize> = inter
        .users
        .iter()
        .enumerate()
        .map(|(i, u)| (u.as_str(), i))
        .collect();
    Ok(match &args.users {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("reading {}", path.display()))?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(|u| (u.to_string(), user_index.get(u).copied()))
            .collect(),
        None => inter
            .users
            .iter()
            .enumerate()
            .map(|(i, u)| (u.clone(), Some(i)))
            .collect(),
    })
}

pub fn run(args: RecommendArgs) -> Result<()> {
    if args.k == 0 {
        bail!("--k must be at least 1");
    }
    let knob = parse_knob(&args)?;
    let data = PreparedDataset::load(&args.data)
        .with_context(|| format!("loading {}", args.data.display()))?;
    let index: HashMap<String, usize> = data
        .items
        .iter()
        .enumerate()
        .map(|(i, it)| (it.item_id.clone(), i))
        .collect();
    let inter = Interactions::load(&args.data.join(longtail_data::INTERACTIONS_FILE), &index)?;
    let is_tail: Vec<bool> = data.items.iter().map(|i| i.label == Label::Tail).collect();
    let ease = fit_ease(&args, &inter, data.items.len())?;
    let (rec, status) = Recommender::load(
        &args.checkpoint,
        &data.items,
        args.embedding_cache.as_deref(),
        args.batch_size,
    )
    .with_context(|| format!("loading checkpoint {}", args.checkpoint.display()))?;
    eprintln!(
        "item embeddings: {} ({} items)",
        match status {
            CacheStatus::Hit => "cache hit",
            CacheStatus::Computed => "computed and cached",
        },
        rec.num_items()
    );
    let interest = InterestScorer {
        rec: &rec,
        name: "longtail".into(),
    };
    let blend = ease.as_ref().zip(args.ease_weight).map(|(e, w)| ZBlend {
        name: "longtail+ease".into(),
        a: &interest,
        b: e,
        w: (1.0 - w) as f32,
    });
    let ranker: &dyn Scorer = match &blend {
        Some(b) => b,
        None => &interest,
    };
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
    let wanted = wanted_users(&args, &inter)?;

    let mut text = String::new();
    let (mut written, mut cold) = (0usize, 0usize);
    let mut tail_slots = 0usize;
    let mut slots = 0usize;
    for (raw, u) in &wanted {
        let history: &[usize] = u.map_or(&[], |u| inter.seqs[u].as_slice());
        let Some(cosines) = rec.scores(history) else {
            // No history: nothing to personalise on; reported, not guessed.
            cold += 1;
            let line = OutLine {
                user: pseudo.apply(raw),
                history_len: 0,
                recommendations: Vec::new(),
            };
            text.push_str(&serde_json::to_string(&line)?);
            text.push('\n');
            continue;
        };
        let items = rank_list(ranker, history, &is_tail, args.k, knob)?;
        let recs: Vec<OutRec<'_>> = items
            .iter()
            .enumerate()
            .map(|(r, &(item, ranked_by))| OutRec {
                rank: r + 1,
                item_id: &data.items[item].item_id,
                score: cosines[item],
                blend_score: blend.is_some().then_some(ranked_by),
                p_interest: rec.probability(cosines[item]),
                tail: is_tail[item],
                because_of: rec
                    .explain(history, item)
                    .map(|h| data.items[h].item_id.as_str()),
            })
            .collect();
        slots += recs.len();
        tail_slots += recs.iter().filter(|r| r.tail).count();
        let line = OutLine {
            user: pseudo.apply(raw),
            history_len: history.len(),
            recommendations: recs,
        };
        text.push_str(&serde_json::to_string(&line)?);
        text.push('\n');
        written += 1;
    }
    longtail_train::write_atomic(&args.output, text.as_bytes())?;
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
