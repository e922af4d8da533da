//! Limited-memory BFGS for smooth unconstrained minimisation (Nocedal &
//! Wright, Algorithm 7.4/7.5) with a backtracking Armijo line search. Enough
//! for the strongly convex L2-regularised logistic loss; not a general solver.

/// Solver settings.
#[derive(Debug, Clone, PartialEq)]
pub struct LbfgsOptions {
    /// Correction pairs kept.
    pub memory: usize,
    pub max_iter: usize,
    /// Stop when the largest gradient component is at most this.
    pub gtol: f64,
}

impl Default for LbfgsOptions {
    fn default() -> Self {
        Self {
            memory: 10,
            max_iter: 5000,
            gtol: 1e-10,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct LbfgsResult {
    pub x: Vec<f64>,
    pub f: f64,
    pub iterations: usize,
    /// False when `max_iter` ran out or no further descent was possible
    /// before reaching `gtol`; `x` is then the best point found.
    pub converged: bool,
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn max_abs(a: &[f64]) -> f64 {
    a.iter().fold(0.0, |m, v| m.max(v.abs()))
}

/// Minimises `f`, which returns the value at `x` and writes the gradient.
pub fn minimize<F>(f: F, x0: Vec<f64>, opts: &LbfgsOptions) -> LbfgsResult
where
    F: Fn(&[f64], &mut [f64]) -> f64,
{
    let n = x0.len();
    let mut x = x0;
    let mut g = vec![0.0; n];
    let mut fx = f(&x, &mut g);
    let mut s_hist: Vec<Vec<f64>> = Vec::new();
    let mut y_hist: Vec<Vec<f64>> = Vec::new();
    let mut x_new = vec![0.0; n];
    let mut g_new = vec![0.0; n];
    for iter in 0..opts.max_iter {
        if max_abs(&g) <= opts.gtol {
            return LbfgsResult {
                x,
                f: fx,
                iterations: iter,
                converged: true,
            };
        }
        let mut d = direction(&g, &s_hist, &y_hist);
        let mut slope = dot(&g, &d);
        if slope >= 0.0 {
            // rounding broke the quasi-Newton model: restart from steepest descent
            s_hist.clear();
            y_hist.clear();
            d = g.iter().map(|v| -v).collect();
            slope = -dot(&g, &g);
        }
        // first step: no curvature known yet, so keep it short
        let mut step = if s_hist.is_empty() {
            1.0 / dot(&g, &g).sqrt().max(1.0)
        } else {
            1.0
        };
        let accepted = loop {
            for i in 0..n {
                x_new[i] = x[i] + step * d[i];
            }
            let f_new = f(&x_new, &mut g_new);
            if acceptable(fx, slope, f_new, dot(&g_new, &d), step) {
                break Some(f_new);
            }
            step *= 0.5;
            if step < 1e-20 {
                break None;
            }
        };
        let Some(f_new) = accepted else {
            return LbfgsResult {
                x,
                f: fx,
                iterations: iter,
                converged: false,
            };
        };
        let s: Vec<f64> = x_new.iter().zip(&x).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = g_new.iter().zip(&g).map(|(a, b)| a - b).collect();
        // keep only pairs with positive curvature so H stays positive definite
        if dot(&s, &y) > 1e-12 * dot(&y, &y).sqrt() * dot(&s, &s).sqrt() {
            if s_hist.len() == opts.memory {
                s_hist.remove(0);
                y_hist.remove(0);
            }
            s_hist.push(s);
            y_hist.push(y);
        }
        std::mem::swap(&mut x, &mut x_new);
        std::mem::swap(&mut g, &mut g_new);
        fx = f_new;
    }
    let converged = max_abs(&g) <= opts.gtol;
    LbfgsResult {
        x,
        f: fx,
        iterations: opts.max_iter,
        converged,
    }
}

/// Armijo sufficient decrease, or else Hager & Zhang's approximate Wolfe
/// conditions. Near the optimum the decrease of f falls below the rounding
/// error of evaluating f, so Armijo fails on good steps and backtracking would
/// shrink them for nothing; the slope along `d` at the new point is still
/// accurate there, and says whether the step went far enough but not too far.
fn acceptable(f0: f64, slope0: f64, f_new: f64, slope_new: f64, step: f64) -> bool {
    const C1: f64 = 1e-4;
    const SIGMA: f64 = 0.9;
    const DELTA: f64 = 0.1;
    if f_new <= f0 + C1 * step * slope0 {
        return true;
    }
    let f_noise = 1e-10 * f0.abs();
    f_new <= f0 + f_noise
        && SIGMA * slope0 <= slope_new
        && slope_new <= (2.0 * DELTA - 1.0) * slope0
}

/// `-H g` by the two-loop recursion, `H0 = (s'y / y'y) I`.
fn direction(g: &[f64], s_hist: &[Vec<f64>], y_hist: &[Vec<f64>]) -> Vec<f64> {
    let mut q = g.to_vec();
    let mut alpha = vec![0.0; s_hist.len()];
    for k in (0..s_hist.len()).rev() {
        let rho = 1.0 / dot(&y_hist[k], &s_hist[k]);
        alpha[k] = rho * dot(&s_hist[k], &q);
        for (qi, yi) in q.iter_mut().zip(&y_hist[k]) {
            *qi -= alpha[k] * yi;
        }
    }
    if let (Some(s), Some(y)) = (s_hist.last(), y_hist.last()) {
        let gamma = dot(s, y) / dot(y, y);
        q.iter_mut().for_each(|v| *v *= gamma);
    }
    for k in 0..s_hist.len() {
        let rho = 1.0 / dot(&y_hist[k], &s_hist[k]);
        let beta = rho * dot(&y_hist[k], &q);
        for (qi, si) in q.iter_mut().zip(&s_hist[k]) {
            *qi += (alpha[k] - beta) * si;
        }
    }
    q.iter_mut().for_each(|v| *v = -*v);
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solves_an_ill_conditioned_quadratic() {
        // f = sum_i a_i (x_i - i)^2 with curvatures spanning 1e4
        let a: Vec<f64> = (0..20).map(|i| 10f64.powf(i as f64 / 5.0)).collect();
        let f = |x: &[f64], g: &mut [f64]| {
            let mut v = 0.0;
            for i in 0..x.len() {
                let d = x[i] - i as f64;
                v += a[i] * d * d;
                g[i] = 2.0 * a[i] * d;
            }
            v
        };
        let r = minimize(f, vec![0.0; 20], &LbfgsOptions::default());
        assert!(r.converged, "{r:?}");
        for (i, xi) in r.x.iter().enumerate() {
            assert!((xi - i as f64).abs() < 1e-9, "x[{i}] = {xi}");
        }
    }

    /// Relative evaluation noise in f (as from summing many rounded terms; the
    /// optimum value is 1) larger than f's decrease near the optimum: Armijo alone then rejects good steps
    /// and backtracks in vain; steps must still be taken at full length.
    #[test]
    fn converges_when_f_is_below_rounding() {
        let evals = std::cell::Cell::new(0);
        let a: Vec<f64> = (0..20).map(|i| 10f64.powf(i as f64 / 5.0)).collect();
        let f = |x: &[f64], g: &mut [f64]| {
            evals.set(evals.get() + 1);
            let mut v = 0.0;
            let mut bits = 0u64;
            for i in 0..x.len() {
                let d = x[i] - i as f64;
                v += a[i] * d * d;
                g[i] = 2.0 * a[i] * d;
                bits = bits.rotate_left(7) ^ x[i].to_bits();
            }
            // deterministic pseudo-random noise of 1e-12, from the bits of x
            let noise =
                (bits.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) as f64 / (1u64 << 53) as f64;
            1.0 + v + 1e-12 * noise
        };
        let r = minimize(f, vec![0.0; 20], &LbfgsOptions::default());
        assert!(r.converged, "{r:?}");
        for (i, xi) in r.x.iter().enumerate() {
            assert!((xi - i as f64).abs() < 1e-9, "x[{i}] = {xi}");
        }
        let (e, it) = (evals.get(), r.iterations);
        assert!(e <= 2 * it + 5, "{e} evaluations for {it} iterations");
    }

    #[test]
    fn approximate_wolfe_by_hand() {
        // Armijo holds: accepted whatever the new slope
        assert!(acceptable(1.0, -1.0, 0.5, 5.0, 1.0));
        // f unchanged within noise, slope fell from -1 to -0.5: accepted
        assert!(acceptable(1.0, -1.0, 1.0, -0.5, 1.0));
        // ... but not if the step overshot (slope now +0.9 > 0.8) ...
        assert!(!acceptable(1.0, -1.0, 1.0, 0.9, 1.0));
        // ... or barely moved along the slope (-0.95 < 0.9 * -1) ...
        assert!(!acceptable(1.0, -1.0, 1.0, -0.95, 1.0));
        // ... or f rose beyond its rounding noise
        assert!(!acceptable(1.0, -1.0, 1.0 + 1e-6, -0.5, 1.0));
    }

    #[test]
    fn solves_rosenbrock() {
        let f = |x: &[f64], g: &mut [f64]| {
            let (a, b) = (x[0], x[1]);
            g[0] = -2.0 * (1.0 - a) - 400.0 * a * (b - a * a);
            g[1] = 200.0 * (b - a * a);
            (1.0 - a).powi(2) + 100.0 * (b - a * a).powi(2)
        };
        let r = minimize(f, vec![-1.2, 1.0], &LbfgsOptions::default());
        assert!(r.converged, "{r:?}");
        assert!(
            (r.x[0] - 1.0).abs() < 1e-8 && (r.x[1] - 1.0).abs() < 1e-8,
            "{r:?}"
        );
    }

    #[test]
    fn reports_running_out_of_iterations() {
        let f = |x: &[f64], g: &mut [f64]| {
            g[0] = 2.0 * (x[0] - 3.0);
            (x[0] - 3.0).powi(2)
        };
        let opts = LbfgsOptions {
            max_iter: 0,
            ..Default::default()
        };
        let r = minimize(f, vec![0.0], &opts);
        assert!(!r.converged);
        assert_eq!(r.x, [0.0]);
    }
}
