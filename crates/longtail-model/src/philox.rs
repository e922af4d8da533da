//! Philox4x32-10, the counter-based generator of Salmon et al., "Parallel random numbers: as
//! easy as 1, 2, 3" (SC 2011), as in Random123 and cuRAND.
//!
//! A counter-based generator is a keyed bijection: word `n` of a stream is computed from
//! `(key, stream, n)` alone, with no state to carry from word `n - 1`. That is what lets a
//! dropout mask be drawn by any number of threads (CPU chunks, CUDA threads) with the same
//! values, and be regenerated in backward instead of stored. The CUDA twin of [`block`] lives in
//! `kernels/philox_dropout.cu`; both follow the word layout documented on [`word_counter`].

use rayon::prelude::*;

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
/// Weyl increments of the key schedule (golden ratio, sqrt(3) - 1).
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

#[inline(always)]
fn mulhilo(a: u32, b: u32) -> (u32, u32) {
    let p = u64::from(a) * u64::from(b);
    ((p >> 32) as u32, p as u32)
}

/// One block: the four output words of counter `ctr` under `key` (10 rounds).
#[inline(always)]
pub fn block(mut ctr: [u32; 4], mut key: [u32; 2]) -> [u32; 4] {
    for round in 0..10 {
        if round > 0 {
            key[0] = key[0].wrapping_add(W0);
            key[1] = key[1].wrapping_add(W1);
        }
        let (hi0, lo0) = mulhilo(M0, ctr[0]);
        let (hi1, lo1) = mulhilo(M1, ctr[2]);
        ctr = [hi1 ^ ctr[1] ^ key[0], lo1, hi0 ^ ctr[3] ^ key[1], lo0];
    }
    ctr
}

/// The key of a 64-bit seed: low word first.
pub fn key_of(seed: u64) -> [u32; 2] {
    [seed as u32, (seed >> 32) as u32]
}

/// The counter of block `word / 4` of `stream`: `[block lo, block hi, stream lo, stream hi]`.
/// Word `n` of a stream is lane `n % 4` of that block.
#[inline(always)]
pub fn word_counter(stream: u64, word: u64) -> [u32; 4] {
    let b = word / 4;
    [
        b as u32,
        (b >> 32) as u32,
        stream as u32,
        (stream >> 32) as u32,
    ]
}

/// Words `start ..` of `stream` into `out`.
pub fn fill(key: [u32; 2], stream: u64, start: u64, out: &mut [u32]) {
    let mut w = start;
    let mut i = 0;
    while i < out.len() {
        let words = block(word_counter(stream, w), key);
        let lane = (w % 4) as usize;
        let take = (4 - lane).min(out.len() - i);
        out[i..i + take].copy_from_slice(&words[lane..lane + take]);
        i += take;
        w += take as u64;
    }
}

/// Words of one parallel task (a multiple of 4, so tasks start on block boundaries when
/// `start` does).
pub const CHUNK: usize = 1 << 15;

/// [`fill`], split over the rayon pool; the values do not depend on the split.
pub fn fill_parallel(key: [u32; 2], stream: u64, start: u64, out: &mut [u32]) {
    if out.len() <= CHUNK {
        return fill(key, stream, start, out);
    }
    out.par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(i, c)| fill(key, stream, start + (i * CHUNK) as u64, c));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random123's known-answer vectors (`kat_vectors`, the three philox4x32 10 lines):
    /// counter, key, expected output.
    #[test]
    fn known_answers_of_random123() {
        let kat: [([u32; 4], [u32; 2], [u32; 4]); 3] = [
            (
                [0, 0, 0, 0],
                [0, 0],
                [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8],
            ),
            (
                [u32::MAX; 4],
                [u32::MAX; 2],
                [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd],
            ),
            (
                [0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344],
                [0xa409_3822, 0x299f_31d0],
                [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1],
            ),
        ];
        for (ctr, key, want) in kat {
            assert_eq!(block(ctr, key), want, "ctr {ctr:08x?} key {key:08x?}");
        }
    }

    /// Any start and length read the same words as one fill from 0; the parallel fill is the
    /// sequential one.
    #[test]
    fn words_do_not_depend_on_how_they_are_drawn() {
        let key = key_of(0x0123_4567_89ab_cdef);
        let n = 3 * CHUNK + 11;
        let mut all = vec![0u32; n + 8];
        fill(key, 5, 0, &mut all);
        for (start, len) in [(0, 1), (1, 6), (3, 9), (7, 2 * CHUNK + 5), (0, n)] {
            let mut part = vec![0u32; len];
            fill(key, 5, start as u64, &mut part);
            assert_eq!(part, all[start..start + len], "start {start} len {len}");
            let mut par = vec![0u32; len];
            fill_parallel(key, 5, start as u64, &mut par);
            assert_eq!(par, part, "parallel, start {start} len {len}");
        }
        // Streams and keys are independent: another stream or seed gives other words.
        let mut other = vec![0u32; 64];
        fill(key, 6, 0, &mut other);
        assert_ne!(other, all[..64]);
        fill(key_of(1), 5, 0, &mut other);
        assert_ne!(other, all[..64]);
    }

    /// Uniform enough for dropout: each of 16 bins of 2^20 words within 1% of its share.
    #[test]
    fn words_are_uniform() {
        let mut w = vec![0u32; 1 << 20];
        fill_parallel(key_of(42), 0, 0, &mut w);
        let mut bins = [0usize; 16];
        for v in &w {
            bins[(v >> 28) as usize] += 1;
        }
        let share = w.len() / 16;
        for (i, b) in bins.iter().enumerate() {
            let dev = (*b as f64 - share as f64).abs() / share as f64;
            assert!(dev < 0.01, "bin {i}: {b} against {share}");
        }
    }
}
