// Poisson (gradient-domain) blending of an aligned source into a target, CPU.
//
// The problem solved is the one OpenCV's seamlessClone(NORMAL_CLONE) solves, with the
// source already placed in the target's frame:
//
//  * Domain: the mask's bounding box grown by one pixel on each side, and by up to seven
//    more so that multigrid coarsens well (clipped to the image). Its outer frame is a Dirichlet boundary holding the target's values; every
//    pixel inside the frame, masked or not, is an unknown.
//  * Guidance field: forward differences  g(p) = m(p) * grad S(p) + (1 - m(p)) * grad T(p),
//    where m is the mask eroded by a 7x7 square (OpenCV: three 3x3 erosions) and pixels
//    outside the image count as "not in the mask".
//  * Equation: the 5-point Laplacian of the result equals the backward-difference
//    divergence of g.
//
// We solve for the correction u = result - target, which satisfies
//     4 u(p) - sum_q u(q) = sum_q m(min(p,q)) * ((S-T)(p) - (S-T)(q))
// (q the four neighbours, m taken at the pixel the forward difference starts from) with
// u = 0 on the frame. The right-hand side vanishes away from the eroded mask and u is
// smooth there, so geometric multigrid converges in a handful of V-cycles.
//
// Differences from OpenCV, on purpose:
//  * Only masked pixels are written; everything outside the mask is the target, bit for
//    bit (OpenCV also changes unmasked pixels inside the bounding box).
//  * Values are rounded to nearest (OpenCV truncates towards zero, which darkens by half a
//    grey level on average and makes source == target not a fixed point).
//  * Masks may touch the image border. Masked pixels on the outermost image row/column lie
//    on the Dirichlet frame and keep the target's value; the erosion treats the outside of
//    the image as unmasked, so the blend fades to the target over the last few pixels
//    (OpenCV clears the mask's one-pixel image frame and fails on such masks).
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
    int box_x0 = 0, box_y0 = 0, box_w = 0, box_h = 0;  // solve domain incl. frame
    int cycles = 0;
    float last_change = 0.0f;
};

// Half-width of the square erosion applied to the mask before mixing gradients
// (OpenCV erodes three times with a 3x3 kernel: a 7x7 square).
inline constexpr int kErodeRadius = 3;

// Multigrid coarsens exactly when the interior extent n satisfies n + 1 = q * 2^k; grow the
// box [lo, hi] (within [0, size)) by at most kGrowAlign - 1 pixels so that n + 1 is a
// multiple of kGrowAlign, which makes the top three levels exact. The extra pixels get
// the target's gradient as guidance, so the solution changes by far less than a grey level.
inline constexpr int kGrowAlign = 8;
inline void grow_for_multigrid(int& lo, int& hi, int size) {
    const int n = hi - lo - 1;  // interior extent
    if (n < kGrowAlign) return;
    int extra = (kGrowAlign - (n + 1) % kGrowAlign) % kGrowAlign;
    const int up = std::min(extra, size - 1 - hi);
    hi += up;
    extra -= up;
    lo -= std::min(extra, lo);
}

