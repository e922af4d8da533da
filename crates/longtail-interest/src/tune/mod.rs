//! `train-interest --tune N`: a bounded search over the sequence recipe, chosen on the
//! validation split of the user's own data.
//!
//! Successive halving: `N` trials (trial 0 is the recipe itself, the others drawn with a seed
//! from [`TuneSpace`]) train from scratch at a small step budget; the best `1/eta` by
//! validation NDCG@10 go on at `eta` times the budget, and so on up to the recipe's
//! `max_steps`. The last rung always holds the recipe too. Every run is a complete training
//! with its own learning-rate schedule (warmup, then decay to 0 at its budget), so the budget
//! is part of what is chosen: the winner is the best run of any rung, and the tuned model never
//! has a lower validation NDCG@10 than the recipe's. A time budget stops the exploration rungs
//! (never the last one). Each finished run is recorded in `tune.json` as it ends: a second run
//! of the search skips what is done.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{InterestError, Result, TrainInterestConfig};

/// The search's state file, in the trials directory and beside the tuned checkpoint.
pub const TUNE_FILE: &str = "tune.json";
/// The trials table (Markdown), beside the tuned checkpoint.
pub const TUNE_TABLE_FILE: &str = "tune.md";

/// The values each tuned setting is drawn from (documented in docs/interest.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TuneSpace {
    /// Training interactions an item needs for an ID embedding: sparse catalogues may want
    /// IDs for rarer items, dense ones fewer.
    pub id_min_count: Vec<u64>,
    pub learning_rate: Vec<f64>,
    /// Hidden and attention dropout (one value for both).
    pub dropout: Vec<f64>,
    pub temperature: Vec<f64>,
    pub num_hidden_layers: Vec<usize>,
    pub hidden_size: Vec<usize>,
}

impl Default for TuneSpace {
    fn default() -> Self {
        Self {
            id_min_count: vec![3, 5, 10, 20],
            learning_rate: vec![5e-4, 1e-3, 2e-3],
            dropout: vec![0.1, 0.2, 0.3],
            temperature: vec![0.05, 0.07, 0.1],
            num_hidden_layers: vec![1, 2],
            hidden_size: vec![64, 128],
        }
    }
}

/// One trial's settings; `None` everywhere is the recipe as configured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrialSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_min_count: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learning_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropout: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_hidden_layers: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden_size: Option<usize>,
}

impl TrialSettings {
    /// `base` with this trial's settings and a step budget.
    pub fn apply(&self, base: &TrainInterestConfig, max_steps: u64) -> TrainInterestConfig {
        let mut c = base.clone();
        c.max_steps = max_steps;
        if let Some(v) = self.id_min_count {
            c.id_min_count = v;
        }
        if let Some(v) = self.learning_rate {
            c.learning_rate = v;
        }
        if let Some(v) = self.dropout {
            c.hidden_dropout_prob = v;
            c.attention_probs_dropout_prob = v;
        }
        if let Some(v) = self.temperature {
            c.temperature = v;
        }
        if let Some(v) = self.num_hidden_layers {
            c.num_hidden_layers = v;
        }
        if let Some(v) = self.hidden_size {
            c.hidden_size = v;
        }
        c
    }

    /// The settings as one line (`recipe` for trial 0).
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(v) = self.id_min_count {
            parts.push(format!("id_min_count {v}"));
        }
        if let Some(v) = self.learning_rate {
            parts.push(format!("lr {v}"));
        }
        if let Some(v) = self.dropout {
            parts.push(format!("dropout {v}"));
        }
        if let Some(v) = self.temperature {
            parts.push(format!("T {v}"));
        }
        if let Some(v) = self.num_hidden_layers {
            parts.push(format!("layers {v}"));
        }
        if let Some(v) = self.hidden_size {
            parts.push(format!("width {v}"));
        }
        if parts.is_empty() {
            "recipe".to_string()
        } else {
            parts.join(", ")
        }
    }
}

/// SplitMix64: a small seeded generator, so a search's trials depend on its seed only.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn pick<T: Copy>(&mut self, values: &[T]) -> T {
        values[(self.next() % values.len() as u64) as usize]
    }
}

