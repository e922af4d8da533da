//! Tiny models: a committed PyTorch fixture, random configs against candle-transformers,
//! checkpoint name variants, save/load round trips, pooling and the hub's offline error.

mod common;

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use common::*;
use longtail_model::{
    BertConfig, BertForSequenceClassification, ClassifierOptions, HubOptions, ModelError, Pooling,
    PretrainedBert, PretrainedFiles,
};

fn tiny_expected() -> HashMap<String, Tensor> {
    candle_core::safetensors::load(
        fixtures().join("tiny_bert_expected.safetensors"),
        &Device::Cpu,
    )
    .unwrap()
}

fn load_tiny(opts: &ClassifierOptions) -> BertForSequenceClassification {
    let dir = fixtures().join("tiny_bert");
    let (m, report) = BertForSequenceClassification::from_pretrained(
        dir.to_str().unwrap(),
        opts,
        &HubOptions::default(),
        &Device::Cpu,
    )
    .unwrap();
    assert!(report.missing.is_empty(), "{:?}", report.missing);
    assert!(report.unexpected.is_empty(), "{:?}", report.unexpected);
    m
}

#[test]
fn tiny_fixture_matches_transformers_logits_and_states() {
    let e = tiny_expected();
    let m = load_tiny(&ClassifierOptions::default());
    assert_eq!(m.labels(), ["head", "torso", "tail"]);
    assert_eq!(m.pooling(), Pooling::ClsPooler);
    let (ids, mask, types) = (&e["input_ids"], &e["attention_mask"], &e["token_type_ids"]);
    let hidden = m
        .bert()
        .forward_t(ids, Some(types), Some(mask), false)
        .unwrap();
    let hdiff = max_abs_diff(&hidden, &e["last_hidden_state"]);
    let logits = m.forward_t(ids, Some(types), Some(mask), false).unwrap();
    let ldiff = max_abs_diff(&logits, &e["logits"]);
    println!("tiny fixture vs transformers: hidden {hdiff:.2e}, logits {ldiff:.2e}");
    assert!(
        hdiff < 1e-5 && ldiff < 1e-5,
        "hidden {hdiff} logits {ldiff}"
    );
    assert!(max_abs(&e["logits"]) > 0.05, "degenerate fixture");
    let fused = m.forward_inference(ids, Some(types), Some(mask)).unwrap();
    assert!(max_abs_diff(&fused, &logits) < 1e-5);
    // padding changes nothing for the real tokens: drop the padded tail of row 2 (4 real tokens)
    let row = m
        .bert()
        .forward_t(
            &ids.narrow(0, 2, 1).unwrap().narrow(1, 0, 4).unwrap(),
            Some(&types.narrow(0, 2, 1).unwrap().narrow(1, 0, 4).unwrap()),
            None,
            false,
        )
        .unwrap();
    let padded = hidden.narrow(0, 2, 1).unwrap().narrow(1, 0, 4).unwrap();
    assert!(max_abs_diff(&row, &padded) < 1e-5);
}

/// A tiny random model built here, saved, and run by candle-transformers' BertModel: no files
/// needed.
#[test]
fn tiny_random_matches_candle_transformers() {
    let dev = Device::Cpu;
    let mut cfg = BertConfig::tiny(50, 24, 3, 3);
    cfg.initializer_range = 0.3;
    let opts = ClassifierOptions {
        init_seed: 11,
        ..Default::default()
    };
    let m = BertForSequenceClassification::new_random(&cfg, &opts, &dev).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    m.save_pretrained(tmp.path()).unwrap();

    let tcfg: candle_transformers::models::bert::Config =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("config.json")).unwrap())
            .unwrap();
    let vb = unsafe {
        candle_nn::VarBuilder::from_mmaped_safetensors(
            &[tmp.path().join("model.safetensors")],
            DType::F32,
            &dev,
        )
        .unwrap()
    };
    let theirs = candle_transformers::models::bert::BertModel::load(vb, &tcfg).unwrap();
    let ids = Tensor::new(&[[2u32, 17, 33, 4, 9, 49], [3, 8, 1, 0, 0, 0]], &dev).unwrap();
    let types = Tensor::new(&[[0u32, 0, 0, 1, 1, 1], [0, 0, 0, 0, 0, 0]], &dev).unwrap();
    let mask = Tensor::new(&[[1u32, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]], &dev).unwrap();
    let want = theirs.forward(&ids, &types, Some(&mask)).unwrap();
    let got = m
        .bert()
        .forward_t(&ids, Some(&types), Some(&mask), false)
        .unwrap();
    let diff = max_abs_diff(&got, &want);
    println!("tiny random vs candle-transformers: max abs diff {diff:.2e}");
    assert!(diff < 1e-5, "{diff}");
    assert!(max_abs(&want) > 0.5);
}

