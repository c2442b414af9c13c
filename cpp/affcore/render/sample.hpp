// Bilinear texture lookup at arbitrary pixel coordinates, in the renderer's pixel
// convention (pixel (row i, column j) has its centre at (x = j, y = i)). Used to pull the
// photo's own colours onto the deformed face: coords usually come from interpolate() of
// per-vertex image positions.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "affcore/render/parallel.hpp"

namespace affcore::render {

struct ImageView {
    int height = 0, width = 0, channels = 0;
};

// image: height x width x channels (uint8 or float); coords: points x 2 (x, y); mask:
// points or null. Writes points x channels floats. Outside the image the edge pixels are
// repeated (as cv2.BORDER_REPLICATE); where mask is false or a coordinate is NaN the
// output is 0.
template <typename Pixel>
void sample_bilinear(const Pixel* image, const ImageView& view, const float* coords, const bool* mask,
                     std::size_t points, float* out, unsigned threads) {
    const std::size_t C = static_cast<std::size_t>(view.channels);
    const std::size_t stride = static_cast<std::size_t>(view.width) * C;
    const float xmax = static_cast<float>(view.width - 1), ymax = static_cast<float>(view.height - 1);
    parallel_ranges(points, std::max(1u, threads), [&](std::size_t a, std::size_t b, unsigned) {
        for (std::size_t i = a; i < b; ++i) {
            float* o = out + i * C;
            float x = coords[2 * i], y = coords[2 * i + 1];
            if ((mask && !mask[i]) || std::isnan(x) || std::isnan(y)) {
                std::fill(o, o + C, 0.0f);
                continue;
            }
            // Clamping the coordinate first is the same as replicating the border (both
            // taps land on the edge pixel) and keeps +-inf and huge values from reaching
            // the float->int conversion, which would be undefined.
            x = std::min(std::max(x, 0.0f), xmax);
            y = std::min(std::max(y, 0.0f), ymax);
            const int x0 = static_cast<int>(x), y0 = static_cast<int>(y);  // x, y >= 0: trunc = floor
            const int x1 = std::min(x0 + 1, view.width - 1), y1 = std::min(y0 + 1, view.height - 1);
            const float fx = x - static_cast<float>(x0), fy = y - static_cast<float>(y0);
            const Pixel* r0 = image + static_cast<std::size_t>(y0) * stride;
            const Pixel* r1 = image + static_cast<std::size_t>(y1) * stride;
            const std::size_t c0 = static_cast<std::size_t>(x0) * C, c1 = static_cast<std::size_t>(x1) * C;
            for (std::size_t c = 0; c < C; ++c) {
                const float top = static_cast<float>(r0[c0 + c]) + fx * (static_cast<float>(r0[c1 + c]) - static_cast<float>(r0[c0 + c]));
                const float bot = static_cast<float>(r1[c0 + c]) + fx * (static_cast<float>(r1[c1 + c]) - static_cast<float>(r1[c0 + c]));
                o[c] = top + fy * (bot - top);
            }
        }
    });
}

}  // namespace affcore::render
