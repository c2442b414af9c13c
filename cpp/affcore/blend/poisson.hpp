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
// poisson_blend_edge() solves the same equation for a source that already meets the target
// along the mask's edge (the synthesis pipeline's composites) with one multigrid cycle
// that works at full resolution near that edge only.
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
#include <cstdlib>
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
    const char* solver = "cg";  // "cg", or "edge" for poisson_blend_edge's one cycle
};

// Half-width of the square erosion applied to the mask before mixing gradients
// (OpenCV erodes three times with a 3x3 kernel: a 7x7 square).
inline constexpr int kErodeRadius = 3;

// Default CG stopping tolerance on |r| / |f| per channel; 1e-3 keeps the correction within
// a few hundredths of a grey level of the converged solution on face photos.
inline constexpr float kDefaultTolerance = 1e-3f;

namespace detail {

// The images of a blend: source, target, out and mask as for poisson_blend().
struct BlendImages {
    const std::uint8_t* source;
    const std::uint8_t* target;
    const std::uint8_t* mask;
    int H, W;
    std::uint8_t* out;
    std::size_t target_stride, out_stride;  // bytes between rows (never 0 here)
    const std::uint8_t* trow(int y) const { return target + static_cast<std::size_t>(y) * target_stride; }
    std::uint8_t* orow(int y) const { return out + static_cast<std::size_t>(y) * out_stride; }
    const std::uint8_t* srow(int y) const { return source + static_cast<std::size_t>(y) * 3 * static_cast<std::size_t>(W); }
    const std::uint8_t* mrow(int y) const { return mask + static_cast<std::size_t>(y) * static_cast<std::size_t>(W); }
};

// The images with their row strides (0: packed, 3 W).
inline BlendImages blend_images(const std::uint8_t* source, const std::uint8_t* target, const std::uint8_t* mask,
                                int H, int W, std::uint8_t* out, std::size_t target_stride, std::size_t out_stride) {
    const std::size_t packed = 3 * static_cast<std::size_t>(W);
    return BlendImages{source, target, mask, H, W, out, target_stride ? target_stride : packed,
                       out_stride ? out_stride : packed};
}

// Threads for a blend of an H x W image (threads <= 0: all hardware threads). Threads only
// pay off on large images; the pool is made up front (its workers start while the first
// pass runs): copying the target and finding the mask's bounding box are row-parallel
// passes over the whole image.
inline int blend_threads(int H, int W, int threads) {
    return static_cast<long>(H) * static_cast<long>(W) >= kMinPoolWork ? resolve_threads(threads) : 1;
}

// Flags the tiles (MaskedPoissonPcg::kTile columns) of one box row of width bw where the
// mask (nonzero = in) and the eroded mask (0/1) differ: where the residual of the guess
// "source on the eroded mask" may be nonzero (see MaskedPoissonPcg::guess_support()).
inline void mark_support_row(const std::uint8_t* mask_row, const std::uint8_t* eroded_row, int bw, std::uint8_t* sup) {
    for (int t = 0; t * MaskedPoissonPcg::kTile < bw; ++t) {
        const int xe = std::min(bw, (t + 1) * MaskedPoissonPcg::kTile);
        std::uint8_t differ = 0;
        for (int x = t * MaskedPoissonPcg::kTile; x < xe; ++x)
            differ |= static_cast<std::uint8_t>(mask_row[x] != 0) ^ eroded_row[x];
        sup[t] = differ;
    }
}

// Where a blend works: the mask's bounding box grown by one pixel, clipped (its outer ring
// is never an unknown: it is either unmasked or the image's outermost row/column), and
// the eroded mask over it (0/1, bw x bh).
struct BlendBox {
    int x0 = 0, y0 = 0, bw = 0, bh = 0;
    std::vector<std::uint8_t> me;
};

// The part both solves share: out = target, the box (also into st) and the eroded mask.
// False when there is nothing to solve (empty mask, or no pixel inside the box's frame).
inline bool blend_box(const BlendImages& im, RowPool& pool, BlendStats& st, BlendBox& box) {
    const int H = im.H, W = im.W;
    const std::uint8_t* mask = im.mask;
    const std::uint8_t* target = im.target;
    std::uint8_t* out = im.out;
    const std::size_t npix = static_cast<std::size_t>(H) * static_cast<std::size_t>(W);
    auto bidx = [](int bw_, int x, int y) { return static_cast<std::size_t>(y) * bw_ + x; };
    auto iidx = [W](int x, int y) { return static_cast<std::size_t>(y) * W + x; };
    auto trow = [&](int y) { return im.trow(y); };
    auto orow = [&](int y) { return im.orow(y); };

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
    if (mx1 < 0) return false;  // empty mask: the target unchanged

    // Box = bounding box + 1, clipped. Its outer ring is never an unknown: it is either
    // unmasked or the image's outermost row/column.
    const int x0 = box.x0 = std::max(mx0 - 1, 0), y0 = box.y0 = std::max(my0 - 1, 0);
    const int x1 = std::min(mx1 + 1, W - 1), y1 = std::min(my1 + 1, H - 1);
    const int bw = box.bw = x1 - x0 + 1, bh = box.bh = y1 - y0 + 1;
    st.box_x0 = x0; st.box_y0 = y0; st.box_w = bw; st.box_h = bh;
    if (bw < 3 || bh < 3) return false;  // no interior: every masked pixel is on the frame

    const long boxwork = static_cast<long>(bw) * bh;

    // Eroded mask on the box (outside the box there is no mask, by construction of the
    // box and because the outside of the image counts as unmasked). Separable: a pixel
    // survives iff the 7-run around it is fully masked horizontally, then vertically.
    // Eight 0/1 bytes per 64-bit word (g++ leaves the byte loops scalar).
    std::vector<std::uint8_t> hrun(static_cast<std::size_t>(bw) * bh, 0);
    std::vector<std::uint8_t>& me = box.me;
    me.assign(hrun.size(), 0);
    const int R = kErodeRadius;
    auto load8 = [](const std::uint8_t* p) {
        std::uint64_t v;
        std::memcpy(&v, p, 8);
        return v;
    };
    auto store8 = [](std::uint8_t* p, std::uint64_t v) { std::memcpy(p, &v, 8); };
    pool.rows(0, bh, boxwork, [&](int b, int e) {
        std::vector<std::uint8_t> m01v(static_cast<std::size_t>(bw));
        std::uint8_t* m01 = m01v.data();
        for (int y = b; y < e; ++y) {
            const std::uint8_t* mr = mask + iidx(x0, y0 + y);
            int x = 0;
            for (; x + 8 <= bw; x += 8) {  // 1 in each byte that is nonzero
                const std::uint64_t v = load8(mr + x), low7 = 0x7f7f7f7f7f7f7f7fULL;
                store8(m01 + x, ((((v & low7) + low7) | v) >> 7) & 0x0101010101010101ULL);
            }
            for (; x < bw; ++x) m01[x] = mr[x] != 0;
            std::uint8_t* hr = hrun.data() + bidx(bw, 0, y);
            for (x = R; x + R + 8 <= bw; x += 8) {
                std::uint64_t v = load8(m01 + x - R);
                for (int k = -R + 1; k <= R; ++k) v &= load8(m01 + x + k);
                store8(hr + x, v);
            }
            for (; x + R < bw; ++x) {
                std::uint8_t v = m01[x - R];
                for (int k = -R + 1; k <= R; ++k) v &= m01[x + k];
                hr[x] = v;
            }
        }
    });
    pool.rows(R, std::max(R, bh - R), boxwork, [&](int b, int e) {
        for (int y = b; y < e; ++y) {
            std::uint8_t* mo = me.data() + bidx(bw, 0, y);
            const std::uint8_t* h0 = hrun.data() + bidx(bw, 0, y - R);
            int x = 0;
            for (; x + 8 <= bw; x += 8) {
                std::uint64_t v = load8(h0 + x);
                for (int k = 1; k <= 2 * R; ++k) v &= load8(h0 + x + static_cast<std::size_t>(k) * bw);
                store8(mo + x, v);
            }
            for (; x < bw; ++x) {
                std::uint8_t v = h0[x];
                for (int k = 1; k <= 2 * R; ++k) v &= h0[x + static_cast<std::size_t>(k) * bw];
                mo[x] = v;
            }
        }
    });
    return true;
}

}  // namespace detail

