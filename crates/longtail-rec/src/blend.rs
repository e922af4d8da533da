//! A z-scored blend of two scorers (e.g. `longtail+ease`), so scales as different as cosines
//! and EASE weights can be added.

use crate::scorer::Scorer;
use crate::{ItemIdx, UserIdx};

/// `w * z(a) + (1 - w) * z(b)`, each model's scores z-scored over the non-history items.
pub struct ZBlend<'a> {
    pub name: String,
    pub a: &'a dyn Scorer,
    pub b: &'a dyn Scorer,
    pub w: f32,
}

/// Z-scores `s` in place over the entries not in `history`.
pub fn zscore_excluding(s: &mut [f32], history: &[ItemIdx]) {
    let mut mask = vec![true; s.len()];
    for &h in history {
        if let Some(m) = mask.get_mut(h as usize) {
            *m = false;
        }
    }
    let (mut n, mut sum, mut sq) = (0f64, 0f64, 0f64);
    for (x, &m) in s.iter().zip(&mask) {
        if m {
            n += 1.0;
            sum += f64::from(*x);
            sq += f64::from(*x) * f64::from(*x);
        }
    }
    if n == 0.0 {
        return;
    }
    let mean = sum / n;
    let sd = (sq / n - mean * mean).max(0.0).sqrt();
    let sd = if sd > 0.0 { sd } else { 1.0 };
    for x in s.iter_mut() {
        *x = ((f64::from(*x) - mean) / sd) as f32;
    }
}

impl Scorer for ZBlend<'_> {
    fn name(&self) -> &str {
        &self.name
    }

    fn scores(&self, user: UserIdx, history: &[ItemIdx], out: &mut [f32]) {
        let mut a = vec![0f32; out.len()];
        let mut b = vec![0f32; out.len()];
        self.a.scores(user, history, &mut a);
        self.b.scores(user, history, &mut b);
        zscore_excluding(&mut a, history);
        zscore_excluding(&mut b, history);
        for ((o, x), y) in out.iter_mut().zip(&a).zip(&b) {
            *o = self.w * x + (1.0 - self.w) * y;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(Vec<f32>, &'static str);
    impl Scorer for Fixed {
        fn name(&self) -> &str {
            self.1
        }
        fn scores(&self, _u: UserIdx, _h: &[ItemIdx], out: &mut [f32]) {
            out.copy_from_slice(&self.0);
        }
    }

    #[test]
    fn zscore_ignores_history_and_blend_mixes() {
        let mut s = vec![1.0, 2.0, 3.0, 100.0];
        zscore_excluding(&mut s, &[3]);
        assert!((s[0] + 1.2247).abs() < 1e-3 && s[1].abs() < 1e-6 && (s[2] - 1.2247).abs() < 1e-3);
        let a = Fixed(vec![0.0, 1.0, 0.0], "a");
        let b = Fixed(vec![0.0, 0.0, 1000.0], "b");
        let mut out = vec![0f32; 3];
        let blend = ZBlend {
            name: "a+b".into(),
            a: &a,
            b: &b,
            w: 0.5,
        };
        blend.scores(0, &[], &mut out);
        // Equal after z-scoring despite b's scale.
        assert!((out[1] - out[2]).abs() < 1e-5 && out[0] < out[1]);
        assert_eq!(blend.name(), "a+b");
    }
}
