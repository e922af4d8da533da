//! Throughput of `ItemTokenizer::encode_batch_parallel` on the Office catalogue.
//!
//! Encodes every item as `{title} | {brand} | {categories} | {description}` with field-priority
//! truncation at `--max-len` on a dedicated pool of `--threads` threads, `--repeats` times
//! after one warm-up pass, and prints one JSON line:
//! `{"impl": "longtail", "texts", "repeats", "threads", "max_len", "tokens", "seconds", "tokens_per_s", "ids_fnv1a"}`
//! where `tokens` and `seconds` are totals over the timed repeats and `ids_fnv1a` fingerprints
//! the ids of one pass.
//!
//! ```text
//! cargo run --release -p longtail-tokenize --example bench_tokenize -- \
//!     --items ../shared/datasets/amazon-office-2014/items.jsonl \
//!     --tokenizer checkpoints/base/all-MiniLM-L6-v2/tokenizer.json --threads 2 --repeats 10
//! ```

use std::path::PathBuf;
use std::time::Instant;

use longtail_tokenize::{FieldTemplate, ItemTokenizer, TokenizeConfig};

struct Args {
    items: PathBuf,
    tokenizer: PathBuf,
    threads: usize,
    repeats: usize,
    max_len: usize,
}

fn parse_args() -> Result<Args, String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut args = Args {
        items: root.join("../shared/datasets/amazon-office-2014/items.jsonl"),
        tokenizer: root.join("checkpoints/base/all-MiniLM-L6-v2/tokenizer.json"),
        threads: 2,
        repeats: 10,
        max_len: 128,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--items" => args.items = value()?.into(),
            "--tokenizer" => args.tokenizer = value()?.into(),
            "--threads" => {
                args.threads = value()?.parse().map_err(|e| format!("--threads: {e}"))?
            }
            "--repeats" => {
                args.repeats = value()?.parse().map_err(|e| format!("--repeats: {e}"))?
            }
            "--max-len" => {
                args.max_len = value()?.parse().map_err(|e| format!("--max-len: {e}"))?
            }
            "-h" | "--help" => {
                return Err("usage: bench_tokenize [--items PATH] [--tokenizer PATH] \
                            [--threads N] [--repeats R] [--max-len L]"
                    .into())
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if args.repeats == 0 || args.threads == 0 {
        return Err("--threads and --repeats must be > 0".into());
    }
    Ok(args)
}

/// FNV-1a over the id sequences (row ends folded in), so the Python script can check that
/// both sides produced identical ids, not just equal counts.
fn ids_fingerprint<'a>(rows: impl Iterator<Item = &'a [u32]>) -> u64 {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for row in rows {
        for &id in row {
            h = (h ^ u64::from(id)).wrapping_mul(PRIME);
        }
        h = (h ^ 0xffff_ffff_ffff).wrapping_mul(PRIME);
    }
    h
}

fn main() {
    let args = parse_args().unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2)
    });
    let items: Vec<serde_json::Value> = std::fs::read_to_string(&args.items)
        .unwrap_or_else(|e| panic!("{}: {e}", args.items.display()))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("items.jsonl row"))
        .collect();
    let config =
        TokenizeConfig::new(FieldTemplate::catalogue(), args.max_len).with_threads(args.threads);
    let tok = ItemTokenizer::from_file(&args.tokenizer, config).expect("load tokenizer");

    let warm = tok.encode_batch_parallel(&items).expect("encode");
    let per_pass: usize = warm.iter().map(|e| e.len()).sum();
    let ids_hash = ids_fingerprint(warm.iter().map(|e| e.ids.as_slice()));
    let mut tokens = 0usize;
    let start = Instant::now();
    for _ in 0..args.repeats {
        let out = tok.encode_batch_parallel(&items).expect("encode");
        tokens += out.iter().map(|e| e.len()).sum::<usize>();
    }
    let seconds = start.elapsed().as_secs_f64();
    assert_eq!(tokens, per_pass * args.repeats, "deterministic output");
    println!(
        "{}",
        serde_json::json!({
            "impl": "longtail",
            "texts": items.len(),
            "repeats": args.repeats,
            "threads": args.threads,
            "max_len": args.max_len,
            "tokens": tokens,
            "seconds": seconds,
            "tokens_per_s": tokens as f64 / seconds,
            "ids_fnv1a": format!("{ids_hash:016x}"),
        })
    );
}
