// Host entry points of the CUDA kernels (cpp/affcore/cuda/*.cu), callable from the
// bindings without any CUDA header. Only declared; defined in the .cu files, which CMake
// compiles (and defines AFFCORE_WITH_CUDA) only when nvcc is found.
//
// Every function copies its inputs to the current device, runs there, copies the results
// back and returns after the device has finished. Every CUDA error (no device, out of
// memory, a failed launch) is thrown as std::runtime_error, which pybind11 turns into a
// Python RuntimeError; none terminates the process. Arguments are assumed validated (the
// bindings check shapes, dtypes and index ranges exactly as for the CPU).
#pragma once
#include <cstdint>
#include <string>

namespace affcore::cuda {

// Empty when a CUDA device can be used; otherwise why not ("no CUDA device: <reason>").
// Asks the runtime once per process and remembers the answer.
std::string device_unavailable_reason();
// Name of the current device, or empty when there is none.
std::string device_name();

// B meshes sharing one triangle list: vertices B x V x 3 (x px, y px, depth), w B x V or
// null, triangles T x 3. Writes B x H x W triangle ids, B x H x W x 2 barycentrics and
// B x H x W depths, exactly as render::rasterize would for each mesh.
void rasterize_batch(const float* vertices, const float* w, int B, int V, const std::int32_t* triangles, int T,
                     int H, int W, bool cull_backfaces, std::int32_t* triangle_id, float* barycentrics,
                     float* depth);

// attributes: (B x) V x C (per_mesh = true: one attribute set per image); triangle_id
// B x P, barycentrics B x P x 2; writes B x P x C as render::interpolate.
void interpolate_batch(const float* attributes, bool per_mesh, int V, int C, const std::int32_t* triangles, int T,
                       const std::int32_t* triangle_id, const float* barycentrics, int B, long long P, float* out);

// images: B x IH x IW x C of uint8 (is_u8) or float; coords B x P x 2; mask B x P or null.
// Writes B x P x C as render::sample_bilinear.
void sample_bilinear_batch(const void* images, bool is_u8, int B, int IH, int IW, int C, const float* coords,
                           const bool* mask, long long P, float* out);

struct BlendInfo {
    long unknowns = 0;
    int iterations = 0;
    float residual = 0.0f;
};

// B Poisson blends of the same size (source, target, out: B x H x W x 3; mask B x H x W,
// nonzero = in), the equation and stopping rule of blend::poisson_blend; info gets one
// entry per image. The B images share one solver grid: the union of the masks' bounding
// boxes grown by one pixel.
void poisson_blend_batch(const std::uint8_t* source, const std::uint8_t* target, const std::uint8_t* mask, int B,
                         int H, int W, float tolerance, int max_iterations, std::uint8_t* out, BlendInfo* info);

}  // namespace affcore::cuda
