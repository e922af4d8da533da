//! `y = x W^T + b` as **one** candle op with a backward pass (CPU, f32/f64).
//!
//! Written with candle's own ops, a linear layer is a transpose, a matmul, a broadcast and an
//! add, and candle's backward gives each of those nodes a zero-filled gradient buffer plus an
//! add pass; the bias gradient then comes from candle's generic strided sum, which alone was 9%
//! of a MiniLM training step. Here the forward is a single GEMM into a buffer pre-filled with
//! the bias, and the backward is two GEMMs (`dx = g W`, `dW = g^T x`) plus a row-parallel
//! column sum for `db`. Inputs of any rank `(..., in)` are treated as `(n, in)` inside the op,
//! so no reshape nodes appear in the graph either. Equality with the composite form (values
//! and gradients) is tested below.

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp1, CustomOp3, Layout, Result, Shape, Tensor};
use gemm::Parallelism;
use rayon::prelude::*;

fn parallelism() -> Parallelism {
    match candle_core::utils::get_num_threads() {
        0 | 1 => Parallelism::None,
        n => Parallelism::Rayon(n),
    }
}

/// Row and column strides of a layout viewed as an `(n, last)` matrix, with its start offset.
/// Rank-2 inputs may have any strides (a transposed view is fine); higher ranks must be
/// contiguous so the leading dimensions merge into rows.
fn matrix_view(l: &Layout, what: &str) -> Result<(usize, usize, isize, isize, usize)> {
    let dims = l.dims();
    let cols = match dims.last() {
        Some(&c) => c,
        None => bail!("{what}: linear on a scalar"),
    };
    let rows = dims[..dims.len() - 1].iter().product::<usize>();
    if dims.len() == 2 {
        let st = l.stride();
        return Ok((rows, cols, st[0] as isize, st[1] as isize, l.start_offset()));
    }
    match l.contiguous_offsets() {
        Some((start, _)) => Ok((rows, cols, cols as isize, 1, start)),
        None => bail!("{what}: a rank-{} input must be contiguous", dims.len()),
    }
}

/// `dst (n, out) = x (n, in) . W^T + b`, W stored `(out, in)` with any strides; returns
/// `dst` and `out`.
fn linear_fwd<T: candle_core::WithDType>(
    x: &[T],
    xl: &Layout,
    w: &[T],
    wl: &Layout,
    b: &[T],
    bl: &Layout,
) -> Result<(Vec<T>, usize)> {
    let (n, k, x_rs, x_cs, x_off) = matrix_view(xl, "linear input")?;
    let wd = wl.dims();
    if wd.len() != 2 || wd[1] != k {
        bail!("linear: weight {wd:?} does not take inputs of width {k}")
    }
    let out = wd[0];
    let (w_rs, w_cs) = (wl.stride()[0] as isize, wl.stride()[1] as isize);
    let b = match bl.contiguous_offsets() {
        Some((s, e)) if bl.dims() == [out] => &b[s..e],
        _ => bail!("linear: bias {:?} is not a contiguous [{out}]", bl.dims()),
    };
    let mut dst: Vec<T> = Vec::with_capacity(n * out);
    for _ in 0..n {
        dst.extend_from_slice(b);
    }
    if n > 0 && out > 0 && k > 0 {
        // The strides come from candle's (unsigned) layouts; checked once per call.
        let last = |off: usize, rs: isize, cs: isize, rows: usize| {
            off + (rows - 1) * rs as usize + (k - 1) * cs as usize
        };
        assert!(
            last(x_off, x_rs, x_cs, n) < x.len()
                && last(wl.start_offset(), w_rs, w_cs, out) < w.len()
                && dst.len() == n * out,
            "linear: view out of bounds"
        );
        // SAFETY: every index gemm touches is inside the slices (asserted above): x spans
        // (n, k) with strides (x_rs, x_cs) from x_off, W^T spans (k, out) with strides
        // (w_cs, w_rs) from W's start, and dst is a contiguous (n, out) buffer.
        unsafe {
            gemm::gemm(
                n,
                out,
                k,
                dst.as_mut_ptr(),
                1,
                out as isize,
                true,
                x.as_ptr().add(x_off),
                x_cs,
                x_rs,
                w.as_ptr().add(wl.start_offset()),
                w_rs,
                w_cs,
                T::one(),
                T::one(),
                false,
                false,
                false,
                parallelism(),
            )
        }
    }
    Ok((dst, out))
}

struct Linear;

