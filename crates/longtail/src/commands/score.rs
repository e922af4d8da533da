//! `longtail score`: label every row of a catalogue dump as tail or not, with its probability.
//! Thin: parses flags, builds a `longtail_infer::Scorer`, streams with `score_file`, shows
//! progress and a summary line. See docs/score.md.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use longtail_infer::{score_file, OutputFormat, Scorer, ScorerOptions, Shard, StreamOptions};
use longtail_model::Precision;

use crate::shared_args::defaults;

#[derive(Args, Debug)]
pub struct ScoreArgs {
    /// Checkpoint directory (the --out of `longtail train`, or one of its checkpoint-N).
    #[arg(long, required_unless_present = "merge")]
    pub checkpoint: Option<PathBuf>,

    /// Catalogue dump: JSONL, CSV or Parquet, gzip or not; raw catalogue rows or the
    /// items.jsonl of `longtail prepare`. Or many files: a directory (every data file below
    /// it in path order; names starting with `_` or `.` skipped), a quoted glob
    /// ('dump/part-*.parquet'), or @FILE, a manifest listing one path per line.
    #[arg(long, required_unless_present = "merge")]
    pub input: Option<PathBuf>,

    /// Output file: one row per scored input row, in input order (item_id, p_tail, label).
    /// With --merge: the merged file.
    #[arg(long)]
    pub output: PathBuf,

    /// Merge the shard outputs in DIR (every `--shard k/N` run of one job, each complete)
    /// into --output: each part is checked against its progress file (same run, rows, bytes,
    /// sha256), then the parts are concatenated in shard order (the unsharded run's bytes)
    /// with their rejects, and DIR/_SUCCESS lists what was merged.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["checkpoint", "input", "shard", "resume"])]
    pub merge: Option<PathBuf>,

    /// TOML file whose [score] table supplies defaults for any flag.
    #[arg(long)]
    pub config: Option<PathBuf>,

    /// Output format (default: from the --output extension, else jsonl).
    #[arg(long, value_enum)]
    pub format: Option<OutputFormat>,

    /// Rejected rows as {"line", "reason"}, with "file" for a many-file input (default:
    /// OUTPUT.rejects.jsonl).
    #[arg(long)]
    pub rejects: Option<PathBuf>,

    /// Continue an interrupted run where its durable output ends (OUTPUT.progress.json).
    /// While another live process writes OUTPUT, score exits with status 75 (EX_TEMPFAIL):
    /// retry later; once that process is dead, --resume takes over.
    /// Refused when anything that makes the rows changed (checkpoint weights, --threshold,
    /// --max-len, --id-field, precision, the input).
    #[arg(long, default_value_t = false)]
    pub resume: bool,

    /// Replace an existing OUTPUT. Without this or --resume an existing output is an error.
    #[arg(long, default_value_t = false, conflicts_with = "resume")]
    pub overwrite: bool,

    /// Score only shard k of N (0-based k). One file: contiguous blocks of --chunk-rows rows
    /// (every shard counts the rows first). Many files: whole files and parquet row groups,
    /// by byte position, with no counting pass, so each input byte is read by one shard.
    #[arg(long, value_parser = Shard::parse)]
    pub shard: Option<Shard>,

    /// Upper bound on rows x longest row per forward pass [default: 8192; 4096 with
    /// --precision int8, measured faster there].
    #[arg(long)]
    pub max_batch_tokens: Option<usize>,

    /// Compute threads (GEMM and tokenization); default: all cores.
    #[arg(long)]
    pub threads: Option<usize>,

    /// Tokenization threads (a dedicated pool working ahead of the model).
    #[arg(long, default_value_t = 1)]
    pub tokenize_threads: usize,

    /// Also write the pooled embedding of each row.
    #[arg(long, default_value_t = false)]
    pub embeddings: bool,

    /// Rows per durable chunk (fsync + progress record; also the length-sorting window).
    #[arg(long, default_value_t = defaults::stream().chunk_rows)]
    pub chunk_rows: usize,

    /// `label` is tail when p_tail >= this.
    #[arg(long, default_value_t = defaults::stream().threshold)]
    pub threshold: f32,

    /// Column with the item id.
    #[arg(long, default_value_t = defaults::stream().id_field)]
    pub id_field: String,

    /// Maximum tokens per item (default: the checkpoint's train_args.toml).
    #[arg(long)]
    pub max_len: Option<usize>,

    /// Arithmetic of the encoder's linear layers: fp32 (default, exact); int8 (CPU only:
    /// per-channel weights, per-token activations; faster where the CPU has integer dot
    /// products); or bf16 (for a GPU: matmuls on bf16 copies, f32 accumulation; slower on a
    /// CPU). `longtail eval --precision P` measures what P costs. A --resume must use the
    /// precision the interrupted run used.
    #[arg(long, value_enum, default_value_t = Precision::Fp32)]
    pub precision: Precision,

