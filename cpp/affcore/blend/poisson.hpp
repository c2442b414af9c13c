// Poisson (gradient-domain) blending of an aligned source into a target, CPU.
//
// Guidance field: that of OpenCV's seamlessClone(NORMAL_CLONE) with the source already
// placed in the target's frame, i.e. forward differences
//     g(p) = m(p) * grad S(p) + (1 - m(p)) * grad T(p),
// m the mask eroded by a 7x7 square (OpenCV: three 3x3 erosions; outside the image counts
// as unmasked). Equation: the 5-point Laplacian of the result equals the backward-difference
// divergence of g.
//
// Domain (unlike OpenCV): the unknowns are the masked pixels themselves (minus the outermost
// image row/column); every other pixel keeps the target's value and is a Dirichlet boundary.
// We solve for the correction d = result - target:
//     4 d(p) - sum_q d(q) = sum_q m(min(p,q)) * ((S-T)(p) - (S-T)(q))   for unknown p,
//     d = 0 at every pixel outside the mask,
// (q the four neighbours, m taken at the pixel the forward difference starts from). The
// right-hand side vanishes within three pixels of the mask's edge (there g - grad T = 0,
// as in OpenCV), so d falls smoothly to zero at the edge: the result is continuous across
// it and there is no seam by construction. Inside the mask this matches OpenCV's result
// (which is close to the target just outside the mask anyway) to well under a grey level.
//
// Solver: multigrid-preconditioned CG on the masked domain (multigrid.hpp), float32, the
// three channels at once, restricted to the mask's bounding box grown by one pixel.
//
// Further differences from OpenCV, on purpose:
//  * Pixels outside the mask are the target, bit for bit (OpenCV changes the whole box).
//  * Values are rounded to nearest (OpenCV truncates towards zero, which darkens by half a
//    grey level on average and makes source == target not a fixed point).
//  * Masks may touch the image border. Masked pixels on the outermost image row/column are
//    Dirichlet pixels and keep the target's value; the erosion treats the outside of the
//    image as unmasked, so the blend fades to the target over the last few pixels (OpenCV
//    clears the mask's one-pixel image frame and fails on such masks).
//  * Mask pixels count as inside when nonzero (OpenCV weights by mask/255).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "affcore/blend/multigrid.hpp"
#include "affcore/blend/parallel.hpp"

