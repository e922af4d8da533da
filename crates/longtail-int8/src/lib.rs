//! longtail-int8: `y = x W^T + b` in integer arithmetic, for scoring on CPUs.
//!
//! - **Weights** are quantized once, per output channel, symmetric, to **7 bits**
//!   (`[-63, 63]`), and packed in panels of [`PANEL`] output columns × 4 inputs (the shape
//!   one `vpdpbusd` consumes).
//! - **Activations** are quantized per row (per token) when the layer runs, symmetric, also to
//!   **7 bits** (`[-63, 63]`), and stored shifted to `u8` (`q + 64`, in `[1, 127]`); the shift
//!   is taken back out with a per-column constant `64 Σ_k w`. Each row's result depends on that
//!   row only, so a row scores the same whatever else is in its batch.
//! - **Accumulation** is exact `i32`; dequantization, bias and an optional element-wise
//!   epilogue (GELU) run on each output tile while it is in cache.
//!
//! Why 7 bits on both sides: AVX2's `vpmaddubsw` adds two `u8 × i8` products into a
//! *saturating* `i16`, and widening that to `i32` (`vpmaddwd`) takes a second multiply. With
//! `u8 ≤ 127` and `|w| ≤ 63`, four products stay within `4 · 127 · 63 = 32004 < 32767`, so the
//! AVX2 kernel adds the pairs of two input groups in `i16` and widens once: 3 multiplies per
//! 64 products instead of 4, and CPUs without VNNI (AMD Zen 1-3) are bound by exactly those
//! multiplies (tested with adversarial values). The VNNI kernels accumulate straight into `i32`
//! and would not need it, but using one grid everywhere makes every kernel compute the **same
//! integers**: a catalogue scored on an AVX-512 host and one scored on an AVX2 host agree bit
//! for bit. The 7-bit activations' accuracy against 8-bit ones was measured on Office
//! (docs/score.md): the same mean p_tail error, ROC-AUC within 0.0015 of fp32.
//!
//! Kernels, chosen at run time ([`Kernel::detect`]): AVX-512 VNNI, AVX-VNNI, AVX2, and a
//! portable scalar loop (any CPU; also the tests' reference).

mod kernels;
mod quantize;

pub use kernels::Kernel;
pub use quantize::{quantize_rows, QuantizedRows};

use rayon::prelude::*;

/// Output columns per packed weight panel.
pub const PANEL: usize = 32;
/// Largest weight magnitude on the integer grid (7 bits; see the crate docs).
pub const WEIGHT_MAX: i32 = 63;
/// Largest activation magnitude on the integer grid (7 bits; see the crate docs).
pub const ACT_MAX: i32 = 63;
/// The stored `u8` of activation 0: activations are kept as `q + ACT_ZERO`.
pub const ACT_ZERO: u8 = 64;
/// Rows are padded to a multiple of this many inputs: two packed groups of 4, since the AVX2
/// kernel takes two groups a step.
const K_ALIGN: usize = 8;

/// Rows per parallel task (a multiple of every kernel's row block).
const TILE_ROWS: usize = 48;
/// Panels per parallel task.
const TILE_PANELS: usize = 2;

/// A linear layer's weight `(out, in)` on the int8 grid, packed for the kernels, with its
/// per-channel scales, the `u8` shift's correction and the bias.
#[derive(Clone)]
pub struct QuantizedLinear {
    out: usize,
    k: usize,
    /// `k` rounded up to a multiple of [`K_ALIGN`].
    k_padded: usize,
    panels: usize,
    /// `panels × (k_padded / 4) × PANEL × 4` bytes.
    packed: Vec<i8>,
    /// Per output column (padded to `panels × PANEL` with zeros).
    scale: Vec<f32>,
    correction: Vec<i32>,
    bias: Vec<f32>,
}

impl std::fmt::Debug for QuantizedLinear {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "QuantizedLinear({} -> {}, int8)", self.k, self.out)
    }
}

