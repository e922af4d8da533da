//! The loop's contract on a two-weight least-squares objective: cadence, save policies, early
//! stopping, an exact resume, the NaN stop and the metrics log.

use super::*;
use crate::adamw::{AdamW, AdamWConfig};
use crate::schedule::{LrSchedule, SchedulerType};
use crate::shuffle::epoch_permutation;
use candle_core::{Device, Var};

/// `loss = mean((w . x - y)^2)` over a batch; evaluation reports scripted values (to steer
/// improvements) or the full-data loss.
struct Squares {
    w: Var,
    xs: Vec<[f32; 2]>,
    ys: Vec<f32>,
    batch_size: usize,
    scripted: Vec<f64>,
    evaluations: usize,
    dir: PathBuf,
    saves: Vec<u64>,
    /// Replaces the loss of every micro-batch (the NaN test).
    poison: Option<f32>,
}

impl Squares {
    fn new(dir: &Path, scripted: Vec<f64>) -> Self {
        let xs: Vec<[f32; 2]> = (0..11).map(|i| [i as f32 / 10.0, 1.0]).collect();
        let ys = xs.iter().map(|x| 3.0 * x[0] - 1.0).collect();
        Self {
            w: Var::from_slice(&[0.5f32, 0.5], 2, &Device::Cpu).unwrap(),
            xs,
            ys,
            batch_size: 3,
            scripted,
            evaluations: 0,
            dir: dir.to_path_buf(),
            saves: Vec::new(),
            poison: None,
        }
    }

    fn weights(&self) -> Vec<f32> {
        self.w.as_tensor().to_vec1().unwrap()
    }
}

impl Objective for Squares {
    type Batch = Vec<usize>;
    type Error = TrainError;

    fn num_batches(&self) -> usize {
        self.xs.len().div_ceil(self.batch_size)
    }

    fn epoch_batches(&mut self, epoch: u64) -> Result<Vec<Vec<usize>>> {
        let order = epoch_permutation(self.xs.len(), 7, epoch);
        Ok(order
            .chunks(self.batch_size)
            .map(<[usize]>::to_vec)
            .collect())
    }

    fn loss(&mut self, batch: &Vec<usize>) -> Result<Tensor> {
        if let Some(v) = self.poison {
            return Ok(Tensor::new(v, &Device::Cpu)?);
        }
        let x: Vec<f32> = batch.iter().flat_map(|&i| self.xs[i]).collect();
        let y: Vec<f32> = batch.iter().map(|&i| self.ys[i]).collect();
        let x = Tensor::from_vec(x, (batch.len(), 2), &Device::Cpu)?;
        let y = Tensor::from_vec(y, batch.len(), &Device::Cpu)?;
        let pred = x.matmul(&self.w.as_tensor().unsqueeze(1)?)?.squeeze(1)?;
        Ok((pred - y)?.sqr()?.mean_all()?)
    }

    fn count(&self, batch: &Vec<usize>) -> (u64, u64) {
        (batch.len() as u64, 2 * batch.len() as u64)
    }

    fn evaluate(&mut self, _state: &TrainerState) -> Result<Option<BTreeMap<String, f64>>> {
        let value = self.scripted.get(self.evaluations).copied();
        self.evaluations += 1;
        Ok(value.map(|v| [("eval_score".to_string(), v)].into()))
    }

    fn save(&mut self, driver: &StepDriver, state: &mut TrainerState) -> Result<PathBuf> {
        let dir = self.dir.join(format!("checkpoint-{}", state.global_step));
        fs::create_dir_all(&dir).map_err(|e| TrainError::io(&dir, e))?;
        longtail_fs::write_json_atomic(&dir.join("w.json"), &self.weights())?;
        driver.save_state(&dir)?;
        state.save(&dir.join(crate::TRAINER_STATE_FILE))?;
        self.saves.push(state.global_step);
        Ok(dir)
    }
}

fn driver(w: &Var, max_steps: u64) -> StepDriver {
    let opt = AdamW::new(
        vec![("w".into(), w.clone())],
        AdamWConfig {
            learning_rate: 0.05,
            ..Default::default()
        },
    )
    .unwrap();
    let schedule = LrSchedule::from_args(SchedulerType::Linear, 0.05, max_steps, 0, 0.2).unwrap();
    StepDriver::new(opt, schedule, 1.0)
}

