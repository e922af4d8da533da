//! Tests of the serving API: exclusions, `k`, explanations, the tail knob and the EASE
//! blend on a six-item fixture.

use super::*;
use crate::index::tests::index;

/// Six items on the unit circle: 0-2 near the x axis, 3-5 near the y axis; 2 and 5 are
/// tail items. User `a` bought 0 and 3, user `b` bought 1.
fn fixture(ease: Option<EaseBlend>) -> Recommender {
    let angles = [0.0f32, 0.1, 0.2, 1.5, 1.4, 1.3];
    let emb: Vec<f32> = angles.iter().flat_map(|a| [a.cos(), a.sin()]).collect();
    let item_ids: Vec<String> = (0..6).map(|i| format!("i{i}")).collect();
    let is_tail = vec![false, false, true, false, false, true];
    let inter = Interactions {
        users: vec!["a".into(), "b".into()],
        seqs: vec![vec![0, 3], vec![1]],
        rows: 3,
        rejected: 0,
        duplicates: 0,
    };
    Recommender::new(index(emb, 2), item_ids, is_tail, inter, ease)
        .unwrap()
        .0
}

#[test]
fn excludes_history_honours_k_and_explains_with_a_history_item() {
    let rec = fixture(None);
    let history = rec.history("a").unwrap().to_vec();
    assert_eq!(history, vec![0, 3]);
    for k in [1, 3, 4, 10] {
        let list = rec.recommend(&history, k, None).unwrap().unwrap();
        assert_eq!(list.len(), k.min(4), "k={k}");
        for r in &list {
            assert!(!history.contains(&r.item));
            assert!(history.contains(&r.because_of.unwrap()));
            assert_eq!(r.tail, [2, 5].contains(&r.item));
            assert!(r.blend_score.is_none());
            assert!(r.p_interest.is_some());
        }
        assert!(list.windows(2).all(|w| w[0].score >= w[1].score));
    }
    // Items near the x axis are explained by 0, those near the y axis by 3.
    let list = rec.recommend(&history, 4, None).unwrap().unwrap();
    for r in list {
        let want = if r.item <= 2 { 0 } else { 3 };
        assert_eq!(r.because_of, Some(want), "item {}", r.item);
    }
}

#[test]
fn empty_history_and_unknown_users_get_no_list_and_bad_items_are_errors() {
    let rec = fixture(None);
    assert!(rec.history("nobody").is_none());
    assert!(rec.recommend(&[], 5, None).unwrap().is_none());
    assert!(rec.recommend(&[6], 5, None).is_err());
}

#[test]
fn a_tail_share_puts_tail_items_in_the_list() {
    let rec = fixture(None);
    // b bought 1: plain top-2 is 0 and 2 (the x-axis neighbours); item 2 is tail.
    let plain = rec.recommend(&[1], 2, None).unwrap().unwrap();
    let mut items: Vec<usize> = plain.iter().map(|r| r.item).collect();
    items.sort_unstable();
    assert_eq!(items, vec![0, 2]);
    let all_tail = rec
        .recommend(&[1], 2, Some(Knob::TailShare(1.0)))
        .unwrap()
        .unwrap();
    assert!(all_tail.iter().all(|r| r.tail), "{all_tail:?}");
}

#[test]
fn the_ease_blend_reports_the_score_it_ranks_by() {
    let blend = EaseBlend {
        weight: 0.5,
        lambda: 1.0,
    };
    let rec = fixture(Some(blend));
    let list = rec.recommend(&[0, 3], 4, None).unwrap().unwrap();
    assert_eq!(list.len(), 4);
    assert!(list.iter().all(|r| r.blend_score.is_some()));
    let ranked: Vec<f32> = list.iter().map(|r| r.blend_score.unwrap()).collect();
    assert!(ranked.windows(2).all(|w| w[0] >= w[1]));
    // The blend's explanation is a history item (leave-one-out over the blended score).
    assert!(list.iter().all(|r| [0, 3].contains(&r.because_of.unwrap())));
    // New items join a blend: EASE gives them 0, the text places them.
    let mut grown = fixture(Some(blend));
    grown
        .add_items(&[("i6".to_string(), true)], &[0.0f32.cos(), 0.0f32.sin()])
        .unwrap();
    let list = grown.recommend(&[1], 6, None).unwrap().unwrap();
    assert!(list.iter().any(|r| r.item == 6), "{list:?}");
    let bad = EaseBlend {
        weight: 1.5,
        lambda: 1.0,
    };
    let inter = fixture(None).interactions().clone();
    let emb = vec![1.0, 0.0];
    assert!(Recommender::new(
        index(emb, 2),
        vec!["x".into()],
        vec![false],
        inter,
        Some(bad)
    )
    .is_err());
}