impl QuantizedLinear {
    /// Quantizes `weight` (row-major `(out, in)`, PyTorch's layout) and keeps `bias` (`out`).
    pub fn new(weight: &[f32], out: usize, k: usize, bias: &[f32]) -> Self {
        assert_eq!(weight.len(), out * k, "weight is not ({out}, {k})");
        assert_eq!(bias.len(), out, "bias is not ({out})");
        let k_padded = k.div_ceil(K_ALIGN) * K_ALIGN;
        let panels = out.div_ceil(PANEL);
        let cols = panels * PANEL;
        let groups = k_padded / 4;
        let mut packed = vec![0i8; panels * groups * PANEL * 4];
        let mut scale = vec![0f32; cols];
        let mut correction = vec![0i32; cols];
        let mut padded_bias = vec![0f32; cols];
        padded_bias[..out].copy_from_slice(bias);
        for o in 0..out {
            let row = &weight[o * k..(o + 1) * k];
            let amax = row.iter().fold(0f32, |m, v| m.max(v.abs()));
            let s = if amax > 0.0 {
                amax / WEIGHT_MAX as f32
            } else {
                1.0
            };
            let inv = 1.0 / s;
            let (p, c) = (o / PANEL, o % PANEL);
            let mut sum = 0i32;
            for (j, &v) in row.iter().enumerate() {
                let q = (v * inv)
                    .round_ties_even()
                    .clamp(-WEIGHT_MAX as f32, WEIGHT_MAX as f32) as i32;
                sum += q;
                packed[((p * groups + j / 4) * PANEL + c) * 4 + j % 4] = q as i8;
            }
            scale[o] = s;
            correction[o] = ACT_ZERO as i32 * sum;
        }
        Self {
            out,
            k,
            k_padded,
            panels,
            packed,
            scale,
            correction,
            bias: padded_bias,
        }
    }

    pub fn in_features(&self) -> usize {
        self.k
    }

    pub fn out_features(&self) -> usize {
        self.out
    }

    /// `x (n, in)` row-major → `(n, out)` row-major, with `epilogue` applied to every piece of
    /// every output row once its values are final (e.g. GELU in place). Uses rayon's current
    /// pool; `kernel` is normally [`Kernel::detect`].
    pub fn forward(
        &self,
        x: &[f32],
        n: usize,
        kernel: Kernel,
        epilogue: &(dyn Fn(&mut [f32]) + Sync),
    ) -> Vec<f32> {
        self.forward_rows(&self.quantize_input(x, n), kernel, epilogue)
    }

    /// Quantizes `x (n, in)` for this layer (and any layer of the same `in` width): several
    /// layers reading one input quantize it once.
    pub fn quantize_input(&self, x: &[f32], n: usize) -> QuantizedRows {
        quantize_rows(x, n, self.k, self.k_padded)
    }

    /// [`Self::forward`] on rows from [`Self::quantize_input`] (of any layer of this width).
    pub fn forward_rows(
        &self,
        rows: &QuantizedRows,
        kernel: Kernel,
        epilogue: &(dyn Fn(&mut [f32]) + Sync),
    ) -> Vec<f32> {
        // Not zero-filled first (a memset was 8% of an int8 scoring run): the tiles write
        // every element of every row before anything reads it.
        let mut y = Vec::with_capacity(rows.n * self.out);
        self.forward_quantized_into(
            rows,
            kernel,
            y.spare_capacity_mut().as_mut_ptr().cast(),
            epilogue,
        );
        // SAFETY: `forward_quantized_into` wrote all n * out elements.
        unsafe { y.set_len(rows.n * self.out) };
        y
    }

    /// As [`Self::forward`] on rows already quantized (with this layer's `in` width).
    pub fn forward_quantized(
        &self,
        rows: &QuantizedRows,
        kernel: Kernel,
        y: &mut [f32],
        epilogue: &(dyn Fn(&mut [f32]) + Sync),
    ) {
        assert_eq!(
            y.len(),
            rows.n * self.out,
            "output is not ({}, {})",
            rows.n,
            self.out
        );
        self.forward_quantized_into(rows, kernel, y.as_mut_ptr(), epilogue)
    }

