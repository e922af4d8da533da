//! `longtail prepare`: raw arguments -> validated `PrepareOptions` -> the data crate.

use crate::cli::PrepareArgs;
use crate::progress;
use anyhow::Result;
use indicatif::ProgressBar;
use longtail_data::{prepare, PrepareOptions, PrepareSummary, ProgressSink};
use std::path::Path;
use std::sync::Mutex;

pub fn run(args: PrepareArgs) -> Result<()> {
    let opts = options(args);
    let bars = FileBars::default();
    let summary = prepare(&opts, &bars).map_err(anyhow::Error::from)?;
    bars.finish_all();
    print_summary(&summary, &opts.out_dir);
    Ok(())
}

/// Prepare's typed arguments as the data crate's options.
fn options(args: PrepareArgs) -> PrepareOptions {
    let mut opts = PrepareOptions::new(args.items, args.interactions, args.out);
    opts.item_id_field = args.item_id_field;
    opts.text_fields = args.text_fields;
    opts.user_column = args.user_col;
    opts.item_column = args.item_col;
    opts.timestamp_column = args.timestamp_col;
    opts.tail_rule = args.tail_rule;
    opts.tiers = args.tiers;
    opts.split = args.split;
    opts.seed = args.seed;
    opts.max_line_bytes = args.max_line_bytes;
    opts.invocation = std::env::args().collect();
    opts
}

/// One progress bar per input file, in bytes read when the size is known.
#[derive(Default)]
struct FileBars {
    current: Mutex<Option<ProgressBar>>,
}

impl FileBars {
    fn finish_all(&self) {
        if let Some(bar) = self.current.lock().unwrap().take() {
            bar.finish_and_clear();
        }
    }
}

impl ProgressSink for FileBars {
    fn start(&self, file: &Path, total_bytes: Option<u64>) {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let bar = progress::bytes_bar(total_bytes, &name);
        if let Some(old) = self.current.lock().unwrap().replace(bar) {
            old.finish_and_clear();
        }
    }

    fn rows(&self, _file: &Path, rows: u64, bytes: u64) {
        if let Some(bar) = self.current.lock().unwrap().as_ref() {
            bar.set_position(bytes);
            bar.set_message(format!("{rows} rows"));
        }
    }

    fn finish(&self, _file: &Path, _rows: u64) {
        self.finish_all();
    }
}

fn print_summary(s: &PrepareSummary, out: &Path) {
    for f in &s.files {
        println!(
            "{:<13} {}: read {} = kept {} + rejected {}",
            f.role, f.path, f.read, f.kept, f.rejected
        );
    }
    println!(
        "items {} ({} with interactions, {} with empty text), users {}, interactions {}",
        s.n_items, s.n_items_with_interactions, s.empty_text, s.n_users, s.n_interactions
    );
    println!("labels ({}):", s.tail_rule.description);
    for (label, st) in &s.labels {
        println!(
            "  {label:<6} {:>7} items ({:>5.1}%) {:>5.1}% of interactions",
            st.items,
            100.0 * st.item_share,
            100.0 * st.interaction_share
        );
    }
    println!("gini of item popularity: {:.3}", s.gini);
    for (split, by_label) in &s.splits {
        let parts: Vec<String> = by_label.iter().map(|(l, n)| format!("{l} {n}")).collect();
        println!("  {split:<10} {}", parts.join(", "));
    }
    println!("wrote {}", out.display());
}
