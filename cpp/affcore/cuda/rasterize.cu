// GPU rasterization, interpolation and bilinear sampling, batched: B meshes sharing one
// triangle list are drawn into B buffers by one set of launches.
//
// Same results as the CPU (affcore/render/rasterize.hpp) by construction: snapping, triangle
// setup, edge functions and the per-pixel depth/barycentric arithmetic are the very
// functions of affcore/render/raster_core.hpp, compiled here for the device with explicitly
// rounded double operations (no FMA contraction; this file is also built with --fmad=false).
//
// Visibility in two passes, so that no pixel is ever written by two threads at once:
//  1. every (mesh, triangle) is set up by one thread; small triangles are drawn by that
//     thread, large ones (bounding box over kSmallPixels) are queued and drawn by a whole
//     block each. Drawing = one 64-bit atomicMin per covered pixel on
//     (order-preserving bits of the float depth) << 32 | triangle id, so the nearest depth
//     wins and equal depths go to the lowest id, whatever the order the threads run in —
//     exactly the CPU's rule (strict depth test, triangles in index order).
//  2. every pixel unpacks its winner and recomputes that triangle's depth and barycentrics
//     with the shared functions.
#include <cstdint>
#include <stdexcept>
#include <string>

#include "affcore/cuda/cuda_common.cuh"
#include "affcore/render/raster_core.hpp"

