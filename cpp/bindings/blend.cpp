// Python binding of the CPU Poisson blend (affcore/blend/poisson.hpp).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <vector>

#include "affcore/blend/poisson.hpp"
#include "bindings.hpp"
#include "checks.hpp"

namespace affcore::bindings {

namespace {

carray<std::uint8_t> require_image(const py::handle& obj, const char* name) {
    auto a = require_array<std::uint8_t>(obj, name);
    if (a.ndim() != 3 || a.shape(2) != 3)
        throw py::value_error(std::string(name) + ": expected a 3-channel image of shape (H, W, 3), got " +
                              shape_string(a));
    return a;
}

// Checks of the options the blend bindings take.
void require_blend_options(int threads, float tolerance) {
    if (threads < 0) throw py::value_error("threads: must be >= 0 (0 = all cores), got " + std::to_string(threads));
    if (!(tolerance > 0.0f) || !(tolerance < 1.0f)) throw py::value_error("tolerance: must be in (0, 1)");
}

// The solve's statistics as a dict; the box in the coordinates of an image whose (x0, y0)
// is the blended array's origin.
py::dict blend_info(const affcore::blend::BlendStats& st, int x0 = 0, int y0 = 0) {
    py::dict info;
    info["box"] = py::make_tuple(st.box_x0 + x0, st.box_y0 + y0, st.box_w, st.box_h);
    info["unknowns"] = st.unknowns;
    info["iterations"] = st.iterations;
    info["residual"] = st.residual;
    info["solver"] = st.solver;
    return info;
}

// A box-sized blend into an image in place: the checked arguments.
struct BoxBlend {
    const std::uint8_t* source;
    const std::uint8_t* mask;
    std::uint8_t* box;  // the image at (x0, y0)
    int H, W;
    std::size_t stride;  // the image's row stride in bytes
};

// Checks source (H, W, 3) uint8, mask (H, W) and image (h, w, 3) uint8 writable with the
// (W x H) box at (x0, y0) inside it, then runs blend(BoxBlend) without the GIL.
template <typename Blend>
py::dict blend_into(const py::object& source, const py::object& image_obj, const py::object& mask, int x0, int y0,
                    Blend&& blend) {
    auto src = require_image(source, "source");
    const py::ssize_t H = src.shape(0), W = src.shape(1);
    if (H > (1 << 20) || W > (1 << 20)) throw py::value_error("source: image too large, got " + shape_string(src));
    auto m8 = require_mask(mask, "mask");
    require_shape(m8, {H, W}, "mask");
    auto image = require_inplace_u8(image_obj, {-1, -1, 3}, "image");
    if (x0 < 0 || y0 < 0 || x0 + W > image.shape(1) || y0 + H > image.shape(0))
        throw py::value_error("the (" + std::to_string(W) + " x " + std::to_string(H) + ") box at (" +
                              std::to_string(x0) + ", " + std::to_string(y0) + ") is not inside image " +
                              shape_string(image));
    const std::size_t stride = static_cast<std::size_t>(image.shape(1)) * 3;
    const BoxBlend b{src.data(), m8.data(),
                     static_cast<std::uint8_t*>(image.mutable_data()) + static_cast<std::size_t>(y0) * stride +
                         3 * static_cast<std::size_t>(x0),
                     static_cast<int>(H), static_cast<int>(W), stride};
    affcore::blend::BlendStats st;
    {
        py::gil_scoped_release release;
        st = blend(b);
    }
    return blend_info(st, x0, y0);
}

}  // namespace

void bind_blend(pybind11::module_& m) {
    m.def(
        "poisson_blend",
        [](const py::object& source, const py::object& target, const py::object& mask, int threads,
           float tolerance) {
            auto src = require_image(source, "source");
            auto tgt = require_image(target, "target");
            if (src.shape(0) != tgt.shape(0) || src.shape(1) != tgt.shape(1))
                throw py::value_error("source and target must have the same shape, got " + shape_string(src) +
                                      " and " + shape_string(tgt));
            const py::ssize_t H = tgt.shape(0), W = tgt.shape(1);
            if (H > (1 << 20) || W > (1 << 20))
                throw py::value_error("target: image too large, got " + shape_string(tgt));
            auto m8 = require_mask(mask, "mask");
            require_shape(m8, {H, W}, "mask");
            require_blend_options(threads, tolerance);

            carray<std::uint8_t> out({H, W, py::ssize_t(3)});
            const std::uint8_t* ps = src.data();
            const std::uint8_t* pt = tgt.data();
            const std::uint8_t* pm = m8.data();
            std::uint8_t* po = out.mutable_data();
            affcore::blend::BlendStats st;
            {
                py::gil_scoped_release release;
                st = affcore::blend::poisson_blend(ps, pt, pm, static_cast<int>(H), static_cast<int>(W), po, threads,
                                                   tolerance);
            }
            return py::make_tuple(out, blend_info(st));
        },
        py::arg("source"), py::arg("target"), py::arg("mask"), py::kw_only(), py::arg("threads") = 0,
        py::arg("tolerance") = affcore::blend::kDefaultTolerance,
        "Poisson blend (see affcore.blend.poisson_blend). Returns (image, info).");
    m.def(
        "poisson_blend_into",
        [](const py::object& source, const py::object& image_obj, const py::object& mask, int x0, int y0, int threads,
           float tolerance) {
            require_blend_options(threads, tolerance);
            return blend_into(source, image_obj, mask, x0, y0, [&](const BoxBlend& b) {
                return affcore::blend::poisson_blend(b.source, b.box, b.mask, b.H, b.W, b.box, threads, tolerance,
                                                     b.stride, b.stride);
            });
        },
        py::arg("source"), py::arg("image"), py::arg("mask"), py::arg("x0"), py::arg("y0"), py::kw_only(),
        py::arg("threads") = 0, py::arg("tolerance") = affcore::blend::kDefaultTolerance,
        "Poisson blend of a box-sized source and mask into `image` at (x0, y0), in place: the same result "
        "as poisson_blend of the box. Returns info.");
    m.def(
        "poisson_blend_edge_into",
        [](const py::object& source, const py::object& image_obj, const py::object& mask, int x0, int y0,
           int threads, float tolerance) {
            require_blend_options(threads, tolerance);
            return blend_into(source, image_obj, mask, x0, y0, [&](const BoxBlend& b) {
                return affcore::blend::poisson_blend_edge(b.source, b.box, b.mask, b.H, b.W, b.box, threads, tolerance,
                                                          b.stride, b.stride);
            });
        },
        py::arg("source"), py::arg("image"), py::arg("mask"), py::arg("x0"), py::arg("y0"), py::kw_only(),
        py::arg("threads") = 0, py::arg("tolerance") = affcore::blend::kDefaultTolerance,
        "poisson_blend_into for a source that already meets the image along the mask's edge (see "
        "affcore::blend::poisson_blend_edge): one edge-local multigrid cycle instead of CG to a tolerance "
        "(which serves a source that does not meet it). Returns info; info['solver'] is 'edge' or 'cg'.");
}

}  // namespace affcore::bindings
