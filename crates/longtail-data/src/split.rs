//! Train / validation / test assignment.
//!
//! * `random:TRAIN,VAL,TEST` (default `random:0.7,0.1,0.2`): stratified by
//!   label. Within each label, items are sorted by id (so input order does
//!   not matter), shuffled with a ChaCha8 RNG seeded by `--seed` (labels are
//!   processed in the order head, torso, tail from one RNG stream), then the
//!   first `round(n·TRAIN)` go to train, the next `round(n·VAL)` to
//!   validation and the rest to test (`round` = half away from zero). Every
//!   split is within one item of its target per label.
//! * `time:DATE[,VAL]`: a cold-start split. `DATE` is `YYYY-MM-DD` (meaning
//!   the end of that day, 23:59:59 UTC) or unix seconds. Items whose first
//!   kept interaction is strictly after the cutoff are test; their label is
//!   still computed over the whole log, so it says whether a listing that
//!   appeared after the cutoff became head or tail. All other items, including
//!   catalogue items with no interactions (they are tail whenever they
//!   appeared), are split into train/validation exactly as `random`
//!   does with fractions `1-VAL, VAL, 0` (default `VAL` = 0.1).

use std::fmt;
use std::str::FromStr;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::label::Label;
use crate::timestamp::parse_date;
use crate::DataError;

/// Which split an item belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Validation,
    Test,
}

impl Split {
    pub const ALL: [Split; 3] = [Split::Train, Split::Validation, Split::Test];

    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Validation => "validation",
            Split::Test => "test",
        }
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How items are split; see the module docs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum SplitSpec {
    Random {
        train: f64,
        validation: f64,
        test: f64,
    },
    Time {
        /// Inclusive upper bound (unix seconds) for the train/validation side.
        cutoff: i64,
        /// The cutoff as written (`2014-01-01` or seconds), for display.
        cutoff_text: String,
        validation: f64,
    },
}

impl Default for SplitSpec {
    fn default() -> Self {
        SplitSpec::Random {
            train: 0.7,
            validation: 0.1,
            test: 0.2,
        }
    }
}

fn invalid(value: &str, reason: impl Into<String>) -> DataError {
    DataError::InvalidOption {
        what: "split",
        value: value.to_string(),
        reason: reason.into(),
    }
}

impl FromStr for SplitSpec {
    type Err = DataError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, params) = s.split_once(':').unwrap_or((s, ""));
        let params: Vec<&str> = params.split(',').map(str::trim).collect();
        let frac = |p: &str| match p.parse::<f64>() {
            Ok(x) if (0.0..=1.0).contains(&x) => Ok(x),
            _ => Err(invalid(s, format!("`{p}` is not a fraction in [0, 1]"))),
        };
        match kind.trim() {
            "random" => {
                let [train, validation, test] = params[..] else {
                    return Err(invalid(s, "expected random:TRAIN,VAL,TEST"));
                };
                let (train, validation, test) = (frac(train)?, frac(validation)?, frac(test)?);
                if ((train + validation + test) - 1.0).abs() > 1e-6 {
                    return Err(invalid(s, "fractions must add up to 1"));
                }
                Ok(SplitSpec::Random {
                    train,
                    validation,
                    test,
                })
            }
            "time" => {
                let (cutoff_text, validation) = match params[..] {
                    [date] => (date, 0.1),
                    [date, val] => (date, frac(val)?),
                    _ => return Err(invalid(s, "expected time:YYYY-MM-DD[,VAL]")),
                };
                let cutoff = if let Some(day) = parse_date(cutoff_text) {
                    // the whole day counts as "at or before" the cutoff
                    day * 86_400 + 86_399
                } else {
                    cutoff_text
                        .parse::<i64>()
                        .map_err(|_| invalid(s, "the cutoff must be YYYY-MM-DD or unix seconds"))?
                };
                Ok(SplitSpec::Time {
                    cutoff,
                    cutoff_text: cutoff_text.to_string(),
                    validation,
                })
            }
            _ => Err(invalid(s, "expected random:TRAIN,VAL,TEST or time:DATE")),
        }
    }
}

