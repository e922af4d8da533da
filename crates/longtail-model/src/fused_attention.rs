//! Scaled dot-product attention (scores, additive mask, softmax, dropout on the
//! probabilities, weighted sum of values) as **one** candle op with a backward pass (CPU,
//! f32/f64).
//!
//! Written with candle's ops, attention is ~15 graph nodes per layer (head split reshapes and
//! transposes, copies to make them contiguous, scaling, two batched matmuls, the mask's
//! broadcast add, softmax, dropout, the merge of heads), and candle's backward gives each a
//! zero-filled gradient buffer plus an add pass, the mask's included. Here queries, keys and
//! values stay in the linear layers' token-major `(b, s, hidden)` layout; each (sequence, head)
//! pair runs two small GEMMs on strided views. The backward recomputes the probabilities
//! (about 3% of a layer's FLOPs) instead of storing them, so the op holds no state beyond its
//! masks. Equality with the composite ops (values and gradients) is tested below.

use std::sync::Arc;

use candle_core::backend::BackendStorage;
use candle_core::{
    bail, CpuStorage, CustomOp3, DType, Layout, Result, Shape, Storage, Tensor, WithDType,
};
use gemm::{gemm, Parallelism};
use rayon::prelude::*;

use crate::fused::{softmax_row, softmax_row_bwd, Real};

/// Dropout on the attention probabilities: a keep flag per `(b, head, query, key)` entry and
/// the `1 / (1 - p)` scale of kept entries.
#[derive(Debug, Clone)]
pub(crate) struct ProbDropout {
    pub(crate) keep: Arc<Vec<bool>>,
    pub(crate) scale: f64,
}

#[derive(Debug, Clone)]
struct Attention {
    heads: usize,
    scale: f64,
    /// Additive key mask `(b, s)` (0 or a large negative number), if any.
    mask: Option<Arc<Vec<f64>>>,
    dropout: Option<ProbDropout>,
}

/// Sizes of one call: `b` sequences, `sq` query rows, `s` key rows, `hidden` = heads * d.
#[derive(Debug, Clone, Copy)]
struct Dims {
    b: usize,
    sq: usize,
    s: usize,
    hidden: usize,
    d: usize,
}

/// A strided matrix inside a slice: element `(i, j)` is `data[offset + i * rs + j * cs]`.
#[derive(Clone, Copy)]
struct View<'a, T> {
    data: &'a [T],
    offset: usize,
    rs: usize,
    cs: usize,
}

impl<'a, T> View<'a, T> {
    /// Rows of `data` `rs` apart, starting at column `offset` (a head's columns).
    fn rows(data: &'a [T], offset: usize, rs: usize) -> Self {
        Self {
            data,
            offset,
            rs,
            cs: 1,
        }
    }

