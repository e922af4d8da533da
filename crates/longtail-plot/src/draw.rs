//! Draws a [`LineChart`] onto a bitmap with plotters.

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::axis::{extent, format_tick, log_ticks, plottable};
use crate::font::FAMILY;
use crate::{LegendPosition, LineChart};

pub(crate) type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// Tableau 10: distinct, colour-blind friendly enough for a handful of lines.
pub(crate) const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];
const MARKER_COLOR: RGBColor = RGBColor(90, 90, 90);

/// Draws `chart` into `rgb`, a `size.0 * size.1 * 3` byte RGB buffer.
pub(crate) fn draw_chart(
    chart: &LineChart,
    rgb: &mut [u8],
    size: (u32, u32),
) -> Result<(), String> {
    let xs = extent(
        chart
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0))
            .chain(chart.vlines.iter().map(|v| v.0)),
        chart.log_x,
        chart.x_range,
    );
    let ys = extent(
        chart
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1)),
        chart.log_y,
        chart.y_range,
    );
    let root = BitMapBackend::with_buffer(rgb, size).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let body = draw_header(&root, &chart.title, chart.subtitle.as_deref(), size.1)?;
    let (x, y) = (xs.0..xs.1, ys.0..ys.1);
    // plotters' own log ticks crowd (…, 80, 90, 100, 200, …): use 1-2-5
    let log = |r: std::ops::Range<f64>| {
        let ticks = log_ticks(r.start, r.end);
        r.log_scale().with_key_points(ticks)
    };
    // plotters types log and linear axes differently, hence four instantiations
    match (chart.log_x, chart.log_y) {
        (false, false) => draw_body(&body, chart, x, y, size.1),
        (true, false) => draw_body(&body, chart, log(x), y, size.1),
        (false, true) => draw_body(&body, chart, x, log(y), size.1),
        (true, true) => draw_body(&body, chart, log(x), log(y), size.1),
    }?;
    root.present().map_err(|e| e.to_string())
}

pub(crate) fn font_px(height: u32, divisor: u32, min: u32, max: u32) -> u32 {
    (height / divisor).clamp(min, max)
}

/// Width in pixels of `chars` characters of DejaVu Sans at `font_px` (an average glyph is
/// about 0.6 em), for layout decisions only.
pub(crate) fn text_px(chars: usize, font_px: u32) -> f64 {
    chars as f64 * font_px as f64 * 0.6
}

/// Title and optional subtitle; returns the remaining area for the plot.
pub(crate) fn draw_header<'a>(
    root: &Area<'a>,
    title: &str,
    subtitle: Option<&str>,
    height: u32,
) -> Result<Area<'a>, String> {
    let title_px = font_px(height, 26, 13, 28);
    let sub_px = font_px(height, 40, 10, 18);
    let mut header = 8;
    if !title.is_empty() {
        header += title_px + 6;
    }
    if subtitle.is_some() {
        header += sub_px + 4;
    }
    let (top, body) = root.split_vertically(header);
    let centre = top.dim_in_pixel().0 as i32 / 2;
    let mut y = 8;
    if !title.is_empty() {
        let style = TextStyle::from((FAMILY, title_px).into_font().style(FontStyle::Bold))
            .pos(Pos::new(HPos::Center, VPos::Top));
        top.draw_text(title, &style, (centre, y))
            .map_err(|e| e.to_string())?;
        y += title_px as i32 + 6;
    }
    if let Some(sub) = subtitle {
        let style = TextStyle::from((FAMILY, sub_px).into_font())
            .color(&MARKER_COLOR)
            .pos(Pos::new(HPos::Center, VPos::Top));
        top.draw_text(sub, &style, (centre, y))
            .map_err(|e| e.to_string())?;
    }
    Ok(body)
}

/// A chart drawing into a bitmap, with axes of coordinate types `X` and `Y`.
pub(crate) type Frame<'a, X, Y> = ChartContext<'a, BitMapBackend<'a>, Cartesian2d<X, Y>>;

