//! `text_splits` on a real `prepare` run of the hand-checked tiny fixture.

use std::path::PathBuf;

use longtail_data::{prepare, PrepareOptions, PreparedDataset, Split};
use longtail_eval::baselines::{self, BaselineOptions};
use longtail_eval::{load_text_splits, text_splits, EvalError};

fn tiny() -> (PathBuf, PathBuf) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../datasets/fixtures/tiny");
    (dir.join("items.jsonl"), dir.join("interactions.csv"))
}

#[test]
fn splits_carry_text_and_tail_labels() {
    let out = tempfile::tempdir().unwrap();
    let (items, interactions) = tiny();
    prepare(
        &PrepareOptions::new(items, interactions, out.path()),
        &longtail_progress::ignore,
    )
    .unwrap();
    let ds = PreparedDataset::load(out.path()).unwrap();
    let s = text_splits(&ds);
    assert_eq!(s, load_text_splits(out.path()).unwrap());

    // the fixture's README: head = A, B, C; tail = D, E, F
    let total = s.train.labels.len() + s.validation.labels.len() + s.test.labels.len();
    assert_eq!(total, 6);
    let tails = [&s.train, &s.validation, &s.test]
        .iter()
        .flat_map(|x| x.labels.iter())
        .filter(|&&l| l)
        .count();
    assert_eq!(tails, 3);
    for (split, texts) in [
        (Split::Train, &s.train),
        (Split::Validation, &s.validation),
        (Split::Test, &s.test),
    ] {
        let items: Vec<_> = ds.split(split).collect();
        assert_eq!(
            texts.texts,
            items.iter().map(|i| i.text.clone()).collect::<Vec<_>>()
        );
        for (item, &label) in items.iter().zip(&texts.labels) {
            assert_eq!(
                label,
                ["D", "E", "F"].contains(&item.item_id.as_str()),
                "{}",
                item.item_id
            );
        }
    }
}

#[test]
fn baselines_refuse_a_dataset_too_small_to_evaluate() {
    let out = tempfile::tempdir().unwrap();
    let (items, interactions) = tiny();
    prepare(
        &PrepareOptions::new(items, interactions, out.path()),
        &longtail_progress::ignore,
    )
    .unwrap();
    let s = load_text_splits(out.path()).unwrap();
    // six items cannot give a validation split with both classes and a
    // vocabulary of terms in two documents: an error, not a panic or NaN
    let err = baselines::run(&s, &BaselineOptions::default()).unwrap_err();
    assert!(
        matches!(
            err,
            EvalError::Empty { .. }
                | EvalError::OneClass { .. }
                | EvalError::EmptyVocabulary { .. }
                | EvalError::Metrics(
                    longtail_eval::metrics::MetricsError::Empty { .. }
                        | longtail_eval::metrics::MetricsError::OneClass { .. }
                )
        ),
        "{err}"
    );
}

#[test]
fn missing_directory_is_a_data_error() {
    let err = load_text_splits(&PathBuf::from("/nonexistent/prepared")).unwrap_err();
    assert!(matches!(err, EvalError::Data(_)), "{err}");
}
