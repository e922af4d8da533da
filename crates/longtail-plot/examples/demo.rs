//! Renders sample charts for eyeballing: `cargo run -p longtail-plot --example demo -- OUT_DIR`.

use std::path::PathBuf;

use longtail_plot::{render_png, LegendPosition, LineChart, Series};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| ".".into()));
    std::fs::create_dir_all(&out)?;

    let roc = LineChart {
        title: "ROC curve (validation)".into(),
        x_label: "false positive rate".into(),
        y_label: "true positive rate".into(),
        x_range: Some((0.0, 1.0)),
        y_range: Some((0.0, 1.0)),
        series: vec![
            Series::new(
                "model (AUC 0.83)",
                (0..=50)
                    .map(|i| {
                        let x = i as f64 / 50.0;
                        (x, x.powf(0.3))
                    })
                    .collect(),
            ),
            Series::new("chance", vec![(0.0, 0.0), (1.0, 1.0)]),
        ],
        legend: LegendPosition::LowerRight,
        ..Default::default()
    };
    render_png(&roc, &out.join("roc.png"), 800, 600)?;

    let loss = LineChart {
        title: "Training loss".into(),
        x_label: "step".into(),
        y_label: "loss".into(),
        series: vec![
            Series::new(
                "train",
                (1..200)
                    .map(|s| (s as f64, 2.0 / (s as f64).sqrt()))
                    .collect(),
            ),
            Series::new(
                "validation",
                (1..20)
                    .map(|s| (s as f64 * 10.0, 2.2 / (s as f64 * 10.0).sqrt()))
                    .collect(),
            ),
        ],
        ..Default::default()
    };
    render_png(&loss, &out.join("loss.png"), 800, 500)?;

    let popularity = LineChart {
        title: "Item popularity".into(),
        subtitle: Some("12 items with 0 interactions not shown".into()),
        x_label: "item rank".into(),
        y_label: "interactions".into(),
        log_x: true,
        log_y: true,
        series: vec![Series::new(
            "interactions per item",
            (1..2400)
                .map(|r| (r as f64, (3000.0 / (r as f64).powf(0.9)).floor()))
                .collect(),
        )],
        vlines: vec![(1003.0, "head | tail (rank 1003)".into())],
        legend: LegendPosition::LowerLeft,
        ..Default::default()
    };
    render_png(&popularity, &out.join("popularity.png"), 900, 600)?;
    Ok(())
}
