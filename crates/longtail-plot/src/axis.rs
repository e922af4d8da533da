//! Axis extents and tick-label formatting.

/// Visible range of one axis, derived from data unless pinned by the caller.
pub(crate) fn extent(
    values: impl Iterator<Item = f64>,
    log: bool,
    pinned: Option<(f64, f64)>,
) -> (f64, f64) {
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
        let (lo, hi) = if lo == hi {
            (lo / 2.0, hi * 2.0)
        } else {
            (lo, hi)
        };
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

/// Tick positions for a log axis: 1-2-5 per decade when that gives a
/// readable number of ticks, powers of ten (thinned) over many decades, and
/// plain linear steps when the range is narrower than a decade.
pub(crate) fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let first = lo.log10().floor() as i32;
    let last = hi.log10().ceil() as i32;
    let ticks = |mults: &[f64], every: i32| -> Vec<f64> {
        (first..=last)
            .filter(|d| d.rem_euclid(every) == 0)
            .flat_map(|d| mults.iter().map(move |m| m * 10f64.powi(d)))
            .filter(|t| (lo..=hi).contains(t))
            .collect()
    };
    let dense = ticks(&[1.0, 2.0, 5.0], 1);
    if (3..=10).contains(&dense.len()) {
        return dense;
    }
    if dense.len() > 10 {
        let every = ((last - first) / 8).max(1);
        return ticks(&[1.0], every);
    }
    linear_ticks(lo, hi)
}

/// About five evenly spaced ticks at round values.
pub(crate) fn linear_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let raw = (hi - lo) / 5.0;
    if !(raw > 0.0 && raw.is_finite()) {
        return vec![lo];
    }
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    let start = (lo / step).ceil() as i64;
    let end = (hi / step).floor() as i64;
    (start..=end).map(|k| k as f64 * step).collect()
}

/// Short, human tick labels: `0`, `12`, `0.25`, `1e6`, `2.5e-4`.
pub fn format_tick(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return if v.is_finite() {
            "0".into()
        } else {
            v.to_string()
        };
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
    fn log_ticks_are_round_and_few() {
        assert_eq!(
            log_ticks(0.8, 300.0),
            [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0]
        );
        assert_eq!(log_ticks(0.8, 3000.0), [1.0, 10.0, 100.0, 1000.0]);
        let wide = log_ticks(1e-3, 1e20);
        assert!(wide.len() <= 12 && wide.len() >= 3, "{wide:?}");
        // narrower than a decade: linear steps
        let narrow = log_ticks(1.2, 1.8);
        assert_eq!(narrow.len(), 4, "{narrow:?}");
        assert!((narrow[0] - 1.2).abs() < 1e-9 && (narrow[3] - 1.8).abs() < 1e-9);
        let unit = linear_ticks(0.0, 1.0);
        assert_eq!(unit.len(), 6);
        assert!(unit
            .iter()
            .zip([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
            .all(|(a, b)| (a - b).abs() < 1e-9));
    }

    #[test]
    fn extent_pads_and_handles_degenerate_input() {
        let (lo, hi) = extent([0.0, 10.0].into_iter(), false, None);
        assert!(lo < 0.0 && hi > 10.0);
        assert_eq!(
            extent([0.0, 1.0].into_iter(), false, Some((0.0, 1.0))),
            (0.0, 1.0)
        );
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
