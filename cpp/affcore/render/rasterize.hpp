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
#include "affcore/render/raster_core.hpp"

// The pixel loop has an AVX-512 version (draw_rows_avx512) where the compiler targets it
// (-march=native on such a CPU); both give the same bytes.
#if defined(__AVX512F__) && defined(__AVX512DQ__) && defined(__AVX512VL__) && defined(__BMI2__)
#include <immintrin.h>
#define AFFCORE_RASTER_AVX512 1
#else
#define AFFCORE_RASTER_AVX512 0
#endif

namespace affcore::render {

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

#if AFFCORE_RASTER_AVX512
// A lane mask with the lowest min(n, lanes) bits set (n >= 1).
template <typename Mask>
inline Mask lanes_up_to(std::int64_t n) {
    constexpr int lanes = 8 * static_cast<int>(sizeof(Mask));
    return n >= lanes ? static_cast<Mask>(~Mask{0}) : static_cast<Mask>((1u << n) - 1u);
}
#endif

// True when some pixel of rows [ya, yb] x columns [t.x0, t.x1] holds a depth > zmin.
inline bool any_farther(const RasterTarget& out, const TriangleSetup& t, std::int64_t ya, std::int64_t yb,
                        float zmin) {
    for (std::int64_t y = ya; y <= yb; ++y) {
        const float* d = out.depth + static_cast<std::size_t>(y) * static_cast<std::size_t>(out.width);
        std::int64_t x = t.x0;
#if AFFCORE_RASTER_AVX512
        const __m512 zv = _mm512_set1_ps(zmin);
        for (; x <= t.x1; x += 16) {
            const __mmask16 in = lanes_up_to<__mmask16>(t.x1 - x + 1);
            if (_mm512_mask_cmp_ps_mask(in, _mm512_maskz_loadu_ps(in, d + x), zv, _CMP_GT_OQ)) return true;
        }
#endif
        bool farther = false;
        for (; x <= t.x1; ++x) farther |= d[x] > zmin;
        if (farther) return true;
    }
    return false;
}

#if AFFCORE_RASTER_AVX512
// draw_rows' pixel loop eight pixels at a time, without a branch per pixel: small
// triangles (most of a face mesh's cover a few pixels per row) made the scalar loop's
// coverage and depth branches mispredict at every span end. The arithmetic is
// raster_core.hpp's, lane by lane: the same integer edge values, the same correctly rounded
// double operations in the same order (no FMA: these translation units are built with
// -ffp-contract=off, and intrinsics are not fused without contraction), the same
// conversions; so depth, ids and barycentrics are bit-identical to the scalar loop.
inline void draw_rows_avx512(const TriangleSetup& t, const PixelConstants& c, std::int32_t id, const float* w,
                             std::int64_t ya, std::int64_t yb, const RasterTarget& out) {
    const __m512i lane = _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0);
    const __m512i zero = _mm512_setzero_si512();
    __m512i lane_step[3], bias[3];
    std::int64_t step8[3];
    for (int k = 0; k < 3; ++k) {
        const std::int64_t step = t.edge[k].A * kSubpixel;
        lane_step[k] = _mm512_mullo_epi64(lane, _mm512_set1_epi64(step));
        bias[k] = _mm512_set1_epi64(t.edge[k].bias);
        step8[k] = 8 * step;
    }
    const __m512d inv_area = _mm512_set1_pd(c.inv_area), z0 = _mm512_set1_pd(c.z0), dz1 = _mm512_set1_pd(c.dz1),
                  dz2 = _mm512_set1_pd(c.dz2);
    __m512d rw[3];
    if (w)
        for (int k = 0; k < 3; ++k) rw[k] = _mm512_set1_pd(static_cast<double>(w[k]));
    const __m256i idv = _mm256_set1_epi32(id);
    // barycentric pairs of pixels 0-3 and 4-7 of a chunk: (b1, b2) interleaved
    const __m256i lo_pairs = _mm256_set_epi32(11, 3, 10, 2, 9, 1, 8, 0);
    const __m256i hi_pairs = _mm256_set_epi32(15, 7, 14, 6, 13, 5, 12, 4);
    for (std::int64_t y = ya; y <= yb; ++y) {
        std::int64_t e[3];
        for (int k = 0; k < 3; ++k) e[k] = edge_value(t.edge[k], t.x0, y);
        const std::size_t row = static_cast<std::size_t>(y) * static_cast<std::size_t>(out.width);
        for (std::int64_t x = t.x0; x <= t.x1; x += 8) {
            const __m512i e0 = _mm512_add_epi64(_mm512_set1_epi64(e[0]), lane_step[0]);
            const __m512i e1 = _mm512_add_epi64(_mm512_set1_epi64(e[1]), lane_step[1]);
            const __m512i e2 = _mm512_add_epi64(_mm512_set1_epi64(e[2]), lane_step[2]);
            for (int k = 0; k < 3; ++k) e[k] += step8[k];
            const __mmask8 covered = _mm512_mask_cmpge_epi64_mask(
                lanes_up_to<__mmask8>(t.x1 - x + 1), _mm512_or_si512(_mm512_or_si512(e0, e1), e2), zero);
            if (!covered) continue;
            const std::size_t i = row + static_cast<std::size_t>(x);
            const __m512d b1 = _mm512_mul_pd(_mm512_cvtepi64_pd(_mm512_add_epi64(e1, bias[1])), inv_area);
            const __m512d b2 = _mm512_mul_pd(_mm512_cvtepi64_pd(_mm512_add_epi64(e2, bias[2])), inv_area);
            const __m256 d = _mm512_cvtpd_ps(
                _mm512_add_pd(_mm512_add_pd(z0, _mm512_mul_pd(b1, dz1)), _mm512_mul_pd(b2, dz2)));
            const __mmask8 nearer =
                _mm256_mask_cmp_ps_mask(covered, d, _mm256_maskz_loadu_ps(covered, out.depth + i), _CMP_LT_OQ);
            if (!nearer) continue;
            _mm256_mask_storeu_ps(out.depth + i, nearer, d);
            _mm256_mask_storeu_epi32(out.triangle_id + i, nearer, idv);
            __m256 o1, o2;
            if (w) {
                const __m512d b0 = _mm512_mul_pd(_mm512_cvtepi64_pd(_mm512_add_epi64(e0, bias[0])), inv_area);
                const __m512d q0 = _mm512_div_pd(b0, rw[0]), q1 = _mm512_div_pd(b1, rw[1]),
                              q2 = _mm512_div_pd(b2, rw[2]);
                const __m512d sum = _mm512_add_pd(_mm512_add_pd(q0, q1), q2);
                o1 = _mm512_cvtpd_ps(_mm512_div_pd(q1, sum));
                o2 = _mm512_cvtpd_ps(_mm512_div_pd(q2, sum));
            } else {
                o1 = _mm512_cvtpd_ps(b1);
                o2 = _mm512_cvtpd_ps(b2);
            }
            const __m512 both = _mm512_insertf32x8(_mm512_castps256_ps512(o1), o2, 1);
            const __m256 lo = _mm512_castps512_ps256(_mm512_permutexvar_ps(_mm512_castsi256_si512(lo_pairs), both));
            const __m256 hi = _mm512_castps512_ps256(_mm512_permutexvar_ps(_mm512_castsi256_si512(hi_pairs), both));
            // pixel p's pair goes to floats 2p, 2p+1: each mask bit doubled
            const unsigned pair_mask = static_cast<unsigned>(_pdep_u32(nearer, 0x5555u) * 3u);
            float* bary = out.barycentrics + 2 * i;
            _mm256_mask_storeu_ps(bary, static_cast<__mmask8>(pair_mask & 0xFFu), lo);
            if (pair_mask >> 8)  // (no pointer past the buffer)
                _mm256_mask_storeu_ps(bary + 8, static_cast<__mmask8>(pair_mask >> 8), hi);
        }
    }
}
#endif

