// GPU Poisson blend, batched: the equation, domain and solver of the CPU
// (affcore/blend/poisson.hpp + multigrid.hpp) ported kernel by kernel:
//
//   4 d(p) - sum_q d(q) = sum_q m(min(p,q)) ((S-T)(p) - (S-T)(q))  for unknown p
//   (masked and not on the image's outermost row/column), d = 0 everywhere else,
//
// m the mask eroded by a 7x7 square (outside the image counts as unmasked), solved for
// the correction d = result - target by multigrid-preconditioned CG (cell-centred
// hierarchy, red-black Gauss-Seidel smoothing, bilinear prolongation and its transpose,
// the same sweep counts), three channels at once in a float4, one CG per channel with the
// CPU's stopping rule (every channel's |r|/|f| <= tolerance, at most max_iterations).
// Only unknown pixels are written: the rest of every output image is the target, bit for
// bit, as on the CPU.
//
// Batching: the B images share one grid geometry, the union of their masks' bounding boxes
// grown by one pixel (clipped), so every level of every image is a B x sh x sw array and
// every pass is one launch for the whole batch. Each image has its own unknowns, its own
// CG scalars and its own convergence: an image that has converged stops changing (its
// kernels return at once), exactly where the CPU's loop would break. With B = 1 the grid is
// the CPU's grid; with B > 1 the coarse cells may pair pixels differently, which changes
// the preconditioner but not the equation being solved.
//
// Dot products are reduced per block and then per image in a fixed order, so results are
// deterministic run to run.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "affcore/cuda/cuda_common.cuh"

