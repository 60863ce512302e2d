//! What the layers' CPU custom ops share: the element types they run on (f32 and f64), a
//! checked view of a contiguous storage, and a matrix product over strided slices.

use candle_core::{CpuStorage, Layout, Result};
use gemm::Parallelism;

/// The scalars the CPU ops run on (f32 and f64): candle's element operations, `sqrt` and
/// `exp`, and the storage variant that holds them.
pub(super) trait CpuFloat: candle_core::WithDType + std::ops::Neg<Output = Self> {
    fn slice(s: &CpuStorage) -> Option<&[Self]>;
    fn wrap(v: Vec<Self>) -> CpuStorage;
    fn sqrt(self) -> Self;
    fn exp(self) -> Self;
}

impl CpuFloat for f32 {
    fn sqrt(self) -> f32 {
        f32::sqrt(self)
    }
    fn exp(self) -> f32 {
        f32::exp(self)
    }
    fn slice(s: &CpuStorage) -> Option<&[f32]> {
        match s {
            CpuStorage::F32(v) => Some(v),
            _ => None,
        }
    }
    fn wrap(v: Vec<f32>) -> CpuStorage {
        CpuStorage::F32(v)
    }
}

impl CpuFloat for f64 {
    fn sqrt(self) -> f64 {
        f64::sqrt(self)
    }
    fn exp(self) -> f64 {
        f64::exp(self)
    }
    fn slice(s: &CpuStorage) -> Option<&[f64]> {
        match s {
            CpuStorage::F64(v) => Some(v),
            _ => None,
        }
    }
    fn wrap(v: Vec<f64>) -> CpuStorage {
        CpuStorage::F64(v)
    }
}

/// The `n` elements of a contiguous storage `s` with layout `l`, as a slice of `T`; an error for
/// another dtype, a strided layout or another length.
pub(super) fn contiguous_slice<'a, T: CpuFloat>(
    s: &'a CpuStorage,
    l: &Layout,
    n: usize,
) -> Result<&'a [T]> {
    let Some(v) = T::slice(s) else {
        candle_core::bail!("conv2d: unexpected dtype")
    };
    match l.contiguous_offsets() {
        Some((a, b)) if b - a == n => Ok(&v[a..b]),
        _ => candle_core::bail!("conv2d: expected a contiguous tensor of {n} elements"),
    }
}

/// `dst = (read_dst ? dst : 0) + a·b` for row-major `a` `(m, k)` and `b` `(k, n)` given by
/// their strides, `dst` `(m, n)` row-major: the convolution's products and the dense layer's
/// forward.
#[allow(clippy::too_many_arguments)]
pub(super) fn gemm_into<T: CpuFloat>(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [T],
    read_dst: bool,
    a: (&[T], isize, isize),
    b: (&[T], isize, isize),
    par: Parallelism,
) {
    assert!(dst.len() >= m * n);
    let ((a, a_rs, a_cs), (b, b_rs, b_cs)) = (a, b);
    let last = |rows: usize, cols: usize, rs: isize, cs: isize| {
        (rows.saturating_sub(1) as isize * rs + cols.saturating_sub(1) as isize * cs) as usize
    };
    assert!(m * k == 0 || last(m, k, a_rs, a_cs) < a.len());
    assert!(k * n == 0 || last(k, n, b_rs, b_cs) < b.len());
    // SAFETY: the asserts above keep every element gemm touches inside the slices.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            read_dst,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
            T::one(),
            T::one(),
            false,
            false,
            false,
            par,
        )
    }
}
