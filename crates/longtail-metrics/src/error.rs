//! Why a set of scores cannot be evaluated: degenerate inputs are errors rather than NaN
//! metrics, so a report never silently contains `null`s.

/// A score set that has no defined metric.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("{what}: no examples")]
    Empty { what: String },
    #[error("{what}: score {value} at index {index} is not a probability in [0, 1]")]
    BadScore {
        what: String,
        index: usize,
        value: f64,
    },
    #[error("{what}: only one class present ({positives} tail of {n}); ROC-AUC is undefined")]
    OneClass {
        what: String,
        positives: usize,
        n: usize,
    },
}
