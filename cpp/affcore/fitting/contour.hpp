// Jaw-contour correspondences.
//
// iBUG points 0-16 lie on the visible outline of the jaw, which slides over the surface as
// the head turns or the jaw opens; a fixed vertex per point would drag the model's jaw
// towards the wrong place. Each contour landmark instead has a set of candidate vertices
// (the model's jawline vertex sets), and the one whose projection under the current
// estimate lies nearest the detected point is used.
#pragma once
#include <Eigen/Core>

#include <limits>
#include <vector>

#include "affcore/fitting/camera.hpp"
#include "affcore/morphablemodel/landmark_basis.hpp"

namespace affcore::fitting {

struct ContourCandidates {
    int landmark;             // index into the 68 landmarks
    std::vector<int> points;  // candidate point indices into the LandmarkBasis
};

// Updates `correspondence` (landmark -> point) for every contour landmark. Ties go to the
// earlier candidate so that the choice is deterministic.
inline void choose_contour_points(const std::vector<ContourCandidates>& contour,
                                  const std::vector<Eigen::Vector2d>& projected_points,
                                  const Eigen::Ref<const Eigen::Matrix<double, Eigen::Dynamic, 2, Eigen::RowMajor>>& landmarks,
                                  std::vector<int>& correspondence) {
    for (const auto& c : contour) {
        double best = std::numeric_limits<double>::infinity();
        int best_point = correspondence[c.landmark];
        const Eigen::Vector2d l = landmarks.row(c.landmark).transpose();
        for (int p : c.points) {
            const double d = (projected_points[p] - l).squaredNorm();
            if (d < best) {
                best = d;
                best_point = p;
            }
        }
        correspondence[c.landmark] = best_point;
    }
}

}  // namespace affcore::fitting
