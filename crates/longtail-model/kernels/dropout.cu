// Dropout with Philox4x32-10 masks on the GPU: the CUDA twin of src/philox.rs (the generator)
// and src/fused/philox_dropout.rs (the product). Element i of a mask is kept iff word
// start + i of stream `stream` under key (key0, key1) is >= threshold; word n is lane n % 4 of
// block n / 4, whose counter is [block lo, block hi, stream lo, stream hi]. `start` is a
// multiple of 4, so one thread draws one block for four neighbouring elements. The same words
// as the CPU, so the same mask bit for bit; backward launches the same kernel on the gradient.
// Built ahead of time (build.rs: nvcc --fatbin for sm_80 and sm_90 plus PTX), never at run time.
#include <cuda_bf16.h>
#include <stdint.h>

__device__ __forceinline__ uint4 philox4x32_10(uint4 c, uint2 k) {
#pragma unroll
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k.x += 0x9E3779B9u;
      k.y += 0xBB67AE85u;
    }
    const uint32_t hi0 = __umulhi(0xD2511F53u, c.x), lo0 = 0xD2511F53u * c.x;
    const uint32_t hi1 = __umulhi(0xCD9E8D57u, c.z), lo1 = 0xCD9E8D57u * c.z;
    c = make_uint4(hi1 ^ c.y ^ k.x, lo1, hi0 ^ c.w ^ k.y, lo0);
  }
  return c;
}

__device__ __forceinline__ float mul(float x, float s) { return x * s; }
__device__ __forceinline__ double mul(double x, double s) { return x * s; }
// bf16 x bf16 is exact in f32 and rounded once: what candle's bf16 `x * mask` gives.
__device__ __forceinline__ __nv_bfloat16 mul(__nv_bfloat16 x, float s) {
  return __float2bfloat16(__bfloat162float(x) * s);
}

// `scale` is the kept factor as the dtype's mask holds it (for bf16: the bf16 value, widened).
template <typename T, typename S>
__device__ void philox_dropout(const T* x, T* y, uint64_t n, uint32_t key0, uint32_t key1,
                               uint64_t stream, uint64_t start, uint32_t threshold, S scale) {
  const uint2 key = make_uint2(key0, key1);
  const uint64_t step = (uint64_t)gridDim.x * blockDim.x;
  for (uint64_t b = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; b * 4 < n; b += step) {
    const uint64_t block = start / 4 + b;
    const uint4 w = philox4x32_10(
        make_uint4((uint32_t)block, (uint32_t)(block >> 32), (uint32_t)stream,
                   (uint32_t)(stream >> 32)),
        key);
    const uint32_t words[4] = {w.x, w.y, w.z, w.w};
#pragma unroll
    for (int lane = 0; lane < 4; ++lane) {
      const uint64_t i = b * 4 + lane;
      if (i < n) y[i] = mul(x[i], words[lane] >= threshold ? scale : (S)0);
    }
  }
}

#define PHILOX_DROPOUT(NAME, T, S)                                                           \
  extern "C" __global__ void NAME(const T* x, T* y, uint64_t n, uint32_t key0,               \
                                  uint32_t key1, uint64_t stream, uint64_t start,             \
                                  uint32_t threshold, S scale) {                              \
    philox_dropout<T, S>(x, y, n, key0, key1, stream, start, threshold, scale);              \
  }

PHILOX_DROPOUT(philox_dropout_f32, float, float)
PHILOX_DROPOUT(philox_dropout_f64, double, double)
PHILOX_DROPOUT(philox_dropout_bf16, __nv_bfloat16, float)
