//! The optimizer update every longtail training loop runs, in one place: [`StepDriver`] owns
//! the optimizer, the LR schedule, the clipping threshold, the gradient accumulator and the
//! update counter, and runs `forward/backward (per micro-batch) -> clip -> lr -> AdamW step`.
//! [`remaining_updates`] lays out where each update's micro-batches come from, so that a
//! resumed run skips exactly what the interrupted one consumed.

use std::ops::Range;
use std::path::Path;
use std::time::{Duration, Instant};

use candle_core::{Device, Tensor};

use crate::accumulate::{accumulation_windows, num_update_steps_per_epoch, GradAccumulator};
use crate::adamw::AdamW;
use crate::clip::clip_grad_norm;
use crate::error::{Result, TrainError};
use crate::schedule::LrSchedule;
use crate::trainer_state::resume_position;

/// What one optimizer update did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepReport {
    /// The number of updates done, this one included.
    pub step: u64,
    /// Mean loss of the update's micro-batches.
    pub loss: f64,
    /// Global L2 norm of the gradients before clipping.
    pub grad_norm: f64,
    /// The learning rate the update used (`schedule.lr_at(step - 1)`).
    pub learning_rate: f64,
}

/// Wall time of each phase of the updates, with the device synchronised at the end of every
/// phase: a GPU runs kernels asynchronously, so without the synchronisation the time lands
/// wherever the next read-back waits. A diagnostic ([`StepDriver::time_phases`]), off by
/// default because the extra synchronisations cost a little.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PhaseTimes {
    pub updates: u64,
    /// Forward passes up to the loss on the host (building and uploading the batch included).
    pub forward: Duration,
    pub backward: Duration,
    /// The global gradient norm and the clipping.
    pub clip: Duration,
    /// The AdamW update.
    pub optimizer: Duration,
}

impl PhaseTimes {
    /// `forward 12.3 ms, backward 20.1 ms, clip 1.0 ms, AdamW 8.2 ms per update (100 updates)`.
    pub fn per_update(&self) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1e3 / self.updates.max(1) as f64;
        format!(
            "forward {:.1} ms, backward {:.1} ms, clip {:.1} ms, AdamW {:.1} ms per update ({} updates)",
            ms(self.forward),
            ms(self.backward),
            ms(self.clip),
            ms(self.optimizer),
            self.updates
        )
    }
}

#[derive(Debug)]
struct PhaseClock {
    device: Device,
    times: PhaseTimes,
    last: Instant,
}

impl PhaseClock {
    /// Synchronises the device and adds the time since the last lap to `phase`.
    fn lap(&mut self, phase: fn(&mut PhaseTimes) -> &mut Duration) -> Result<()> {
        self.device.synchronize()?;
        let now = Instant::now();
        *phase(&mut self.times) += now - self.last;
        self.last = now;
        Ok(())
    }

    /// Starts timing from now (whatever ran since the last lap is no phase's).
    fn restart(&mut self) -> Result<()> {
        self.device.synchronize()?;
        self.last = Instant::now();
        Ok(())
    }
}

/// Optimizer + schedule + clipping + accumulation + update counter.
///
/// Update `n + 1` uses `schedule.lr_at(n)` where `n` counts every update since the schedule
/// began, including those done before a [`restore`](Self::restore): a resumed run continues
/// the schedule where its checkpoint stopped.
#[derive(Debug)]
pub struct StepDriver {
    optimizer: AdamW,
    schedule: LrSchedule,
    max_grad_norm: f64,
    accumulator: GradAccumulator,
    global_step: u64,
    clock: Option<PhaseClock>,
}

impl StepDriver {
    /// A driver at update 0. `max_grad_norm <= 0` disables clipping (the norm is still
    /// measured).
    pub fn new(optimizer: AdamW, schedule: LrSchedule, max_grad_norm: f64) -> Self {
        let accumulator = GradAccumulator::new(optimizer.trainable_vars());
        Self {
            optimizer,
            schedule,
            max_grad_norm,
            accumulator,
            global_step: 0,
            clock: None,
        }
    }

