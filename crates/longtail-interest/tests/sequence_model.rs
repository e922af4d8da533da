//! The sequence interest model on tiny configs: every parameter gets a gradient, gradients
//! match finite differences, the loss matches a hand computation, a model trained on an
//! "A then B" world learns the transition, new items are scored from text, and the
//! explanation names the history item whose removal lowers the score most.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::Optimizer;
use longtail_interest::index::InterestIndex;
use longtail_interest::model::{Architecture, InterestMeta, UserRepr};
use longtail_interest::sequence::{
    left_pad, next_item_loss, softmax_cross_entropy, CatalogueView, ItemFeatures, SequenceMeta,
    SequenceModel,
};
use longtail_interest::train_sequence::training_prior;
use longtail_model::BertConfig;

fn meta(features: ItemFeatures, n_id: usize, dropout: f64) -> SequenceMeta {
    meta_with_text(features, n_id, dropout, 6)
}

/// `text_dim` 8 = the model's width: the adaptor's residual path is on.
fn meta_with_text(
    features: ItemFeatures,
    n_id: usize,
    dropout: f64,
    text_dim: usize,
) -> SequenceMeta {
    let mut enc = BertConfig::tiny(1, 8, 2, 2);
    enc.intermediate_size = 12;
    enc.max_position_embeddings = 5;
    enc.hidden_dropout_prob = dropout;
    enc.attention_probs_dropout_prob = dropout;
    enc.initializer_range = 0.3;
    enc.model_type = None;
    SequenceMeta {
        item_features: features,
        text_dim: if features.uses_text() { text_dim } else { 0 },
        encoder: enc,
        temperature: 0.5,
        id_min_count: 1,
        id_items: (0..n_id).map(|i| format!("i{i}")).collect(),
        adaptor_experts: 1,
    }
}

fn item_ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("i{i}")).collect()
}

/// Deterministic pseudo-random "text embeddings" `(n, 6)` in general position.
fn text(n: usize) -> Vec<f32> {
    text_of_width(n, 6)
}

fn text_of_width(n: usize, dim: usize) -> Vec<f32> {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    (0..n * dim)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        })
        .collect()
}

const SEQS: [&[usize]; 3] = [&[0, 3, 5, 1], &[2, 4], &[6, 1, 0, 3, 5, 2, 4]];
/// Per-item target weights for the finite-difference test (as `tail_loss_alpha` makes them).
const TARGET_WEIGHTS: [f32; 7] = [1.0, 0.5, 2.0, 0.7, 1.3, 0.9, 1.6];

fn l2(t: &Tensor) -> f64 {
    t.to_dtype(DType::F64)
        .unwrap()
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
        .sqrt()
}

/// [`meta_with_text`] with a mixture of `experts` adaptors.
fn meta_with_experts(
    features: ItemFeatures,
    dropout: f64,
    dim: usize,
    experts: usize,
) -> SequenceMeta {
    SequenceMeta {
        adaptor_experts: experts,
        ..meta_with_text(features, 5, dropout, dim)
    }
}

#[test]
fn every_parameter_gets_a_gradient() {
    for (features, dim, experts) in [
        (ItemFeatures::Text, 6, 1),
        (ItemFeatures::Id, 6, 1),
        (ItemFeatures::TextId, 6, 1),
        (ItemFeatures::TextId, 8, 1),
        (ItemFeatures::TextId, 6, 3),
        (ItemFeatures::Text, 8, 3),
    ] {
        // Items 0-4 have ID rows; 5 and 6 are text only (or nothing, for ID-only).
        let meta = meta_with_experts(features, 0.1, dim, experts);
        let m = SequenceModel::new(meta, 1, &Device::Cpu).unwrap();
        let view = m.view(&item_ids(7), Some(&text_of_width(7, dim))).unwrap();
        let loss = next_item_loss(&m, &view, &SEQS, None, None, true).unwrap();
        let grads = loss.backward().unwrap();
        let vars = longtail_model::named_vars(&m.varmap);
        // Positions, input LayerNorm (2), two layers of 16 tensors, adaptor (dense 2 or
        // experts, centres and gate 4; LayerNorm 2), ID table.
        let adaptor = match (features.uses_text(), experts) {
            (false, _) => 0,
            (true, 1) => 4,
            (true, _) => 6,
        };
        let expected = 1 + 2 + 2 * 16 + adaptor + usize::from(features.uses_id());
        let features = format!("{features}, {experts} experts, text width {dim}");
        assert_eq!(vars.len(), expected, "{features}");
        for (name, var) in &vars {
            let g = grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("{features}: no gradient for {name}"));
            if name.ends_with("attention.self.key.bias") {
                // Softmax is invariant to a bias added to every key (as in BERT).
                continue;
            }
            assert!(l2(g) > 1e-8, "{features}: zero gradient for {name}");
        }
    }
}

