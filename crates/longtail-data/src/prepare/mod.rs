//! `prepare`: ingest, clean, label and split a catalogue and its log.

mod catalogue;
pub use catalogue::listing_text;
mod interactions;
mod outputs;
mod rows;

use std::path::Path;
use std::time::Instant;

use crate::label::{assign_labels, describe, Label};
use crate::options::PrepareOptions;
use crate::reader::Format;
use crate::split::{assign_splits, SplitInput};
use crate::stats::{gini, label_stats, split_counts, PrepareSummary, RuleSummary};
use crate::DataError;
use longtail_progress::Event;

pub use crate::dataset::{
    INTERACTIONS_FILE, ITEMS_FILE, META_FILE, POPULARITY_FILE, REJECTS_FILE, STATS_FILE,
};
pub use outputs::PrepareMeta;

/// Runs the whole pipeline and writes every output into `opts.out_dir`:
/// `items.jsonl`, `interactions.csv`, `stats.json`, `popularity.png`,
/// `rejects.jsonl` and `prepare.json`.
///
/// Bad rows never fail the run; they are logged to `rejects.jsonl`. Errors
/// are reserved for unreadable files, unknown formats, missing header
/// columns, files without a single usable row, invalid options and output
/// failures.
pub fn prepare(
    opts: &PrepareOptions,
    progress: &dyn Fn(Event<'_>),
) -> Result<PrepareSummary, DataError> {
    let started = Instant::now();
    opts.tail_rule.validate(opts.tiers)?;
    if opts.max_line_bytes == 0 {
        return Err(DataError::InvalidOption {
            what: "max line bytes",
            value: "0".into(),
            reason: "must be at least 1".into(),
        });
    }
    // fail fast on names before reading anything
    Format::from_path(&opts.items)?;
    Format::from_path(&opts.interactions)?;
    let out = &opts.out_dir;
    std::fs::create_dir_all(out).map_err(DataError::write(out))?;
    // Two prepares into one --out would interleave their files.
    let _lock = longtail_fs::OutputLock::acquire(out)?;
    guard_inputs(opts)?;

    let mut rejects = rows::RejectLog::create(&out.join(REJECTS_FILE))?;
    let (cat, items_file) = catalogue::read_catalogue(opts, &mut rejects, progress)?;
    let (pop, inter_file) = interactions::read_interactions(
        opts,
        &cat,
        &out.join(INTERACTIONS_FILE),
        &mut rejects,
        progress,
    )?;
    rejects.commit()?;

    let ids: Vec<&str> = cat.items.iter().map(|i| i.id.as_str()).collect();
    let labelling = assign_labels(&ids, &pop.counts, &opts.tail_rule, opts.tiers);
    let split_inputs: Vec<SplitInput> = ids
        .iter()
        .zip(&labelling.labels)
        .zip(&pop.first_seen)
        .map(|((&id, &label), &first_seen)| SplitInput {
            id,
            label,
            first_seen,
        })
        .collect();
    let splits = assign_splits(&split_inputs, &opts.split, opts.seed);

    let n_items = cat.items.len() as u64;
    let labels = label_stats(&labelling.labels, &pop.counts);
    let summary = PrepareSummary {
        n_items,
        n_items_with_interactions: pop.counts.iter().filter(|&&c| c > 0).count() as u64,
        n_users: pop.n_users,
        n_interactions: pop.n_interactions,
        empty_text: cat.empty_text,
        head_item_share: labels.get(&Label::Head).map_or(0.0, |s| s.item_share),
        gini: gini(&pop.counts),
        tail_rule: RuleSummary {
            rule: opts.tail_rule,
            tiers: opts.tiers,
            cut_ranks: labelling.cut_ranks.clone(),
            description: describe(&opts.tail_rule, opts.tiers, &labelling.cut_ranks),
        },
        labels,
        splits: split_counts(&splits, &labelling.labels),
        files: vec![items_file, inter_file],
        options: opts.clone(),
    };

    outputs::write_items(
        &out.join(ITEMS_FILE),
        &cat,
        &pop,
        &labelling.labels,
        &splits,
    )?;
    outputs::write_popularity_plot(
        &out.join(POPULARITY_FILE),
        &summary,
        &pop.counts,
        &labelling,
    )?;
    outputs::write_json(&out.join(STATS_FILE), &summary)?;
    let meta = PrepareMeta::new(opts, &summary, started.elapsed().as_secs_f64());
    outputs::write_json(&out.join(META_FILE), &meta)?;
    Ok(summary)
}

/// Refuses to overwrite an input with an output of the same name.
fn guard_inputs(opts: &PrepareOptions) -> Result<(), DataError> {
    let canon = |p: &Path| std::fs::canonicalize(p).ok();
    for input in [&opts.items, &opts.interactions] {
        for name in [
            ITEMS_FILE,
            INTERACTIONS_FILE,
            REJECTS_FILE,
            STATS_FILE,
            META_FILE,
        ] {
            let output = opts.out_dir.join(name);
            if canon(input).is_some() && canon(input) == canon(&output) {
                return Err(DataError::InvalidOption {
                    what: "output directory",
                    value: opts.out_dir.display().to_string(),
                    reason: format!(
                        "writing {name} there would overwrite the input {}",
                        input.display()
                    ),
                });
            }
        }
    }
    Ok(())
}
