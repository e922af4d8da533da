//! Axis extents and tick-label formatting.

/// Visible range of one axis, derived from data unless pinned by the caller.
pub(crate) fn extent(values: impl Iterator<Item = f64>, log: bool, pinned: Option<(f64, f64)>) -> (f64, f64) {
    if let Some((lo, hi)) = pinned {
        if lo < hi && (!log || lo > 0.0) {
            return (lo, hi);
        }
    }
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| plottable(*v, log)) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if lo > hi {
        // nothing plottable: an empty frame still renders
        return if log { (1.0, 10.0) } else { (0.0, 1.0) };
    }
    if log {
        let (lo, hi) = if lo == hi { (lo / 2.0, hi * 2.0) } else { (lo, hi) };
        // multiplicative padding keeps the ends off the frame on a log axis
        (lo / 1.25, hi * 1.25)
    } else {
        let span = if lo == hi { lo.abs().max(1.0) } else { hi - lo };
        (lo - 0.04 * span, hi + 0.04 * span)
    }
}

/// Whether `v` can be placed on an axis of this kind.
pub(crate) fn plottable(v: f64, log: bool) -> bool {
    v.is_finite() && (!log || v > 0.0)
}

/// Short, human tick labels: `0`, `12`, `0.25`, `1e6`, `2.5e-4`.
pub fn format_tick(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return if v.is_finite() { "0".into() } else { v.to_string() };
    }
    let a = v.abs();
    if !(1e-3..1e5).contains(&a) {
        let s = format!("{v:.1e}");
        // "1.0e6" -> "1e6"
        return s.replacen(".0e", "e", 1);
    }
    if v.fract() == 0.0 {
        return format!("{v:.0}");
    }
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_short() {
        assert_eq!(format_tick(0.0), "0");
        assert_eq!(format_tick(12.0), "12");
        assert_eq!(format_tick(0.25), "0.25");
        assert_eq!(format_tick(0.1 + 0.2), "0.3");
        assert_eq!(format_tick(1e6), "1e6");
        assert_eq!(format_tick(2.5e-4), "2.5e-4");
        assert_eq!(format_tick(-3.0), "-3");
    }

    #[test]
    fn extent_pads_and_handles_degenerate_input() {
        let (lo, hi) = extent([0.0, 10.0].into_iter(), false, None);
        assert!(lo < 0.0 && hi > 10.0);
        assert_eq!(extent([0.0, 1.0].into_iter(), false, Some((0.0, 1.0))), (0.0, 1.0));
        // zeros are not plottable on a log axis
        let (lo, hi) = extent([0.0, 5.0].into_iter(), true, None);
        assert!(lo > 0.0 && lo < 5.0 && hi > 5.0);
        assert_eq!(extent(std::iter::empty(), true, None), (1.0, 10.0));
        let (lo, hi) = extent([3.0].into_iter(), false, None);
        assert!(lo < 3.0 && hi > 3.0);
        // a pinned range that is invalid for a log axis falls back to data
        let (lo, _) = extent([2.0, 4.0].into_iter(), true, Some((0.0, 1.0)));
        assert!(lo > 0.0);
    }
}
