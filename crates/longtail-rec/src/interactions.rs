//! The interaction log of a prepared dir and its leave-last-out split: the one reader every
//! command uses (`eval-rec`, `train-interest`, `recommend`).
//!
//! Protocol (reproduced independently by `scripts/check_eval_rec.py`):
//! * Items are the catalogue (`items.jsonl`) in file order; item index = line number - 1.
//!   Users are numbered in order of first appearance in `interactions.csv`.
//! * A row whose item is not in the catalogue is skipped and counted
//!   ([`Interactions::rejected`], `unknown_items` in [`SplitStats`]), never silently lost;
//!   a row whose timestamp is not an integer is an error naming its line.
//! * Each user's events are ordered by `(timestamp, row in the file)`, so same-day events keep
//!   the log's order.
//! * Repeated `(user, item)` pairs keep only the **first** (earliest) event; later repeats are
//!   dropped and counted. A re-bought item could never be recommended under seen-item
//!   exclusion anyway.
//! * Users with at least 3 distinct items: last item = test target, second last = validation
//!   target, the rest = training. Users with fewer than 3 keep all their items in training
//!   (they still shape the baselines and the popularity labels) and are not evaluated.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use crate::{ItemIdx, RecError, UserIdx};

/// Per-user interaction sequences over a fixed item catalogue.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Interactions {
    /// User ids in first-appearance order.
    pub users: Vec<String>,
    /// Per user, distinct catalogue item indices in time order.
    pub seqs: Vec<Vec<usize>>,
    /// Data rows read (excluding the header): `rows = kept + rejected + duplicates`.
    pub rows: u64,
    /// Rows whose item is not in the catalogue (skipped).
    pub rejected: u64,
    /// Later repeats of a `(user, item)` pair (dropped).
    pub duplicates: u64,
}

/// One event of the log, already mapped to indices.
#[derive(Debug, Clone, Copy)]
pub struct Event {
    pub user: UserIdx,
    pub item: ItemIdx,
    pub timestamp: i64,
}

/// One user's targets under leave-last-out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Targets {
    pub validation: usize,
    pub test: usize,
}

impl Interactions {
    /// Reads `user_id,item_id,timestamp` (header required, columns in any order).
    /// `item_index` maps catalogue ids to indices.
    pub fn load(path: &Path, item_index: &HashMap<String, usize>) -> Result<Self, RecError> {
        let bad = |line: u64, reason: String| RecError::Input {
            path: path.to_path_buf(),
            line,
            reason,
        };
        let file = std::fs::File::open(path).map_err(|source| RecError::Io {
            path: path.to_path_buf(),
            source,
        })?;
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
        let mut users = Vec::new();
        let mut events = Vec::new();
        let (mut rows, mut rejected) = (0u64, 0u64);
        for (row, record) in reader.records().enumerate() {
            let line = row as u64 + 2;
            let record = record.map_err(|e| bad(line, e.to_string()))?;
            rows += 1;
            let field = |c: usize| record.get(c).unwrap_or("");
            let timestamp: i64 = field(ct)
                .trim()
                .parse()
                .map_err(|_| bad(line, format!("timestamp `{}` is not an integer", field(ct))))?;
            let Some(&item) = item_index.get(field(ci)) else {
                rejected += 1;
                continue;
            };
            let uid = field(cu);
            let user = match user_index.get(uid) {
                Some(&u) => u,
                None => {
                    let u = users.len() as UserIdx;
                    user_index.insert(uid.to_string(), u);
                    users.push(uid.to_string());
                    u
                }
            };
            events.push(Event {
                user,
                item: item as ItemIdx,
                timestamp,
            });
        }
        let mut inter = Self::from_events(users, &events);
        inter.rows = rows;
        inter.rejected = rejected;
        Ok(inter)
    }

    /// Orders and de-duplicates events given in log order (the row order is the tie break
    /// for equal timestamps). Every event counts as a row.
    pub fn from_events(users: Vec<String>, events: &[Event]) -> Self {
        let mut per_user: Vec<Vec<(i64, usize, ItemIdx)>> = vec![Vec::new(); users.len()];
        for (row, e) in events.iter().enumerate() {
            per_user[e.user as usize].push((e.timestamp, row, e.item));
        }
        let mut duplicates = 0u64;
        let seqs = per_user
            .into_iter()
            .map(|mut evs| {
                evs.sort_unstable_by_key(|&(ts, row, _)| (ts, row));
                let mut seen = HashSet::new();
                let mut items = Vec::with_capacity(evs.len());
                for (_, _, item) in evs {
                    if seen.insert(item) {
                        items.push(item as usize);
                    } else {
                        duplicates += 1;
                    }
                }
                items
            })
            .collect();
        Self {
            users,
            seqs,
            rows: events.len() as u64,
            rejected: 0,
            duplicates,
        }
    }

