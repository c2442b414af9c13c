// Geometric multigrid for the 5-point Poisson equation on a rectangle with zero Dirichlet
// boundary values, four independent right-hand sides solved at once (one per SIMD lane:
// the three colour channels and one unused lane).
//
//   4 u(i,j) - u(i-1,j) - u(i+1,j) - u(i,j-1) - u(i,j+1) = f(i,j),   1 <= i <= nx, 1 <= j <= ny
//   u = 0 on i = 0, i = nx+1, j = 0, j = ny+1.
//
// Grids are stored padded: (nx+2) x (ny+2) pixels, row-major, the frame holding the zero
// boundary. Coarse point (I, J) sits on fine point (2I, 2J), with (nx-1)/2 coarse interior
// points (exact for odd nx; for even nx the coarse domain stops one fine point short of the
// boundary, which the smoother makes up for); the coarse operator is the same
// stencil for spacing 2 (right-hand side scaled by 4). Smoothing is red-black Gauss-Seidel,
// restriction full weighting, prolongation bilinear. All passes are row-parallel and each
// row's result depends only on data of the previous half-sweep, so the result is the same
// for any thread count.
#pragma once
#include <Eigen/Core>
#include <Eigen/StdVector>

#include <algorithm>
#include <cmath>
#include <vector>

#include "affcore/blend/parallel.hpp"

namespace affcore::blend {

using Px = Eigen::Array4f;
using PxVec = std::vector<Px, Eigen::aligned_allocator<Px>>;

struct MgLevel {
    int nx = 0, ny = 0;  // interior size
    int stride = 0;      // nx + 2
    PxVec u, f, r;
    // Optional per-pixel weight (finest level only): 0 pins u to zero there (an interior
    // Dirichlet pixel), 1 leaves the pixel free. Empty means all free.
    std::vector<float> free;
    MgLevel(int nx_, int ny_) : nx(nx_), ny(ny_), stride(nx_ + 2) {
        const std::size_t n = static_cast<std::size_t>(nx + 2) * static_cast<std::size_t>(ny + 2);
        u.assign(n, Px::Zero());
        f.assign(n, Px::Zero());
        r.assign(n, Px::Zero());
    }
    std::size_t at(int i, int j) const {
        return static_cast<std::size_t>(j) * static_cast<std::size_t>(stride) + static_cast<std::size_t>(i);
    }
    long work() const { return static_cast<long>(nx) * ny; }
};

struct MgOptions {
    int pre_smooth = 2;
    int post_smooth = 2;
    int coarsest_sweeps = 40;
    int max_cycles = 40;
    float tolerance = 0.05f;  // stop once a V-cycle changes no value by more than this
    int threads = 1;
};

class PoissonMultigrid {
public:
    // Builds the level hierarchy for an nx x ny interior. Fill rhs() then call solve().
    PoissonMultigrid(int nx, int ny, const MgOptions& opt) : opt_(opt) {
        levels_.emplace_back(nx, ny);
        while (levels_.back().nx >= 3 && levels_.back().ny >= 3)
            levels_.emplace_back((levels_.back().nx - 1) / 2, (levels_.back().ny - 1) / 2);
    }

    MgLevel& finest() { return levels_.front(); }
    int cycles_run() const { return cycles_; }
    float last_change() const { return last_change_; }

    // Full multigrid: the right-hand side is restricted to every level, the coarsest level
    // is solved, and each finer level starts from the interpolated coarser solution and
    // gets one V-cycle. Then V-cycles on the finest level until one changes no value by
    // more than the tolerance.
    void solve() {
        MgLevel& L = levels_.front();
        for (std::size_t l = 0; l + 1 < levels_.size(); ++l)
            restrict_to(levels_[l].f, levels_[l], levels_[l + 1]);
        MgLevel& C = levels_.back();
        std::fill(C.u.begin(), C.u.end(), Px::Zero());
        smooth(C, opt_.coarsest_sweeps);
        for (std::size_t l = levels_.size() - 1; l-- > 0;) {
            std::fill(levels_[l].u.begin(), levels_[l].u.end(), Px::Zero());
            prolong_add(levels_[l + 1], levels_[l]);
            if (!levels_[l].free.empty())
                for (std::size_t k = 0; k < levels_[l].u.size(); ++k) levels_[l].u[k] *= levels_[l].free[k];
            if (l > 0) vcycle(l);
        }
        PxVec prev;
        cycles_ = 0;
        for (int c = 0; c < opt_.max_cycles; ++c) {
            prev = L.u;
            vcycle(0);
            ++cycles_;
            last_change_ = max_abs_diff(L, prev);
            if (last_change_ <= opt_.tolerance) break;
        }
    }

private:
    MgOptions opt_;
    std::vector<MgLevel> levels_;
    int cycles_ = 0;
    float last_change_ = 0.0f;

