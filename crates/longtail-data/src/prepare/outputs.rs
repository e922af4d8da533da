//! Writes the prepared dataset files.

use std::io::Write;
use std::path::Path;

use longtail_fs::AtomicFile;
use serde::{Deserialize, Serialize};

use crate::dataset::PreparedItem;
use crate::label::{Label, Labelling};
use crate::options::PrepareOptions;
use crate::split::Split;
use crate::stats::PrepareSummary;
use crate::DataError;

use super::catalogue::Catalogue;
use super::interactions::Popularity;
use crate::dataset::{
    INTERACTIONS_FILE, ITEMS_FILE, META_FILE, POPULARITY_FILE, REJECTS_FILE, STATS_FILE,
};

pub(crate) fn write_items(
    path: &Path,
    cat: &Catalogue,
    pop: &Popularity,
    labels: &[Label],
    splits: &[Split],
) -> Result<(), DataError> {
    let mut file = AtomicFile::create(path)?;
    for (i, item) in cat.items.iter().enumerate() {
        let row = PreparedItem {
            item_id: item.id.clone(),
            text: item.text.clone(),
            fields: item.fields.clone(),
            n_interactions: pop.counts[i],
            first_seen: pop.first_seen[i],
            label: labels[i],
            split: splits[i],
        };
        serde_json::to_writer(&mut file, &row).map_err(|e| DataError::write(path)(e.into()))?;
        file.write_all(b"\n").map_err(DataError::write(path))?;
    }
    Ok(file.commit()?)
}

pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), DataError> {
    Ok(longtail_fs::write_json_atomic(path, value)?)
}

/// Log-log rank/count curve with the tier cuts marked. Items with zero
/// interactions cannot sit on a log axis; the subtitle says how many there are.
pub(crate) fn write_popularity_plot(
    path: &Path,
    summary: &PrepareSummary,
    counts: &[u64],
    labelling: &Labelling,
) -> Result<(), DataError> {
    use longtail_plot::{render_png, LegendPosition, LineChart, Series};
    let points: Vec<(f64, f64)> = labelling
        .ranking
        .iter()
        .enumerate()
        .map(|(rank, &i)| ((rank + 1) as f64, counts[i] as f64))
        .filter(|&(_, c)| c > 0.0)
        .collect();
    let zero = counts.iter().filter(|&&c| c == 0).count();
    let names: &[&str] = if labelling.cut_ranks.len() == 2 {
        &["head | torso", "torso | tail"]
    } else {
        &["head | tail"]
    };
    let vlines = labelling
        .cut_ranks
        .iter()
        .zip(names)
        .map(|(&cut, name)| (cut as f64 + 0.5, format!("{name} (rank {cut})")))
        .collect();
    let mut notes = vec![
        format!("rule {}", summary.tail_rule.rule),
        format!("Gini {:.3}", summary.gini),
    ];
    if zero > 0 {
        notes.push(format!("{zero} items with 0 interactions not shown"));
    }
    let chart = LineChart {
        title: format!(
            "Item popularity: {} items, {} interactions",
            summary.n_items, summary.n_interactions
        ),
        subtitle: Some(notes.join(" · ")),
        x_label: "item rank (log)".into(),
        y_label: "interactions (log)".into(),
        log_x: true,
        log_y: true,
        series: vec![Series::new("interactions per item", points)],
        vlines,
        legend: LegendPosition::LowerLeft,
        ..Default::default()
    };
    render_png(&chart, path, 1000, 640)?;
    Ok(())
}

/// `prepare.json`: what produced this directory, so later commands and
/// people can tell without guessing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrepareMeta {
    pub tool: String,
    pub command: String,
    pub version: String,
    pub invocation: Vec<String>,
    pub options: PrepareOptions,
    pub inputs: Vec<InputMeta>,
    pub outputs: Vec<String>,
    pub created_unix: u64,
    pub elapsed_seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputMeta {
    pub role: String,
    pub path: String,
    pub bytes: Option<u64>,
    pub read: u64,
    pub kept: u64,
    pub rejected: u64,
}

impl PrepareMeta {
    pub(crate) fn new(opts: &PrepareOptions, summary: &PrepareSummary, elapsed: f64) -> Self {
        let inputs = summary
            .files
            .iter()
            .map(|f| InputMeta {
                role: f.role.clone(),
                path: f.path.clone(),
                bytes: std::fs::metadata(&f.path).ok().map(|m| m.len()),
                read: f.read,
                kept: f.kept,
                rejected: f.rejected,
            })
            .collect();
        Self {
            tool: "longtail".into(),
            command: "prepare".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            invocation: opts.invocation.clone(),
            options: opts.clone(),
            inputs,
            outputs: [
                ITEMS_FILE,
                INTERACTIONS_FILE,
                STATS_FILE,
                POPULARITY_FILE,
                REJECTS_FILE,
                META_FILE,
            ]
            .map(String::from)
            .to_vec(),
            created_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            elapsed_seconds: elapsed,
        }
    }
}
