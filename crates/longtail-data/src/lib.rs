//! longtail-data
