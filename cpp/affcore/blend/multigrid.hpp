// Multigrid-preconditioned conjugate gradients for the 5-point Poisson equation on an
// irregular set of unknown pixels, zero Dirichlet values everywhere else:
//
//   4 u(p) - sum_{q ~ p} u(q) = f(p)   for unknown p,      u(q) = 0 for every other q.
//
// Three right-hand sides (colour channels) are solved at once, one per SIMD lane of an
// Eigen::Array4f (the fourth lane stays zero); each channel runs its own CG (per-lane
// step lengths), sharing the passes over memory.
//
// Grids are stored padded: unknowns lie in [1, nx] x [1, ny]; storage is sw x sh with
// sw = 2 * ceil(nx / 2) + 2 (likewise sh), so every 2x2 block of interior pixels has a
// coarse parent and the frame (and the extra column/row for odd nx, ny) is never an
// unknown. Buffers are zero outside the unknowns and only ever written inside each row's
// range of unknowns [lo, hi], so neighbours outside the domain always read as zero.
//
// Hierarchy (cell-centred): coarse cell (I, J) has fine children (2I-1..2I, 2J-1..2J) and
// is an unknown if at least three of its children are. (With "any child", the coarse
// domain reaches up to a coarse cell beyond the fine one, and the coarse correction is poor
// along the domain's edge: on face masks CG needed 6 iterations instead of 4. Cells with
// fewer unknown children lie on the edge, where the fine smoother removes the error; the
// correction there is interpolated from the coarse unknowns nearby, zero if none.) The coarse operator is the same 5-point stencil (spacing
// 2, right-hand side times 4) with zero Dirichlet values at non-unknown coarse cells.
// Prolongation is cell-centred bilinear (weights 3/4, 1/4 per axis) applied to fine
// unknowns only; restriction is its transpose (weights 1,3,3,1 / 4 per axis, i.e. full
// weighting times 4, which is the spacing factor). The smoother is red-black Gauss-Seidel
// on unknowns, two (red, black) sweeps before the coarse correction and two (black, red)
// after; the
// coarsest grid (at most 4x4) gets a palindromic sequence of half-sweeps. Transfer
// operators transposed to each other, symmetric smoothing and an SPD coarse operator make
// the V-cycle a symmetric positive definite preconditioner, as CG requires. (Except the
// first V-cycle from a guess with a support, which smooths near the support only; see
// guess_support() and solve().)
//
// Every pass is row-parallel; a row's output depends only on data not written in the same
// pass, and dot products are per-row partial sums added in row order, so results are
// bit-identical for any thread count.
#pragma once
#include <Eigen/Core>
#include <Eigen/StdVector>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <new>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "affcore/blend/parallel.hpp"

// Some row loops have AVX-512 versions where the compiler targets it (-march=native on such
// a CPU); both give the same bytes.
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512VBMI__) && \
    defined(__BMI2__)
#include <immintrin.h>
#define AFFCORE_BLEND_AVX512 1
#else
#define AFFCORE_BLEND_AVX512 0
#endif

namespace affcore::blend {

using Px = Eigen::Array4f;
// Eigen's aligned allocator, except that a pixel added without a value (vector::resize(n))
// is left uninitialised: growing a stale buffer (take_px_stale) then costs no pass that
// fills it, as every pass writes such a buffer before reading it.
template <typename T>
struct PxAllocator : Eigen::aligned_allocator<T> {
    template <typename U>
    struct rebind {
        using other = PxAllocator<U>;
    };
    PxAllocator() = default;
    template <typename U>
    PxAllocator(const PxAllocator<U>&) noexcept {}
    template <typename U>
    void construct(U* p) noexcept(std::is_nothrow_default_constructible<U>::value) {
        ::new (static_cast<void*>(p)) U;
    }
    template <typename U, typename... Args>
    void construct(U* p, Args&&... args) {
        ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
    }
};
using PxVec = std::vector<Px, PxAllocator<Px>>;

// Per-thread cache of pixel buffers: a blend needs seven box-sized buffers and three per
// coarser level, and fresh allocations cost a page fault per 4 KiB (a third of the run
// time at 1024^2). Buffers are handed back when a solve ends and reused by the next one on
// the same thread; at most kCacheCount buffers of at most kCacheBytes each are kept (enough
// for every buffer of a solve: fewer would drop the coarse levels' and refill them each time).
inline constexpr std::size_t kCacheCount = 64;
inline constexpr std::size_t kCacheBytes = std::size_t(32) << 20;
inline std::vector<PxVec>& px_cache() {
    thread_local std::vector<PxVec> cache;
    return cache;
}
// A cached buffer (its contents as they were) for n pixels: the smallest that holds n
// without reallocating, else the largest, else an empty one. Best fit matters: a solve
// takes a few fine-grid buffers and many small coarse ones, and a coarse level that took
// a fine buffer would leave a later fine one to a fresh allocation and its page faults.
inline PxVec pop_cached_px(std::size_t n) {
    auto& c = px_cache();
    PxVec v;
    if (c.empty()) return v;
    auto best = c.end(), largest = c.begin();
    for (auto it = c.begin(); it != c.end(); ++it) {
        if (it->capacity() > largest->capacity()) largest = it;
        if (it->capacity() >= n && (best == c.end() || it->capacity() < best->capacity())) best = it;
    }
    if (best == c.end()) best = largest;
    v = std::move(*best);
    c.erase(best);
    return v;
}
// A zeroed buffer of n pixels, from the cache when one is there (see pop_cached_px).
inline PxVec take_px(std::size_t n) {
    PxVec v = pop_cached_px(n);
    v.assign(n, Px::Zero());
    return v;
}
// A buffer of n pixels whose contents are unspecified (stale values from an earlier
// solve): for buffers that every pass writes before reading; see zero_outside_ranges.
inline PxVec take_px_stale(std::size_t n) {
    PxVec v = pop_cached_px(n);
    v.resize(n);  // keeps the first min(size, n) values as they are; the rest uninitialised
    return v;
}
inline void give_px(PxVec& v) {
    auto& c = px_cache();
    if (v.capacity() > 0 && c.size() < kCacheCount && v.capacity() * sizeof(Px) <= kCacheBytes)
        c.push_back(std::move(v));
    v = PxVec();
}

struct MgGrid {
    int nx = 0, ny = 0;  // interior extent
    int sw = 0, sh = 0;  // storage extent
    long unknowns = 0;
    std::vector<float> w;        // 1 at unknowns, 0 elsewhere
    std::vector<int> lo, hi;     // per storage row: unknowns lie in [lo, hi]; lo > hi if none
    PxVec u, b, r;               // solution, right-hand side, residual (coarse levels)

