//! Long-tail labels from item popularity.
//!
//! All rules rank items by interaction count (descending), ties broken by
//! item id (ascending, byte-wise). Every tier is a contiguous block of that
//! ranking, so a rule is fully described by its cut ranks. Items with no
//! interactions are always tail.
//!
//! | rule | 2 tiers | 3 tiers (`--tiers 3`) |
//! |---|---|---|
//! | `pareto:S` (default `pareto:0.8`) | head = ranked items up to **and including** the first whose cumulative share of all kept interactions is `>= S` (compared as `cum as f64 / total as f64 >= S`); tail = the rest | the same with two shares: head cut at `H`, torso cut at `S`. `pareto:S,H` sets `H`; by default `H = S²` (0.64 for 0.8). The tail is identical to the 2-tier tail. |
//! | `quantile:Q` | head = the top `floor(Q·n + 0.5)` items (round half up), `n` = catalogue size | head = top `floor(H·n + 0.5)`, torso up to `floor(Q·n + 0.5)`; `quantile:Q,H`, default `H = Q²` |
//! | `min-count:N` | head = items with `>= N` interactions | head `>= M`, torso `N..M-1`, tail `< N`; needs `min-count:N,M` |

use std::cmp::Reverse;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::DataError;

/// An item's popularity tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Label {
    Head,
    Torso,
    Tail,
}

impl Label {
    pub const ALL: [Label; 3] = [Label::Head, Label::Torso, Label::Tail];

    pub fn as_str(self) -> &'static str {
        match self {
            Label::Head => "head",
            Label::Torso => "torso",
            Label::Tail => "tail",
        }
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How head and tail are told apart; see the module docs for exact
/// definitions. Parsed from and displayed as `pareto:0.8`, `pareto:0.8,0.5`,
/// `quantile:0.2`, `min-count:10`, `min-count:10,100`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum TailRule {
    Pareto {
        share: f64,
        head_share: Option<f64>,
    },
    Quantile {
        fraction: f64,
        head_fraction: Option<f64>,
    },
    MinCount {
        min: u64,
        head_min: Option<u64>,
    },
}

impl Default for TailRule {
    fn default() -> Self {
        TailRule::Pareto {
            share: 0.8,
            head_share: None,
        }
    }
}

fn invalid(value: &str, reason: impl Into<String>) -> DataError {
    DataError::InvalidOption {
        what: "tail rule",
        value: value.to_string(),
        reason: reason.into(),
    }
}

impl FromStr for TailRule {
    type Err = DataError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, params) = s.split_once(':').unwrap_or((s, ""));
        let params: Vec<&str> = if params.is_empty() {
            Vec::new()
        } else {
            params.split(',').map(str::trim).collect()
        };
        if params.len() > 2 {
            return Err(invalid(s, "expected at most two parameters"));
        }
        let float = |p: &str| {
            p.parse::<f64>()
                .map_err(|_| invalid(s, format!("`{p}` is not a number")))
        };
        let int = |p: &str| {
            p.parse::<u64>()
                .map_err(|_| invalid(s, format!("`{p}` is not a whole number")))
        };
        let rule = match kind.trim() {
            "pareto" => TailRule::Pareto {
                share: params.first().map_or(Ok(0.8), |p| float(p))?,
                head_share: params.get(1).map(|p| float(p)).transpose()?,
            },
            "quantile" => TailRule::Quantile {
                fraction: params.first().map_or(Ok(0.2), |p| float(p))?,
                head_fraction: params.get(1).map(|p| float(p)).transpose()?,
            },
            "min-count" => TailRule::MinCount {
                min: int(params
                    .first()
                    .ok_or_else(|| invalid(s, "min-count needs N, e.g. min-count:10"))?)?,
                head_min: params.get(1).map(|p| int(p)).transpose()?,
            },
            _ => {
                return Err(invalid(
                    s,
                    "expected pareto:SHARE, quantile:FRACTION or min-count:N",
                ))
            }
        };
        rule.check_values().map_err(|reason| invalid(s, reason))?;
        Ok(rule)
    }
}

impl fmt::Display for TailRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            TailRule::Pareto { share, head_share } => {
                write!(f, "pareto:{share}")?;
                head_share.map_or(Ok(()), |h| write!(f, ",{h}"))
            }
            TailRule::Quantile {
                fraction,
                head_fraction,
            } => {
                write!(f, "quantile:{fraction}")?;
                head_fraction.map_or(Ok(()), |h| write!(f, ",{h}"))
            }
            TailRule::MinCount { min, head_min } => {
                write!(f, "min-count:{min}")?;
                head_min.map_or(Ok(()), |h| write!(f, ",{h}"))
            }
        }
    }
}