impl CustomOp3 for Linear {
    fn name(&self) -> &'static str {
        "longtail-linear"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let mut dims = l1.dims().to_vec();
        let (storage, out) = match (s1, s2, s3) {
            (CpuStorage::F32(x), CpuStorage::F32(w), CpuStorage::F32(b)) => {
                let (v, out) = linear_fwd(x, l1, w, l2, b, l3)?;
                (CpuStorage::F32(v), out)
            }
            (CpuStorage::F64(x), CpuStorage::F64(w), CpuStorage::F64(b)) => {
                let (v, out) = linear_fwd(x, l1, w, l2, b, l3)?;
                (CpuStorage::F64(v), out)
            }
            (s, _, _) => bail!(
                "{}: unsupported or mixed dtypes ({:?})",
                self.name(),
                s.dtype()
            ),
        };
        *dims.last_mut().expect("checked by matrix_view") = out;
        Ok((storage, Shape::from(dims)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let out = w.dim(0)?;
        let g = grad.reshape(((), out))?;
        let x2 = if x.rank() == 2 {
            x.clone()
        } else {
            x.reshape(((), w.dim(1)?))?
        };
        let dx = g.matmul(w)?.reshape(x.shape())?;
        let dw = g.t()?.matmul(&x2)?;
        let db = g.contiguous()?.apply_op1_no_bwd(&ColumnSum)?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

/// Sum over rows of an `(n, m)` matrix: partial sums per block of rows in parallel (each a
/// sequential, vectorisable pass over contiguous rows), then added up, accumulating in f64.
struct ColumnSum;

fn column_sum<T: candle_core::WithDType>(x: &[T], m: usize) -> Vec<T> {
    let rows = x.len() / m.max(1);
    let block = rows
        .div_ceil(rayon::current_num_threads().max(1) * 2)
        .max(16);
    let partial: Vec<Vec<f64>> = x
        .par_chunks(block * m)
        .map(|chunk| {
            let mut acc = vec![0f64; m];
            for row in chunk.chunks(m) {
                for (a, v) in acc.iter_mut().zip(row) {
                    *a += v.to_f64();
                }
            }
            acc
        })
        .collect();
    let mut total = vec![0f64; m];
    for p in &partial {
        for (t, v) in total.iter_mut().zip(p) {
            *t += v;
        }
    }
    total.into_iter().map(T::from_f64).collect()
}

impl CustomOp1 for ColumnSum {
    fn name(&self) -> &'static str {
        "longtail-column-sum"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let m = match l.dims().last() {
            Some(&m) if m > 0 => m,
            _ => bail!("column sum of an empty or scalar tensor"),
        };
        let Some((start, end)) = l.contiguous_offsets() else {
            bail!("column sum needs a contiguous input")
        };
        let storage = match s {
            CpuStorage::F32(v) => CpuStorage::F32(column_sum(&v[start..end], m)),
            CpuStorage::F64(v) => CpuStorage::F64(column_sum(&v[start..end], m)),
            s => bail!("column sum: unsupported dtype {:?}", s.dtype()),
        };
        Ok((storage, Shape::from(m)))
    }
}

/// `x W^T + b` (CPU, f32/f64) with `x` `(..., in)`, `W` `(out, in)`, `b` `(out)`; one graph
/// node, differentiable in all three.
pub(crate) fn linear(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    let x = if x.rank() == 2 {
        x.clone()
    } else {
        x.contiguous()?
    };
    x.apply_op3(w, &b.contiguous()?, Linear)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{assert_same_grads, max_abs_diff};
    use candle_core::{DType, Device, Var};

    fn composite(x: &Tensor, w: &Tensor, b: &Tensor) -> Tensor {
        let in_dim = w.dim(1).unwrap();
        let mut out_dims = x.dims().to_vec();
        *out_dims.last_mut().unwrap() = w.dim(0).unwrap();
        x.reshape(((), in_dim))
            .and_then(|x| x.matmul(&w.t()?)?.broadcast_add(b)?.reshape(out_dims))
            .unwrap()
    }

    /// Values and all three gradients equal matmul + broadcast_add, for 2-D, 3-D and
    /// transposed (strided) inputs, in f64 and f32.
    #[test]
    fn linear_matches_the_composite_ops_values_and_gradients() {
        let dev = Device::Cpu;
        for dtype in [DType::F64, DType::F32] {
            let tol = if dtype == DType::F64 { 1e-12 } else { 1e-4 };
            let r = |d: &[usize]| {
                Tensor::randn(0f64, 1., d, &dev)
                    .unwrap()
                    .to_dtype(dtype)
                    .unwrap()
            };
            let w = Var::from_tensor(&r(&[7, 5])).unwrap();
            let b = Var::from_tensor(&r(&[7])).unwrap();
            let x3 = Var::from_tensor(&r(&[3, 4, 5])).unwrap();
            let x2t = Var::from_tensor(&r(&[5, 6])).unwrap();
            let inputs: [(&Var, Tensor); 3] = [
                (&x3, x3.as_tensor().clone()),
                (&x3, x3.as_tensor().reshape((12, 5)).unwrap()),
                (&x2t, x2t.as_tensor().t().unwrap()),
            ];
            for (var, x) in inputs {
                let ours = linear(&x, w.as_tensor(), b.as_tensor()).unwrap();
                let theirs = composite(&x, w.as_tensor(), b.as_tensor());
                assert_eq!(ours.dims(), theirs.dims());
                assert!(max_abs_diff(&ours, &theirs) < tol, "forward {dtype:?}");
                let c = r(ours.dims());
                let what = format!("{dtype:?}");
                assert_same_grads(ours, theirs, &c, &[var, &w, &b], tol, &what);
            }
        }
    }

    #[test]
    fn column_sum_of_many_rows() {
        let x = Tensor::arange(0f32, 3000., &Device::Cpu)
            .unwrap()
            .reshape((1000, 3))
            .unwrap();
        let s = x
            .apply_op1_no_bwd(&ColumnSum)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let want: Vec<f32> = (0..3)
            .map(|c| (0..1000).map(|r| (r * 3 + c) as f32).sum())
            .collect();
        assert_eq!(s, want);
    }

    #[test]
    fn mismatched_weight_is_an_error() {
        let dev = Device::Cpu;
        let x = Tensor::zeros((2, 3), DType::F32, &dev).unwrap();
        let w = Tensor::zeros((4, 5), DType::F32, &dev).unwrap();
        let b = Tensor::zeros(4, DType::F32, &dev).unwrap();
        let e = linear(&x, &w, &b).unwrap_err().to_string();
        assert!(e.contains("width 3"), "{e}");
    }
}