    MgGrid(int nx_, int ny_) : nx(nx_), ny(ny_), sw(2 * ((nx_ + 1) / 2) + 2), sh(2 * ((ny_ + 1) / 2) + 2) {
        w.assign(size(), 0.0f);
        lo.assign(static_cast<std::size_t>(sh), 1);
        hi.assign(static_cast<std::size_t>(sh), 0);
    }
    std::size_t size() const { return static_cast<std::size_t>(sw) * static_cast<std::size_t>(sh); }
    std::size_t at(int i, int j) const {
        return static_cast<std::size_t>(j) * static_cast<std::size_t>(sw) + static_cast<std::size_t>(i);
    }
    long work() const { return static_cast<long>(nx) * ny; }
    // Row ranges and the unknown count from w. (Scans from either end, then a count
    // without branches: a branch per pixel cost as much as a pass over a pixel buffer.)
    void index() {
        unknowns = 0;
        for (int j = 0; j < sh; ++j) {
            const float* wr = w.data() + at(0, j);
            int l = 0;
            while (l < sw && wr[l] == 0.0f) ++l;
            if (l == sw) {
                lo[static_cast<std::size_t>(j)] = 1;
                hi[static_cast<std::size_t>(j)] = 0;
                continue;
            }
            int h = sw - 1;
            while (wr[h] == 0.0f) --h;  // stops at l at the latest
            int count = 0;
            for (int i = l; i <= h; ++i) count += wr[i] != 0.0f ? 1 : 0;
            unknowns += count;
            lo[static_cast<std::size_t>(j)] = l;
            hi[static_cast<std::size_t>(j)] = h;
        }
    }
};

// Zeroes v outside every row's range of unknowns [lo, hi] (whole rows without unknowns):
// the rest is written by each pass before it is read, and neighbours outside the
// domain must read as zero.
inline void zero_outside_ranges(const MgGrid& g, PxVec& v) {
    for (int j = 0; j < g.sh; ++j) {
        Px* row = v.data() + g.at(0, j);
        const int lo = g.lo[static_cast<std::size_t>(j)], hi = g.hi[static_cast<std::size_t>(j)];
        if (lo > hi) {
            std::fill(row, row + g.sw, Px::Zero());
        } else {
            std::fill(row, row + lo, Px::Zero());
            std::fill(row + hi + 1, row + g.sw, Px::Zero());
        }
    }
}
inline PxVec take_px_ranges(const MgGrid& g) {
    PxVec v = take_px_stale(g.size());
    zero_outside_ranges(g, v);
    return v;
}
// Zeroes v outside the row ranges only where the 5-point stencil of an unknown reaches:
// enough for a buffer that no pass reads elsewhere outside the ranges (the CG vectors;
// not one that is restricted or prolonged), and a thin band instead of (on face masks) a
// fifth of the grid.
inline PxVec take_px_halo(const MgGrid& g) {
    PxVec v = take_px_stale(g.size());
    auto zero = [&](Px* row, int a, int e) { std::fill(row + a, row + std::max(a, e + 1), Px::Zero()); };
    for (int j = 0; j < g.sh; ++j) {
        Px* row = v.data() + g.at(0, j);
        const int lo = g.lo[static_cast<std::size_t>(j)], hi = g.hi[static_cast<std::size_t>(j)];
        if (lo <= hi) {  // unknowns lie in [1, nx], so lo - 1 and hi + 1 are in the storage
            row[lo - 1] = Px::Zero();
            row[hi + 1] = Px::Zero();
        }
        for (int k = j - 1; k <= j + 1; k += 2) {
            if (k < 0 || k >= g.sh) continue;
            const int nlo = g.lo[static_cast<std::size_t>(k)], nhi = g.hi[static_cast<std::size_t>(k)];
            if (lo > hi) {
                zero(row, nlo, nhi);
            } else {
                zero(row, nlo, std::min(nhi, lo - 1));
                zero(row, std::max(nlo, hi + 1), nhi);
            }
        }
    }
    return v;
}

struct PcgResult {
    int iterations = 0;
    float residual = 0.0f;  // final max over channels of |r| / |f|
};

class MaskedPoissonPcg {
public:
    static constexpr int kCoarsest = 4;        // coarsen until both extents are at most this
    static constexpr int kCoarsestSweeps = 12;  // red-black sweeps on the coarsest grid
    static constexpr int kSweeps = 2;  // pre (red, black) and post (black, red) sweeps per level
    // Started from a guess, the last CG step must also have changed the values by at most
    // this on average (grey levels, per channel): the residual of a good guess is small
    // from the start, and reaching the tolerance no longer means that the smooth part of
    // the error is gone. A multigrid-preconditioned step leaves an error of a small
    // fraction of its own size, so a step of mean <= 1/4 leaves a mean error of a few
    // hundredths. (Measured: on blends of a different face into a photo the first step
    // changes the values by about 1 on average and leaves a mean error of 0.55-0.7 against
    // the converged solution, so a second step follows (mean error <= 0.03); the synthesis
    // pipeline's composites match the photo along the mask's edge, their first step
    // changes the values by a few hundredths and leaves a mean error of 0.001-0.1.)
    static constexpr float kGuessMeanStep = 0.25f;
    // Columns are grouped in tiles of kTile for skipping work where a right-hand side is
    // zero (see guess_support()).
    static constexpr int kTile = 16;
    static_assert(2 * kSweeps + 2 <= kTile, "active_tiles() widens the support by one tile to either side");
    static_assert(kTile % 2 == 0, "restrict_residual() maps tiles to coarse cells");

    // Set fine().w (1 = unknown; never on the storage frame) and fine().b (the right-hand
    // side), then call prepare() and solve().
    MaskedPoissonPcg(int nx, int ny, RowPool& pool) : pool_(pool) {
        levels_.reserve(40);  // fine() stays valid: extents <= 2^20 give at most 21 levels
        levels_.emplace_back(nx, ny);
    }

    ~MaskedPoissonPcg() {
        give_px(x_);
        for (auto& g : levels_) {
            give_px(g.u);
            give_px(g.b);
            give_px(g.r);
        }
    }
    MaskedPoissonPcg(const MaskedPoissonPcg&) = delete;
    MaskedPoissonPcg& operator=(const MaskedPoissonPcg&) = delete;

    MgGrid& fine() { return levels_.front(); }
    // Optional initial guess on the fine grid: call before solve() and write every value
    // of the returned storage-sized buffer (its contents are unspecified; zero wherever
    // there is no unknown). Without it the guess is 0.
    PxVec& guess() {
        if (x_.size() != levels_.front().size()) {
            give_px(x_);
            x_ = take_px_stale(levels_.front().size());
        }
        has_guess_ = true;
        return x_;
    }
    // Tiles per storage row of grid g.
    static int tiles(const MgGrid& g) { return (g.sw + kTile - 1) / kTile; }
    // Optional, with a guess: where its residual b - A x may be nonzero, as flags per tile
    // of kTile columns of each storage row (sh x tiles(fine()), zeroed here; set the tiles
    // that hold such a pixel or a 4-neighbour of one; a superset is fine). The first
    // V-cycle then skips its pre-smoothing elsewhere, where it would only compute zeros
    // (same result, less work), and its fine post-smoothing too, which changes the result
    // a little: the coarse correction there is smooth, and the fine error left by a good
    // guess is where its residual was (a good guess leaves a residual only along its
    // flaws, e.g. a blend's mask edge). Measured on the synthesis pipeline's composites
    // (56 targets, 1024^2): the same CG iterations and the same mean distance to the
    // converged solve (0.016 grey levels), the blend 7% faster. solve() keeps CG sound
    // with this different first preconditioner (see there).
    std::vector<std::uint8_t>& guess_support() {
        const MgGrid& g = levels_.front();
        support_.assign(static_cast<std::size_t>(g.sh) * static_cast<std::size_t>(tiles(g)), 0);
        has_support_ = true;
        return support_;
    }
    const PxVec& solution() const { return x_; }

