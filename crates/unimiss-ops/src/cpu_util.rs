//! Small helpers shared by the CPU kernels of the custom ops.

use candle::{CpuStorage, DType, Layout, Result, WithDType, bail};


/// The contiguous slice of `s` described by `l`.
pub(crate) fn slice<'a, T: WithDType>(op: &str, s: &'a CpuStorage, l: &Layout) -> Result<&'a [T]> {
    let Some((a, b)) = l.contiguous_offsets() else {
        bail!("{op}: internal error, the CPU kernel got a non-contiguous operand {:?}", l.shape())
    };
    Ok(&s.as_slice::<T>()?[a..b])
}

/// Fails unless every operand has the same floating dtype, f32 or f64.
pub(crate) fn float_dtype(op: &str, dtypes: &[DType]) -> Result<DType> {
    let first = dtypes[0];
    if dtypes.iter().any(|d| *d != first) {
        bail!("{op}: operands must share one dtype, got {dtypes:?}")
    }
    match first {
        DType::F32 | DType::F64 => Ok(first),
        d => bail!("{op}: the CPU kernel supports f32 and f64, got {d:?}"),
    }
}

/// The float operations the CPU kernels need beyond [`WithDType`].
pub(crate) trait Float: WithDType {
    /// `exp(self)`; in f32 a branch-free polynomial that the compiler vectorises (relative
    /// error below 2e-7 for arguments in [-87, 88], 0 below about -87.3).
    fn exp(self) -> Self;
}

impl Float for f32 {
    #[inline(always)]
    fn exp(self) -> Self {
        // Cephes expf: exp(x) = 2^n exp(r), n = round(x / ln 2), |r| <= ln 2 / 2.
        const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer
        let x = self.clamp(-87.3, 88.3);
        let n = (x * std::f32::consts::LOG2_E + ROUND) - ROUND;
        let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
        let mut p = 1.987_569_1e-4f32;
        p = p * r + 1.398_199_9e-3;
        p = p * r + 8.333_452e-3;
        p = p * r + 4.166_579_6e-2;
        p = p * r + 1.666_666_5e-1;
        p = p * r + 5.000_000_1e-1;
        let e = p * r * r + r + 1.0;
        let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
        if self < -87.3 { 0.0 } else { e * scale }
    }
}

impl Float for f64 {
    fn exp(self) -> Self {
        f64::exp(self)
    }
}

/// Element types the GEMM-based kernels (convolution, linear) run on.
pub(crate) trait Elem: candle::WithDType + std::ops::AddAssign {
    const ZERO: Self;
    const ONE: Self;
}

impl Elem for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
}

impl Elem for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
}

/// A read-only matrix view: element `(i, j)` is `data[i * rs + j * cs]`.
pub(crate) struct Mat<'a, T> {
    pub data: &'a [T],
    pub rs: usize,
    pub cs: usize,
}

/// `dst[m x n]` (row stride `n`) = `(acc ? dst : 0) + a[m x k] * b[k x n]`, on all threads when
/// `par` (one big product) or on the calling thread (inside a rayon task).
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm<T: Elem>(m: usize, n: usize, k: usize, dst: &mut [T], acc: bool, a: Mat<T>, b: Mat<T>, par: bool) -> Result<()> {
    gemm_scaled(m, n, k, Dst { data: dst, rs: n }, acc, T::ONE, a, b, par)
}

/// A mutable matrix view with unit column stride: element `(i, j)` is `data[i * rs + j]`.
pub(crate) struct Dst<'a, T> {
    pub data: &'a mut [T],
    pub rs: usize,
}

/// `dst[m x n] = (acc ? dst : 0) + scale · a[m x k] * b[k x n]`, `dst` with any row stride (a
/// column block of a wider matrix); threads as [`gemm`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_scaled<T: Elem>(m: usize, n: usize, k: usize, dst: Dst<T>, acc: bool, scale: T, a: Mat<T>, b: Mat<T>, par: bool) -> Result<()> {
    if m == 0 || n == 0 {
        return Ok(());
    }
    let fits = |mat: &Mat<T>, rows: usize, cols: usize| (rows - 1) * mat.rs + (cols - 1) * mat.cs < mat.data.len();
    if k == 0 || dst.rs < n || dst.data.len() < (m - 1) * dst.rs + n || !fits(&a, m, k) || !fits(&b, k, n) {
        bail!("gemm: buffers too small for {m}x{k} * {k}x{n}")
    }
    let threads = candle::utils::get_num_threads();
    let par = if par && threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    // SAFETY: every index the kernel touches, (i * rs + j * cs) for i < rows and j < cols, was
    // checked against the slice lengths above; dst is exclusively borrowed and does not alias a or b.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.data.as_mut_ptr(),
            1,
            dst.rs as isize,
            acc,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            T::ONE,
            scale,
            false,
            false,
            false,
            par,
        );
    }
    Ok(())
}
