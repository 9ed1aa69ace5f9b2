//! Products of several input rows with a Q4_K or Q6_K matrix held in the
//! GGUF's own blocks, on x86-64 with AVX2.
//!
//! candle's `k_quants::matmul` calls a dot product per (row, column), which
//! unpacks a weight block again for every row; its tiled kernels unpack once
//! but need a repacked second copy of the matrix. Here each weight block is
//! unpacked into registers once and multiplied with up to [`ROWS`] input rows,
//! so a short prompt and a batch of decode rows run from the one copy the
//! model holds. The arithmetic is ggml's (activations quantized to Q8_K, 8-bit
//! products summed in 32-bit integers, one float scale per block), so results
//! match candle's kernels up to the order of float additions.
//!
//! A crate of its own so that it is optimised in test builds too: the
//! real-model tests run it, and unoptimised SIMD code is many times slower.

use candle_core::quantized::GgmlType;
use candle_core::quantized::k_quants::{BlockQ4K, BlockQ6K, BlockQ8K};

const QK_K: usize = 256;

/// Input rows multiplied with one unpacked weight block: 8 accumulators and
/// the unpacked block fill AVX2's 16 registers.
const ROWS: usize = 8;

/// Output columns a worker takes at a time.
const COLUMNS: usize = 8;

/// ggml's `block_q8_K`. candle keeps its blocks' fields to itself, so the
/// kernels read these mirrors of the same `repr(C)` layouts.
#[repr(C)]
struct Q8K {
    d: f32,
    qs: [i8; QK_K],
    bsums: [i16; QK_K / 16],
}

/// ggml's `block_q4_K`: 8 sub-blocks of 32 with 6-bit scales and mins.
#[repr(C)]
struct Q4K {
    d: half::f16,
    dmin: half::f16,
    scales: [u8; 12],
    qs: [u8; QK_K / 2],
}

/// ggml's `block_q6_K`: 16 groups of 16 with 8-bit scales.
#[repr(C)]
struct Q6K {
    ql: [u8; QK_K / 2],
    qh: [u8; QK_K / 4],
    scales: [i8; QK_K / 16],
    d: half::f16,
}

const _: () = {
    use std::mem::{align_of, size_of};
    assert!(size_of::<Q8K>() == size_of::<BlockQ8K>());
    assert!(align_of::<Q8K>() == align_of::<BlockQ8K>());
    assert!(size_of::<Q4K>() == size_of::<BlockQ4K>());
    assert!(align_of::<Q4K>() == align_of::<BlockQ4K>());
    assert!(size_of::<Q6K>() == size_of::<BlockQ6K>());
    assert!(align_of::<Q6K>() == align_of::<BlockQ6K>());
};

/// Whether this CPU runs the kernels; without them callers use candle's.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static AVX2: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *AVX2.get_or_init(|| {
            std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// `out = x · wᵀ` for `x` of `m × k` and a Q4_K matrix of `n × k`.
/// Returns false, leaving `out` alone, where [`available`] is false.
pub fn q4k(mkn: (usize, usize, usize), x: &[f32], w: &[BlockQ4K], out: &mut [f32]) -> bool {
    // SAFETY: `Q4K` mirrors `BlockQ4K` (checked above).
    unsafe { multiply::<_, Q4K>(mkn, x, w, out) }
}

/// `out = x · wᵀ` for a Q6_K matrix; see [`q4k`].
pub fn q6k(mkn: (usize, usize, usize), x: &[f32], w: &[BlockQ6K], out: &mut [f32]) -> bool {
    // SAFETY: `Q6K` mirrors `BlockQ6K` (checked above).
    unsafe { multiply::<_, Q6K>(mkn, x, w, out) }
}

