//! Which targets are tail items and which users are tail users.
//!
//! * Tail items: the Pareto rule (`pareto:0.8` by default) of
//!   [`longtail_data::label::assign_labels`] applied to **training**
//!   interaction counts only, so validation/test targets do not leak into the
//!   labels. Items without training interactions are tail.
//! * Tail users: evaluated users with short training histories, at most
//!   `N` training items, where `N` is the smallest history length such that at
//!   least `tail_user_fraction` (default 20%) of evaluated users have `<= N`
//!   (ties at `N` all count, so the share can exceed the fraction).

use longtail_data::label::assign_labels;
use longtail_data::{Label, TailRule};
use serde::{Deserialize, Serialize};

use longtail_rec::{ItemIdx, RecSplit, UserIdx};

/// Tail/head items and tail users of one split.
#[derive(Debug, Clone)]
pub struct Segments {
    /// Per item: tail by the rule on training counts.
    pub is_tail_item: Vec<bool>,
    /// Per user: tail user (only evaluated users can be).
    pub is_tail_user: Vec<bool>,
    pub info: SegmentInfo,
}

/// How the segments were defined (goes into the report).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentInfo {
    pub tail_rule: String,
    pub head_items: u64,
    pub tail_items: u64,
    pub tail_user_fraction: f64,
    /// Tail users have at most this many training items.
    pub tail_user_max_train: u64,
    pub tail_users: u64,
}

impl Segments {
    pub fn new(split: &RecSplit, rule: &TailRule, tail_user_fraction: f64) -> Segments {
        let counts = split.train_counts();
        let labelling = assign_labels(&split.item_ids, &counts, rule, 2);
        let is_tail_item: Vec<bool> = labelling.labels.iter().map(|&l| l == Label::Tail).collect();
        let eval_users = split.eval_users();
        let mut lengths: Vec<usize> = eval_users
            .iter()
            .map(|&u| split.train[u as usize].len())
            .collect();
        lengths.sort_unstable();
        let max_train = if lengths.is_empty() {
            0
        } else {
            // smallest N with #(len <= N) >= fraction * n
            let need = (tail_user_fraction * lengths.len() as f64).ceil().max(1.0) as usize;
            lengths[need.min(lengths.len()) - 1]
        };
        let mut is_tail_user = vec![false; split.n_users()];
        for &u in &eval_users {
            is_tail_user[u as usize] = split.train[u as usize].len() <= max_train;
        }
        let tail_items = is_tail_item.iter().filter(|&&t| t).count() as u64;
        let info = SegmentInfo {
            tail_rule: rule.to_string(),
            head_items: is_tail_item.len() as u64 - tail_items,
            tail_items,
            tail_user_fraction,
            tail_user_max_train: max_train as u64,
            tail_users: is_tail_user.iter().filter(|&&t| t).count() as u64,
        };
        Segments {
            is_tail_item,
            is_tail_user,
            info,
        }
    }

    pub fn item_is_tail(&self, item: ItemIdx) -> bool {
        self.is_tail_item[item as usize]
    }

    pub fn user_is_tail(&self, user: UserIdx) -> bool {
        self.is_tail_user[user as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use longtail_rec::Event;

    #[test]
    fn tail_items_from_training_counts_and_short_history_users() {
        let items: Vec<String> = (0..4).map(|i| format!("i{i}")).collect();
        let users: Vec<String> = (0..3).map(|u| format!("u{u}")).collect();
        let mut events = Vec::new();
        let mut t = 0;
        let mut push = |u: u32, i: u32| {
            t += 1;
            events.push(Event {
                user: u,
                item: i,
                timestamp: t,
            })
        };
        // u0: train [0,1], valid 2, test 3 ; u1: train [0,1,2], valid 3, test 0?
        for i in [0, 1, 2, 3] {
            push(0, i);
        }
        for i in [1, 2, 3, 0, 2] {
            push(1, i);
        }
        // u2 short: 0 only
        push(2, 0);
        let split = RecSplit::from_events(items, users, &events);
        // u1 (dedup): 1,2,3,0 -> train [1,2], valid 3, test 0
        assert_eq!(split.train[1], vec![1, 2]);
        // training counts: item0: u0,u2 = 2; item1: 2; item2: 1; item3: 0
        let seg = Segments::new(&split, &TailRule::default(), 0.2);
        // ranked 0(2),1(2),2(1),3(0); total 5; cum 0.4, 0.8 -> head = {0,1}
        assert_eq!(seg.is_tail_item, vec![false, false, true, true]);
        // both evaluated users have 2 training items -> both tail users
        assert_eq!(seg.info.tail_user_max_train, 2);
        assert_eq!(seg.is_tail_user, vec![true, true, false]);
    }
}
