// The rows of a linear face model that landmark fitting needs, and nothing else.
//
// A full ICT head has 26,719 vertices; a landmark fit only ever evaluates a few dozen of
// them (the 68 iBUG points plus the candidate vertices of the jaw contour). Keeping just
// those rows keeps the inner loop of the fit in L1/L2 cache.
#pragma once
#include <Eigen/Core>

#include <stdexcept>
#include <vector>

namespace affcore::morphablemodel {

using RowMatrixXd = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

struct LandmarkBasis {
    // P points; point p has coordinates mean.row(p) + identity.block(3p,0,3,K) * alpha
    //                                                 + expression.block(3p,0,3,E) * beta.
    RowMatrixXd mean;        // (P, 3), model units (cm for ICT)
    RowMatrixXd identity;    // (3P, K)
    RowMatrixXd expression;  // (3P, E)

    int num_points() const { return static_cast<int>(mean.rows()); }
    int num_identity() const { return static_cast<int>(identity.cols()); }
    int num_expression() const { return static_cast<int>(expression.cols()); }
};

// Point p of the model for the given coefficients (identity may use fewer than K modes).
inline Eigen::Vector3d evaluate_point(const LandmarkBasis& b, int p, const Eigen::VectorXd& identity,
                                      const Eigen::VectorXd& expression) {
    Eigen::Vector3d x = b.mean.row(p).transpose();
    const auto n_id = identity.size();
    if (n_id > 0) x.noalias() += b.identity.block(3 * p, 0, 3, n_id) * identity;
    if (expression.size() > 0) x.noalias() += b.expression.block(3 * p, 0, 3, expression.size()) * expression;
    return x;
}

}  // namespace affcore::morphablemodel