fn settings(max_steps: u64) -> FitSettings {
    FitSettings {
        max_steps,
        gradient_accumulation_steps: 2,
        logging_steps: 2,
        ..Default::default()
    }
}

fn fit(obj: &mut Squares, s: FitSettings) -> (FitOutcome, TrainerState, Vec<String>) {
    let state = TrainerState {
        max_steps: s.max_steps,
        ..Default::default()
    };
    let mut learner = Learner::new(driver(&obj.w, s.max_steps), state, s).unwrap();
    let mut messages = Vec::new();
    let out = learner
        .fit(obj, &mut |e| {
            if let Event::Message(m) = e {
                messages.push(m.to_string())
            }
        })
        .unwrap();
    (out, learner.into_parts().1, messages)
}

#[test]
fn every_evaluation_saves_a_checkpoint_and_the_final_state_is_always_saved() {
    let tmp = tempfile::tempdir().unwrap();
    // 11 examples in batches of 3 = 4 micro-batches, 2 per update: 2 updates per epoch.
    let mut obj = Squares::new(tmp.path(), vec![0.1; 10]);
    let s = FitSettings {
        eval: EvalCadence::Steps(3),
        save: SavePolicy::EveryEvaluation,
        ..settings(7)
    };
    let (out, state, _) = fit(&mut obj, s);
    assert_eq!((out.updates, state.global_step), (7, 7));
    assert_eq!(
        obj.saves,
        [3, 6, 7],
        "steps 3 and 6, and the final step 7 evaluated"
    );
    assert_eq!(out.last_checkpoint.unwrap().0, 7);
    assert_eq!(
        state.num_samples_seen,
        11 * 3 + 6,
        "three epochs and one update"
    );
    assert_eq!(state.num_input_tokens_seen, 2 * state.num_samples_seen);
    assert_eq!(out.samples, state.num_samples_seen);

    // No evaluation: a checkpoint at the end of every epoch (steps 2, 4, 6) and the last step.
    let mut obj = Squares::new(tmp.path(), vec![]);
    let s = FitSettings {
        save: SavePolicy::EveryEvaluation,
        ..settings(7)
    };
    fit(&mut obj, s);
    assert_eq!(obj.saves, [2, 4, 6, 7]);
}

#[test]
fn best_saves_on_improvement_and_early_stopping_counts_evaluations_without_one() {
    let tmp = tempfile::tempdir().unwrap();
    let mut obj = Squares::new(tmp.path(), vec![0.2, 0.3, 0.3, 0.25, 0.31, 0.1]);
    let s = FitSettings {
        eval: EvalCadence::Steps(1),
        save: SavePolicy::Best,
        best_metric: Some(BestMetricConfig::new("score")),
        early_stopping: Some(EarlyStopping::new(2, 0.0).unwrap()),
        ..settings(20)
    };
    let (out, state, messages) = fit(&mut obj, s);
    // 0.2 (best), 0.3 (best), 0.3 (equal: not better), 0.25 (worse): patience 2 is spent.
    assert_eq!(obj.saves, [1, 2]);
    assert!(out.early_stopped);
    assert_eq!(state.global_step, 4);
    assert_eq!(
        (state.best_metric, state.best_global_step),
        (Some(0.3), Some(2))
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("early stopping at step 4")),
        "{messages:?}"
    );
    assert_eq!(
        state.stateful_callbacks[EARLY_STOPPING_CALLBACK]["attributes"]
            ["early_stopping_patience_counter"],
        2
    );

    // Nothing evaluated (no validation users): the final state is the model.
    let mut obj = Squares::new(tmp.path(), vec![]);
    let s = FitSettings {
        eval: EvalCadence::Steps(2),
        save: SavePolicy::Best,
        best_metric: Some(BestMetricConfig::new("score")),
        ..settings(5)
    };
    fit(&mut obj, s);
    assert_eq!(obj.saves, [5]);
}

