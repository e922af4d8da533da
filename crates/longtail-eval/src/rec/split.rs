//! Leave-last-out split of a prepared interaction log.
//!
//! Protocol (documented here, reproduced independently by
//! `scripts/check_eval_rec.py`):
//! * Items are the catalogue (`items.jsonl`) in file order; item index = line
//!   number - 1. Users are numbered in order of first appearance in
//!   `interactions.csv`.
//! * Each user's events are ordered by `(timestamp, row in the file)`, so
//!   same-day events keep the log's order.
//! * Repeated `(user, item)` pairs keep only the **first** (earliest) event;
//!   later repeats are dropped and counted (`duplicates_dropped`). A re-bought
//!   item could never be recommended under seen-item exclusion anyway.
//! * Users with at least 3 distinct items: last item = test target, second last
//!   = validation target, the rest = training. Users with fewer than 3 keep all
//!   their items in training (they still shape the baselines and the
//!   popularity labels) and are not evaluated (`short_users`).

use std::collections::{HashMap, HashSet};
use std::path::Path;

use crate::EvalError;

/// Index of an item in the catalogue.
pub type ItemIdx = u32;
/// Index of a user (order of first appearance in the log).
pub type UserIdx = u32;

/// Which held-out item is being predicted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Target = second-last item; history = training items.
    Validation,
    /// Target = last item; history = training items + the validation item.
    Test,
}

/// Counts describing how the log became a split.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SplitStats {
    pub rows: u64,
    pub duplicates_dropped: u64,
    pub users: u64,
    /// Users with >= 3 distinct items (validation and test targets).
    pub evaluated_users: u64,
    /// Users with < 3 distinct items: training only, not evaluated.
    pub short_users: u64,
    pub train_interactions: u64,
    pub items: u64,
}

/// The leave-last-out split.
#[derive(Debug, Clone)]
pub struct RecSplit {
    pub item_ids: Vec<String>,
    pub user_ids: Vec<String>,
    /// Per user, training items in chronological order.
    pub train: Vec<Vec<ItemIdx>>,
    /// Per user, the validation target (None for short users).
    pub valid: Vec<Option<ItemIdx>>,
    /// Per user, the test target (None for short users).
    pub test: Vec<Option<ItemIdx>>,
    pub stats: SplitStats,
}

/// One event of the log, already mapped to indices.
#[derive(Debug, Clone, Copy)]
pub struct Event {
    pub user: UserIdx,
    pub item: ItemIdx,
    pub timestamp: i64,
}

impl RecSplit {
    pub fn n_items(&self) -> usize {
        self.item_ids.len()
    }

    pub fn n_users(&self) -> usize {
        self.user_ids.len()
    }

    /// Users with a target (>= 3 distinct items), ascending.
    pub fn eval_users(&self) -> Vec<UserIdx> {
        (0..self.n_users() as UserIdx)
            .filter(|&u| self.test[u as usize].is_some())
            .collect()
    }

    /// The target item of `user` at `stage`.
    pub fn target(&self, user: UserIdx, stage: Stage) -> Option<ItemIdx> {
        match stage {
            Stage::Validation => self.valid[user as usize],
            Stage::Test => self.test[user as usize],
        }
    }

    /// The history a model sees at `stage`: training items, plus the
    /// validation item at test time. These items are excluded from ranking.
    pub fn history(&self, user: UserIdx, stage: Stage) -> Vec<ItemIdx> {
        let mut h = self.train[user as usize].clone();
        if let (Stage::Test, Some(v)) = (stage, self.valid[user as usize]) {
            h.push(v);
        }
        h
    }

    /// Training interaction counts per item.
    pub fn train_counts(&self) -> Vec<u64> {
        let mut counts = vec![0u64; self.n_items()];
        for items in &self.train {
            for &i in items {
                counts[i as usize] += 1;
            }
        }
        counts
    }

    /// Builds the split from events in log order (the row order is the tie
    /// break for equal timestamps).
    pub fn from_events(item_ids: Vec<String>, user_ids: Vec<String>, events: &[Event]) -> RecSplit {
        let n_users = user_ids.len();
        let mut per_user: Vec<Vec<(i64, usize, ItemIdx)>> = vec![Vec::new(); n_users];
        for (row, e) in events.iter().enumerate() {
            per_user[e.user as usize].push((e.timestamp, row, e.item));
        }
        let mut stats = SplitStats {
            rows: events.len() as u64,
            users: n_users as u64,
            items: item_ids.len() as u64,
            ..SplitStats::default()
        };
        let mut train = Vec::with_capacity(n_users);
        let mut valid = Vec::with_capacity(n_users);
        let mut test = Vec::with_capacity(n_users);
        for mut evs in per_user {
            evs.sort_unstable_by_key(|&(ts, row, _)| (ts, row));
            let mut seen = HashSet::new();
            let mut items: Vec<ItemIdx> = Vec::with_capacity(evs.len());
            for (_, _, item) in evs {
                if seen.insert(item) {
                    items.push(item);
                } else {
                    stats.duplicates_dropped += 1;
                }
            }
            if items.len() >= 3 {
                let t = items.pop();
                let v = items.pop();
                stats.evaluated_users += 1;
                valid.push(v);
                test.push(t);
            } else {
                stats.short_users += 1;
                valid.push(None);
                test.push(None);
            }
            stats.train_interactions += items.len() as u64;
            train.push(items);
        }
        RecSplit {
            item_ids,
            user_ids,
            train,
            valid,
            test,
            stats,
        }
    }

