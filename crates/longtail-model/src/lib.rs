//! longtail-model
