//! Scatter charts of named points (e.g. one model each: NDCG@10 against tail-item recall).

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::axis::{extent, plottable};
use crate::draw::{axes, draw_header, font_px, text_px, Area, PALETTE};
use crate::font::FAMILY;
use crate::ScatterChart;

/// Draws `charts` side by side, one panel each, into `rgb`, a `size.0 * size.1 * 3` byte RGB
/// buffer.
pub(crate) fn draw_scatter_panels(
    charts: &[ScatterChart],
    rgb: &mut [u8],
    size: (u32, u32),
) -> Result<(), String> {
    let root = BitMapBackend::with_buffer(rgb, size).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let panels = root.split_evenly((1, charts.len().max(1)));
    for (chart, area) in charts.iter().zip(&panels) {
        draw_scatter(chart, &root, area, size.1)?;
    }
    root.present().map_err(|e| e.to_string())
}

/// One panel: `area` is a part of `root`, where the names are drawn in backend pixels.
fn draw_scatter(chart: &ScatterChart, root: &Area, area: &Area, height: u32) -> Result<(), String> {
    let points: Vec<_> = chart
        .points
        .iter()
        .filter(|p| plottable(p.x, false) && plottable(p.y, false))
        .collect();
    // Room on the right of the rightmost point for its name.
    let (x0, x1) = extent(points.iter().map(|p| p.x), false, None);
    let (y0, y1) = extent(points.iter().map(|p| p.y), false, None);
    let xs = (x0, x1 + 0.2 * (x1 - x0));
    let body = draw_header(area, &chart.title, chart.subtitle.as_deref(), height)?;
    let tick_px = font_px(height, 40, 11, 16);
    let mut ctx = axes(
        &body,
        xs.0..xs.1,
        y0..y1,
        (&chart.x_label, &chart.y_label),
        height,
    )?;
    let (px_range, py_range) = ctx.plotting_area().get_pixel_range();
    // Names keep clear of every dot and of the names placed before them.
    let mut placed: Vec<Rect> = points
        .iter()
        .map(|p| {
            let (x, y) = ctx.backend_coord(&(p.x, p.y));
            Rect {
                x: x - 6,
                y: y - 6,
                w: 12,
                h: 12,
            }
        })
        .collect();
    for (i, p) in points.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        ctx.draw_series(std::iter::once(Circle::new((p.x, p.y), 5, color.filled())))
            .map_err(|e| e.to_string())?;
        let at = ctx.backend_coord(&(p.x, p.y));
        let w = text_px(p.name.chars().count(), tick_px) as i32;
        let h = tick_px as i32;
        let rect = label_place(at, (w, h), &placed, (&px_range, &py_range));
        placed.push(rect);
        let style = TextStyle::from((FAMILY, tick_px))
            .color(&color)
            .pos(Pos::new(HPos::Left, VPos::Top));
        root.draw(&Text::new(p.name.clone(), (rect.x, rect.y), style))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// A label's box in pixels: top-left corner, width and height.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Rect {
    x: i32,
    y: i32,
    w: i32,
    h: i32,
}

impl Rect {
    fn overlaps(&self, o: &Rect) -> bool {
        self.x < o.x + o.w && o.x < self.x + self.w && self.y < o.y + o.h && o.y < self.y + self.h
    }
}

/// Where a point's name goes: right of the point, else left, else above or below on either
/// side, whichever first stays inside the plot and clear of the names already placed (the
/// right side when none is clear). Close points would otherwise print over each other.
fn label_place(
    at: (i32, i32),
    (w, h): (i32, i32),
    placed: &[Rect],
    (xr, yr): (&std::ops::Range<i32>, &std::ops::Range<i32>),
) -> Rect {
    let right = at.0 + 9;
    let left = at.0 - 9 - w;
    let mid = at.1 - h / 2;
    let candidates = [
        (right, mid),
        (left, mid),
        (right, mid - h),
        (right, mid + h),
        (left, mid - h),
        (left, mid + h),
        (right, mid - 2 * h),
        (right, mid + 2 * h),
    ];
    let inside =
        |r: &Rect| r.x >= xr.start && r.x + r.w <= xr.end && r.y >= yr.start && r.y + r.h <= yr.end;
    candidates
        .iter()
        .map(|&(x, y)| Rect { x, y, w, h })
        .find(|r| inside(r) && placed.iter().all(|o| !r.overlaps(o)))
        .unwrap_or(Rect {
            x: right,
            y: mid,
            w,
            h,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rect(x: i32, y: i32, w: i32, h: i32) -> Rect {
        Rect { x, y, w, h }
    }

    #[test]
    fn a_label_moves_off_a_taken_place_and_stays_inside() {
        let (xr, yr) = (0..400, 0..300);
        let dot = rect(94, 94, 12, 12);
        let first = label_place((100, 100), (50, 10), &[dot], (&xr, &yr));
        assert_eq!(first, rect(109, 95, 50, 10));
        // a second point at the same place goes to the left
        let second = label_place((100, 100), (50, 10), &[dot, first], (&xr, &yr));
        assert_eq!(second, rect(41, 95, 50, 10));
        // with a dot to the right and the left name taken, it goes above on the left
        let other = rect(120, 94, 12, 12);
        let third = label_place((100, 100), (50, 10), &[dot, other, second], (&xr, &yr));
        assert_eq!((third.x, third.y), (41, 85));
        // near the right edge the right side is out of the plot
        let edge = label_place((380, 100), (50, 10), &[], (&xr, &yr));
        assert_eq!(edge.x, 380 - 9 - 50);
    }
}
