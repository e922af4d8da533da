use super::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn gaussian(rng: &mut ChaCha8Rng, n: usize, std: f32) -> Vec<f32> {
    // Sum of uniforms: close enough to normal for test data, and heavy tails do not matter.
    (0..n)
        .map(|_| (0..4).map(|_| rng.random::<f32>() - 0.5).sum::<f32>() * std * 1.7)
        .collect()
}

fn no_epilogue(_: &mut [f32]) {}

/// The layer computed from scratch: quantize both sides as documented, sum in i64, dequantize
/// in the documented order. Shares no code with the crate's packing or kernels.
fn reference(x: &[f32], n: usize, w: &[f32], out: usize, k: usize, b: &[f32]) -> Vec<f32> {
    let q = |v: &[f32], max: i32| -> (Vec<i64>, f32) {
        let amax = v.iter().fold(0f32, |m, x| m.max(x.abs()));
        let s = if amax > 0.0 { amax / max as f32 } else { 1.0 };
        let inv = 1.0 / s;
        let q = v
            .iter()
            .map(|x| (x * inv).round_ties_even().clamp(-max as f32, max as f32) as i64)
            .collect();
        (q, s)
    };
    let ws: Vec<_> = (0..out)
        .map(|o| q(&w[o * k..(o + 1) * k], WEIGHT_MAX))
        .collect();
    let mut y = vec![0f32; n * out];
    for r in 0..n {
        let (qx, sx) = q(&x[r * k..(r + 1) * k], ACT_MAX);
        for (o, (qw, sw)) in ws.iter().enumerate() {
            let dot: i64 = qx.iter().zip(qw).map(|(a, b)| a * b).sum();
            y[r * out + o] = (dot as i32) as f32 * (sx * sw) + b[o];
        }
    }
    y
}

#[test]
fn every_kernel_equals_the_reference_bit_for_bit() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    // Odd widths: k not a multiple of 4, out not a multiple of the panel, rows not of a block.
    for &(n, k, out) in &[
        (1, 3, 1),
        (5, 13, 33),
        (49, 64, 96),
        (50, 384, 70),
        (51, 40, 40),
        (97, 130, 65),
    ] {
        let x = gaussian(&mut rng, n * k, 1.0);
        let w = gaussian(&mut rng, out * k, 0.05);
        let b = gaussian(&mut rng, out, 0.1);
        let lin = QuantizedLinear::new(&w, out, k, &b);
        let want = reference(&x, n, &w, out, k, &b);
        for &kernel in Kernel::available() {
            let got = lin.forward(&x, n, kernel, &no_epilogue);
            assert_eq!(got, want, "{} at n={n} k={k} out={out}", kernel.name());
        }
    }
}

/// The largest sums AVX2's `i16` steps can see: activations at the ends of the grid (u8 127
/// and 1) against weights at +-63, arranged so all four products the AVX2 kernel adds in one
/// `i16` (two pairs of two groups) have one sign. With 8-bit weights or 8-bit activations
/// these sums would saturate the i16 and the results would be wrong.
#[test]
fn extreme_values_do_not_saturate() {
    let (n, k, out) = (4, 256, 64);
    let mut x = vec![0f32; n * k];
    for j in 0..k {
        x[j] = 3.0; // row 0: all +max -> u8 127
        x[k + j] = -3.0; // row 1: all -max -> u8 1
        x[2 * k + j] = if (j / 2) % 2 == 0 { 3.0 } else { -3.0 }; // sign flips per pair
        x[3 * k + j] = if j % 2 == 0 { 3.0 } else { -3.0 }; // sign flips within a pair
    }
    let mut w = vec![0f32; out * k];
    for o in 0..out {
        for j in 0..k {
            let sign = match o % 4 {
                0 => 1.0,
                1 => -1.0,
                2 => {
                    if (j / 2) % 2 == 0 {
                        1.0
                    } else {
                        -1.0
                    }
                }
                _ => {
                    if j % 2 == 0 {
                        -1.0
                    } else {
                        1.0
                    }
                }
            };
            w[o * k + j] = sign * 0.5;
        }
    }
    let b = vec![0f32; out];
    let lin = QuantizedLinear::new(&w, out, k, &b);
    let want = reference(&x, n, &w, out, k, &b);
    // The reference itself is exact: row 0 against all-positive weights is k * 3.0 * 0.5.
    assert!((want[0] - 384.0).abs() < 1e-3, "reference {}", want[0]);
    for &kernel in Kernel::available() {
        assert_eq!(
            lin.forward(&x, n, kernel, &no_epilogue),
            want,
            "{}",
            kernel.name()
        );
    }
}

