//! `cross_entropy` against `torch.nn.functional.cross_entropy` (loss and gradient), from
//! tests/fixtures/cross_entropy_torch.json written by `scripts/make_reference.py --fixtures`.

use candle_core::{Device, Tensor, Var};
use longtail_model::{cross_entropy, CrossEntropy};

#[test]
fn matches_pytorch_loss_and_gradient() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/cross_entropy_torch.json");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let cases = doc["cases"].as_array().unwrap();
    assert!(cases.len() >= 5);
    let dev = Device::Cpu;
    let mut weighted_and_smoothed = 0;
    for (i, c) in cases.iter().enumerate() {
        let rows: Vec<Vec<f64>> = serde_json::from_value(c["logits"].clone()).unwrap();
        let labels: Vec<u32> = serde_json::from_value(c["labels"].clone()).unwrap();
        let grad_want: Vec<Vec<f64>> = serde_json::from_value(c["grad"].clone()).unwrap();
        let weights: Option<Vec<f64>> = serde_json::from_value(c["class_weights"].clone()).unwrap();
        let eps = c["label_smoothing"].as_f64().unwrap();
        if weights.is_some() && eps > 0.0 {
            weighted_and_smoothed += 1;
        }
        let logits = Var::from_tensor(&Tensor::new(rows, &dev).unwrap()).unwrap();
        let labels = Tensor::new(labels, &dev).unwrap();
        let opts = CrossEntropy {
            class_weights: weights.map(|w| Tensor::new(w, &dev).unwrap()),
            label_smoothing: eps,
        };
        let loss = cross_entropy(logits.as_tensor(), &labels, &opts).unwrap();
        let got = loss.to_scalar::<f64>().unwrap();
        let want = c["loss"].as_f64().unwrap();
        assert!(
            (got - want).abs() < 1e-12,
            "case {i}: {got} vs torch {want}"
        );
        let g = loss.backward().unwrap();
        let g = g.get(logits.as_tensor()).unwrap().to_vec2::<f64>().unwrap();
        for (r, (a, b)) in g.iter().zip(&grad_want).enumerate() {
            for (k, (x, y)) in a.iter().zip(b).enumerate() {
                assert!(
                    (x - y).abs() < 1e-12,
                    "case {i} grad[{r}][{k}]: {x} vs torch {y}"
                );
            }
        }
    }
    assert!(weighted_and_smoothed >= 2);
}