/// Central differences in f64 with dropout on (masks replayed by resetting the stream), with
/// and without the adaptor's residual path, with one adaptor and with a mixture.
#[test]
fn gradients_match_finite_differences() {
    for (dim, experts) in [(6, 1), (8, 1), (6, 3), (8, 2)] {
        finite_differences(dim, experts);
    }
}

fn finite_differences(dim: usize, experts: usize) {
    let m = SequenceModel::new_with_dtype(
        meta_with_experts(ItemFeatures::TextId, 0.2, dim, experts),
        4,
        DType::F64,
        &Device::Cpu,
    )
    .unwrap();
    let view = m.view(&item_ids(7), Some(&text_of_width(7, dim))).unwrap();
    let lq = Tensor::new(&[-1.0f64, -2.0, -0.5, -3.0, -1.5, -2.5, -4.0], &Device::Cpu).unwrap();
    let state = m.encoder().dropout_rng_state();
    let loss = || {
        m.encoder().set_dropout_rng_state(state);
        next_item_loss(&m, &view, &SEQS, Some(&lq), Some(&TARGET_WEIGHTS), true).unwrap()
    };
    let grads = loss().backward().unwrap();
    let vars: Vec<(String, Var)> = longtail_model::named_vars(&m.varmap);
    let mut checked = 0;
    for (name, var) in &vars {
        let g = grads.get(var.as_tensor()).unwrap();
        let n = var.elem_count();
        let g = g.flatten_all().unwrap().to_vec1::<f64>().unwrap();
        for k in [0, n / 2, n - 1] {
            let orig = var
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f64>()
                .unwrap();
            let eps = 1e-5;
            let at = |delta: f64| {
                let mut v = orig.clone();
                v[k] += delta;
                var.set(&Tensor::from_vec(v, var.shape(), &Device::Cpu).unwrap())
                    .unwrap();
                loss().to_scalar::<f64>().unwrap()
            };
            let numeric = (at(eps) - at(-eps)) / (2.0 * eps);
            var.set(&Tensor::from_vec(orig, var.shape(), &Device::Cpu).unwrap())
                .unwrap();
            let tol = 1e-6 * (1.0 + numeric.abs());
            assert!(
                (numeric - g[k]).abs() < tol,
                "{name}[{k}]: analytic {} vs numeric {numeric}",
                g[k]
            );
            checked += 1;
        }
    }
    assert!(checked >= 3 * vars.len());
}

/// The loss is the mean over every (position, next item) pair of
/// `-log softmax(cos(state, items) / T + log_q)[target]`, computed here by hand from the
/// model's own states and item vectors.
#[test]
fn loss_matches_a_hand_computation() {
    let m = SequenceModel::new_with_dtype(
        meta(ItemFeatures::TextId, 5, 0.0),
        2,
        DType::F64,
        &Device::Cpu,
    )
    .unwrap();
    let view = m.view(&item_ids(7), Some(&text(7))).unwrap();
    let lq = [-1.0f64, -2.0, -0.5, -3.0, -1.5, -2.5, -4.0];
    let lq_t = Tensor::new(&lq, &Device::Cpu).unwrap();
    let got = next_item_loss(&m, &view, &SEQS, Some(&lq_t), None, false)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();

    let items = m.item_vectors(&view).unwrap();
    let item_rows = items.to_vec2::<f64>().unwrap();
    let unit = |v: &[f64]| {
        let n = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        v.iter().map(|x| x / n).collect::<Vec<_>>()
    };
    let max_history = 5;
    let (mut total, mut count) = (0.0, 0);
    for seq in SEQS {
        let seq = &seq[seq.len() - seq.len().min(max_history + 1)..];
        let inputs = &seq[..seq.len() - 1];
        let (idx, mask) = left_pad(&[inputs], max_history, &Device::Cpu).unwrap();
        let states = m
            .sequence_states(&items, &idx, &mask, false)
            .unwrap()
            .squeeze(0)
            .unwrap()
            .to_vec2::<f64>()
            .unwrap();
        let s = states.len();
        for j in 0..inputs.len() {
            let u = unit(&states[s - inputs.len() + j]);
            let logits: Vec<f64> = item_rows
                .iter()
                .zip(&lq)
                .map(|(row, q)| {
                    let v = unit(row);
                    u.iter().zip(&v).map(|(a, b)| a * b).sum::<f64>() / 0.5 + q
                })
                .collect();
            let lse = logits.iter().map(|x| x.exp()).sum::<f64>().ln();
            total += lse - logits[seq[j + 1]];
            count += 1;
        }
    }
    let want = total / count as f64;
    assert!((got - want).abs() < 1e-10, "{got} vs {want}");

    // The cross-entropy helper against log-softmax by hand on a 2x3 example.
    let logits = Tensor::new(&[[1.0f64, 2.0, 3.0], [0.5, -1.0, 0.0]], &Device::Cpu).unwrap();
    let ce = softmax_cross_entropy(&logits, &[2, 0])
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    let row = |r: [f64; 3], t: usize| r.iter().map(|x| x.exp()).sum::<f64>().ln() - r[t];
    let want = (row([1.0, 2.0, 3.0], 2) + row([0.5, -1.0, 0.0], 0)) / 2.0;
    assert!((ce - want).abs() < 1e-12);
}