namespace affcore::cuda {

namespace {

using render::FixedPoint;
using render::detail::PixelConstants;
using render::detail::TriangleSetup;

constexpr unsigned long long kEmpty = ~0ull;
constexpr long long kSmallPixels = 128;

struct RasterParams {
    const float* vertices;  // B x V x 3
    const float* w;         // B x V or null
    const std::int32_t* triangles;
    int B, V, T, H, W;
    bool cull;
    unsigned long long* packed;  // B x H x W
    int2* big;                   // (mesh, triangle) queue, capacity B * T
    unsigned int* big_count;
};

// Snaps and sets up triangle t of mesh b; false when it draws nothing (as on the CPU).
__device__ bool load_triangle(const RasterParams& p, int b, int t, TriangleSetup& s, float z[3], float wv[3]) {
    const std::int32_t* tri = p.triangles + 3 * static_cast<long long>(t);
    const float* vb = p.vertices + static_cast<long long>(b) * p.V * 3;
    const float* wb = p.w ? p.w + static_cast<long long>(b) * p.V : nullptr;
    FixedPoint q[3];
    for (int k = 0; k < 3; ++k) {
        const int v = tri[k];
        if (v < 0 || v >= p.V) return false;  // validated by the binding; never trust blindly
        if (!render::detail::snap_vertex(vb + 3LL * v, wb ? wb + v : nullptr, q[k])) return false;
        z[k] = vb[3LL * v + 2];
        wv[k] = wb ? wb[v] : 1.0f;
    }
    return render::detail::setup_triangle(q, p.H, p.W, p.cull, s);
}

// Order-preserving map of a non-NaN float to uint32 (-0 and +0 map to the same key, as they
// compare equal in the CPU's depth test).
__device__ __forceinline__ unsigned int depth_key(float d) {
    unsigned int u = __float_as_uint(d);
    if (u == 0x80000000u) u = 0u;
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

__device__ __forceinline__ void plot(const RasterParams& p, int b, int t, const TriangleSetup& s,
                                     const PixelConstants& c, long long x, long long y) {
    const std::int64_t e0 = render::detail::edge_value(s.edge[0], x, y);
    const std::int64_t e1 = render::detail::edge_value(s.edge[1], x, y);
    const std::int64_t e2 = render::detail::edge_value(s.edge[2], x, y);
    if ((e0 | e1 | e2) < 0) return;
    const float d = render::detail::pixel_depth(s, c, e1, e2);
    // The CPU's test is d < depth with depth starting at +inf: a +inf depth never draws.
    if (!(d < __int_as_float(0x7f800000))) return;
    if (x < 0 || y < 0 || x >= p.W || y >= p.H) return;  // setup clips; belt and braces
    const unsigned long long key = (static_cast<unsigned long long>(depth_key(d)) << 32) | static_cast<unsigned int>(t);
    atomicMin(p.packed + (static_cast<long long>(b) * p.H + y) * p.W + x, key);
}

__global__ void k_raster_small(RasterParams p) {
    const long long k = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (k >= static_cast<long long>(p.B) * p.T) return;
    const int b = static_cast<int>(k / p.T), t = static_cast<int>(k % p.T);
    TriangleSetup s;
    float z[3], wv[3];
    if (!load_triangle(p, b, t, s, z, wv)) return;
    const long long bw = s.x1 - s.x0 + 1, bh = s.y1 - s.y0 + 1;
    if (bw * bh > kSmallPixels) {
        const unsigned int slot = atomicAdd(p.big_count, 1u);
        if (slot < static_cast<unsigned long long>(p.B) * p.T) p.big[slot] = make_int2(b, t);
        return;
    }
    const PixelConstants c = render::detail::pixel_constants(s, z);
    for (long long y = s.y0; y <= s.y1; ++y)
        for (long long x = s.x0; x <= s.x1; ++x) plot(p, b, t, s, c, x, y);
}

__global__ void k_raster_big(RasterParams p) {
    const unsigned long long cap = static_cast<unsigned long long>(p.B) * p.T;
    const unsigned long long n = min(static_cast<unsigned long long>(*p.big_count), cap);
    for (unsigned long long k = blockIdx.x; k < n; k += gridDim.x) {
        const int2 bt = p.big[k];
        TriangleSetup s;
        float z[3], wv[3];
        if (!load_triangle(p, bt.x, bt.y, s, z, wv)) continue;
        const PixelConstants c = render::detail::pixel_constants(s, z);
        const long long bw = s.x1 - s.x0 + 1, npix = bw * (s.y1 - s.y0 + 1);
        for (long long i = threadIdx.x; i < npix; i += blockDim.x)
            plot(p, bt.x, bt.y, s, c, s.x0 + i % bw, s.y0 + i / bw);
    }
}

__global__ void k_resolve(RasterParams p, std::int32_t* tid, float* bary, float* depth) {
    const long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
    const long long hw = static_cast<long long>(p.H) * p.W;
    if (i >= static_cast<long long>(p.B) * hw) return;
    const unsigned long long key = p.packed[i];
    tid[i] = -1;
    bary[2 * i] = 0.0f;
    bary[2 * i + 1] = 0.0f;
    depth[i] = __int_as_float(0x7f800000);
    if (key == kEmpty) return;
    const int b = static_cast<int>(i / hw);
    const long long pix = i % hw;
    const long long y = pix / p.W, x = pix % p.W;
    const int t = static_cast<int>(key & 0xffffffffu);
    TriangleSetup s;
    float z[3], wv[3];
    if (t < 0 || t >= p.T || !load_triangle(p, b, t, s, z, wv)) return;  // cannot happen
    const PixelConstants c = render::detail::pixel_constants(s, z);
    const std::int64_t e0 = render::detail::edge_value(s.edge[0], x, y);
    const std::int64_t e1 = render::detail::edge_value(s.edge[1], x, y);
    const std::int64_t e2 = render::detail::edge_value(s.edge[2], x, y);
    tid[i] = t;
    depth[i] = render::detail::pixel_depth(s, c, e1, e2);
    render::detail::pixel_barycentrics(s, c, e0, e1, e2, p.w ? wv : nullptr, bary[2 * i], bary[2 * i + 1]);
}

// out = b0*a0 + b1*a1 + b2*a2, b0 = 1 - b1 - b2, in the CPU's order of float operations.
__global__ void k_interpolate(const float* attributes, bool per_mesh, int V, int C, const std::int32_t* triangles,
                              int T, const std::int32_t* triangle_id, const float* barycentrics, int B, long long P,
                              float* out) {
    const long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= static_cast<long long>(B) * P) return;
    float* o = out + i * C;
    const std::int32_t t = triangle_id[i];
    if (t < 0 || t >= T) {
        for (int c = 0; c < C; ++c) o[c] = 0.0f;
        return;
    }
    const float* a = attributes + (per_mesh ? (i / P) * static_cast<long long>(V) * C : 0LL);
    const std::int32_t* tri = triangles + 3LL * t;
    const float b1 = barycentrics[2 * i], b2 = barycentrics[2 * i + 1];
    const float b0 = __fsub_rn(__fsub_rn(1.0f, b1), b2);
    const float* a0 = a + static_cast<long long>(tri[0]) * C;
    const float* a1 = a + static_cast<long long>(tri[1]) * C;
    const float* a2 = a + static_cast<long long>(tri[2]) * C;
    for (int c = 0; c < C; ++c)
        o[c] = __fadd_rn(__fadd_rn(__fmul_rn(b0, a0[c]), __fmul_rn(b1, a1[c])), __fmul_rn(b2, a2[c]));
}

__device__ __forceinline__ float lerp_rn(float a, float b, float f) {  // a + f * (b - a)
    return __fadd_rn(a, __fmul_rn(f, __fsub_rn(b, a)));
}

template <typename Pixel>
__global__ void k_sample(const Pixel* images, int B, int IH, int IW, int C, const float* coords, const bool* mask,
                         long long P, float* out) {
    const long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= static_cast<long long>(B) * P) return;
    float* o = out + i * C;
    float x = coords[2 * i], y = coords[2 * i + 1];
    if ((mask && !mask[i]) || isnan(x) || isnan(y)) {
        for (int c = 0; c < C; ++c) o[c] = 0.0f;
        return;
    }
    const float xmax = static_cast<float>(IW - 1), ymax = static_cast<float>(IH - 1);
    // std::min(std::max(v, 0), vmax), spelled out with the same comparisons.
    x = (x < 0.0f) ? 0.0f : x;
    x = (xmax < x) ? xmax : x;
    y = (y < 0.0f) ? 0.0f : y;
    y = (ymax < y) ? ymax : y;
    const int x0 = static_cast<int>(x), y0 = static_cast<int>(y);
    const int x1 = min(x0 + 1, IW - 1), y1 = min(y0 + 1, IH - 1);
    const float fx = __fsub_rn(x, static_cast<float>(x0)), fy = __fsub_rn(y, static_cast<float>(y0));
    const long long stride = static_cast<long long>(IW) * C;
    const Pixel* img = images + (i / P) * static_cast<long long>(IH) * stride;
    const Pixel* r0 = img + y0 * stride;
    const Pixel* r1 = img + y1 * stride;
    const long long c0 = static_cast<long long>(x0) * C, c1 = static_cast<long long>(x1) * C;
    for (int c = 0; c < C; ++c) {
        const float top = lerp_rn(static_cast<float>(r0[c0 + c]), static_cast<float>(r0[c1 + c]), fx);
        const float bot = lerp_rn(static_cast<float>(r1[c0 + c]), static_cast<float>(r1[c1 + c]), fx);
        o[c] = lerp_rn(top, bot, fy);
    }
}

}  // namespace

