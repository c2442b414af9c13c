// Per-pixel attribute interpolation from a visibility buffer (rasterize.hpp), as
// nvdiffrast's interpolate(): out = b0*a[v0] + b1*a[v1] + b2*a[v2], with b0 = 1 - b1 - b2.
// Kept separate from rasterization so one raster pass can feed any number of attributes
// (texture coordinates, normals, vertex ids) without re-rasterizing.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "affcore/render/parallel.hpp"

namespace affcore::render {

// attributes: num_vertices x channels; triangles: indices in [0, num_vertices);
// triangle_id: pixels, each -1 or in [0, num_triangles) (the binding checks both);
// barycentrics: pixels x 2. Writes pixels x channels; background pixels get zeros.
inline void interpolate(const float* attributes, std::size_t channels, const std::int32_t* triangles,
                        const std::int32_t* triangle_id, const float* barycentrics, std::size_t pixels,
                        float* out, unsigned threads) {
    parallel_ranges(pixels, std::max(1u, threads), [&](std::size_t a, std::size_t b, unsigned) {
        for (std::size_t i = a; i < b; ++i) {
            float* o = out + i * channels;
            const std::int32_t t = triangle_id[i];
            if (t < 0) {
                std::fill(o, o + channels, 0.0f);
                continue;
            }
            const std::int32_t* tri = triangles + 3 * static_cast<std::size_t>(t);
            const float b1 = barycentrics[2 * i], b2 = barycentrics[2 * i + 1], b0 = 1.0f - b1 - b2;
            const float* a0 = attributes + static_cast<std::size_t>(tri[0]) * channels;
            const float* a1 = attributes + static_cast<std::size_t>(tri[1]) * channels;
            const float* a2 = attributes + static_cast<std::size_t>(tri[2]) * channels;
            for (std::size_t c = 0; c < channels; ++c) o[c] = b0 * a0[c] + b1 * a1[c] + b2 * a2[c];
        }
    });
}

}  // namespace affcore::render
