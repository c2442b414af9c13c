// Bindings for landmark fitting: a LandmarkBasis object built once per model, and single
// and batched fits that release the GIL.
#include <pybind11/eigen.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <atomic>
#include <exception>
#include <memory>
#include <thread>
#include <vector>

#include "affcore/fitting/fit_landmarks.hpp"
#include "bindings.hpp"
#include "checks.hpp"

namespace affcore::bindings {

namespace {

using fitting::ContourCandidates;
using fitting::FitResult;
using fitting::FitSettings;
using fitting::Landmarks2d;
using morphablemodel::LandmarkBasis;

std::shared_ptr<LandmarkBasis> make_basis(const py::handle& mean_obj, const py::handle& identity_obj,
                                          const py::handle& expression_obj) {
    auto mean = require_array<double>(mean_obj, "mean");
    auto identity = require_array<double>(identity_obj, "identity");
    auto expression = require_array<double>(expression_obj, "expression");
    require_shape(mean, {-1, 3}, "mean");
    const auto p = mean.shape(0);
    if (p < 1) throw py::value_error("mean: needs at least one point");
    require_shape(identity, {-1, p, 3}, "identity");
    require_shape(expression, {-1, p, 3}, "expression");
    require_finite(mean, "mean");
    require_finite(identity, "identity");
    require_finite(expression, "expression");
    auto b = std::make_shared<LandmarkBasis>();
    b->mean = Eigen::Map<const morphablemodel::RowMatrixXd>(mean.data(), p, 3);
    const auto k = identity.shape(0), e = expression.shape(0);
    // (K, P, 3) -> (3P, K): row 3p+c holds coordinate c of point p for every mode.
    b->identity.resize(3 * p, k);
    b->expression.resize(3 * p, e);
    for (py::ssize_t m = 0; m < k; ++m)
        for (py::ssize_t r = 0; r < 3 * p; ++r) b->identity(r, m) = identity.data()[m * 3 * p + r];
    for (py::ssize_t m = 0; m < e; ++m)
        for (py::ssize_t r = 0; r < 3 * p; ++r) b->expression(r, m) = expression.data()[m * 3 * p + r];
    return b;
}

struct FitInputs {
    std::vector<int> correspondence;
    Eigen::VectorXd weights;
    std::vector<ContourCandidates> contour;
    FitSettings settings;
};

FitInputs parse_inputs(const LandmarkBasis& basis, py::ssize_t n, const py::handle& corr_obj,
                       const py::handle& weights_obj, const py::list& contour, int num_identity,
                       bool fit_expression, double identity_prior, const py::handle& expression_prior_obj,
                       double tolerance, int max_iterations, bool update_contour) {
    FitInputs in;
    auto corr = require_array<int32_t>(corr_obj, "correspondence");
    require_shape(corr, {n}, "correspondence");
    require_indices(corr, basis.num_points(), "correspondence");
    in.correspondence.assign(corr.data(), corr.data() + n);
    auto w = require_array<double>(weights_obj, "weights");
    require_shape(w, {n}, "weights");
    require_finite(w, "weights");
    in.weights = Eigen::Map<const Eigen::VectorXd>(w.data(), n);
    if ((in.weights.array() < 0).any()) throw py::value_error("weights: must be >= 0");
    if (!(in.weights.sum() > 0)) throw py::value_error("weights: at least one landmark needs a positive weight");
    for (const auto& item : contour) {
        auto pair = item.cast<py::tuple>();
        if (pair.size() != 2) throw py::value_error("contour: expected (landmark, candidate_points) pairs");
        ContourCandidates c;
        c.landmark = pair[0].cast<int>();
        if (c.landmark < 0 || c.landmark >= n) throw py::value_error("contour: landmark index out of range");
        auto pts = require_array<int32_t>(pair[1], "contour candidate points");
        require_shape(pts, {-1}, "contour candidate points");
        require_indices(pts, basis.num_points(), "contour candidate points");
        if (pts.shape(0) == 0) throw py::value_error("contour: empty candidate set");
        c.points.assign(pts.data(), pts.data() + pts.shape(0));
        in.contour.push_back(std::move(c));
    }
    if (num_identity < 0 || num_identity > basis.num_identity())
        throw py::value_error("num_identity: must be in [0, " + std::to_string(basis.num_identity()) + "]");
    if (!(identity_prior >= 0) || !std::isfinite(identity_prior))
        throw py::value_error("identity_prior: must be finite and >= 0");
    auto ep = require_array<double>(expression_prior_obj, "expression_prior");
    require_shape(ep, {basis.num_expression()}, "expression_prior");
    require_finite(ep, "expression_prior");
    in.settings.expression_prior = Eigen::Map<const Eigen::VectorXd>(ep.data(), ep.shape(0));
    if ((in.settings.expression_prior.array() < 0).any()) throw py::value_error("expression_prior: must be >= 0");
    if (!(tolerance > 0)) throw py::value_error("tolerance: must be > 0");
    if (max_iterations < 1) throw py::value_error("max_iterations: must be >= 1");
    in.settings.num_identity = num_identity;
    in.settings.fit_expression = fit_expression;
    in.settings.identity_prior = identity_prior;
    in.settings.tolerance = tolerance;
    in.settings.max_iterations = max_iterations;
    in.settings.update_contour = update_contour;
    return in;
}

py::dict to_dict(const FitResult& r) {
    py::dict d;
    d["rotation"] = Eigen::Matrix3d(r.camera.rotation);
    d["scale"] = r.camera.scale;
    d["translation"] = Eigen::Vector2d(r.camera.translation);
    const auto e = fitting::euler_angles_degrees(r.camera.rotation);
    d["yaw"] = e.yaw;
    d["pitch"] = e.pitch;
    d["roll"] = e.roll;
    d["identity"] = r.identity;
    d["expression"] = r.expression;
    d["correspondence"] = py::array_t<int32_t>(static_cast<py::ssize_t>(r.correspondence.size()), r.correspondence.data());
    d["projected"] = Landmarks2d(r.projected);
    d["rms_px"] = r.rms_px;
    d["cost"] = r.cost;
    d["iterations"] = r.iterations;
    d["converged"] = r.converged;
    return d;
}

Landmarks2d landmarks_at(const carray<double>& lm, py::ssize_t index, py::ssize_t n) {
    return Eigen::Map<const Landmarks2d>(lm.data() + index * n * 2, n, 2);
}

}  // namespace

void bind_fitting(py::module_& m) {
    py::class_<LandmarkBasis, std::shared_ptr<LandmarkBasis>>(m, "LandmarkBasis",
        "The rows of a linear face model that landmark fitting evaluates.")
        .def(py::init(&make_basis), py::arg("mean"), py::arg("identity"), py::arg("expression"),
             "mean (P,3) float64; identity (K,P,3) float64; expression (E,P,3) float64.")
        .def_property_readonly("num_points", &LandmarkBasis::num_points)
        .def_property_readonly("num_identity", &LandmarkBasis::num_identity)
        .def_property_readonly("num_expression", &LandmarkBasis::num_expression);

    m.def(
        "fit_landmarks",
        [](const LandmarkBasis& basis, const py::handle& landmarks_obj, const py::handle& corr,
           const py::handle& weights, const py::list& contour, double normaliser, int num_identity,
           bool fit_expression, double identity_prior, const py::handle& expression_prior, double tolerance,
           int max_iterations, bool update_contour) {
            auto lm = require_array<double>(landmarks_obj, "landmarks");
            require_shape(lm, {-1, 2}, "landmarks");
            require_finite(lm, "landmarks");
            const auto n = lm.shape(0);
            if (n < 4) throw py::value_error("landmarks: need at least 4 points");
            if (!(normaliser > 0) || !std::isfinite(normaliser)) throw py::value_error("normaliser: must be > 0");
            FitInputs in = parse_inputs(basis, n, corr, weights, contour, num_identity, fit_expression,
                                        identity_prior, expression_prior, tolerance, max_iterations, update_contour);
            const Landmarks2d l = landmarks_at(lm, 0, n);
            FitResult r;
            {
                py::gil_scoped_release release;
                r = fitting::fit_landmarks(basis, l, in.correspondence, in.weights, in.contour, normaliser, in.settings);
            }
            return to_dict(r);
        },
        py::arg("basis"), py::arg("landmarks"), py::arg("correspondence"), py::arg("weights"), py::arg("contour"),
        py::arg("normaliser"), py::arg("num_identity"), py::arg("fit_expression") = true,
        py::arg("identity_prior"), py::arg("expression_prior"), py::arg("tolerance") = 1e-7,
        py::arg("max_iterations") = 100, py::arg("update_contour") = true,
        "Fit pose, identity and expression to one face's landmarks (N,2) float64, pixels.");

    m.def(
        "fit_landmarks_batch",
        [](const LandmarkBasis& basis, const py::handle& landmarks_obj, const py::handle& corr,
           const py::handle& weights, const py::list& contour, const py::handle& normalisers_obj, int num_identity,
           bool fit_expression, double identity_prior, const py::handle& expression_prior, double tolerance,
           int max_iterations, bool update_contour, int threads) {
            auto lm = require_array<double>(landmarks_obj, "landmarks");
            require_shape(lm, {-1, -1, 2}, "landmarks");
            require_finite(lm, "landmarks");
            const auto count = lm.shape(0), n = lm.shape(1);
            if (n < 4) throw py::value_error("landmarks: need at least 4 points per face");
            auto norms = require_array<double>(normalisers_obj, "normalisers");
            require_shape(norms, {count}, "normalisers");
            require_finite(norms, "normalisers");
            for (py::ssize_t i = 0; i < count; ++i)
                if (!(norms.data()[i] > 0)) throw py::value_error("normalisers: must be > 0");
            if (threads < 0) throw py::value_error("threads: must be >= 0 (0 = all cores)");
            FitInputs in = parse_inputs(basis, n, corr, weights, contour, num_identity, fit_expression,
                                        identity_prior, expression_prior, tolerance, max_iterations, update_contour);
            std::vector<FitResult> results(static_cast<size_t>(count));
            {
                py::gil_scoped_release release;
                int workers = threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
                workers = static_cast<int>(std::min<py::ssize_t>(workers, std::max<py::ssize_t>(count, 1)));
                std::atomic<py::ssize_t> next{0};
                std::exception_ptr error;
                std::atomic<bool> failed{false};
                auto work = [&]() {
                    try {
                        for (py::ssize_t i = next++; i < count && !failed; i = next++)
                            results[i] = fitting::fit_landmarks(basis, landmarks_at(lm, i, n), in.correspondence,
                                                                in.weights, in.contour, norms.data()[i], in.settings);
                    } catch (...) {
                        if (!failed.exchange(true)) error = std::current_exception();
                    }
                };
                std::vector<std::thread> pool;
                for (int t = 1; t < workers; ++t) pool.emplace_back(work);
                work();
                for (auto& t : pool) t.join();
                if (error) std::rethrow_exception(error);
            }
            py::list out;
            for (const auto& r : results) out.append(to_dict(r));
            return out;
        },
        py::arg("basis"), py::arg("landmarks"), py::arg("correspondence"), py::arg("weights"), py::arg("contour"),
        py::arg("normalisers"), py::arg("num_identity"), py::arg("fit_expression") = true,
        py::arg("identity_prior"), py::arg("expression_prior"), py::arg("tolerance") = 1e-7,
        py::arg("max_iterations") = 100, py::arg("update_contour") = true, py::arg("threads") = 0,
        "Fit many faces' landmarks (B,N,2) float64 across threads; results in input order.");
}

}  // namespace affcore::bindings
