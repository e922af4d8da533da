//! longtail-plot: small PNG line charts (ROC curves, loss curves, popularity curves),
//! grouped bar charts and scatter charts of named points.
//!
//! Rendering uses plotters' bitmap backend with the DejaVu Sans font compiled
//! into the binary, so no system fonts are needed.

#![forbid(unsafe_code)]

mod axis;
mod bar;
mod draw;
mod font;
mod scatter;

use std::path::{Path, PathBuf};

use image::{codecs::png::PngEncoder, ColorType, ImageEncoder};

pub use axis::format_tick;

/// Errors from rendering a chart.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("could not load the embedded font")]
    Font,
    #[error("image size {width}x{height} is too small (minimum 100x100)")]
    Size { width: u32, height: u32 },
    #[error("drawing {path}: {message}")]
    Draw { path: PathBuf, message: String },
    #[error("writing {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// One named line of a chart.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

impl Series {
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Self {
            name: name.into(),
            points,
        }
    }
}

/// Where the legend box goes inside the plotting area.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LegendPosition {
    #[default]
    UpperRight,
    UpperLeft,
    LowerRight,
    LowerLeft,
}

/// A line chart with optional log axes and labelled vertical marker lines.
///
/// Points that cannot be shown (non-finite, or <= 0 on a log axis) are
/// dropped. Axis ranges default to the data extent unless `x_range` /
/// `y_range` pin them (e.g. `(0.0, 1.0)` for ROC curves).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LineChart {
    pub title: String,
    /// Optional second line under the title (small font), e.g. a caveat.
    pub subtitle: Option<String>,
    pub x_label: String,
    pub y_label: String,
    pub log_x: bool,
    pub log_y: bool,
    pub x_range: Option<(f64, f64)>,
    pub y_range: Option<(f64, f64)>,
    pub series: Vec<Series>,
    /// Vertical dashed marker lines at an x value, each with a text label.
    pub vlines: Vec<(f64, String)>,
    pub legend: LegendPosition,
}

/// One named set of bars, one value per group of a [`BarChart`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BarSeries {
    pub name: String,
    pub values: Vec<f64>,
}

/// A grouped bar chart: for every group (x category) one bar per series,
/// side by side, with the value printed above it. The y axis starts at 0.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BarChart {
    pub title: String,
    pub subtitle: Option<String>,
    pub x_label: String,
    pub y_label: String,
    pub groups: Vec<String>,
    pub series: Vec<BarSeries>,
}

/// One named point of a [`ScatterChart`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NamedPoint {
    pub name: String,
    pub x: f64,
    pub y: f64,
}

/// Points with their names printed beside them, one colour each (e.g. one point per model).
/// Points that are not finite are left out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScatterChart {
    pub title: String,
    pub subtitle: Option<String>,
    pub x_label: String,
    pub y_label: String,
    pub points: Vec<NamedPoint>,
}

/// Renders [`ScatterChart`]s side by side, one equal-width panel each (e.g. validation and
/// test), like [`render_png`] (same atomic write).
pub fn render_scatter_png(
    charts: &[ScatterChart],
    path: &Path,
    width: u32,
    height: u32,
) -> Result<(), PlotError> {
    render_with(path, width, height, |rgb| {
        scatter::draw_scatter_panels(charts, rgb, (width, height))
    })
}

/// Renders a [`BarChart`] like [`render_png`] (same atomic write).
pub fn render_bar_png(
    chart: &BarChart,
    path: &Path,
    width: u32,
    height: u32,
) -> Result<(), PlotError> {
    render_with(path, width, height, |rgb| {
        bar::draw_bars(chart, rgb, (width, height))
    })
}

/// Renders `chart` as a `width` x `height` PNG at `path`.
///
/// The image is drawn and encoded in memory, then written with longtail-fs's atomic write, so
/// a reader never sees a half-written image.
pub fn render_png(
    chart: &LineChart,
    path: &Path,
    width: u32,
    height: u32,
) -> Result<(), PlotError> {
    render_with(path, width, height, |rgb| {
        draw::draw_chart(chart, rgb, (width, height))
    })
}

