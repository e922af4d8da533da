//! A fitted item-item model (EASE's weights, item-kNN's similarities) as one scorer: a user's
//! score for item j is the sum of row h over history items h. This is the form a served plan
//! saves and loads; catalogue items added after the fit score 0 and add nothing.

use crate::itemknn::add_history_rows;
use crate::scorer::Scorer;
use crate::{ItemIdx, RecError, UserIdx};

pub struct ItemItem {
    name: String,
    n: usize,
    /// Row-major `n x n`.
    m: Vec<f32>,
}

impl ItemItem {
    pub fn new(name: impl Into<String>, n: usize, m: Vec<f32>) -> Result<Self, RecError> {
        if m.len() != n * n {
            return Err(RecError::Shape(format!(
                "an item-item matrix over {n} items needs {} values, got {}",
                n * n,
                m.len()
            )));
        }
        Ok(Self {
            name: name.into(),
            n,
            m,
        })
    }

    /// Items the model was fitted on.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Row-major `n x n` weights.
    pub fn matrix(&self) -> &[f32] {
        &self.m
    }
}

impl Scorer for ItemItem {
    fn name(&self) -> &str {
        &self.name
    }

    fn scores(&self, _user: UserIdx, history: &[ItemIdx], out: &mut [f32]) {
        add_history_rows(&self.m, self.n, history, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_history_rows_and_leaves_later_items_at_zero() {
        // 3 fitted items; the catalogue has grown to 5.
        let m = vec![0.0, 1.0, 2.0, 3.0, 0.0, 4.0, 5.0, 6.0, 0.0];
        let model = ItemItem::new("ease", 3, m).unwrap();
        let mut out = vec![0f32; 5];
        // item 4 is new: it adds no row
        model.scores(0, &[0, 2, 4], &mut out);
        assert_eq!(out, vec![5.0, 7.0, 2.0, 0.0, 0.0]);
        assert!(ItemItem::new("x", 2, vec![0.0; 3]).is_err());
    }
}
