// TEST-ONLY host emulation of the small part of CUDA that affcore's kernels use, so that the
// very kernel code in rasterize.cu / poisson.cu can be compiled by g++ and run on a machine
// without a GPU (CMake: -DAFFCORE_CUDA_EMULATION=ON; see docs/cuda.md). A launch runs its
// blocks one after another and, within a block, its threads one after another in
// *decreasing* threadIdx.x, so that thread 0 runs last: the one block-wide reduction
// (poisson.cu's block_sum) returns the block's total to thread 0 as on the device. Valid
// because every kernel is free of intra-block data races and uses no other barrier.
// It checks indexing, batching, packing, reductions and the control flow on the host; it
// does not check device-specific behaviour (memory model, intrinsics, occupancy, timing).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
    dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
struct int2 { int x, y; };
struct float4 { float x, y, z, w; };
inline int2 make_int2(int a, int b) { return {a, b}; }
inline float4 make_float4(float a, float b, float c, float d) { return {a, b, c, d}; }

inline thread_local dim3 blockIdx, threadIdx, blockDim, gridDim;

using cudaError_t = int;
using cudaStream_t = void*;
constexpr cudaError_t cudaSuccess = 0;
enum cudaMemcpyKind { cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice };
#define cudaStreamPerThread nullptr
inline const char* cudaGetErrorString(cudaError_t) { return "emulated error"; }
inline const char* cudaGetErrorName(cudaError_t) { return "cudaErrorEmulated"; }
inline cudaError_t cudaGetLastError() { return cudaSuccess; }
inline cudaError_t cudaPeekAtLastError() { return cudaSuccess; }
inline cudaError_t cudaMalloc(void** p, std::size_t n) {
    *p = std::malloc(n);
    if (*p) std::memset(*p, 0xA5, n);  // garbage, as device memory: kernels must not rely on zeros
    return *p ? cudaSuccess : 2;
}
inline cudaError_t cudaFree(void* p) { std::free(p); return cudaSuccess; }
inline cudaError_t cudaMemcpyAsync(void* d, const void* s, std::size_t n, cudaMemcpyKind, cudaStream_t) {
    std::memcpy(d, s, n);
    return cudaSuccess;
}
inline cudaError_t cudaMemsetAsync(void* d, int v, std::size_t n, cudaStream_t) {
    std::memset(d, v, n);
    return cudaSuccess;
}
struct cudaDeviceProp { char name[256]; };
inline cudaError_t cudaGetDeviceCount(int* n) { *n = 1; return cudaSuccess; }
inline cudaError_t cudaGetDevice(int* d) { *d = 0; return cudaSuccess; }
inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int) {
    std::strcpy(p->name, "affcore CUDA emulation (host, test only)");
    return cudaSuccess;
}
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }

inline unsigned int __float_as_uint(float f) { unsigned int u; std::memcpy(&u, &f, 4); return u; }
inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
template <typename T> inline T min(T a, T b) { return b < a ? b : a; }
using std::fmax;
inline float fmaxf(float a, float b) { return std::fmax(a, b); }
inline float floorf(float v) { return std::floor(v); }
using std::isnan;
using std::sqrt;

inline unsigned long long atomicMin(unsigned long long* p, unsigned long long v) {
    const unsigned long long old = *p;
    if (v < old) *p = v;
    return old;
}
inline unsigned int atomicAdd(unsigned int* p, unsigned int v) { const unsigned int o = *p; *p += v; return o; }
inline unsigned int atomicSub(unsigned int* p, unsigned int v) { const unsigned int o = *p; *p -= v; return o; }

namespace affcore::cuda::emu {
template <typename F>
void launch(dim3 grid, dim3 block, F&& kernel) {
    gridDim = grid;
    blockDim = block;
    for (unsigned by = 0; by < grid.y; ++by)
        for (unsigned bx = 0; bx < grid.x; ++bx) {
            blockIdx = dim3(bx, by);
            for (unsigned t = block.x; t-- > 0;) {
                threadIdx = dim3(t);
                kernel();
            }
        }
}
}  // namespace affcore::cuda::emu
