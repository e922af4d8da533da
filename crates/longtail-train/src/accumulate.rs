//! Gradient accumulation over micro-batches.
//!
//! Approach (same as the HF Trainer): each micro-batch loss is multiplied by
//! `1 / n` where `n` is the number of micro-batches in the current
//! accumulation window (`gradient_accumulation_steps`, or fewer for the last
//! window of an epoch), `backward()` is run, and the gradients of the
//! trainable variables are summed. Only the trainable variables' gradients
//! are kept, so the per-micro-batch `GradStore` (which also holds gradients
//! of inputs and constants) is dropped right away. Scaling the loss costs one
//! scalar multiply in the graph; summing costs one add per parameter per
//! micro-batch after the first, like torch's `.grad` accumulation.

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};

use crate::error::{Result, TrainError};

/// Number of optimizer updates in an epoch of `num_batches` micro-batches:
/// `ceil(num_batches / gradient_accumulation_steps)` (at least 1), as in
/// HF's `num_update_steps_per_epoch` (the last, partial window still
/// triggers an update).
pub fn num_update_steps_per_epoch(
    num_batches: usize,
    gradient_accumulation_steps: usize,
) -> Result<usize> {
    check_gas(gradient_accumulation_steps)?;
    Ok(num_batches.div_ceil(gradient_accumulation_steps).max(1))
}

/// Sizes of the accumulation windows of one epoch: full windows of
/// `gradient_accumulation_steps`, then the remainder (if any).
pub fn accumulation_windows(
    num_batches: usize,
    gradient_accumulation_steps: usize,
) -> Result<Vec<usize>> {
    check_gas(gradient_accumulation_steps)?;
    let mut out = vec![gradient_accumulation_steps; num_batches / gradient_accumulation_steps];
    let rem = num_batches % gradient_accumulation_steps;
    if rem > 0 {
        out.push(rem);
    }
    Ok(out)
}

fn check_gas(gas: usize) -> Result<()> {
    if gas == 0 {
        Err(TrainError::invalid(
            "gradient_accumulation_steps must be >= 1",
        ))
    } else {
        Ok(())
    }
}

/// Sums the gradients of a fixed set of variables over one accumulation
/// window at a time.
#[derive(Debug)]
pub struct GradAccumulator {
    vars: Vec<Var>,
    acc: GradStore,
    window: usize,
    seen: usize,
}

impl GradAccumulator {
    /// Accumulates gradients of `vars` only (pass the optimizer's
    /// `trainable_vars()`, so frozen parameters' gradients are dropped).
    pub fn new(vars: Vec<Var>) -> Self {
        GradAccumulator {
            vars,
            acc: GradStore::default(),
            window: 0,
            seen: 0,
        }
    }

    /// Starts a window of `num_micro_batches` micro-batches. Errors if the
    /// previous window still holds gradients that were not taken.
    pub fn begin_window(&mut self, num_micro_batches: usize) -> Result<()> {
        if num_micro_batches == 0 {
            return Err(TrainError::invalid(
                "an accumulation window needs >= 1 micro-batch",
            ));
        }
        if self.seen != 0 {
            return Err(TrainError::invalid(format!(
                "previous window has {} accumulated micro-batches that were not taken",
                self.seen
            )));
        }
        self.window = num_micro_batches;
        Ok(())
    }

    /// The factor applied to each micro-batch loss: `1 / window`.
    pub fn loss_scale(&self) -> f64 {
        1.0 / self.window.max(1) as f64
    }

    /// Scales `loss` by [`loss_scale`](Self::loss_scale), back-propagates and
    /// accumulates the variables' gradients.
    pub fn backward(&mut self, loss: &Tensor) -> Result<()> {
        if self.window == 0 {
            return Err(TrainError::invalid("call begin_window before backward"));
        }
        let scaled = loss.affine(self.loss_scale(), 0.0)?;
        let grads = scaled.backward()?;
        self.add(grads)
    }

    /// Adds already-scaled gradients of one micro-batch.
    pub fn add(&mut self, mut grads: GradStore) -> Result<()> {
        if self.window == 0 {
            return Err(TrainError::invalid("call begin_window before add"));
        }
        if self.seen >= self.window {
            return Err(TrainError::invalid(format!(
                "window of {} micro-batches is already complete",
                self.window
            )));
        }
        for var in &self.vars {
            if let Some(g) = grads.remove(var.as_tensor()) {
                let sum = match self.acc.remove(var.as_tensor()) {
                    Some(prev) => (prev + g)?,
                    None => g,
                };
                self.acc.insert(var.as_tensor(), sum);
            }
        }
        self.seen += 1;
        Ok(())
    }