// source, target, out: H x W x 3 uint8, row-major interleaved; mask: H x W, nonzero = in.
// target and out may have rows `target_stride` / `out_stride` bytes apart (0: 3 W, packed),
// e.g. a box of a larger image. out may be target itself (same pointer and stride: in
// place) but may not otherwise overlap the inputs. threads <= 0 means all hardware threads.
inline BlendStats poisson_blend(const std::uint8_t* source, const std::uint8_t* target,
                                const std::uint8_t* mask, int H, int W, std::uint8_t* out,
                                int threads = 0, float tolerance = kDefaultTolerance, std::size_t target_stride = 0,
                                std::size_t out_stride = 0) {
    BlendStats st;
    if (H <= 0 || W <= 0) return st;
    RowPool pool(detail::blend_threads(H, W, threads));
    const detail::BlendImages im = detail::blend_images(source, target, mask, H, W, out, target_stride, out_stride);
    auto bidx = [](int bw_, int x, int y) { return static_cast<std::size_t>(y) * bw_ + x; };
    auto iidx = [W](int x, int y) { return static_cast<std::size_t>(y) * W + x; };
    auto trow = [&](int y) { return im.trow(y); };
    auto orow = [&](int y) { return im.orow(y); };

    detail::BlendBox box;
    if (!detail::blend_box(im, pool, st, box)) return st;
    const int x0 = box.x0, y0 = box.y0, bw = box.bw, bh = box.bh;
    const long boxwork = static_cast<long>(bw) * bh;
    const std::vector<std::uint8_t>& me = box.me;

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
            detail::mark_support_row(mr, er, bw, support.data() + static_cast<std::size_t>(y) * static_cast<std::size_t>(tiles));
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

// The most poisson_blend_edge takes the source to differ from the target along the mask's
// edge (mean |S - T| over the pixels between the mask and its erosion, grey levels) for
// one cycle to do; beyond it, it solves as poisson_blend() does. What one cycle leaves
// grows with this difference: about a tenth of it (mean) on synthetic tests. The synthesis
// pipeline's composites differ there by 0.57 (median), 2.3 at most (280 targets, London
// and wild photos).
inline constexpr float kEdgeMismatch = 3.0f;

namespace detail {

#if AFFCORE_BLEND_AVX512
// Byte mask of the RGB bytes of the pixels in a 16-pixel mask.
inline __mmask64 rgb_bytes(__mmask16 px) { return _pdep_u64(px, 0x0000249249249249ull) * 7u; }

// Pixels x .. x + 15 of (er ? s : t), as 48 RGB bytes; px: the pixels to load.
inline __m512i selected_rgb(const std::uint8_t* er, const std::uint8_t* s, const std::uint8_t* t, int x,
                            __mmask16 px) {
    const __mmask64 bytes = rgb_bytes(px);
    const __mmask16 from_source =
        _mm_mask_cmpneq_epi8_mask(px, _mm_maskz_loadu_epi8(px, er + x), _mm_setzero_si128());
    return _mm512_mask_blend_epi8(rgb_bytes(from_source), _mm512_maskz_loadu_epi8(bytes, t + 3 * x),
                                  _mm512_maskz_loadu_epi8(bytes, s + 3 * x));
}
#endif

// A correction below this in magnitude leaves write_corrected()'s result at the integer it
// corrects: an integer plus less than half, rounded to nearest (kept clear of 0.5 itself,
// which the float additions could round onto).
inline constexpr float kRoundsAway = 0.49f;

// The edge blend's result over pixels [lo, hi] of a box row where its correction is below
// kRoundsAway: er ? s : t (what write_corrected() rounds to there).
inline void write_selected(const std::uint8_t* er, const std::uint8_t* s, const std::uint8_t* t, int lo, int hi,
                           std::uint8_t* o) {
    int x = lo;
#if AFFCORE_BLEND_AVX512
    for (; x <= hi; x += 16) {
        const int n = std::min(16, hi - x + 1);
        const __mmask16 px = n == 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1u);
        _mm512_mask_storeu_epi8(o + 3 * x, rgb_bytes(px), selected_rgb(er, s, t, x, px));
    }
#endif
    for (; x <= hi; ++x) {
        const std::uint8_t* base = er[x] ? s : t;
        for (int c = 0; c < 3; ++c) o[3 * x + c] = base[3 * x + c];
    }
}

// The edge blend's result over pixels [lo, hi] of a box row: (er ? s : t) + u, rounded to
// nearest and clamped to [0, 255]. s, t, o: RGB bytes; u: four floats per pixel (RGB and
// an unused lane); er: 0/1 per pixel.
inline void write_corrected(const std::uint8_t* er, const std::uint8_t* s, const std::uint8_t* t, const float* u,
                            int lo, int hi, std::uint8_t* o) {
    int x = lo;
#if AFFCORE_BLEND_AVX512
    // Sixteen pixels at a time, the same float operations per channel as the loop below
    // (one add, the clamps, + 0.5, truncation), so the same bytes.
    alignas(64) static constexpr std::uint8_t spread[64] = {  // RGB RGB ... -> RGB0 RGB0 ...
        0,  1,  2,  0, 3,  4,  5,  0, 6,  7,  8,  0, 9,  10, 11, 0, 12, 13, 14, 0, 15, 16, 17, 0,
        18, 19, 20, 0, 21, 22, 23, 0, 24, 25, 26, 0, 27, 28, 29, 0, 30, 31, 32, 0, 33, 34, 35, 0,
        36, 37, 38, 0, 39, 40, 41, 0, 42, 43, 44, 0, 45, 46, 47, 0};
    alignas(64) static constexpr std::uint8_t gather[64] = {  // RGB0 RGB0 ... -> RGB RGB ...
        0,  1,  2,  4,  5,  6,  8,  9,  10, 12, 13, 14, 16, 17, 18, 20, 21, 22, 24, 25, 26, 28,
        29, 30, 32, 33, 34, 36, 37, 38, 40, 41, 42, 44, 45, 46, 48, 49, 50, 52, 53, 54, 56, 57,
        58, 60, 61, 62, 0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0};
    const __m512i to_rgb0 = _mm512_load_si512(spread), to_rgb = _mm512_load_si512(gather);
    const __m512 zero = _mm512_setzero_ps(), top = _mm512_set1_ps(255.0f), half = _mm512_set1_ps(0.5f);
    for (; x <= hi; x += 16) {
        const int n = std::min(16, hi - x + 1);
        const __mmask16 px = n == 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1u);
        const __mmask64 bytes = rgb_bytes(px);
        const __m512i rgb = selected_rgb(er, s, t, x, px);
        const __m512i rgb0 = _mm512_maskz_permutexvar_epi8(0x7777777777777777ull, to_rgb0, rgb);
        // pixels 4q .. 4q + 3 (q an immediate operand of the lane extract and insert)
        auto quad = [&](__m128i rgb0_q, int q) {
            const __m512 base = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(rgb0_q));
            const auto lanes = static_cast<__mmask16>(_pdep_u64(px >> (4 * q), 0x1111ull) * 15u);
            // (no pointer past the row for quads beyond its end)
            const __m512 corr = lanes ? _mm512_maskz_loadu_ps(lanes, u + 4 * (x + 4 * q)) : _mm512_setzero_ps();
            const __m512 v = _mm512_add_ps(_mm512_min_ps(_mm512_max_ps(_mm512_add_ps(base, corr), zero), top), half);
            return _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(v));
        };
        __m512i packed = _mm512_castsi128_si512(quad(_mm512_castsi512_si128(rgb0), 0));
        packed = _mm512_inserti32x4(packed, quad(_mm512_extracti32x4_epi32(rgb0, 1), 1), 1);
        packed = _mm512_inserti32x4(packed, quad(_mm512_extracti32x4_epi32(rgb0, 2), 2), 2);
        packed = _mm512_inserti32x4(packed, quad(_mm512_extracti32x4_epi32(rgb0, 3), 3), 3);
        _mm512_mask_storeu_epi8(o + 3 * x, bytes, _mm512_permutexvar_epi8(to_rgb, packed));
    }