    /// Measures the wall time of each phase of every update from now on (see [`PhaseTimes`]).
    pub fn time_phases(mut self) -> Self {
        let device = self
            .optimizer
            .trainable_vars()
            .first()
            .map_or(Device::Cpu, |v| v.device().clone());
        self.clock = Some(PhaseClock {
            device,
            times: PhaseTimes::default(),
            last: Instant::now(),
        });
        self
    }

    /// The phase times so far, when [`time_phases`](Self::time_phases) is on.
    pub fn phase_times(&self) -> Option<PhaseTimes> {
        self.clock.as_ref().map(|c| c.times)
    }

    /// Continues the schedule after `global_step` updates whose optimizer state was not kept
    /// (fresh moments); see [`restore`](Self::restore) to continue with it.
    pub fn starting_at(mut self, global_step: u64) -> Self {
        self.global_step = global_step;
        self
    }

    /// Continues after `global_step` updates, with the optimizer state saved in `dir` by
    /// [`save_state`](Self::save_state).
    pub fn restore(&mut self, dir: &Path, global_step: u64) -> Result<()> {
        self.optimizer.load_state(dir)?;
        self.global_step = global_step;
        Ok(())
    }

    /// Writes the optimizer state (moments, step counts) into the existing directory `dir`.
    pub fn save_state(&self, dir: &Path) -> Result<()> {
        self.optimizer.save_state(dir)
    }

    /// Updates done so far (restored ones included).
    pub fn global_step(&self) -> u64 {
        self.global_step
    }

    pub fn optimizer(&self) -> &AdamW {
        &self.optimizer
    }

    pub fn schedule(&self) -> &LrSchedule {
        &self.schedule
    }

    /// One optimizer update over `micro_batches` micro-batches: `loss_of(i)` builds the loss
    /// of micro-batch `i` (forward pass), which is scaled by `1 / micro_batches` and
    /// back-propagated; the summed gradients are clipped to `max_grad_norm` and AdamW steps at
    /// the scheduled learning rate.
    ///
    /// A NaN or infinite loss or gradient norm is a [`TrainError::NonFinite`] error and the
    /// parameters are left as they were.
    pub fn step<E, F>(&mut self, micro_batches: usize, mut loss_of: F) -> Result<StepReport, E>
    where
        E: From<TrainError>,
        F: FnMut(usize) -> Result<Tensor, E>,
    {
        let step = self.global_step + 1;
        if let Some(clock) = &mut self.clock {
            clock.restart()?;
        }
        self.accumulator.begin_window(micro_batches)?;
        let result = self.accumulate::<E, F>(micro_batches, step, &mut loss_of);
        // Whatever happened, the next update starts from an empty window.
        let mut grads = self.accumulator.take();
        let loss = result?;
        let grad_norm = clip_grad_norm(
            &mut grads,
            &self.optimizer.trainable_vars(),
            self.max_grad_norm,
        )?;
        if let Some(clock) = &mut self.clock {
            clock.lap(|t| &mut t.clip)?;
        }
        if !grad_norm.is_finite() {
            return Err(TrainError::NonFinite {
                what: "gradient norm",
                value: grad_norm,
                step,
            }
            .into());
        }
        let learning_rate = self.schedule.lr_at(self.global_step);
        self.optimizer.set_learning_rate(learning_rate);
        self.optimizer.step(&grads)?;
        if let Some(clock) = &mut self.clock {
            clock.lap(|t| &mut t.optimizer)?;
            clock.times.updates += 1;
        }
        self.global_step = step;
        Ok(StepReport {
            step,
            loss,
            grad_norm,
            learning_rate,
        })
    }

