//! Times one EASE fit on a prepared dir's training split:
//! `cargo run --release -p longtail-rec --example ease_fit -- runs/office [λ]`.

use std::path::PathBuf;
use std::time::Instant;

use longtail_rec::itemknn::cooccurrence;
use longtail_rec::{Ease, RecSplit};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().ok_or("usage: ease_fit DIR [LAMBDA]")?);
    let lambda: f64 = args.next().map_or(Ok(50.0), |l| l.parse())?;
    let split = RecSplit::load(&dir)?;
    let gram = cooccurrence(&split);
    let started = Instant::now();
    let ease = Ease::fit_gram(&gram, split.n_items(), lambda)?;
    println!(
        "EASE λ={lambda} on {} items, {} users: fitted in {:.2}s (B[0,1] = {})",
        split.n_items(),
        split.n_users(),
        started.elapsed().as_secs_f64(),
        ease.weight(0, 1)
    );
    Ok(())
}
