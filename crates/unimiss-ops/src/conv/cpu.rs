//! CPU convolution engine: vol2col + GEMM, chunked over output rows so that the column buffer
//! stays bounded, rayon-parallel in the gathers and in the GEMM.
//!
//! A "unit" is one output row `(n, od, oh)` of `out[2]` positions; a chunk is a run of units,
//! possibly spanning samples, so that small late-stage maps still give wide GEMMs. The three
//! entry points are the forward convolution, its input gradient (which is also the transposed
//! convolution) and its weight gradient.

use std::sync::atomic::{AtomicUsize, Ordering};

use candle::Result;
use rayon::prelude::*;

use super::ConvGeom;
pub(crate) use crate::cpu_util::Elem;
use crate::cpu_util::{Mat, gemm};

/// Elements of the column buffer per chunk (default 64 MiB in f32).
static COL_BUDGET: AtomicUsize = AtomicUsize::new(1 << 24);

/// Sets the column-buffer budget in elements (at least one output row is always processed).
/// Results do not depend on it; tests lower it to exercise the chunking.
pub(crate) fn set_column_budget(elements: usize) {
    COL_BUDGET.store(elements.max(1), Ordering::Relaxed);
}

/// Column elements per chunk on the thread-parallel paths (1 MiB in f32).
const TILE: usize = 1 << 18;

/// Fixed number of parallel groups of chunks for the weight gradient (and the minimum number
/// of chunks): a fixed partition keeps its summation order, hence its result, deterministic.
const GROUPS: usize = 8;

/// Output positions `[lo, hi)` along one axis whose input index `o * s + off - p` lies in
/// `[0, len)`.
fn valid_range(off: usize, p: usize, s: usize, len: usize, n_out: usize) -> (usize, usize) {
    let lo = if off >= p { 0 } else { (p - off).div_ceil(s) };
    let hi = if len + p <= off { 0 } else { ((len - 1 + p - off) / s + 1).min(n_out) };
    (lo.min(n_out), hi.max(lo.min(n_out)))
}

/// Input index along an axis for output `o` and tap `k`, if inside the input.
fn input_index(g: &ConvGeom, axis: usize, o: usize, k: usize) -> Option<usize> {
    let i = (o * g.stride[axis] + k * g.dilation[axis]).checked_sub(g.padding[axis])?;
    (i < g.input[axis]).then_some(i)
}

/// Chunking of the output rows.
struct Chunks {
    total: usize,
    per: usize,
}

impl Chunks {
    fn new(g: &ConvGeom) -> Self {
        let total = g.n * g.out[0] * g.out[1];
        let per_unit = g.c * g.taps() * g.out[2];
        let budget = COL_BUDGET.load(Ordering::Relaxed);
        Chunks { total, per: (budget / per_unit.max(1)).clamp(1, total.max(1)) }
    }

    /// Chunks for the thread-parallel paths: about [`TILE`] column elements each (the column
    /// buffer stays in cache), within the budget, and enough chunks to keep the threads busy.
    fn tiles(g: &ConvGeom) -> Self {
        let total = g.n * g.out[0] * g.out[1];
        let per_unit = (g.c * g.taps() * g.out[2]).max(1);
        let budget = COL_BUDGET.load(Ordering::Relaxed).min(TILE);
        // At least `GROUPS` chunks (when there are enough rows), independent of the thread count
        // so that results are too.
        let per_group = total.div_ceil(GROUPS);
        Chunks { total, per: (budget / per_unit).min(per_group).clamp(1, total.max(1)) }
    }

    /// `(first unit, unit count)` of every chunk.
    fn iter(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        (0..self.total).step_by(self.per).map(|u0| (u0, self.per.min(self.total - u0)))
    }
}

