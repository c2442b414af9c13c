// Triangle rasterization to a visibility buffer (triangle id, barycentrics, depth), in the
// style of nvdiffrast's rasterize(): the output says which triangle each pixel sees and
// where inside it; attributes and textures are looked up afterwards (interpolate.hpp,
// sample.hpp).
//
// Conventions (relied on by the rest of the pipeline):
//  * Screen space is in pixels, x to the right (column), y down (row). Pixel (row i,
//    column j) has its centre at (x = j, y = i); it is covered when its centre is inside.
//  * Smaller depth = nearer. Ties go to the lowest triangle index.
//  * Barycentrics (b1, b2) weight vertices 1 and 2 of the triangle as given; b0 = 1-b1-b2.
//    With per-vertex w they are perspective-correct (1/w interpolation); depth itself is
//    always interpolated linearly in screen space (right for NDC z/w or orthographic z).
//
// Watertightness: vertex positions are snapped to 1/256 pixel and the edge functions are
// evaluated exactly in 64-bit integers, with the top-left fill rule deciding pixel centres
// that lie exactly on an edge. A pixel on an edge shared by two triangles is then drawn by
// exactly one of them, whatever their winding, and a pixel at a shared vertex by exactly one
// triangle of the fan around it. Floating-point edge functions cannot promise that.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "affcore/render/parallel.hpp"

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

// Where rasterize() writes. All three buffers hold height*width pixels, row-major;
// barycentrics two floats per pixel.
struct RasterTarget {
    int height = 0, width = 0;
    std::int32_t* triangle_id = nullptr;
    float* barycentrics = nullptr;
    float* depth = nullptr;
};

struct RasterOptions {
    // Drop triangles that are clockwise on screen (y down), i.e. keep counter-clockwise
    // ones as OpenGL does: a mesh with outward counter-clockwise faces in a +y up, +z
    // towards the viewer frame keeps its visible side after projecting with y flipped.
    bool cull_backfaces = false;
    unsigned threads = 1;
};

namespace detail {

inline std::int64_t floor_div(std::int64_t a, std::int64_t b) {  // b > 0
    std::int64_t q = a / b;
    return (a % b != 0 && a < 0) ? q - 1 : q;
}
inline std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return -floor_div(-a, b); }