/// A world of 12 items where item `2k` is always followed by `2k + 1`: after training, a user
/// whose last item is `2k` gets `2k + 1` first. Text embeddings are random, so the transition
/// has to be learned.
fn a_then_b(features: ItemFeatures) -> (SequenceModel, Vec<String>, Vec<f32>) {
    let n = 12;
    let mut m = meta(features, n, 0.0);
    m.encoder.num_hidden_layers = 1;
    m.encoder.hidden_size = 16;
    m.encoder.intermediate_size = 32;
    m.temperature = 0.1;
    let model = SequenceModel::new(m, 9, &Device::Cpu).unwrap();
    let ids = item_ids(n);
    let text = text(n);
    let view = model.view(&ids, Some(&text)).unwrap();
    // 60 sequences of three pairs (2k, 2k+1) each, the pairs drawn at random: what follows an
    // odd item varies, what follows an even item never does.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = |m: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % m) as usize
    };
    let seqs: Vec<Vec<usize>> = (0..60)
        .map(|_| {
            (0..3)
                .flat_map(|_| {
                    let k = next(6);
                    [2 * k, 2 * k + 1]
                })
                .collect()
        })
        .collect();
    train(&model, &view, &seqs, None);
    (model, ids, text)
}

/// 300 AdamW steps (lr 1e-2) of the next-item loss on all `seqs`, with a training prior.
fn train(model: &SequenceModel, view: &CatalogueView, seqs: &[Vec<usize>], prior: Option<&Tensor>) {
    let refs: Vec<&[usize]> = seqs.iter().map(|s| s.as_slice()).collect();
    let vars: Vec<Var> = longtail_model::named_vars(&model.varmap)
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    let mut opt = candle_nn::AdamW::new(
        vars,
        candle_nn::ParamsAdamW {
            lr: 1e-2,
            weight_decay: 0.0,
            ..Default::default()
        },
    )
    .unwrap();
    for _ in 0..300 {
        let loss = next_item_loss(model, view, &refs, prior, None, true).unwrap();
        opt.backward_step(&loss).unwrap();
    }
}

fn index_of(model: SequenceModel, ids: &[String], text: Vec<f32>) -> InterestIndex {
    let meta = InterestMeta {
        format_version: 1,
        architecture: Architecture::Sequence,
        init_model: "test".into(),
        max_len: 8,
        template: "t".into(),
        pooling: "mean".into(),
        temperature: model.meta.temperature,
        logq_correction: false,
        user: UserRepr {
            history_len: model.meta.max_history(),
            recency_decay: 1.0,
        },
        frozen_layers: 0,
        calibration: None,
        calibration_negatives: 0,
        global_step: 0,
        sequence: Some(model.meta.clone()),
        precision: Default::default(),
    };
    InterestIndex::from_sequence(meta, model, ids, text, 6).unwrap()
}

#[test]
fn a_sequence_model_learns_a_then_b() {
    for features in [ItemFeatures::Text, ItemFeatures::TextId] {
        let (model, ids, text) = a_then_b(features);
        let index = index_of(model, &ids, text);
        for k in 0..6 {
            // Some history ending in 2k (from another pair), then 2k.
            let other = 2 * ((k + 2) % 6) + 1;
            let s = index.scores(&[other, 2 * k]).unwrap();
            let best = (0..12)
                .filter(|&i| i != other && i != 2 * k)
                .max_by(|&a, &b| s[a].total_cmp(&s[b]))
                .unwrap();
            assert_eq!(best, 2 * k + 1, "{features}: after {} came {best}", 2 * k);
        }
    }
}

