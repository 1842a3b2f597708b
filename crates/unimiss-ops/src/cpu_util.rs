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
    fn exp(self) -> Self;
}

impl Float for f32 {
    fn exp(self) -> Self {
        f32::exp(self)
    }
}

impl Float for f64 {
    fn exp(self) -> Self {
        f64::exp(self)
    }
}