// source, target, out: H x W x 3 uint8, row-major interleaved; mask: H x W, nonzero = in.
// out may not alias the inputs. threads <= 0 means all hardware threads.
inline BlendStats poisson_blend(const std::uint8_t* source, const std::uint8_t* target,
                                const std::uint8_t* mask, int H, int W, std::uint8_t* out,
                                int threads = 0, float tolerance = 0.05f) {
    BlendStats st;
    threads = resolve_threads(threads);
    const std::size_t npix = static_cast<std::size_t>(H) * static_cast<std::size_t>(W);
    if (npix == 0) return st;
    std::memcpy(out, target, npix * 3);

    // Bounding box of the mask.
    int mx0 = W, my0 = H, mx1 = -1, my1 = -1;
    for (int y = 0; y < H; ++y) {
        const std::uint8_t* mr = mask + static_cast<std::size_t>(y) * W;
        int first = -1, last = -1;
        for (int x = 0; x < W; ++x)
            if (mr[x]) { if (first < 0) first = x; last = x; }
        if (first >= 0) {
            mx0 = std::min(mx0, first); mx1 = std::max(mx1, last);
            my0 = std::min(my0, y); my1 = y;
        }
    }
    if (mx1 < 0) return st;  // empty mask: the target unchanged

    int x0 = std::max(mx0 - 1, 0), y0 = std::max(my0 - 1, 0);
    int x1 = std::min(mx1 + 1, W - 1), y1 = std::min(my1 + 1, H - 1);
    grow_for_multigrid(x0, x1, W);
    grow_for_multigrid(y0, y1, H);
    const int bw = x1 - x0 + 1, bh = y1 - y0 + 1;
    st.box_x0 = x0; st.box_y0 = y0; st.box_w = bw; st.box_h = bh;
    if (bw < 3 || bh < 3) return st;  // no interior: every masked pixel is on the frame

    const long boxwork = static_cast<long>(bw) * bh;
    auto bidx = [bw](int x, int y) { return static_cast<std::size_t>(y) * bw + x; };
    auto iidx = [W](int x, int y) { return static_cast<std::size_t>(y) * W + x; };

    // Eroded mask on the box (outside the box there is no mask, by construction of the
    // box and because the outside of the image counts as unmasked). Separable: a pixel
    // survives iff the 7-run around it is fully masked horizontally, then vertically.
    std::vector<std::uint8_t> hrun(static_cast<std::size_t>(bw) * bh, 0), me(hrun.size(), 0);
    const int R = kErodeRadius;
    parallel_rows(0, bh, threads, boxwork, [&](int b, int e) {
        std::vector<int> runs(static_cast<std::size_t>(bw));
        for (int y = b; y < e; ++y) {
            const std::uint8_t* mr = mask + iidx(x0, y0 + y);
            int run = 0;  // length of the masked run ending at x
            for (int x = 0; x < bw; ++x) { run = mr[x] ? run + 1 : 0; runs[x] = run; }
            for (int x = R; x + R < bw; ++x) hrun[bidx(x, y)] = runs[x + R] >= 2 * R + 1;
        }
    });
    parallel_rows(R, std::max(R, bh - R), threads, boxwork, [&](int b, int e) {
        for (int y = b; y < e; ++y)
            for (int x = 0; x < bw; ++x) {
                bool ok = true;
                for (int k = -R; k <= R && ok; ++k) ok = hrun[bidx(x, y + k)] != 0;
                me[bidx(x, y)] = ok;
            }
    });

    // E = S - T on the box, four lanes per pixel (fourth lane zero).
    PxVec E(static_cast<std::size_t>(bw) * bh, Px::Zero());
    parallel_rows(0, bh, threads, boxwork, [&](int b, int e) {
        for (int y = b; y < e; ++y) {
            const std::uint8_t* s = source + iidx(x0, y0 + y) * 3;
            const std::uint8_t* t = target + iidx(x0, y0 + y) * 3;
            Px* er = E.data() + bidx(0, y);
            for (int x = 0; x < bw; ++x)
                er[x] = Px(float(int(s[3 * x]) - int(t[3 * x])),
                           float(int(s[3 * x + 1]) - int(t[3 * x + 1])),
                           float(int(s[3 * x + 2]) - int(t[3 * x + 2])), 0.0f);
        }
    });

    MgOptions opt;
    opt.threads = threads;
    opt.tolerance = tolerance;
    PoissonMultigrid mg(bw - 2, bh - 2, opt);
    MgLevel& L = mg.finest();  // padded indices coincide with box coordinates
    parallel_rows(1, bh - 1, threads, boxwork, [&](int b, int e) {
        for (int y = b; y < e; ++y) {
            Px* f = L.f.data() + L.at(0, y);
            for (int x = 1; x + 1 < bw; ++x) {
                const std::size_t k = bidx(x, y);
                const Px ep = E[k];
                Px acc = Px::Zero();
                if (me[k]) acc += (ep - E[k + 1]) + (ep - E[k + bw]);
                if (me[k - 1]) acc += ep - E[k - 1];
                if (me[k - bw]) acc += ep - E[k - bw];
                f[x] = acc;
            }
        }
    });
    mg.solve();
    st.cycles = mg.cycles_run();
    st.last_change = mg.last_change();

    // Write masked interior pixels: target + correction, rounded to nearest, clamped.
    parallel_rows(1, bh - 1, threads, boxwork, [&](int b, int e) {
        for (int y = b; y < e; ++y) {
            const std::uint8_t* mr = mask + iidx(x0, y0 + y);
            const Px* u = L.u.data() + L.at(0, y);
            std::uint8_t* o = out + iidx(x0, y0 + y) * 3;
            const std::uint8_t* t = target + iidx(x0, y0 + y) * 3;
            for (int x = 1; x + 1 < bw; ++x) {
                if (!mr[x]) continue;
                for (int c = 0; c < 3; ++c) {
                    float v = float(t[3 * x + c]) + u[x](c);
                    v = std::floor(std::min(std::max(v, 0.0f), 255.0f) + 0.5f);
                    o[3 * x + c] = static_cast<std::uint8_t>(std::min(v, 255.0f));
                }
            }
        }
    });
    return st;
}

}  // namespace affcore::blend