    // The levels and their buffers, after fine().w is set. `local`: for solve_local, which
    // zeroes the fine residual where it reads it (a third of a face box's cells lie
    // outside the mask, and zeroing them there cost a pass over them).
    void prepare(bool local = false) {
        levels_.front().index();
        while (levels_.back().nx > kCoarsest || levels_.back().ny > kCoarsest) {
            const MgGrid& F = levels_.back();
            MgGrid C((F.nx + 1) / 2, (F.ny + 1) / 2);
            for (int J = 1; J <= C.ny; ++J) {
                const int j = 2 * J - 1;
                if (F.lo[j] > F.hi[j] && F.lo[j + 1] > F.hi[j + 1]) continue;
                const float* w0 = F.w.data() + F.at(0, j);
                const float* w1 = F.w.data() + F.at(0, j + 1);
                float* wc = C.w.data() + C.at(0, J);
                for (int I = 1; I <= C.nx; ++I) {
                    const int i = 2 * I - 1;
                    // an unknown where at least 3 of the 4 children are (see the header)
                    wc[I] = (w0[i] + w0[i + 1]) + (w1[i] + w1[i + 1]) >= 3.0f ? 1.0f : 0.0f;
                }
            }
            C.index();
            levels_.push_back(std::move(C));
        }
        for (std::size_t l = 0; l < levels_.size(); ++l) {
            MgGrid& g = levels_[l];
            // u, r and coarse b are written over each row's range before being read
            if (l == 0) {
                // (solve_local zeroes the fine residual itself, where it is read)
                g.r = local ? take_px_stale(g.size()) : take_px_ranges(g);
                if (g.b.size() != g.size()) g.b = take_px(g.size());
            } else {
                g.u = take_px_ranges(g);
                g.b = take_px_ranges(g);
                g.r = take_px_ranges(g);
            }
        }
        rowsum_.assign(static_cast<std::size_t>(levels_.front().sh), Px::Zero());
    }

    // Solves from the initial guess (guess(); zero without one) until every channel's
    // residual norm is at most tolerance times its right-hand side's norm (or max_iter
    // iterations). A channel whose guess leaves a larger residual than zero does starts
    // from zero instead, so a guess can only help.
    PcgResult solve(float tolerance, int max_iter = 100) {
        MgGrid& G = levels_.front();
        const std::size_t n = G.size();
        if (!has_guess_) {
            give_px(x_);
            x_ = take_px(n);
        }
        has_guess_ = false;
        PxVec& r = G.b;  // the right-hand side becomes the residual
        PcgResult res;
        if (G.unknowns == 0) {
            std::fill(x_.begin(), x_.end(), Px::Zero());
            return res;
        }
        // (z and p: the stencil reads them next to the ranges; q only within them)
        PxVec z = take_px_halo(G), p = take_px_halo(G), q = take_px_stale(n);
        struct Giver {
            PxVec *a, *b, *c;
            ~Giver() { give_px(*a); give_px(*b); give_px(*c); }
        } giver{&z, &p, &q};

        // <b, b>, q = b - A x and <q, q> for the guess, in one pass; then r = b - A x,
        // channel by channel only where that beats x = 0 (a channel without a right-hand
        // side keeps r = b = 0 and x = 0)
        Eigen::Array4d ff, rg;
        guess_residual(G, r, q, ff, rg);
        Eigen::Array4d rr = ff;
        Px use;
        for (int c = 0; c < 4; ++c) use(c) = rg(c) < ff(c) ? 1.0f : 0.0f;
        bool all_use = true;
        for (int c = 0; c < 4; ++c) all_use = all_use && (use(c) != 0.0f || (ff(c) == 0.0f && rg(c) == 0.0f));
        if (all_use) {
            // r = q, by exchanging the buffers (q is overwritten before it is read again)
            std::swap(r, q);
        } else {
            rows(G, [&](int, int lo, int hi, std::size_t base) {
                Px* xr = x_.data() + base;
                Px* rrow = r.data() + base;
                const Px* qr = q.data() + base;
                for (int i = lo; i <= hi; ++i) {
                    xr[i] *= use;
                    rrow[i] = use * qr[i] + (1.0f - use) * rrow[i];
                }
            });
        }
        for (int c = 0; c < 4; ++c) rr(c) = use(c) != 0.0f ? rg(c) : ff(c);
        const bool guessed = (use != 0.0f).any();
        auto rel = [&](const Eigen::Array4d& a) {
            double m = 0.0;
            for (int c = 0; c < 4; ++c)
                if (ff(c) > 0.0) m = std::max(m, std::sqrt(a(c) / ff(c)));
            return m;
        };
        double relres = rel(rr);
        if (relres <= tolerance) {
            res.residual = static_cast<float>(relres);
            return res;
        }
        // From a guess with a support, the first V-cycle works near the support only (see
        // vcycle()): a different preconditioner than the later ones, and not a symmetric one.
        // The first step is still an exact line search (p = z, alpha = <r, p> / <p, A p>), and
        // the second direction is made A-conjugate to the first explicitly:
        // beta = -<z, A p> / <p, A p>, which is the usual <r, z>_new / <r, z>_old when one
        // symmetric preconditioner serves both.
        const std::uint8_t* act = all_use && guessed && has_support_ ? active_tiles(G) : nullptr;
        has_support_ = false;
        bool conjugate = act != nullptr;
        Eigen::Array4d rz = vcycle_dot(r.data(), z.data(), act);
        // p = z: both are zero outside the row ranges and the next V-cycle rewrites z's
        // ranges in full, so exchanging the buffers is the copy without the pass
        std::swap(z, p);
        Eigen::Array4d pq = apply_dot(G, p, q);
        for (int it = 1; it <= max_iter; ++it) {
            const Px alpha = ratio(rz, pq);
            float step = 0.0f;
            rr = update(G, alpha, p, q, r, step);
            res.iterations = it;
            relres = rel(rr);
            // From a guess: also wait for a small step (see kGuessMeanStep).
            if (relres <= tolerance && (!guessed || step <= kGuessMeanStep)) break;
            const Eigen::Array4d rz_new = vcycle_dot(r.data(), z.data());
            const Px beta = conjugate ? ratio(-dot(G, z, q), pq) : ratio(rz_new, rz);  // q = A p
            conjugate = false;
            rz = rz_new;
            pq = xpay_apply_dot(G, z, beta, p, q);
        }
        res.residual = static_cast<float>(relres);
        return res;
    }

