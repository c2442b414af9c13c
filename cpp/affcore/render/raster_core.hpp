// The arithmetic of the rasterizer that the CPU (rasterize.hpp, compiled by g++) and the
// GPU (cuda/rasterize.cu, compiled by nvcc) share: vertex snapping, triangle setup with
// exact 64-bit edge functions and the top-left rule, and the per-pixel depth and
// barycentrics. Both compilers build these very functions, so coverage is identical by
// construction and depth/barycentrics are identical as long as neither side contracts a*b+c
// into a fused multiply-add: on the device every floating-point operation below goes
// through an explicitly rounded intrinsic (__dmul_rn, __dadd_rn, ...), which nvcc never
// fuses; on the host the translation units that include this header are built with
// -ffp-contract=off (CMakeLists.txt). Double division and the double->float conversion are
// correctly rounded on both sides.
//
// Nothing here may use the standard library in device code: only plain arithmetic, and the
// few math functions (isfinite, fabs, nearbyint) that have host and device versions.
#pragma once
#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define AFFCORE_HD __host__ __device__
#else
#define AFFCORE_HD
#endif

namespace affcore::render {

constexpr int kSubpixelBits = 8;
constexpr std::int64_t kSubpixel = std::int64_t{1} << kSubpixelBits;
// Vertices farther than this from the origin (in pixels) make their triangles invalid. It
// keeps every edge-function product inside int64 (coordinates < 2^28 after snapping, so
// products < 2^58); it is 32x the largest image we accept, so only degenerate projections
// (points near the camera plane) reach it. We do not clip such triangles; we skip them.
constexpr double kGuardPixels = 1048576.0;  // 2^20

struct FixedPoint {
    std::int64_t x = 0, y = 0;
};

namespace detail {

// Correctly rounded double operations that no compiler turns into an FMA on the device.
AFFCORE_HD inline double dmul(double a, double b) {
#if defined(__CUDA_ARCH__)
    return __dmul_rn(a, b);
#else
    return a * b;
#endif
}
AFFCORE_HD inline double dadd(double a, double b) {
#if defined(__CUDA_ARCH__)
    return __dadd_rn(a, b);
#else
    return a + b;
#endif
}
AFFCORE_HD inline double dsub(double a, double b) {
#if defined(__CUDA_ARCH__)
    return __dsub_rn(a, b);
#else
    return a - b;
#endif
}
AFFCORE_HD inline double ddiv(double a, double b) {
#if defined(__CUDA_ARCH__)
    return __ddiv_rn(a, b);
#else
    return a / b;
#endif
}
AFFCORE_HD inline bool is_finite(double v) {
#if defined(__CUDA_ARCH__)
    return isfinite(v);
#else
    return std::isfinite(v);
#endif
}
AFFCORE_HD inline double abs_d(double v) {
#if defined(__CUDA_ARCH__)
    return fabs(v);
#else
    return std::fabs(v);
#endif
}
// Round half to even (the default rounding mode on the host; rint is the same on the device).
AFFCORE_HD inline double round_even(double v) {
#if defined(__CUDA_ARCH__)
    return rint(v);
#else
    return std::nearbyint(v);
#endif
}
AFFCORE_HD inline std::int64_t min3(std::int64_t a, std::int64_t b, std::int64_t c) {
    const std::int64_t m = a < b ? a : b;
    return m < c ? m : c;
}
AFFCORE_HD inline std::int64_t max3(std::int64_t a, std::int64_t b, std::int64_t c) {
    const std::int64_t m = a > b ? a : b;
    return m > c ? m : c;
}

AFFCORE_HD inline std::int64_t floor_div(std::int64_t a, std::int64_t b) {  // b > 0
    std::int64_t q = a / b;
    return (a % b != 0 && a < 0) ? q - 1 : q;
}
AFFCORE_HD inline std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return -floor_div(-a, b); }

// Snaps one vertex; false when it cannot take part (NaN/inf anywhere, outside the guard
// band, or w not strictly positive). Checked before any float->int conversion, which would
// be undefined behaviour for such values.
AFFCORE_HD inline bool snap_vertex(const float* v, const float* w, FixedPoint& out) {
    const double x = v[0], y = v[1], z = v[2];
    if (!(is_finite(x) && is_finite(y) && is_finite(z))) return false;
    if (!(abs_d(x) <= kGuardPixels && abs_d(y) <= kGuardPixels)) return false;
    if (w && !(is_finite(static_cast<double>(*w)) && *w > 0.0f)) return false;
    // x * 256 is exact (a power of two, |x| <= 2^20), so no rounding difference can arise.
    out.x = static_cast<std::int64_t>(round_even(dmul(x, static_cast<double>(kSubpixel))));
    out.y = static_cast<std::int64_t>(round_even(dmul(y, static_cast<double>(kSubpixel))));
    return true;
}

// E(p) = A*p.x + B*p.y + C for an edge of a triangle brought to positive orientation, so
// E >= 0 inside. `bias` is 0 for edges that own the pixel centres lying on them (top and
// left edges) and 1 otherwise: a centre is covered when E - bias >= 0 on all three edges.
struct Edge {
    std::int64_t A = 0, B = 0, C = 0, bias = 0;
};

// Edge a->b, direction multiplied by s (+1/-1) to bring the triangle to positive
// orientation. The same geometric edge seen from the neighbouring triangle comes out with
// exactly negated A, B, C (integers, no rounding), which is what makes the rule watertight.
AFFCORE_HD inline Edge make_edge(FixedPoint a, FixedPoint b, std::int64_t s) {
    const std::int64_t dx = s * (b.x - a.x), dy = s * (b.y - a.y);
    Edge e;
    e.A = -dy;
    e.B = dx;
    e.C = dy * a.x - dx * a.y;
    // With y down and positive orientation (E >= 0 inside), an edge going up (dy < 0) is a
    // left edge and a horizontal edge going right (dx > 0) is a top edge. Of two opposite
    // directions exactly one satisfies this, so a shared edge has exactly one owner.
    const bool top_left = dy < 0 || (dy == 0 && dx > 0);
    e.bias = top_left ? 0 : 1;
    return e;
}

struct TriangleSetup {
    Edge edge[3];           // edge[k] is opposite vertex k, so edge[k]/area is b_k
    std::int64_t area = 0;  // twice the pixel area, times kSubpixel^2; > 0
    std::int64_t x0 = 0, x1 = -1, y0 = 0, y1 = -1;  // covered-pixel bounding box, inclusive
};

// False for triangles that cannot cover a pixel centre of the image: degenerate (zero
// area after snapping), culled, or with a bounding box that holds no pixel centre on screen.
AFFCORE_HD inline bool setup_triangle(const FixedPoint p[3], int height, int width, bool cull_backfaces,
                                      TriangleSetup& t) {
    const std::int64_t area = (p[1].x - p[0].x) * (p[2].y - p[0].y) - (p[1].y - p[0].y) * (p[2].x - p[0].x);
    if (area == 0) return false;
    // area > 0 is clockwise on screen (y down).
    if (cull_backfaces && area > 0) return false;
    const std::int64_t s = area > 0 ? 1 : -1;
    t.area = s * area;
    t.edge[0] = make_edge(p[1], p[2], s);
    t.edge[1] = make_edge(p[2], p[0], s);
    t.edge[2] = make_edge(p[0], p[1], s);
    const std::int64_t minx = min3(p[0].x, p[1].x, p[2].x), maxx = max3(p[0].x, p[1].x, p[2].x);
    const std::int64_t miny = min3(p[0].y, p[1].y, p[2].y), maxy = max3(p[0].y, p[1].y, p[2].y);
    const std::int64_t cx0 = ceil_div(minx, kSubpixel), cx1 = floor_div(maxx, kSubpixel);
    const std::int64_t cy0 = ceil_div(miny, kSubpixel), cy1 = floor_div(maxy, kSubpixel);
    t.x0 = cx0 > 0 ? cx0 : 0;
    t.x1 = cx1 < width - 1 ? cx1 : width - 1;
    t.y0 = cy0 > 0 ? cy0 : 0;
    t.y1 = cy1 < height - 1 ? cy1 : height - 1;
    return t.x0 <= t.x1 && t.y0 <= t.y1;
}

// Biased edge value of edge k at pixel (x, y): the pixel is covered when all three are >= 0.
AFFCORE_HD inline std::int64_t edge_value(const Edge& e, std::int64_t x, std::int64_t y) {
    return e.A * (x * kSubpixel) + e.B * (y * kSubpixel) + e.C - e.bias;
}

// Per-triangle constants of the per-pixel arithmetic: one division per triangle, as the
// reference in tests/test_render.py.
struct PixelConstants {
    double inv_area = 0, z0 = 0, dz1 = 0, dz2 = 0;
};

AFFCORE_HD inline PixelConstants pixel_constants(const TriangleSetup& t, const float z[3]) {
    PixelConstants c;
    c.inv_area = ddiv(1.0, static_cast<double>(t.area));
    c.z0 = z[0];
    c.dz1 = dsub(static_cast<double>(z[1]), c.z0);
    c.dz2 = dsub(static_cast<double>(z[2]), c.z0);
    return c;
}

// Depth at a covered pixel with biased edge values e1, e2 (edges 1 and 2).
AFFCORE_HD inline float pixel_depth(const TriangleSetup& t, const PixelConstants& c, std::int64_t e1,
                                    std::int64_t e2) {
    const double b1 = dmul(static_cast<double>(e1 + t.edge[1].bias), c.inv_area);
    const double b2 = dmul(static_cast<double>(e2 + t.edge[2].bias), c.inv_area);
    // b in [0, 1] and z finite, so the float conversion stays in range (or rounds to inf).
    return static_cast<float>(dadd(dadd(c.z0, dmul(b1, c.dz1)), dmul(b2, c.dz2)));
}

// Barycentrics (b1, b2) at a covered pixel with biased edge values e0, e1, e2; perspective-
// correct when w (the triangle's three w) is given.
AFFCORE_HD inline void pixel_barycentrics(const TriangleSetup& t, const PixelConstants& c, std::int64_t e0,
                                          std::int64_t e1, std::int64_t e2, const float* w, float& out1,
                                          float& out2) {
    const double b1 = dmul(static_cast<double>(e1 + t.edge[1].bias), c.inv_area);
    const double b2 = dmul(static_cast<double>(e2 + t.edge[2].bias), c.inv_area);
    if (w) {
        const double b0 = dmul(static_cast<double>(e0 + t.edge[0].bias), c.inv_area);
        const double q0 = ddiv(b0, static_cast<double>(w[0])), q1 = ddiv(b1, static_cast<double>(w[1])),
                     q2 = ddiv(b2, static_cast<double>(w[2]));
        const double sum = dadd(dadd(q0, q1), q2);  // > 0: b >= 0 with one b > 0, w > 0
        out1 = static_cast<float>(ddiv(q1, sum));
        out2 = static_cast<float>(ddiv(q2, sum));
    } else {
        out1 = static_cast<float>(b1);
        out2 = static_cast<float>(b2);
    }
}

}  // namespace detail
}  // namespace affcore::render
