//! Runs `prepare` with default options and prints the summary:
//! `cargo run -p longtail-data --example prepare_dir -- ITEMS INTERACTIONS OUT [TAIL_RULE] [TIERS]`.

use longtail_data::{prepare, PrepareOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [items, inter, out, rest @ ..] = &args[..] else {
        return Err("usage: prepare_dir ITEMS INTERACTIONS OUT [TAIL_RULE] [TIERS]".into());
    };
    let mut opts = PrepareOptions::new(items, inter, out);
    if let Some(rule) = rest.first() {
        opts.tail_rule = rule.parse()?;
    }
    if let Some(tiers) = rest.get(1) {
        opts.tiers = tiers.parse()?;
    }
    let t = std::time::Instant::now();
    let summary = prepare(&opts, &longtail_progress::ignore)?;
    eprintln!("prepare took {:.2?}", t.elapsed());
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}
