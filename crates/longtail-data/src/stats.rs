//! Dataset statistics written to `stats.json` and returned by `prepare`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::label::{Label, TailRule};
use crate::options::PrepareOptions;
use crate::reader::{Format, Reject};
use crate::split::Split;

/// Everything `prepare` measured. Serialised as `stats.json`; contains no
/// timings so identical inputs give identical files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrepareSummary {
    /// Kept catalogue items.
    pub n_items: u64,
    pub n_items_with_interactions: u64,
    /// Distinct users among kept interactions.
    pub n_users: u64,
    /// Kept interactions.
    pub n_interactions: u64,
    /// Kept items whose text fields are all empty after cleaning.
    pub empty_text: u64,
    /// Fraction of catalogue items labelled head.
    pub head_item_share: f64,
    /// Gini coefficient of interactions per item over the whole catalogue
    /// (items with no interactions included): 0 = uniform, ->1 = concentrated.
    pub gini: f64,
    pub tail_rule: RuleSummary,
    pub labels: BTreeMap<Label, LabelStats>,
    /// Item counts per split and label.
    pub splits: BTreeMap<Split, BTreeMap<Label, u64>>,
    /// Items file first, then interactions file.
    pub files: Vec<FileSummary>,
    pub options: PrepareOptions,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleSummary {
    pub rule: TailRule,
    pub tiers: u8,
    /// Number of items ranked at or above each cut: `[n_head]` or
    /// `[n_head, n_head + n_torso]`.
    pub cut_ranks: Vec<usize>,
    pub description: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LabelStats {
    pub items: u64,
    pub interactions: u64,
    /// Share of catalogue items with this label.
    pub item_share: f64,
    /// Share of all kept interactions that went to items with this label.
    pub interaction_share: f64,
}

/// Row accounting for one input file. `read == kept + rejected` always.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileSummary {
    /// `"items"` or `"interactions"`.
    pub role: String,
    /// The path as given in the options.
    pub path: String,
    pub format: Format,
    /// Rows read (records plus rejected lines).
    pub read: u64,
    pub kept: u64,
    pub rejected: u64,
    pub rejects_by_reason: BTreeMap<String, u64>,
}

impl FileSummary {
    pub(crate) fn new(role: &str, path: &std::path::Path, format: Format) -> Self {
        Self {
            role: role.to_string(),
            path: path.display().to_string(),
            format,
            read: 0,
            kept: 0,
            rejected: 0,
            rejects_by_reason: BTreeMap::new(),
        }
    }

    pub(crate) fn count_reject(&mut self, reject: &Reject) {
        self.rejected += 1;
        *self
            .rejects_by_reason
            .entry(reject.reason.code().to_string())
            .or_default() += 1;
    }

    /// `read` is counted from the reader, `kept`/`rejected` where rows are
    /// used or logged, so a row dropped silently would trip this.
    pub(crate) fn assert_balanced(&self) {
        assert_eq!(
            self.read,
            self.kept + self.rejected,
            "row accounting broken for {}",
            self.path
        );
        assert_eq!(
            self.rejected,
            self.rejects_by_reason.values().sum::<u64>(),
            "reject reasons do not add up for {}",
            self.path
        );
    }
}

/// Gini coefficient of non-negative counts (0 when all are zero).
pub fn gini(counts: &[u64]) -> f64 {
    let n = counts.len();
    let total: u64 = counts.iter().sum();
    if n == 0 || total == 0 {
        return 0.0;
    }
    let mut sorted = counts.to_vec();
    sorted.sort_unstable();
    // G = sum_i (2i - n - 1) x_i / (n * sum x), i = 1..n over ascending x
    let weighted: f64 = sorted
        .iter()
        .enumerate()
        .map(|(i, &x)| (2.0 * (i + 1) as f64 - n as f64 - 1.0) * x as f64)
        .sum();
    weighted / (n as f64 * total as f64)
}

/// Per-label item and interaction totals.
pub(crate) fn label_stats(labels: &[Label], counts: &[u64]) -> BTreeMap<Label, LabelStats> {
    let n = labels.len().max(1) as f64;
    let total = counts.iter().sum::<u64>().max(1) as f64;
    let mut out: BTreeMap<Label, LabelStats> = BTreeMap::new();
    for (&label, &c) in labels.iter().zip(counts) {
        let s = out.entry(label).or_default();
        s.items += 1;
        s.interactions += c;
    }
    for s in out.values_mut() {
        s.item_share = s.items as f64 / n;
        s.interaction_share = s.interactions as f64 / total;
    }
    out
}

/// Item counts per split and label.
pub(crate) fn split_counts(
    splits: &[Split],
    labels: &[Label],
) -> BTreeMap<Split, BTreeMap<Label, u64>> {
    let mut out: BTreeMap<Split, BTreeMap<Label, u64>> = BTreeMap::new();
    for (&s, &l) in splits.iter().zip(labels) {
        *out.entry(s).or_default().entry(l).or_default() += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reader::RejectReason;

    #[test]
    fn gini_known_values() {
        assert_eq!(gini(&[]), 0.0);
        assert_eq!(gini(&[0, 0]), 0.0);
        assert!((gini(&[5, 5, 5, 5])).abs() < 1e-12);
        // one item has everything: (n-1)/n
        assert!((gini(&[0, 0, 0, 10]) - 0.75).abs() < 1e-12);
        // 1,2,3,4: sum (2i-5)x = -3-2+3+12 = 10; 10/(4*10) = 0.25
        assert!((gini(&[4, 1, 3, 2]) - 0.25).abs() < 1e-12);
    }

    #[test]
    fn label_and_split_tables() {
        let labels = [Label::Head, Label::Tail, Label::Tail, Label::Head];
        let counts = [6, 1, 0, 3];
        let ls = label_stats(&labels, &counts);
        assert_eq!(ls[&Label::Head].items, 2);
        assert_eq!(ls[&Label::Head].interactions, 9);
        assert!((ls[&Label::Tail].interaction_share - 0.1).abs() < 1e-12);
        assert!((ls[&Label::Tail].item_share - 0.5).abs() < 1e-12);
        let splits = [Split::Train, Split::Train, Split::Test, Split::Test];
        let sc = split_counts(&splits, &labels);
        assert_eq!(sc[&Split::Train][&Label::Head], 1);
        assert_eq!(sc[&Split::Test][&Label::Tail], 1);
        let json = serde_json::to_string(&sc).unwrap();
        assert!(json.contains("\"train\":{\"head\":1,\"tail\":1}"), "{json}");
        let back: BTreeMap<Split, BTreeMap<Label, u64>> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, sc);
    }

    #[test]
    #[should_panic(expected = "row accounting broken")]
    fn unbalanced_file_summary_panics() {
        let mut f = FileSummary::new("items", std::path::Path::new("x.jsonl"), Format::Jsonl);
        f.read = 3;
        f.kept = 1;
        f.count_reject(&Reject::new(2, RejectReason::EmptyLine, "blank"));
        f.assert_balanced();
    }
}
