// Bindings for the CPU renderer primitives (cpp/affcore/render/). Everything is validated
// here, with the GIL held; the heavy work then runs with the GIL released and touches only
// raw buffers that the arrays kept alive in this scope own.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <limits>
#include <string>

#include "affcore/render/anchor_bbox.hpp"
#include "affcore/render/interpolate.hpp"
#include "affcore/render/parallel.hpp"
#include "affcore/render/rasterize.hpp"
#include "affcore/render/sample.hpp"
#include "bindings.hpp"
#include "checks.hpp"

namespace affcore::bindings {

namespace {

unsigned require_threads(int threads) {
    if (threads < 0) throw py::value_error("threads: must be >= 0 (0 = all hardware threads), got " + std::to_string(threads));
    return render::resolve_threads(threads);
}

py::tuple rasterize(const py::object& vertices_obj, const py::object& triangles_obj, long long height,
                    long long width, const py::object& w_obj, bool cull_backfaces, int threads) {
    auto vertices = require_array<float>(vertices_obj, "vertices");
    require_shape(vertices, {-1, 3}, "vertices");
    const py::ssize_t nv = vertices.shape(0);
    auto triangles = require_triangles(triangles_obj, nv);
    const int H = require_image_side(height, "height"), W = require_image_side(width, "width");
    carray<float> w;
    const float* wp = nullptr;
    if (!w_obj.is_none()) {
        w = require_array<float>(w_obj, "w");
        require_shape(w, {nv}, "w");
        wp = w.data();
    }
    render::RasterOptions opt;
    opt.cull_backfaces = cull_backfaces;
    opt.threads = require_threads(threads);

    carray<std::int32_t> tid({H, W});
    carray<float> bary({H, W, 2});
    carray<float> depth({H, W});
    render::RasterTarget out;
    out.height = H;
    out.width = W;
    out.triangle_id = tid.mutable_data();
    out.barycentrics = bary.mutable_data();
    out.depth = depth.mutable_data();
    const float* vp = vertices.data();
    const std::int32_t* tp = triangles.data();
    const auto nt = static_cast<std::size_t>(triangles.shape(0));
    {
        py::gil_scoped_release release;
        render::rasterize(vp, static_cast<std::size_t>(nv), tp, nt, wp, out, opt);
    }
    return py::make_tuple(tid, bary, depth);
}

py::tuple anchor_rasterize_bbox(const py::object& vertices_obj, const py::object& triangles_obj, long long height,
                                long long width) {
    auto vertices = require_array<float>(vertices_obj, "vertices");
    require_shape(vertices, {-1, 3}, "vertices");
    require_finite(vertices, "vertices");
    auto triangles = require_triangles(triangles_obj, vertices.shape(0));
    const int H = require_image_side(height, "height"), W = require_image_side(width, "width");
    carray<std::int32_t> tid({H, W});
    carray<float> bary({H, W, 2});
    carray<float> depth({H, W});
    const float* vp = vertices.data();
    const std::int32_t* tp = triangles.data();
    const auto nt = static_cast<std::size_t>(triangles.shape(0));
    std::int32_t* o_id = tid.mutable_data();
    float* o_b = bary.mutable_data();
    float* o_d = depth.mutable_data();
    {
        py::gil_scoped_release release;
        render::anchor_rasterize_bbox(vp, tp, nt, H, W, o_id, o_b, o_d);
    }
    return py::make_tuple(tid, bary, depth);
}

carray<float> interpolate(const py::object& attributes_obj, const py::object& triangles_obj,
                          const py::object& triangle_id_obj, const py::object& barycentrics_obj, int threads) {
    auto attributes = require_array<float>(attributes_obj, "attributes");
    require_shape(attributes, {-1, -1}, "attributes");
    auto triangles = require_triangles(triangles_obj, attributes.shape(0));
    auto tid = require_array<std::int32_t>(triangle_id_obj, "triangle_id");
    require_shape(tid, {-1, -1}, "triangle_id");
    const py::ssize_t H = tid.shape(0), W = tid.shape(1);
    require_indices(tid, triangles.shape(0), "triangle_id", /*allow_minus_one=*/true);
    auto bary = require_array<float>(barycentrics_obj, "barycentrics");
    require_shape(bary, {H, W, 2}, "barycentrics");
    const unsigned nthreads = require_threads(threads);
    const py::ssize_t C = attributes.shape(1);
    carray<float> out({H, W, C});
    const float* ap = attributes.data();
    const std::int32_t* tp = triangles.data();
    const std::int32_t* ip = tid.data();
    const float* bp = bary.data();
    float* op = out.mutable_data();
    {
        py::gil_scoped_release release;
        render::interpolate(ap, static_cast<std::size_t>(C), tp, ip, bp, static_cast<std::size_t>(H * W), op, nthreads);
    }
    return out;
}

template <typename Pixel>
carray<float> sample_typed(const py::object& image_obj, const carray<float>& coords, const carray<bool>* mask,
                           unsigned threads) {
    auto image = require_array<Pixel>(image_obj, "image");
    render::ImageView view;
    if (image.ndim() != 2 && image.ndim() != 3)
        throw py::value_error("image: expected shape (H, W) or (H, W, C), got " + shape_string(image));
    if (image.shape(0) < 1 || image.shape(1) < 1 || (image.ndim() == 3 && image.shape(2) < 1))
        throw py::value_error("image: every dimension must be >= 1, got " + shape_string(image));
    if (image.shape(0) > std::numeric_limits<int>::max() || image.shape(1) > std::numeric_limits<int>::max())
        throw py::value_error("image: too large, got " + shape_string(image));
    view.height = static_cast<int>(image.shape(0));
    view.width = static_cast<int>(image.shape(1));
    view.channels = image.ndim() == 3 ? static_cast<int>(image.shape(2)) : 1;
    const py::ssize_t h = coords.shape(0), w = coords.shape(1);
    carray<float> out = image.ndim() == 3 ? carray<float>({h, w, static_cast<py::ssize_t>(view.channels)})
                                          : carray<float>({h, w});
    const Pixel* ip = image.data();
    const float* cp = coords.data();
    const bool* mp = mask ? mask->data() : nullptr;
    float* op = out.mutable_data();
    {
        py::gil_scoped_release release;
        render::sample_bilinear(ip, view, cp, mp, static_cast<std::size_t>(h * w), op, threads);
    }
    return out;
}

carray<float> sample_bilinear(const py::object& image_obj, const py::object& coords_obj, const py::object& mask_obj,
                              int threads) {
    auto coords = require_array<float>(coords_obj, "coords");
    require_shape(coords, {-1, -1, 2}, "coords");
    carray<bool> mask;
    const bool has_mask = !mask_obj.is_none();
    if (has_mask) {
        mask = require_array<bool>(mask_obj, "mask");
        require_shape(mask, {coords.shape(0), coords.shape(1)}, "mask");
    }
    const unsigned nthreads = require_threads(threads);
    if (!py::isinstance<py::array>(image_obj))
        throw py::type_error("image: expected a numpy array, got " +
                             std::string(py::str(py::type::of(image_obj).attr("__name__"))));
    auto dtype = py::reinterpret_borrow<py::array>(image_obj).dtype();
    if (is_dtype<std::uint8_t>(dtype))
        return sample_typed<std::uint8_t>(image_obj, coords, has_mask ? &mask : nullptr, nthreads);
    if (is_dtype<float>(dtype))
        return sample_typed<float>(image_obj, coords, has_mask ? &mask : nullptr, nthreads);
    throw py::type_error("image: expected dtype uint8 or float32, got " + std::string(py::str(dtype)));
}

}  // namespace

void bind_render(pybind11::module_& m) {
    using namespace pybind11::literals;
    m.def("rasterize", &rasterize, "vertices"_a, "triangles"_a, "height"_a, "width"_a, "w"_a = py::none(),
          "cull_backfaces"_a = false, "threads"_a = 0,
          "Rasterize triangles to (triangle_id, barycentrics, depth). See affcore.render.rasterize.");
    m.def("interpolate", &interpolate, "attributes"_a, "triangles"_a, "triangle_id"_a, "barycentrics"_a,
          "threads"_a = 0, "Interpolate per-vertex attributes per pixel. See affcore.render.interpolate.");
    m.def("sample_bilinear", &sample_bilinear, "image"_a, "coords"_a, "mask"_a = py::none(), "threads"_a = 0,
          "Bilinear lookup with edge clamping. See affcore.render.sample_bilinear.");
    m.def("_anchor_rasterize_bbox", &anchor_rasterize_bbox, "vertices"_a, "triangles"_a, "height"_a, "width"_a,
          "BENCHMARK ANCHOR ONLY: single-threaded Sim3DR-style bounding-box rasterizer (not watertight); "
          "exists so benchmarks can report speed ratios. Do not use for rendering.");
}

}  // namespace affcore::bindings
