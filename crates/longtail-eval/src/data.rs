//! Binary text splits from a `longtail prepare` output directory.

use std::path::Path;

use longtail_data::{Label, PreparedDataset, Split};

use crate::baselines::{LabelledTexts, TextSplits};
use crate::EvalError;

/// Positive class of every metric in this crate. With `--tiers 3` the
/// negative class is head + torso.
pub fn is_tail(label: Label) -> bool {
    label == Label::Tail
}

/// Items' `text` and tail labels, split by `split`, in catalogue order.
pub fn text_splits(dataset: &PreparedDataset) -> TextSplits {
    let take = |split: Split| {
        let items: Vec<_> = dataset.split(split).collect();
        LabelledTexts {
            texts: items.iter().map(|i| i.text.clone()).collect(),
            labels: items.iter().map(|i| is_tail(i.label)).collect(),
        }
    };
    TextSplits {
        train: take(Split::Train),
        validation: take(Split::Validation),
        test: take(Split::Test),
    }
}

/// [`PreparedDataset::load`] followed by [`text_splits`].
pub fn load_text_splits(dir: &Path) -> Result<TextSplits, EvalError> {
    Ok(text_splits(&PreparedDataset::load(dir)?))
}
