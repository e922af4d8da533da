//! The pieces composed the way the trainers use them, on a tiny linear
//! model over synthetic data: shuffled batches per epoch, the `StepDriver`
//! (gradient accumulation with a partial last window, clipping, LR schedule,
//! AdamW with a frozen parameter), periodic evaluation with best-metric
//! tracking and early stopping, atomic checkpoints with `save_total_limit`
//! rotation.
//! A run interrupted after a checkpoint and resumed from it must end
//! bit-identical to an uninterrupted run.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use longtail_fs::write_dir_atomic;
use longtail_train::{
    last_checkpoint, num_update_steps_per_epoch, remaining_updates, rotate_checkpoints,
    sorted_checkpoints, AdamW, AdamWConfig, BestMetricConfig, DataOrder, EarlyStopping, LogEntry,
    LrSchedule, ParamGroupSpec, RngState, SchedulerType, StepDriver, TrainError, TrainerState,
    EARLY_STOPPING_CALLBACK, TRAINER_STATE_FILE,
};

const N: usize = 23;
const BATCH: usize = 4;
const GAS: usize = 2;
const EPOCHS: u64 = 3;
const SEED: u64 = 1234;
const SAVE_STEPS: u64 = 2;
const SAVE_TOTAL_LIMIT: usize = 2;
const WEIGHTS_FILE: &str = "model.safetensors";

fn features(i: usize) -> [f32; 3] {
    let i = i as f32;
    [(i).sin(), (1.3 * i).cos(), (0.7 * i).sin()]
}

fn target(x: [f32; 3]) -> f32 {
    0.5 * x[0] - x[1] + 0.25 * x[2] + 0.1
}

fn fresh_vars() -> Vec<(String, Var)> {
    let dev = Device::Cpu;
    vec![
        (
            "embed.weight".to_string(),
            Var::from_slice(&[1.0f32, 0.9, 1.1], 3, &dev).unwrap(),
        ),
        (
            "linear.weight".to_string(),
            Var::from_slice(&[0.1f32, -0.2, 0.3], (1, 3), &dev).unwrap(),
        ),
        (
            "linear.bias".to_string(),
            Var::from_slice(&[0.0f32], 1, &dev).unwrap(),
        ),
    ]
}

fn loss(vars: &[(String, Var)], idx: &[usize]) -> Tensor {
    let dev = Device::Cpu;
    let xs: Vec<f32> = idx.iter().flat_map(|&i| features(i)).collect();
    let ys: Vec<f32> = idx.iter().map(|&i| target(features(i))).collect();
    let x = Tensor::from_slice(&xs, (idx.len(), 3), &dev).unwrap();
    let y = Tensor::from_slice(&ys, (idx.len(), 1), &dev).unwrap();
    let x = x.broadcast_mul(vars[0].1.as_tensor()).unwrap();
    let pred = x
        .matmul(&vars[1].1.as_tensor().t().unwrap())
        .unwrap()
        .broadcast_add(vars[2].1.as_tensor())
        .unwrap();
    (pred - y).unwrap().sqr().unwrap().mean_all().unwrap()
}

fn eval_loss(vars: &[(String, Var)]) -> f64 {
    let idx: Vec<usize> = (100..110).collect();
    loss(vars, &idx).to_scalar::<f32>().unwrap() as f64
}

fn bits(vars: &[(String, Var)]) -> Vec<u32> {
    vars.iter()
        .flat_map(|(_, v)| {
            v.as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        })
        .map(f32::to_bits)
        .collect()
}

struct Outcome {
    weights: Vec<u32>,
    state: TrainerState,
}

