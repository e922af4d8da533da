//! The integer micro-kernels and their run-time dispatch. Every kernel computes the same
//! exact `i32` sums from the same packed bytes; they differ only in instructions.
//!
//! A micro-kernel multiplies `MR` quantized rows by one packed panel ([`PANEL`] columns),
//! four inputs at a time: the four `u8` of a row are broadcast to every 32-bit lane and
//! multiplied with the four `i8` weights of each column in that lane.

use crate::{QuantizedLinear, QuantizedRows, PANEL};

/// Which integer instructions run the layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// `vpdpbusd` on 512-bit registers (Intel Ice Lake / Sapphire Rapids and later, AMD Zen 4+).
    Avx512Vnni,
    /// `vpdpbusd` on 256-bit registers (AVX-VNNI: Intel Alder Lake and later).
    AvxVnni,
    /// `vpmaddubsw` + `vpmaddwd` (any AVX2 CPU; Zen 1-3 among them).
    Avx2,
    /// Scalar Rust, any CPU.
    Portable,
}

impl Kernel {
    /// The fastest kernel this CPU runs.
    pub fn detect() -> Self {
        Self::available()[0]
    }

    /// `LONGTAIL_INT8_KERNEL` (a [`Kernel::name`]; for benchmarks and tests) when set and
    /// runnable here, else [`Kernel::detect`].
    pub fn from_env() -> Self {
        let want = std::env::var("LONGTAIL_INT8_KERNEL").ok();
        Self::available()
            .iter()
            .copied()
            .find(|k| want.as_deref().is_none_or(|w| w == k.name()))
            .unwrap_or_else(Self::detect)
    }

    /// Every kernel this CPU runs, fastest first (always ends with [`Kernel::Portable`]).
    /// Detected once per process.
    pub fn available() -> &'static [Self] {
        static AVAILABLE: std::sync::OnceLock<Vec<Kernel>> = std::sync::OnceLock::new();
        AVAILABLE.get_or_init(Self::detect_all)
    }

    fn detect_all() -> Vec<Self> {
        let mut v = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            if has!("avx512f") && has!("avx512bw") && has!("avx512vnni") {
                v.push(Self::Avx512Vnni);
            }
            if has!("avx2") && has!("avxvnni") {
                v.push(Self::AvxVnni);
            }
            if has!("avx2") {
                v.push(Self::Avx2);
            }
        }
        v.push(Self::Portable);
        v
    }

    /// `self` when this CPU runs it, else the portable kernel (never an illegal instruction).
    pub fn usable(self) -> Self {
        if Self::available().contains(&self) {
            self
        } else {
            Self::Portable
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Avx512Vnni => "avx512-vnni",
            Self::AvxVnni => "avx-vnni",
            Self::Avx2 => "avx2",
            Self::Portable => "portable",
        }
    }
}

/// Rows `r0..r1` of `rows` times panel `p` of `lin`, dequantized into `out`: row-major rows
/// of `lin.out` floats, `out` holding row `out_row0` first.
///
/// # Safety
/// `kernel` must be usable on this CPU ([`Kernel::usable`]); `out` must hold rows
/// `out_row0..r1` (`out_row0 <= r0`) of `lin.out` floats, and no other thread may touch rows
/// `r0..r1` of panel `p` meanwhile.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn panel_rows(
    kernel: Kernel,
    lin: &QuantizedLinear,
    rows: &QuantizedRows,
    p: usize,
    r0: usize,
    r1: usize,
    out: *mut f32,
    out_row0: usize,
) {
    let job = Job {
        lin,
        rows,
        p,
        out,
        out_row0,
    };
    match kernel {
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512Vnni => x86::rows_avx512_vnni(&job, r0, r1),
        #[cfg(target_arch = "x86_64")]
        Kernel::AvxVnni => x86::rows_avx_vnni(&job, r0, r1),
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2 => x86::rows_avx2(&job, r0, r1),
        _ => rows_portable(&job, r0, r1),
    }
}

struct Job<'a> {
    lin: &'a QuantizedLinear,
    rows: &'a QuantizedRows,
    p: usize,
    out: *mut f32,
    /// The input row that `out`'s first row holds.
    out_row0: usize,
}