    // -- The edge-local solve --------------------------------------------------------------
    // For a right-hand side that is zero outside a thin band (the residual of a guess that
    // is exact except along a mask's edge): one V-cycle whose fine-level work stays near
    // the band, with the coarse problem solved closer than one V-cycle would (coarse_solve:
    // nested iteration), and no CG around it. What the V-cycle leaves is the smooth part of
    // the coarse solve's error, so solving the coarse problem closer is what makes one
    // cycle enough; away from the band the correction is the coarse one, interpolated
    // where it is read (correction()), so no pass touches the whole fine grid. Measured on
    // the synthesis pipeline's composites (280 targets: 30 London and 10 wild photos, 7
    // expressions), against the converged solve: mean difference 0.0065 (median) and 0.11
    // (largest) grey levels, 8 at the worst pixel, as close as CG stopped at a relative
    // residual of 3e-3 (0.11). Earlier coarse solves, for comparison: one level-1 V-cycle
    // from a once-nested start 0.007 / 0.12 / 6 (1.1x the blend's time), two V-cycles
    // from zero 0.007 / 0.13, one from zero up to 0.26 (210 London targets).
    //
    // Use: set fine().w and guess_support() as for solve(); prepare(true); local_tiles(), then
    // write fine().b over the returned tiles' columns of each row (every unknown there;
    // fine().b may be a stale buffer: nothing else is read); solve_local(); correction().
    //
    // The fine-level tiles the band's V-cycle works on: the support's reach (see
    // active_tiles()), or null for all of them.
    const std::uint8_t* local_tiles() {
        MgGrid& G = levels_.front();
        local_ = has_support_ && levels_.size() > 1 ? active_tiles(G) : nullptr;
        has_support_ = false;
        // prolonged where the post-smoothing reads: the tiles and a one-pixel ring (one
        // tile to either side, one row above and below)
        if (local_) prolonged_ = grown_tiles(G, active_, 1);
        return local_;
    }
    // f(a, e) for each run [a, e] of a row's unknowns' range [lo, hi] that lies in `tiles`
    // (null: the whole range).
    template <typename F>
    static void tile_runs(const MgGrid& g, const std::uint8_t* tiles, int j, F&& f) {
        const int lo = g.lo[static_cast<std::size_t>(j)], hi = g.hi[static_cast<std::size_t>(j)];
        if (lo <= hi) active_runs(g, tiles, j, lo, hi, f);
    }
    void solve_local() {
        MgGrid& G = levels_.front();
        give_px(x_);
        const std::uint8_t* act = local_;
        if (G.unknowns == 0 || levels_.size() == 1) {  // a coarsest grid already: no band to speak of
            x_ = take_px_ranges(G);
            if (G.unknowns > 0) vcycle(0, G.b.data(), x_.data());
            return;
        }
        if (act) {
            // u and the fine residual need zeros only where they are read: u in the
            // prolonged tiles, the residual in the active ones and as far as restriction
            // reaches from them (a tile to either side, three rows). Zeroed there up front,
            // instead of over every row's range by the first half-sweep and the residual.
            x_ = take_px_stale(G.size());
            zero_tiles(G, x_, prolonged_, 0);
            zero_tiles(G, G.r, active_, 3);
        } else {
            x_ = take_px_ranges(G);  // the first half-sweep zeroes the ranges
            zero_outside_ranges(G, G.r);  // restriction reads it there (prepare(true) left it)
        }
        MgGrid& C = levels_[1];
        prezeroed_ = act != nullptr;
        for (int k = 0; k < sweeps_; ++k)
            smooth_pair(G, x_.data(), G.b.data(), 0, k == 0, k + 1 == sweeps_, false, act);
        prezeroed_ = false;
        restrict_residual(G, C, act);
        coarse_solve();
        prolong_add(C, G, x_.data(), act ? prolonged_.data() : nullptr);
        for (int k = 0; k < sweeps_; ++k) smooth_pair(G, x_.data(), G.b.data(), 1, false, false, false, act);
    }

    // The coarse problem of solve_local (level 1: C u = C b), by nested iteration (full
    // multigrid): level l's right-hand side is restricted to level l + 1, that problem is
    // solved the same way, and its solution is prolonged as level l's start, which one
    // V-cycle then improves; at level 1 two smoothing sweeps do instead of that V-cycle
    // (its own coarse correction would mostly repeat the level-2 solve just done). On the
    // synthesis pipeline's composites this lands closer to the converged solve than one
    // level-1 V-cycle from the once-nested start, which cost 1.1x as much (see
    // solve_local). The coarsest level is solved by its sweeps from zero.
    void coarse_solve(std::size_t l = 1) {
        MgGrid& C = levels_[l];
        if (l + 1 == levels_.size()) {
            vcycle(l, C.b.data(), C.u.data());
            return;
        }
        // C's residual of u = 0 (C.r is zero outside the row ranges), restricted to D; and
        // u = 0 on C's unknowns, to take D's solution
        rows(C, [&](int, int lo, int hi, std::size_t base) {
            const Px* b = C.b.data() + base;
            const float* w = C.w.data() + base;
            Px* r = C.r.data() + base;
            Px* u = C.u.data() + base;
            for (int i = lo; i <= hi; ++i) {
                r[i] = b[i] * w[i];
                u[i] = Px::Zero();
            }
        });
        MgGrid& D = levels_[l + 1];
        restrict_residual(C, D);
        coarse_solve(l + 1);
        prolong_add(D, C, C.u.data());
        if (l > 1)
            vcycle(l, C.b.data(), C.u.data(), false, nullptr, true);
        else
            for (int k = 0; k < sweeps_; ++k) smooth_pair(C, C.u.data(), C.b.data(), 1, false);
    }

    // v = 0 over the storage columns of the tiles set in `flags` (sh x tiles(g)), grown by
    // a tile to either side and `rows_out` rows up and down.
    void zero_tiles(const MgGrid& g, PxVec& v, const std::vector<std::uint8_t>& flags, int rows_out) const {
        const int nt = tiles(g);
        const std::vector<std::uint8_t> any = grown_tiles(g, flags, rows_out);
        for (int j = 0; j < g.sh; ++j) {
            Px* row = v.data() + g.at(0, j);
            const std::uint8_t* a = any.data() + static_cast<std::size_t>(j) * nt;
            for (int t = 0; t < nt; ++t)
                if (a[t]) std::fill(row + t * kTile, row + std::min(g.sw, (t + 1) * kTile), Px::Zero());
        }
    }