namespace affcore::cuda {

namespace {

using detail::blocks_for;
using detail::DeviceBuffer;
using detail::sync;

constexpr int kErodeRadius = 3;        // blend::kErodeRadius
constexpr int kCoarsest = 4;           // MaskedPoissonPcg::kCoarsest
constexpr int kCoarsestSweeps = 12;    // MaskedPoissonPcg::kCoarsestSweeps
constexpr int kSweeps = 2;             // MaskedPoissonPcg::kSweeps
constexpr int kThreads = 256;

__device__ __forceinline__ float4 f4(float a) { return make_float4(a, a, a, a); }
__device__ __forceinline__ float4 operator+(float4 a, float4 b) {
    return make_float4(a.x + b.x, a.y + b.y, a.z + b.z, a.w + b.w);
}
__device__ __forceinline__ float4 operator-(float4 a, float4 b) {
    return make_float4(a.x - b.x, a.y - b.y, a.z - b.z, a.w - b.w);
}
__device__ __forceinline__ float4 operator*(float4 a, float4 b) {
    return make_float4(a.x * b.x, a.y * b.y, a.z * b.z, a.w * b.w);
}
__device__ __forceinline__ float4 operator*(float s, float4 a) { return make_float4(s * a.x, s * a.y, s * a.z, s * a.w); }
__device__ __forceinline__ float4 operator*(float4 a, float s) { return s * a; }

struct Sum4 {
    double x, y, z, w;
};
__device__ __forceinline__ Sum4 sum4(double a, double b, double c, double d) { return Sum4{a, b, c, d}; }

struct Grid {
    int nx = 0, ny = 0, sw = 0, sh = 0;
    long long S = 0;  // cells per image
    float* w = nullptr;
    float4 *u = nullptr, *b = nullptr, *r = nullptr;
};

// CG scalars of one image (lane 3 is always zero).
struct CgState {
    double ff[4], rr[4], rz[4];
    float alpha[4], beta[4];
    int active, iterations;
    float residual;
};

// Interior cell (i, j) of image b for the thread, or false.
__device__ __forceinline__ bool cell(const Grid& g, long long k, int& b, int& i, int& j, long long& at) {
    b = static_cast<int>(blockIdx.y);
    if (k >= g.S) return false;
    j = static_cast<int>(k / g.sw);
    i = static_cast<int>(k % g.sw);
    at = static_cast<long long>(b) * g.S + k;
    return i >= 1 && i <= g.nx && j >= 1 && j <= g.ny;
}

// ---------------------------------------------------------------- set-up
// Eroded mask on the box: 1 iff the 7x7 window lies inside the image and is fully masked.
__global__ void k_erode(const std::uint8_t* mask, int H, int W, int X0, int Y0, int bw, int bh, std::uint8_t* me) {
    const long long k = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
    const int b = blockIdx.y;
    if (k >= static_cast<long long>(bw) * bh) return;
    const int x = X0 + static_cast<int>(k % bw), y = Y0 + static_cast<int>(k / bw);
    bool ok = x - kErodeRadius >= 0 && x + kErodeRadius < W && y - kErodeRadius >= 0 && y + kErodeRadius < H;
    const std::uint8_t* m = mask + static_cast<long long>(b) * H * W;
    for (int dy = -kErodeRadius; dy <= kErodeRadius && ok; ++dy)
        for (int dx = -kErodeRadius; dx <= kErodeRadius && ok; ++dx)
            ok = m[static_cast<long long>(y + dy) * W + (x + dx)] != 0;
    me[static_cast<long long>(b) * bw * bh + k] = ok ? 1 : 0;
}

__device__ __forceinline__ float4 diff(const std::uint8_t* s, const std::uint8_t* t, long long p) {
    return make_float4(float(int(s[3 * p]) - int(t[3 * p])), float(int(s[3 * p + 1]) - int(t[3 * p + 1])),
                       float(int(s[3 * p + 2]) - int(t[3 * p + 2])), 0.0f);
}

// Level-0 unknowns (w) and right-hand side (b), in the CPU's order of operations.
__global__ void k_rhs(Grid g, const std::uint8_t* src, const std::uint8_t* tgt, const std::uint8_t* mask,
                      const std::uint8_t* me, int H, int W, int X0, int Y0, int bw, int bh) {
    int b, i, j;
    long long at;
    if (!cell(g, static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x, b, i, j, at)) return;
    if (i >= bw - 1 || j >= bh - 1) return;  // the storage's extra column/row (odd extents)
    const long long hw = static_cast<long long>(H) * W;
    const long long p = static_cast<long long>(Y0 + j) * W + (X0 + i);
    if (!mask[b * hw + p]) return;
    const std::uint8_t* s = src + 3 * b * hw;
    const std::uint8_t* t = tgt + 3 * b * hw;
    const std::uint8_t* e = me + static_cast<long long>(b) * bw * bh;
    const long long k = static_cast<long long>(j) * bw + i;
    g.w[at] = 1.0f;
    const float4 ep = diff(s, t, p);
    float4 acc = f4(0.0f);
    if (e[k]) acc = acc + ((ep - diff(s, t, p + 1)) + (ep - diff(s, t, p + W)));
    if (e[k - 1]) acc = acc + (ep - diff(s, t, p - 1));
    if (e[k - bw]) acc = acc + (ep - diff(s, t, p - W));
    g.b[at] = acc;
}

// Coarse unknowns: at least 3 of the 2x2 fine children (as MaskedPoissonPcg::prepare).
__global__ void k_coarsen(Grid F, Grid C) {
    int b, I, J;
    long long at;
    if (!cell(C, static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x, b, I, J, at)) return;
    const float* w0 = F.w + static_cast<long long>(b) * F.S + static_cast<long long>(2 * J - 1) * F.sw;
    const float* w1 = w0 + F.sw;
    const int i = 2 * I - 1;
    C.w[at] = (w0[i] + w0[i + 1]) + (w1[i] + w1[i + 1]) >= 3.0f ? 1.0f : 0.0f;
}

// ---------------------------------------------------------------- multigrid
__global__ void k_smooth(Grid g, float4* u, const float4* bb, int color, bool first, const CgState* st) {
    int b, i, j;
    long long at;
    if (!cell(g, static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x, b, i, j, at)) return;
    if (!st[b].active) return;
    const float w = g.w[at];
    if (((i + j) & 1) != color) {
        if (first) u[at] = f4(0.0f);
        return;
    }
    if (first) {
        u[at] = bb[at] * (0.25f * w);
    } else {
        const long long s = g.sw;
        u[at] = ((((u[at - 1] + u[at + 1]) + u[at - s]) + u[at + s]) + bb[at]) * (0.25f * w);
    }
}

__global__ void k_residual(Grid g, const float4* u, const float4* bb, const CgState* st) {
    int b, i, j;
    long long at;
    if (!cell(g, static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x, b, i, j, at)) return;
    if (!st[b].active) return;
    const long long s = g.sw;
    const float4 au = (((4.0f * u[at] - u[at - 1]) - u[at + 1]) - u[at - s]) - u[at + s];
    g.r[at] = (bb[at] - au) * g.w[at];
}

__device__ __forceinline__ float4 row4(const float4* q) { return (q[0] + q[3]) + 3.0f * (q[1] + q[2]); }

__global__ void k_restrict(Grid F, Grid C, const CgState* st) {
    int b, I, J;
    long long at;
    if (!cell(C, static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x, b, I, J, at)) return;
    if (!st[b].active) return;
    const long long s = F.sw;
    const float4* r = F.r + static_cast<long long>(b) * F.S + static_cast<long long>(2 * J - 2) * s + (2 * I - 2);
    const float4 v = (row4(r) + row4(r + 3 * s)) + 3.0f * (row4(r + s) + row4(r + 2 * s));
    C.b[at] = v * (0.0625f * C.w[at]);
}

__global__ void k_prolong_add(Grid C, Grid F, float4* u, const CgState* st) {
    int b, i, j;
    long long at;
    if (!cell(F, static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x, b, i, j, at)) return;
    if (!st[b].active) return;
    const int J = (j + 1) >> 1, J2 = (j & 1) ? J - 1 : J + 1;
    const int I = (i + 1) >> 1, I2 = (i & 1) ? I - 1 : I + 1;
    const float4* c0 = C.u + static_cast<long long>(b) * C.S + static_cast<long long>(J) * C.sw;
    const float4* c1 = C.u + static_cast<long long>(b) * C.S + static_cast<long long>(J2) * C.sw;
    const float4 a = 0.75f * c0[I] + 0.25f * c1[I];
    const float4 bq = 0.75f * c0[I2] + 0.25f * c1[I2];
    u[at] = u[at] + (0.75f * a + 0.25f * bq) * F.w[at];
}

// ---------------------------------------------------------------- CG
// Block-wide sum of four doubles; thread 0 gets the result. Every thread of the block must
// call it (callers return early only uniformly per block).
#ifdef AFFCORE_CUDA_EMULATION
// Threads run one by one, thread 0 last (emulation.hpp): accumulate, hand the total to 0.
inline Sum4 block_sum(Sum4 v) {
    static thread_local Sum4 acc;
    if (threadIdx.x == blockDim.x - 1) acc = Sum4{0, 0, 0, 0};
    acc.x += v.x;
    acc.y += v.y;
    acc.z += v.z;
    acc.w += v.w;
    return threadIdx.x == 0 ? acc : Sum4{0, 0, 0, 0};
}
#else
__device__ Sum4 block_sum(Sum4 v) {
    __shared__ Sum4 sh[kThreads / 32];
    for (int o = 16; o > 0; o >>= 1) {
        v.x += __shfl_down_sync(0xffffffffu, v.x, o);
        v.y += __shfl_down_sync(0xffffffffu, v.y, o);
        v.z += __shfl_down_sync(0xffffffffu, v.z, o);
        v.w += __shfl_down_sync(0xffffffffu, v.w, o);
    }
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    Sum4 s = sum4(0, 0, 0, 0);
    if (threadIdx.x == 0)
        for (int k = 0; k < static_cast<int>(blockDim.x) / 32; ++k) {
            s.x += sh[k].x;
            s.y += sh[k].y;
            s.z += sh[k].z;
            s.w += sh[k].w;
        }
    __syncthreads();
    return s;
}
#endif

__device__ __forceinline__ Sum4 prod(float4 a, float4 b) {
    return sum4(double(a.x * b.x), double(a.y * b.y), double(a.z * b.z), double(a.w * b.w));
}

enum Op { kDot = 0, kApplyDot = 1, kUpdate = 2, kXpay = 3, kCopy = 4 };

// One fused CG pass over level 0; writes per-block partial dot products (all ops but
// xpay/copy). kDot: <a, c>; kApplyDot: c = A a, <a, c>; kUpdate: x += alpha a, c -= alpha d,
// <c, c>; kXpay: c = a + beta c; kCopy: c = a.
__global__ void k_cg(Grid g, int op, const float4* a, float4* c, const float4* d, float4* x, const CgState* st,
                     double* partial) {
    int b, i, j;
    long long at;
    const bool in = cell(g, static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x, b, i, j, at);
    if (!st[b].active) return;  // uniform per block (one image per blockIdx.y)
    Sum4 v = sum4(0, 0, 0, 0);
    if (in) {
        const CgState& s = st[b];
        switch (op) {
            case kDot: v = prod(a[at], c[at]); break;
            case kApplyDot: {
                const long long sw = g.sw;
                const float4 q = ((((4.0f * a[at] - a[at - 1]) - a[at + 1]) - a[at - sw]) - a[at + sw]) * g.w[at];
                c[at] = q;
                v = prod(q, a[at]);
                break;
            }
            case kUpdate: {
                const float4 al = make_float4(s.alpha[0], s.alpha[1], s.alpha[2], s.alpha[3]);
                x[at] = x[at] + al * a[at];
                const float4 r = c[at] - al * d[at];
                c[at] = r;
                v = prod(r, r);
                break;
            }
            case kXpay: {
                const float4 be = make_float4(s.beta[0], s.beta[1], s.beta[2], s.beta[3]);
                c[at] = a[at] + be * c[at];
                break;
            }
            case kCopy: c[at] = a[at]; break;
        }
    }
    if (op == kXpay || op == kCopy) return;
    const Sum4 sum = block_sum(v);
    if (threadIdx.x == 0) {
        double* out = partial + (static_cast<long long>(b) * gridDim.x + blockIdx.x) * 4;
        out[0] = sum.x;
        out[1] = sum.y;
        out[2] = sum.z;
        out[3] = sum.w;
    }
}

enum Stage { kStageFF = 0, kStageRZ0 = 1, kStagePQ = 2, kStageRR = 3, kStageRZ = 4 };

__device__ __forceinline__ float ratio(double a, double b) { return b > 0.0 ? static_cast<float>(a / b) : 0.0f; }

__device__ float rel_residual(const CgState& s) {
    double m = 0.0;
    for (int c = 0; c < 4; ++c)
        if (s.ff[c] > 0.0) m = fmax(m, sqrt(s.rr[c] / s.ff[c]));
    return static_cast<float>(m);
}

// One block per image: adds that image's partial sums in a fixed order, then takes the
// CG step the stage calls for.
__global__ void k_finish(int stage, int nblocks, const double* partial, CgState* st, float tolerance, int iteration,
                         unsigned int* active_count) {
    const int b = blockIdx.x;
    CgState& s = st[b];
    if (!s.active) return;  // uniform per block
    Sum4 v = sum4(0, 0, 0, 0);
    for (int k = threadIdx.x; k < nblocks; k += blockDim.x) {
        const double* p = partial + (static_cast<long long>(b) * nblocks + k) * 4;
        v.x += p[0];
        v.y += p[1];
        v.z += p[2];
        v.w += p[3];
    }
    const Sum4 sum = block_sum(v);
    if (threadIdx.x != 0) return;
    const double d[4] = {sum.x, sum.y, sum.z, sum.w};
    switch (stage) {
        case kStageFF: {
            for (int c = 0; c < 4; ++c) s.ff[c] = s.rr[c] = d[c];
            s.residual = rel_residual(s);
            if (s.residual <= tolerance) {
                s.active = 0;
                atomicSub(active_count, 1u);
            }
            break;
        }
        case kStageRZ0:
            for (int c = 0; c < 4; ++c) s.rz[c] = d[c];
            break;
        case kStagePQ:
            for (int c = 0; c < 4; ++c) s.alpha[c] = ratio(s.rz[c], d[c]);
            break;
        case kStageRR: {
            for (int c = 0; c < 4; ++c) s.rr[c] = d[c];
            s.iterations = iteration;
            s.residual = rel_residual(s);
            if (s.residual <= tolerance) {
                s.active = 0;
                atomicSub(active_count, 1u);
            }
            break;
        }
        case kStageRZ:
            for (int c = 0; c < 4; ++c) {
                s.beta[c] = ratio(d[c], s.rz[c]);
                s.rz[c] = d[c];
            }
            break;
    }
}

// out (holding the target) += the correction at unknowns, rounded to nearest and clamped.
__global__ void k_write(Grid g, const float4* x, const std::uint8_t* tgt, std::uint8_t* out, int H, int W, int X0,
                        int Y0) {
    int b, i, j;
    long long at;
    if (!cell(g, static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x, b, i, j, at)) return;
    if (g.w[at] == 0.0f) return;
    const long long p = 3 * (static_cast<long long>(b) * H * W + static_cast<long long>(Y0 + j) * W + (X0 + i));
    const float u[3] = {x[at].x, x[at].y, x[at].z};
    for (int c = 0; c < 3; ++c) {
        float v = float(tgt[p + c]) + u[c];
        v = (v < 0.0f) ? 0.0f : v;        // std::max(v, 0.0f)
        v = (255.0f < v) ? 255.0f : v;    // std::min(v, 255.0f)
        v = floorf(v + 0.5f);
        v = (255.0f < v) ? 255.0f : v;
        out[p + c] = static_cast<std::uint8_t>(v);
    }
}

// ---------------------------------------------------------------- host
struct Level {
    Grid g;
    DeviceBuffer<float> w;
    DeviceBuffer<float4> u, b, r;
};

class Solver {
public:
    Solver(int B, cudaStream_t s) : B_(B), s_(s) {}