/// The plotting frame shared by the line and scatter charts: margins, axis areas, both axes
/// described and ticked with [`format_tick`], a faint grid.
pub(crate) fn axes<'a, X, Y>(
    area: &Area<'a>,
    x: X,
    y: Y,
    (x_label, y_label): (&str, &str),
    height: u32,
) -> Result<Frame<'a, X::CoordDescType, Y::CoordDescType>, String>
where
    X: AsRangedCoord<Value = f64>,
    Y: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let label_px = font_px(height, 36, 11, 20);
    let tick_px = font_px(height, 40, 11, 16);
    let mut ctx = ChartBuilder::on(area)
        .margin(12)
        .margin_right(24)
        .x_label_area_size(label_px * 3)
        .y_label_area_size(label_px * 4)
        .build_cartesian_2d(x, y)
        .map_err(|e| e.to_string())?;
    ctx.configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .axis_desc_style((FAMILY, label_px))
        .label_style((FAMILY, tick_px))
        .x_label_formatter(&|v| format_tick(*v))
        .y_label_formatter(&|v| format_tick(*v))
        .bold_line_style(BLACK.mix(0.08))
        .light_line_style(TRANSPARENT)
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(ctx)
}

fn draw_body<X, Y>(area: &Area, chart: &LineChart, x: X, y: Y, height: u32) -> Result<(), String>
where
    X: AsRangedCoord<Value = f64>,
    Y: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let tick_px = font_px(height, 40, 11, 16);
    let mut ctx = axes(area, x, y, (&chart.x_label, &chart.y_label), height)?;
    let (y_top, y_bottom) = {
        let r = ctx.y_range();
        (r.end, r.start)
    };

    for (i, (x, label)) in chart.vlines.iter().enumerate() {
        if !plottable(*x, chart.log_x) {
            continue;
        }
        let style = ShapeStyle::from(&MARKER_COLOR).stroke_width(1);
        ctx.draw_series(DashedLineSeries::new(
            [(*x, y_bottom), (*x, y_top)],
            6,
            4,
            style,
        ))
        .map_err(|e| e.to_string())?;
        // stagger labels so neighbouring markers do not overwrite each other;
        // near the right edge the label goes on the left of its line
        let dy = 4 + i as i32 * (tick_px as i32 + 4);
        let (px_range, _) = ctx.plotting_area().get_pixel_range();
        let px = ctx.backend_coord(&(*x, y_top)).0;
        let right_side = px < px_range.start + (px_range.end - px_range.start) * 2 / 3;
        let (dx, hpos) = if right_side {
            (4, HPos::Left)
        } else {
            (-4, HPos::Right)
        };
        let style = TextStyle::from((FAMILY, tick_px))
            .color(&MARKER_COLOR)
            .pos(Pos::new(hpos, VPos::Top));
        let text = Text::new(label.clone(), (dx, dy), style);
        ctx.plotting_area()
            .draw(&(EmptyElement::at((*x, y_top)) + text))
            .map_err(|e| e.to_string())?;
    }

    let mut named = false;
    for (i, series) in chart.series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let points = series
            .points
            .iter()
            .copied()
            .filter(|(x, y)| plottable(*x, chart.log_x) && plottable(*y, chart.log_y));
        let drawn = ctx
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(|e| e.to_string())?;
        if !series.name.is_empty() {
            named = true;
            drawn.label(series.name.as_str()).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        }
    }
    if named {
        ctx.configure_series_labels()
            .position(legend_position(chart.legend))
            .label_font((FAMILY, tick_px))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .draw()
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn legend_position(pos: LegendPosition) -> SeriesLabelPosition {
    match pos {
        LegendPosition::UpperRight => SeriesLabelPosition::UpperRight,
        LegendPosition::UpperLeft => SeriesLabelPosition::UpperLeft,
        LegendPosition::LowerRight => SeriesLabelPosition::LowerRight,
        LegendPosition::LowerLeft => SeriesLabelPosition::LowerLeft,
    }
}
