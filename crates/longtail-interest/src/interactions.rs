//! Per-user interaction sequences and the leave-last-out split.
//!
//! Protocol (shared with `longtail eval-rec`): a user's interactions are ordered by timestamp
//! (ties keep file order); the last one is the test target, the second last the validation
//! target, the rest is training history. Users with fewer than 3 interactions contribute all
//! of them to training and have no targets.

use std::collections::HashMap;
use std::path::Path;

use crate::error::{InterestError, Result};

/// Interaction sequences over a fixed item catalogue.
#[derive(Debug, Clone)]
pub struct Interactions {
    /// User ids in first-appearance order.
    pub users: Vec<String>,
    /// Per user, catalogue item indices in time order.
    pub seqs: Vec<Vec<usize>>,
    /// Rows read (excluding the header).
    pub rows: u64,
    /// Rows whose item is not in the catalogue (skipped).
    pub rejected: u64,
    /// Later repeats of a `(user, item)` pair (dropped); rows = kept + rejected + duplicates.
    pub duplicates: u64,
}

/// One user's targets under leave-last-out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Targets {
    pub validation: usize,
    pub test: usize,
}

impl Interactions {
    /// Reads `user_id,item_id,timestamp` (header required). `item_index` maps catalogue ids to
    /// indices.
    pub fn load(path: &Path, item_index: &HashMap<String, usize>) -> Result<Self> {
        let mut rdr = csv::Reader::from_path(path).map_err(|e| InterestError::Parse {
            path: path.to_path_buf(),
            line: 1,
            reason: e.to_string(),
        })?;
        let headers = rdr
            .headers()
            .map_err(|e| InterestError::Parse {
                path: path.to_path_buf(),
                line: 1,
                reason: e.to_string(),
            })?
            .clone();
        let col = |name: &str| {
            headers
                .iter()
                .position(|h| h == name)
                .ok_or_else(|| InterestError::Parse {
                    path: path.to_path_buf(),
                    line: 1,
                    reason: format!("missing column {name}"),
                })
        };
        let (cu, ci, ct) = (col("user_id")?, col("item_id")?, col("timestamp")?);
        let mut user_index: HashMap<String, usize> = HashMap::new();
        let mut users = Vec::new();
        let mut events: Vec<Vec<(i64, u64, usize)>> = Vec::new();
        let (mut rows, mut rejected) = (0u64, 0u64);
        for (i, rec) in rdr.records().enumerate() {
            let line = i as u64 + 2;
            let rec = rec.map_err(|e| InterestError::Parse {
                path: path.to_path_buf(),
                line,
                reason: e.to_string(),
            })?;
            rows += 1;
            let field = |c: usize| rec.get(c).unwrap_or("");
            let ts: i64 = field(ct).trim().parse().map_err(|_| InterestError::Parse {
                path: path.to_path_buf(),
                line,
                reason: format!("timestamp {:?} is not an integer", field(ct)),
            })?;
            let Some(&item) = item_index.get(field(ci)) else {
                rejected += 1;
                continue;
            };
            let uid = field(cu);
            let u = match user_index.get(uid) {
                Some(&u) => u,
                None => {
                    user_index.insert(uid.to_string(), users.len());
                    users.push(uid.to_string());
                    events.push(Vec::new());
                    users.len() - 1
                }
            };
            events[u].push((ts, line, item));
        }
        let mut duplicates = 0u64;
        let seqs = events
            .into_iter()
            .map(|mut ev| {
                ev.sort_by_key(|&(ts, line, _)| (ts, line));
                let mut seen = std::collections::HashSet::new();
                let mut out = Vec::with_capacity(ev.len());
                for (_, _, item) in ev {
                    if seen.insert(item) {
                        out.push(item);
                    } else {
                        duplicates += 1;
                    }
                }
                out
            })
            .collect();
        Ok(Self {
            users,
            seqs,
            rows,
            rejected,
            duplicates,
        })
    }

    /// The training part of user `u`'s sequence (all but the last two when there are >= 3).
    pub fn train_prefix(&self, u: usize) -> &[usize] {
        let s = &self.seqs[u];
        if s.len() >= 3 {
            &s[..s.len() - 2]
        } else {
            s
        }
    }

    /// Validation and test targets of user `u`, if they have >= 3 interactions.
    pub fn targets(&self, u: usize) -> Option<Targets> {
        let s = &self.seqs[u];
        (s.len() >= 3).then(|| Targets {
            validation: s[s.len() - 2],
            test: s[s.len() - 1],
        })
    }

    /// Next-item training pairs `(user, position)`: the item at `position` of the user's
    /// training prefix is the target, the items before it the history (position >= 1).
    pub fn next_item_pairs(&self, full: bool) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for u in 0..self.seqs.len() {
            let n = if full {
                self.seqs[u].len()
            } else {
                self.train_prefix(u).len()
            };
            out.extend((1..n).map(|p| (u, p)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_sorts_by_time_and_splits_last_two() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("i.csv");
        std::fs::write(
            &p,
            "user_id,item_id,timestamp\nu1,B,20\nu1,A,10\nu2,A,5\nu1,C,30\nu1,Z,1\nu1,D,40\nu1,A,50\n",
        )
        .unwrap();
        let idx: HashMap<String, usize> = ["A", "B", "C", "D"]
            .iter()
            .enumerate()
            .map(|(i, s)| (s.to_string(), i))
            .collect();
        let it = Interactions::load(&p, &idx).unwrap();
        assert_eq!(it.rows, 7);
        assert_eq!(it.rejected, 1);
        assert_eq!(it.duplicates, 1);
        assert_eq!(it.seqs[0], vec![0, 1, 2, 3]);
        assert_eq!(it.train_prefix(0), &[0, 1]);
        assert_eq!(
            it.targets(0),
            Some(Targets {
                validation: 2,
                test: 3
            })
        );
        assert_eq!(it.targets(1), None);
        assert_eq!(it.next_item_pairs(false), vec![(0, 1)]);
        assert_eq!(it.next_item_pairs(true), vec![(0, 1), (0, 2), (0, 3)]);
    }
}
