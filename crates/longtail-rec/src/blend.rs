//! The z-scored blend of several scorers (e.g. a sequence model, EASE and a text model), so
//! scales as different as cosines and EASE weights can be added: `sum_c w_c z(s_c)`, each
//! model's scores z-scored over the user's non-history items. The served plan
//! (`longtail plan`) and eval-rec's fixed blends both rank by it.

use crate::scorer::Scorer;
use crate::{ItemIdx, UserIdx};

/// `sum_c w_c z(s_c)` over `parts = [(scorer, w_c)]`.
pub struct ZBlend<'a> {
    pub name: String,
    pub parts: Vec<(&'a dyn Scorer, f32)>,
}

impl<'a> ZBlend<'a> {
    /// The two-model blend `w z(a) + (1 - w) z(b)`.
    pub fn pair(name: impl Into<String>, a: &'a dyn Scorer, b: &'a dyn Scorer, w: f32) -> Self {
        Self {
            name: name.into(),
            parts: vec![(a, w), (b, 1.0 - w)],
        }
    }
}

/// Mean and standard deviation of `s` over the entries not in `history` (sd 1 when the
/// entries are constant); `None` when every entry is history.
pub fn zstats(s: &[f32], history: &[ItemIdx]) -> Option<(f64, f64)> {
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
        return None;
    }
    let mean = sum / n;
    let sd = (sq / n - mean * mean).max(0.0).sqrt();
    Some((mean, if sd > 0.0 { sd } else { 1.0 }))
}

/// Z-scores `s` in place over the entries not in `history` (history items get a value too,
/// from the same mean and spread; the caller excludes them afterwards).
pub fn zscore_excluding(s: &mut [f32], history: &[ItemIdx]) {
    let Some((mean, sd)) = zstats(s, history) else {
        return;
    };
    for x in s.iter_mut() {
        *x = ((f64::from(*x) - mean) / sd) as f32;
    }
}

/// `out = sum_c w_c z(part_c)`: adds already-computed component scores, each z-scored over
/// the non-history items. The one formula every blend ranks by.
pub fn add_zscored(out: &mut [f32], parts: &mut [(Vec<f32>, f32)], history: &[ItemIdx]) {
    out.iter_mut().for_each(|o| *o = 0.0);
    for (scores, w) in parts.iter_mut() {
        zscore_excluding(scores, history);
        for (o, x) in out.iter_mut().zip(scores.iter()) {
            *o += *w * x;
        }
    }
}

impl Scorer for ZBlend<'_> {
    fn name(&self) -> &str {
        &self.name
    }

    fn scores(&self, user: UserIdx, history: &[ItemIdx], out: &mut [f32]) {
        let mut parts: Vec<(Vec<f32>, f32)> = self
            .parts
            .iter()
            .map(|(scorer, w)| {
                let mut s = vec![0f32; out.len()];
                scorer.scores(user, history, &mut s);
                (s, *w)
            })
            .collect();
        add_zscored(out, &mut parts, history);
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
        let blend = ZBlend::pair("a+b", &a, &b, 0.5);
        blend.scores(0, &[], &mut out);
        // Equal after z-scoring despite b's scale.
        assert!((out[1] - out[2]).abs() < 1e-5 && out[0] < out[1]);
        assert_eq!(blend.name(), "a+b");
    }

    #[test]
    fn three_parts_are_the_weighted_sum_of_z_scores() {
        let a = Fixed(vec![0.0, 1.0, 2.0, 3.0], "a");
        let b = Fixed(vec![5.0, 1.0, 1.0, 1.0], "b");
        let c = Fixed(vec![10.0, 10.0, 30.0, 0.0], "c");
        let blend = ZBlend {
            name: "abc".into(),
            parts: vec![(&a, 0.2), (&b, 0.5), (&c, 0.3)],
        };
        let mut out = vec![0f32; 4];
        blend.scores(0, &[0], &mut out);
        let z = |v: &[f32]| {
            let mut v = v.to_vec();
            zscore_excluding(&mut v, &[0]);
            v
        };
        let (za, zb, zc) = (z(&a.0), z(&b.0), z(&c.0));
        for i in 0..4 {
            let want = 0.2 * za[i] + 0.5 * zb[i] + 0.3 * zc[i];
            assert!(
                (out[i] - want).abs() < 1e-6,
                "item {i}: {} vs {want}",
                out[i]
            );
        }
        // A zero weight is the same as leaving the part out.
        let two = ZBlend {
            name: "ab".into(),
            parts: vec![(&a, 0.2), (&b, 0.5), (&c, 0.0)],
        };
        let one = ZBlend {
            name: "ab".into(),
            parts: vec![(&a, 0.2), (&b, 0.5)],
        };
        let (mut x, mut y) = (vec![0f32; 4], vec![0f32; 4]);
        two.scores(0, &[1], &mut x);
        one.scores(0, &[1], &mut y);
        assert_eq!(x, y);
    }
}
