//! TF-IDF features matching `sklearn.feature_extraction.text.TfidfVectorizer(
//! ngram_range=(1, 2), min_df=2, sublinear_tf=True)` with its other defaults
//! (lowercase, `smooth_idf=True`, `norm="l2"`).

use std::collections::HashMap;

use super::tokenize::{ngrams, words};
use crate::sparse::CsrMatrix;
use crate::EvalError;

/// Settings of the vectorizer (the sklearn parameters of the same names).
#[derive(Debug, Clone, PartialEq)]
pub struct TfidfOptions {
    pub ngram_range: (usize, usize),
    /// Keep terms occurring in at least this many training documents.
    pub min_df: usize,
    /// `1 + ln(count)` instead of `count`.
    pub sublinear_tf: bool,
}

impl Default for TfidfOptions {
    fn default() -> Self {
        Self {
            ngram_range: (1, 2),
            min_df: 2,
            sublinear_tf: true,
        }
    }
}

/// A fitted vocabulary with inverse document frequencies.
#[derive(Debug, Clone)]
pub struct TfidfVectorizer {
    options: TfidfOptions,
    /// Term -> column; columns follow the sorted term order, as in sklearn.
    vocabulary: HashMap<String, u32>,
    idf: Vec<f64>,
}

impl TfidfVectorizer {
    /// Learns the vocabulary and `idf = ln((1 + n) / (1 + df)) + 1` from
    /// `docs`.
    pub fn fit<S: AsRef<str>>(docs: &[S], options: TfidfOptions) -> Result<Self, EvalError> {
        let (lo, hi) = options.ngram_range;
        if lo == 0 || lo > hi {
            return Err(EvalError::Option(format!("bad ngram_range ({lo}, {hi})")));
        }
        let mut df: HashMap<String, usize> = HashMap::new();
        for doc in docs {
            let mut terms = ngrams(&words(doc.as_ref()), lo, hi);
            terms.sort_unstable();
            terms.dedup();
            for t in terms {
                *df.entry(t).or_default() += 1;
            }
        }
        let mut kept: Vec<(String, usize)> = df
            .into_iter()
            .filter(|&(_, d)| d >= options.min_df)
            .collect();
        if kept.is_empty() {
            return Err(EvalError::EmptyVocabulary {
                min_df: options.min_df,
            });
        }
        kept.sort_unstable();
        let n = docs.len() as f64;
        let idf = kept
            .iter()
            .map(|&(_, d)| ((1.0 + n) / (1.0 + d as f64)).ln() + 1.0)
            .collect();
        let vocabulary = kept
            .into_iter()
            .enumerate()
            .map(|(i, (t, _))| (t, i as u32))
            .collect();
        Ok(Self {
            options,
            vocabulary,
            idf,
        })
    }

    pub fn n_features(&self) -> usize {
        self.idf.len()
    }

    pub fn idf(&self) -> &[f64] {
        &self.idf
    }

    /// Terms in column order.
    pub fn terms(&self) -> Vec<&str> {
        let mut terms = vec![""; self.idf.len()];
        for (t, &i) in &self.vocabulary {
            terms[i as usize] = t;
        }
        terms
    }

    /// One l2-normalised TF-IDF row per document; unknown terms are ignored
    /// and a document without known terms is an all-zero row.
    pub fn transform<S: AsRef<str>>(&self, docs: &[S]) -> CsrMatrix {
        let (lo, hi) = self.options.ngram_range;
        let mut m = CsrMatrix::new(self.n_features());
        for doc in docs {
            let mut counts: HashMap<u32, u32> = HashMap::new();
            for t in ngrams(&words(doc.as_ref()), lo, hi) {
                if let Some(&col) = self.vocabulary.get(&t) {
                    *counts.entry(col).or_default() += 1;
                }
            }
            let mut row: Vec<(u32, f64)> = counts
                .into_iter()
                .map(|(col, c)| {
                    let tf = if self.options.sublinear_tf {
                        1.0 + (c as f64).ln()
                    } else {
                        c as f64
                    };
                    (col, tf * self.idf[col as usize])
                })
                .collect();
            row.sort_unstable_by_key(|&(col, _)| col);
            let norm = row.iter().map(|&(_, v)| v * v).sum::<f64>().sqrt();
            if norm > 0.0 {
                row.iter_mut().for_each(|(_, v)| *v /= norm);
            }
            m.push_row(row);
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Fixture {
        train_texts: Vec<String>,
        test_texts: Vec<String>,
        vocabulary: Vec<String>,
        idf: Vec<f64>,
        train_rows: Vec<Vec<(u32, f64)>>,
        test_rows: Vec<Vec<(u32, f64)>>,
    }

    fn assert_rows(m: &CsrMatrix, want: &[Vec<(u32, f64)>], what: &str) {
        assert_eq!(m.n_rows(), want.len(), "{what}");
        for (i, row) in want.iter().enumerate() {
            let (cols, vals) = m.row(i);
            let want_cols: Vec<u32> = row.iter().map(|e| e.0).collect();
            assert_eq!(cols, want_cols, "{what} row {i} columns");
            for (k, &(_, v)) in row.iter().enumerate() {
                assert!(
                    (vals[k] - v).abs() < 1e-12,
                    "{what} row {i}: {} vs {v}",
                    vals[k]
                );
            }
        }
    }

    #[test]
    fn matches_sklearn_tfidf_vectorizer() {
        let f: Fixture = serde_json::from_str(include_str!("../../fixtures/tfidf.json")).unwrap();
        let v = TfidfVectorizer::fit(&f.train_texts, TfidfOptions::default()).unwrap();
        assert_eq!(v.terms(), f.vocabulary);
        for (got, want) in v.idf().iter().zip(&f.idf) {
            assert!((got - want).abs() < 1e-12);
        }
        assert_rows(&v.transform(&f.train_texts), &f.train_rows, "train");
        // includes a document of unseen words and an empty one (zero rows)
        assert_rows(&v.transform(&f.test_texts), &f.test_rows, "test");
    }

    #[test]
    fn tfidf_by_hand() {
        // 3 docs; min_df 2 keeps "pen" (df 3) and "red" (df 2) and "red pen" (df 2)
        let docs = ["red pen", "red pen pen", "blue pen"];
        let v = TfidfVectorizer::fit(&docs, TfidfOptions::default()).unwrap();
        assert_eq!(v.terms(), ["pen", "red", "red pen"]);
        let idf_pen = (4.0f64 / 4.0).ln() + 1.0; // = 1
        let idf_red = (4.0f64 / 3.0).ln() + 1.0;
        assert_eq!(v.idf(), [idf_pen, idf_red, idf_red]);
        // doc 2: pen x2 -> tf 1 + ln 2; red, red pen x1 -> tf 1
        let m = v.transform(&["red pen pen"]);
        let raw = [(1.0 + 2f64.ln()) * idf_pen, idf_red, idf_red];
        let norm = raw.iter().map(|x| x * x).sum::<f64>().sqrt();
        let (cols, vals) = m.row(0);
        assert_eq!(cols, [0, 1, 2]);
        for k in 0..3 {
            assert!((vals[k] - raw[k] / norm).abs() < 1e-15);
        }
    }

    #[test]
    fn empty_vocabulary_is_an_error() {
        let err =
            TfidfVectorizer::fit(&["one doc", "other words"], TfidfOptions::default()).unwrap_err();
        assert!(matches!(err, EvalError::EmptyVocabulary { min_df: 2 }));
    }
}
