//! Bag-of-words text features for the TF-IDF baseline.

mod tfidf;
mod tokenize;

pub use tfidf::{TfidfOptions, TfidfVectorizer};
pub use tokenize::{ngrams, words};