    #[command(flatten)]
    pub device: crate::shared_args::DeviceArg,
}

/// Keeps freed tensor buffers in the heap for reuse: by default glibc returns every large
/// buffer to the kernel on free, and the next batch pays page faults and page zeroing for the
/// same sizes again (~4% of a scoring run). The working set per batch is bounded, so the heap
/// stays bounded too.
fn reuse_freed_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before worker threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

pub fn run(args: ScoreArgs) -> Result<()> {
    if let Some(dir) = &args.merge {
        let m = longtail_infer::merge_parts(dir, &args.output, args.overwrite)
            .with_context(|| format!("merging the shards in {}", dir.display()))?;
        println!(
            "merged {} shards of {}: rows {} (scored {}, rejects {}); output {}, rejects {}, \
             manifest {}",
            m.parts.len(),
            dir.display(),
            m.rows,
            m.scored,
            m.rejected,
            m.output.display(),
            m.rejects.display(),
            dir.join(longtail_infer::SUCCESS_FILE).display()
        );
        return Ok(());
    }
    let (checkpoint, input) = match (&args.checkpoint, &args.input) {
        (Some(c), Some(i)) => (c.clone(), i.clone()),
        _ => anyhow::bail!("--checkpoint and --input are required (or --merge DIR)"),
    };
    reuse_freed_buffers();
    if let Some(n) = args.threads {
        anyhow::ensure!(n > 0, "--threads must be >= 1");
        // candle sizes its GEMM parallelism from RAYON_NUM_THREADS; set it before any pool exists.
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global();
    }
    anyhow::ensure!(args.tokenize_threads > 0, "--tokenize-threads must be >= 1");
    let opts = ScorerOptions {
        max_len: args.max_len,
        max_batch_tokens: args.max_batch_tokens,
        tokenize_threads: Some(args.tokenize_threads),
        precision: args.precision,
        device: args.device.resolve()?,
        ..Default::default()
    };
    let scorer = Scorer::with_options(&checkpoint, &opts)
        .with_context(|| format!("cannot load checkpoint {}", checkpoint.display()))?;
    let mut stream = StreamOptions::new(&input, &args.output);
    if let Some(f) = args.format {
        stream.format = f;
    }
    stream.rejects = args.rejects.clone();
    stream.resume = args.resume;
    stream.overwrite = args.overwrite;
    if let Some(s) = args.shard {
        stream.shard = s;
    }
    stream.chunk_rows = args.chunk_rows;
    stream.embeddings = args.embeddings;
    stream.threshold = args.threshold;
    stream.id_field = args.id_field.clone();

    let mut display = crate::progress::ProgressDisplay::new("scoring", "rows");
    let summary = score_file(&scorer, &stream, &mut |e| display.on_event(e))
        .with_context(|| format!("scoring {}", input.display()))?;
    display.finish();
    let st = scorer.stats();
    let arithmetic = match scorer.precision() {
        Precision::Fp32 => "GFLOP/s (fp32)".to_string(),
        Precision::Bf16 => "GFLOP/s (bf16 matmuls)".to_string(),
        Precision::Int8 => format!(
            "G(int)OP/s (int8, {} kernel)",
            longtail_model::int8::kernel().name()
        ),
    };
    println!(
        "encoder on {}: {} batches, {} rows, {:.1}% padding, {:.1} s in forward passes, {:.1} \
         {arithmetic}",
        longtail_model::device_name(scorer.model().device()),
        st.batches,
        st.rows,
        100.0 * (1.0 - st.tokens as f64 / (st.padded_tokens.max(1)) as f64),
        st.seconds,
        st.gflops_per_second()
    );
    println!(
        "scored {}: rows {} (scored {}, rejects {}), {:.1} s, {:.1} rows/s{}; output {}, rejects {}",
        input.display(),
        summary.rows,
        summary.scored,
        summary.rejected,
        summary.seconds,
        summary.rows_per_second(),
        if summary.resumed_rows > 0 {
            format!(" (resumed after {} rows)", summary.resumed_rows)
        } else {
            String::new()
        },
        summary.output.display(),
        summary.rejects.display()
    );
    println!(
        "input read{}: {} bytes of the input's {} ({:.3}x), parquet footers {} bytes",
        if stream.shard.count > 1 {
            format!(" by shard {}", stream.shard)
        } else {
            String::new()
        },
        summary.bytes_read,
        summary.input_bytes,
        summary.bytes_read as f64 / summary.input_bytes.max(1) as f64,
        summary.footer_bytes,
    );
    Ok(())
}
