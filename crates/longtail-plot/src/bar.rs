//! Grouped bar charts (e.g. head vs tail recall per model).

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::axis::format_tick;
use crate::draw::{draw_header, font_px, text_px, PALETTE};
use crate::font::FAMILY;
use crate::BarChart;

/// Pixels a bar needs so that its value label (`0.123`) does not touch its neighbour's.
const BAR_PX: f64 = 40.0;

impl BarChart {
    /// The image width at which every bar's value label fits beside its neighbours' (bars
    /// fill 80% of a group), plus the axes; never below `min`. Reports with many models grow
    /// wider instead of printing labels over each other.
    pub fn fitting_width(&self, min: u32) -> u32 {
        let bars = (self.groups.len() * self.series.len().max(1)) as f64;
        ((bars * BAR_PX / 0.8) as u32 + 120).max(min)
    }
}

/// Draws `chart` into `rgb`, a `size.0 * size.1 * 3` byte RGB buffer.
pub(crate) fn draw_bars(chart: &BarChart, rgb: &mut [u8], size: (u32, u32)) -> Result<(), String> {
    let n_groups = chart.groups.len();
    let n_series = chart.series.len();
    for s in &chart.series {
        if s.values.len() != n_groups {
            return Err(format!(
                "series `{}` has {} values for {} groups",
                s.name,
                s.values.len(),
                n_groups
            ));
        }
    }
    let max = chart
        .series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .filter(|v| v.is_finite())
        .fold(0f64, f64::max);
    // headroom for the value labels and the legend box
    let y_top = if max > 0.0 { max * 1.4 } else { 1.0 };
    let root = BitMapBackend::with_buffer(rgb, size).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let body = draw_header(&root, &chart.title, chart.subtitle.as_deref(), size.1)?;
    let label_px = font_px(size.1, 36, 11, 20);
    let tick_px = font_px(size.1, 40, 11, 16);
    // Group names wider than their group (many models, long names) alternate between two
    // rows, so neighbours do not print over each other.
    let plot_px = size.0.saturating_sub(36 + label_px * 4) as f64;
    let group_px = plot_px / n_groups.max(1) as f64;
    let widest = chart
        .groups
        .iter()
        .map(|g| g.chars().count())
        .max()
        .unwrap_or(0);
    let stagger = n_groups > 1 && text_px(widest, tick_px) > group_px - 4.0;
    let names_px = if stagger { tick_px + 4 } else { 0 };
    // group g spans x in [g, g + 1); its name is drawn under the centre
    let x = 0f64..n_groups.max(1) as f64;
    let mut ctx = ChartBuilder::on(&body)
        .margin(12)
        .margin_right(24)
        .x_label_area_size(label_px * 3 + names_px)
        .y_label_area_size(label_px * 4)
        .build_cartesian_2d(x, 0f64..y_top)
        .map_err(|e| e.to_string())?;
    ctx.configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .x_desc(chart.x_label.as_str())
        .y_desc(chart.y_label.as_str())
        .axis_desc_style((FAMILY, label_px))
        .label_style((FAMILY, tick_px))
        .y_label_formatter(&|v| format_tick(*v))
        .bold_line_style(BLACK.mix(0.08))
        .light_line_style(TRANSPARENT)
        .draw()
        .map_err(|e| e.to_string())?;
    let name_style = TextStyle::from((FAMILY, tick_px)).pos(Pos::new(HPos::Center, VPos::Top));
    for (g, name) in chart.groups.iter().enumerate() {
        // the root area's pixel coordinates are the backend's
        let (px, py) = ctx.backend_coord(&(g as f64 + 0.5, 0.0));
        let row = if stagger && g % 2 == 1 {
            names_px as i32
        } else {
            0
        };
        root.draw(&Text::new(
            name.clone(),
            (px, py + 6 + row),
            name_style.clone(),
        ))
        .map_err(|e| e.to_string())?;
    }
    // bars fill 80% of a group, side by side
    let width = 0.8 / n_series.max(1) as f64;
    for (si, series) in chart.series.iter().enumerate() {
        let color = PALETTE[si % PALETTE.len()];
        let finite = || {
            series
                .values
                .iter()
                .copied()
                .enumerate()
                .filter(|(_, v)| v.is_finite())
        };
        let bars = finite().map(|(g, v)| {
            let x0 = g as f64 + 0.1 + si as f64 * width;
            Rectangle::new([(x0, 0.0), (x0 + width * 0.92, v)], color.filled())
        });
        let drawn = ctx.draw_series(bars).map_err(|e| e.to_string())?;
        drawn
            .label(series.name.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], color.filled()));
        // value labels above the bars
        let labels = finite().map(|(g, v)| {
            let xc = g as f64 + 0.1 + (si as f64 + 0.46) * width;
            Text::new(
                format!("{v:.3}"),
                (xc, v),
                TextStyle::from((FAMILY, tick_px.saturating_sub(2).max(9)))
                    .pos(Pos::new(HPos::Center, VPos::Bottom)),
            )
        });
        ctx.draw_series(labels).map_err(|e| e.to_string())?;
    }
    if n_series > 0 {
        ctx.configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font((FAMILY, tick_px))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .draw()
            .map_err(|e| e.to_string())?;
    }
    root.present().map_err(|e| e.to_string())
}