    /// This layer's output with `epilogue` applied, quantized as the input of `next` (whose
    /// `in` is this layer's `out`): the same bytes and scales as [`Self::forward_rows`]
    /// followed by `next.quantize_input`, but each task computes whole rows (every panel),
    /// applies the epilogue and quantizes them while they are in cache, so the f32 output is
    /// never written out. For the FFN: GELU, then the second layer's input.
    pub fn forward_rows_into(
        &self,
        rows: &QuantizedRows,
        kernel: Kernel,
        epilogue: &(dyn Fn(&mut [f32]) + Sync),
        next: &QuantizedLinear,
    ) -> QuantizedRows {
        assert_eq!(
            rows.stride, self.k_padded,
            "rows quantized for another width"
        );
        assert_eq!(
            next.k, self.out,
            "the next layer does not take this layer's output"
        );
        let (n, stride) = (rows.n, next.k_padded);
        let mut data = vec![ACT_ZERO; n * stride];
        let mut scale = vec![0f32; n];
        if self.out > 0 {
            let kernel = kernel.usable();
            data.par_chunks_mut(TILE_ROWS * stride)
                .zip(scale.par_chunks_mut(TILE_ROWS))
                .enumerate()
                .for_each(|(t, (q, s))| {
                    let (r0, r1) = (t * TILE_ROWS, t * TILE_ROWS + s.len());
                    let mut y: Vec<f32> = Vec::with_capacity((r1 - r0) * self.out);
                    for p in 0..self.panels {
                        // SAFETY: `y` has room for rows r0..r1 (from row r0) of `out` floats;
                        // only this task uses it.
                        unsafe {
                            kernels::panel_rows(kernel, self, rows, p, r0, r1, y.as_mut_ptr(), r0)
                        };
                    }
                    // SAFETY: the panels wrote every column of every row r0..r1.
                    unsafe { y.set_len((r1 - r0) * self.out) };
                    for ((y, q), s) in y.chunks_mut(self.out).zip(q.chunks_mut(stride)).zip(s) {
                        epilogue(y);
                        *s = quantize::quantize_row(y, &mut q[..self.out]);
                    }
                });
        }
        QuantizedRows {
            n,
            stride,
            data,
            scale,
        }
    }

    /// Writes every element of the `(rows.n, out)` row-major output at `y` (which may be
    /// uninitialised memory of that size).
    fn forward_quantized_into(
        &self,
        rows: &QuantizedRows,
        kernel: Kernel,
        y: *mut f32,
        epilogue: &(dyn Fn(&mut [f32]) + Sync),
    ) {
        let n = rows.n;
        assert_eq!(
            rows.stride, self.k_padded,
            "rows quantized for another width"
        );
        if n == 0 || self.out == 0 {
            return;
        }
        let kernel = kernel.usable();
        let row_tiles = n.div_ceil(TILE_ROWS);
        let col_tiles = self.panels.div_ceil(TILE_PANELS);
        let out_ptr = SendPtr(y);
        (0..row_tiles * col_tiles).into_par_iter().for_each(|t| {
            let (rt, ct) = (t / col_tiles, t % col_tiles);
            let r0 = rt * TILE_ROWS;
            let r1 = (r0 + TILE_ROWS).min(n);
            let p0 = ct * TILE_PANELS;
            let p1 = (p0 + TILE_PANELS).min(self.panels);
            let c0 = p0 * PANEL;
            let c1 = (p1 * PANEL).min(self.out);
            let out_ptr = &out_ptr;
            for p in p0..p1 {
                // SAFETY: tiles cover disjoint (rows, columns) blocks of `y`, whose length was
                // checked above; the kernel writes rows r0..r1, columns of panel p below `out`.
                unsafe { kernels::panel_rows(kernel, self, rows, p, r0, r1, out_ptr.0, 0) };
            }
            for r in r0..r1 {
                // SAFETY: as above: row r, columns c0..c1 belong to this tile only.
                let seg = unsafe {
                    std::slice::from_raw_parts_mut(out_ptr.0.add(r * self.out + c0), c1 - c0)
                };
                epilogue(seg);
            }
        });
    }
}

/// A raw output pointer shared by tiles that write disjoint parts.
struct SendPtr(*mut f32);
// SAFETY: the tiles write disjoint elements (see `forward_quantized`).
unsafe impl Sync for SendPtr {}
unsafe impl Send for SendPtr {}

/// Multiply-adds per call of a `(n, in) x (in, out)` layer: for GOP/s reports.
pub fn macs(n: usize, k: usize, out: usize) -> f64 {
    n as f64 * k as f64 * out as f64
}

#[cfg(test)]
mod tests;