/// Trains until the end, or until `stop_after` updates in this invocation.
fn train(out: &Path, stop_after: Option<u64>) -> Outcome {
    let vars = fresh_vars();
    let spec = ParamGroupSpec::new(0.01).frozen_names(["embed.weight"]);
    let config = AdamWConfig {
        learning_rate: 0.05,
        weight_decay: 0.01,
        ..Default::default()
    };
    let opt = AdamW::with_spec(vars.clone(), config, &spec).unwrap();
    let order = DataOrder {
        seed: SEED,
        shuffle: true,
        batch_size: BATCH,
        drop_last: false,
    };
    let num_batches = order.num_batches(N).unwrap();
    let nupe = num_update_steps_per_epoch(num_batches, GAS).unwrap() as u64;
    let max_steps = nupe * EPOCHS;
    let schedule = LrSchedule::from_args(SchedulerType::Linear, 0.05, max_steps, 0, 0.1).unwrap();
    let mut driver = StepDriver::new(opt, schedule, 1.0);
    let best_cfg = BestMetricConfig::new("loss");
    let mut early = EarlyStopping::new(5, 0.0).unwrap();
    let mut state = TrainerState {
        max_steps,
        num_train_epochs: EPOCHS,
        train_batch_size: Some(BATCH as u64),
        save_steps: SAVE_STEPS,
        rng_state: RngState {
            seed: SEED,
            ..Default::default()
        },
        ..Default::default()
    };

    if let Some(ckpt) = last_checkpoint(out).unwrap() {
        let weights =
            candle_core::safetensors::load(ckpt.join(WEIGHTS_FILE), &Device::Cpu).unwrap();
        for (name, var) in &vars {
            var.set(&weights[name]).unwrap();
        }
        state = TrainerState::load(&ckpt.join(TRAINER_STATE_FILE)).unwrap();
        driver.restore(&ckpt, state.global_step).unwrap();
        early =
            EarlyStopping::from_state(&state.stateful_callbacks[EARLY_STOPPING_CALLBACK]).unwrap();
    }

    let mut updates_this_run = 0;
    for window in remaining_updates(state.global_step, num_batches, GAS, EPOCHS).unwrap() {
        let batches = order.batches(N, window.epoch).unwrap();
        let batches = &batches[window.batches.clone()];
        let report = driver
            .step::<TrainError, _>(batches.len(), |i| {
                state.num_samples_seen += batches[i].len() as u64;
                Ok(loss(&vars, &batches[i]))
            })
            .unwrap();
        state.global_step = report.step;
        state.epoch = window.epoch as f64 + window.batches.end as f64 / num_batches as f64;
        state.rng_state.epoch = window.epoch;
        state.rng_state.batches_seen_in_epoch = window.batches.end as u64;
        state.log(
            LogEntry::new(state.global_step, state.epoch)
                .with("loss", report.loss)
                .with("learning_rate", report.learning_rate)
                .with("grad_norm", report.grad_norm),
        );
        updates_this_run += 1;

        if state.global_step.is_multiple_of(SAVE_STEPS) {
            let metrics: BTreeMap<String, f64> =
                [("eval_loss".to_string(), eval_loss(&vars))].into();
            let stop = early.on_evaluate(&metrics, &best_cfg, state.best_metric);
            state.update_best_metric(&metrics, &best_cfg).unwrap();
            state.log(
                LogEntry::new(state.global_step, state.epoch)
                    .with("eval_loss", metrics["eval_loss"]),
            );
            state
                .stateful_callbacks
                .insert(EARLY_STOPPING_CALLBACK.into(), early.state());
            let ckpt = out.join(format!("checkpoint-{}", state.global_step));
            state.record_best_checkpoint(out);
            write_dir_atomic(&ckpt, |tmp| {
                let tensors: std::collections::HashMap<String, Tensor> = vars
                    .iter()
                    .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
                    .collect();
                candle_core::safetensors::save(&tensors, tmp.join(WEIGHTS_FILE)).unwrap();
                driver.save_state(tmp)?;
                state.save(&tmp.join(TRAINER_STATE_FILE))
            })
            .unwrap();
            let best = state.best_model_checkpoint.as_ref().map(Path::new);
            rotate_checkpoints(out, SAVE_TOTAL_LIMIT, best).unwrap();
            assert!(!stop, "patience 5 is never exhausted here");
        }
        if Some(updates_this_run) == stop_after {
            return Outcome {
                weights: bits(&vars),
                state,
            };
        }
    }
    Outcome {
        weights: bits(&vars),
        state,
    }
}

