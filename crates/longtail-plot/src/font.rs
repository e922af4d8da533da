//! Registers the embedded DejaVu Sans font with plotters exactly once.

use std::sync::OnceLock;

use plotters::style::FontStyle;

use crate::PlotError;

/// The family name charts ask plotters for.
pub(crate) const FAMILY: &str = "sans-serif";

static REGISTERED: OnceLock<bool> = OnceLock::new();

/// plotters' ab_glyph backend has no fonts until one is registered; doing it
/// lazily keeps `render_png` self-contained for callers.
pub(crate) fn ensure_registered() -> Result<(), PlotError> {
    let ok = *REGISTERED.get_or_init(|| {
        let normal =
            plotters::style::register_font(FAMILY, FontStyle::Normal, dejavu::sans::regular());
        let bold = plotters::style::register_font(FAMILY, FontStyle::Bold, dejavu::sans::bold());
        normal.is_ok() && bold.is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(PlotError::Font)
    }
}