    /// Interactions kept (distinct `(user, item)` pairs with a catalogue item).
    pub fn kept(&self) -> u64 {
        self.rows - self.rejected - self.duplicates
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
    /// training prefix (of the whole sequence with `full`) is the target, the items before it
    /// the history (position >= 1).
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
    /// Data rows of the log: kept + `unknown_items` + `duplicates_dropped`.
    pub rows: u64,
    pub duplicates_dropped: u64,
    /// Rows whose item is not in the catalogue (skipped, not evaluated).
    #[serde(default)]
    pub unknown_items: u64,
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

    /// The history a model sees at `stage`: training items, plus the validation item at test
    /// time. These items are excluded from ranking.
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

    /// Splits every user's sequence leave-last-out.
    pub fn from_interactions(item_ids: Vec<String>, inter: &Interactions) -> RecSplit {
        let n_users = inter.users.len();
        let mut stats = SplitStats {
            rows: inter.rows,
            duplicates_dropped: inter.duplicates,
            unknown_items: inter.rejected,
            users: n_users as u64,
            items: item_ids.len() as u64,
            ..SplitStats::default()
        };
        let mut train = Vec::with_capacity(n_users);
        let mut valid = Vec::with_capacity(n_users);
        let mut test = Vec::with_capacity(n_users);
        for u in 0..n_users {
            let targets = inter.targets(u);
            if targets.is_some() {
                stats.evaluated_users += 1;
            } else {
                stats.short_users += 1;
            }
            valid.push(targets.map(|t| t.validation as ItemIdx));
            test.push(targets.map(|t| t.test as ItemIdx));
            let items: Vec<ItemIdx> = inter
                .train_prefix(u)
                .iter()
                .map(|&i| i as ItemIdx)
                .collect();
            stats.train_interactions += items.len() as u64;
            train.push(items);
        }
        RecSplit {
            item_ids,
            user_ids: inter.users.clone(),
            train,
            valid,
            test,
            stats,
        }
    }

    /// Builds the split from events in log order (see [`Interactions::from_events`]).
    pub fn from_events(item_ids: Vec<String>, user_ids: Vec<String>, events: &[Event]) -> RecSplit {
        Self::from_interactions(item_ids, &Interactions::from_events(user_ids, events))
    }

    /// Reads `DIR/items.jsonl` (item order) and `DIR/interactions.csv` and splits them.
    pub fn load(dir: &Path) -> Result<RecSplit, RecError> {
        let dataset = longtail_data::PreparedDataset::load(dir)?;
        let item_ids: Vec<String> = dataset.items.into_iter().map(|i| i.item_id).collect();
        let item_index = index_of(&item_ids);
        let inter = Interactions::load(&dir.join(longtail_data::INTERACTIONS_FILE), &item_index)?;
        Ok(RecSplit::from_interactions(item_ids, &inter))
    }
}

/// Catalogue id -> item index.
pub fn index_of(item_ids: &[String]) -> HashMap<String, usize> {
    item_ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.clone(), i))
        .collect()
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
        assert_eq!(s.stats.rows, 7);
        assert_eq!(s.stats.train_interactions, 3);
        assert_eq!(s.history(0, Stage::Test), vec![0, 3, 1]);
        assert_eq!(s.history(0, Stage::Validation), vec![0, 3]);
        assert_eq!(s.train_counts(), vec![1, 0, 1, 1, 0]);
        assert_eq!(s.eval_users(), vec![0]);
    }

    fn catalogue() -> HashMap<String, usize> {
        index_of(&["A", "B", "C", "D"].map(String::from))
    }

    /// Loads a log with the rows `rows` (after the header) over [`catalogue`].
    fn load(rows: &str) -> Result<Interactions, RecError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("i.csv");
        std::fs::write(&p, format!("user_id,item_id,timestamp\n{rows}")).unwrap();
        Interactions::load(&p, &catalogue())
    }

    #[test]
    fn loads_sorts_by_time_and_splits_last_two() {
        let it = load("u1,B,20\nu1,A,10\nu2,A,5\nu1,C,30\nu1,D,40\nu1,A,50\n").unwrap();
        assert_eq!(it.rows, 6);
        assert_eq!(it.duplicates, 1);
        assert_eq!(it.kept(), 5);
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

    #[test]
    fn unknown_items_are_skipped_counted_and_reported_in_the_split() {
        // u3's only row has an unknown item: u3 never becomes a user.
        let it = load("u1,A,1\nu1,Z,2\nu1,B,3\nu3,Y,4\nu1,C,5\nu1,B,6\n").unwrap();
        assert_eq!((it.rows, it.rejected, it.duplicates), (6, 2, 1));
        assert_eq!(it.rows, it.kept() + it.rejected + it.duplicates);
        assert_eq!(it.users, vec!["u1"]);
        assert_eq!(it.seqs[0], vec![0, 1, 2]);
        let split =
            RecSplit::from_interactions(["A", "B", "C", "D"].map(String::from).to_vec(), &it);
        assert_eq!(split.stats.unknown_items, 2);
        assert_eq!(split.stats.rows, 6);
        assert_eq!(split.stats.duplicates_dropped, 1);
        assert_eq!(split.test[0], Some(2));
    }

    #[test]
    fn a_bad_timestamp_names_its_line() {
        let err = load("u1,A,1\nu1,B,soon\n").unwrap_err();
        assert!(matches!(err, RecError::Input { line: 3, .. }), "{err}");
        assert!(err.to_string().contains("soon"));
    }
}
