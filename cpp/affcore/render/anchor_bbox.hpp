// BENCHMARK ANCHOR ONLY - not part of the renderer and not used by the pipeline.
//
// A single-threaded, C-style bounding-box rasterizer of the kind 3DDFA_V2's Sim3DR uses
// (per triangle: bounding box; per pixel: float barycentrics from dot products, strict
// inside test, z-test). It exists so benchmarks/test_bench_render.py can report our
// rasterizer's speed as a ratio against a named, well-known approach measured in the same
// run on the same machine. It is not watertight (pixel centres on shared edges are dropped
// by both triangles) and must not be used for rendering.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>

namespace affcore::render {

// vertices: finite (the binding checks), x px, y px, depth (smaller = nearer).
inline void anchor_rasterize_bbox(const float* vertices, const std::int32_t* triangles, std::size_t num_triangles,
                                  int height, int width, std::int32_t* triangle_id, float* barycentrics,
                                  float* depth) {
    const std::size_t npix = static_cast<std::size_t>(height) * static_cast<std::size_t>(width);
    std::fill(triangle_id, triangle_id + npix, -1);
    std::fill(barycentrics, barycentrics + 2 * npix, 0.0f);
    std::fill(depth, depth + npix, std::numeric_limits<float>::infinity());
    // Clamp before converting to int (Sim3DR converts directly, which is undefined for
    // far-off-screen vertices); costs the same.
    auto clampi = [](float v, int lo, int hi) {
        return static_cast<int>(std::min(std::max(v, static_cast<float>(lo)), static_cast<float>(hi)));
    };
    for (std::size_t i = 0; i < num_triangles; ++i) {
        const float* p0 = vertices + 3 * triangles[3 * i];
        const float* p1 = vertices + 3 * triangles[3 * i + 1];
        const float* p2 = vertices + 3 * triangles[3 * i + 2];
        const int x_min = clampi(std::ceil(std::min({p0[0], p1[0], p2[0]})), 0, width);
        const int x_max = clampi(std::floor(std::max({p0[0], p1[0], p2[0]})), -1, width - 1);
        const int y_min = clampi(std::ceil(std::min({p0[1], p1[1], p2[1]})), 0, height);
        const int y_max = clampi(std::floor(std::max({p0[1], p1[1], p2[1]})), -1, height - 1);
        if (x_max < x_min || y_max < y_min) continue;
        for (int y = y_min; y <= y_max; ++y) {
            for (int x = x_min; x <= x_max; ++x) {
                // Sim3DR's get_point_weight: barycentrics from dot products.
                const float v0x = p2[0] - p0[0], v0y = p2[1] - p0[1];
                const float v1x = p1[0] - p0[0], v1y = p1[1] - p0[1];
                const float v2x = static_cast<float>(x) - p0[0], v2y = static_cast<float>(y) - p0[1];
                const float dot00 = v0x * v0x + v0y * v0y, dot01 = v0x * v1x + v0y * v1y;
                const float dot02 = v0x * v2x + v0y * v2y, dot11 = v1x * v1x + v1y * v1y;
                const float dot12 = v1x * v2x + v1y * v2y;
                const float den = dot00 * dot11 - dot01 * dot01;
                const float inv = den == 0.0f ? 0.0f : 1.0f / den;
                const float u = (dot11 * dot02 - dot01 * dot12) * inv;
                const float v = (dot00 * dot12 - dot01 * dot02) * inv;
                const float w0 = 1.0f - u - v, w1 = v, w2 = u;
                if (!(w0 > 0 && w1 > 0 && w2 > 0)) continue;
                const float d = w0 * p0[2] + w1 * p1[2] + w2 * p2[2];
                const std::size_t k = static_cast<std::size_t>(y) * static_cast<std::size_t>(width) + static_cast<std::size_t>(x);
                if (d < depth[k]) {
                    depth[k] = d;
                    triangle_id[k] = static_cast<std::int32_t>(i);
                    barycentrics[2 * k] = w1;
                    barycentrics[2 * k + 1] = w2;
                }
            }
        }
    }
}

}  // namespace affcore::render