    /// Micro-batches accumulated in the current window.
    pub fn micro_batches(&self) -> usize {
        self.seen
    }

    /// True once the window's micro-batches have all been added.
    pub fn is_complete(&self) -> bool {
        self.window > 0 && self.seen == self.window
    }

    /// Returns the summed gradients and resets for the next window.
    pub fn take(&mut self) -> GradStore {
        self.seen = 0;
        self.window = 0;
        std::mem::take(&mut self.acc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn windows_and_update_counts() {
        assert_eq!(accumulation_windows(10, 4).unwrap(), [4, 4, 2]);
        assert_eq!(accumulation_windows(8, 4).unwrap(), [4, 4]);
        assert_eq!(accumulation_windows(3, 1).unwrap(), [1, 1, 1]);
        assert_eq!(accumulation_windows(2, 4).unwrap(), [2]);
        assert_eq!(num_update_steps_per_epoch(10, 4).unwrap(), 3);
        assert_eq!(num_update_steps_per_epoch(8, 4).unwrap(), 2);
        assert_eq!(num_update_steps_per_epoch(0, 4).unwrap(), 1);
        assert!(accumulation_windows(3, 0).is_err());
        assert!(num_update_steps_per_epoch(3, 0).is_err());
    }

    /// loss_i = sum(w * x_i): gradient x_i; accumulated mean over the window.
    #[test]
    fn accumulates_mean_gradient_over_window() {
        let dev = Device::Cpu;
        let w = Var::from_slice(&[1f32, 2.0], 2, &dev).unwrap();
        let other = Var::from_slice(&[5f32], 1, &dev).unwrap();
        let mut acc = GradAccumulator::new(vec![w.clone()]);
        let xs = [[1f32, 2.0], [3.0, -4.0], [0.5, 0.5]];
        acc.begin_window(3).unwrap();
        assert!((acc.loss_scale() - 1.0 / 3.0).abs() < 1e-15);
        for x in &xs {
            assert!(!acc.is_complete());
            let x = Tensor::new(x, &dev).unwrap();
            let loss = ((w.as_tensor() * x).unwrap().sum_all().unwrap()
                + other.as_tensor().sum_all().unwrap())
            .unwrap();
            acc.backward(&loss).unwrap();
        }
        assert!(acc.is_complete());
        assert_eq!(acc.micro_batches(), 3);
        let g = acc.take();
        let gw: Vec<f32> = g.get(w.as_tensor()).unwrap().to_vec1().unwrap();
        assert!((gw[0] - 1.5).abs() < 1e-6, "{gw:?}");
        assert!((gw[1] - (-0.5)).abs() < 1e-6, "{gw:?}");
        assert!(g.get(other.as_tensor()).is_none(), "untracked var dropped");
        assert_eq!(g.get_ids().count(), 1, "no input/constant grads kept");
        assert_eq!(acc.micro_batches(), 0);
    }

    #[test]
    fn window_protocol_is_enforced() {
        let w = Var::zeros(1, DType::F32, &Device::Cpu).unwrap();
        let mut acc = GradAccumulator::new(vec![w.clone()]);
        let loss = || w.as_tensor().sum_all().unwrap();
        assert!(acc.backward(&loss()).is_err(), "no window yet");
        assert!(acc.begin_window(0).is_err());
        acc.begin_window(1).unwrap();
        acc.backward(&loss()).unwrap();
        assert!(acc.backward(&loss()).is_err(), "window full");
        assert!(acc.begin_window(1).is_err(), "not taken yet");
        let g = acc.take();
        assert_eq!(
            g.get(w.as_tensor()).unwrap().to_vec1::<f32>().unwrap(),
            [1.0]
        );
        acc.begin_window(2).unwrap();
        acc.backward(&loss()).unwrap();
        acc.backward(&loss()).unwrap();
        let g = acc.take();
        assert_eq!(
            g.get(w.as_tensor()).unwrap().to_vec1::<f32>().unwrap(),
            [1.0]
        );
    }
}