/// The head/tail group prior (`group_logq_weight`): after item 0, head item 1 follows four
/// times as often as tail item 2. Trained plainly the model ranks 1 first; trained with the
/// group prior at 1 (tail targets are 1/7 of all, so the tail gains ln 6 > ln 4 against the
/// head), the served scores rank the tail item first. Item 3 is the head filler before 4.
#[test]
fn the_group_prior_lifts_the_tail_item() {
    let n = 5;
    let is_tail = [false, false, true, false, false];
    let mut seqs = Vec::new();
    seqs.extend(std::iter::repeat_n(vec![0, 1], 40));
    seqs.extend(std::iter::repeat_n(vec![0, 2], 10));
    seqs.extend(std::iter::repeat_n(vec![3, 4], 20));
    let mut counts = vec![0f64; n];
    for s in &seqs {
        counts[s[1]] += 1.0;
    }
    let scores_after_0 = |g: f64| {
        let mut m = meta(ItemFeatures::TextId, n, 0.0);
        m.encoder.num_hidden_layers = 1;
        m.encoder.hidden_size = 16;
        m.encoder.intermediate_size = 32;
        m.temperature = 0.1;
        let model = SequenceModel::new(m, 5, &Device::Cpu).unwrap();
        let (ids, text) = (item_ids(n), text(n));
        let view = model.view(&ids, Some(&text)).unwrap();
        let prior = training_prior(&counts, 0.0, Some((&is_tail, g)))
            .map(|p| Tensor::from_vec(p, n, &Device::Cpu).unwrap());
        train(&model, &view, &seqs, prior.as_ref());
        index_of(model, &ids, text).scores(&[0]).unwrap()
    };
    let plain = scores_after_0(0.0);
    assert!(plain[1] > plain[2], "plain: {plain:?}");
    let balanced = scores_after_0(1.0);
    assert!(balanced[2] > balanced[1], "group prior 1: {balanced:?}");
}

/// A catalogue item the model never trained on (no ID row) gets its vector from text: with
/// the text of item 1, it scores like item 1 under a text-only model.
#[test]
fn new_items_are_scored_from_text() {
    let (model, mut ids, mut text) = a_then_b(ItemFeatures::Text);
    ids.push("brand-new".into());
    let copy: Vec<f32> = text[6..12].to_vec();
    text.extend(copy);
    let index = index_of(model, &ids, text);
    let s = index.scores(&[4, 0]).unwrap();
    assert_eq!(s.len(), 13);
    assert!((s[12] - s[1]).abs() < 1e-5, "{} vs {}", s[12], s[1]);
    // Ranked right next to item 1, the learned successor of 0.
    let mut order: Vec<usize> = (0..13).filter(|&i| i != 4 && i != 0).collect();
    order.sort_by(|&a, &b| s[b].total_cmp(&s[a]));
    assert!(
        order[..2].contains(&12) && order[..2].contains(&1),
        "{order:?}"
    );
}

/// The explanation is the history item whose removal lowers the item's score the most, and
/// removing it does lower the score.
#[test]
fn the_explanation_is_the_item_whose_removal_lowers_the_score() {
    let (model, ids, text) = a_then_b(ItemFeatures::TextId);
    let index = index_of(model, &ids, text);
    let history = [6, 9, 2];
    let full = index.scores(&history).unwrap();
    let candidates: Vec<usize> = (0..12).filter(|i| !history.contains(i)).collect();
    let because = index.explain_many(&history, &candidates).unwrap();
    for (&item, b) in candidates.iter().zip(because) {
        let b = b.unwrap();
        assert!(history.contains(&b));
        let without: Vec<usize> = history.iter().copied().filter(|&h| h != b).collect();
        let reduced = index.scores(&without).unwrap();
        let drop = full[item] - reduced[item];
        for &h in &history {
            let w: Vec<usize> = history.iter().copied().filter(|&x| x != h).collect();
            let d = full[item] - index.scores(&w).unwrap()[item];
            assert!(
                drop >= d - 1e-6,
                "item {item}: {b} drops {drop}, {h} drops {d}"
            );
        }
        if item == 3 {
            // 3 follows 2: the last item explains it, and removing it lowers the score.
            assert_eq!(b, 2);
            assert!(drop > 0.0);
        }
    }
}