/// Fills `col [c * taps, units * out[2]]` for the units `[u0, u0 + units)` (on the calling
/// thread: callers run one chunk per rayon task). Only the padding is zero-filled.
fn vol2col<T: Elem>(g: &ConvGeom, x: &[T], u0: usize, units: usize, col: &mut [T]) {
    let (wo, taps) = (g.out[2], g.taps());
    let lc = units * wo;
    let (kh, kw) = (g.kernel[1], g.kernel[2]);
    let plane = g.input[1] * g.input[2];
    col.chunks_mut(lc).enumerate().for_each(|(r, row)| {
        let (c, tap) = (r / taps, r % taps);
        let (tkd, tkh, tkw) = (tap / (kh * kw), (tap / kw) % kh, tap % kw);
        let off = tkw * g.dilation[2];
        let (lo, hi) = valid_range(off, g.padding[2], g.stride[2], g.input[2], wo);
        for (i, dst) in row.chunks_mut(wo).enumerate() {
            let u = u0 + i;
            let (n, od, oh) = (u / (g.out[0] * g.out[1]), (u / g.out[1]) % g.out[0], u % g.out[1]);
            let (Some(id), Some(ih)) = (input_index(g, 0, od, tkd), input_index(g, 1, oh, tkh)) else {
                dst.fill(T::ZERO);
                continue;
            };
            let base = ((n * g.c + c) * g.input[0] + id) * plane + ih * g.input[2];
            let src = &x[base..base + g.input[2]];
            dst[..lo].fill(T::ZERO);
            dst[hi..].fill(T::ZERO);
            let s = g.stride[2];
            if lo < hi {
                let first = lo * s + off - g.padding[2];
                if s == 1 {
                    dst[lo..hi].copy_from_slice(&src[first..first + hi - lo]);
                } else {
                    for (j, d) in dst[lo..hi].iter_mut().enumerate() {
                        *d = src[first + j * s];
                    }
                }
            }
        }
    });
}

/// Adds `col [c * taps, units * out[2]]` back into `gx [n, c, input]` (the adjoint of `vol2col`).
fn col2vol<T: Elem>(g: &ConvGeom, col: &[T], u0: usize, units: usize, gx: &mut [T]) {
    let (wo, taps) = (g.out[2], g.taps());
    let lc = units * wo;
    let (kh, kw) = (g.kernel[1], g.kernel[2]);
    let per_sample = g.out[0] * g.out[1];
    gx.par_chunks_mut(g.in_len()).enumerate().for_each(|(p, plane)| {
        let (n, c) = (p / g.c, p % g.c);
        let lo_u = u0.max(n * per_sample);
        let hi_u = (u0 + units).min((n + 1) * per_sample);
        if lo_u >= hi_u {
            return;
        }
        for tap in 0..taps {
            let (tkd, tkh, tkw) = (tap / (kh * kw), (tap / kw) % kh, tap % kw);
            let off = tkw * g.dilation[2];
            let (lo, hi) = valid_range(off, g.padding[2], g.stride[2], g.input[2], wo);
            if lo >= hi {
                continue;
            }
            let row = &col[(c * taps + tap) * lc..][..lc];
            for u in lo_u..hi_u {
                let (od, oh) = ((u / g.out[1]) % g.out[0], u % g.out[1]);
                let (Some(id), Some(ih)) = (input_index(g, 0, od, tkd), input_index(g, 1, oh, tkh)) else {
                    continue;
                };
                let src = &row[(u - u0) * wo..][..wo];
                let dst = &mut plane[(id * g.input[1] + ih) * g.input[2]..][..g.input[2]];
                let (s, first) = (g.stride[2], lo * g.stride[2] + off - g.padding[2]);
                for (j, v) in src[lo..hi].iter().enumerate() {
                    dst[first + j * s] += *v;
                }
            }
        }
    });
}

/// Runs of a chunk that lie in one sample: `(n, offset in the chunk, offset in the sample, len)`,
/// all in elements of one channel row.
fn segments(g: &ConvGeom, u0: usize, units: usize) -> Vec<(usize, usize, usize, usize)> {
    let (wo, per_sample) = (g.out[2], g.out[0] * g.out[1]);
    let mut out = Vec::new();
    let mut u = u0;
    while u < u0 + units {
        let n = u / per_sample;
        let end = ((n + 1) * per_sample).min(u0 + units);
        out.push((n, (u - u0) * wo, (u - n * per_sample) * wo, (end - u) * wo));
        u = end;
    }
    out
}

/// Copies the chunk's part of `y [n, o, out]` into `tmp [o, units * out[2]]`.
fn gather_chunk<T: Elem>(g: &ConvGeom, u0: usize, units: usize, y: &[T], tmp: &mut [T]) {
    let (lc, l) = (units * g.out[2], g.out_len());
    for (n, t0, y0, len) in segments(g, u0, units) {
        for o in 0..g.o {
            tmp[o * lc + t0..][..len].copy_from_slice(&y[(n * g.o + o) * l + y0..][..len]);
        }
    }
}

/// The output buffer shared by the rayon tasks of [`forward`]; each task writes only the
/// elements of its own output rows.
struct SharedOut<T>(*mut T, usize);

// SAFETY: the pointer is only written through `write`, at disjoint ranges per task.
unsafe impl<T: Send> Sync for SharedOut<T> {}