    dim3 grid_of(const Grid& g) const { return dim3(blocks_for(g.S, kThreads), static_cast<unsigned>(B_)); }

    void smooth(const Grid& g, float4* u, const float4* b, int color, bool first) {
        AFFCORE_LAUNCH(k_smooth, (grid_of(g)), kThreads, s_, g, u, b, color, first, st_);
        AFFCORE_CUDA_LAUNCHED("k_smooth");
    }

    void vcycle(std::size_t l, const float4* b, float4* u) {
        const Grid& g = levels[l].g;
        if (l + 1 == levels.size()) {
            smooth(g, u, b, 0, true);
            for (int k = 0; k < kCoarsestSweeps; ++k) {
                smooth(g, u, b, 1, false);
                smooth(g, u, b, 0, false);
            }
            return;
        }
        const Grid& c = levels[l + 1].g;
        smooth(g, u, b, 0, true);
        smooth(g, u, b, 1, false);
        for (int k = 1; k < kSweeps; ++k) {
            smooth(g, u, b, 0, false);
            smooth(g, u, b, 1, false);
        }
        AFFCORE_LAUNCH(k_residual, (grid_of(g)), kThreads, s_, g, u, b, st_);
        AFFCORE_CUDA_LAUNCHED("k_residual");
        AFFCORE_LAUNCH(k_restrict, (grid_of(c)), kThreads, s_, g, c, st_);
        AFFCORE_CUDA_LAUNCHED("k_restrict");
        vcycle(l + 1, c.b, c.u);
        AFFCORE_LAUNCH(k_prolong_add, (grid_of(g)), kThreads, s_, c, g, u, st_);
        AFFCORE_CUDA_LAUNCHED("k_prolong_add");
        for (int k = 0; k < kSweeps; ++k) {
            smooth(g, u, b, 1, false);
            smooth(g, u, b, 0, false);
        }
    }