    fn t(self) -> Self {
        Self {
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }

    /// Whether an `(m, n)` matrix from here stays inside `data`.
    fn fits(&self, m: usize, n: usize) -> bool {
        m == 0 || n == 0 || self.offset + (m - 1) * self.rs + (n - 1) * self.cs < self.data.len()
    }
}

/// `dst (m, n) = beta * lhs (m, k) . rhs (k, n)`, `dst` row-major with row stride `dst_rs`
/// from `dst_off`; single-threaded (callers parallelise over sequences).
fn small_gemm<T: WithDType>(
    (m, n, k): (usize, usize, usize),
    (dst, dst_off, dst_rs): (&mut [T], usize, usize),
    lhs: View<T>,
    rhs: View<T>,
    beta: T,
) {
    let dst_fits = m == 0 || n == 0 || dst_off + (m - 1) * dst_rs + n - 1 < dst.len();
    assert!(
        dst_fits && lhs.fits(m, k) && rhs.fits(k, n),
        "attention: view out of bounds"
    );
    // SAFETY: the three views were checked to lie inside their slices.
    unsafe {
        gemm(
            m,
            n,
            k,
            dst.as_mut_ptr().add(dst_off),
            1,
            dst_rs as isize,
            false,
            lhs.data.as_ptr().add(lhs.offset),
            lhs.cs as isize,
            lhs.rs as isize,
            rhs.data.as_ptr().add(rhs.offset),
            rhs.cs as isize,
            rhs.rs as isize,
            T::zero(),
            beta,
            false,
            false,
            false,
            Parallelism::None,
        )
    }
}

/// Dropout in place: kept entries times the scale, dropped ones 0.
fn apply_keep<T: Real>(v: &mut [T], (keep, scale): (&[bool], f64)) {
    let scale = T::from_f64(scale);
    for (x, &k) in v.iter_mut().zip(keep) {
        *x = if k { *x * scale } else { T::zero() };
    }
}

impl Attention {
    /// Probabilities `p (sq, s)` of sequence `bi`, head `hd` (before dropout).
    fn probs<T: Real>(&self, dims: Dims, q: &[T], k: &[T], bi: usize, hd: usize, p: &mut [T]) {
        let Dims {
            sq, s, hidden, d, ..
        } = dims;
        // p (sq, s) = scale * q_h (sq, d) . k_h^T (d, s); head hd is columns hd*d..(hd+1)*d.
        small_gemm(
            (sq, s, d),
            (p, 0, s),
            View::rows(q, hd * d, hidden),
            View::rows(k, hd * d, hidden).t(),
            T::from_f64(self.scale),
        );
        let mask = self.mask.as_ref().map(|m| &m[bi * s..(bi + 1) * s]);
        for row in p.chunks_mut(s) {
            if let Some(m) = mask {
                for (v, &a) in row.iter_mut().zip(m) {
                    *v += T::from_f64(a);
                }
            }
            softmax_row(row);
        }
    }

    /// Keep flags of `(bi, hd)`'s `(sq, s)` block, if dropout is on.
    fn keep(&self, dims: Dims, bi: usize, hd: usize) -> Option<(&[bool], f64)> {
        let n = dims.sq * dims.s;
        let start = (bi * (dims.hidden / dims.d) + hd) * n;
        self.dropout
            .as_ref()
            .map(|dr| (&dr.keep[start..start + n], dr.scale))
    }

    fn forward<T: Real>(&self, dims: Dims, q: &[T], k: &[T], v: &[T]) -> Vec<T> {
        let Dims {
            b,
            sq,
            s,
            hidden,
            d,
        } = dims;
        let mut out = vec![T::zero(); b * sq * hidden];
        out.par_chunks_mut(sq * hidden)
            .enumerate()
            .for_each(|(bi, out)| {
                let (q, k, v) = (
                    &q[bi * sq * hidden..(bi + 1) * sq * hidden],
                    &k[bi * s * hidden..(bi + 1) * s * hidden],
                    &v[bi * s * hidden..(bi + 1) * s * hidden],
                );
                let mut p = vec![T::zero(); sq * s];
                for hd in 0..self.heads {
                    self.probs(dims, q, k, bi, hd, &mut p);
                    if let Some(keep) = self.keep(dims, bi, hd) {
                        apply_keep(&mut p, keep);
                    }
                    // out_h (sq, d) = p (sq, s) . v_h (s, d)
                    small_gemm(
                        (sq, d, s),
                        (out, hd * d, hidden),
                        View::rows(&p, 0, s),
                        View::rows(v, hd * d, hidden),
                        T::one(),
                    );
                }
            });
        out
    }