namespace affcore::blend {

struct BlendStats {
    int box_x0 = 0, box_y0 = 0, box_w = 0, box_h = 0;  // mask bounding box grown by one
    long unknowns = 0;
    int iterations = 0;      // CG iterations
    float residual = 0.0f;   // final relative residual (max over channels)
};

// Half-width of the square erosion applied to the mask before mixing gradients
// (OpenCV erodes three times with a 3x3 kernel: a 7x7 square).
inline constexpr int kErodeRadius = 3;

// Default CG stopping tolerance on |r| / |f| per channel; 1e-3 keeps the correction within
// a few hundredths of a grey level of the converged solution on face photos.
inline constexpr float kDefaultTolerance = 1e-3f;

// source, target, out: H x W x 3 uint8, row-major interleaved; mask: H x W, nonzero = in.
// target and out may have rows `target_stride` / `out_stride` bytes apart (0: 3 W, packed),
// e.g. a box of a larger image. out may be target itself (same pointer and stride: in
// place) but may not otherwise overlap the inputs. threads <= 0 means all hardware threads.
inline BlendStats poisson_blend(const std::uint8_t* source, const std::uint8_t* target,
                                const std::uint8_t* mask, int H, int W, std::uint8_t* out,
                                int threads = 0, float tolerance = kDefaultTolerance, std::size_t target_stride = 0,
                                std::size_t out_stride = 0) {
    BlendStats st;
    threads = resolve_threads(threads);
    const std::size_t npix = static_cast<std::size_t>(H) * static_cast<std::size_t>(W);
    if (npix == 0) return st;
    // Threads only pay off on large images. The pool is made up front (its workers start
    // while the first pass runs): copying the target and finding the mask's bounding box
    // are row-parallel passes over the whole image.
    RowPool pool(static_cast<long>(npix) >= kMinPoolWork ? threads : 1);
    auto bidx = [](int bw_, int x, int y) { return static_cast<std::size_t>(y) * bw_ + x; };
    auto iidx = [W](int x, int y) { return static_cast<std::size_t>(y) * W + x; };
    const std::size_t ts = target_stride ? target_stride : 3 * static_cast<std::size_t>(W);
    const std::size_t os = out_stride ? out_stride : 3 * static_cast<std::size_t>(W);
    auto trow = [&](int y) { return target + static_cast<std::size_t>(y) * ts; };
    auto orow = [&](int y) { return out + static_cast<std::size_t>(y) * os; };

    // out = target; per row, the first and last masked column (-1 if none).
    std::vector<int> first_col(static_cast<std::size_t>(H)), last_col(static_cast<std::size_t>(H));
    pool.rows(0, H, static_cast<long>(npix), [&](int b, int e) {
        if (out != target)
            for (int y = b; y < e; ++y) std::memcpy(orow(y), trow(y), static_cast<std::size_t>(W) * 3);
        for (int y = b; y < e; ++y) {
            const std::uint8_t* mr = mask + iidx(0, y);
            // eight bytes at a time up to the first word with a masked pixel, from each end
            int f = 0;
            for (std::uint64_t v; f + 8 <= W; f += 8) {
                std::memcpy(&v, mr + f, 8);
                if (v) break;
            }
            while (f < W && !mr[f]) ++f;
            if (f == W) {
                first_col[static_cast<std::size_t>(y)] = last_col[static_cast<std::size_t>(y)] = -1;
                continue;
            }
            int l = W;
            for (std::uint64_t v; l - 8 >= f; l -= 8) {
                std::memcpy(&v, mr + l - 8, 8);
                if (v) break;
            }
            while (!mr[l - 1]) --l;  // stops at f at the latest
            first_col[static_cast<std::size_t>(y)] = f;
            last_col[static_cast<std::size_t>(y)] = l - 1;
        }
    });

    // Bounding box of the mask.
    int mx0 = W, my0 = H, mx1 = -1, my1 = -1;
    for (int y = 0; y < H; ++y) {
        const int first = first_col[static_cast<std::size_t>(y)];
        if (first >= 0) {
            mx0 = std::min(mx0, first); mx1 = std::max(mx1, last_col[static_cast<std::size_t>(y)]);
            my0 = std::min(my0, y); my1 = y;
        }
    }
    if (mx1 < 0) return st;  // empty mask: the target unchanged

    // Box = bounding box + 1, clipped. Its outer ring is never an unknown: it is either
    // unmasked or the image's outermost row/column.
    const int x0 = std::max(mx0 - 1, 0), y0 = std::max(my0 - 1, 0);
    const int x1 = std::min(mx1 + 1, W - 1), y1 = std::min(my1 + 1, H - 1);
    const int bw = x1 - x0 + 1, bh = y1 - y0 + 1;
    st.box_x0 = x0; st.box_y0 = y0; st.box_w = bw; st.box_h = bh;
    if (bw < 3 || bh < 3) return st;  // no interior: every masked pixel is on the frame

    const long boxwork = static_cast<long>(bw) * bh;

    // Eroded mask on the box (outside the box there is no mask, by construction of the
    // box and because the outside of the image counts as unmasked). Separable: a pixel
    // survives iff the 7-run around it is fully masked horizontally, then vertically
    // (byte-wise ANDs of 0/1 values, which vectorise).
    std::vector<std::uint8_t> hrun(static_cast<std::size_t>(bw) * bh, 0), me(hrun.size(), 0);
    const int R = kErodeRadius;
    // (__restrict: byte pointers may alias anything, which would keep the loops scalar.)
    pool.rows(0, bh, boxwork, [&](int b, int e) {
        std::vector<std::uint8_t> m01v(static_cast<std::size_t>(bw));
        std::uint8_t* __restrict m01 = m01v.data();
        for (int y = b; y < e; ++y) {
            const std::uint8_t* __restrict mr = mask + iidx(x0, y0 + y);
            for (int x = 0; x < bw; ++x) m01[x] = mr[x] != 0;
            std::uint8_t* __restrict hr = hrun.data() + bidx(bw, 0, y);
            for (int x = R; x + R < bw; ++x) {
                std::uint8_t v = m01[x - R];
                for (int k = -R + 1; k <= R; ++k) v &= m01[x + k];
                hr[x] = v;
            }
        }
    });
    pool.rows(R, std::max(R, bh - R), boxwork, [&](int b, int e) {
        for (int y = b; y < e; ++y) {
            std::uint8_t* __restrict mo = me.data() + bidx(bw, 0, y);
            const std::uint8_t* __restrict h0 = hrun.data() + bidx(bw, 0, y - R);
            for (int x = 0; x < bw; ++x) {
                std::uint8_t v = h0[x];
                for (int k = 1; k <= 2 * R; ++k) v &= h0[x + static_cast<std::size_t>(k) * bw];
                mo[x] = v;
            }
        }
    });
    // E = S - T on the box, four lanes per pixel (fourth lane zero).
    PxVec E = take_px_stale(static_cast<std::size_t>(bw) * bh);  // fully written below
    struct Giver {
        PxVec* v;
        ~Giver() { give_px(*v); }
    } e_giver{&E};
    pool.rows(0, bh, boxwork, [&](int b, int e) {
        for (int y = b; y < e; ++y) {
            const std::uint8_t* s = source + iidx(x0, y0 + y) * 3;
            const std::uint8_t* t = trow(y0 + y) + 3 * static_cast<std::size_t>(x0);
            Px* er = E.data() + bidx(bw, 0, y);
            for (int x = 0; x < bw; ++x)
                er[x] = Px(float(int(s[3 * x]) - int(t[3 * x])),
                           float(int(s[3 * x + 1]) - int(t[3 * x + 1])),
                           float(int(s[3 * x + 2]) - int(t[3 * x + 2])), 0.0f);
        }
    });

    // Fine grid: storage coordinates coincide with box coordinates (the storage may have
    // one more column and row, never unknowns).
    MaskedPoissonPcg solver(bw - 2, bh - 2, pool);
    MgGrid& G = solver.fine();
    // One pass writes, over the whole storage grid, the unknowns (w), the right-hand side
    // (b) and the initial guess: the correction is S - T where every gradient comes
    // from the source (the eroded mask), up to a smooth remainder; this leaves a residual
    // only along the erosion's edge, typically a few percent of the right-hand side (see
    // solve()). Branch-free: a mask value of 0 or 1 multiplies each term, which adds the
    // same terms in the same order as testing it would.
    G.b = take_px_stale(G.size());
    PxVec& guess = solver.guess();
    // The guess's residual is zero at unknowns that lie in the eroded mask with their four
    // neighbours: it lives in the tiles where mask and eroded mask differ (and next to them).
    std::vector<std::uint8_t>& support = solver.guess_support();
    const int tiles = MaskedPoissonPcg::tiles(G);
    const int sw = G.sw;
    pool.rows(0, G.sh, boxwork, [&](int b, int e) {
        for (int y = b; y < e; ++y) {
            float* w = G.w.data() + G.at(0, y);
            Px* f = G.b.data() + G.at(0, y);
            Px* xr = guess.data() + G.at(0, y);
            if (y < 1 || y + 1 >= bh) {  // frame rows and the extra storage row
                std::fill(f, f + sw, Px::Zero());
                std::fill(xr, xr + sw, Px::Zero());
                continue;
            }
            const std::uint8_t* mr = mask + iidx(x0, y0 + y);
            const std::uint8_t* er = me.data() + bidx(bw, 0, y);
            const Px* Er = E.data() + bidx(bw, 0, y);
            f[0] = xr[0] = Px::Zero();
            std::uint8_t* sup = support.data() + static_cast<std::size_t>(y) * static_cast<std::size_t>(tiles);
            for (int t = 0; t * MaskedPoissonPcg::kTile < bw; ++t) {
                const int xe = std::min(bw, (t + 1) * MaskedPoissonPcg::kTile);
                std::uint8_t differ = 0;
                for (int x = t * MaskedPoissonPcg::kTile; x < xe; ++x) differ |= static_cast<std::uint8_t>(mr[x] != 0) ^ er[x];
                sup[t] = differ;
            }
            for (int x = 1; x + 1 < bw; ++x) {
                const float m = mr[x] != 0 ? 1.0f : 0.0f;
                const Px ep = Er[x];
                const Px acc = float(er[x]) * ((ep - Er[x + 1]) + (ep - Er[x + bw])) + float(er[x - 1]) * (ep - Er[x - 1]) +
                               float(er[x - bw]) * (ep - Er[x - bw]);
                w[x] = m;
                f[x] = m * acc;
                xr[x] = (m * float(er[x])) * ep;
            }
            for (int x = bw - 1; x < sw; ++x) f[x] = xr[x] = Px::Zero();
        }
    });
    give_px(E);  // not needed any more: the solver reuses its memory (smaller working set)
    solver.prepare();
    st.unknowns = G.unknowns;
    const PcgResult pr = solver.solve(tolerance);
    st.iterations = pr.iterations;
    st.residual = pr.residual;
    const PxVec& d = solver.solution();

    // Write the unknowns: target + correction, rounded to nearest, clamped. Branch-free over
    // each row's range: the correction is 0 wherever there is no unknown, which writes the
    // target's own value back.
    pool.rows(1, bh - 1, boxwork, [&](int b, int e) {
        for (int y = b; y < e; ++y) {
            const int lo = std::max(G.lo[static_cast<std::size_t>(y)], 1);
            const int hi = std::min(G.hi[static_cast<std::size_t>(y)], bw - 2);
            // Px is four contiguous floats; per channel, so that no vector is assembled from
            // bytes (a store-forwarding stall per pixel). v >= 0.5 below, so truncation
            // is floor.
            const float* u = d.data()->data() + 4 * G.at(0, y);
            std::uint8_t* o = orow(y0 + y) + 3 * static_cast<std::size_t>(x0);
            const std::uint8_t* t = trow(y0 + y) + 3 * static_cast<std::size_t>(x0);
            for (int x = lo; x <= hi; ++x)
                for (int c = 0; c < 3; ++c) {
                    const float v = std::min(std::max(float(t[3 * x + c]) + u[4 * x + c], 0.0f), 255.0f) + 0.5f;
                    o[3 * x + c] = static_cast<std::uint8_t>(static_cast<int>(v));
                }
        }
    });
    return st;
}

}  // namespace affcore::blend