/// Checkpoints without the `bert.` prefix and with legacy `gamma`/`beta` LayerNorm names load
/// to the same encoder.
#[test]
fn loads_unprefixed_and_legacy_layer_norm_names() {
    let e = tiny_expected();
    let src = candle_core::safetensors::load(
        fixtures().join("tiny_bert/model.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let renamed: HashMap<String, Tensor> = src
        .iter()
        .filter(|(k, _)| !k.starts_with("classifier."))
        .map(|(k, v)| {
            let k = k.strip_prefix("bert.").unwrap_or(k);
            let k = k
                .replace("LayerNorm.weight", "LayerNorm.gamma")
                .replace("LayerNorm.bias", "LayerNorm.beta");
            (k, v.clone())
        })
        .collect();
    assert!(renamed.contains_key("embeddings.LayerNorm.gamma"));
    let tmp = tempfile::tempdir().unwrap();
    candle_core::safetensors::save(&renamed, tmp.path().join("model.safetensors")).unwrap();
    std::fs::copy(
        fixtures().join("tiny_bert/config.json"),
        tmp.path().join("config.json"),
    )
    .unwrap();

    let (m, report) = BertForSequenceClassification::from_pretrained(
        tmp.path().to_str().unwrap(),
        &ClassifierOptions::default(),
        &HubOptions::default(),
        &Device::Cpu,
    )
    .unwrap();
    assert_eq!(report.missing, vec!["classifier.weight", "classifier.bias"]);
    assert!(report.unexpected.is_empty());
    assert!(
        report
            .loaded
            .iter()
            .any(|(n, k)| n == "bert.embeddings.LayerNorm.weight"
                && k == "embeddings.LayerNorm.gamma")
    );
    let (ids, mask, types) = (&e["input_ids"], &e["attention_mask"], &e["token_type_ids"]);
    let hidden = m
        .bert()
        .forward_t(ids, Some(types), Some(mask), false)
        .unwrap();
    assert!(max_abs_diff(&hidden, &e["last_hidden_state"]) < 1e-5);

    // The bare encoder loads the prefixed fixture too.
    let files = PretrainedFiles::from_dir(fixtures().join("tiny_bert")).unwrap();
    let enc = PretrainedBert::load(&files, true, DType::F32, &Device::Cpu).unwrap();
    assert_eq!(
        enc.report.unexpected,
        vec!["classifier.bias", "classifier.weight"]
    );
    let hidden = enc
        .model
        .forward_t(ids, Some(types), Some(mask), false)
        .unwrap();
    assert!(max_abs_diff(&hidden, &e["last_hidden_state"]) < 1e-5);
}

#[test]
fn missing_encoder_weights_and_bad_shapes_are_errors() {
    let src = candle_core::safetensors::load(
        fixtures().join("tiny_bert/model.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let cfg = std::fs::read_to_string(fixtures().join("tiny_bert/config.json")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("config.json"), &cfg).unwrap();
    let mut partial = src.clone();
    partial.remove("bert.encoder.layer.1.output.dense.weight");
    candle_core::safetensors::save(&partial, tmp.path().join("model.safetensors")).unwrap();
    let err = BertForSequenceClassification::from_pretrained(
        tmp.path().to_str().unwrap(),
        &ClassifierOptions::default(),
        &HubOptions::default(),
        &Device::Cpu,
    )
    .err()
    .expect("must fail");
    assert!(
        err.to_string()
            .contains("bert.encoder.layer.1.output.dense.weight"),
        "{err}"
    );

    // more labels than the checkpoint: the classifier is re-initialised, the encoder kept
    candle_core::safetensors::save(&src, tmp.path().join("model.safetensors")).unwrap();
    let opts = ClassifierOptions {
        labels: Some(vec!["a".into(), "b".into(), "c".into(), "d".into()]),
        ..Default::default()
    };
    let (m, report) = BertForSequenceClassification::from_pretrained(
        tmp.path().to_str().unwrap(),
        &opts,
        &HubOptions::default(),
        &Device::Cpu,
    )
    .unwrap();
    assert_eq!(m.num_labels(), 4);
    assert_eq!(report.mismatched.len(), 2, "{report:?}");

    // an encoder tensor with the wrong shape is an error
    let bad_cfg = cfg.replace("\"intermediate_size\": 37", "\"intermediate_size\": 36");
    std::fs::write(tmp.path().join("config.json"), bad_cfg).unwrap();
    let err = BertForSequenceClassification::from_pretrained(
        tmp.path().to_str().unwrap(),
        &ClassifierOptions::default(),
        &HubOptions::default(),
        &Device::Cpu,
    )
    .err()
    .expect("must fail");
    assert!(err.to_string().contains("shape"), "{err}");

    // no weights at all
    std::fs::remove_file(tmp.path().join("model.safetensors")).unwrap();
    assert!(PretrainedFiles::from_dir(tmp.path()).is_err());
}

#[test]
fn save_pretrained_round_trips_with_hf_layout() {
    let e = tiny_expected();
    let m = load_tiny(&ClassifierOptions::default());
    let tmp = tempfile::tempdir().unwrap();
    m.save_pretrained(tmp.path()).unwrap();

    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("config.json")).unwrap())
            .unwrap();
    assert_eq!(cfg["architectures"][0], "BertForSequenceClassification");
    assert_eq!(cfg["model_type"], "bert");
    assert_eq!(cfg["num_labels"], 3);
    assert_eq!(cfg["id2label"]["2"], "tail");
    assert_eq!(cfg["label2id"]["torso"], 1);
    assert_eq!(cfg["longtail_pooling"], "cls_pooler");

    // same tensor names as the transformers-written fixture, f32, "pt" metadata
    let bytes = std::fs::read(tmp.path().join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    assert_eq!(meta.metadata().as_ref().unwrap()["format"], "pt");
    let mut ours: Vec<String> = st.names().into_iter().map(str::to_string).collect();
    ours.sort();
    let fbytes = std::fs::read(fixtures().join("tiny_bert/model.safetensors")).unwrap();
    let fst = safetensors::SafeTensors::deserialize(&fbytes).unwrap();
    let mut theirs: Vec<String> = fst.names().into_iter().map(str::to_string).collect();
    theirs.sort();
    assert_eq!(ours, theirs);
    assert!(st
        .tensors()
        .iter()
        .all(|(_, t)| t.dtype() == safetensors::Dtype::F32));

    let (back, report) = BertForSequenceClassification::from_pretrained(
        tmp.path().to_str().unwrap(),
        &ClassifierOptions::default(),
        &HubOptions::default(),
        &Device::Cpu,
    )
    .unwrap();
    assert!(report.missing.is_empty() && report.unexpected.is_empty());
    assert_eq!(back.labels(), m.labels());
    let (ids, mask, types) = (&e["input_ids"], &e["attention_mask"], &e["token_type_ids"]);
    let a = m.forward_t(ids, Some(types), Some(mask), false).unwrap();
    let b = back.forward_t(ids, Some(types), Some(mask), false).unwrap();
    assert_eq!(max_abs_diff(&a, &b), 0.0);

    // pooling survives the round trip
    let mean = BertForSequenceClassification::new_random(
        m.config(),
        &ClassifierOptions {
            pooling: Some(Pooling::Mean),
            ..Default::default()
        },
        &Device::Cpu,
    )
    .unwrap();
    mean.save_pretrained(tmp.path()).unwrap();
    let (back, _) = BertForSequenceClassification::from_pretrained(
        tmp.path().to_str().unwrap(),
        &ClassifierOptions::default(),
        &HubOptions::default(),
        &Device::Cpu,
    )
    .unwrap();
    assert_eq!(back.pooling(), Pooling::Mean);
}

#[test]
fn pooling_variants_compute_what_they_say() {
    let e = tiny_expected();
    let (ids, mask, types) = (&e["input_ids"], &e["attention_mask"], &e["token_type_ids"]);
    for pooling in [Pooling::Cls, Pooling::Mean] {
        let m = load_tiny(&ClassifierOptions {
            pooling: Some(pooling),
            ..Default::default()
        });
        let hidden = m
            .bert()
            .forward_t(ids, Some(types), Some(mask), false)
            .unwrap();
        let pooled = match pooling {
            Pooling::Cls => hidden.narrow(1, 0, 1).unwrap().squeeze(1).unwrap(),
            _ => {
                // explicit loop over real tokens
                let h = hidden.to_vec3::<f32>().unwrap();
                let mk = mask.to_vec2::<i64>().unwrap();
                let rows: Vec<Vec<f32>> = h
                    .iter()
                    .zip(&mk)
                    .map(|(seq, m)| {
                        let n = m.iter().sum::<i64>() as f32;
                        (0..seq[0].len())
                            .map(|j| {
                                seq.iter()
                                    .zip(m)
                                    .filter(|(_, &k)| k == 1)
                                    .map(|(t, _)| t[j])
                                    .sum::<f32>()
                                    / n
                            })
                            .collect()
                    })
                    .collect();
                Tensor::new(rows, &Device::Cpu).unwrap()
            }
        };
        let w = m.varmap().data().lock().unwrap()["classifier.weight"]
            .as_tensor()
            .clone();
        let b = m.varmap().data().lock().unwrap()["classifier.bias"]
            .as_tensor()
            .clone();
        let want = pooled
            .matmul(&w.t().unwrap())
            .unwrap()
            .broadcast_add(&b)
            .unwrap();
        let got = m.forward_t(ids, Some(types), Some(mask), false).unwrap();
        assert!(max_abs_diff(&got, &want) < 1e-5, "{pooling}");
        // the pooler is not trainable when unused
        assert!(m
            .named_trainable_vars()
            .iter()
            .all(|(n, _)| !n.contains("pooler")));
    }
    let m = load_tiny(&ClassifierOptions::default());
    assert!(m
        .named_trainable_vars()
        .iter()
        .any(|(n, _)| n.contains("pooler")));
}

/// CLS pooling runs the last layer for the first token only; it must give what the full last
/// layer gives, in training mode (differentiable ops) and in the fused inference path.
#[test]
fn cls_only_last_layer_equals_the_full_encoder() {
    let e = tiny_expected();
    let (ids, mask, types) = (&e["input_ids"], &e["attention_mask"], &e["token_type_ids"]);
    for pooling in [Pooling::ClsPooler, Pooling::Cls, Pooling::Mean] {
        let m = load_tiny(&ClassifierOptions {
            pooling: Some(pooling),
            ..Default::default()
        });
        let hidden = m
            .bert()
            .forward_t(ids, Some(types), Some(mask), false)
            .unwrap();
        let got = m.forward_t(ids, Some(types), Some(mask), false).unwrap();
        if pooling == Pooling::ClsPooler {
            let (w, b) = {
                let vars = m.varmap().data().lock().unwrap();
                (
                    vars["classifier.weight"].as_tensor().clone(),
                    vars["classifier.bias"].as_tensor().clone(),
                )
            };
            let want = m
                .bert()
                .pool(&hidden)
                .unwrap()
                .matmul(&w.t().unwrap())
                .unwrap()
                .broadcast_add(&b)
                .unwrap();
            assert!(max_abs_diff(&got, &want) < 1e-5, "{pooling}");
        }
        let fused = m.forward_inference(ids, Some(types), Some(mask)).unwrap();
        assert!(max_abs_diff(&got, &fused) < 1e-5, "{pooling}: inference");
    }
}

#[test]
fn hub_ids_give_a_clear_error_when_offline_and_uncached() {
    let tmp = tempfile::tempdir().unwrap();
    let hub = HubOptions {
        cache_dir: Some(tmp.path().to_path_buf()),
        revision: None,
        offline: true,
    };
    let err = BertForSequenceClassification::from_pretrained(
        "sentence-transformers/all-MiniLM-L6-v2",
        &ClassifierOptions::default(),
        &hub,
        &Device::Cpu,
    )
    .err()
    .expect("offline and uncached must fail");
    assert!(matches!(err, ModelError::Hub(_)));
    let msg = err.to_string();
    assert!(
        msg.contains("offline") && msg.contains("config.json"),
        "{msg}"
    );

    // A hub id present in the cache loads without the network.
    let snap = tmp
        .path()
        .join("models--org--tiny/snapshots/0123456789abcdef0123456789abcdef01234567");
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::create_dir_all(tmp.path().join("models--org--tiny/refs")).unwrap();
    std::fs::write(
        tmp.path().join("models--org--tiny/refs/main"),
        "0123456789abcdef0123456789abcdef01234567",
    )
    .unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(fixtures().join("tiny_bert").join(f), snap.join(f)).unwrap();
    }
    let (m, _) = BertForSequenceClassification::from_pretrained(
        "org/tiny",
        &ClassifierOptions::default(),
        &hub,
        &Device::Cpu,
    )
    .unwrap();
    assert_eq!(m.num_labels(), 3);
}

#[test]
fn bad_inputs_are_reported() {
    let m = load_tiny(&ClassifierOptions::default());
    let dev = Device::Cpu;
    let too_long = Tensor::zeros((1, 41), DType::U32, &dev).unwrap();
    // The classifier's CLS-only path validates like the full encoder, with the reason.
    let err = |r: longtail_model::Result<Tensor>| r.unwrap_err().to_string();
    assert!(err(m.forward_t(&too_long, None, None, false)).contains("max_position_embeddings"));
    let ids = Tensor::zeros((2, 5), DType::U32, &dev).unwrap();
    let mask = Tensor::ones((2, 4), DType::U32, &dev).unwrap();
    assert!(err(m.forward_t(&ids, None, Some(&mask), false)).contains("attention_mask"));
    let float_ids = Tensor::zeros((2, 5), DType::F32, &dev).unwrap();
    assert!(err(m.forward_inference(&float_ids, None, None)).contains("integer"));
}