fn render_with(
    path: &Path,
    width: u32,
    height: u32,
    draw: impl FnOnce(&mut [u8]) -> Result<(), String>,
) -> Result<(), PlotError> {
    if width < 100 || height < 100 {
        return Err(PlotError::Size { width, height });
    }
    font::ensure_registered()?;
    let draw_err = |message: String| PlotError::Draw {
        path: path.to_path_buf(),
        message,
    };
    let mut rgb = vec![0u8; width as usize * height as usize * 3];
    draw(&mut rgb).map_err(draw_err)?;
    // the encoder plotters' own `present` uses for a .png path, with its defaults
    let mut png = Vec::new();
    PngEncoder::new(&mut png)
        .write_image(&rgb, width, height, ColorType::Rgb8)
        .map_err(|e| draw_err(e.to_string()))?;
    longtail_fs::write_atomic(path, &png).map_err(|e| PlotError::Io {
        path: path.to_path_buf(),
        source: match e {
            longtail_fs::FsError::Io { source, .. } => source,
            other => std::io::Error::other(other),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG_MAGIC: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];

    fn assert_png(path: &Path) {
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(&bytes[..8], &PNG_MAGIC, "not a PNG");
        assert!(
            bytes.len() > 5_000,
            "suspiciously small PNG: {}",
            bytes.len()
        );
    }

    fn roc_like() -> LineChart {
        LineChart {
            title: "ROC".into(),
            x_label: "false positive rate".into(),
            y_label: "true positive rate".into(),
            x_range: Some((0.0, 1.0)),
            y_range: Some((0.0, 1.0)),
            series: vec![
                Series::new(
                    "model (AUC 0.83)",
                    vec![(0.0, 0.0), (0.1, 0.5), (0.3, 0.8), (1.0, 1.0)],
                ),
                Series::new("chance", vec![(0.0, 0.0), (1.0, 1.0)]),
            ],
            legend: LegendPosition::LowerRight,
            ..Default::default()
        }
    }

    #[test]
    fn writes_linear_png() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("roc.png");
        render_png(&roc_like(), &path, 640, 480).unwrap();
        assert_png(&path);
        // no temporary file left behind
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn writes_log_log_png_with_markers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pop.png");
        let points = (1..=500)
            .map(|r| (r as f64, 1000.0 / r as f64))
            .collect::<Vec<_>>();
        let chart = LineChart {
            title: "Popularity".into(),
            subtitle: Some("3 items with 0 interactions not shown".into()),
            x_label: "rank".into(),
            y_label: "interactions".into(),
            log_x: true,
            log_y: true,
            series: vec![Series::new("items", points)],
            vlines: vec![(40.0, "head | tail".into()), (200.0, "cut 2".into())],
            ..Default::default()
        };
        render_png(&chart, &path, 800, 500).unwrap();
        assert_png(&path);
    }

    #[test]
    fn survives_empty_and_unplottable_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.png");
        let chart = LineChart {
            title: "nothing".into(),
            log_y: true,
            series: vec![Series::new("zeros", vec![(1.0, 0.0), (f64::NAN, 2.0)])],
            ..Default::default()
        };
        render_png(&chart, &path, 300, 200).unwrap();
        assert_png(&path);
    }

    #[test]
    fn writes_grouped_bar_png_and_rejects_ragged_series() {
        let dir = tempfile::tempdir().unwrap();
        let mut chart = BarChart {
            title: "Recall@10".into(),
            y_label: "Recall@10".into(),
            groups: vec!["ease".into(), "item_knn".into(), "popular".into()],
            series: vec![
                BarSeries {
                    name: "head".into(),
                    values: vec![0.08, 0.06, 0.002],
                },
                BarSeries {
                    name: "tail".into(),
                    values: vec![0.03, 0.05, 0.0],
                },
            ],
            ..BarChart::default()
        };
        let path = dir.path().join("bars.png");
        render_bar_png(&chart, &path, 800, 500).unwrap();
        assert_png(&path);
        chart.series[1].values.pop();
        let err = render_bar_png(&chart, &dir.path().join("bad.png"), 800, 500).unwrap_err();
        assert!(err.to_string().contains("2 values for 3 groups"), "{err}");
    }

    /// 16 models with long names (an eval-rec report with many `--compare` rows): the image
    /// grows to about 40 px a bar, never below the minimum, and draws.
    #[test]
    fn many_groups_get_a_wider_image() {
        let groups: Vec<String> = (0..16)
            .map(|i| format!("text-last-item+ease-{i}"))
            .collect();
        let series = |name: &str| BarSeries {
            name: name.into(),
            values: (0..16).map(|i| 0.01 * i as f64).collect(),
        };
        let mut chart = BarChart {
            title: "Recall@10".into(),
            groups,
            series: vec![series("head"), series("tail"), series("overall")],
            ..BarChart::default()
        };
        assert_eq!(chart.fitting_width(900), 48 * 50 + 120);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("many.png");
        render_bar_png(&chart, &path, chart.fitting_width(900), 600).unwrap();
        assert_png(&path);
        chart.groups.truncate(3);
        for s in &mut chart.series {
            s.values.truncate(3);
        }
        assert_eq!(chart.fitting_width(900), 900);
    }

    #[test]
    fn writes_scatter_png_with_close_and_unplottable_points() {
        let point = |name: &str, x: f64, y: f64| NamedPoint {
            name: name.into(),
            x,
            y,
        };
        let chart = ScatterChart {
            title: "NDCG@10 vs tail-item Recall@10".into(),
            x_label: "tail-item Recall@10".into(),
            y_label: "NDCG@10".into(),
            points: vec![
                point("longtail", 0.056, 0.071),
                point("logq0.5", 0.077, 0.072),
                point("group0.5", 0.072, 0.0707),
                point("ease", 0.028, 0.035),
                point("broken", f64::NAN, 0.05),
            ],
            ..Default::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scatter.png");
        render_scatter_png(&[chart.clone(), chart], &path, 1800, 600).unwrap();
        assert_png(&path);
        let empty = ScatterChart::default();
        render_scatter_png(&[empty], &dir.path().join("empty.png"), 300, 200).unwrap();
        render_scatter_png(&[], &dir.path().join("none.png"), 300, 200).unwrap();
    }

    #[test]
    fn rejects_tiny_images() {
        let dir = tempfile::tempdir().unwrap();
        let err = render_png(&roc_like(), &dir.path().join("x.png"), 10, 10).unwrap_err();
        assert!(matches!(err, PlotError::Size { .. }));
    }

    #[test]
    fn reports_unwritable_path() {
        let err = render_png(
            &roc_like(),
            Path::new("/nonexistent-dir/for/sure/x.png"),
            300,
            200,
        )
        .unwrap_err();
        assert!(err.to_string().contains("/nonexistent-dir"), "{err}");
    }
}