    // f(a, e, quiet) for consecutive spans [a, e] that cover [lo, hi] of fine row j (within
    // its range), in order. quiet: every channel of correction() there is below `limit` in
    // magnitude, known without computing it: outside the prolonged tiles it is the coarse
    // correction interpolated with non-negative weights that sum to one, so no larger than
    // the coarse values it reads. (Most of a synthesized face: its correction is far below
    // half a grey level away from the mask's edge.)
    template <typename F>
    void correction_spans(int j, int lo, int hi, float limit, F&& f) const {
        if (!local_) {
            f(lo, hi, false);
            return;
        }
        const MgGrid& G = levels_.front();
        const MgGrid& C = levels_[1];
        const std::uint8_t* pt = prolonged_.data() + static_cast<std::size_t>(j) * static_cast<std::size_t>(tiles(G));
        const auto [c0, c1] = coarse_rows(C, j);
        int start = lo;
        bool start_quiet = false;
        for (int t0 = lo; t0 <= hi;) {
            const int t = t0 / kTile, t1 = std::min(hi, (t + 1) * kTile - 1);
            bool quiet = false;
            if (!pt[t]) {
                // prolonged() reads coarse columns [i >> 1, (i >> 1) + 1] for column i
                Eigen::Array4f m = Eigen::Array4f::Zero();
                for (int c = t0 >> 1; c <= (t1 >> 1) + 1; ++c) m = m.max(c0[c].abs()).max(c1[c].abs());
                quiet = m.head<3>().maxCoeff() < limit;  // (false for NaN)
            }
            if (t0 > lo && quiet != start_quiet) {
                f(start, t0 - 1, start_quiet);
                start = t0;
            }
            start_quiet = quiet;
            t0 = t1 + 1;
        }
        f(start, hi, start_quiet);
    }

    // out[a..e] = the local solve's result on fine row j (a, e within the row's range).
    void correction(int j, int a, int e, Px* out) const {
        const MgGrid& G = levels_.front();
        const Px* ur = x_.data() + G.at(0, j);
        if (!local_) {
            std::copy(ur + a, ur + e + 1, out + a);
            return;
        }
        const std::uint8_t* pt = prolonged_.data() + static_cast<std::size_t>(j) * static_cast<std::size_t>(tiles(G));
        const MgGrid& C = levels_[1];
        const float* wr = G.w.data() + G.at(0, j);
        const auto [c0, c1] = coarse_rows(C, j);
        for (int t0 = a; t0 <= e;) {
            const int t = t0 / kTile, t1 = std::min(e, (t + 1) * kTile - 1);
            if (pt[t]) {
                std::copy(ur + t0, ur + t1 + 1, out + t0);
            } else {
                for (int i = t0; i <= t1; ++i) out[i] = prolonged(c0, c1, i) * wr[i];
            }
            t0 = t1 + 1;
        }
    }

private:
    RowPool& pool_;
    const std::uint8_t* local_ = nullptr;       // see local_tiles()
    bool prezeroed_ = false;  // solve_local's pre-smoothing: u and r are zero where read
    std::vector<std::uint8_t> prolonged_;       // fine tiles where the local solve prolongs
    int sweeps_ = kSweeps;
    std::vector<MgGrid> levels_;
    PxVec x_;
    bool has_guess_ = false;
    PxVec rowsum2_;
    PxVec rowsum_;
    std::vector<int> blk_end_;  // smooth_pair: end of the block of rows starting at each row
    std::vector<std::uint8_t> support_, active_;  // fine-grid tiles: see guess_support, active_tiles
    bool has_support_ = false;

    static Px ratio(const Eigen::Array4d& a, const Eigen::Array4d& b) {
        Px out;
        for (int c = 0; c < 4; ++c) out(c) = b(c) > 0.0 ? static_cast<float>(a(c) / b(c)) : 0.0f;
        return out;
    }

    template <typename F>
    void rows(const MgGrid& g, F&& fn) {
        pool_.rows(1, g.ny + 1, g.work(), [&](int j0, int j1) {
            for (int j = j0; j < j1; ++j) {
                const int lo = g.lo[static_cast<std::size_t>(j)], hi = g.hi[static_cast<std::size_t>(j)];
                if (lo <= hi) fn(j, lo, hi, g.at(0, j));
            }
        });
    }

    Eigen::Array4d sum_rows(const MgGrid& g) const {
        Eigen::Array4d s = Eigen::Array4d::Zero();
        for (int j = 1; j <= g.ny; ++j) s += rowsum_[static_cast<std::size_t>(j)].cast<double>();
        return s;
    }

    Eigen::Array4d dot(const MgGrid& g, const PxVec& a, const PxVec& b) {
        rows(g, [&](int j, int, int, std::size_t) { dot_row(g, a.data(), b.data(), j); });
        return sum_rows(g);
    }

    // q = b - A x_ on unknowns; ff = <b, b>, rg = <q, q> per channel.
    void guess_residual(const MgGrid& g, const PxVec& b, PxVec& q, Eigen::Array4d& ff, Eigen::Array4d& rg) {
        const int s = g.sw;
        rowsum2_.assign(rowsum_.size(), Px::Zero());
        rows(g, [&](int j, int lo, int hi, std::size_t base) {
            const Px* xr = x_.data() + base;
            const Px* br = b.data() + base;
            const float* wr = g.w.data() + base;
            Px* qr = q.data() + base;
            Px sb = Px::Zero(), sr = Px::Zero();
            for (int i = lo; i <= hi; ++i) {
                const Px v = (4.0f * xr[i] - xr[i - 1] - xr[i + 1] - xr[i - s] - xr[i + s]) * wr[i];
                const Px d = br[i] - v;
                qr[i] = d;
                sb += br[i] * br[i];
                sr += d * d;
            }
            rowsum_[static_cast<std::size_t>(j)] = sb;
            rowsum2_[static_cast<std::size_t>(j)] = sr;
        });
        ff = sum_rows(g);
        rg = Eigen::Array4d::Zero();
        for (int j = 1; j <= g.ny; ++j) rg += rowsum2_[static_cast<std::size_t>(j)].cast<double>();
    }

    // The tiles within reach of the support_ tiles: as far as the pre-smoothing and the
    // residual of a V-cycle spread a right-hand side (one pixel per half-sweep, one more
    // for the residual, one for support_'s neighbours) in rows, and one tile to either
    // side (a tile is wider than that). Null when more than half the tiles would be active
    // (skipping then saves little).
    const std::uint8_t* active_tiles(const MgGrid& g) {
        active_ = grown_tiles(g, support_, 2 * sweeps_ + 2);
        std::size_t count = 0;
        for (std::uint8_t a : active_) count += a;
        return 2 * count < active_.size() ? active_.data() : nullptr;
    }