impl<T: Copy> SharedOut<T> {
    /// Copies `src` to `[at, at + src.len())`.
    ///
    /// # Safety
    /// No other task may read or write that range at the same time.
    unsafe fn write(&self, at: usize, src: &[T]) {
        assert!(at + src.len() <= self.1, "conv scatter out of bounds");
        // SAFETY: in bounds (checked above) and not aliased (caller's contract).
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.0.add(at), src.len()) }
    }

    /// The range `[at, at + len)` as a mutable slice.
    ///
    /// # Safety
    /// No other task may use that range while the slice lives.
    #[allow(clippy::mut_from_ref)]
    unsafe fn range_mut(&self, at: usize, len: usize) -> &mut [T] {
        assert!(at + len <= self.1, "conv scatter out of bounds");
        // SAFETY: in bounds (checked above), the allocation outlives every task, and the range
        // is not aliased (caller's contract).
        unsafe { std::slice::from_raw_parts_mut(self.0.add(at), len) }
    }
}

/// Whether distinct output rows `(n, od, oh)` read distinct input rows `(n, c, id, ih)`: the
/// kernel does not overlap itself along depth and height (e.g. kernel == stride, padding 0).
fn rows_disjoint(g: &ConvGeom) -> bool {
    (0..2).all(|a| g.stride[a] > g.dilation[a] * (g.kernel[a] - 1))
}

/// Adds `col [c * taps, units * out[2]]` into the input rows of the units `[u0, u0 + units)`,
/// on the calling thread. Requires [`rows_disjoint`]: then those rows belong to these units only.
fn col2vol_rows<T: Elem>(g: &ConvGeom, col: &[T], u0: usize, units: usize, gx: &SharedOut<T>) {
    let (wo, taps, lc) = (g.out[2], g.taps(), units * g.out[2]);
    let [kd, kh, kw] = g.kernel;
    for i in 0..units {
        let u = u0 + i;
        let (n, od, oh) = (u / (g.out[0] * g.out[1]), (u / g.out[1]) % g.out[0], u % g.out[1]);
        for c in 0..g.c {
            for tkd in 0..kd {
                let Some(id) = input_index(g, 0, od, tkd) else { continue };
                for tkh in 0..kh {
                    let Some(ih) = input_index(g, 1, oh, tkh) else { continue };
                    let at = (((n * g.c + c) * g.input[0] + id) * g.input[1] + ih) * g.input[2];
                    // SAFETY: with disjoint rows, input row (n, c, id, ih) is touched only by
                    // unit u, which only this task processes.
                    let dst = unsafe { gx.range_mut(at, g.input[2]) };
                    for tkw in 0..kw {
                        let tap = (tkd * kh + tkh) * kw + tkw;
                        let off = tkw * g.dilation[2];
                        let (lo, hi) = valid_range(off, g.padding[2], g.stride[2], g.input[2], wo);
                        if lo >= hi {
                            continue;
                        }
                        let src = &col[(c * taps + tap) * lc + i * wo..][lo..hi];
                        let (s, first) = (g.stride[2], lo * g.stride[2] + off - g.padding[2]);
                        for (j, v) in src.iter().enumerate() {
                            dst[first + j * s] += *v;
                        }
                    }
                }
            }
        }
    }
}

/// Runs `f(col [ck, lc], tmp [o, lc], u0, units, lc)` for every chunk of [`Chunks::tiles`], one
/// rayon task per chunk, with per-task buffers sized to the chunk.
fn for_each_tile<T: Elem>(
    g: &ConvGeom,
    ck: usize,
    f: impl Fn(&mut [T], &mut [T], usize, usize, usize) -> Result<()> + Sync,
) -> Result<()> {
    let list: Vec<(usize, usize)> = Chunks::tiles(g).iter().collect();
    list.par_iter().try_for_each_init(
        || (Vec::new(), Vec::new()),
        |(col, tmp): &mut (Vec<T>, Vec<T>), &(u0, units)| {
            let lc = units * g.out[2];
            col.resize(ck * lc, T::ZERO);
            tmp.resize(g.o * lc, T::ZERO);
            f(&mut col[..ck * lc], &mut tmp[..g.o * lc], u0, units, lc)
        },
    )
}