#endif
    for (; x <= hi; ++x) {
        const std::uint8_t* base = er[x] ? s : t;
        for (int c = 0; c < 3; ++c) {
            const float v = std::min(std::max(float(base[3 * x + c]) + u[4 * x + c], 0.0f), 255.0f) + 0.5f;
            o[3 * x + c] = static_cast<std::uint8_t>(static_cast<int>(v));
        }
    }
}

}  // namespace detail

// poisson_blend() for a source that already meets the target along the mask's edge (a
// composite built to match the photo there, as the synthesis pipeline's): the same
// equation, solved from the same guess (the source inside the eroded mask), whose
// residual then lies in a band along the erosion's edge only, by one multigrid cycle that
// works at full resolution near that band alone (MaskedPoissonPcg::solve_local). The
// solve is not iterated to a tolerance: on the synthesis pipeline's composites it lands
// within 0.11 grey levels (mean over the mask, the largest over 280 targets; 0.0065
// median) of the converged solve, as close as poisson_blend() at a relative residual of
// 3e-3. A source that differs from the target along the edge by more than kEdgeMismatch
// is blended by poisson_blend() with `tolerance` instead (stats.solver says which); the
// arguments are poisson_blend()'s.
inline BlendStats poisson_blend_edge(const std::uint8_t* source, const std::uint8_t* target,
                                     const std::uint8_t* mask, int H, int W, std::uint8_t* out, int threads = 0,
                                     float tolerance = kDefaultTolerance, std::size_t target_stride = 0,
                                     std::size_t out_stride = 0) {
    BlendStats st;
    if (H <= 0 || W <= 0) return st;
    RowPool pool(detail::blend_threads(H, W, threads));
    const detail::BlendImages im = detail::blend_images(source, target, mask, H, W, out, target_stride, out_stride);
    detail::BlendBox box;
    if (!detail::blend_box(im, pool, st, box)) return st;
    const int x0 = box.x0, y0 = box.y0, bw = box.bw, bh = box.bh;
    const long boxwork = static_cast<long>(bw) * bh;
    const std::uint8_t* me = box.me.data();
    auto mrow = [&](int y) { return im.mrow(y0 + y) + x0; };                      // box row y
    auto srow = [&](int y) { return im.srow(y0 + y) + 3 * static_cast<std::size_t>(x0); };
    auto trow = [&](int y) { return im.trow(y0 + y) + 3 * static_cast<std::size_t>(x0); };
    auto erow = [&](int y) { return me + static_cast<std::size_t>(y) * static_cast<std::size_t>(bw); };

    MaskedPoissonPcg solver(bw - 2, bh - 2, pool);
    MgGrid& G = solver.fine();
    const int tiles = MaskedPoissonPcg::tiles(G);
    std::vector<std::uint8_t>& support = solver.guess_support();
    // The unknowns (w: the masked pixels off the box's frame), where the guess's residual
    // may be nonzero (tiles where mask and eroded mask differ, see poisson_blend), and how
    // far the source is from the target between the two (per row: sum |S - T|, pixels).
    std::vector<long> band_diff(static_cast<std::size_t>(bh), 0), band_px(static_cast<std::size_t>(bh), 0);
    pool.rows(1, bh - 1, boxwork, [&](int b, int e) {
        for (int y = b; y < e; ++y) {
            const std::uint8_t* mr = mrow(y);
            const std::uint8_t* er = erow(y);
            const std::uint8_t* sr = srow(y);
            const std::uint8_t* tr = trow(y);
            float* w = G.w.data() + G.at(0, y);
            for (int x = 1; x + 1 < bw; ++x) w[x] = mr[x] != 0 ? 1.0f : 0.0f;
            std::uint8_t* sup = support.data() + static_cast<std::size_t>(y) * static_cast<std::size_t>(tiles);
            detail::mark_support_row(mr, er, bw, sup);
            long diff = 0, px = 0;
            for (int t = 0; t * MaskedPoissonPcg::kTile < bw; ++t) {
                if (!sup[t]) continue;
                const int xe = std::min(bw, (t + 1) * MaskedPoissonPcg::kTile);
                for (int x = std::max(t * MaskedPoissonPcg::kTile, 1); x < std::min(xe, bw - 1); ++x) {
                    if (!mr[x] || er[x]) continue;
                    px += 1;
                    for (int c = 0; c < 3; ++c) diff += std::abs(int(sr[3 * x + c]) - int(tr[3 * x + c]));
                }
            }
            band_diff[static_cast<std::size_t>(y)] = diff;
            band_px[static_cast<std::size_t>(y)] = px;
        }
    });
    long diff = 0, px = 0;
    for (int y = 0; y < bh; ++y) {
        diff += band_diff[static_cast<std::size_t>(y)];
        px += band_px[static_cast<std::size_t>(y)];
    }
    if (px > 0 && static_cast<double>(diff) > 3.0 * static_cast<double>(kEdgeMismatch) * static_cast<double>(px))
        return poisson_blend(source, target, mask, H, W, out, threads, tolerance, target_stride, out_stride);
    G.b = take_px_stale(G.size());  // written where the solve reads it (below)
    solver.prepare(true);
    st.unknowns = G.unknowns;
    const std::uint8_t* local = solver.local_tiles();

    // The guess's residual r = b - A x0 over the local tiles, with x0 = me E (E = S - T)
    // and b the divergence of the mixed guidance field (as poisson_blend's set-up pass):
    //   r(p) = sum_q me(min(p, q)) (E(p) - E(q)) - (4 x0(p) - sum_q x0(q))   at unknowns p.
    auto E = [&](int x, int y) {
        const std::uint8_t* s = srow(y) + 3 * static_cast<std::size_t>(x);
        const std::uint8_t* t = trow(y) + 3 * static_cast<std::size_t>(x);
        return Px(float(int(s[0]) - int(t[0])), float(int(s[1]) - int(t[1])), float(int(s[2]) - int(t[2])), 0.0f);
    };
    // It is zero (exactly: E holds small integers) unless the eroded mask changes within
    // the pixel's 4-neighbourhood: with all five pixels in it, both sums are the same
    // integer; with none, both are zero. The solve reads it over the local tiles.
    pool.rows(1, bh - 1, boxwork, [&](int b, int e) {
        for (int y = b; y < e; ++y) {
            const std::uint8_t* er = erow(y);
            const std::uint8_t* eu = erow(y - 1);
            const std::uint8_t* ed = erow(y + 1);
            const float* w = G.w.data() + G.at(0, y);
            Px* f = G.b.data() + G.at(0, y);
            MaskedPoissonPcg::tile_runs(G, local, y, [&](int a, int z) {
                for (int x = a; x <= z; ++x) {
                    const int in = er[x - 1] + er[x] + er[x + 1] + eu[x] + ed[x];
                    if (w[x] == 0.0f || in == 0 || in == 5) {
                        f[x] = Px::Zero();
                        continue;
                    }
                    const Px ep = E(x, y), el = E(x - 1, y), ex = E(x + 1, y), eup = E(x, y - 1), edn = E(x, y + 1);
                    const Px div = float(er[x]) * ((ep - ex) + (ep - edn)) + float(er[x - 1]) * (ep - el) +
                                   float(eu[x]) * (ep - eup);
                    const Px ax = 4.0f * float(er[x]) * ep - float(er[x - 1]) * el - float(er[x + 1]) * ex -
                                  float(eu[x]) * eup - float(ed[x]) * edn;
                    f[x] = div - ax;
                }
            });
        }
    });
    solver.solve_local();
    st.iterations = 1;
    st.solver = "edge";

    // The result: target + x0 + correction = (eroded mask ? source : target) + correction,
    // rounded to nearest and clamped, over each row's range of unknowns (elsewhere in the
    // range the correction is 0 and the eroded mask too: the target's own value).
    pool.rows(1, bh - 1, boxwork, [&](int b, int e) {
        PxVec corr(static_cast<std::size_t>(G.sw));
        for (int y = b; y < e; ++y) {
            const int lo = std::max(G.lo[static_cast<std::size_t>(y)], 1);
            const int hi = std::min(G.hi[static_cast<std::size_t>(y)], bw - 2);
            if (lo > hi) continue;
            const float* u = corr.data()->data();
            const std::uint8_t* er = erow(y);
            const std::uint8_t* s = srow(y);
            const std::uint8_t* t = trow(y);
            std::uint8_t* o = im.orow(y0 + y) + 3 * static_cast<std::size_t>(x0);
            // where the correction is below kRoundsAway, it rounds away: the same bytes unread
            solver.correction_spans(y, lo, hi, detail::kRoundsAway, [&](int a, int z, bool quiet) {
                if (quiet) {
                    detail::write_selected(er, s, t, a, z, o);
                } else {
                    solver.correction(y, a, z, corr.data());
                    detail::write_corrected(er, s, t, u, a, z, o);
                }
            });
        }
    });
    return st;
}

}  // namespace affcore::blend