void rasterize_batch(const float* vertices, const float* w, int B, int V, const std::int32_t* triangles, int T,
                     int H, int W, bool cull_backfaces, std::int32_t* triangle_id, float* barycentrics,
                     float* depth) {
    using namespace detail;
    require_device();
    if (B <= 0 || H <= 0 || W <= 0) return;
    const cudaStream_t st = stream();
    const std::size_t npix = static_cast<std::size_t>(B) * H * W;
    DeviceBuffer<float> d_v(static_cast<std::size_t>(B) * V * 3), d_w(w ? static_cast<std::size_t>(B) * V : 0);
    DeviceBuffer<std::int32_t> d_tri(static_cast<std::size_t>(T) * 3), d_id(npix);
    DeviceBuffer<float> d_bary(npix * 2), d_depth(npix);
    DeviceBuffer<unsigned long long> d_packed(npix);
    DeviceBuffer<int2> d_big(static_cast<std::size_t>(B) * T);
    DeviceBuffer<unsigned int> d_count(1);
    d_v.upload(vertices, d_v.size(), st);
    if (w) d_w.upload(w, d_w.size(), st);
    d_tri.upload(triangles, d_tri.size(), st);
    AFFCORE_CUDA_CHECK(cudaMemsetAsync(d_packed.get(), 0xff, d_packed.bytes(), st));  // kEmpty
    d_count.zero(st);

    RasterParams p{d_v.get(), w ? d_w.get() : nullptr, d_tri.get(), B, V, T, H, W, cull_backfaces,
                   d_packed.get(), d_big.get(), d_count.get()};
    const long long work = static_cast<long long>(B) * T;
    if (work > 0) {
        AFFCORE_LAUNCH(k_raster_small, (blocks_for(work, 128)), 128, st, p);
        AFFCORE_CUDA_LAUNCHED("k_raster_small");
        AFFCORE_LAUNCH(k_raster_big, (1024), 256, st, p);
        AFFCORE_CUDA_LAUNCHED("k_raster_big");
    }
    AFFCORE_LAUNCH(k_resolve, (blocks_for(static_cast<long long>(npix), 256)), 256, st, p, d_id.get(), d_bary.get(),
                                                                            d_depth.get());
    AFFCORE_CUDA_LAUNCHED("k_resolve");
    d_id.download(triangle_id, npix, st);
    d_bary.download(barycentrics, npix * 2, st);
    d_depth.download(depth, npix, st);
    sync(st);
}