#[test]
fn an_interrupted_run_resumed_from_its_checkpoint_ends_at_the_same_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let s = || FitSettings {
        eval: EvalCadence::Epoch,
        save: SavePolicy::EveryEvaluation,
        ..settings(9)
    };
    let mut straight = Squares::new(&tmp.path().join("a"), vec![0.5; 10]);
    fit(&mut straight, s());

    let mut first = Squares::new(&tmp.path().join("b"), vec![0.5; 10]);
    let (out, _, _) = fit(
        &mut first,
        FitSettings {
            stop_after_steps: 5,
            ..s()
        },
    );
    assert!(out.interrupted);
    assert_eq!(first.saves, [2, 4], "no final save when interrupted");
    let ckpt = first.dir.join("checkpoint-4");

    // A fresh process: weights, optimizer moments and state from the checkpoint.
    let mut resumed = Squares::new(&tmp.path().join("b"), vec![0.5; 10]);
    let w: Vec<f32> = longtail_fs::read_json(&ckpt.join("w.json")).unwrap();
    resumed
        .w
        .set(&Tensor::new(w.as_slice(), &Device::Cpu).unwrap())
        .unwrap();
    let state = TrainerState::load(&ckpt.join(crate::TRAINER_STATE_FILE)).unwrap();
    let mut d = driver(&resumed.w, 9);
    d.restore(&ckpt, state.global_step).unwrap();
    let mut learner = Learner::new(d, state, s()).unwrap().resumed_from(ckpt);
    let out = learner.fit(&mut resumed, &mut |_| {}).unwrap();
    assert_eq!((out.start_step, out.updates), (4, 5));
    assert_eq!(resumed.weights(), straight.weights());
    assert_eq!(
        learner.state().num_samples_seen,
        TrainerState::load(
            &straight
                .dir
                .join("checkpoint-9")
                .join(crate::TRAINER_STATE_FILE)
        )
        .unwrap()
        .num_samples_seen
    );
}

#[test]
fn a_non_finite_loss_stops_the_run_naming_the_last_good_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let mut obj = Squares::new(tmp.path(), vec![0.5; 10]);
    let s = FitSettings {
        eval: EvalCadence::Steps(2),
        save: SavePolicy::EveryEvaluation,
        stop_after_steps: 2,
        ..settings(10)
    };
    fit(&mut obj, s.clone());
    let ckpt = tmp.path().join("checkpoint-2");
    let before = obj.weights();
    obj.poison = Some(f32::NAN);
    let state = TrainerState::load(&ckpt.join(crate::TRAINER_STATE_FILE)).unwrap();
    let mut d = driver(&obj.w, 10);
    d.restore(&ckpt, 2).unwrap();
    let mut learner = Learner::new(d, state, s)
        .unwrap()
        .resumed_from(ckpt.clone());
    let err = learner.fit(&mut obj, &mut |_| {}).unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(
            err,
            TrainError::Diverged {
                step: 3,
                epoch: 1,
                ..
            }
        ),
        "{text}"
    );
    assert!(text.contains(&ckpt.display().to_string()), "{text}");
    assert_eq!(obj.weights(), before, "the update was not applied");
}

#[test]
fn log_lines_follow_logging_steps_and_the_metrics_file_mirrors_the_history() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("metrics.jsonl");
    let mut obj = Squares::new(tmp.path(), vec![0.4; 10]);
    let s = FitSettings {
        eval: EvalCadence::Steps(4),
        metrics_file: Some(file.clone()),
        ..settings(6)
    };
    let (_, state, _) = fit(&mut obj, s);
    let steps: Vec<(u64, bool)> = state
        .log_history
        .iter()
        .map(|e| (e.step, e.get("eval_score").is_some()))
        .collect();
    assert_eq!(
        steps,
        [(2, false), (4, false), (4, true), (6, false), (6, true)]
    );
    let lines: Vec<LogEntry> = fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines, state.log_history);
    assert!(state.log_history[0].get("loss").unwrap() > 0.0);
    assert_eq!(obj.saves, [6], "SavePolicy::End");
}

#[test]
fn settings_are_checked_once() {
    let w = Var::from_slice(&[0.0f32], 1, &Device::Cpu).unwrap();
    let bad = |s: FitSettings| Learner::new(driver(&w, 5), TrainerState::default(), s).is_err();
    assert!(bad(FitSettings {
        logging_steps: 0,
        ..settings(5)
    }));
    assert!(bad(FitSettings {
        eval: EvalCadence::Steps(0),
        ..settings(5)
    }));
    assert!(bad(FitSettings {
        save: SavePolicy::Best,
        ..settings(5)
    }));
    let ahead = driver(&w, 5).starting_at(3);
    assert!(Learner::new(ahead, TrainerState::default(), settings(5)).is_err());
}
