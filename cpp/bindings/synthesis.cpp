// Bindings for the fused synthesis passes (cpp/affcore/synthesis/). Everything is validated
// here with the GIL held (dtypes, shapes, index ranges, finiteness where a value reaches a
// float->int conversion); the passes then run with the GIL released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "affcore/render/parallel.hpp"
#include "affcore/synthesis/grazing_rim.hpp"
#include "affcore/synthesis/texture_transfer.hpp"
#include "bindings.hpp"
#include "checks.hpp"

namespace affcore::bindings {

namespace {

unsigned threads_of(int threads) {
    if (threads < 0) throw py::value_error("threads: must be >= 0 (0 = all hardware threads), got " + std::to_string(threads));
    return render::resolve_threads(threads);
}

carray<std::uint8_t> require_photo(const py::handle& obj) {
    auto a = require_array<std::uint8_t>(obj, "image");
    if (a.ndim() != 3 || a.shape(2) != 3 || a.shape(0) < 1 || a.shape(1) < 1 || a.shape(0) > 32768 || a.shape(1) > 32768)
        throw py::value_error("image: expected shape (H, W, 3) with 1 <= H, W <= 32768, got " + shape_string(a));
    return a;
}

std::pair<int, int> require_xy(const py::tuple& t, const char* name) {
    if (t.size() != 2) throw py::value_error(std::string(name) + ": expected (x, y)");
    return {t[0].cast<int>(), t[1].cast<int>()};
}

py::tuple transfer_face(const py::object& image_obj, const py::object& tid_obj, const py::object& bary_obj,
                        const py::object& depth_obj, const py::object& tris_obj, const py::object& part_obj,
                        const py::object& source_obj, const py::object& target_obj, const py::object& normal_tris_obj,
                        const py::object& src_depth_obj, const py::tuple& src_origin, const py::tuple& box_origin,
                        float depth_slack, float lip_depth, float cavity_scale, const py::object& lit_obj, int reduce,
                        int threads, const py::object& skin_shade_obj, int lid_margin, int mouth_sliver,
                        const py::object& mouth_opened_obj, const py::object& cavity_light_obj,
                        const py::tuple& cavity_origin, float light_up, float cavity_ambient,
                        const py::object& tooth_obj, int papilla_width) {
    auto image = require_photo(image_obj);
    auto source = require_array<float>(source_obj, "source_screen");
    require_shape(source, {-1, 3}, "source_screen");
    require_finite(source, "source_screen");
    const py::ssize_t V = source.shape(0);
    auto target = require_array<float>(target_obj, "target_screen");
    require_shape(target, {V, 3}, "target_screen");
    auto tris = require_array<std::int32_t>(tris_obj, "triangles");
    require_shape(tris, {-1, 3}, "triangles");
    require_indices(tris, V, "triangles");
    const py::ssize_t T = tris.shape(0);
    auto part = require_array<std::int8_t>(part_obj, "part");
    require_shape(part, {T}, "part");
    require_indices(part, synthesis::kNumParts, "part");
    auto ntris = require_array<std::int32_t>(normal_tris_obj, "normal_triangles");
    require_shape(ntris, {-1}, "normal_triangles");
    require_indices(ntris, T, "normal_triangles");
    auto tid = require_array<std::int32_t>(tid_obj, "triangle_id");
    require_shape(tid, {-1, -1}, "triangle_id");
    const py::ssize_t H = tid.shape(0), W = tid.shape(1);
    require_indices(tid, T, "triangle_id", /*allow_minus_one=*/true);
    auto bary = require_array<float>(bary_obj, "barycentrics");
    require_shape(bary, {H, W, 2}, "barycentrics");
    auto depth = require_array<float>(depth_obj, "depth");
    require_shape(depth, {H, W}, "depth");
    auto src_depth = require_array<float>(src_depth_obj, "src_depth");
    require_shape(src_depth, {-1, -1}, "src_depth");
    if (src_depth.shape(0) < 1 || src_depth.shape(1) < 1) throw py::value_error("src_depth: must not be empty");
    auto lit = require_array<float>(lit_obj, "lit");
    require_shape(lit, {synthesis::kNumParts, 3}, "lit");
    require_finite(lit, "lit");
    if (!(cavity_scale > 0.0f)) throw py::value_error("cavity_scale: must be > 0");
    if (reduce < 1 || reduce > 64) throw py::value_error("reduce: must be in [1, 64], got " + std::to_string(reduce));
    if (lid_margin < 0 || lid_margin > 1000)
        throw py::value_error("lid_margin: must be in [0, 1000] pixels, got " + std::to_string(lid_margin));
    if (mouth_sliver < 0 || mouth_sliver > 1000)
        throw py::value_error("mouth_sliver: must be in [0, 1000] pixels, got " + std::to_string(mouth_sliver));
    if (papilla_width < 0 || papilla_width > 1000)
        throw py::value_error("papilla_width: must be in [0, 1000] pixels, got " + std::to_string(papilla_width));
    const unsigned nthreads = threads_of(threads);

    synthesis::FaceInputs in;
    in.photo = {image.data(), static_cast<int>(image.shape(0)), static_cast<int>(image.shape(1))};
    std::tie(in.box_x0, in.box_y0) = require_xy(box_origin, "box_origin");
    in.box_h = static_cast<int>(H);
    in.box_w = static_cast<int>(W);
    in.triangle_id = tid.data();
    in.barycentrics = bary.data();
    in.depth = depth.data();
    in.triangles = tris.data();
    in.num_triangles = static_cast<std::size_t>(T);
    in.part = part.data();
    in.num_vertices = static_cast<std::size_t>(V);
    in.source_screen = source.data();
    in.target_screen = target.data();
    in.normal_triangles = ntris.data();
    in.num_normal_triangles = static_cast<std::size_t>(ntris.shape(0));
    in.src_depth = src_depth.data();
    std::tie(in.src_x0, in.src_y0) = require_xy(src_origin, "src_origin");
    in.src_h = static_cast<int>(src_depth.shape(0));
    in.src_w = static_cast<int>(src_depth.shape(1));
    in.depth_slack = depth_slack;
    in.lip_depth = lip_depth;
    in.cavity_scale = cavity_scale;
    in.lit = lit.data();
    in.lid_margin = lid_margin;
    in.mouth_sliver = mouth_sliver;
    carray<float> skin_shade;
    if (!skin_shade_obj.is_none()) {
        skin_shade = require_array<float>(skin_shade_obj, "skin_shade");
        require_shape(skin_shade, {V}, "skin_shade");
        require_finite(skin_shade, "skin_shade");
        const float* k = skin_shade.data();
        if (std::any_of(k, k + V, [](float v) { return v < 0.0f || v > 4.0f; }))
            throw py::value_error("skin_shade: factors must lie in [0, 4]");
        in.skin_shade = k;
    }
    if (!(light_up >= 0.0f && light_up < 1.0f)) throw py::value_error("light_up: must lie in [0, 1)");
    if (!(cavity_ambient >= 0.0f && cavity_ambient <= 1.0f))
        throw py::value_error("cavity_ambient: must lie in [0, 1]");
    in.light_up = light_up;
    in.cavity_ambient = cavity_ambient;
    carray<float> cavity_light;
    if (!cavity_light_obj.is_none()) {
        cavity_light = require_array<float>(cavity_light_obj, "cavity_light");
        require_shape(cavity_light, {-1, -1}, "cavity_light");
        const float* c = cavity_light.data();
        const py::ssize_t n = cavity_light.shape(0) * cavity_light.shape(1);
        // (NaN fails the test too)
        if (!std::all_of(c, c + n, [](float v) { return v >= 0.0f && v <= 1.0f; }))
            throw py::value_error("cavity_light: values must lie in [0, 1]");
        in.cavity_light = c;
        std::tie(in.cavity_x0, in.cavity_y0) = require_xy(cavity_origin, "cavity_origin");
        in.cavity_h = static_cast<int>(cavity_light.shape(0));
        in.cavity_w = static_cast<int>(cavity_light.shape(1));
    }
    carray<float> mouth_opened;
    if (!mouth_opened_obj.is_none()) {
        mouth_opened = require_array<float>(mouth_opened_obj, "mouth_opened");
        require_shape(mouth_opened, {V}, "mouth_opened");
        const float* w = mouth_opened.data();
        // (NaN fails the test too)
        if (!std::all_of(w, w + V, [](float v) { return v >= 0.0f && v <= 1.0f; }))
            throw py::value_error("mouth_opened: weights must lie in [0, 1]");
        in.mouth_opened = w;
    }

    carray<std::int8_t> tooth;
    if (!tooth_obj.is_none()) {
        tooth = require_array<std::int8_t>(tooth_obj, "tooth");
        require_shape(tooth, {T}, "tooth");
        in.tooth = tooth.data();
        in.papilla_width = papilla_width;
    }

    carray<std::uint8_t> comp({H, W, py::ssize_t(3)});
    carray<float> disp({H / reduce, W / reduce, py::ssize_t(2)});
    carray<float> known({H / reduce, W / reduce});
    synthesis::FaceOutputs out{comp.mutable_data(), disp.mutable_data(), known.mutable_data(), reduce};
    {
        py::gil_scoped_release release;
        synthesis::transfer_face(in, out, nthreads);
    }
    return py::make_tuple(comp, disp, known);
}

// Checks shared by transfer_surround and transfer_ring; fills `in` (arrays kept alive by `keep`).
void surround_inputs(const py::object& image_obj, const py::object& tid_obj, const py::tuple& box_origin,
                     const py::object& small_obj, const py::object& src_cov_obj, const py::tuple& src_offset,
                     synthesis::SurroundInputs& in, std::vector<py::array>& keep) {
    auto image = require_photo(image_obj);
    auto tid = require_array<std::int32_t>(tid_obj, "triangle_id");
    require_shape(tid, {-1, -1}, "triangle_id");
    auto small = require_array<float>(small_obj, "small");
    require_shape(small, {-1, -1, 2}, "small");
    if (small.shape(0) < 1 || small.shape(1) < 1) throw py::value_error("small: must not be empty");
    auto src_cov = require_array<std::uint8_t>(src_cov_obj, "src_covered");
    require_shape(src_cov, {-1, -1}, "src_covered");
    in.photo = {image.data(), static_cast<int>(image.shape(0)), static_cast<int>(image.shape(1))};
    std::tie(in.box_x0, in.box_y0) = require_xy(box_origin, "box_origin");
    in.box_h = static_cast<int>(tid.shape(0));
    in.box_w = static_cast<int>(tid.shape(1));
    in.triangle_id = tid.data();
    in.small = small.data();
    in.small_h = static_cast<int>(small.shape(0));
    in.small_w = static_cast<int>(small.shape(1));
    in.src_covered = src_cov.data();
    std::tie(in.src_off_x, in.src_off_y) = require_xy(src_offset, "src_offset");
    in.src_h = static_cast<int>(src_cov.shape(0));
    in.src_w = static_cast<int>(src_cov.shape(1));
    keep = {image, tid, small, src_cov};
}

void transfer_ring(const py::object& image_obj, const py::object& tid_obj, const py::tuple& box_origin,
                   const py::object& small_obj, const py::object& src_cov_obj, const py::tuple& src_offset,
                   const py::object& region0_obj, const py::object& region_obj, const py::object& comp_obj,
                   int threads) {
    synthesis::SurroundInputs in;
    std::vector<py::array> keep;
    surround_inputs(image_obj, tid_obj, box_origin, small_obj, src_cov_obj, src_offset, in, keep);
    const py::ssize_t H = in.box_h, W = in.box_w;
    auto region0 = require_array<std::uint8_t>(region0_obj, "region0");
    require_shape(region0, {H, W}, "region0");
    auto region = require_array<std::uint8_t>(region_obj, "region");
    require_shape(region, {H, W}, "region");
    auto comp = require_inplace_u8(comp_obj, {H, W, 3}, "composite");
    const unsigned nthreads = threads_of(threads);
    const std::uint8_t* r0 = region0.data();
    const std::uint8_t* r1 = region.data();
    auto* cp = static_cast<std::uint8_t*>(comp.mutable_data());
    py::gil_scoped_release release;
    synthesis::transfer_ring(in, r0, r1, cp, nthreads);
}

carray<std::uint8_t> transfer_surround(const py::object& image_obj, const py::object& tid_obj,
                                       const py::tuple& box_origin, const py::object& small_obj,
                                       const py::object& src_cov_obj, const py::tuple& src_offset,
                                       const py::object& comp_obj, float moved_threshold, int threads) {
    synthesis::SurroundInputs in;
    std::vector<py::array> keep;
    surround_inputs(image_obj, tid_obj, box_origin, small_obj, src_cov_obj, src_offset, in, keep);
    const py::ssize_t H = in.box_h, W = in.box_w;
    auto comp = require_inplace_u8(comp_obj, {H, W, 3}, "composite");
    const unsigned nthreads = threads_of(threads);
    in.moved_threshold = moved_threshold;
    carray<std::uint8_t> region({H, W});
    synthesis::SurroundOutputs out{static_cast<std::uint8_t*>(comp.mutable_data()), region.mutable_data()};
    {
        py::gil_scoped_release release;
        synthesis::transfer_surround(in, out, nthreads);
    }
    return region;
}

carray<float> deform_project(const py::object& base_obj, const py::object& basis_obj, const py::object& weights_obj,
                             const py::object& rotation_obj, double scale, const py::object& translation_obj,
                             int threads) {
    auto base = require_array<float>(base_obj, "base");
    require_shape(base, {-1, 3}, "base");
    const py::ssize_t N = base.shape(0);
    auto basis = require_array<float>(basis_obj, "basis");
    require_shape(basis, {-1, N, 3}, "basis");
    const py::ssize_t K = basis.shape(0);
    auto weights = require_array<double>(weights_obj, "weights");
    require_shape(weights, {K}, "weights");
    require_finite(weights, "weights");
    auto R = require_array<double>(rotation_obj, "rotation");
    require_shape(R, {3, 3}, "rotation");
    auto t = require_array<double>(translation_obj, "translation");
    require_shape(t, {2}, "translation");
    const unsigned nthreads = threads_of(threads);
    carray<float> out({N, py::ssize_t(3)});
    const float* bp = base.data();
    const float* kp = basis.data();
    const double* wp = weights.data();
    const double* rp = R.data();
    const double tx = t.data()[0], ty = t.data()[1];
    float* op = out.mutable_data();
    {
        py::gil_scoped_release release;
        synthesis::deform_project(bp, kp, wp, static_cast<std::size_t>(K), static_cast<std::size_t>(N), rp, scale, tx, ty,
                                  op, nthreads);
    }
    return out;
}

py::tuple rgb_sum_histogram(const py::object& image_obj, const py::object& labels_obj, int which) {
    if (!py::isinstance<py::array>(image_obj)) throw py::type_error("image: expected a numpy array");
    auto image = py::reinterpret_borrow<py::array>(image_obj);
    if (!is_dtype<std::uint8_t>(image.dtype())) throw py::type_error("image: expected dtype uint8");
    if (image.ndim() != 3 || image.shape(2) != 3 || image.strides(2) != 1 || image.strides(1) != 3 || image.strides(0) < 3 * image.shape(1))
        throw py::value_error("image: expected (H, W, 3) with contiguous rows (a row slice of a C-contiguous image), got " +
                              shape_string(image));
    auto labels = require_array<std::int8_t>(labels_obj, "labels");
    require_shape(labels, {image.shape(0), image.shape(1)}, "labels");
    if (which < -128 || which > 127) throw py::value_error("which: must be an int8 value");
    carray<std::int64_t> count({py::ssize_t(766)});
    carray<double> sums({py::ssize_t(766), py::ssize_t(3)});
    const auto* rgb = static_cast<const std::uint8_t*>(image.data());
    const std::size_t stride = static_cast<std::size_t>(image.strides(0));
    const int H = static_cast<int>(image.shape(0)), W = static_cast<int>(image.shape(1));
    const std::int8_t* lp = labels.data();
    std::int64_t* cp = count.mutable_data();
    double* sp = sums.mutable_data();
    {
        py::gil_scoped_release release;
        synthesis::rgb_sum_histogram(rgb, stride, lp, H, W, static_cast<std::int8_t>(which), cp, sp);
    }
    return py::make_tuple(count, sums);
}

carray<bool> grazing_rim(const py::object& screen_obj, const py::object& triangles_obj, const py::object& outline_obj,
                         double facing_limit, int rounds) {
    auto screen = require_array<float>(screen_obj, "screen");
    require_shape(screen, {-1, 3}, "screen");
    require_finite(screen, "screen");
    const py::ssize_t N = screen.shape(0);
    auto tris = require_triangles(triangles_obj, N);
    auto outline = require_mask(outline_obj, "outline");
    require_shape(outline, {N}, "outline");
    if (!std::isfinite(facing_limit)) throw py::value_error("facing_limit: must be finite");
    if (rounds < 0 || rounds > 1000) throw py::value_error("rounds: must be in [0, 1000], got " + std::to_string(rounds));
    const py::ssize_t T = tris.shape(0);
    carray<bool> rim({T});
    const float* sp = screen.data();
    const std::int32_t* tp = tris.data();
    const std::uint8_t* op = outline.data();
    auto* rp = reinterpret_cast<std::uint8_t*>(rim.mutable_data());
    {
        py::gil_scoped_release release;
        synthesis::grazing_rim(sp, static_cast<std::size_t>(N), tp, static_cast<std::size_t>(T), op, facing_limit,
                               rounds, rp);
    }
    return rim;
}

carray<bool> near_outline(const py::object& screen_obj, const py::object& triangles_obj, const py::object& distance_obj,
                          const py::tuple& origin, double cell, double limit) {
    auto screen = require_array<float>(screen_obj, "screen");
    require_shape(screen, {-1, 3}, "screen");
    require_finite(screen, "screen");
    auto tris = require_triangles(triangles_obj, screen.shape(0));
    auto distance = require_array<float>(distance_obj, "distance");
    require_shape(distance, {-1, -1}, "distance");
    if (distance.shape(0) < 1 || distance.shape(1) < 1) throw py::value_error("distance: must not be empty");
    if (origin.size() != 2) throw py::value_error("origin: expected (x, y)");
    const double x0 = origin[0].cast<double>(), y0 = origin[1].cast<double>();
    if (!std::isfinite(x0) || !std::isfinite(y0)) throw py::value_error("origin: must be finite");
    if (!(std::isfinite(cell) && cell > 0)) throw py::value_error("cell: must be a finite number > 0");
    if (std::isnan(limit)) throw py::value_error("limit: must not be NaN");
    const py::ssize_t T = tris.shape(0);
    carray<bool> near({T});
    const float* sp = screen.data();
    const std::int32_t* tp = tris.data();
    const float* dp = distance.data();
    const int h = static_cast<int>(distance.shape(0)), w = static_cast<int>(distance.shape(1));
    auto* np_ = reinterpret_cast<std::uint8_t*>(near.mutable_data());
    {
        py::gil_scoped_release release;
        synthesis::near_outline(sp, tp, static_cast<std::size_t>(T), dp, h, w, x0, y0, cell, limit, np_);
    }
    return near;
}

}  // namespace

void bind_synthesis(pybind11::module_& m) {
    using namespace pybind11::literals;
    m.def("transfer_face", &transfer_face, "image"_a, "triangle_id"_a, "barycentrics"_a, "depth"_a, "triangles"_a,
          "part"_a, "source_screen"_a, "target_screen"_a, "normal_triangles"_a, "src_depth"_a, "src_origin"_a,
          "box_origin"_a, "depth_slack"_a, "lip_depth"_a, "cavity_scale"_a, "lit"_a, "reduce"_a = 1, "threads"_a = 0,
          "skin_shade"_a = py::none(), "lid_margin"_a = 0, "mouth_sliver"_a = 0, "mouth_opened"_a = py::none(),
          "cavity_light"_a = py::none(), "cavity_origin"_a = py::make_tuple(0, 0), "light_up"_a = 0.0f,
          "cavity_ambient"_a = 0.0f, "tooth"_a = py::none(), "papilla_width"_a = 0,
          "Fused texture transfer over the deformed face's pixels: (composite, displacement, known), the "
          "last two as means over reduce x reduce blocks; `skin_shade` (V,) float32 in [0, 4], optional, "
          "multiplies the photo's colour at skin pixels (interpolated per pixel); `lid_margin` (pixels) of "
          "shown eyeball below uncovered eyeball move up with the lid; runs of hidden mouth interior up to "
          "`mouth_sliver` pixels tall take the colour of the shown interior beside them; `mouth_opened` (V,) "
          "float32 in [0, 1], optional: how far the target opens the mouth at each interior vertex, to which "
          "degree the interior the photo showed gives way to the shaded materials, and those thin runs (and, "
          "then, thin runs between lip and lip) take their neighbour's colour only as far as the target leaves "
          "the mouth as it was; the mouth's materials turn to a key light `light_up` (the "
          "sine of its elevation) above the view axis; `cavity_light` (h, w) float32 in [0, 1], optional, at "
          "`cavity_origin` (x, y) in the box: the key light reaching the mouth socket, gums and tongue through the "
          "lips' opening, which are then lit by it and `cavity_ambient` of ambient light; `tooth` (T,) int8, optional: "
          "the tooth of each triangle (0 none, positive upper, negative lower), with which gaps of gums or socket up "
          "to `papilla_width` pixels wide between two teeth, on the gum side of where they touch, are drawn as gums "
          "lit like the teeth beside them. See affcore.synthesis.");
    m.def("transfer_surround", &transfer_surround, "image"_a, "triangle_id"_a, "box_origin"_a, "small"_a,
          "src_covered"_a, "src_offset"_a, "composite"_a, "moved_threshold"_a = 0.3f, "threads"_a = 0,
          "Warped surroundings into `composite` (in place) inside the undilated blend region, which it returns.");
    m.def("transfer_ring", &transfer_ring, "image"_a, "triangle_id"_a, "box_origin"_a, "small"_a, "src_covered"_a,
          "src_offset"_a, "region0"_a, "region"_a, "composite"_a, "threads"_a = 0,
          "Warped surroundings into `composite` (in place) where `region` is set and `region0` is not.");
    m.def("grazing_rim", &grazing_rim, "screen"_a, "triangles"_a, "outline"_a, "facing_limit"_a, "rounds"_a,
          "(T,) bool: the triangles of the grazing band along a face mesh's outline (see "
          "cpp/affcore/synthesis/grazing_rim.hpp): mean vertex facing, averaged `rounds` times, below "
          "`facing_limit`, reached from an `outline` vertex (N,) through such triangles.");
    m.def("near_outline", &near_outline, "screen"_a, "triangles"_a, "distance"_a, "origin"_a, "cell"_a, "limit"_a,
          "(T,) bool: triangles with a vertex where `distance` (a grid of cells `cell` pixels wide, its "
          "first at screen `origin` (x, y)) is below `limit` (see cpp/affcore/synthesis/grazing_rim.hpp).");
    m.def("rgb_sum_histogram", &rgb_sum_histogram, "image"_a, "labels"_a, "which"_a,
          "(count, sums): histogram of R+G+B (766 bins) over pixels labelled `which`, with per-bin channel sums.");
    m.def("deform_project", &deform_project, "base"_a, "basis"_a, "weights"_a, "rotation"_a, "scale"_a,
          "translation"_a, "threads"_a = 0, "Screen positions of base + weights @ basis under a scaled-orthographic camera.");
}

}  // namespace affcore::bindings
