//! Sampled-softmax (InfoNCE) loss with in-batch negatives and logQ correction.
//!
//! With users `u_i` and the batch's distinct target items `v_j` (unit vectors), the logits are
//! `s_ij = u_i . v_j / T - log q_j`, where `q_j` is the probability that item `j` is drawn as an
//! in-batch candidate (its share of the training targets). The loss is the mean cross-entropy
//! of each row against its own target. Without the correction, popular items appear as
//! negatives in proportion to their popularity and the softmax learns to push them down *and*
//! to pull everything towards them as positives; subtracting `log q` makes the in-batch softmax
//! an unbiased estimate of the full softmax (Yi et al. 2019, "Sampling-bias-corrected neural
//! modeling"), so head items do not crowd out the tail. Duplicated targets in a batch are
//! merged into one column, so a user's positive is never also one of their negatives.

use candle_core::Tensor;
use longtail_model::{cross_entropy, CrossEntropy};

use crate::error::{InterestError, Result};

/// Mean InfoNCE loss. `users` `(b, d)`, `items` `(m, d)`, `targets[i]` the column of row
/// `i`'s positive, `log_q` `(m,)` (zeros disable the correction), `temperature > 0`.
pub fn info_nce_logq(
    users: &Tensor,
    items: &Tensor,
    targets: &[u32],
    log_q: &Tensor,
    temperature: f64,
) -> Result<Tensor> {
    if temperature <= 0.0 || !temperature.is_finite() {
        return Err(InterestError::invalid(format!(
            "temperature must be > 0, got {temperature}"
        )));
    }
    let (b, _) = users.dims2()?;
    let (m, _) = items.dims2()?;
    if targets.len() != b || log_q.dims() != [m] {
        return Err(InterestError::invalid(format!(
            "{} targets for {b} users, log_q {:?} for {m} items",
            targets.len(),
            log_q.dims()
        )));
    }
    let logits = (users.matmul(&items.t()?)? / temperature)?;
    let logits = logits.broadcast_sub(&log_q.unsqueeze(0)?)?;
    let labels = Tensor::from_slice(targets, b, users.device())?;
    Ok(cross_entropy(&logits, &labels, &CrossEntropy::default())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn hand(users: &[[f64; 2]], items: &[[f64; 2]], t: &[usize], lq: &[f64], temp: f64) -> f64 {
        let mut total = 0.0;
        for (i, u) in users.iter().enumerate() {
            let s: Vec<f64> = items
                .iter()
                .zip(lq)
                .map(|(v, q)| (u[0] * v[0] + u[1] * v[1]) / temp - q)
                .collect();
            let lse = s.iter().map(|x| x.exp()).sum::<f64>().ln();
            total += lse - s[t[i]];
        }
        total / users.len() as f64
    }

    #[test]
    fn matches_hand_computation_with_and_without_logq() {
        let u = [[0.6, 0.8], [1.0, 0.0], [0.0, 1.0]];
        let v = [[0.8, 0.6], [0.0, 1.0]];
        let t = [0usize, 0, 1];
        let lq = [(0.75f64).ln(), (0.25f64).ln()];
        let dev = Device::Cpu;
        let ut = Tensor::new(&u, &dev).unwrap();
        let vt = Tensor::new(&v, &dev).unwrap();
        let tu: Vec<u32> = t.iter().map(|&x| x as u32).collect();
        let lqt = Tensor::new(&lq, &dev).unwrap();
        let got = info_nce_logq(&ut, &vt, &tu, &lqt, 0.1)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        let want = hand(&u, &v, &t, &lq, 0.1);
        assert!((got - want).abs() < 1e-9, "{got} vs {want}");
        // A concrete number so the hand formula itself is pinned: row 0 has
        // s = [9.6 - ln .75, 8 - ln .25], etc.
        let row0 = {
            let s = [9.6 - 0.75f64.ln(), 8.0 - 0.25f64.ln()];
            (s[0].exp() + s[1].exp()).ln() - s[0]
        };
        let row1 = {
            let s = [8.0 - 0.75f64.ln(), 0.0 - 0.25f64.ln()];
            (s[0].exp() + s[1].exp()).ln() - s[0]
        };
        let row2 = {
            let s = [6.0 - 0.75f64.ln(), 10.0 - 0.25f64.ln()];
            (s[0].exp() + s[1].exp()).ln() - s[1]
        };
        assert!((want - (row0 + row1 + row2) / 3.0).abs() < 1e-12);
        // logQ raises the loss of rows whose positive is the popular item.
        let zeros = Tensor::zeros(2, candle_core::DType::F64, &dev).unwrap();
        let plain = info_nce_logq(&ut, &vt, &tu, &zeros, 0.1)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        assert!((plain - hand(&u, &v, &t, &[0.0, 0.0], 0.1)).abs() < 1e-9);
        assert!(plain != got);
    }

    #[test]
    fn gradient_pushes_positive_up() {
        let dev = Device::Cpu;
        let v = Var::new(&[[1.0f64, 0.0], [0.0, 1.0]], &dev).unwrap();
        let u = Tensor::new(&[[0.5f64, 0.5]], &dev).unwrap();
        let lq = Tensor::zeros(2, candle_core::DType::F64, &dev).unwrap();
        let loss = info_nce_logq(&u, v.as_tensor(), &[0], &lq, 1.0).unwrap();
        let g = loss.backward().unwrap();
        let gv = g.get(v.as_tensor()).unwrap().to_vec2::<f64>().unwrap();
        // d loss / d v_0 = -(1 - p_0) u < 0: the positive moves towards the user.
        assert!(gv[0][0] < 0.0 && gv[1][0] > 0.0);
    }

    #[test]
    fn rejects_bad_temperature() {
        let dev = Device::Cpu;
        let u = Tensor::new(&[[1.0f64, 0.0]], &dev).unwrap();
        let lq = Tensor::zeros(1, candle_core::DType::F64, &dev).unwrap();
        assert!(info_nce_logq(&u, &u, &[0], &lq, 0.0).is_err());
    }
}
