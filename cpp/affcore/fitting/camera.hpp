// Scaled orthographic ("weak perspective") camera for a face seen in a photo.
//
// Model space: x to the subject's left, y up, z towards the viewer (ICT convention).
// Image space: x to the right (column), y down (row), pixel (row i, col j) centred at (j, i).
// A model point X maps to  u = s * (R X)_x + tx,  v = -s * (R X)_y + ty,  and to a depth
// -s * (R X)_z (pixels; smaller is nearer), so the renderer can z-buffer in image units.
// Weak perspective is what a face at portrait distance needs: the depth range of a face is
// small compared to its distance, and landmarks alone cannot pin down a focal length.
#pragma once
#include <Eigen/Core>
#include <Eigen/Geometry>
#include <Eigen/SVD>

#include <cmath>

namespace affcore::fitting {

struct ScaledOrthographicCamera {
    Eigen::Matrix3d rotation = Eigen::Matrix3d::Identity();
    double scale = 1.0;                                     // pixels per model unit
    Eigen::Vector2d translation = Eigen::Vector2d::Zero();  // pixels

    Eigen::Vector2d project(const Eigen::Vector3d& x) const {
        const Eigen::Vector3d y = rotation * x;
        return {scale * y.x() + translation.x(), -scale * y.y() + translation.y()};
    }
};

// Rotation closest (in Frobenius norm) to a 3x3 matrix, with determinant +1.
inline Eigen::Matrix3d nearest_rotation(const Eigen::Matrix3d& m) {
    Eigen::JacobiSVD<Eigen::Matrix3d> svd(m, Eigen::ComputeFullU | Eigen::ComputeFullV);
    Eigen::Matrix3d d = Eigen::Matrix3d::Identity();
    d(2, 2) = (svd.matrixU() * svd.matrixV().transpose()).determinant() < 0 ? -1.0 : 1.0;
    return svd.matrixU() * d * svd.matrixV().transpose();
}

// Rodrigues: exp of the skew matrix of w.
inline Eigen::Matrix3d rotation_from_axis_angle(const Eigen::Vector3d& w) {
    const double angle = w.norm();
    if (angle < 1e-12) return Eigen::Matrix3d::Identity();
    return Eigen::AngleAxisd(angle, w / angle).toRotationMatrix();
}

// Yaw (about y), pitch (about x), roll (about z), in degrees, with
// rotation = Rz(roll) * Ry(yaw) * Rx(pitch). Positive yaw turns the nose towards the image's
// right (the subject's own left); positive pitch tilts the nose up; positive roll turns the
// face counter-clockwise in model space, i.e. clockwise as seen in the y-down image.
struct EulerAngles {
    double yaw, pitch, roll;
};

inline EulerAngles euler_angles_degrees(const Eigen::Matrix3d& r) {
    constexpr double kDeg = 180.0 / 3.14159265358979323846;
    const double yaw = std::asin(std::max(-1.0, std::min(1.0, -r(2, 0))));
    const double pitch = std::atan2(r(2, 1), r(2, 2));
    const double roll = std::atan2(r(1, 0), r(0, 0));
    return {yaw * kDeg, pitch * kDeg, roll * kDeg};
}

// Linear initial estimate from 2D-3D correspondences: least-squares affine camera, then its
// rows turned into a rotation and a single scale (as in eos's
// estimate_orthographic_projection_linear, written for our image-y-down convention).
template <typename Points3, typename Points2>
ScaledOrthographicCamera estimate_camera_linear(const Points3& model_points, const Points2& image_points) {
    const Eigen::Index n = model_points.rows();
    Eigen::MatrixXd a(n, 4);
    a.leftCols<3>() = model_points.template cast<double>();
    a.col(3).setOnes();
    // Solve A * [p_u p_v] = [u v] for the two rows of the affine camera.
    Eigen::MatrixXd b = image_points.template cast<double>();
    const Eigen::MatrixXd p = a.colPivHouseholderQr().solve(b);  // (4, 2)
    Eigen::Vector3d r0 = p.block<3, 1>(0, 0);
    Eigen::Vector3d r1 = -p.block<3, 1>(0, 1);  // image v grows downwards, model y upwards
    const double s0 = r0.norm(), s1 = r1.norm();
    ScaledOrthographicCamera cam;
    if (!(s0 > 0) || !(s1 > 0) || !std::isfinite(s0) || !std::isfinite(s1)) return cam;
    Eigen::Matrix3d m;
    m.row(0) = r0 / s0;
    m.row(1) = r1 / s1;
    m.row(2) = m.row(0).cross(m.row(1));
    cam.rotation = nearest_rotation(m);
    cam.scale = 0.5 * (s0 + s1);
    // Translation: the mean residual once rotation and scale are fixed.
    Eigen::Vector2d t = Eigen::Vector2d::Zero();
    for (Eigen::Index i = 0; i < n; ++i) {
        const Eigen::Vector3d x = model_points.row(i).transpose().template cast<double>();
        const Eigen::Vector3d y = cam.rotation * x;
        t += Eigen::Vector2d(b(i, 0) - cam.scale * y.x(), b(i, 1) + cam.scale * y.y());
    }
    cam.translation = t / static_cast<double>(n);
    return cam;
}

}  // namespace affcore::fitting