    /// Forward and backward of each micro-batch; returns the mean loss.
    fn accumulate<E, F>(
        &mut self,
        micro_batches: usize,
        step: u64,
        loss_of: &mut F,
    ) -> Result<f64, E>
    where
        E: From<TrainError>,
        F: FnMut(usize) -> Result<Tensor, E>,
    {
        let mut mean = 0.0f64;
        for i in 0..micro_batches {
            let loss = loss_of(i)?;
            let value = f64::from(loss.to_scalar::<f32>().map_err(TrainError::from)?);
            if !value.is_finite() {
                return Err(TrainError::NonFinite {
                    what: "training loss",
                    value,
                    step,
                }
                .into());
            }
            mean += value / micro_batches as f64;
            if let Some(clock) = &mut self.clock {
                clock.lap(|t| &mut t.forward)?;
            }
            self.accumulator.backward(&loss)?;
            if let Some(clock) = &mut self.clock {
                clock.lap(|t| &mut t.backward)?;
            }
        }
        Ok(mean)
    }
}

/// Where one optimizer update's micro-batches come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateWindow {
    pub epoch: u64,
    /// Indices into the epoch's list of micro-batches.
    pub batches: Range<usize>,
    /// The last update of the epoch.
    pub end_of_epoch: bool,
}