// Snaps one vertex; false when it cannot take part (NaN/inf anywhere, outside the guard
// band, or w not strictly positive). Checked before any float->int conversion, which would
// be undefined behaviour for such values.
inline bool snap_vertex(const float* v, const float* w, FixedPoint& out) {
    const double x = v[0], y = v[1], z = v[2];
    if (!(std::isfinite(x) && std::isfinite(y) && std::isfinite(z))) return false;
    if (!(std::fabs(x) <= kGuardPixels && std::fabs(y) <= kGuardPixels)) return false;
    if (w && !(std::isfinite(static_cast<double>(*w)) && *w > 0.0f)) return false;
    out.x = static_cast<std::int64_t>(std::nearbyint(x * kSubpixel));
    out.y = static_cast<std::int64_t>(std::nearbyint(y * kSubpixel));
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
inline Edge make_edge(FixedPoint a, FixedPoint b, std::int64_t s) {
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
inline bool setup_triangle(const FixedPoint p[3], int height, int width, bool cull_backfaces,
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
    const std::int64_t minx = std::min({p[0].x, p[1].x, p[2].x}), maxx = std::max({p[0].x, p[1].x, p[2].x});
    const std::int64_t miny = std::min({p[0].y, p[1].y, p[2].y}), maxy = std::max({p[0].y, p[1].y, p[2].y});
    t.x0 = std::max<std::int64_t>(0, ceil_div(minx, kSubpixel));
    t.x1 = std::min<std::int64_t>(width - 1, floor_div(maxx, kSubpixel));
    t.y0 = std::max<std::int64_t>(0, ceil_div(miny, kSubpixel));
    t.y1 = std::min<std::int64_t>(height - 1, floor_div(maxy, kSubpixel));
    return t.x0 <= t.x1 && t.y0 <= t.y1;
}

// Draws the rows [row_begin, row_end) of one triangle. Every pixel is touched by one band
// only and triangles arrive in index order, so a strict depth test makes the lowest index
// win ties whatever the banding or thread count.
inline void draw_rows(const TriangleSetup& t, std::int32_t id, const float* z, const float* w,
                      std::int64_t row_begin, std::int64_t row_end, const RasterTarget& out) {
    const std::int64_t ya = std::max(t.y0, row_begin), yb = std::min(t.y1, row_end - 1);
    // One division per triangle; the reference in tests/test_render.py does the same.
    const double inv_area = 1.0 / static_cast<double>(t.area);
    const double z0 = z[0], dz1 = double(z[1]) - z0, dz2 = double(z[2]) - z0;
    const std::int64_t step0 = t.edge[0].A * kSubpixel, step1 = t.edge[1].A * kSubpixel,
                       step2 = t.edge[2].A * kSubpixel;
    for (std::int64_t y = ya; y <= yb; ++y) {
        const std::int64_t px = t.x0 * kSubpixel, py = y * kSubpixel;
        // Biased edge values: covered <=> all three >= 0 <=> their bitwise OR >= 0.
        std::int64_t e0 = t.edge[0].A * px + t.edge[0].B * py + t.edge[0].C - t.edge[0].bias;
        std::int64_t e1 = t.edge[1].A * px + t.edge[1].B * py + t.edge[1].C - t.edge[1].bias;
        std::int64_t e2 = t.edge[2].A * px + t.edge[2].B * py + t.edge[2].C - t.edge[2].bias;
        const std::size_t row = static_cast<std::size_t>(y) * static_cast<std::size_t>(out.width);
        for (std::int64_t x = t.x0; x <= t.x1; ++x, e0 += step0, e1 += step1, e2 += step2) {
            if ((e0 | e1 | e2) < 0) continue;
            const double b1 = static_cast<double>(e1 + t.edge[1].bias) * inv_area;
            const double b2 = static_cast<double>(e2 + t.edge[2].bias) * inv_area;
            // b in [0, 1] and z finite, so the float conversion stays in range.
            const float d = static_cast<float>(z0 + b1 * dz1 + b2 * dz2);
            const std::size_t i = row + static_cast<std::size_t>(x);
            if (!(d < out.depth[i])) continue;
            out.depth[i] = d;
            out.triangle_id[i] = id;
            if (w) {
                const double b0 = static_cast<double>(e0 + t.edge[0].bias) * inv_area;
                const double q0 = b0 / w[0], q1 = b1 / w[1], q2 = b2 / w[2];
                const double sum = q0 + q1 + q2;  // > 0: b >= 0 with one b > 0, w > 0
                out.barycentrics[2 * i] = static_cast<float>(q1 / sum);
                out.barycentrics[2 * i + 1] = static_cast<float>(q2 / sum);
            } else {
                out.barycentrics[2 * i] = static_cast<float>(b1);
                out.barycentrics[2 * i + 1] = static_cast<float>(b2);
            }
        }
    }
}

}  // namespace detail

// Rasterizes `num_triangles` triangles (vertex indices, must be in [0, num_vertices); the
// binding checks) of `vertices` (x px, y px, depth; num_vertices x 3) into `out`, which it
// first clears (id -1, barycentrics 0, depth +inf). `w` (num_vertices) may be null for
// affine barycentrics. Triangles touching an invalid vertex (see snap_vertex) are skipped.
//
// Work split: (1) vertices are snapped and (2) triangles set up in parallel chunks,
// (3) triangles are binned into horizontal bands in index order, (4) bands are drawn in
// parallel. Output is bit-identical for any thread count.
inline void rasterize(const float* vertices, std::size_t num_vertices, const std::int32_t* triangles,
                      std::size_t num_triangles, const float* w, const RasterTarget& out,
                      const RasterOptions& opt) {
    const unsigned threads = std::max(1u, opt.threads);
    const std::size_t npix = static_cast<std::size_t>(out.height) * static_cast<std::size_t>(out.width);
    parallel_ranges(npix, threads, [&](std::size_t a, std::size_t b, unsigned) {
        std::fill(out.triangle_id + a, out.triangle_id + b, -1);
        std::fill(out.barycentrics + 2 * a, out.barycentrics + 2 * b, 0.0f);
        std::fill(out.depth + a, out.depth + b, std::numeric_limits<float>::infinity());
    });
    if (num_triangles == 0 || npix == 0) return;

    std::vector<FixedPoint> fixed(num_vertices);
    std::vector<unsigned char> valid(num_vertices);
    parallel_ranges(num_vertices, threads, [&](std::size_t a, std::size_t b, unsigned) {
        for (std::size_t v = a; v < b; ++v) valid[v] = detail::snap_vertex(vertices + 3 * v, w ? w + v : nullptr, fixed[v]);
    });

    auto load = [&](std::size_t t, FixedPoint p[3]) {
        const std::int32_t* tri = triangles + 3 * t;
        if (!(valid[tri[0]] && valid[tri[1]] && valid[tri[2]])) return false;
        for (int k = 0; k < 3; ++k) p[k] = fixed[tri[k]];
        return true;
    };

    // Bands: enough of them for dynamic load balancing, tall enough that most triangles
    // fall into one band only.
    const std::int64_t band_h = std::max<std::int64_t>(8, (out.height + 8 * threads - 1) / (8 * threads));
    const std::size_t nbands = static_cast<std::size_t>((out.height + band_h - 1) / band_h);

    // Row span of each triangle that can draw anything; y0 = -1 marks the rest.
    std::vector<std::int32_t> ty0(num_triangles), ty1(num_triangles);
    const unsigned setup_workers = static_cast<unsigned>(std::min<std::size_t>(threads, num_triangles));
    std::vector<std::size_t> counts(static_cast<std::size_t>(setup_workers) * nbands, 0);
    parallel_ranges(num_triangles, setup_workers, [&](std::size_t a, std::size_t b, unsigned k) {
        std::size_t* cnt = counts.data() + static_cast<std::size_t>(k) * nbands;
        for (std::size_t t = a; t < b; ++t) {
            FixedPoint p[3];
            detail::TriangleSetup s;
            if (!load(t, p) || !detail::setup_triangle(p, out.height, out.width, opt.cull_backfaces, s)) {
                ty0[t] = ty1[t] = -1;
                continue;
            }
            ty0[t] = static_cast<std::int32_t>(s.y0);
            ty1[t] = static_cast<std::int32_t>(s.y1);
            for (std::int64_t band = s.y0 / band_h; band <= s.y1 / band_h; ++band) ++cnt[band];
        }
    });

    // Bin lists, band-major; within a band, worker k's (lower-index) triangles come before
    // worker k+1's, so each list is in increasing triangle index.
    std::vector<std::size_t> band_start(nbands + 1, 0), offset(counts.size());
    std::size_t total = 0;
    for (std::size_t band = 0; band < nbands; ++band) {
        band_start[band] = total;
        for (unsigned k = 0; k < setup_workers; ++k) {
            offset[k * nbands + band] = total;
            total += counts[k * nbands + band];
        }
    }
    band_start[nbands] = total;
    std::vector<std::int32_t> bins(total);
    parallel_ranges(num_triangles, setup_workers, [&](std::size_t a, std::size_t b, unsigned k) {
        std::size_t* off = offset.data() + static_cast<std::size_t>(k) * nbands;
        for (std::size_t t = a; t < b; ++t) {
            if (ty0[t] < 0) continue;
            for (std::int64_t band = ty0[t] / band_h; band <= ty1[t] / band_h; ++band)
                bins[off[band]++] = static_cast<std::int32_t>(t);
        }
    });

    parallel_tasks(nbands, threads, [&](std::size_t band) {
        const std::int64_t r0 = static_cast<std::int64_t>(band) * band_h;
        const std::int64_t r1 = std::min<std::int64_t>(r0 + band_h, out.height);
        for (std::size_t j = band_start[band]; j < band_start[band + 1]; ++j) {
            const std::int32_t t = bins[j];
            FixedPoint p[3];
            detail::TriangleSetup s;
            load(static_cast<std::size_t>(t), p);
            detail::setup_triangle(p, out.height, out.width, opt.cull_backfaces, s);
            const std::int32_t* tri = triangles + 3 * static_cast<std::size_t>(t);
            const float z[3] = {vertices[3 * tri[0] + 2], vertices[3 * tri[1] + 2], vertices[3 * tri[2] + 2]};
            float wv[3];
            if (w) wv[0] = w[tri[0]], wv[1] = w[tri[1]], wv[2] = w[tri[2]];
            detail::draw_rows(s, t, z, w ? wv : nullptr, r0, r1, out);
        }
    });
}

}  // namespace affcore::render