void interpolate_batch(const float* attributes, bool per_mesh, int V, int C, const std::int32_t* triangles, int T,
                       const std::int32_t* triangle_id, const float* barycentrics, int B, long long P, float* out) {
    using namespace detail;
    require_device();
    const long long n = static_cast<long long>(B) * P;
    if (n <= 0 || C <= 0) return;
    const cudaStream_t st = stream();
    DeviceBuffer<float> d_a(static_cast<std::size_t>(per_mesh ? B : 1) * V * C);
    DeviceBuffer<std::int32_t> d_tri(static_cast<std::size_t>(T) * 3), d_id(static_cast<std::size_t>(n));
    DeviceBuffer<float> d_b(static_cast<std::size_t>(n) * 2), d_out(static_cast<std::size_t>(n) * C);
    d_a.upload(attributes, d_a.size(), st);
    d_tri.upload(triangles, d_tri.size(), st);
    d_id.upload(triangle_id, d_id.size(), st);
    d_b.upload(barycentrics, d_b.size(), st);
    AFFCORE_LAUNCH(k_interpolate, (blocks_for(n, 256)), 256, st, d_a.get(), per_mesh, V, C, d_tri.get(), T, d_id.get(),
                                                       d_b.get(), B, P, d_out.get());
    AFFCORE_CUDA_LAUNCHED("k_interpolate");
    d_out.download(out, d_out.size(), st);
    sync(st);
}

void sample_bilinear_batch(const void* images, bool is_u8, int B, int IH, int IW, int C, const float* coords,
                           const bool* mask, long long P, float* out) {
    using namespace detail;
    require_device();
    const long long n = static_cast<long long>(B) * P;
    if (n <= 0 || C <= 0) return;
    const cudaStream_t st = stream();
    const std::size_t nimg = static_cast<std::size_t>(B) * IH * IW * C;
    DeviceBuffer<std::uint8_t> d_u8(is_u8 ? nimg : 0);
    DeviceBuffer<float> d_f(is_u8 ? 0 : nimg);
    DeviceBuffer<float> d_c(static_cast<std::size_t>(n) * 2), d_out(static_cast<std::size_t>(n) * C);
    DeviceBuffer<bool> d_m(mask ? static_cast<std::size_t>(n) : 0);
    if (is_u8) d_u8.upload(static_cast<const std::uint8_t*>(images), nimg, st);
    else d_f.upload(static_cast<const float*>(images), nimg, st);
    d_c.upload(coords, d_c.size(), st);
    if (mask) d_m.upload(mask, d_m.size(), st);
    if (is_u8)
        AFFCORE_LAUNCH(k_sample<std::uint8_t>, (blocks_for(n, 256)), 256, st, d_u8.get(), B, IH, IW, C, d_c.get(),
                                                                   mask ? d_m.get() : nullptr, P, d_out.get());
    else
        AFFCORE_LAUNCH(k_sample<float>, (blocks_for(n, 256)), 256, st, d_f.get(), B, IH, IW, C, d_c.get(),
                                                            mask ? d_m.get() : nullptr, P, d_out.get());
    AFFCORE_CUDA_LAUNCHED("k_sample");
    d_out.download(out, d_out.size(), st);
    sync(st);
}

}  // namespace affcore::cuda