    /// Reads `DIR/items.jsonl` (item order) and `DIR/interactions.csv`
    /// (`user_id,item_id,timestamp`) and splits them. An interaction whose
    /// item is not in the catalogue is an error naming its line.
    pub fn load(dir: &Path) -> Result<RecSplit, EvalError> {
        let dataset = longtail_data::PreparedDataset::load(dir)?;
        let item_ids: Vec<String> = dataset.items.into_iter().map(|i| i.item_id).collect();
        let item_index: HashMap<&str, ItemIdx> = item_ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.as_str(), i as ItemIdx))
            .collect();
        let path = dir.join(longtail_data::INTERACTIONS_FILE);
        let bad = |line: u64, reason: String| EvalError::Input {
            path: path.clone(),
            line,
            reason,
        };
        let file = std::fs::File::open(&path).map_err(EvalError::io(&path))?;
        let mut reader = csv::Reader::from_reader(std::io::BufReader::new(file));
        let headers = reader.headers().map_err(|e| bad(1, e.to_string()))?.clone();
        let col = |name: &str| {
            headers
                .iter()
                .position(|h| h == name)
                .ok_or_else(|| bad(1, format!("missing column `{name}`")))
        };
        let (cu, ci, ct) = (col("user_id")?, col("item_id")?, col("timestamp")?);
        let mut user_index: HashMap<String, UserIdx> = HashMap::new();
        let mut user_ids = Vec::new();
        let mut events = Vec::new();
        for (row, record) in reader.records().enumerate() {
            let line = row as u64 + 2;
            let record = record.map_err(|e| bad(line, e.to_string()))?;
            let field = |c: usize| record.get(c).unwrap_or("");
            let item = *item_index
                .get(field(ci))
                .ok_or_else(|| bad(line, format!("item `{}` not in items.jsonl", field(ci))))?;
            let timestamp: i64 = field(ct)
                .parse()
                .map_err(|_| bad(line, format!("timestamp `{}` is not an integer", field(ct))))?;
            let uid = field(cu);
            let user = match user_index.get(uid) {
                Some(&u) => u,
                None => {
                    let u = user_ids.len() as UserIdx;
                    user_index.insert(uid.to_string(), u);
                    user_ids.push(uid.to_string());
                    u
                }
            };
            events.push(Event {
                user,
                item,
                timestamp,
            });
        }
        Ok(RecSplit::from_events(item_ids, user_ids, &events))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(user: u32, item: u32, timestamp: i64) -> Event {
        Event {
            user,
            item,
            timestamp,
        }
    }

    #[test]
    fn leave_last_out_with_ties_duplicates_and_short_users() {
        let items = (0..5).map(|i| format!("i{i}")).collect();
        let users = vec!["a".into(), "b".into()];
        // user 0: ts ties broken by row order; item 1 repeated (dropped)
        let events = [
            ev(0, 3, 20),
            ev(0, 0, 10),
            ev(0, 1, 20),
            ev(1, 2, 5),
            ev(0, 1, 30),
            ev(0, 4, 40),
            ev(1, 2, 6),
        ];
        let s = RecSplit::from_events(items, users, &events);
        assert_eq!(s.train[0], vec![0, 3]);
        assert_eq!(s.valid[0], Some(1));
        assert_eq!(s.test[0], Some(4));
        assert_eq!(s.train[1], vec![2]);
        assert_eq!(s.test[1], None);
        assert_eq!(s.stats.duplicates_dropped, 2);
        assert_eq!(s.stats.short_users, 1);
        assert_eq!(s.stats.evaluated_users, 1);
        assert_eq!(s.history(0, Stage::Test), vec![0, 3, 1]);
        assert_eq!(s.history(0, Stage::Validation), vec![0, 3]);
        assert_eq!(s.train_counts(), vec![1, 0, 1, 1, 0]);
        assert_eq!(s.eval_users(), vec![0]);
    }
}
