//! longtail-plot