#[test]
fn close_to_the_float_layer() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let (n, k, out) = (64, 384, 128);
    let x = gaussian(&mut rng, n * k, 1.0);
    let w = gaussian(&mut rng, out * k, 0.05);
    let b = gaussian(&mut rng, out, 0.1);
    let lin = QuantizedLinear::new(&w, out, k, &b);
    let got = lin.forward(&x, n, Kernel::detect(), &no_epilogue);
    let (mut err, mut norm) = (0f64, 0f64);
    for r in 0..n {
        for o in 0..out {
            let exact: f32 = (0..k).map(|j| x[r * k + j] * w[o * k + j]).sum::<f32>() + b[o];
            err += ((got[r * out + o] - exact) as f64).powi(2);
            norm += (exact as f64).powi(2);
        }
    }
    let rel = (err / norm).sqrt();
    assert!(rel < 0.02, "relative RMS error {rel}");
}

#[test]
fn a_row_does_not_depend_on_its_batch() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let (n, k, out) = (37, 96, 64);
    let x = gaussian(&mut rng, n * k, 1.0);
    let w = gaussian(&mut rng, out * k, 0.1);
    let lin = QuantizedLinear::new(&w, out, k, &vec![0.0; out]);
    let all = lin.forward(&x, n, Kernel::detect(), &no_epilogue);
    for r in [0, 17, 36] {
        let one = lin.forward(&x[r * k..(r + 1) * k], 1, Kernel::detect(), &no_epilogue);
        assert_eq!(one, all[r * out..(r + 1) * out]);
    }
}

#[test]
fn the_epilogue_sees_every_output_once() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let (n, k, out) = (100, 40, 150);
    let x = gaussian(&mut rng, n * k, 1.0);
    let w = gaussian(&mut rng, out * k, 0.1);
    let lin = QuantizedLinear::new(&w, out, k, &vec![0.0; out]);
    let plain = lin.forward(&x, n, Kernel::detect(), &no_epilogue);
    let shifted = lin.forward(&x, n, Kernel::detect(), &|v: &mut [f32]| {
        v.iter_mut().for_each(|v| *v += 1000.0)
    });
    for (a, b) in plain.iter().zip(&shifted) {
        assert_eq!(*a + 1000.0, *b);
    }
}

#[test]
fn zero_rows_and_zero_weights_are_fine() {
    let lin = QuantizedLinear::new(&[0.0; 8], 2, 4, &[1.0, -1.0]);
    assert_eq!(
        lin.forward(&[0.0; 4], 1, Kernel::detect(), &no_epilogue),
        [1.0, -1.0]
    );
    assert!(lin
        .forward(&[], 0, Kernel::detect(), &no_epilogue)
        .is_empty());
}

/// Two layers chained through `forward_rows_into` give the next layer the same bytes and
/// scales as the f32 output quantized afterwards, with every kernel: rows across tiles and a
/// partial last tile, an output width that is not a multiple of the panel or of 4.
#[test]
fn forward_rows_into_equals_forward_then_quantize() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let (n, k, mid) = (101, 40, 70);
    let x = gaussian(&mut rng, n * k, 1.0);
    let first = QuantizedLinear::new(&gaussian(&mut rng, mid * k, 0.1), mid, k, &[0.5; 70]);
    let second = QuantizedLinear::new(&gaussian(&mut rng, 9 * mid, 0.1), 9, mid, &[0.0; 9]);
    let square = |v: &mut [f32]| v.iter_mut().for_each(|v| *v *= *v);
    let rows = first.quantize_input(&x, n);
    for &kernel in Kernel::available() {
        let y = first.forward_rows(&rows, kernel, &square);
        let want = second.quantize_input(&y, n);
        let got = first.forward_rows_into(&rows, kernel, &square, &second);
        assert_eq!(
            (got.n, got.stride),
            (want.n, want.stride),
            "{}",
            kernel.name()
        );
        assert_eq!(got.data, want.data, "{}", kernel.name());
        assert_eq!(got.scale, want.scale, "{}", kernel.name());
    }
}