#[test]
fn interrupted_and_resumed_run_is_bit_identical() {
    let dir_a = tempfile::tempdir().unwrap();
    let full = train(dir_a.path(), None);
    assert_eq!(
        full.state.global_step, 9,
        "6 batches, gas 2 -> 3 updates x 3 epochs"
    );

    let dir_b = tempfile::tempdir().unwrap();
    // Stop after 5 updates: the last checkpoint is checkpoint-4, so the
    // resumed run redoes update 5 (mid-epoch: epoch 1, skip 2 batches).
    let partial = train(dir_b.path(), Some(5));
    assert_eq!(partial.state.global_step, 5);
    assert_ne!(partial.weights, full.weights);
    let resumed = train(dir_b.path(), None);

    assert_eq!(resumed.weights, full.weights, "weights differ after resume");
    assert_eq!(resumed.state.global_step, full.state.global_step);
    assert_eq!(resumed.state.log_history, full.state.log_history);
    assert_eq!(resumed.state.best_metric, full.state.best_metric);
    assert_eq!(resumed.state.best_global_step, full.state.best_global_step);
    assert_eq!(resumed.state.num_samples_seen, full.state.num_samples_seen);
    assert_eq!(full.state.num_samples_seen, (N * EPOCHS as usize) as u64);
    assert_eq!(
        resumed.state.stateful_callbacks,
        full.state.stateful_callbacks
    );

    // Training actually learned something and the frozen weight never moved.
    let first = full.state.log_history.first().unwrap().get("loss").unwrap();
    let last_eval = full
        .state
        .log_history
        .iter()
        .rev()
        .find_map(|e| e.get("eval_loss"))
        .unwrap();
    assert!(last_eval < first, "{last_eval} !< {first}");
    assert_eq!(
        &full.weights[..3],
        &[1.0f32, 0.9, 1.1].map(f32::to_bits),
        "frozen embed.weight changed"
    );

    // Rotation kept at most SAVE_TOTAL_LIMIT (+ the best) checkpoints,
    // always including the latest and the best one.
    for (dir, outcome) in [(dir_a.path(), &full), (dir_b.path(), &resumed)] {
        let kept: Vec<u64> = sorted_checkpoints(dir)
            .unwrap()
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        assert!(kept.len() <= SAVE_TOTAL_LIMIT + 1, "{kept:?}");
        assert_eq!(*kept.last().unwrap(), 8, "last save at step 8");
        let best = outcome.state.best_global_step.unwrap();
        assert!(kept.contains(&best), "best {best} deleted: {kept:?}");
    }
}

#[test]
fn checkpoint_contents_are_complete() {
    let dir = tempfile::tempdir().unwrap();
    train(dir.path(), Some(2));
    let ckpt = last_checkpoint(dir.path()).unwrap().unwrap();
    assert!(ckpt.ends_with("checkpoint-2"));
    let mut files: Vec<String> = std::fs::read_dir(&ckpt)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "model.safetensors",
            "optimizer.json",
            "optimizer.safetensors",
            "trainer_state.json"
        ]
    );
    let state = TrainerState::load(&ckpt.join(TRAINER_STATE_FILE)).unwrap();
    assert_eq!(state.global_step, 2);
    assert_eq!(
        state.best_model_checkpoint.as_deref(),
        Some(ckpt.to_str().unwrap())
    );
    let opt =
        candle_core::safetensors::load(ckpt.join("optimizer.safetensors"), &Device::Cpu).unwrap();
    assert_eq!(opt["linear.weight.exp_avg"].dtype(), DType::F32);
    assert!(
        !opt.contains_key("embed.weight.exp_avg"),
        "frozen param has no state"
    );
}