impl From<TailRule> for String {
    fn from(r: TailRule) -> String {
        r.to_string()
    }
}

impl TryFrom<String> for TailRule {
    type Error = DataError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl TailRule {
    fn check_values(&self) -> Result<(), String> {
        let unit = |x: f64| x > 0.0 && x <= 1.0;
        match *self {
            TailRule::Pareto { share, head_share }
            | TailRule::Quantile {
                fraction: share,
                head_fraction: head_share,
            } => {
                if !unit(share) {
                    return Err(format!("{share} must be in (0, 1]"));
                }
                match head_share {
                    Some(h) if !(h > 0.0 && h < share) => {
                        Err(format!("head cut {h} must be in (0, {share})"))
                    }
                    _ => Ok(()),
                }
            }
            TailRule::MinCount { min, head_min } => {
                if min == 0 {
                    return Err("N must be at least 1".into());
                }
                match head_min {
                    Some(m) if m <= min => Err(format!("head threshold {m} must exceed {min}")),
                    _ => Ok(()),
                }
            }
        }
    }

    /// Checks the rule against the number of tiers (2 or 3).
    pub fn validate(&self, tiers: u8) -> Result<(), DataError> {
        let me = self.to_string();
        let has_head_cut = match *self {
            TailRule::Pareto { head_share, .. } => head_share.is_some(),
            TailRule::Quantile { head_fraction, .. } => head_fraction.is_some(),
            TailRule::MinCount { head_min, .. } => head_min.is_some(),
        };
        match tiers {
            2 if has_head_cut => Err(invalid(&me, "a second cut needs --tiers 3")),
            2 => Ok(()),
            3 if matches!(self, TailRule::MinCount { head_min: None, .. }) => Err(invalid(
                &me,
                "with --tiers 3 give the head threshold too, e.g. min-count:10,100",
            )),
            3 => self.check_values().map_err(|r| invalid(&me, r)),
            t => Err(DataError::InvalidOption {
                what: "tiers",
                value: t.to_string(),
                reason: "must be 2 or 3".into(),
            }),
        }
    }
}

/// Labels plus what is needed to explain and plot them.
#[derive(Debug, Clone, PartialEq)]
pub struct Labelling {
    /// One label per item, aligned with the input.
    pub labels: Vec<Label>,
    /// Item indices in popularity order (rank 1 first).
    pub ranking: Vec<usize>,
    /// Ranks after which a tier ends: `[n_head]` for 2 tiers,
    /// `[n_head, n_head + n_torso]` for 3.
    pub cut_ranks: Vec<usize>,
}

/// Item indices by count descending, then id ascending (byte-wise).
pub fn popularity_ranking<S: AsRef<str>>(ids: &[S], counts: &[u64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.sort_by(|&a, &b| {
        (Reverse(counts[a]), ids[a].as_ref().as_bytes())
            .cmp(&(Reverse(counts[b]), ids[b].as_ref().as_bytes()))
    });
    order
}

/// Assigns labels; `tiers` must already be validated with
/// [`TailRule::validate`].
pub fn assign_labels<S: AsRef<str>>(
    ids: &[S],
    counts: &[u64],
    rule: &TailRule,
    tiers: u8,
) -> Labelling {
    assert_eq!(ids.len(), counts.len());
    let ranking = popularity_ranking(ids, counts);
    let ranked: Vec<u64> = ranking.iter().map(|&i| counts[i]).collect();
    let positive = ranked.iter().take_while(|&&c| c > 0).count();
    let n = ranked.len();
    let (non_tail, head) = match *rule {
        TailRule::Pareto { share, head_share } => (
            pareto_prefix(&ranked, share),
            pareto_prefix(&ranked, head_share.unwrap_or(share * share)),
        ),
        TailRule::Quantile {
            fraction,
            head_fraction,
        } => (
            quantile_prefix(n, fraction).min(positive),
            quantile_prefix(n, head_fraction.unwrap_or(fraction * fraction)).min(positive),
        ),
        TailRule::MinCount { min, head_min } => (
            ranked.iter().take_while(|&&c| c >= min).count(),
            ranked
                .iter()
                .take_while(|&&c| c >= head_min.unwrap_or(min))
                .count(),
        ),
    };
    let head = head.min(non_tail);
    let mut labels = vec![Label::Tail; n];
    for (rank, &item) in ranking.iter().enumerate() {
        labels[item] = if rank < non_tail && (tiers == 2 || rank < head) {
            Label::Head
        } else if rank < non_tail {
            Label::Torso
        } else {
            Label::Tail
        };
    }
    let cut_ranks = if tiers == 3 {
        vec![head, non_tail]
    } else {
        vec![non_tail]
    };
    Labelling {
        labels,
        ranking,
        cut_ranks,
    }
}

/// Items (in rank order) up to and including the first whose cumulative
/// share reaches `share`.
fn pareto_prefix(ranked: &[u64], share: f64) -> usize {
    let total: u64 = ranked.iter().sum();
    if total == 0 {
        return 0;
    }
    let mut cum = 0u64;
    for (rank, &c) in ranked.iter().enumerate() {
        cum += c;
        if cum as f64 / total as f64 >= share {
            return rank + 1;
        }
    }
    ranked.len()
}

/// `floor(q * n + 0.5)`: round half up.
fn quantile_prefix(n: usize, q: f64) -> usize {
    ((q * n as f64 + 0.5).floor() as usize).min(n)
}

/// Human description of a rule's outcome, for `stats.json`.
pub fn describe(rule: &TailRule, tiers: u8, cut_ranks: &[usize]) -> String {
    let order = "items ranked by interaction count (desc), ties by item id (asc)";
    let body = match (*rule, tiers) {
        (TailRule::Pareto { share, .. }, 2) => format!(
            "head = ranked items up to and including the first whose cumulative share of \
             interactions reaches {share}"
        ),
        (TailRule::Pareto { share, head_share }, _) => format!(
            "head = ranked items up to and including the first reaching cumulative share {}; \
             torso = following items up to and including the first reaching {share}",
            head_share.unwrap_or(share * share)
        ),
        (TailRule::Quantile { fraction, .. }, 2) => {
            format!("head = top floor({fraction}*n + 0.5) items with at least one interaction")
        }
        (
            TailRule::Quantile {
                fraction,
                head_fraction,
            },
            _,
        ) => format!(
            "head = top floor({h}*n + 0.5) items, torso = up to top floor({fraction}*n + 0.5) \
             (only items with interactions)",
            h = head_fraction.unwrap_or(fraction * fraction)
        ),
        (TailRule::MinCount { min, .. }, 2) => format!("head = items with >= {min} interactions"),
        (TailRule::MinCount { min, head_min }, _) => format!(
            "head = items with >= {} interactions, torso = {min} or more",
            head_min.unwrap_or(min)
        ),
    };
    format!(
        "{order}; {body}; the rest (and every item with 0 interactions) is tail; cut ranks {cut_ranks:?}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use Label::{Head, Tail, Torso};

    fn rule(s: &str) -> TailRule {
        s.parse().unwrap()
    }

    fn labels(ids: &[&str], counts: &[u64], r: &str, tiers: u8) -> Vec<Label> {
        let r = rule(r);
        r.validate(tiers).unwrap();
        assign_labels(ids, counts, &r, tiers).labels
    }

    #[test]
    fn parses_and_displays_rules() {
        for s in [
            "pareto:0.8",
            "pareto:0.8,0.5",
            "quantile:0.2",
            "min-count:10",
            "min-count:5,50",
        ] {
            assert_eq!(rule(s).to_string(), s);
        }
        assert_eq!(rule("pareto"), TailRule::default());
        for bad in [
            "pareto:0",
            "pareto:1.5",
            "pareto:x",
            "pareto:0.8,0.9",
            "quantile:-1",
            "min-count",
            "min-count:0",
            "min-count:5,5",
            "zipf:1",
            "pareto:0.1,0.05,0.01",
        ] {
            assert!(bad.parse::<TailRule>().is_err(), "{bad} should not parse");
        }
        assert!(rule("pareto:0.8,0.5").validate(2).is_err());
        assert!(rule("min-count:5").validate(3).is_err());
        assert!(rule("pareto:0.8").validate(4).is_err());
        let json = serde_json::to_string(&rule("quantile:0.2")).unwrap();
        assert_eq!(json, "\"quantile:0.2\"");
        assert_eq!(
            serde_json::from_str::<TailRule>(&json).unwrap(),
            rule("quantile:0.2")
        );
    }

    #[test]
    fn pareto_item_reaching_share_is_head() {
        // total 20; ranked counts 10, 6, 3, 1: cumulative shares .5, .8, .95, 1
        let ids = ["d", "a", "c", "b"];
        let counts = [1, 10, 3, 6];
        assert_eq!(
            labels(&ids, &counts, "pareto:0.8", 2),
            [Tail, Head, Tail, Head]
        );
        // 0.81 needs the third item
        assert_eq!(
            labels(&ids, &counts, "pareto:0.81", 2),
            [Tail, Head, Head, Head]
        );
        assert_eq!(
            labels(&ids, &counts, "pareto:0.5", 2),
            [Tail, Head, Tail, Tail]
        );
    }

    #[test]
    fn ties_are_broken_by_item_id_bytewise() {
        // four items with 5 each: share .25 per item; "B" < "a" < "b" byte-wise
        let ids = ["b", "a", "B", "c"];
        let counts = [5, 5, 5, 5];
        assert_eq!(
            labels(&ids, &counts, "pareto:0.5", 2),
            [Tail, Head, Head, Tail]
        );
        assert_eq!(
            labels(&ids, &counts, "quantile:0.25", 2),
            [Tail, Tail, Head, Tail]
        );
        let ranking = assign_labels(&ids, &counts, &rule("pareto:0.5"), 2).ranking;
        assert_eq!(ranking, [2, 1, 0, 3]);
        // numeric-looking ids sort as strings: "10" < "9"
        assert_eq!(labels(&["9", "10"], &[1, 1], "pareto:0.5", 2), [Tail, Head]);
    }

    #[test]
    fn zero_count_items_are_always_tail() {
        let ids = ["a", "b", "c"];
        let counts = [4, 0, 0];
        assert_eq!(labels(&ids, &counts, "pareto:1", 2), [Head, Tail, Tail]);
        assert_eq!(labels(&ids, &counts, "quantile:1", 2), [Head, Tail, Tail]);
        assert_eq!(labels(&ids, &counts, "min-count:1", 2), [Head, Tail, Tail]);
        assert_eq!(
            labels(&ids, &[0, 0, 0], "pareto:0.8", 2),
            [Tail, Tail, Tail]
        );
    }

    #[test]
    fn quantile_rounds_half_up() {
        let ids: Vec<String> = (0..10).map(|i| format!("i{i}")).collect();
        let counts: Vec<u64> = (0..10).map(|i| 20 - i).collect();
        let head = |r: &str| {
            labels(
                &ids.iter().map(String::as_str).collect::<Vec<_>>(),
                &counts,
                r,
                2,
            )
            .iter()
            .filter(|l| **l == Head)
            .count()
        };
        assert_eq!(head("quantile:0.25"), 3); // 2.5 -> 3
        assert_eq!(head("quantile:0.24"), 2); // 2.4 -> 2
        assert_eq!(head("quantile:0.2"), 2);
        assert_eq!(head("quantile:1"), 10);
    }

    #[test]
    fn min_count_threshold() {
        let ids = ["a", "b", "c", "d"];
        let counts = [9, 10, 11, 0];
        assert_eq!(
            labels(&ids, &counts, "min-count:10", 2),
            [Tail, Head, Head, Tail]
        );
        assert_eq!(
            labels(&ids, &counts, "min-count:10,11", 3),
            [Tail, Torso, Head, Tail]
        );
    }

    #[test]
    fn three_tiers_keep_the_two_tier_tail() {
        // ranked counts 50, 20, 14, 10, 6 (total 100); shares .5 .7 .84 .94 1
        let ids = ["a", "b", "c", "d", "e"];
        let counts = [50, 20, 14, 10, 6];
        // default head cut 0.8^2 = 0.64 -> reached by "b" (0.7)
        let three = labels(&ids, &counts, "pareto:0.8", 3);
        assert_eq!(three, [Head, Head, Torso, Tail, Tail]);
        let two = labels(&ids, &counts, "pareto:0.8", 2);
        assert_eq!(two, [Head, Head, Head, Tail, Tail]);
        assert_eq!(
            labels(&ids, &counts, "pareto:0.8,0.5", 3),
            [Head, Torso, Torso, Tail, Tail]
        );
        let l = assign_labels(&ids, &counts, &rule("pareto:0.8,0.5"), 3);
        assert_eq!(l.cut_ranks, [1, 3]);
        // quantile:0.6 of 5 = 3 non-tail; head = floor(0.36*5+0.5) = 2
        assert_eq!(
            labels(&ids, &counts, "quantile:0.6", 3),
            [Head, Head, Torso, Tail, Tail]
        );
    }

    #[test]
    fn description_mentions_rule_and_cuts() {
        let d = describe(&rule("pareto:0.8"), 2, &[3]);
        assert!(d.contains("0.8") && d.contains("[3]"), "{d}");
    }
}