/// Trial 0 is the recipe; trials 1.. are distinct draws from `space` that differ from the
/// recipe (fewer when the space runs out).
pub fn draw_trials(
    space: &TuneSpace,
    base: &TrainInterestConfig,
    n: usize,
    seed: u64,
) -> Vec<TrialSettings> {
    let mut rng = SplitMix(seed);
    let mut trials = vec![TrialSettings::default()];
    let recipe = |t: &TrialSettings| {
        let a = t.apply(base, base.max_steps);
        a == *base
    };
    let mut attempts = 0;
    while trials.len() < n && attempts < 100 * n {
        attempts += 1;
        let t = TrialSettings {
            id_min_count: Some(rng.pick(&space.id_min_count)),
            learning_rate: Some(rng.pick(&space.learning_rate)),
            dropout: Some(rng.pick(&space.dropout)),
            temperature: Some(rng.pick(&space.temperature)),
            num_hidden_layers: Some(rng.pick(&space.num_hidden_layers)),
            hidden_size: Some(rng.pick(&space.hidden_size)),
        };
        let cfg = t.apply(base, base.max_steps);
        if recipe(&t) || trials.iter().any(|o| o.apply(base, base.max_steps) == cfg) {
            continue;
        }
        trials.push(t);
    }
    trials
}

/// Step budget and size of each rung: `eta^-r` of `max_steps` for `n / eta^r` trials; the
/// last rung is `max_steps` (its size: the survivors, plus the recipe).
pub fn rungs(n: usize, eta: usize, max_steps: u64) -> Vec<(usize, u64)> {
    assert!(n >= 1 && eta >= 2);
    let mut levels = 0u32;
    while eta.pow(levels + 1) <= n {
        levels += 1;
    }
    (0..=levels)
        .map(|r| {
            let keep = (n / eta.pow(r)).max(1);
            let steps = (max_steps / (eta as u64).pow(levels - r)).max(1);
            (keep, steps)
        })
        .collect()
}

/// What one training run of a trial gave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialResult {
    pub trial: usize,
    pub rung: usize,
    /// The rung's step budget (early stopping may end a run sooner).
    pub max_steps: u64,
    pub steps: u64,
    /// Best validation NDCG@10 of the run (the checkpoint's).
    #[serde(rename = "ndcg@10")]
    pub ndcg_10: f64,
    #[serde(rename = "tail_recall@10")]
    pub tail_recall_10: f64,
    /// Validation users behind the numbers.
    #[serde(default)]
    pub users: usize,
    pub seconds: f64,
}

/// What one training run reports back to the search.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunMetrics {
    pub steps: u64,
    pub ndcg_10: f64,
    pub tail_recall_10: f64,
    pub users: usize,
}

/// The search, as saved after every trial.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TuneState {
    pub version: u32,
    /// sha256 of the recipe the trials vary (output paths left out): a trials directory
    /// holds one search.
    pub recipe_sha256: String,
    pub seed: u64,
    pub eta: usize,
    pub space: TuneSpace,
    pub trials: Vec<TrialSettings>,
    /// `(trials, steps)` per rung.
    pub rungs: Vec<(usize, u64)>,
    pub results: Vec<TrialResult>,
    /// Rungs cut short by the time budget.
    #[serde(default)]
    pub cut: Vec<usize>,
    /// The chosen trial and the rung of its chosen run (set when the last rung is done).
    pub winner: Option<usize>,
    #[serde(default)]
    pub winner_rung: Option<usize>,
    /// Standard errors of the recipe's validation NDCG@10 a trial must beat it by.
    #[serde(default)]
    pub margin_se: f64,
    /// Why the recipe was kept over a run that scored higher, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub rule: String,
}

pub const TUNE_RULE: &str = "successive halving on validation NDCG@10: every trial trains from \
scratch at its rung's step budget (early stopping on); the best 1/eta of a rung go on to the \
next; the last rung trains at the recipe's max_steps and always includes the recipe (trial 0); \
the best run of any rung (each run is a complete training whose schedule ends at its budget, so \
the budget is chosen too; ties: the later rung, then the lower trial number) replaces the \
recipe's best run only if its validation NDCG@10 is higher by at least margin_se standard errors \
of the recipe's (sqrt(m(1-m)/n): validation noise is not evidence); test targets are never read";

/// Options of a search.
#[derive(Debug, Clone)]
pub struct TuneOptions {
    pub trials: usize,
    pub eta: usize,
    pub seed: u64,
    pub space: TuneSpace,
    /// Exploration stops (the last rung still runs) once this much time has passed.
    pub time_budget: Option<Duration>,
    /// Where trial checkpoints and `tune.json` live.
    pub dir: PathBuf,
    /// See [`TUNE_RULE`].
    pub margin_se: f64,
}

fn recipe_sha256(base: &TrainInterestConfig) -> Result<String> {
    let mut c = base.clone();
    c.out = PathBuf::new();
    c.embedding_cache = None;
    let json = serde_json::to_vec(&c).map_err(|e| InterestError::invalid(e.to_string()))?;
    Ok(hex::encode(Sha256::digest(json)))
}

/// A trial's checkpoint directory in the trials directory.
pub fn trial_dir(dir: &Path, trial: usize, rung: usize) -> PathBuf {
    dir.join(format!("trial-{trial:02}-rung-{rung}"))
}

