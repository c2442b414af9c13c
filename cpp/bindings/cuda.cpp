// Bindings of the CUDA kernels (affcore/cuda/cuda_api.hpp): batched rasterize, interpolate,
// sample_bilinear and Poisson blend. Always compiled; in a build without CUDA every entry
// point raises RuntimeError("affcore was built without CUDA"). Arguments are validated
// exactly as for the CPU functions (checks.hpp) before anything reaches the device; device
// errors arrive as std::runtime_error, i.e. Python RuntimeError. Device selection
// ("auto"/"cpu"/"cuda") lives in Python (affcore/_device.py).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "bindings.hpp"
#include "checks.hpp"

#ifdef AFFCORE_WITH_CUDA
#include "affcore/cuda/cuda_api.hpp"
#endif

namespace affcore::bindings {

namespace {

constexpr long long kMaxBatch = 65535;
constexpr const char* kBuiltWithoutCuda = "affcore was built without CUDA (no nvcc at build time, or AFFCORE_CUDA=OFF)";

[[noreturn]] void no_cuda() {
    throw std::runtime_error(kBuiltWithoutCuda);
}

// None when CUDA kernels can run here; otherwise the reason, as a string.
py::object unavailable_reason() {
#ifdef AFFCORE_WITH_CUDA
    const std::string why = affcore::cuda::device_unavailable_reason();
    if (why.empty()) return py::none();
    return py::str(why);
#else
    return py::str(kBuiltWithoutCuda);
#endif
}

int require_batch(py::ssize_t b, const char* name) {
    if (b < 1 || b > kMaxBatch)
        throw py::value_error(std::string(name) + ": batch size must be in [1, " + std::to_string(kMaxBatch) +
                              "], got " + std::to_string(b));
    return static_cast<int>(b);
}

int require_int(py::ssize_t v, const char* name) {
    if (v > std::numeric_limits<int>::max()) throw py::value_error(std::string(name) + ": too large");
    return static_cast<int>(v);
}

py::tuple rasterize_batch(const py::object& vertices_obj, const py::object& triangles_obj, long long height,
                          long long width, const py::object& w_obj, bool cull_backfaces) {
    auto vertices = require_array<float>(vertices_obj, "vertices");
    require_shape(vertices, {-1, -1, 3}, "vertices");
    const int B = require_batch(vertices.shape(0), "vertices");
    const py::ssize_t nv = vertices.shape(1);
    auto triangles = require_triangles(triangles_obj, nv);
    const int H = require_image_side(height, "height"), W = require_image_side(width, "width");
    carray<float> w;
    const float* wp = nullptr;
    if (!w_obj.is_none()) {
        w = require_array<float>(w_obj, "w");
        require_shape(w, {B, nv}, "w");
        wp = w.data();
    }
    const int V = require_int(nv, "vertices"), T = require_int(triangles.shape(0), "triangles");
    carray<std::int32_t> tid({py::ssize_t(B), py::ssize_t(H), py::ssize_t(W)});
    carray<float> bary({py::ssize_t(B), py::ssize_t(H), py::ssize_t(W), py::ssize_t(2)});
    carray<float> depth({py::ssize_t(B), py::ssize_t(H), py::ssize_t(W)});
#ifdef AFFCORE_WITH_CUDA
    const float* vp = vertices.data();
    const std::int32_t* tp = triangles.data();
    std::int32_t* o_id = tid.mutable_data();
    float* o_b = bary.mutable_data();
    float* o_d = depth.mutable_data();
    {
        py::gil_scoped_release release;
        affcore::cuda::rasterize_batch(vp, wp, B, V, tp, T, H, W, cull_backfaces, o_id, o_b, o_d);
    }
#else
    (void)wp; (void)V; (void)T; (void)cull_backfaces;
    no_cuda();
#endif
    return py::make_tuple(tid, bary, depth);
}

carray<float> interpolate_batch(const py::object& attributes_obj, const py::object& triangles_obj,
                                const py::object& triangle_id_obj, const py::object& barycentrics_obj) {
    auto attributes = require_array<float>(attributes_obj, "attributes");
    if (attributes.ndim() != 2 && attributes.ndim() != 3)
        throw py::value_error("attributes: expected shape (V, C) or (B, V, C), got " + shape_string(attributes));
    const bool per_mesh = attributes.ndim() == 3;
    const py::ssize_t nv = attributes.shape(per_mesh ? 1 : 0), C = attributes.shape(per_mesh ? 2 : 1);
    auto triangles = require_triangles(triangles_obj, nv);
    auto tid = require_array<std::int32_t>(triangle_id_obj, "triangle_id");
    require_shape(tid, {-1, -1, -1}, "triangle_id");
    const int B = require_batch(tid.shape(0), "triangle_id");
    if (per_mesh) require_shape(attributes, {B, nv, C}, "attributes");
    const py::ssize_t H = tid.shape(1), W = tid.shape(2);
    require_indices(tid, triangles.shape(0), "triangle_id", /*allow_minus_one=*/true);
    auto bary = require_array<float>(barycentrics_obj, "barycentrics");
    require_shape(bary, {B, H, W, 2}, "barycentrics");
    carray<float> out({py::ssize_t(B), H, W, C});
#ifdef AFFCORE_WITH_CUDA
    const int V = require_int(nv, "attributes"), Ci = require_int(C, "attributes"),
              T = require_int(triangles.shape(0), "triangles");
    const float* ap = attributes.data();
    const std::int32_t* tp = triangles.data();
    const std::int32_t* ip = tid.data();
    const float* bp = bary.data();
    float* op = out.mutable_data();
    {
        py::gil_scoped_release release;
        affcore::cuda::interpolate_batch(ap, per_mesh, V, Ci, tp, T, ip, bp, B, static_cast<long long>(H * W), op);
    }
#else
    no_cuda();
#endif
    return out;
}

carray<float> sample_bilinear_batch(const py::object& images_obj, const py::object& coords_obj,
                                    const py::object& mask_obj) {
    auto coords = require_array<float>(coords_obj, "coords");
    require_shape(coords, {-1, -1, -1, 2}, "coords");
    const int B = require_batch(coords.shape(0), "coords");
    const py::ssize_t h = coords.shape(1), w = coords.shape(2);
    carray<bool> mask;
    const bool has_mask = !mask_obj.is_none();
    if (has_mask) {
        mask = require_array<bool>(mask_obj, "mask");
        require_shape(mask, {B, h, w}, "mask");
    }
    if (!py::isinstance<py::array>(images_obj))
        throw py::type_error("images: expected a numpy array, got " +
                             std::string(py::str(py::type::of(images_obj).attr("__name__"))));
    auto dtype = py::reinterpret_borrow<py::array>(images_obj).dtype();
    const bool is_u8 = is_dtype<std::uint8_t>(dtype);
    if (!is_u8 && !is_dtype<float>(dtype))
        throw py::type_error("images: expected dtype uint8 or float32, got " + std::string(py::str(dtype)));
    py::array images = is_u8 ? py::array(require_array<std::uint8_t>(images_obj, "images"))
                             : py::array(require_array<float>(images_obj, "images"));
    if (images.ndim() != 3 && images.ndim() != 4)
        throw py::value_error("images: expected shape (B, H, W) or (B, H, W, C), got " + shape_string(images));
    if (images.shape(0) != B)
        throw py::value_error("images: batch size " + std::to_string(images.shape(0)) + " differs from coords' " +
                              std::to_string(B));
    for (py::ssize_t k = 1; k < images.ndim(); ++k)
        if (images.shape(k) < 1)
            throw py::value_error("images: every dimension must be >= 1, got " + shape_string(images));
    const int IH = require_int(images.shape(1), "images"), IW = require_int(images.shape(2), "images");
    const int C = images.ndim() == 4 ? require_int(images.shape(3), "images") : 1;
    carray<float> out = images.ndim() == 4 ? carray<float>({py::ssize_t(B), h, w, py::ssize_t(C)})
                                           : carray<float>({py::ssize_t(B), h, w});
#ifdef AFFCORE_WITH_CUDA
    const void* ip = images.data();
    const float* cp = coords.data();
    const bool* mp = has_mask ? mask.data() : nullptr;
    float* op = out.mutable_data();
    {
        py::gil_scoped_release release;
        affcore::cuda::sample_bilinear_batch(ip, is_u8, B, IH, IW, C, cp, mp, static_cast<long long>(h * w), op);
    }
#else
    (void)IH; (void)IW;
    no_cuda();
#endif
    return out;
}

carray<std::uint8_t> require_images(const py::handle& obj, const char* name) {
    auto a = require_array<std::uint8_t>(obj, name);
    if (a.ndim() != 4 || a.shape(3) != 3)
        throw py::value_error(std::string(name) + ": expected 3-channel images of shape (B, H, W, 3), got " +
                              shape_string(a));
    return a;
}

py::tuple poisson_blend_batch(const py::object& source, const py::object& target, const py::object& mask,
                              float tolerance, int max_iterations) {
    auto src = require_images(source, "source");
    auto tgt = require_images(target, "target");
    if (src.shape(0) != tgt.shape(0) || src.shape(1) != tgt.shape(1) || src.shape(2) != tgt.shape(2))
        throw py::value_error("source and target must have the same shape, got " + shape_string(src) + " and " +
                              shape_string(tgt));
    const int B = require_batch(tgt.shape(0), "target");
    const py::ssize_t H = tgt.shape(1), W = tgt.shape(2);
    if (H > (1 << 20) || W > (1 << 20)) throw py::value_error("target: image too large, got " + shape_string(tgt));
    auto m8 = require_mask(mask, "mask");
    require_shape(m8, {py::ssize_t(B), H, W}, "mask");
    if (!(tolerance > 0.0f) || !(tolerance < 1.0f)) throw py::value_error("tolerance: must be in (0, 1)");
    if (max_iterations < 1) throw py::value_error("max_iterations: must be >= 1");
    carray<std::uint8_t> out({py::ssize_t(B), H, W, py::ssize_t(3)});
    py::list infos;
#ifdef AFFCORE_WITH_CUDA
    std::vector<affcore::cuda::BlendInfo> info(static_cast<std::size_t>(B));
    const std::uint8_t* ps = src.data();
    const std::uint8_t* pt = tgt.data();
    const std::uint8_t* pm = m8.data();
    std::uint8_t* po = out.mutable_data();
    {
        py::gil_scoped_release release;
        affcore::cuda::poisson_blend_batch(ps, pt, pm, B, static_cast<int>(H), static_cast<int>(W), tolerance,
                                           max_iterations, po, info.data());
    }
    for (const auto& i : info) {
        py::dict d;
        d["unknowns"] = i.unknowns;
        d["iterations"] = i.iterations;
        d["residual"] = i.residual;
        infos.append(d);
    }
#else
    (void)max_iterations;
    no_cuda();
#endif
    return py::make_tuple(out, infos);
}

}  // namespace

void bind_cuda(pybind11::module_& m) {
    using namespace pybind11::literals;
    m.def("cuda_unavailable_reason", &unavailable_reason,
          "None when the CUDA kernels can run here, else why not (built without CUDA, or no device).");
    m.def("cuda_rasterize_batch", &rasterize_batch, "vertices"_a, "triangles"_a, "height"_a, "width"_a,
          "w"_a = py::none(), "cull_backfaces"_a = false,
          "GPU: rasterize B meshes (B, V, 3) sharing triangles into (B, H, W) buffers. See affcore.render.");
    m.def("cuda_interpolate_batch", &interpolate_batch, "attributes"_a, "triangles"_a, "triangle_id"_a,
          "barycentrics"_a, "GPU: batched interpolate. See affcore.render.interpolate_batch.");
    m.def("cuda_sample_bilinear_batch", &sample_bilinear_batch, "images"_a, "coords"_a, "mask"_a = py::none(),
          "GPU: batched bilinear sampling. See affcore.render.sample_bilinear_batch.");
    m.def("cuda_poisson_blend_batch", &poisson_blend_batch, "source"_a, "target"_a, "mask"_a, py::kw_only(),
          "tolerance"_a = 1e-3f, "max_iterations"_a = 100,
          "GPU: batched Poisson blend. Returns (images, [info per image]). See affcore.blend.");
}

}  // namespace affcore::bindings