    void cg(int op, const float4* a, float4* c, const float4* d, float4* x) {
        const Grid& g = levels[0].g;
        AFFCORE_LAUNCH(k_cg, (grid_of(g)), kThreads, s_, g, op, a, c, d, x, st_, partial_);
        AFFCORE_CUDA_LAUNCHED("k_cg");
    }

    void finish(int stage, float tol, int it) {
        const Grid& g = levels[0].g;
        AFFCORE_LAUNCH(k_finish, (static_cast<unsigned>(B_)), kThreads, s_, stage, static_cast<int>(blocks_for(g.S, kThreads)),
                                                                 partial_, st_, tol, it, active_count_);
        AFFCORE_CUDA_LAUNCHED("k_finish");
    }

    unsigned int active() {
        unsigned int n = 0;
        AFFCORE_CUDA_CHECK(cudaMemcpyAsync(&n, active_count_, sizeof(n), cudaMemcpyDeviceToHost, s_));
        sync(s_);
        return n;
    }

    std::vector<Level> levels;
    int B_;
    cudaStream_t s_;
    CgState* st_ = nullptr;
    double* partial_ = nullptr;
    unsigned int* active_count_ = nullptr;
};

}  // namespace

void poisson_blend_batch(const std::uint8_t* source, const std::uint8_t* target, const std::uint8_t* mask, int B,
                         int H, int W, float tolerance, int max_iterations, std::uint8_t* out, BlendInfo* info) {
    using namespace detail;
    require_device();
    if (B <= 0 || H <= 0 || W <= 0) return;
    const std::size_t hw = static_cast<std::size_t>(H) * W;
    std::memcpy(out, target, static_cast<std::size_t>(B) * hw * 3);

    // Per-image unknown counts and the union of the masks' bounding boxes (on the host:
    // one pass over bytes the caller already has).
    int mx0 = W, my0 = H, mx1 = -1, my1 = -1;
    for (int b = 0; b < B; ++b) {
        const std::uint8_t* m = mask + b * hw;
        long unknowns = 0;
        for (int y = 0; y < H; ++y) {
            const std::uint8_t* mr = m + static_cast<std::size_t>(y) * W;
            for (int x = 0; x < W; ++x) {
                if (!mr[x]) continue;
                mx0 = std::min(mx0, x); mx1 = std::max(mx1, x);
                my0 = std::min(my0, y); my1 = std::max(my1, y);
                if (x > 0 && y > 0 && x < W - 1 && y < H - 1) ++unknowns;
            }
        }
        info[b] = BlendInfo{};
        info[b].unknowns = unknowns;
    }
    if (mx1 < 0) return;  // every mask empty: the targets unchanged
    const int X0 = std::max(mx0 - 1, 0), Y0 = std::max(my0 - 1, 0);
    const int X1 = std::min(mx1 + 1, W - 1), Y1 = std::min(my1 + 1, H - 1);
    const int bw = X1 - X0 + 1, bh = Y1 - Y0 + 1;
    if (bw < 3 || bh < 3) return;
    if (B > 65535) throw std::runtime_error("poisson_blend_batch: at most 65535 images per batch");

    const cudaStream_t st = stream();
    Solver sv(B, st);
    // Hierarchy, as MaskedPoissonPcg::prepare.
    auto make_level = [&](int nx, int ny) {
        Level L;
        L.g.nx = nx;
        L.g.ny = ny;
        L.g.sw = 2 * ((nx + 1) / 2) + 2;
        L.g.sh = 2 * ((ny + 1) / 2) + 2;
        L.g.S = static_cast<long long>(L.g.sw) * L.g.sh;
        const std::size_t n = static_cast<std::size_t>(B) * static_cast<std::size_t>(L.g.S);
        L.w.resize(n);
        L.u.resize(n);
        L.b.resize(n);
        L.r.resize(n);
        L.w.zero(st);
        L.u.zero(st);
        L.b.zero(st);
        L.r.zero(st);
        L.g.w = L.w.get();
        L.g.u = L.u.get();
        L.g.b = L.b.get();
        L.g.r = L.r.get();
        return L;
    };
    sv.levels.reserve(40);
    sv.levels.push_back(make_level(bw - 2, bh - 2));
    while (sv.levels.back().g.nx > kCoarsest || sv.levels.back().g.ny > kCoarsest) {
        const Grid& F = sv.levels.back().g;
        sv.levels.push_back(make_level((F.nx + 1) / 2, (F.ny + 1) / 2));
    }
    const Grid G = sv.levels[0].g;
    const std::size_t n0 = static_cast<std::size_t>(B) * static_cast<std::size_t>(G.S);
    DeviceBuffer<float4> x(n0), z(n0), p(n0), q(n0);
    x.zero(st);
    z.zero(st);
    p.zero(st);
    q.zero(st);
    DeviceBuffer<std::uint8_t> d_src(B * hw * 3), d_tgt(B * hw * 3), d_out(B * hw * 3), d_mask(B * hw);
    DeviceBuffer<std::uint8_t> d_me(static_cast<std::size_t>(B) * bw * bh);
    DeviceBuffer<CgState> d_state(B);
    DeviceBuffer<double> d_partial(static_cast<std::size_t>(B) * blocks_for(G.S, kThreads) * 4);
    DeviceBuffer<unsigned int> d_active(1);
    d_src.upload(source, d_src.size(), st);
    d_tgt.upload(target, d_tgt.size(), st);
    d_out.upload(target, d_out.size(), st);
    d_mask.upload(mask, d_mask.size(), st);
    std::vector<CgState> init(static_cast<std::size_t>(B));
    for (auto& s : init) {
        std::memset(&s, 0, sizeof(s));
        s.active = 1;
    }
    d_state.upload(init.data(), init.size(), st);
    const unsigned int nb = static_cast<unsigned int>(B);
    AFFCORE_CUDA_CHECK(cudaMemcpyAsync(d_active.get(), &nb, sizeof(nb), cudaMemcpyHostToDevice, st));
    sv.st_ = d_state.get();
    sv.partial_ = d_partial.get();
    sv.active_count_ = d_active.get();

    AFFCORE_LAUNCH(k_erode, (dim3(blocks_for(static_cast<long long>(bw) * bh, kThreads), nb)), kThreads, st, 
        d_mask.get(), H, W, X0, Y0, bw, bh, d_me.get());
    AFFCORE_CUDA_LAUNCHED("k_erode");
    AFFCORE_LAUNCH(k_rhs, (sv.grid_of(G)), kThreads, st, G, d_src.get(), d_tgt.get(), d_mask.get(), d_me.get(), H, W, X0, Y0,
                                              bw, bh);
    AFFCORE_CUDA_LAUNCHED("k_rhs");
    for (std::size_t l = 1; l < sv.levels.size(); ++l) {
        AFFCORE_LAUNCH(k_coarsen, (sv.grid_of(sv.levels[l].g)), kThreads, st, sv.levels[l - 1].g, sv.levels[l].g);
        AFFCORE_CUDA_LAUNCHED("k_coarsen");
    }

    // MaskedPoissonPcg::solve, for every image at once. r lives in level 0's b.
    float4* r = G.b;
    sv.cg(kDot, r, r, nullptr, nullptr);
    sv.finish(kStageFF, tolerance, 0);
    if (sv.active() > 0) {
        sv.vcycle(0, r, z.get());
        sv.cg(kDot, r, z.get(), nullptr, nullptr);
        sv.finish(kStageRZ0, tolerance, 0);
        sv.cg(kCopy, z.get(), p.get(), nullptr, nullptr);
        for (int it = 1; it <= max_iterations; ++it) {
            sv.cg(kApplyDot, p.get(), q.get(), nullptr, nullptr);
            sv.finish(kStagePQ, tolerance, it);
            sv.cg(kUpdate, p.get(), r, q.get(), x.get());
            sv.finish(kStageRR, tolerance, it);
            if (sv.active() == 0) break;
            sv.vcycle(0, r, z.get());
            sv.cg(kDot, r, z.get(), nullptr, nullptr);
            sv.finish(kStageRZ, tolerance, it);
            sv.cg(kXpay, z.get(), p.get(), nullptr, nullptr);
        }
    }
    AFFCORE_LAUNCH(k_write, (sv.grid_of(G)), kThreads, st, G, x.get(), d_tgt.get(), d_out.get(), H, W, X0, Y0);
    AFFCORE_CUDA_LAUNCHED("k_write");
    d_out.download(out, d_out.size(), st);
    std::vector<CgState> fin(static_cast<std::size_t>(B));
    d_state.download(fin.data(), fin.size(), st);
    sync(st);
    for (int b = 0; b < B; ++b) {
        info[b].iterations = fin[static_cast<std::size_t>(b)].iterations;
        info[b].residual = fin[static_cast<std::size_t>(b)].residual;
    }
}

}  // namespace affcore::cuda