/// `y [n, o, out] = conv(x [n, c, input], w [o, c * taps])`: one rayon task per cache-sized
/// chunk of output rows (unfold, single-threaded GEMM, copy into `y`).
pub(crate) fn forward<T: Elem>(g: &ConvGeom, x: &[T], w: &[T]) -> Result<Vec<T>> {
    let ck = g.c * g.taps();
    let mut y = vec![T::ZERO; g.n * g.o * g.out_len()];
    let out = SharedOut(y.as_mut_ptr(), y.len());
    let l = g.out_len();
    for_each_tile(g, ck, |col, tmp, u0, units, lc| {
        vol2col(g, x, u0, units, col);
        gemm(g.o, lc, ck, tmp, false, Mat { data: w, rs: ck, cs: 1 }, Mat { data: col, rs: lc, cs: 1 }, false)?;
        for (n, t0, y0, len) in segments(g, u0, units) {
            for o in 0..g.o {
                // SAFETY: chunks are disjoint runs of output rows, so the ranges
                // `(n, o, y0..y0 + len)` of different tasks never overlap.
                unsafe { out.write((n * g.o + o) * l + y0, &tmp[o * lc + t0..][..len]) };
            }
        }
        Ok(())
    })?;
    Ok(y)
}

/// `gx [n, c, input]` from `gy [n, o, out]` and `w [o, c * taps]`: the input gradient of the
/// convolution, which is also the transposed convolution of `gy`.
pub(crate) fn grad_input<T: Elem>(g: &ConvGeom, gy: &[T], w: &[T]) -> Result<Vec<T>> {
    if rows_disjoint(g) {
        return grad_input_tiled(g, gy, w);
    }
    let ck = g.c * g.taps();
    let chunks = Chunks::new(g);
    let mut gx = vec![T::ZERO; g.n * g.c * g.in_len()];
    let mut col = vec![T::ZERO; ck * chunks.per * g.out[2]];
    let mut tmp = vec![T::ZERO; g.o * chunks.per * g.out[2]];
    for (u0, units) in chunks.iter() {
        let lc = units * g.out[2];
        gather_chunk(g, u0, units, gy, &mut tmp);
        gemm(ck, lc, g.o, &mut col, false, Mat { data: w, rs: 1, cs: ck }, Mat { data: &tmp, rs: lc, cs: 1 }, true)?;
        col2vol(g, &col[..ck * lc], u0, units, &mut gx);
    }
    Ok(gx)
}

/// [`grad_input`] when output rows own their input rows: one rayon task per cache-sized chunk
/// (gather, single-threaded GEMM, scatter-add into the chunk's own input rows).
fn grad_input_tiled<T: Elem>(g: &ConvGeom, gy: &[T], w: &[T]) -> Result<Vec<T>> {
    let ck = g.c * g.taps();
    let mut gx = vec![T::ZERO; g.n * g.c * g.in_len()];
    let out = SharedOut(gx.as_mut_ptr(), gx.len());
    for_each_tile(g, ck, |col, tmp, u0, units, lc| {
        gather_chunk(g, u0, units, gy, tmp);
        gemm(ck, lc, g.o, col, false, Mat { data: w, rs: 1, cs: ck }, Mat { data: tmp, rs: lc, cs: 1 }, false)?;
        col2vol_rows(g, col, u0, units, &out);
        Ok(())
    })?;
    Ok(gx)
}

/// `gw [o, c * taps]` from `x [n, c, input]` and `gy [n, o, out]`: one rayon task per
/// cache-sized chunk (unfold, single-threaded GEMM into a per-task sum), then a reduction.
pub(crate) fn grad_weight<T: Elem>(g: &ConvGeom, x: &[T], gy: &[T]) -> Result<Vec<T>> {
    let ck = g.c * g.taps();
    let size = g.o * ck;
    let list: Vec<(usize, usize)> = Chunks::tiles(g).iter().collect();
    // Contiguous groups of chunks, each summed in order by one task; then the groups in order.
    let per_group = list.len().div_ceil(GROUPS).max(1);
    let partials = list
        .par_chunks(per_group)
        .map(|group| {
            let (mut gw, mut col, mut tmp) = (vec![T::ZERO; size], Vec::new(), Vec::new());
            for &(u0, units) in group {
                let lc = units * g.out[2];
                col.resize(ck * lc, T::ZERO);
                tmp.resize(g.o * lc, T::ZERO);
                vol2col(g, x, u0, units, &mut col[..ck * lc]);
                gather_chunk(g, u0, units, gy, &mut tmp);
                let a = Mat { data: &tmp[..g.o * lc], rs: lc, cs: 1 };
                gemm(g.o, ck, lc, &mut gw, true, a, Mat { data: &col[..ck * lc], rs: 1, cs: lc }, false)?;
            }
            Ok(gw)
        })
        .collect::<Result<Vec<Vec<T>>>>()?;
    let mut parts = partials.into_iter();
    let mut gw = parts.next().unwrap_or_else(|| vec![T::ZERO; size]);
    for p in parts {
        gw.iter_mut().zip(&p).for_each(|(a, b)| *a += *b);
    }
    Ok(gw)
}