    /// `[dq | dk | dv]` flattened, from the output gradient `g` `(b, sq, hidden)`.
    fn backward<T: Real>(&self, dims: Dims, q: &[T], k: &[T], v: &[T], g: &[T]) -> Vec<T> {
        let Dims {
            b,
            sq,
            s,
            hidden,
            d,
        } = dims;
        let mut out = vec![T::zero(); b * sq * hidden + 2 * b * s * hidden];
        let (dq, rest) = out.split_at_mut(b * sq * hidden);
        let (dk, dv) = rest.split_at_mut(b * s * hidden);
        let scale = T::from_f64(self.scale);
        dq.par_chunks_mut(sq * hidden)
            .zip(dk.par_chunks_mut(s * hidden))
            .zip(dv.par_chunks_mut(s * hidden))
            .enumerate()
            .for_each(|(bi, ((dq, dk), dv))| {
                let (q, k, v, g) = (
                    &q[bi * sq * hidden..(bi + 1) * sq * hidden],
                    &k[bi * s * hidden..(bi + 1) * s * hidden],
                    &v[bi * s * hidden..(bi + 1) * s * hidden],
                    &g[bi * sq * hidden..(bi + 1) * sq * hidden],
                );
                let mut p = vec![T::zero(); sq * s];
                let mut pd = vec![T::zero(); sq * s];
                let mut dp = vec![T::zero(); sq * s];
                for hd in 0..self.heads {
                    self.probs(dims, q, k, bi, hd, &mut p);
                    let keep = self.keep(dims, bi, hd);
                    pd.copy_from_slice(&p);
                    if let Some(keep) = keep {
                        apply_keep(&mut pd, keep);
                    }
                    // dv_h (s, d) = pd^T (s, sq) . g_h (sq, d)
                    small_gemm(
                        (s, d, sq),
                        (dv, hd * d, hidden),
                        View::rows(&pd, 0, s).t(),
                        View::rows(g, hd * d, hidden),
                        T::one(),
                    );
                    // dp (sq, s) = g_h (sq, d) . v_h^T (d, s)
                    small_gemm(
                        (sq, s, d),
                        (&mut dp, 0, s),
                        View::rows(g, hd * d, hidden),
                        View::rows(v, hd * d, hidden).t(),
                        T::one(),
                    );
                    // Through dropout, then softmax: ds = p * (dp - sum(dp * p)), in place.
                    if let Some(keep) = keep {
                        apply_keep(&mut dp, keep);
                    }
                    for (dr, pr) in dp.chunks_mut(s).zip(p.chunks(s)) {
                        softmax_row_bwd(dr, pr);
                    }
                    // dq_h (sq, d) = scale * ds (sq, s) . k_h (s, d)
                    small_gemm(
                        (sq, d, s),
                        (dq, hd * d, hidden),
                        View::rows(&dp, 0, s),
                        View::rows(k, hd * d, hidden),
                        scale,
                    );
                    // dk_h (s, d) = scale * ds^T (s, sq) . q_h (sq, d)
                    small_gemm(
                        (s, d, sq),
                        (dk, hd * d, hidden),
                        View::rows(&dp, 0, s).t(),
                        View::rows(q, hd * d, hidden),
                        scale,
                    );
                }
            });
        out
    }

    fn dims(&self, lq: &Layout, lk: &Layout, lv: &Layout) -> Result<Dims> {
        let (b, sq, hidden) = lq.shape().dims3()?;
        let (bk, s, hk) = lk.shape().dims3()?;
        if (bk, hk) != (b, hidden) || lv.dims() != lk.dims() {
            bail!(
                "attention: q {:?}, k {:?}, v {:?} do not fit",
                lq.dims(),
                lk.dims(),
                lv.dims()
            )
        }
        if self.heads == 0 || hidden % self.heads != 0 {
            bail!(
                "attention: hidden {hidden} is not a multiple of {} heads",
                self.heads
            )
        }
        if self.mask.as_ref().is_some_and(|m| m.len() != b * s) {
            bail!("attention: the mask does not cover ({b}, {s})")
        }
        if let Some(dr) = &self.dropout {
            if dr.keep.len() != b * self.heads * sq * s {
                bail!(
                    "attention: the dropout mask does not cover ({b}, {}, {sq}, {s})",
                    self.heads
                )
            }
        }
        Ok(Dims {
            b,
            sq,
            s,
            hidden,
            d: hidden / self.heads,
        })
    }
}

type StorageView<'a> = (&'a CpuStorage, &'a Layout);

impl Attention {
    /// The forward pass, or with the output gradient `g` the backward pass, on CPU storage.
    fn run_cpu(
        &self,
        dims: Dims,
        q: StorageView,
        k: StorageView,
        v: StorageView,
        g: Option<StorageView>,
    ) -> Result<CpuStorage> {
        fn part<'a, T: WithDType>((s, l): StorageView<'a>, what: &str) -> Result<&'a [T]> {
            let v = s.as_slice::<T>()?;
            match l.contiguous_offsets() {
                Some((a, b)) => Ok(&v[a..b]),
                None => bail!("attention: {what} must be contiguous"),
            }
        }
        fn run<T: Real>(
            a: &Attention,
            dims: Dims,
            (q, k, v): (StorageView, StorageView, StorageView),
            g: Option<StorageView>,
        ) -> Result<Vec<T>> {
            let (q, k, v) = (part(q, "q")?, part(k, "k")?, part(v, "v")?);
            Ok(match g {
                None => a.forward(dims, q, k, v),
                Some(g) => a.backward(dims, q, k, v, part(g, "the gradient")?),
            })
        }
        Ok(match q.0.dtype() {
            DType::F32 => CpuStorage::F32(run::<f32>(self, dims, (q, k, v), g)?),
            DType::F64 => CpuStorage::F64(run::<f64>(self, dims, (q, k, v), g)?),
            dt => bail!("longtail-attention: unsupported dtype {dt:?}"),
        })
    }
}