impl Job<'_> {
    fn groups(&self) -> usize {
        self.lin.k_padded / 4
    }

    /// The panel's packed bytes.
    fn panel(&self) -> *const i8 {
        let len = self.groups() * PANEL * 4;
        self.lin.packed[self.p * len..(self.p + 1) * len].as_ptr()
    }

    fn row(&self, r: usize) -> *const u8 {
        self.rows.data[r * self.rows.stride..(r + 1) * self.rows.stride].as_ptr()
    }

    /// Dequantizes `MR` rows of sums starting at row `r`: `(acc - ACT_ZERO Σw) · s_row · s_col + b`.
    /// Plain arithmetic in one fixed order, so every kernel's caller writes the same floats.
    ///
    /// # Safety
    /// As [`panel_rows`].
    #[inline(always)]
    unsafe fn store<const MR: usize>(&self, r: usize, acc: &[[i32; PANEL]; MR]) {
        let lin = self.lin;
        let c0 = self.p * PANEL;
        let width = (lin.out - c0).min(PANEL);
        let scale = &lin.scale[c0..c0 + width];
        let corr = &lin.correction[c0..c0 + width];
        let bias = &lin.bias[c0..c0 + width];
        for (i, acc) in acc.iter().enumerate() {
            let s = self.rows.scale[r + i];
            // Raw writes: the output may be uninitialised until this stores it.
            let out = self.out.add((r + i - self.out_row0) * lin.out + c0);
            for c in 0..width {
                out.add(c)
                    .write((acc[c] - corr[c]) as f32 * (s * scale[c]) + bias[c]);
            }
        }
    }
}