    // Tile flags of grid g (sh x tiles(g)) grown by a tile to either side and `rows` rows
    // up and down.
    static std::vector<std::uint8_t> grown_tiles(const MgGrid& g, const std::vector<std::uint8_t>& flags, int rows) {
        const int nt = tiles(g);
        std::vector<std::uint8_t> wide(flags.size(), 0), out(flags.size(), 0);
        for (std::size_t j = 0; j < static_cast<std::size_t>(g.sh); ++j) {
            const std::uint8_t* a = flags.data() + j * nt;
            std::uint8_t* o = wide.data() + j * nt;
            for (int t = 0; t < nt; ++t) o[t] = a[t] | (t > 0 ? a[t - 1] : 0) | (t + 1 < nt ? a[t + 1] : 0);
        }
        for (int j = 0; j < g.sh; ++j) {
            std::uint8_t* o = out.data() + static_cast<std::size_t>(j) * nt;
            for (int k = std::max(j - rows, 0); k <= std::min(j + rows, g.sh - 1); ++k) {
                const std::uint8_t* a = wide.data() + static_cast<std::size_t>(k) * nt;
                for (int t = 0; t < nt; ++t) o[t] |= a[t];
            }
        }
        return out;
    }

    void copy(const MgGrid& g, const PxVec& a, PxVec& b) {
        rows(g, [&](int, int lo, int hi, std::size_t base) {
            std::copy(a.begin() + static_cast<std::ptrdiff_t>(base + lo),
                      a.begin() + static_cast<std::ptrdiff_t>(base + hi + 1),
                      b.begin() + static_cast<std::ptrdiff_t>(base + lo));
        });
    }

    // q = A p on unknowns; returns <p, q>.
    Eigen::Array4d apply_dot(const MgGrid& g, const PxVec& p, PxVec& q) {
        const int s = g.sw;
        rows(g, [&](int j, int lo, int hi, std::size_t base) {
            const Px* pr = p.data() + base;
            const float* wr = g.w.data() + base;
            Px* qr = q.data() + base;
            Px acc = Px::Zero();
            for (int i = lo; i <= hi; ++i) {
                const Px v = (4.0f * pr[i] - pr[i - 1] - pr[i + 1] - pr[i - s] - pr[i + s]) * wr[i];
                qr[i] = v;
                acc += v * pr[i];
            }
            rowsum_[static_cast<std::size_t>(j)] = acc;
        });
        return sum_rows(g);
    }

    // x += alpha p, r -= alpha q; returns <r, r>.
    // Also sets `step` to the mean of |alpha p| over the unknowns (the mean change of the
    // values), the largest over the channels.
    Eigen::Array4d update(const MgGrid& g, const Px& alpha, const PxVec& p, const PxVec& q, PxVec& r, float& step) {
        rowsum2_.assign(rowsum_.size(), Px::Zero());
        rows(g, [&](int j, int lo, int hi, std::size_t base) {
            const Px* pr = p.data() + base;
            const Px* qr = q.data() + base;
            Px* xr = x_.data() + base;
            Px* rr = r.data() + base;
            Px acc = Px::Zero(), moved = Px::Zero();
            for (int i = lo; i <= hi; ++i) {
                const Px dx = alpha * pr[i];
                xr[i] += dx;
                moved += dx.abs();
                const Px v = rr[i] - alpha * qr[i];
                rr[i] = v;
                acc += v * v;
            }
            rowsum_[static_cast<std::size_t>(j)] = acc;
            rowsum2_[static_cast<std::size_t>(j)] = moved;
        });
        Eigen::Array4d total = Eigen::Array4d::Zero();
        for (int j = 1; j <= g.ny; ++j) total += rowsum2_[static_cast<std::size_t>(j)].cast<double>();
        step = static_cast<float>(total.maxCoeff() / static_cast<double>(std::max(g.unknowns, 1L)));
        return sum_rows(g);
    }

    // p = z + beta p and q = A p, the latter as A z + beta q (q = A p on entry), which
    // needs no neighbour of the new p: one pass instead of two. Returns <p, q>.
    Eigen::Array4d xpay_apply_dot(const MgGrid& g, const PxVec& z, const Px& beta, PxVec& p, PxVec& q) {
        const int s = g.sw;
        rows(g, [&](int j, int lo, int hi, std::size_t base) {
            const Px* zr = z.data() + base;
            const float* wr = g.w.data() + base;
            Px* pr = p.data() + base;
            Px* qr = q.data() + base;
            Px acc = Px::Zero();
            for (int i = lo; i <= hi; ++i) {
                const Px pn = zr[i] + beta * pr[i];
                pr[i] = pn;
                const Px v = (4.0f * zr[i] - zr[i - 1] - zr[i + 1] - zr[i - s] - zr[i + s]) * wr[i] + beta * qr[i];
                qr[i] = v;
                acc += v * pn;
            }
            rowsum_[static_cast<std::size_t>(j)] = acc;
        });
        return sum_rows(g);
    }

    // p = z + beta p.
    void xpay(const MgGrid& g, const PxVec& z, const Px& beta, PxVec& p) {
        rows(g, [&](int, int lo, int hi, std::size_t base) {
            const Px* zr = z.data() + base;
            Px* pr = p.data() + base;
            for (int i = lo; i <= hi; ++i) pr[i] = zr[i] + beta * pr[i];
        });
    }

    // One red-black half-sweep of colour `color` ((i + j) & 1 == color). With `first`, u
    // is taken as zero on entry: the colour's points get b / 4, the others 0.
    void smooth_half(const MgGrid& g, Px* u, const Px* b, int color, bool first) {
        rows(g, [&](int j, int, int, std::size_t) { smooth_row(g, u, b, j, color, first); });
    }

    // `act` (or null for all) flags the tiles of each storage row (see kTile).
    // f(a, b) for each maximal run [a, b] of active tiles' columns within [lo, hi].
    template <typename F>
    static void active_runs(const MgGrid& g, const std::uint8_t* act, int j, int lo, int hi, F&& f) {
        if (!act) {
            f(lo, hi);
            return;
        }
        const std::uint8_t* a = act + static_cast<std::size_t>(j) * static_cast<std::size_t>(tiles(g));
        const int t1 = hi / kTile;
        for (int t = lo / kTile; t <= t1; ++t) {
            if (!a[t]) continue;
            const int first = t;
            while (t + 1 <= t1 && a[t + 1]) ++t;
            f(std::max(lo, first * kTile), std::min(hi, (t + 1) * kTile - 1));
        }
    }

#if AFFCORE_BLEND_AVX512
    // smooth_row's Gauss-Seidel update at pixels i, i + 2, ... of one colour, four pixels
    // (two of them that colour) per step: the neighbours are all of the other colour, which
    // this half-sweep does not change, so updating two at once is the same as one after the
    // other. The same float operations in the same order per lane, so the same values. A
    // chunk's results are written back after all of its loads: a load that overlaps an
    // earlier masked store waits for it (no store forwarding). Reads up to pixel e + 2 of
    // the row and e + 1 of the rows above and below (at most the grid's frame and the first
    // pixel of the next row), b and w up to e + 1. Returns the first pixel left.
    static int gauss_seidel_avx512(Px* ur, const Px* br, const float* wr, int s, int i, int e) {
        constexpr int kChunk = 32;  // pixels per write-back
        float* u = ur->data();
        const float* b = br->data();
        const std::ptrdiff_t row = 4 * static_cast<std::ptrdiff_t>(s);
        const __m512i spread = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
        const __m128 quarter = _mm_set1_ps(0.25f);
        alignas(64) float out[4 * kChunk];
        while (i + 2 <= e) {
            const int start = i;
            for (; i + 2 <= e && i - start < kChunk; i += 4) {
                const std::ptrdiff_t p = 4 * static_cast<std::ptrdiff_t>(i);
                const __m512 sum = _mm512_add_ps(
                    _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(_mm512_loadu_ps(u + p - 4), _mm512_loadu_ps(u + p + 4)),
                                                _mm512_loadu_ps(u + p - row)),
                                  _mm512_loadu_ps(u + p + row)),
                    _mm512_loadu_ps(b + p));
                const __m512 k =
                    _mm512_permutexvar_ps(spread, _mm512_castps128_ps512(_mm_mul_ps(quarter, _mm_loadu_ps(wr + i))));
                _mm512_store_ps(out + 4 * (i - start), _mm512_mul_ps(sum, k));
            }
            for (int q = start; q < i; q += 2) _mm_storeu_ps(u + 4 * q, _mm_load_ps(out + 4 * (q - start)));
        }
        return i;
    }