impl CustomOp3 for Attention {
    fn name(&self) -> &'static str {
        "longtail-attention"
    }

    fn cpu_fwd(
        &self,
        sq: &CpuStorage,
        lq: &Layout,
        sk: &CpuStorage,
        lk: &Layout,
        sv: &CpuStorage,
        lv: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let dims = self.dims(lq, lk, lv)?;
        let out = self.run_cpu(dims, (sq, lq), (sk, lk), (sv, lv), None)?;
        Ok((out, lq.shape().clone()))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let op = AttentionBwd {
            attention: self.clone(),
            grad: grad.contiguous()?,
        };
        let packed = q.apply_op3_no_bwd(k, v, &op)?;
        let (nq, nk) = (q.elem_count(), k.elem_count());
        let dq = packed.narrow(0, 0, nq)?.reshape(q.shape())?;
        let dk = packed.narrow(0, nq, nk)?.reshape(k.shape())?;
        let dv = packed.narrow(0, nq + nk, nk)?.reshape(v.shape())?;
        Ok((Some(dq), Some(dk), Some(dv)))
    }
}

/// The backward kernel; the output gradient rides in the struct (an op takes three inputs).
struct AttentionBwd {
    attention: Attention,
    grad: Tensor,
}

impl CustomOp3 for AttentionBwd {
    fn name(&self) -> &'static str {
        "longtail-attention-bwd"
    }

    fn cpu_fwd(
        &self,
        sq: &CpuStorage,
        lq: &Layout,
        sk: &CpuStorage,
        lk: &Layout,
        sv: &CpuStorage,
        lv: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let a = &self.attention;
        let dims = a.dims(lq, lk, lv)?;
        let (gs, gl) = self.grad.storage_and_layout();
        if gl.dims() != lq.dims() {
            bail!(
                "attention backward: gradient {:?} vs output {:?}",
                gl.dims(),
                lq.dims()
            )
        }
        let Storage::Cpu(gs) = &*gs else {
            bail!("attention backward: gradient not on the CPU")
        };
        let out = a.run_cpu(dims, (sq, lq), (sk, lk), (sv, lv), Some((gs, gl)))?;
        let n = dims.b * dims.hidden * (dims.sq + 2 * dims.s);
        Ok((out, Shape::from(n)))
    }
}