fn rows_portable(job: &Job, r0: usize, r1: usize) {
    let groups = job.groups();
    // SAFETY: the panel holds groups * PANEL * 4 bytes, each row `stride >= 4 * groups`.
    let w = unsafe { std::slice::from_raw_parts(job.panel(), groups * PANEL * 4) };
    for r in r0..r1 {
        let a = unsafe { std::slice::from_raw_parts(job.row(r), groups * 4) };
        let mut acc = [[0i32; PANEL]; 1];
        for g in 0..groups {
            let wg = &w[g * PANEL * 4..(g + 1) * PANEL * 4];
            for (c, sum) in acc[0].iter_mut().enumerate() {
                for j in 0..4 {
                    *sum += a[g * 4 + j] as i32 * wg[c * 4 + j] as i32;
                }
            }
        }
        // SAFETY: as `panel_rows`.
        unsafe { job.store::<1>(r, &acc) };
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::Job;
    use crate::PANEL;
    use std::arch::x86_64::*;

    /// Runs a micro-kernel over rows `r0..r1` in blocks of `$mr`, then smaller blocks.
    macro_rules! rows_fn {
        ($name:ident, $feat:literal, $micro:ident, [$($mr:literal),+]) => {
            #[target_feature(enable = $feat)]
            pub(super) unsafe fn $name(job: &Job, r0: usize, r1: usize) {
                let (w, groups, stride) = (job.panel(), job.groups(), job.rows.stride);
                let mut r = r0;
                $(
                    while r1 - r >= $mr {
                        let mut acc = [[0i32; PANEL]; $mr];
                        $micro::<$mr>(job.row(r), stride, w, groups, &mut acc);
                        job.store::<$mr>(r, &acc);
                        r += $mr;
                    }
                )+
            }
        };
    }

    rows_fn!(
        rows_avx512_vnni,
        "avx512f,avx512bw,avx512vnni",
        micro_avx512_vnni,
        [8, 4, 2, 1]
    );
    rows_fn!(rows_avx_vnni, "avx2,avxvnni", micro_avx_vnni, [4, 2, 1]);
    // 3 rows: the AVX2 step holds two groups' weights and rows, and 4 rows spilled.
    rows_fn!(rows_avx2, "avx2", micro_avx2, [3, 2, 1]);

    /// The four bytes of row `i` at group `g`, broadcast to every 32-bit lane.
    #[inline(always)]
    unsafe fn row_bytes(a: *const u8, stride: usize, i: usize, g: usize) -> i32 {
        (a.add(i * stride + g * 4) as *const i32).read_unaligned()
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    #[inline]
    unsafe fn micro_avx512_vnni<const MR: usize>(
        a: *const u8,
        stride: usize,
        w: *const i8,
        groups: usize,
        out: &mut [[i32; PANEL]; MR],
    ) {
        let mut acc = [[_mm512_setzero_si512(); 2]; MR];
        for g in 0..groups {
            let wp = w.add(g * PANEL * 4);
            let w0 = _mm512_loadu_si512(wp as *const _);
            let w1 = _mm512_loadu_si512(wp.add(64) as *const _);
            for (i, acc) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_epi32(row_bytes(a, stride, i, g));
                acc[0] = _mm512_dpbusd_epi32(acc[0], av, w0);
                acc[1] = _mm512_dpbusd_epi32(acc[1], av, w1);
            }
        }
        for (o, acc) in out.iter_mut().zip(&acc) {
            _mm512_storeu_si512(o.as_mut_ptr() as *mut _, acc[0]);
            _mm512_storeu_si512(o.as_mut_ptr().add(16) as *mut _, acc[1]);
        }
    }

    /// A 256-bit micro-kernel: the panel's 32 columns in two passes of 16 (two registers of
    /// 8 columns each per row), so `2 · MR` accumulators, the weight registers, the broadcast
    /// rows and the step's temporaries fit the 16 `ymm` registers without spilling (a
    /// 3-row × 32-column block spilled accumulators to the stack every step; docs/lab/2026-11-27-score-int8.md).
    /// `$step(acc, rows, weights)` adds `$g` consecutive groups of four `u8 × i8` products per
    /// lane into `acc` (`rows[j]` and `weights[j]` belong to group `g + j`).
    macro_rules! micro_256 {
        ($name:ident, $feat:literal, $g:literal, $step:expr) => {
            #[target_feature(enable = $feat)]
            #[inline]
            unsafe fn $name<const MR: usize>(
                a: *const u8,
                stride: usize,
                w: *const i8,
                groups: usize,
                out: &mut [[i32; PANEL]; MR],
            ) {
                let step = $step;
                debug_assert!(groups.is_multiple_of($g), "rows padded to whole steps");
                for half in 0..2 {
                    let mut acc = [[_mm256_setzero_si256(); 2]; MR];
                    let wh = w.add(64 * half);
                    for g in (0..groups).step_by($g) {
                        let load = |j: usize, v: usize| {
                            _mm256_loadu_si256(wh.add((g + j) * PANEL * 4 + 32 * v) as *const _)
                        };
                        let w0: [__m256i; $g] = std::array::from_fn(|j| load(j, 0));
                        let w1: [__m256i; $g] = std::array::from_fn(|j| load(j, 1));
                        for (i, acc) in acc.iter_mut().enumerate() {
                            let av: [__m256i; $g] = std::array::from_fn(|j| {
                                _mm256_set1_epi32(row_bytes(a, stride, i, g + j))
                            });
                            acc[0] = step(acc[0], av, w0);
                            acc[1] = step(acc[1], av, w1);
                        }
                    }
                    for (o, acc) in out.iter_mut().zip(&acc) {
                        for (v, a) in acc.iter().enumerate() {
                            let dst = o.as_mut_ptr().add(16 * half + 8 * v);
                            _mm256_storeu_si256(dst as *mut _, *a);
                        }
                    }
                }
            }
        };
    }

    micro_256!(
        micro_avx_vnni,
        "avx2,avxvnni",
        1,
        |acc, av: [__m256i; 1], w: [__m256i; 1]| _mm256_dpbusd_avx_epi32(acc, av[0], w[0])
    );

    // `vpmaddubsw` sums two `u8 × i8` products into a saturating `i16`. With `u8 ≤ 127` and
    // `|w| ≤ 63` (the crate docs), the pair sums of two groups still fit an `i16` (at most
    // `4 · 127 · 63 = 32004`), so they are added before one `vpmaddwd` with ones widens them
    // to `i32`: three multiplies per two groups, not four.
    micro_256!(
        micro_avx2,
        "avx2",
        2,
        |acc, av: [__m256i; 2], w: [__m256i; 2]| {
            let pairs = _mm256_add_epi16(
                _mm256_maddubs_epi16(av[0], w[0]),
                _mm256_maddubs_epi16(av[1], w[1]),
            );
            _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)))
        }
    );
}