#endif

    // One row of smooth_half; with `act`, only in active tiles (u is zero elsewhere).
    void smooth_row(const MgGrid& g, Px* u, const Px* b, int j, int color, bool first,
                    const std::uint8_t* act = nullptr) {
        const std::size_t js = static_cast<std::size_t>(j);
        const int lo = g.lo[js], hi = g.hi[js];
        if (lo > hi) return;
        const int s = g.sw;
        const std::size_t base = g.at(0, j);
        Px* ur = u + base;
        const Px* br = b + base;
        const float* wr = g.w.data() + base;
        if (first) {
            if (!act || !prezeroed_)
                for (int i = lo; i <= hi; ++i) ur[i] = Px::Zero();
            active_runs(g, act, j, lo, hi, [&](int a, int e) {
                for (int i = a + (((a + j) & 1) != color ? 1 : 0); i <= e; i += 2) ur[i] = br[i] * (0.25f * wr[i]);
            });
        } else {
            active_runs(g, act, j, lo, hi, [&](int a, int e) {
                int i = a + (((a + j) & 1) != color ? 1 : 0);
#if AFFCORE_BLEND_AVX512
                i = gauss_seidel_avx512(ur, br, wr, s, i, e);
#endif
                for (; i <= e; i += 2)
                    ur[i] = (ur[i - 1] + ur[i + 1] + ur[i - s] + ur[i + s] + br[i]) * (0.25f * wr[i]);
            });
        }
    }

    // One row of dot(): rowsum_[j] = <u, b> over row j. With `act`, over active tiles only,
    // for a b that is zero elsewhere (the other pixels would add zeros: the same sum).
    void dot_row(const MgGrid& g, const Px* u, const Px* b, int j, const std::uint8_t* act = nullptr) {
        const std::size_t js = static_cast<std::size_t>(j);
        const int lo = g.lo[js], hi = g.hi[js];
        if (lo > hi) return;
        const std::size_t base = g.at(0, j);
        const Px* ur = u + base;
        const Px* br = b + base;
        Px acc = Px::Zero();
        active_runs(g, act, j, lo, hi, [&](int a, int e) {
            for (int i = a; i <= e; ++i) acc += br[i] * ur[i];
        });
        rowsum_[js] = acc;
    }

    // One row of residual(); with `act`, computed in active tiles only and zero elsewhere.
    void residual_row(MgGrid& g, const Px* u, const Px* b, int j, const std::uint8_t* act = nullptr) {
        const std::size_t js = static_cast<std::size_t>(j);
        const int lo = g.lo[js], hi = g.hi[js];
        if (lo > hi) return;
        const int s = g.sw;
        const std::size_t base = g.at(0, j);
        const Px* ur = u + base;
        const Px* br = b + base;
        const float* wr = g.w.data() + base;
        Px* rr = g.r.data() + base;
        if (act && !prezeroed_)
            for (int i = lo; i <= hi; ++i) rr[i] = Px::Zero();
        active_runs(g, act, j, lo, hi, [&](int a, int e) {
            for (int i = a; i <= e; ++i)
                rr[i] = (br[i] - (4.0f * ur[i] - ur[i - 1] - ur[i + 1] - ur[i - s] - ur[i + s])) * wr[i];
        });
    }

    // smooth_half(color, first) then smooth_half(1 - color), and then, with `then_residual`,
    // residual(), fused into one sweep over each thread's block of rows (a wavefront: the
    // second colour trails the first by a row, the residual by two), which computes exactly
    // the same values as the separate passes with a third of the memory traffic.
    //
    // Across a block boundary the wavefront would read values another thread is writing,
    // so each block leaves its first and last rows' second colour (and the residual of the
    // rows next to them) undone; the calling thread finishes those rows after the parallel
    // pass. Every value is computed from the same inputs as in the separate passes, so the
    // result does not depend on the blocks, i.e. on the number of threads:
    //  * first colour, row j (all rows of the block): reads the second colour of rows
    //    j-1, j+1 before any update of it; the rows just outside the block are the
    //    neighbouring blocks' first/last rows, whose second colour is only updated later.
    //  * second colour, rows b+1..e-2: reads the first colour of rows inside the block,
    //    already updated by the wavefront; rows b and e-1 read the neighbouring blocks'
    //    first colour, so they wait for the serial pass.
    //  * residual, rows b+2..e-3: all neighbours final; the rest in the serial pass.
    // With `then_dot` (not with then_residual), also rowsum_[j] = <b, u> over row j once the
    // row is final (the same per-row sums as dot()).
    // With `act`, every row only in its active tiles (see smooth_row and dot_row: b is
    // zero outside them).
    void smooth_pair(MgGrid& g, Px* u, const Px* b, int color, bool first, bool then_residual = false,
                     bool then_dot = false, const std::uint8_t* act = nullptr) {
        blk_end_.resize(static_cast<std::size_t>(g.sh) + 1);
        pool_.rows(1, g.ny + 1, g.work(), [&](int b0, int e0) {
            blk_end_[static_cast<std::size_t>(b0)] = e0;
            for (int j = b0; j < e0 + 2; ++j) {
                if (j < e0) smooth_row(g, u, b, j, color, first, act);
                if (j - 1 >= b0 + 1 && j - 1 <= e0 - 2) {
                    smooth_row(g, u, b, j - 1, 1 - color, false, act);
                    if (then_dot) dot_row(g, u, b, j - 1, act);
                }
                if (then_residual && j - 2 >= b0 + 2 && j - 2 <= e0 - 3) residual_row(g, u, b, j - 2, act);
            }
        });
        // the block boundaries, in row order
        for (int b0 = 1; b0 <= g.ny;) {
            const int e0 = blk_end_[static_cast<std::size_t>(b0)];
            smooth_row(g, u, b, b0, 1 - color, false, act);
            if (then_dot) dot_row(g, u, b, b0, act);
            if (e0 - 1 > b0) {
                smooth_row(g, u, b, e0 - 1, 1 - color, false, act);
                if (then_dot) dot_row(g, u, b, e0 - 1, act);
            }
            b0 = e0;
        }
        if (!then_residual) return;
        for (int b0 = 1; b0 <= g.ny;) {
            const int e0 = blk_end_[static_cast<std::size_t>(b0)];
            for (int j = b0; j < std::min(b0 + 2, e0); ++j) residual_row(g, u, b, j, act);
            for (int j = std::max(b0 + 2, e0 - 2); j < e0; ++j) residual_row(g, u, b, j, act);
            b0 = e0;
        }
    }

    // g.r = b - A u on unknowns.
    void residual(MgGrid& g, const Px* u, const Px* b) {
        rows(g, [&](int j, int, int, std::size_t) { residual_row(g, u, b, j); });
    }

    // C.b = P^T F.r (weights 1,3,3,1 / 4 per axis) on coarse unknowns. With `act` (F's
    // active tiles, outside which F.r is zero), only the coarse cells whose fine footprint
    // meets an active tile are computed; the others are zero.
    void restrict_residual(const MgGrid& F, MgGrid& C, const std::uint8_t* act = nullptr) {
        const int s = F.sw;
        const int nt = tiles(F);
        rows(C, [&](int J, int lo, int hi, std::size_t base) {
            Px* bc = C.b.data() + base;
            const float* wc = C.w.data() + base;
            auto cells = [&](int a, int e) {
                for (int I = a; I <= e; ++I) {
                    const Px* r = F.r.data() + F.at(2 * I - 2, 2 * J - 2);
                    auto row = [](const Px* q) { return (q[0] + q[3]) + 3.0f * (q[1] + q[2]); };
                    const Px v = (row(r) + row(r + 3 * s)) + 3.0f * (row(r + s) + row(r + 2 * s));
                    bc[I] = v * (0.0625f * wc[I]);
                }
            };
            if (!act) {
                cells(lo, hi);
                return;
            }
            for (int I = lo; I <= hi; ++I) bc[I] = Px::Zero();
            // fine rows 2J-2..2J+1; the footprint of cell I, columns 2I-2..2I+1, meets
            // tile t (columns kTile t .. kTile t + kTile - 1) iff kTile t / 2 <= I <=
            // kTile t / 2 + kTile / 2 (kTile is even)
            const std::uint8_t* a0 = act + static_cast<std::size_t>(2 * J - 2) * static_cast<std::size_t>(nt);
            auto any = [&](int t) {
                return (a0[t] | a0[t + nt]) | (a0[t + 2 * nt] | a0[t + 3 * nt]);
            };
            for (int t = 0; t < nt; ++t) {
                if (!any(t)) continue;
                const int first = t;
                while (t + 1 < nt && any(t + 1)) ++t;
                const int a = std::max(lo, first * (kTile / 2)), e = std::min(hi, (t + 1) * (kTile / 2));
                if (a <= e) cells(a, e);
            }
        });
    }

    // (P C.u) at fine column i of a fine row whose nearer coarse row is c0 and farther one
    // c1 (bilinear, cell-centred), before the unknown's weight.
    static Px prolonged(const Px* c0, const Px* c1, int i) {
        const int I = (i + 1) >> 1;
        const int I2 = (i & 1) ? I - 1 : I + 1;
        const Px a = 0.75f * c0[I] + 0.25f * c1[I];
        const Px b = 0.75f * c0[I2] + 0.25f * c1[I2];
        return 0.75f * a + 0.25f * b;
    }

    // The rows of C.u that prolonged() blends for fine row j: the nearer (weight 3/4) and
    // the farther (1/4).
    static std::pair<const Px*, const Px*> coarse_rows(const MgGrid& C, int j) {
        const int J = (j + 1) >> 1;
        return {C.u.data() + C.at(0, J), C.u.data() + C.at(0, (j & 1) ? J - 1 : J + 1)};
    }

    // F.u += P C.u on fine unknowns; with `tiles`, only in those tiles of F.
    void prolong_add(const MgGrid& C, const MgGrid& F, Px* u, const std::uint8_t* tiles = nullptr) {
        rows(F, [&](int j, int lo, int hi, std::size_t base) {
            const Px *c0, *c1;  // (captured below: no structured binding)
            std::tie(c0, c1) = coarse_rows(C, j);
            Px* ur = u + base;
            const float* wr = F.w.data() + base;
            active_runs(F, tiles, j, lo, hi, [&](int a, int e) {
                for (int i = a; i <= e; ++i) ur[i] += prolonged(c0, c1, i) * wr[i];
            });
        });
    }

    // u = V-cycle applied to b on the fine level; returns <b, u> (computed by the last
    // smoothing pass). `act`: see vcycle.
    Eigen::Array4d vcycle_dot(const Px* b, Px* u, const std::uint8_t* act = nullptr) {
        vcycle(0, b, u, true, act);
        return sum_rows(levels_.front());
    }

    // u = V-cycle applied to b on level l (u's initial value is ignored; with `from_u`, the
    // cycle improves u as a solution of A u = b instead); with `dot` also
    // rowsum_ as for dot(b, u). With `act` (the tiles of level l within the pre-smoothing's
    // and the residual's reach of b's support), they skip the other tiles, and so does the
    // post-smoothing on level l (see guess_support(); the V-cycle is then not symmetric).
    void vcycle(std::size_t l, const Px* b, Px* u, bool dot = false, const std::uint8_t* act = nullptr,
                bool from_u = false) {
        MgGrid& g = levels_[l];
        if (l + 1 == levels_.size()) {
            smooth_half(g, u, b, 0, !from_u);
            for (int k = 0; k < kCoarsestSweeps; ++k) smooth_pair(g, u, b, 1, false);
            if (dot)  // a fine grid that is already the coarsest
                for (int j = 1; j <= g.ny; ++j) dot_row(g, u, b, j);
            return;
        }
        MgGrid& c = levels_[l + 1];
        // pre-smoothing (red, black) x sweeps_, then the residual
        for (int k = 0; k < sweeps_; ++k) smooth_pair(g, u, b, 0, k == 0 && !from_u, k + 1 == sweeps_, false, act);
        restrict_residual(g, c, act);
        vcycle(l + 1, c.b.data(), c.u.data());
        prolong_add(c, g, u);
        // (with `act`, u outside it is the coarse correction alone)
        for (int k = 0; k < sweeps_; ++k) smooth_pair(g, u, b, 1, false, false, dot && k + 1 == sweeps_, act);
    }
};

}  // namespace affcore::blend