/// Multi-head attention of `q` `(b, sq, hidden)` over `k`, `v` `(b, s, hidden)` (CPU,
/// f32/f64): `softmax(q k^T * scale + mask) v` per head, with `dropout` applied to the
/// probabilities. `mask` is additive per key, `(b, s)` flattened. Returns `(b, sq, hidden)`.
pub(crate) fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    heads: usize,
    mask: Option<Arc<Vec<f64>>>,
    dropout: Option<ProbDropout>,
) -> Result<Tensor> {
    let scale = 1.0 / ((q.dim(2)? / heads.max(1)) as f64).sqrt();
    let op = Attention {
        heads,
        scale,
        mask,
        dropout,
    };
    q.contiguous()?
        .apply_op3(&k.contiguous()?, &v.contiguous()?, op)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{assert_same_grads, max_abs_diff};
    use candle_core::{DType, Device, Var, D};

    /// The same maths from candle's basic ops.
    fn composite(
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        heads: usize,
        mask: &[f64],
        keep: Option<(&[bool], f64)>,
    ) -> Tensor {
        let (b, sq, h) = q.dims3().unwrap();
        let s = k.dim(1).unwrap();
        let d = h / heads;
        let split = |t: &Tensor, rows: usize| {
            t.reshape((b, rows, heads, d))
                .unwrap()
                .transpose(1, 2)
                .unwrap()
                .contiguous()
                .unwrap()
        };
        let (qh, kh, vh) = (split(q, sq), split(k, s), split(v, s));
        let m = Tensor::from_slice(mask, (b, 1, 1, s), q.device())
            .unwrap()
            .to_dtype(q.dtype())
            .unwrap();
        let scores = (qh.matmul(&kh.t().unwrap()).unwrap() / (d as f64).sqrt())
            .unwrap()
            .broadcast_add(&m)
            .unwrap();
        let e = scores
            .broadcast_sub(&scores.max_keepdim(D::Minus1).unwrap().detach())
            .unwrap()
            .exp()
            .unwrap();
        let mut p = e.broadcast_div(&e.sum_keepdim(D::Minus1).unwrap()).unwrap();
        if let Some((keep, scale)) = keep {
            let km: Vec<f64> = keep.iter().map(|&k| if k { scale } else { 0. }).collect();
            let km = Tensor::from_vec(km, p.dims(), q.device())
                .unwrap()
                .to_dtype(q.dtype())
                .unwrap();
            p = (p * km).unwrap();
        }
        p.matmul(&vh)
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .reshape((b, sq, h))
            .unwrap()
    }

    /// Values and the gradients of q, k and v equal the composite ops, with a padding mask,
    /// with and without dropout, for full and single-row (CLS-only) queries, in f64 and f32.
    #[test]
    fn attention_matches_the_composite_ops_values_and_gradients() {
        let dev = Device::Cpu;
        let (b, s, heads, h) = (3, 5, 2, 8);
        // the last two keys of sequence 1 are padding
        let mut mask = vec![0f64; b * s];
        mask[s + 3] = f32::MIN as f64;
        mask[s + 4] = f32::MIN as f64;
        for dtype in [DType::F64, DType::F32] {
            let tol = if dtype == DType::F64 { 1e-12 } else { 2e-5 };
            let r = |d: &[usize]| {
                Tensor::randn(0f64, 1., d, &dev)
                    .unwrap()
                    .to_dtype(dtype)
                    .unwrap()
            };
            let x = Var::from_tensor(&r(&[b, s, h])).unwrap();
            let k = Var::from_tensor(&r(&[b, s, h])).unwrap();
            let v = Var::from_tensor(&r(&[b, s, h])).unwrap();
            for sq in [s, 1] {
                let q = x.as_tensor().narrow(1, 0, sq).unwrap();
                let keep: Vec<bool> = (0..b * heads * sq * s).map(|i| i % 3 != 1).collect();
                for dropout in [false, true] {
                    let drop = dropout.then(|| ProbDropout {
                        keep: Arc::new(keep.clone()),
                        scale: 1.5,
                    });
                    let ours = attention(
                        &q,
                        k.as_tensor(),
                        v.as_tensor(),
                        heads,
                        Some(Arc::new(mask.clone())),
                        drop,
                    )
                    .unwrap();
                    let theirs = composite(
                        &q,
                        k.as_tensor(),
                        v.as_tensor(),
                        heads,
                        &mask,
                        dropout.then_some((&keep[..], 1.5)),
                    );
                    assert_eq!(ours.dims(), [b, sq, h]);
                    let what = format!("{dtype:?} sq={sq} dropout={dropout}");
                    assert!(max_abs_diff(&ours, &theirs) < tol, "forward {what}");
                    let c = r(&[b, sq, h]);
                    assert_same_grads(ours, theirs, &c, &[&x, &k, &v], tol, &what);
                }
            }
        }
    }

    #[test]
    fn mismatched_masks_are_errors() {
        let dev = Device::Cpu;
        let t = Tensor::zeros((2, 3, 4), DType::F32, &dev).unwrap();
        let e = attention(&t, &t, &t, 2, Some(Arc::new(vec![0.; 5])), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("mask"), "{e}");
        let e = attention(&t, &t, &t, 3, None, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("multiple"), "{e}");
    }
}