// Draws the rows [row_begin, row_end) of one triangle. Every pixel is touched by one band
// only and triangles arrive in index order, so a strict depth test makes the lowest index
// win ties whatever the banding or thread count.
inline void draw_rows(const TriangleSetup& t, std::int32_t id, const float* z, const float* w,
                      std::int64_t row_begin, std::int64_t row_end, const RasterTarget& out) {
    const std::int64_t ya = std::max(t.y0, row_begin), yb = std::min(t.y1, row_end - 1);
    // Hidden triangles (the mouth's inside behind closed lips, eyeballs behind the lids)
    // end here: no pixel's interpolated depth is below the nearest vertex's (a convex
    // combination, rounded to the nearest float), so when every pixel of the bounding box
    // already holds a depth <= that, the strict depth test below would fail everywhere.
    const float zmin = std::min(z[0], std::min(z[1], z[2]));
    if (!any_farther(out, t, ya, yb, zmin)) return;
    // The per-pixel arithmetic is raster_core.hpp's, shared with the GPU rasterizer.
    const PixelConstants c = pixel_constants(t, z);
#if AFFCORE_RASTER_AVX512
    draw_rows_avx512(t, c, id, w, ya, yb, out);
#else
    const std::int64_t step0 = t.edge[0].A * kSubpixel, step1 = t.edge[1].A * kSubpixel,
                       step2 = t.edge[2].A * kSubpixel;
    for (std::int64_t y = ya; y <= yb; ++y) {
        // Biased edge values: covered <=> all three >= 0 <=> their bitwise OR >= 0.
        std::int64_t e0 = edge_value(t.edge[0], t.x0, y);
        std::int64_t e1 = edge_value(t.edge[1], t.x0, y);
        std::int64_t e2 = edge_value(t.edge[2], t.x0, y);
        const std::size_t row = static_cast<std::size_t>(y) * static_cast<std::size_t>(out.width);
        for (std::int64_t x = t.x0; x <= t.x1; ++x, e0 += step0, e1 += step1, e2 += step2) {
            if ((e0 | e1 | e2) < 0) continue;
            const float d = pixel_depth(t, c, e1, e2);
            const std::size_t i = row + static_cast<std::size_t>(x);
            if (!(d < out.depth[i])) continue;
            out.depth[i] = d;
            out.triangle_id[i] = id;
            pixel_barycentrics(t, c, e0, e1, e2, w, out.barycentrics[2 * i], out.barycentrics[2 * i + 1]);
        }
    }
#endif
}

}  // namespace detail