/// # Safety
/// `B` has `T`'s layout, and any bytes are a value of either.
#[cfg(target_arch = "x86_64")]
unsafe fn multiply<T, B: avx2::Block + Sync>(
    mkn: (usize, usize, usize),
    x: &[f32],
    w: &[T],
    out: &mut [f32],
) -> bool {
    if !available() {
        return false;
    }
    let w = unsafe { std::slice::from_raw_parts(w.as_ptr().cast::<B>(), w.len()) };
    product(mkn, x, w, out);
    true
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn multiply<T, B>(_: (usize, usize, usize), _: &[f32], _: &[T], _: &mut [f32]) -> bool {
    false
}

/// Bytes of quantized input rows a pass over the matrix works on: small
/// enough to stay in a core's L2 while the columns stream past.
const PASS_BYTES: usize = 192 << 10;

/// Quantizes the rows of `x` to Q8_K once, then, for as many rows as fit in
/// [`PASS_BYTES`] at a time, hands groups of [`COLUMNS`] columns to candle's
/// thread pool; each group meets the rows [`ROWS`] at a time.
#[cfg(target_arch = "x86_64")]
fn product<B: avx2::Block + Sync>(
    (m, k, n): (usize, usize, usize),
    x: &[f32],
    w: &[B],
    out: &mut [f32],
) {
    let blocks = k / QK_K;
    assert!(
        k.is_multiple_of(QK_K)
            && blocks > 0
            && x.len() == m * k
            && w.len() == n * blocks
            && out.len() == m * n,
        "a ({m}, {k}) by ({n}, {k}) product given {} inputs, {} blocks, {} outputs",
        x.len(),
        w.len(),
        out.len()
    );
    let mut lhs = vec![BlockQ8K::zeros(); m * blocks];
    for (row, q) in x.chunks_exact(k).zip(lhs.chunks_exact_mut(blocks)) {
        BlockQ8K::from_float(row, q);
    }
    // SAFETY: `Q8K` mirrors `BlockQ8K` (checked above).
    let lhs = unsafe { std::slice::from_raw_parts(lhs.as_ptr().cast::<Q8K>(), lhs.len()) };
    let rows: Vec<&[Q8K]> = lhs.chunks_exact(blocks).collect();
    let per_pass = (PASS_BYTES / (blocks * std::mem::size_of::<Q8K>()) / ROWS).max(1) * ROWS;
    let dst = out.as_mut_ptr() as usize;
    for (pass, rows) in rows.chunks(per_pass).enumerate() {
        candle_core::utils::barrier_pool().execute_chunked(n.div_ceil(COLUMNS), |groups| {
            let mut dots = [[0f32; ROWS]; COLUMNS];
            for group in groups {
                let first_col = group * COLUMNS;
                let cols = COLUMNS.min(n - first_col);
                let columns = &w[first_col * blocks..(first_col + cols) * blocks];
                for (tile, xs) in rows.chunks(ROWS).enumerate() {
                    // SAFETY: `available()`; a group of at most `COLUMNS`
                    // columns, each of `blocks` blocks as every row has.
                    unsafe { avx2::by_rows(columns, xs, &mut dots) };
                    let first_row = pass * per_pass + tile * ROWS;
                    for (c, dots) in dots[..cols].iter().enumerate() {
                        for (r, dot) in dots[..xs.len()].iter().enumerate() {
                            // SAFETY: `out` is `m × n` (asserted above) and
                            // outlives the pool's call; each column belongs
                            // to one group, so no two workers write one
                            // element.
                            unsafe {
                                *(dst as *mut f32).add((first_row + r) * n + first_col + c) = *dot
                            };
                        }
                    }
                }
            }
        });
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{COLUMNS, Q4K, Q6K, Q8K, QK_K, ROWS};
    use std::arch::x86_64::*;

    /// A weight block type and its product with one block of each of `R`
    /// quantized rows, added to one float accumulator per row.
    pub(super) trait Block: Sized {
        /// # Safety
        /// The CPU has AVX2 and FMA.
        unsafe fn dot<const R: usize>(&self, ys: &[&Q8K; R], acc: &mut [__m256; R]);
    }

    impl Block for Q4K {
        #[inline(always)]
        unsafe fn dot<const R: usize>(&self, ys: &[&Q8K; R], acc: &mut [__m256; R]) {
            unsafe { q4k_dot(self, ys, acc) }
        }
    }

    impl Block for Q6K {
        #[inline(always)]
        unsafe fn dot<const R: usize>(&self, ys: &[&Q8K; R], acc: &mut [__m256; R]) {
            unsafe { q6k_dot(self, ys, acc) }
        }
    }

    /// `out[c][r]`, the dot product of column `c` of `columns` (at most
    /// [`COLUMNS`] columns, their blocks column after column) with row `r`
    /// of `xs` (1 to [`ROWS`] rows). Dispatches on the number of rows so
    /// each block product's integer sums are a fixed-size array the
    /// compiler keeps in registers.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA; every column has as many blocks as each
    /// row.
    pub(super) unsafe fn by_rows<B: Block>(
        columns: &[B],
        xs: &[&[Q8K]],
        out: &mut [[f32; ROWS]; COLUMNS],
    ) {
        unsafe {
            match xs.len() {
                1 => rows::<B, 1>(columns, xs, out),
                2 => rows::<B, 2>(columns, xs, out),
                3 => rows::<B, 3>(columns, xs, out),
                4 => rows::<B, 4>(columns, xs, out),
                5 => rows::<B, 5>(columns, xs, out),
                6 => rows::<B, 6>(columns, xs, out),
                7 => rows::<B, 7>(columns, xs, out),
                _ => rows::<B, ROWS>(columns, xs, out),
            }
        }
    }

    /// Bytes of the rows' blocks that L1 holds besides a column's blocks.
    const L1_ROWS: usize = 24 << 10;

    /// Blocks ahead of the one in use that a column's next reads are
    /// fetched from: read a block at a time each in turn, the columns of a
    /// group make a pattern the hardware's stride prefetchers miss.
    const AHEAD: usize = 4;

    /// A group of columns against `R` rows, in one of two orders:
    /// - a batch of a few decode rows that fits in L1 stays there while
    ///   each column is read straight through, which the hardware
    ///   prefetches well: such a product is mostly bound by reading the
    ///   weights from memory;
    /// - otherwise (the full tiles of a prompt, long rows) a block at a
    ///   time: one block of each row stays in L1 while every column of the
    ///   group passes it, and the group's columns (a few tens of KB) stay
    ///   in L2 for the next tile. Measured on the 1.5B model, each order
    ///   was the faster one for its case.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn rows<B: Block, const R: usize>(
        columns: &[B],
        xs: &[&[Q8K]],
        out: &mut [[f32; ROWS]; COLUMNS],
    ) {
        let blocks = xs[0].len();
        let cols = columns.len() / blocks;
        let mut acc = [[_mm256_setzero_ps(); R]; COLUMNS];
        let at = |r: usize, b: usize| unsafe { xs.get_unchecked(r).get_unchecked(b) };
        if R < ROWS && R * blocks * std::mem::size_of::<Q8K>() <= L1_ROWS {
            for (c, acc) in acc[..cols].iter_mut().enumerate() {
                for b in 0..blocks {
                    let ys: [&Q8K; R] = std::array::from_fn(|r| at(r, b));
                    unsafe { columns.get_unchecked(c * blocks + b).dot(&ys, acc) };
                }
            }
        } else {
            for b in 0..blocks {
                let ys: [&Q8K; R] = std::array::from_fn(|r| at(r, b));
                for (c, acc) in acc[..cols].iter_mut().enumerate() {
                    prefetch(columns.as_ptr().wrapping_add(c * blocks + b + AHEAD));
                    unsafe { columns.get_unchecked(c * blocks + b).dot(&ys, acc) };
                }
            }
        }
        for (out, acc) in out.iter_mut().zip(&acc[..cols]) {
            for r in 0..R {
                out[r] = hsum(acc[r]);
            }
        }
    }

    /// Asks for the cache lines of the block at `p`. A prefetch never
    /// faults, so `p` may lie past the end of the matrix.
    #[target_feature(enable = "avx2,fma")]
    fn prefetch<B>(p: *const B) {
        let p = p.cast::<i8>();
        let size = std::mem::size_of::<B>();
        for line in (0..size).step_by(64).chain([size - 1]) {
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(line));
        }
    }

    /// The 8 six-bit scales and mins of a Q4_K block (ggml's `get_scale_min_k4`).
    fn scales_mins(s: &[u8; 12]) -> ([u8; 8], [u8; 8]) {
        let (mut sc, mut mn) = ([0u8; 8], [0u8; 8]);
        for j in 0..4 {
            sc[j] = s[j] & 63;
            mn[j] = s[j + 4] & 63;
            sc[j + 4] = (s[j + 8] & 0xF) | ((s[j] >> 6) << 4);
            mn[j + 4] = (s[j + 8] >> 4) | ((s[j + 4] >> 6) << 4);
        }
        (sc, mn)
    }

    #[target_feature(enable = "avx2,fma")]
    fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn load(p: *const i8) -> __m256i {
        unsafe { _mm256_loadu_si256(p.cast()) }
    }

    /// `d·dy·Σ scale·(q·y) − dmin·dy·Σ min·(Σ y)` for each row: the 4-bit
    /// weights are unpacked once per 64 values for all the rows.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn q4k_dot<const R: usize>(x: &Q4K, ys: &[&Q8K; R], acc: &mut [__m256; R]) {
        let nibble = _mm256_set1_epi8(0xF);
        let (sc, mn) = scales_mins(&x.scales);
        let mut sumi = [_mm256_setzero_si256(); R];
        for j in 0..QK_K / 64 {
            let bits = unsafe { load(x.qs.as_ptr().add(32 * j).cast()) };
            let lo = _mm256_and_si256(bits, nibble);
            let hi = _mm256_and_si256(_mm256_srli_epi16(bits, 4), nibble);
            let s_lo = _mm256_set1_epi16(i16::from(sc[2 * j]));
            let s_hi = _mm256_set1_epi16(i16::from(sc[2 * j + 1]));
            for r in 0..R {
                let y = ys[r].qs.as_ptr();
                let (y_lo, y_hi) = unsafe { (load(y.add(64 * j)), load(y.add(64 * j + 32))) };
                let p_lo = _mm256_madd_epi16(s_lo, _mm256_maddubs_epi16(lo, y_lo));
                let p_hi = _mm256_madd_epi16(s_hi, _mm256_maddubs_epi16(hi, y_hi));
                sumi[r] = _mm256_add_epi32(sumi[r], _mm256_add_epi32(p_lo, p_hi));
            }
        }
        let (d, dmin) = (x.d.to_f32(), x.dmin.to_f32());
        let mins = _mm_cvtepu8_epi16(unsafe { _mm_loadl_epi64(mn.as_ptr().cast()) });
        for r in 0..R {
            // The row's sums of y over the 8 sub-blocks of 32, from its sums of 16.
            let bsums = unsafe { load(ys[r].bsums.as_ptr().cast()) };
            let sums = _mm_hadd_epi16(
                _mm256_castsi256_si128(bsums),
                _mm256_extracti128_si256(bsums, 1),
            );
            let m = _mm256_zextps128_ps256(_mm_cvtepi32_ps(_mm_madd_epi16(mins, sums)));
            let dy = ys[r].d;
            acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d * dy), _mm256_cvtepi32_ps(sumi[r]), acc[r]);
            acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(-dmin * dy), m, acc[r]);
        }
    }

    /// `d·dy·Σ scale·(q − 32)·y` for each row: the 6-bit weights are
    /// unpacked once per 128 values for all the rows, and the −32 is taken
    /// off once per block through the row's sums of 16 (`32·Σ scale·bsum`).
    #[target_feature(enable = "avx2,fma")]
    unsafe fn q6k_dot<const R: usize>(x: &Q6K, ys: &[&Q8K; R], acc: &mut [__m256; R]) {
        let nibble = _mm256_set1_epi8(0xF);
        let two_bits = _mm256_set1_epi8(3);
        let bits_4_5 = _mm256_set1_epi8(0x30);
        let mut sumi = [_mm256_setzero_si256(); R];
        for h in 0..QK_K / 128 {
            let (l0, l1, hb) = unsafe {
                (
                    load(x.ql.as_ptr().add(64 * h).cast()),
                    load(x.ql.as_ptr().add(64 * h + 32).cast()),
                    load(x.qh.as_ptr().add(32 * h).cast()),
                )
            };
            // Bits 4-5 of each weight, from the four 2-bit fields of `qh`.
            let h0 = _mm256_slli_epi16(_mm256_and_si256(hb, two_bits), 4);
            let h1 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2), two_bits), 4);
            let h2 = _mm256_and_si256(hb, bits_4_5);
            let h3 = _mm256_and_si256(_mm256_srli_epi16(hb, 2), bits_4_5);
            let q = [
                _mm256_or_si256(_mm256_and_si256(l0, nibble), h0),
                _mm256_or_si256(_mm256_and_si256(l1, nibble), h1),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), nibble), h2),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), nibble), h3),
            ];
            for (i, q) in q.iter().enumerate() {
                let g = 8 * h + 2 * i;
                let s = _mm256_setr_m128i(
                    _mm_set1_epi16(i16::from(x.scales[g])),
                    _mm_set1_epi16(i16::from(x.scales[g + 1])),
                );
                for r in 0..R {
                    let y = unsafe { load(ys[r].qs.as_ptr().add(128 * h + 32 * i)) };
                    let p = _mm256_madd_epi16(s, _mm256_maddubs_epi16(*q, y));
                    sumi[r] = _mm256_add_epi32(sumi[r], p);
                }
            }
        }
        let d = x.d.to_f32();
        let scales = _mm256_cvtepi8_epi16(unsafe { _mm_loadu_si128(x.scales.as_ptr().cast()) });
        for r in 0..R {
            let bsums = unsafe { load(ys[r].bsums.as_ptr().cast()) };
            let offset = _mm256_slli_epi32(_mm256_madd_epi16(scales, bsums), 5);
            let sum = _mm256_sub_epi32(sumi[r], offset);
            acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d * ys[r].d), _mm256_cvtepi32_ps(sum), acc[r]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::k_quants::matmul;
    use candle_core::{Device, Tensor};

    /// The kernels do ggml's integer arithmetic, as candle's dot products
    /// do, so the two agree to float rounding: for every number of rows up
    /// to two tiles and one more, column counts that leave a partial group,
    /// rows long enough to need several passes, and both block types.
    #[test]
    fn kernels_match_candles_dot_products() -> candle_core::Result<()> {
        if !available() {
            eprintln!("no AVX2 here: the kernels are not used");
            return Ok(());
        }
        for (n, k) in [(13, 768), (21, 72 * QK_K)] {
            let w = Tensor::randn(0f32, 1.0, (n, k), &Device::Cpu)?
                .flatten_all()?
                .to_vec1::<f32>()?;
            let mut q4 = vec![BlockQ4K::zeros(); n * k / QK_K];
            BlockQ4K::from_float(&w, &mut q4);
            let mut q6 = vec![BlockQ6K::zeros(); n * k / QK_K];
            BlockQ6K::from_float(&w, &mut q6);
            for m in (1..=2 * ROWS + 1).chain([40]) {
                let x = Tensor::randn(0f32, 1.0, (m, k), &Device::Cpu)?
                    .flatten_all()?
                    .to_vec1::<f32>()?;
                let check = |name: &str, got: &[f32], want: &[f32]| {
                    let scale = want.iter().fold(0f32, |a, v| a.max(v.abs()));
                    for (i, (g, w)) in got.iter().zip(want).enumerate() {
                        assert!(
                            (g - w).abs() <= scale * 1e-5,
                            "{name}, {m}x{k} by {n}x{k}, element {i}: {g} against candle's {w}"
                        );
                    }
                };
                let (mut got, mut want) = (vec![0f32; m * n], vec![0f32; m * n]);
                assert!(q4k((m, k, n), &x, &q4, &mut got));
                matmul((m, k, n), &x, &q4, &mut want)?;
                check("Q4_K", &got, &want);
                assert!(q6k((m, k, n), &x, &q6, &mut got));
                matmul((m, k, n), &x, &q6, &mut want)?;
                check("Q6_K", &got, &want);
            }
        }
        Ok(())
    }
}