/// The better of two runs by [`TUNE_RULE`].
fn better(a: &TrialResult, b: &TrialResult) -> bool {
    a.ndcg_10
        .total_cmp(&b.ndcg_10)
        .then(a.rung.cmp(&b.rung))
        .then(b.trial.cmp(&a.trial))
        .is_gt()
}

/// The best run so far.
fn best_run(results: &[TrialResult]) -> Option<&TrialResult> {
    results
        .iter()
        .fold(None, |best: Option<&TrialResult>, r| match best {
            Some(b) if !better(r, b) => Some(b),
            _ => Some(r),
        })
}

/// Runs (or resumes) the search; `train(settings, cfg_out_dir, max_steps)` trains one trial
/// into the directory and returns `(steps, ndcg@10, tail recall@10)`. Returns the state; the
/// tuned checkpoint is `trial_dir(dir, winner, winner_rung)`.
pub fn successive_halving(
    base: &TrainInterestConfig,
    opts: &TuneOptions,
    log: &mut dyn FnMut(&str),
    train: &mut dyn FnMut(&TrialSettings, &Path, u64) -> Result<RunMetrics>,
) -> Result<TuneState> {
    if !(opts.margin_se.is_finite() && opts.margin_se >= 0.0) {
        return Err(InterestError::invalid(format!(
            "the tune margin must be a number of standard errors >= 0, got {}",
            opts.margin_se
        )));
    }
    if opts.trials == 0 || opts.eta < 2 {
        return Err(InterestError::invalid(
            "--tune needs at least 1 trial and an eta of at least 2",
        ));
    }
    let started = Instant::now();
    std::fs::create_dir_all(&opts.dir).map_err(|e| InterestError::io(&opts.dir, e))?;
    let state_path = opts.dir.join(TUNE_FILE);
    let fresh = TuneState {
        version: 1,
        recipe_sha256: recipe_sha256(base)?,
        seed: opts.seed,
        eta: opts.eta,
        space: opts.space.clone(),
        trials: draw_trials(&opts.space, base, opts.trials, opts.seed),
        rungs: rungs(opts.trials, opts.eta, base.max_steps),
        results: Vec::new(),
        cut: Vec::new(),
        winner: None,
        winner_rung: None,
        margin_se: opts.margin_se,
        note: None,
        rule: TUNE_RULE.to_string(),
    };
    let mut state = if state_path.is_file() {
        let old: TuneState = longtail_fs::read_json(&state_path)?;
        let same = old.recipe_sha256 == fresh.recipe_sha256
            && old.seed == fresh.seed
            && old.eta == fresh.eta
            && old.space == fresh.space
            && old.trials == fresh.trials;
        if !same {
            return Err(InterestError::invalid(format!(
                "{} holds another search (other recipe, seed, space or trial count); remove \
                 it or pass another --tune-dir",
                state_path.display()
            )));
        }
        log(&format!(
            "resuming the search in {}: {} trial runs done",
            opts.dir.display(),
            old.results.len()
        ));
        TuneState {
            winner: None,
            winner_rung: None,
            margin_se: opts.margin_se,
            note: None,
            ..old
        }
    } else {
        fresh
    };
    let last = state.rungs.len() - 1;
    let mut alive: Vec<usize> = (0..state.trials.len()).collect();
    for rung in 0..=last {
        let steps = state.rungs[rung].1;
        if rung == last && !alive.contains(&0) {
            alive.insert(0, 0);
        }
        for (i, &trial) in alive.iter().enumerate() {
            let dir = trial_dir(&opts.dir, trial, rung);
            let done = state
                .results
                .iter()
                .any(|r| r.trial == trial && r.rung == rung)
                // the last rung's checkpoints are the output: they must still be there
                && (rung < last || crate::checkpoint::InterestCheckpoint::at(&dir).exists());
            if done {
                continue;
            }
            let over = opts.time_budget.is_some_and(|b| started.elapsed() >= b);
            if rung < last && over {
                if !state.cut.contains(&rung) {
                    state.cut.push(rung);
                }
                log(&format!(
                    "time budget spent: rung {rung} stops after {i} of {} trials",
                    alive.len()
                ));
                break;
            }
            let settings = &state.trials[trial];
            log(&format!(
                "trial {trial} rung {rung} ({steps} steps): {}",
                settings.describe()
            ));
            let t0 = Instant::now();
            let m = train(settings, &dir, steps)?;
            let (ran, ndcg) = (m.steps, m.ndcg_10);
            state
                .results
                .retain(|r| !(r.trial == trial && r.rung == rung));
            state.results.push(TrialResult {
                trial,
                rung,
                max_steps: steps,
                steps: m.steps,
                ndcg_10: m.ndcg_10,
                tail_recall_10: m.tail_recall_10,
                users: m.users,
                seconds: t0.elapsed().as_secs_f64(),
            });
            longtail_fs::write_json_atomic(&state_path, &state)?;
            log(&format!(
                "trial {trial} rung {rung}: validation NDCG@10 {ndcg:.4} after {ran} steps \
                 ({:.0}s)",
                t0.elapsed().as_secs_f64()
            ));
            // Lower rungs' checkpoints are kept only for the best run so far.
            let best = best_run(&state.results).map(|b| (b.trial, b.rung));
            for r in state.results.iter().filter(|r| r.rung < last) {
                if Some((r.trial, r.rung)) != best {
                    let _ = std::fs::remove_dir_all(trial_dir(&opts.dir, r.trial, r.rung));
                }
            }
        }
        // rank this rung's finished trials
        let mut ranked: Vec<&TrialResult> = state
            .results
            .iter()
            .filter(|r| r.rung == rung && alive.contains(&r.trial))
            .collect();
        ranked.sort_by(|a, b| b.ndcg_10.total_cmp(&a.ndcg_10).then(a.trial.cmp(&b.trial)));
        if rung < last {
            let keep = state.rungs[rung + 1].0;
            if ranked.is_empty() {
                // a rung the time budget cut before any run: the order of the rung before
                // stands (the best of the last finished rung still reaches the last rung)
                alive.truncate(keep.max(1));
            } else {
                alive = ranked.iter().take(keep.max(1)).map(|r| r.trial).collect();
            }
        }
    }
    let best = best_run(&state.results)
        .cloned()
        .ok_or_else(|| InterestError::invalid("the search finished without a run"))?;
    let recipe: Vec<TrialResult> = state
        .results
        .iter()
        .filter(|r| r.trial == 0)
        .cloned()
        .collect();
    let (winner, rung) = match best_run(&recipe) {
        Some(r) if best.trial != 0 => {
            let se = longtail_rec::standard_error(r.ndcg_10, r.users as u64);
            if best.ndcg_10 - r.ndcg_10 >= opts.margin_se * se {
                (best.trial, best.rung)
            } else {
                let note = format!(
                    "trial {} at {} steps scored {:.4} vs the recipe's {:.4}: less than {} \
                     standard error(s) ({:.4}) better, so the recipe is kept",
                    best.trial, best.max_steps, best.ndcg_10, r.ndcg_10, opts.margin_se, se
                );
                log(&note);
                state.note = Some(note);
                (r.trial, r.rung)
            }
        }
        _ => (best.trial, best.rung),
    };
    // of the lower rungs, only the chosen run's checkpoint stays
    for r in state.results.iter().filter(|r| r.rung < last) {
        if (r.trial, r.rung) != (winner, rung) {
            let _ = std::fs::remove_dir_all(trial_dir(&opts.dir, r.trial, r.rung));
        }
    }
    let dir = trial_dir(&opts.dir, winner, rung);
    if !crate::checkpoint::InterestCheckpoint::at(&dir).exists() {
        // e.g. a search resumed after its best run's directory was removed: the same seed and
        // settings train the same weights
        log(&format!(
            "trial {winner} rung {rung}: the chosen run's checkpoint is gone; training it again"
        ));
        train(&state.trials[winner], &dir, state.rungs[rung].1)?;
    }
    state.winner = Some(winner);
    state.winner_rung = Some(rung);
    longtail_fs::write_json_atomic(&state_path, &state)?;
    Ok(state)
}

/// The trials table: one row per trial with its best run, the chosen run marked.
pub fn trials_table(state: &TuneState) -> String {
    let mut s = String::from(
        "| trial | settings | rungs reached | best run: step budget (steps run) | validation \
         NDCG@10 | tail-item R@10 | seconds (all runs) |\n|---|---|---|---|---|---|---|\n",
    );
    for (t, settings) in state.trials.iter().enumerate() {
        let runs: Vec<TrialResult> = state
            .results
            .iter()
            .filter(|r| r.trial == t)
            .cloned()
            .collect();
        let (Some(top), Some(best)) = (runs.iter().map(|r| r.rung).max(), best_run(&runs)) else {
            continue;
        };
        let mark = if state.winner == Some(t) {
            " **(chosen)**"
        } else {
            ""
        };
        s.push_str(&format!(
            "| {t}{mark} | {} | {} | {} ({}) | {:.4} | {:.4} | {:.0} |\n",
            settings.describe(),
            top + 1,
            best.max_steps,
            best.steps,
            best.ndcg_10,
            best.tail_recall_10,
            runs.iter().map(|r| r.seconds).sum::<f64>()
        ));
    }
    s
}

#[cfg(test)]
mod tests;
