// The skin along a face's outline, which expression synthesis leaves out of the targets it
// renders (why: python/affcore/synthesis.py, RIM_FACING):
//  grazing_rim   the band of triangles along the mesh's outline that turn away from the
//                camera;
//  near_outline  the triangles with a vertex near the edge of the fitted face's coverage
//                of the photo, given that edge's distance transform.
//
// grazing_rim:
// Facing: the z of each vertex's unit area-weighted normal, towards the camera (front faces
// are anticlockwise on screen with y down, so their screen normal has z < 0), then averaged
// `rounds` times: each vertex takes the mean over its triangles of their vertices' mean.
// Averaging removes single triangles that face the camera a little more than their
// neighbours, which would otherwise stay behind as islands inside the rim. The rim: the
// triangles whose vertices' mean facing is below `facing_limit`, reachable from an outline
// vertex through such triangles sharing a vertex.
//
// Sequential, in index order: the same result on every run.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace affcore::synthesis {

// rim[t] = 1 for the rim's triangles among `triangles` (num_triangles x 3, indices into
// `screen`, num_vertices x 3: x px, y px, depth), 0 for the others. outline[v] != 0 marks
// the vertices of the mesh's outer boundary.
inline void grazing_rim(const float* screen, std::size_t num_vertices, const std::int32_t* triangles,
                        std::size_t num_triangles, const std::uint8_t* outline, double facing_limit, int rounds,
                        std::uint8_t* rim) {
    const std::size_t nv = num_vertices, nt = num_triangles;
    std::vector<double> normal(3 * nv, 0.0);
    std::vector<std::int32_t> degree(nv, 0);
    for (std::size_t t = 0; t < nt; ++t) {
        const std::int32_t* tri = triangles + 3 * t;
        const float* a = screen + 3 * static_cast<std::size_t>(tri[0]);
        const float* b = screen + 3 * static_cast<std::size_t>(tri[1]);
        const float* c = screen + 3 * static_cast<std::size_t>(tri[2]);
        const double u[3] = {double(b[0]) - a[0], double(b[1]) - a[1], double(b[2]) - a[2]};
        const double w[3] = {double(c[0]) - a[0], double(c[1]) - a[1], double(c[2]) - a[2]};
        const double n[3] = {u[1] * w[2] - u[2] * w[1], u[2] * w[0] - u[0] * w[2], u[0] * w[1] - u[1] * w[0]};
        for (int k = 0; k < 3; ++k) {
            double* vn = normal.data() + 3 * static_cast<std::size_t>(tri[k]);
            vn[0] += n[0];
            vn[1] += n[1];
            vn[2] += n[2];
            ++degree[static_cast<std::size_t>(tri[k])];
        }
    }
    std::vector<double> facing(nv, 0.0);
    for (std::size_t v = 0; v < nv; ++v) {
        const double* n = normal.data() + 3 * v;
        const double len = std::sqrt(n[0] * n[0] + n[1] * n[1] + n[2] * n[2]);
        facing[v] = len > 0.0 ? -n[2] / len : 0.0;
    }
    std::vector<double> mean(nt), sum(nv);
    auto triangle_means = [&] {
        for (std::size_t t = 0; t < nt; ++t) {
            const std::int32_t* tri = triangles + 3 * t;
            mean[t] = (facing[static_cast<std::size_t>(tri[0])] + facing[static_cast<std::size_t>(tri[1])] +
                       facing[static_cast<std::size_t>(tri[2])]) / 3.0;
        }
    };
    for (int r = 0; r < rounds; ++r) {
        triangle_means();
        std::fill(sum.begin(), sum.end(), 0.0);
        for (std::size_t t = 0; t < nt; ++t)
            for (int k = 0; k < 3; ++k) sum[static_cast<std::size_t>(triangles[3 * t + k])] += mean[t];
        for (std::size_t v = 0; v < nv; ++v)
            if (degree[v] > 0) facing[v] = sum[v] / degree[v];
    }
    triangle_means();

    // Vertex -> triangles (CSR), then a breadth-first walk from the outline over the
    // grazing triangles.
    std::vector<std::size_t> first(nv + 1, 0);
    for (std::size_t v = 0; v < nv; ++v) first[v + 1] = first[v] + static_cast<std::size_t>(degree[v]);
    std::vector<std::size_t> fill(first.begin(), first.end() - 1);
    std::vector<std::size_t> incident(first[nv]);
    for (std::size_t t = 0; t < nt; ++t)
        for (int k = 0; k < 3; ++k) incident[fill[static_cast<std::size_t>(triangles[3 * t + k])]++] = t;
    std::vector<std::uint8_t> reached(nv, 0);
    std::vector<std::size_t> queue;
    for (std::size_t v = 0; v < nv; ++v)
        if (outline[v]) {
            reached[v] = 1;
            queue.push_back(v);
        }
    for (std::size_t t = 0; t < nt; ++t) rim[t] = 0;
    for (std::size_t q = 0; q < queue.size(); ++q) {
        const std::size_t v = queue[q];
        for (std::size_t i = first[v]; i < first[v + 1]; ++i) {
            const std::size_t t = incident[i];
            if (rim[t] || !(mean[t] < facing_limit)) continue;
            rim[t] = 1;
            for (int k = 0; k < 3; ++k) {
                const std::size_t u = static_cast<std::size_t>(triangles[3 * t + k]);
                if (!reached[u]) {
                    reached[u] = 1;
                    queue.push_back(u);
                }
            }
        }
    }
}

// near[t] = 1 when a vertex of triangle t lies where `distance` (h x w, row-major; cell
// (r, c) covers screen x in [x0 + c * cell, x0 + (c + 1) * cell), y likewise) is below
// `limit`; positions outside the grid take its nearest cell.
inline void near_outline(const float* screen, const std::int32_t* triangles, std::size_t num_triangles,
                         const float* distance, int h, int w, double x0, double y0, double cell, double limit,
                         std::uint8_t* near) {
    auto at = [&](std::int32_t v) {
        const float* p = screen + 3 * static_cast<std::size_t>(v);
        // floor of the cell index, clamped (finite inputs: the binding checks)
        const double c = std::floor((double(p[0]) - x0) / cell), r = std::floor((double(p[1]) - y0) / cell);
        const int ci = c < 0 ? 0 : (c > w - 1 ? w - 1 : static_cast<int>(c));
        const int ri = r < 0 ? 0 : (r > h - 1 ? h - 1 : static_cast<int>(r));
        return double(distance[static_cast<std::size_t>(ri) * static_cast<std::size_t>(w) + static_cast<std::size_t>(ci)]);
    };
    for (std::size_t t = 0; t < num_triangles; ++t) {
        const std::int32_t* tri = triangles + 3 * t;
        near[t] = (at(tri[0]) < limit || at(tri[1]) < limit || at(tri[2]) < limit) ? 1 : 0;
    }
}

}  // namespace affcore::synthesis
