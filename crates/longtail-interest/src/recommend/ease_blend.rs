//! The EASE blend of a checkpoint-only recommender (`eval-rec`'s `longtail+ease`): its
//! settings and what fitting it took.

/// Rank by `(1 - weight) z(cosine) + weight z(EASE)`, EASE fitted with `lambda` on every
/// interaction of the data (`weight` is `1 - w` of `eval-rec`'s blend report).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EaseBlend {
    pub weight: f64,
    pub lambda: f64,
}

/// The EASE fit of a blend.
#[derive(Debug, Clone, PartialEq)]
pub struct EaseFit {
    pub blend: EaseBlend,
    /// Users whose interactions it was fitted on.
    pub users: usize,
    pub seconds: f64,
}