impl fmt::Display for SplitSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SplitSpec::Random {
                train,
                validation,
                test,
            } => write!(f, "random:{train},{validation},{test}"),
            SplitSpec::Time {
                cutoff_text,
                validation,
                ..
            } => write!(f, "time:{cutoff_text},{validation}"),
        }
    }
}

impl From<SplitSpec> for String {
    fn from(s: SplitSpec) -> String {
        s.to_string()
    }
}

impl TryFrom<String> for SplitSpec {
    type Error = DataError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// What the splitter needs to know about one item.
#[derive(Debug, Clone, Copy)]
pub struct SplitInput<'a> {
    pub id: &'a str,
    pub label: Label,
    pub first_seen: Option<i64>,
}

/// Assigns every item to exactly one split (aligned with `items`).
pub fn assign_splits(items: &[SplitInput<'_>], spec: &SplitSpec, seed: u64) -> Vec<Split> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = vec![Split::Test; items.len()];
    let (fractions, pool): ((f64, f64), Vec<usize>) = match spec {
        SplitSpec::Random {
            train, validation, ..
        } => ((*train, *validation), (0..items.len()).collect()),
        SplitSpec::Time {
            cutoff, validation, ..
        } => (
            (1.0 - validation, *validation),
            (0..items.len())
                .filter(|&i| items[i].first_seen.is_none_or(|t| t <= *cutoff))
                .collect(),
        ),
    };
    for label in Label::ALL {
        let mut group: Vec<usize> = pool
            .iter()
            .copied()
            .filter(|&i| items[i].label == label)
            .collect();
        group.sort_by(|&a, &b| items[a].id.as_bytes().cmp(items[b].id.as_bytes()));
        group.shuffle(&mut rng);
        let (n_train, n_val) = target_sizes(group.len(), fractions);
        for (pos, &i) in group.iter().enumerate() {
            out[i] = if pos < n_train {
                Split::Train
            } else if pos < n_train + n_val {
                Split::Validation
            } else {
                Split::Test
            };
        }
    }
    out
}

/// `(round(n·train), round(n·val))`, clamped so they never exceed `n`.
pub fn target_sizes(n: usize, (train, validation): (f64, f64)) -> (usize, usize) {
    let n_train = ((n as f64 * train).round() as usize).min(n);
    let n_val = ((n as f64 * validation).round() as usize).min(n - n_train);
    (n_train, n_val)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn spec(s: &str) -> SplitSpec {
        s.parse().unwrap()
    }

    fn items(n_head: usize, n_tail: usize) -> (Vec<String>, Vec<Label>) {
        let ids: Vec<String> = (0..n_head + n_tail)
            .map(|i| format!("item{i:04}"))
            .collect();
        let labels = (0..n_head + n_tail)
            .map(|i| if i < n_head { Label::Head } else { Label::Tail })
            .collect();
        (ids, labels)
    }

    fn inputs<'a>(
        ids: &'a [String],
        labels: &[Label],
        seen: &[Option<i64>],
    ) -> Vec<SplitInput<'a>> {
        ids.iter()
            .zip(labels)
            .zip(seen)
            .map(|((id, &label), &first_seen)| SplitInput {
                id,
                label,
                first_seen,
            })
            .collect()
    }

    #[test]
    fn parses_specs() {
        assert_eq!(spec("random:0.7,0.1,0.2"), SplitSpec::default());
        assert_eq!(spec("random:0.7,0.1,0.2").to_string(), "random:0.7,0.1,0.2");
        match spec("time:2014-01-01") {
            SplitSpec::Time {
                cutoff, validation, ..
            } => {
                assert_eq!(cutoff, 1388534400 + 86_399);
                assert_eq!(validation, 0.1);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            spec("time:1388534400,0.2"),
            SplitSpec::Time {
                cutoff: 1388534400,
                ..
            }
        ));
        for bad in [
            "random:0.7,0.1",
            "random:0.7,0.2,0.2",
            "random:a,b,c",
            "time:",
            "time:2014-02-30",
            "time:2014-01-01,2",
            "kfold:5",
            "random:1.5,-0.5,0",
        ] {
            assert!(bad.parse::<SplitSpec>().is_err(), "{bad} should not parse");
        }
        let json = serde_json::to_string(&spec("time:2014-01-01,0.1")).unwrap();
        assert_eq!(
            serde_json::from_str::<SplitSpec>(&json).unwrap(),
            spec("time:2014-01-01,0.1")
        );
    }

    #[test]
    fn stratified_sizes_within_one_of_target_per_label() {
        for (n_head, n_tail) in [(0, 1), (1, 1), (3, 7), (10, 33), (101, 997)] {
            let (ids, labels) = items(n_head, n_tail);
            let seen = vec![Some(0); ids.len()];
            for s in [
                "random:0.7,0.1,0.2",
                "random:0.8,0.1,0.1",
                "random:0.5,0.25,0.25",
                "random:1,0,0",
            ] {
                let sp = spec(s);
                let SplitSpec::Random {
                    train,
                    validation,
                    test,
                } = sp
                else {
                    unreachable!()
                };
                let splits = assign_splits(&inputs(&ids, &labels, &seen), &sp, 7);
                for label in [Label::Head, Label::Tail] {
                    let n = labels.iter().filter(|l| **l == label).count() as f64;
                    for (split, frac) in [
                        (Split::Train, train),
                        (Split::Validation, validation),
                        (Split::Test, test),
                    ] {
                        let got = splits
                            .iter()
                            .zip(&labels)
                            .filter(|(s, l)| **s == split && **l == label)
                            .count() as f64;
                        assert!(
                            (got - n * frac).abs() <= 1.0,
                            "{s} {label} {split}: {got} vs {}",
                            n * frac
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn deterministic_by_seed_and_independent_of_input_order() {
        let (ids, labels) = items(40, 160);
        let seen = vec![Some(0); ids.len()];
        let sp = SplitSpec::default();
        let a = assign_splits(&inputs(&ids, &labels, &seen), &sp, 42);
        let b = assign_splits(&inputs(&ids, &labels, &seen), &sp, 42);
        let c = assign_splits(&inputs(&ids, &labels, &seen), &sp, 43);
        assert_eq!(a, b);
        assert_ne!(a, c);
        // reversed input: each id keeps its split
        let mut rev_ids = ids.clone();
        rev_ids.reverse();
        let mut rev_labels = labels.clone();
        rev_labels.reverse();
        let r = assign_splits(&inputs(&rev_ids, &rev_labels, &seen), &sp, 42);
        let by_id: HashMap<&str, Split> = rev_ids.iter().map(String::as_str).zip(r).collect();
        for (id, s) in ids.iter().zip(&a) {
            assert_eq!(by_id[id.as_str()], *s);
        }
    }

    #[test]
    fn time_split_sends_later_items_to_test() {
        let (ids, labels) = items(5, 15);
        let seen: Vec<Option<i64>> = (0..20)
            .map(|i| match i {
                0..=9 => Some(100 + i),
                10..=15 => Some(200 + i),
                _ => None,
            })
            .collect();
        let sp = spec("time:150,0.25");
        let splits = assign_splits(&inputs(&ids, &labels, &seen), &sp, 1);
        for (i, s) in splits.iter().enumerate() {
            let after = seen[i].is_some_and(|t| t > 150);
            assert_eq!(*s == Split::Test, after, "item {i}");
        }
        // 14 items on the early side: head 5 -> 4/1, tail 9 -> 7/2 (6.75 rounds to 7)
        let count = |split| splits.iter().filter(|s| **s == split).count();
        assert_eq!(count(Split::Train), 4 + 7);
        assert_eq!(count(Split::Validation), 1 + 2);
        // a cutoff on the exact second is inclusive
        let sp = spec("time:100");
        let splits = assign_splits(&inputs(&ids, &labels, &seen), &sp, 1);
        assert_ne!(splits[0], Split::Test);
        assert_eq!(splits[1], Split::Test);
    }

    #[test]
    fn target_sizes_never_exceed_n() {
        assert_eq!(target_sizes(1, (0.5, 0.5)), (1, 0));
        assert_eq!(target_sizes(10, (0.7, 0.1)), (7, 1));
        assert_eq!(target_sizes(0, (0.7, 0.1)), (0, 0));
    }
}
