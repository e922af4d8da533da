//! Integer GEMM throughput of each kernel this CPU runs, at MiniLM's linear-layer shapes
//! (2048 token rows): the ceiling that `make bench-score` compares the encoder against.
//!
//! `cargo run --release -p longtail-int8 --example int8_gemm [-- ROWS [THREADS]]`: every
//! kernel at 1 and 2 threads, then `ceiling_gops=X kernel=K`: the fastest kernel at THREADS
//! (default: all cores), the line `make bench-score` reads; `LONGTAIL_INT8_KERNEL` picks
//! another kernel for that line (the bench's `--isa avx2`).

use longtail_int8::{macs, Kernel, QuantizedLinear};
use std::time::Instant;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(2048, |s| s.parse().expect("ROWS"));
    let ceiling_threads: usize = std::env::args()
        .nth(2)
        .map_or_else(rayon::current_num_threads, |s| s.parse().expect("THREADS"));
    println!("cpu: {}", cpu_model());
    let shapes = [(384, 384), (384, 1536), (1536, 384)];
    let weights: Vec<_> = shapes
        .iter()
        .map(|&(k, out)| {
            let w: Vec<f32> = (0..out * k)
                .map(|i| ((i * 7919) % 251) as f32 / 125.0 - 1.0)
                .collect();
            QuantizedLinear::new(&w, out, k, &vec![0.0; out])
        })
        .collect();
    for threads in [1, 2] {
        for &kernel in Kernel::available() {
            let gops = measure(&weights, &shapes, n, threads, kernel);
            println!(
                "int8 gemm  threads={threads}  kernel={:<12} {gops:>8.1} GOP/s",
                kernel.name()
            );
        }
    }
    let best = Kernel::from_env();
    let gops = measure(&weights, &shapes, n, ceiling_threads, best);
    println!(
        "ceiling_gops={gops:.1} kernel={} threads={ceiling_threads}",
        best.name()
    );
}

/// GOP/s (2 ops per multiply-add) over the three shapes, each the best of 20 repetitions.
fn measure(
    weights: &[QuantizedLinear],
    shapes: &[(usize, usize)],
    n: usize,
    threads: usize,
    kernel: Kernel,
) -> f64 {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    let (mut ops, mut secs) = (0f64, 0f64);
    for (lin, &(k, out)) in weights.iter().zip(shapes) {
        let x: Vec<f32> = (0..n * k)
            .map(|i| ((i * 31) % 97) as f32 / 48.0 - 1.0)
            .collect();
        let rows = lin.quantize_input(&x, n);
        let mut y = vec![0f32; n * out];
        let reps = if kernel == Kernel::Portable { 1 } else { 20 };
        pool.install(|| lin.forward_quantized(&rows, kernel, &mut y, &|_| {}));
        // The best of the repetitions: the machine is shared, and a slow run says nothing
        // about the kernel.
        let best = (0..reps)
            .map(|_| {
                let t = Instant::now();
                pool.install(|| lin.forward_quantized(&rows, kernel, &mut y, &|_| {}));
                t.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min);
        secs += best;
        ops += 2.0 * macs(n, k, out);
    }
    ops / secs / 1e9
}

fn cpu_model() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |k: &str| {
        info.lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split(':').nth(1))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|| "?".into())
    };
    format!("{} (family {})", field("model name"), field("cpu family"))
}
