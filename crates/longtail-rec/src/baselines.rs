//! The ID baselines that are fitted on the training split without a search: the one list that
//! `eval-rec` reports as rows and `plan` offers as candidates. (EASE, whose λ is searched on
//! validation, is fitted by longtail-rec-eval.) A new baseline is its model file, one `mod`
//! line in lib.rs and one entry in [`ID_BASELINES`]; an item-item model is served through
//! [`ComponentKind::ItemItem`] with nothing else to change.

use crate::plan::ComponentKind;
use crate::scorer::Scorer;
use crate::{ItemIdx, ItemItem, ItemKnn, MostPopular, RecSplit, UserIdx};

/// A fitted ID baseline, in the form a plan saves and serves.
pub enum Fitted {
    /// An `n x n` item-item matrix (`ItemItem`'s name is the row name).
    ItemItem(ItemItem),
    /// One score per item, whatever the history.
    Counts(MostPopular),
}

impl Scorer for Fitted {
    fn name(&self) -> &str {
        match self {
            Fitted::ItemItem(m) => m.name(),
            Fitted::Counts(p) => p.name(),
        }
    }

    fn scores(&self, user: UserIdx, history: &[ItemIdx], out: &mut [f32]) {
        match self {
            Fitted::ItemItem(m) => m.scores(user, history, out),
            Fitted::Counts(p) => p.scores(user, history, out),
        }
    }
}

/// One baseline of the list.
pub struct IdBaseline {
    /// Row name in reports and component name in plans.
    pub name: &'static str,
    /// How a plan records and loads it.
    pub kind: ComponentKind,
    pub fit: fn(&RecSplit) -> Fitted,
}

impl IdBaseline {
    /// An `n x n` model (left out of plans above [`crate::plan::DENSE_ITEM_LIMIT`] items).
    pub fn dense(&self) -> bool {
        self.kind.artefact() == crate::plan::ArtefactKind::Matrix
    }
}

/// In report order.
pub const ID_BASELINES: [IdBaseline; 2] = [
    IdBaseline {
        name: "most_popular",
        kind: ComponentKind::MostPopular,
        fit: |split| Fitted::Counts(MostPopular::fit(split)),
    },
    IdBaseline {
        name: "item_knn",
        kind: ComponentKind::ItemKnn,
        fit: |split| Fitted::ItemItem(ItemKnn::fit(split).into_item_item()),
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    /// The fitted form scores as the model itself (a plan serves exactly what eval-rec
    /// measured), under the row name.
    #[test]
    fn each_baseline_scores_as_its_model_under_its_name() {
        let items: Vec<String> = (0..12).map(|i| format!("i{i}")).collect();
        let users: Vec<String> = (0..9).map(|u| format!("u{u}")).collect();
        let events: Vec<crate::Event> = (0..9u32)
            .flat_map(|u| {
                (0..5u32).map(move |j| crate::Event {
                    user: u,
                    item: (u * 5 + j * (2 + u % 3)) % 12,
                    timestamp: i64::from(u * 100 + j),
                })
            })
            .collect();
        let split = RecSplit::from_events(items, users, &events);
        let n = split.n_items();
        for b in &ID_BASELINES {
            let fitted = (b.fit)(&split);
            assert_eq!(fitted.name(), b.name);
            let direct: Box<dyn Scorer> = match b.name {
                "most_popular" => Box::new(MostPopular::fit(&split)),
                "item_knn" => Box::new(ItemKnn::fit(&split)),
                other => panic!("add {other} here"),
            };
            for history in [&[][..], &[0][..], &[1, 2][..]] {
                let (mut a, mut d) = (vec![0f32; n], vec![0f32; n]);
                fitted.scores(0, history, &mut a);
                direct.scores(0, history, &mut d);
                assert_eq!(a, d, "{} on {history:?}", b.name);
            }
        }
    }
}
