// Joint Gauss-Newton / Levenberg-Marquardt fit of pose, identity and expression to 2D
// landmarks.
//
// Unknowns: rotation (an incremental axis-angle folded into the rotation after every
// accepted step), log-scale, 2D translation, identity coefficients (Gaussian prior,
// weights ~ N(0,1)) and expression blendshape weights (bounded to [0,1], L2 prior).
// Cost, with d the inter-ocular distance of the detected landmarks so that the weights
// mean the same for a 100-pixel and a 1000-pixel face:
//   sum_i w_i |project(X_i) - l_i|^2 / d^2 + identity_prior |alpha|^2 + sum_k expression_prior_k beta_k^2
// Bounds are handled with an active set: a blendshape at a bound whose gradient pushes it
// outwards is held for that step; steps are projected back into [0,1].
#pragma once
#include <Eigen/Cholesky>
#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "affcore/fitting/camera.hpp"
#include "affcore/fitting/contour.hpp"
#include "affcore/morphablemodel/landmark_basis.hpp"

namespace affcore::fitting {

using Landmarks2d = Eigen::Matrix<double, Eigen::Dynamic, 2, Eigen::RowMajor>;

struct FitSettings {
    int num_identity = 100;          // identity modes used (<= basis size)
    bool fit_expression = true;
    double identity_prior = 2e-4;    // weight of |alpha|^2, relative to the landmark term
    Eigen::VectorXd expression_prior;  // per-blendshape weight of beta_k^2 (E,), >= 0
    double tolerance = 1e-7;         // stop when the relative cost decrease is below this
    int max_iterations = 100;        // safety net; a typical fit converges in far fewer
    bool update_contour = true;
};

struct FitResult {
    ScaledOrthographicCamera camera;
    Eigen::VectorXd identity;
    Eigen::VectorXd expression;
    std::vector<int> correspondence;  // landmark -> point index in the LandmarkBasis
    Landmarks2d projected;            // (68, 2) model landmarks projected with the fit
    double rms_px = 0;                // unweighted RMS landmark distance, pixels
    double cost = 0;
    int iterations = 0;
    bool converged = false;
};

namespace detail {

struct Problem {
    const morphablemodel::LandmarkBasis& basis;
    const Landmarks2d& landmarks;
    const Eigen::VectorXd& weights;  // per landmark, already divided by d^2
    const FitSettings& settings;
    int num_id;
    int num_exp;
};

inline double data_cost(const Problem& pb, const ScaledOrthographicCamera& cam, const Eigen::VectorXd& alpha,
                        const Eigen::VectorXd& beta, const std::vector<int>& corr) {
    double c = 0;
    for (int i = 0; i < static_cast<int>(corr.size()); ++i) {
        const Eigen::Vector2d p = cam.project(morphablemodel::evaluate_point(pb.basis, corr[i], alpha, beta));
        c += pb.weights[i] * (p - pb.landmarks.row(i).transpose()).squaredNorm();
    }
    return c;
}

inline double total_cost(const Problem& pb, const ScaledOrthographicCamera& cam, const Eigen::VectorXd& alpha,
                         const Eigen::VectorXd& beta, const std::vector<int>& corr) {
    return data_cost(pb, cam, alpha, beta, corr) + pb.settings.identity_prior * alpha.squaredNorm() +
           (pb.settings.expression_prior.head(beta.size()).array() * beta.array().square()).sum();
}

inline std::vector<Eigen::Vector2d> project_all(const Problem& pb, const ScaledOrthographicCamera& cam,
                                                const Eigen::VectorXd& alpha, const Eigen::VectorXd& beta) {
    std::vector<Eigen::Vector2d> out(pb.basis.num_points());
    for (int p = 0; p < pb.basis.num_points(); ++p)
        out[p] = cam.project(morphablemodel::evaluate_point(pb.basis, p, alpha, beta));
    return out;
}


// Minimiser of the damped quadratic model  g.d + d.(H + lambda diag H).d / 2  subject to
// 0 <= beta + d_beta <= 1, by a small active-set loop: solve on the free variables, pin the
// blendshapes the step would push out of the box at their bound, and solve again. Without
// this inner loop a clamped Gauss-Newton step is no longer a good step, and the fit crawls
// (tens of iterations) while blendshapes reach their bounds one at a time.
// `bounded_from`: index of the first bounded parameter (the blendshapes run to the end).
inline Eigen::VectorXd bounded_step(const Eigen::MatrixXd& hess, const Eigen::VectorXd& grad,
                                    const Eigen::VectorXd& beta, int bounded_from, double lambda,
                                    std::vector<int>& free_index) {
    const int np = static_cast<int>(grad.size());
    Eigen::VectorXd step = Eigen::VectorXd::Zero(np);
    std::vector<char> pinned(np, 0);
    // Blendshapes at a bound that the gradient pushes against stay there.
    for (int k = bounded_from; k < np; ++k) {
        const double b = beta(k - bounded_from), g = grad(k);
        if ((b <= 0.0 && g > 0.0) || (b >= 1.0 && g < 0.0)) pinned[k] = 1;
    }
    for (int round = 0; round < 16; ++round) {
        free_index.clear();
        for (int k = 0; k < np; ++k)
            if (!pinned[k]) free_index.push_back(k);
        const int nf = static_cast<int>(free_index.size());
        // Right-hand side: the gradient plus the pull of the pinned variables' steps.
        Eigen::VectorXd pinned_step = step;
        for (int k : free_index) pinned_step(k) = 0.0;
        const Eigen::VectorXd rhs_full = grad + hess * pinned_step;
        Eigen::MatrixXd hf(nf, nf);
        Eigen::VectorXd rhs(nf);
        for (int a = 0; a < nf; ++a) {
            rhs(a) = -rhs_full(free_index[a]);
            for (int b = 0; b <= a; ++b) hf(a, b) = hess(free_index[a], free_index[b]);
            hf(a, a) += lambda * std::max(hess(free_index[a], free_index[a]), 1e-12);
        }
        const Eigen::VectorXd d = hf.selfadjointView<Eigen::Lower>().ldlt().solve(rhs);
        bool violated = false;
        for (int a = 0; a < nf; ++a) {
            const int k = free_index[a];
            step(k) = d(a);
            if (k < bounded_from) continue;
            const double b = beta(k - bounded_from), nb = b + d(a);
            if (nb < 0.0 || nb > 1.0) {
                pinned[k] = 1;
                step(k) = (nb < 0.0 ? 0.0 : 1.0) - b;  // move exactly onto the bound
                violated = true;
            }
        }
        if (!violated || !step.allFinite()) break;
    }
    return step;
}

}  // namespace detail

// landmarks: (N, 2) pixels; initial_correspondence: N point indices; weights: N (>= 0);
// contour: candidate sets for the landmarks on the jaw outline.
inline FitResult fit_landmarks(const morphablemodel::LandmarkBasis& basis, const Landmarks2d& landmarks,
                               const std::vector<int>& initial_correspondence, const Eigen::VectorXd& landmark_weights,
                               const std::vector<ContourCandidates>& contour, double normaliser,
                               const FitSettings& settings) {
    const int n = static_cast<int>(landmarks.rows());
    const int num_id = std::clamp(settings.num_identity, 0, basis.num_identity());
    const int num_exp = settings.fit_expression ? basis.num_expression() : 0;
    const int np = 6 + num_id + num_exp;
    const Eigen::VectorXd weights = landmark_weights / (normaliser * normaliser);
    detail::Problem pb{basis, landmarks, weights, settings, num_id, num_exp};

    FitResult r;
    r.correspondence = initial_correspondence;
    Eigen::VectorXd alpha = Eigen::VectorXd::Zero(num_id);
    Eigen::VectorXd beta = Eigen::VectorXd::Zero(num_exp);

    // Initial pose from the landmarks that are not on the contour (their correspondence is
    // reliable before the pose is known).
    {
        std::vector<bool> on_contour(n, false);
        for (const auto& c : contour) on_contour[c.landmark] = true;
        std::vector<int> rows;
        for (int i = 0; i < n; ++i)
            if (!on_contour[i] && weights[i] > 0) rows.push_back(i);
        if (rows.size() < 4)
            for (int i = 0; i < n; ++i) rows.push_back(i);
        Eigen::MatrixXd model_pts(rows.size(), 3), image_pts(rows.size(), 2);
        for (size_t k = 0; k < rows.size(); ++k) {
            model_pts.row(k) = basis.mean.row(r.correspondence[rows[k]]);
            image_pts.row(k) = landmarks.row(rows[k]);
        }
        r.camera = estimate_camera_linear(model_pts, image_pts);
    }
    ScaledOrthographicCamera& cam = r.camera;
    if (settings.update_contour && !contour.empty())
        choose_contour_points(contour, detail::project_all(pb, cam, alpha, beta), landmarks, r.correspondence);

    double cost = detail::total_cost(pb, cam, alpha, beta, r.correspondence);
    double lambda = 1e-3;  // Levenberg-Marquardt damping, relative to diag(H)
    Eigen::MatrixXd jac(2 * n, np);
    Eigen::VectorXd res(2 * n);
    Eigen::MatrixXd hess(np, np);
    Eigen::VectorXd grad(np);
    std::vector<int> free_index;
    free_index.reserve(np);

    for (r.iterations = 0; r.iterations < settings.max_iterations;) {
        // Residuals and Jacobian at the current estimate.
        const Eigen::Matrix3d& rot = cam.rotation;
        const double s = cam.scale;
        for (int i = 0; i < n; ++i) {
            const int p = r.correspondence[i];
            const double sw = std::sqrt(weights[i]);
            const Eigen::Vector3d y = rot * morphablemodel::evaluate_point(basis, p, alpha, beta);
            const Eigen::Vector2d proj(s * y.x() + cam.translation.x(), -s * y.y() + cam.translation.y());
            res.segment<2>(2 * i) = sw * (proj - landmarks.row(i).transpose());
            auto ju = jac.row(2 * i);
            auto jv = jac.row(2 * i + 1);
            // d/d(omega): rotation perturbed as exp([omega]x) * R.
            ju.segment<3>(0) << 0.0, s * y.z(), -s * y.y();
            jv.segment<3>(0) << s * y.z(), 0.0, -s * y.x();
            ju(3) = s * y.x();
            jv(3) = -s * y.y();
            ju(4) = 1.0; ju(5) = 0.0;
            jv(4) = 0.0; jv(5) = 1.0;
            const Eigen::RowVector3d ru = (s * sw) * rot.row(0), rv = (-s * sw) * rot.row(1);
            if (num_id > 0) {
                const auto a = basis.identity.block(3 * p, 0, 3, num_id);
                ju.segment(6, num_id).noalias() = ru * a;
                jv.segment(6, num_id).noalias() = rv * a;
            }
            if (num_exp > 0) {
                const auto b = basis.expression.block(3 * p, 0, 3, num_exp);
                ju.segment(6 + num_id, num_exp).noalias() = ru * b;
                jv.segment(6 + num_id, num_exp).noalias() = rv * b;
            }
            ju.head<6>() *= sw;
            jv.head<6>() *= sw;
        }
        hess.setZero();
        hess.selfadjointView<Eigen::Lower>().rankUpdate(jac.transpose());
        hess.triangularView<Eigen::StrictlyUpper>() = hess.transpose();
        grad.noalias() = jac.transpose() * res;
        for (int k = 0; k < num_id; ++k) {
            hess(6 + k, 6 + k) += settings.identity_prior;
            grad(6 + k) += settings.identity_prior * alpha(k);
        }
        for (int k = 0; k < num_exp; ++k) {
            hess(6 + num_id + k, 6 + num_id + k) += settings.expression_prior(k);
            grad(6 + num_id + k) += settings.expression_prior(k) * beta(k);
        }
        bool accepted = false;
        double new_cost = cost;
        for (int attempt = 0; attempt < 12 && !accepted; ++attempt) {
            const Eigen::VectorXd step = detail::bounded_step(hess, grad, beta, 6 + num_id, lambda, free_index);
            if (!step.allFinite()) {
                lambda *= 10;
                continue;
            }
            ScaledOrthographicCamera trial = cam;
            trial.rotation = rotation_from_axis_angle(step.head<3>()) * cam.rotation;
            trial.scale = cam.scale * std::exp(std::clamp(step(3), -1.0, 1.0));
            trial.translation = cam.translation + step.segment<2>(4);
            const Eigen::VectorXd trial_alpha = alpha + step.segment(6, num_id);
            const Eigen::VectorXd trial_beta =
                (beta + step.segment(6 + num_id, num_exp)).cwiseMax(0.0).cwiseMin(1.0);
            const double c = detail::total_cost(pb, trial, trial_alpha, trial_beta, r.correspondence);
            if (c < cost) {
                cam = trial;
                cam.rotation = nearest_rotation(cam.rotation);  // keep it orthonormal to rounding
                alpha = trial_alpha;
                beta = trial_beta;
                new_cost = c;
                accepted = true;
                lambda = std::max(lambda / 3.0, 1e-9);
            } else {
                lambda *= 4.0;
            }
        }
        ++r.iterations;
        if (!accepted) {  // no step lowers the cost: a (constrained) minimum
            r.converged = true;
            break;
        }
        const double decrease = (cost - new_cost) / std::max(cost, 1e-300);
        cost = new_cost;
        bool moved = false;
        if (settings.update_contour && !contour.empty()) {
            const std::vector<int> before = r.correspondence;
            choose_contour_points(contour, detail::project_all(pb, cam, alpha, beta), landmarks, r.correspondence);
            moved = before != r.correspondence;
            if (moved) cost = detail::total_cost(pb, cam, alpha, beta, r.correspondence);
        }
        if (!moved && decrease < settings.tolerance) {
            r.converged = true;
            break;
        }
    }

    r.identity = Eigen::VectorXd::Zero(basis.num_identity());
    r.identity.head(num_id) = alpha;
    r.expression = Eigen::VectorXd::Zero(basis.num_expression());
    r.expression.head(num_exp) = beta;
    r.cost = cost;
    r.projected.resize(n, 2);
    double sq = 0;
    for (int i = 0; i < n; ++i) {
        const Eigen::Vector2d p = cam.project(morphablemodel::evaluate_point(basis, r.correspondence[i], alpha, beta));
        r.projected.row(i) = p.transpose();
        sq += (p - landmarks.row(i).transpose()).squaredNorm();
    }
    r.rms_px = std::sqrt(sq / std::max(n, 1));
    return r;
}

}  // namespace affcore::fitting
