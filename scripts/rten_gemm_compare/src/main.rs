//! rten-gemm's u8 x i8 -> i32 GEMM at MiniLM's linear-layer shapes (2048 rows), each kernel at
//! 1 and 2 threads, best of 20: the same measurement as longtail-int8's int8_gemm example.
//! Inputs on longtail's grid (activations u8 <= 127 with a zero point, weights |w| <= 63), so
//! rten's AVX2 kernel does not saturate; the weights are packed once, as longtail does at load.
//! rten stops at the i32 sums; longtail's timing also includes dequantizing them to f32.
use rten_gemm::{
    GemmExecutor, GemmInputA, GemmInputB, GemmOptions, Int8KernelType, QuantParams, WithKernel,
};
use rten_tensor::{AsView, NdTensor};
use std::time::Instant;

fn main() {
    let n = 2048usize;
    let shapes = [(384usize, 384usize), (384, 1536), (1536, 384)];
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        for kt in [Int8KernelType::Avx512, Int8KernelType::Avx2] {
            let Some(ex) = GemmExecutor::<u8, i8, i32>::with_kernel(kt) else {
                continue;
            };
            let (mut ops, mut secs) = (0f64, 0f64);
            for &(k, out) in &shapes {
                let a: Vec<u8> = (0..n * k).map(|i| ((i * 31) % 97 + 15) as u8).collect();
                let b: Vec<i8> = (0..k * out)
                    .map(|i| (((i * 7919) % 127) as i32 - 63) as i8)
                    .collect();
                let a = NdTensor::from_data([n, k], a);
                let b = NdTensor::from_data([k, out], b);
                let packed_b = ex.prepack_b(b.view());
                let zp = vec![64u8; n];
                let mut y = vec![0i32; n * out];
                let run = |y: &mut [i32]| {
                    ex.gemm(
                        y,
                        GemmInputA::Unpacked(a.view()),
                        GemmInputB::Packed(&packed_b),
                        GemmOptions {
                            a_quant: Some(QuantParams { zero_point: &zp }),
                            ..Default::default()
                        },
                    )
                    .unwrap();
                };
                pool.install(|| run(&mut y));
                let best = (0..20)
                    .map(|_| {
                        let t = Instant::now();
                        pool.install(|| run(&mut y));
                        t.elapsed().as_secs_f64()
                    })
                    .fold(f64::INFINITY, f64::min);
                secs += best;
                ops += 2.0 * (n * k * out) as f64;
            }
            println!(
                "rten-gemm  threads={threads}  kernel={:<24} {:>8.1} GOP/s (may_saturate={})",
                ex.kernel_name(),
                ops / secs / 1e9,
                ex.may_saturate()
            );
        }
    }
}