/// The updates left after `global_step` of `num_epochs` epochs, each epoch being
/// `num_batches` micro-batches taken `gradient_accumulation_steps` at a time (the last window
/// of an epoch may be shorter). The epochs finished and the windows of the current epoch
/// already consumed are left out (the HF Trainer's resume arithmetic), so an interrupted and
/// resumed run sees the same data as an uninterrupted one.
pub fn remaining_updates(
    global_step: u64,
    num_batches: usize,
    gradient_accumulation_steps: usize,
    num_epochs: u64,
) -> Result<Vec<UpdateWindow>> {
    let per_epoch = num_update_steps_per_epoch(num_batches, gradient_accumulation_steps)? as u64;
    let pos = resume_position(global_step, per_epoch, gradient_accumulation_steps as u64)?;
    let windows = accumulation_windows(num_batches, gradient_accumulation_steps)?;
    let mut out = Vec::new();
    for epoch in pos.epochs_trained..num_epochs {
        let skip = if epoch == pos.epochs_trained {
            pos.batches_to_skip as usize
        } else {
            0
        };
        let mut cursor = 0;
        for &len in &windows {
            let start = cursor;
            cursor += len;
            if start >= skip {
                out.push(UpdateWindow {
                    epoch,
                    batches: start..cursor,
                    end_of_epoch: cursor == num_batches,
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adamw::AdamWConfig;
    use crate::schedule::SchedulerType;
    use candle_core::{Device, Var};

    fn driver(lr: f64, max_steps: u64) -> (StepDriver, Var) {
        let w = Var::from_slice(&[1.0f32, -2.0], 2, &Device::Cpu).unwrap();
        let opt = AdamW::new(
            vec![("w".into(), w.clone())],
            AdamWConfig {
                learning_rate: lr,
                weight_decay: 0.0,
                ..Default::default()
            },
        )
        .unwrap();
        let schedule = LrSchedule::from_args(SchedulerType::Linear, lr, max_steps, 0, 0.5).unwrap();
        (StepDriver::new(opt, schedule, 1.0), w)
    }

    fn values(v: &Var) -> Vec<f32> {
        v.as_tensor().to_vec1::<f32>().unwrap()
    }

    #[test]
    fn updates_follow_the_schedule_and_a_restore_continues_it() {
        let (mut d, w) = driver(0.1, 4);
        let sq = |w: &Var| w.as_tensor().sqr().unwrap().sum_all().unwrap();
        let mut lrs = Vec::new();
        for _ in 0..4 {
            let r = d.step::<TrainError, _>(1, |_| Ok(sq(&w))).unwrap();
            lrs.push(r.learning_rate);
            assert_eq!(r.step, d.global_step());
        }
        let expected: Vec<f64> = (0..4).map(|s| d.schedule().lr_at(s)).collect();
        assert_eq!(lrs, expected);
        assert_eq!(lrs[0], 0.0, "warmup starts at 0");

        // Stop after 2 updates, save, restore into a fresh driver: the rest of the schedule
        // and the weights match the straight run.
        let (mut a, wa) = driver(0.1, 4);
        for _ in 0..2 {
            a.step::<TrainError, _>(1, |_| Ok(sq(&wa))).unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        a.save_state(dir.path()).unwrap();
        let (mut b, wb) = driver(0.1, 4);
        wb.set(wa.as_tensor()).unwrap();
        b.restore(dir.path(), 2).unwrap();
        let r = b.step::<TrainError, _>(1, |_| Ok(sq(&wb))).unwrap();
        assert_eq!(r.learning_rate, lrs[2]);
        b.step::<TrainError, _>(1, |_| Ok(sq(&wb))).unwrap();
        assert_eq!(values(&wb), values(&w));
    }

    #[test]
    fn phase_times_count_updates_and_leave_the_updates_alone() {
        let sq = |w: &Var| w.as_tensor().sqr().unwrap().sum_all().unwrap();
        let (mut plain, wp) = driver(0.1, 4);
        let (timed, wt) = driver(0.1, 4);
        let mut timed = timed.time_phases();
        assert_eq!(plain.phase_times(), None);
        for _ in 0..3 {
            plain.step::<TrainError, _>(2, |_| Ok(sq(&wp))).unwrap();
            timed.step::<TrainError, _>(2, |_| Ok(sq(&wt))).unwrap();
        }
        assert_eq!(values(&wt), values(&wp));
        let t = timed.phase_times().unwrap();
        assert_eq!(t.updates, 3);
        let total = t.forward + t.backward + t.clip + t.optimizer;
        assert!(total > Duration::ZERO);
        assert!(
            t.per_update().ends_with("per update (3 updates)"),
            "{}",
            t.per_update()
        );
    }

    #[test]
    fn micro_batch_losses_are_averaged_and_non_finite_values_stop_the_update() {
        let (mut d, w) = driver(0.1, 10);
        let t = |x: f32| Tensor::new(x, &Device::Cpu).unwrap();
        let wt = w.as_tensor().clone();
        let r = d
            .step::<TrainError, _>(2, |i| {
                Ok(((wt.sum_all().unwrap() * 0.0).unwrap() + t(i as f32 * 2.0 + 1.0)).unwrap())
            })
            .unwrap();
        assert_eq!(r.loss, 2.0);

        let before = values(&w);
        let err = d.step::<TrainError, _>(1, |_| Ok(t(f32::NAN))).unwrap_err();
        assert!(
            matches!(
                err,
                TrainError::NonFinite {
                    what: "training loss",
                    step: 2,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(d.global_step(), 1);
        assert_eq!(values(&w), before);
        // The failed window does not block the next update.
        let inf = (w.as_tensor().sum_all().unwrap() * f64::INFINITY).unwrap();
        let err = d.step::<TrainError, _>(1, |_| Ok(inf.clone())).unwrap_err();
        // -inf or +inf, with the sign of the weights' sum.
        assert!(err.to_string().contains("inf at step 2"), "{err}");
    }

    #[test]
    fn remaining_updates_skip_what_was_consumed() {
        // 5 batches, gas 2: windows [0..2, 2..4, 4..5] per epoch.
        let all = remaining_updates(0, 5, 2, 2).unwrap();
        assert_eq!(all.len(), 6);
        assert_eq!(all[2].batches, 4..5);
        assert!(all[2].end_of_epoch && !all[1].end_of_epoch);
        assert_eq!(all[3].epoch, 1);
        let rest = remaining_updates(4, 5, 2, 2).unwrap();
        assert_eq!(rest, all[4..]);
        assert!(remaining_updates(6, 5, 2, 2).unwrap().is_empty());
    }
}