    void smooth(MgLevel& L, int sweeps) {
        const int s = L.stride;
        for (int it = 0; it < sweeps; ++it) {
            for (int color = 0; color < 2; ++color) {
                parallel_rows(1, L.ny + 1, opt_.threads, L.work(), [&](int j0, int j1) {
                    for (int j = j0; j < j1; ++j) {
                        const int i0 = 1 + ((1 + j + color) & 1);
                        Px* u = L.u.data() + L.at(0, j);
                        const Px* f = L.f.data() + L.at(0, j);
                        if (L.free.empty()) {
                            for (int i = i0; i <= L.nx; i += 2)
                                u[i] = (u[i - 1] + u[i + 1] + u[i - s] + u[i + s] + f[i]) * 0.25f;
                        } else {
                            const float* w = L.free.data() + L.at(0, j);
                            for (int i = i0; i <= L.nx; i += 2)
                                u[i] = (u[i - 1] + u[i + 1] + u[i - s] + u[i + s] + f[i]) * (0.25f * w[i]);
                        }
                    }
                });
            }
        }
    }

    void residual(MgLevel& L) {
        const int s = L.stride;
        parallel_rows(1, L.ny + 1, opt_.threads, L.work(), [&](int j0, int j1) {
            for (int j = j0; j < j1; ++j) {
                const Px* u = L.u.data() + L.at(0, j);
                const Px* f = L.f.data() + L.at(0, j);
                Px* r = L.r.data() + L.at(0, j);
                for (int i = 1; i <= L.nx; ++i)
                    r[i] = f[i] - (4.0f * u[i] - u[i - 1] - u[i + 1] - u[i - s] - u[i + s]);
                if (!L.free.empty()) {
                    const float* w = L.free.data() + L.at(0, j);
                    for (int i = 1; i <= L.nx; ++i) r[i] *= w[i];
                }
            }
        });
    }

    // Full weighting of a fine-level field (the residual, or in FMG the right-hand side)
    // onto the coarse right-hand side (times 4 for the doubled spacing); the coarse
    // initial guess is zero.
    void restrict_to(const PxVec& src, const MgLevel& F, MgLevel& C) {
        const int s = F.stride;
        parallel_rows(1, C.ny + 1, opt_.threads, F.work(), [&](int J0, int J1) {
            for (int J = J0; J < J1; ++J) {
                Px* fc = C.f.data() + C.at(0, J);
                Px* uc = C.u.data() + C.at(0, J);
                for (int I = 1; I <= C.nx; ++I) {
                    const Px* r = src.data() + F.at(2 * I, 2 * J);
                    const Px sum = 4.0f * r[0] + 2.0f * (r[-1] + r[1] + r[-s] + r[s]) +
                                   (r[-s - 1] + r[-s + 1] + r[s - 1] + r[s + 1]);
                    fc[I] = sum * 0.25f;  // (1/16) * 4
                    uc[I] = Px::Zero();
                }
            }
        });
    }

    // Bilinear interpolation of the coarse correction, added to the fine u.
    void prolong_add(const MgLevel& C, MgLevel& F) {
        parallel_rows(1, F.ny + 1, opt_.threads, F.work(), [&](int j0, int j1) {
            for (int j = j0; j < j1; ++j) {
                const int J = j >> 1;
                const bool jodd = (j & 1) != 0;
                const Px* c0 = C.u.data() + C.at(0, J);
                const Px* c1 = C.u.data() + C.at(0, jodd ? J + 1 : J);
                Px* u = F.u.data() + F.at(0, j);
                for (int i = 1; i <= F.nx; ++i) {
                    const int I = i >> 1;
                    Px v;
                    if (i & 1) v = 0.5f * ((c0[I] + c1[I]) * 0.5f + (c0[I + 1] + c1[I + 1]) * 0.5f);
                    else v = (c0[I] + c1[I]) * 0.5f;
                    u[i] += v;
                }
            }
        });
    }

    void vcycle(std::size_t l) {
        MgLevel& L = levels_[l];
        if (l + 1 == levels_.size()) {
            smooth(L, opt_.coarsest_sweeps);
            return;
        }
        smooth(L, opt_.pre_smooth);
        residual(L);
        restrict_to(L.r, L, levels_[l + 1]);
        vcycle(l + 1);
        prolong_add(levels_[l + 1], L);
        if (!L.free.empty())
            for (std::size_t k = 0; k < L.u.size(); ++k) L.u[k] *= L.free[k];
        smooth(L, opt_.post_smooth);
    }

    float max_abs_diff(const MgLevel& L, const PxVec& prev) {
        return parallel_rows_max(1, L.ny + 1, opt_.threads, L.work(), [&](int j0, int j1) {
            Px m = Px::Zero();
            for (int j = j0; j < j1; ++j) {
                const std::size_t k = L.at(0, j);
                for (int i = 1; i <= L.nx; ++i) m = m.max((L.u[k + i] - prev[k + i]).abs());
            }
            return m.maxCoeff();
        });
    }
};

}  // namespace affcore::blend
