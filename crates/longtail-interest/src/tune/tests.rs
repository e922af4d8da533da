//! Tests of the tune search: rungs, trial draws, successive halving and its resume.

use super::*;

fn base() -> TrainInterestConfig {
    TrainInterestConfig {
        max_steps: 900,
        ..Default::default()
    }
}

#[test]
fn rungs_shrink_by_eta_and_end_at_the_recipes_budget() {
    assert_eq!(rungs(9, 3, 900), vec![(9, 100), (3, 300), (1, 900)]);
    assert_eq!(rungs(6, 3, 900), vec![(6, 300), (2, 900)]);
    assert_eq!(rungs(2, 3, 900), vec![(2, 900)]);
    assert_eq!(rungs(1, 3, 900), vec![(1, 900)]);
}

#[test]
fn trials_are_seeded_distinct_and_start_with_the_recipe() {
    let space = TuneSpace::default();
    let a = draw_trials(&space, &base(), 9, 7);
    assert_eq!(a.len(), 9);
    assert_eq!(a[0], TrialSettings::default());
    assert_eq!(
        a,
        draw_trials(&space, &base(), 9, 7),
        "same seed, same trials"
    );
    assert_ne!(a, draw_trials(&space, &base(), 9, 8));
    let cfgs: Vec<_> = a.iter().map(|t| t.apply(&base(), 900)).collect();
    for i in 0..cfgs.len() {
        for j in i + 1..cfgs.len() {
            assert_ne!(cfgs[i], cfgs[j], "trials {i} and {j}");
        }
    }
    // A one-point space equal to the recipe has nothing else to offer.
    let b = base();
    let tiny = TuneSpace {
        id_min_count: vec![b.id_min_count],
        learning_rate: vec![b.learning_rate],
        dropout: vec![b.hidden_dropout_prob],
        temperature: vec![b.temperature],
        num_hidden_layers: vec![b.num_hidden_layers],
        hidden_size: vec![b.hidden_size],
    };
    assert_eq!(b.hidden_dropout_prob, b.attention_probs_dropout_prob);
    assert_eq!(draw_trials(&tiny, &b, 5, 1).len(), 1);
}

/// Search options: eta 3, the default space, margin 1 standard error.
fn options(dir: &Path, trials: usize, seed: u64, time_budget: Option<Duration>) -> TuneOptions {
    TuneOptions {
        trials,
        eta: 3,
        seed,
        space: TuneSpace::default(),
        time_budget,
        dir: dir.join("trials"),
        margin_se: 1.0,
    }
}

/// The marker a fake run leaves: what the search checks a checkpoint by.
fn checkpoint(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("interest.json"), "{}").unwrap();
}

/// A fake trainer: validation NDCG@10 grows with the step budget and with the learning
/// rate (so trial ranks are known), and every run leaves a checkpoint marker.
fn fake<'a>(
    calls: &'a mut Vec<(usize, u64)>,
    trials: &[TrialSettings],
) -> impl FnMut(&TrialSettings, &Path, u64) -> Result<RunMetrics> + 'a {
    let trials = trials.to_vec();
    move |s, dir, steps| {
        let t = trials.iter().position(|x| x == s).unwrap();
        calls.push((t, steps));
        checkpoint(dir);
        let lr = s.learning_rate.unwrap_or(1e-3);
        Ok(RunMetrics {
            steps,
            ndcg_10: steps as f64 * 1e-4 + lr,
            tail_recall_10: 0.01,
            users: 0,
        })
    }
}

#[test]
fn the_search_promotes_the_best_keeps_the_recipe_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let opts = options(dir.path(), 9, 3, None);
    let b = base();
    let trials = draw_trials(&opts.space, &b, 9, 3);
    let mut calls = Vec::new();
    let state = successive_halving(&b, &opts, &mut |_| {}, &mut fake(&mut calls, &trials)).unwrap();
    // 9 at 100 steps, 3 at 300, then the best one and the recipe at 900
    assert_eq!(calls.iter().filter(|c| c.1 == 100).count(), 9);
    assert_eq!(calls.iter().filter(|c| c.1 == 300).count(), 3);
    let last: Vec<usize> = calls.iter().filter(|c| c.1 == 900).map(|c| c.0).collect();
    assert!(
        last.contains(&0),
        "the recipe runs in the last rung: {last:?}"
    );
    // the winner has the largest learning rate among the last rung
    let best_lr = last
        .iter()
        .map(|&t| trials[t].learning_rate.unwrap_or(1e-3))
        .fold(f64::MIN, f64::max);
    let w = state.winner.unwrap();
    assert_eq!(
        state.winner_rung,
        Some(2),
        "the longest runs are the best here"
    );
    assert_eq!(trials[w].learning_rate.unwrap_or(1e-3), best_lr);
    assert!(trial_dir(&opts.dir, w, 2).join("interest.json").is_file());
    for t in 0..9 {
        assert!(
            !trial_dir(&opts.dir, t, 0).exists(),
            "lower rungs are removed"
        );
    }
    let table = trials_table(&state);
    assert!(table.contains("**(chosen)**"), "{table}");
    assert_eq!(table.lines().count(), 2 + 9);

    // A second run trains nothing and chooses the same.
    let mut again = Vec::new();
    let resumed =
        successive_halving(&b, &opts, &mut |_| {}, &mut fake(&mut again, &trials)).unwrap();
    assert!(again.is_empty(), "{again:?}");
    assert_eq!(resumed.winner, state.winner);
    // Another recipe in the same directory is refused.
    let other = TrainInterestConfig {
        learning_rate: 0.5,
        ..b.clone()
    };
    let err = successive_halving(&other, &opts, &mut |_| {}, &mut fake(&mut again, &trials))
        .unwrap_err()
        .to_string();
    assert!(err.contains("holds another search"), "{err}");
}

