// AdamW in place on the GPU: the CUDA twin of longtail-train's src/adamw_inplace.rs, three
// passes per parameter (first moment, second moment, parameter) with the CPU's arithmetic in
// the CPU's order. Every operation is an explicitly rounded intrinsic (no FMA contraction;
// IEEE division and square root), so the result equals the CPU path bit for bit.
#include <stdint.h>

#define GRID_STRIDE(i, n)                                                                    \
  for (uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);                \
       i += (uint64_t)gridDim.x * blockDim.x)

// m = (g - m) * w + m, w = 1 - beta1 (torch's exp_avg.lerp_(grad, 1 - beta1))
extern "C" __global__ void adamw_m_f32(float* m, const float* g, uint64_t n, float w) {
  GRID_STRIDE(i, n) { m[i] = __fadd_rn(__fmul_rn(__fsub_rn(g[i], m[i]), w), m[i]); }
}
extern "C" __global__ void adamw_m_f64(double* m, const double* g, uint64_t n, double w) {
  GRID_STRIDE(i, n) { m[i] = __dadd_rn(__dmul_rn(__dsub_rn(g[i], m[i]), w), m[i]); }
}

// v = v * beta2 + (g * w) * g, w = 1 - beta2
extern "C" __global__ void adamw_v_f32(float* v, const float* g, uint64_t n, float b2, float w) {
  GRID_STRIDE(i, n) { v[i] = __fadd_rn(__fmul_rn(v[i], b2), __fmul_rn(__fmul_rn(g[i], w), g[i])); }
}
extern "C" __global__ void adamw_v_f64(double* v, const double* g, uint64_t n, double b2,
                                       double w) {
  GRID_STRIDE(i, n) { v[i] = __dadd_rn(__dmul_rn(v[i], b2), __dmul_rn(__dmul_rn(g[i], w), g[i])); }
}

// p = p * decay + (m * step) / (sqrt(v) * inv_bc2 + eps), step = -lr / (1 - beta1^t)
extern "C" __global__ void adamw_p_f32(float* p, const float* m, const float* v, uint64_t n,
                                       float decay, float step, float inv_bc2, float eps) {
  GRID_STRIDE(i, n) {
    p[i] = __fadd_rn(__fmul_rn(p[i], decay),
                     __fdiv_rn(__fmul_rn(m[i], step),
                               __fadd_rn(__fmul_rn(__fsqrt_rn(v[i]), inv_bc2), eps)));
  }
}
extern "C" __global__ void adamw_p_f64(double* p, const double* m, const double* v, uint64_t n,
                                       double decay, double step, double inv_bc2, double eps) {
  GRID_STRIDE(i, n) {
    p[i] = __dadd_rn(__dmul_rn(p[i], decay),
                     __ddiv_rn(__dmul_rn(m[i], step),
                               __dadd_rn(__dmul_rn(__dsqrt_rn(v[i]), inv_bc2), eps)));
  }
}