// Rasterizes `num_triangles` triangles (vertex indices, must be in [0, num_vertices); the
// binding checks) of `vertices` (x px, y px, depth; num_vertices x 3) into `out`, which it
// first clears (id -1, barycentrics 0, depth +inf). `w` (num_vertices) may be null for
// affine barycentrics. Triangles touching an invalid vertex (see snap_vertex) are skipped.
//
// Work split: (1) vertices are snapped and (2) triangles set up in parallel chunks,
// (3) triangles are binned into horizontal bands in index order, (4) bands are drawn in
// parallel. One thread draws the triangles in index order without binning. Output is
// bit-identical for any thread count.
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

    // Draws triangle t's rows [r0, r1).
    auto draw = [&](std::size_t t, std::int64_t r0, std::int64_t r1) {
        FixedPoint p[3];
        detail::TriangleSetup s;
        if (!load(t, p) || !detail::setup_triangle(p, out.height, out.width, opt.cull_backfaces, s)) return;
        const std::int32_t* tri = triangles + 3 * t;
        const float z[3] = {vertices[3 * tri[0] + 2], vertices[3 * tri[1] + 2], vertices[3 * tri[2] + 2]};
        float wv[3];
        if (w) wv[0] = w[tri[0]], wv[1] = w[tri[1]], wv[2] = w[tri[2]];
        detail::draw_rows(s, static_cast<std::int32_t>(t), z, w ? wv : nullptr, r0, r1, out);
    };

    // One thread: every triangle in index order, set up once; nothing to bin.
    if (threads == 1) {
        for (std::size_t t = 0; t < num_triangles; ++t) draw(t, 0, out.height);
        return;
    }

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
        for (std::size_t j = band_start[band]; j < band_start[band + 1]; ++j)
            draw(static_cast<std::size_t>(bins[j]), r0, r1);
    });
}

}  // namespace affcore::render