#[test]
fn a_shorter_run_can_win_and_its_checkpoint_is_kept_or_retrained() {
    let dir = tempfile::tempdir().unwrap();
    let opts = options(dir.path(), 9, 3, None);
    let b = base();
    let trials = draw_trials(&opts.space, &b, 9, 3);
    // Every trial peaks at the middle budget (its schedule anneals sooner).
    let calls = std::cell::RefCell::new(Vec::new());
    let mut peaked = |s: &TrialSettings, d: &Path, steps: u64| {
        let t = trials.iter().position(|x| x == s).unwrap();
        calls.borrow_mut().push((t, steps));
        checkpoint(d);
        let lr = s.learning_rate.unwrap_or(1e-3);
        Ok(RunMetrics {
            steps,
            ndcg_10: if steps == 300 { 0.5 } else { 0.1 } + lr,
            tail_recall_10: 0.01,
            users: 0,
        })
    };
    let state = successive_halving(&b, &opts, &mut |_| {}, &mut peaked).unwrap();
    let w = state.winner.unwrap();
    assert_eq!(state.winner_rung, Some(1));
    assert!(trial_dir(&opts.dir, w, 1).join("interest.json").is_file());
    for r in state.results.iter().filter(|r| r.rung < 2 && r.trial != w) {
        assert!(!trial_dir(&opts.dir, r.trial, r.rung).exists());
    }
    // A resumed search whose chosen checkpoint is gone trains that one run again.
    std::fs::remove_dir_all(trial_dir(&opts.dir, w, 1)).unwrap();
    calls.borrow_mut().clear();
    let again = successive_halving(&b, &opts, &mut |_| {}, &mut peaked).unwrap();
    assert_eq!(*calls.borrow(), vec![(w, 300)]);
    assert_eq!((again.winner, again.winner_rung), (Some(w), Some(1)));
}

#[test]
fn a_trial_must_beat_the_recipe_by_the_margin_to_replace_it() {
    // the recipe scores 0.10 on 1,000 users: one standard error is about 0.0095
    for (gain, recipe_kept) in [(0.005, true), (0.02, false)] {
        let dir = tempfile::tempdir().unwrap();
        let opts = options(dir.path(), 3, 5, None);
        let b = base();
        let mut train = |s: &TrialSettings, d: &Path, steps: u64| {
            checkpoint(d);
            let recipe = *s == TrialSettings::default();
            Ok(RunMetrics {
                steps,
                ndcg_10: if recipe { 0.10 } else { 0.10 + gain },
                tail_recall_10: 0.0,
                users: 1000,
            })
        };
        let state = successive_halving(&b, &opts, &mut |_| {}, &mut train).unwrap();
        assert_eq!(
            state.winner == Some(0),
            recipe_kept,
            "gain {gain}: {state:?}"
        );
        assert_eq!(state.note.is_some(), recipe_kept);
        let (w, r) = (state.winner.unwrap(), state.winner_rung.unwrap());
        assert!(trial_dir(&opts.dir, w, r).join("interest.json").is_file());
    }
}

#[test]
fn a_budget_cut_still_sends_the_best_finished_trial_to_the_last_rung() {
    let dir = tempfile::tempdir().unwrap();
    let b = base();
    let full = options(dir.path(), 9, 3, None);
    let trials = draw_trials(&full.space, &b, 9, 3);
    // rung 0 runs in full, then the budget is spent before rung 1 starts
    let mut calls = Vec::new();
    let mut first = fake(&mut calls, &trials);
    let mut only_rung0 = |s: &TrialSettings, d: &Path, steps: u64| {
        if steps > 100 {
            return Err(InterestError::invalid("stop after rung 0"));
        }
        first(s, d, steps)
    };
    assert!(successive_halving(&b, &full, &mut |_| {}, &mut only_rung0).is_err());
    let cut = options(dir.path(), 9, 3, Some(Duration::ZERO));
    let mut later = Vec::new();
    let state = successive_halving(&b, &cut, &mut |_| {}, &mut fake(&mut later, &trials)).unwrap();
    let best0 = state
        .results
        .iter()
        .filter(|r| r.rung == 0)
        // ties: the lower trial, as the search ranks
        .max_by(|a, b| a.ndcg_10.total_cmp(&b.ndcg_10).then(b.trial.cmp(&a.trial)))
        .unwrap()
        .trial;
    let mut last: Vec<usize> = later.iter().map(|c| c.0).collect();
    last.sort();
    let mut want = vec![0, best0];
    want.sort();
    want.dedup();
    assert_eq!(last, want, "the recipe and rung 0's best, at full budget");
    assert!(later.iter().all(|c| c.1 == 900));
    assert_eq!(state.cut, vec![1]);
}

#[test]
fn a_spent_time_budget_skips_exploration_but_not_the_last_rung() {
    let dir = tempfile::tempdir().unwrap();
    let opts = options(dir.path(), 9, 3, Some(Duration::ZERO));
    let b = base();
    let trials = draw_trials(&opts.space, &b, 9, 3);
    let mut calls = Vec::new();
    let state = successive_halving(&b, &opts, &mut |_| {}, &mut fake(&mut calls, &trials)).unwrap();
    assert_eq!(calls, vec![(0, 900)], "only the recipe, at full budget");
    assert_eq!(state.winner, Some(0));
    assert_eq!(state.cut, vec![0, 1]);
}
