//! longtail-tokenize
