// Fused per-pixel passes of expression synthesis (python/affcore/synthesis.py): the fast
// path of Synthesizer.render. They do, in one sweep over the target's bounding box, what
// the reference implementation does with rasterize/interpolate/sample_bilinear and a dozen
// numpy passes, with the same conventions and the same maths:
//
//  transfer_face     for each pixel covered by the deformed face: the surface point's
//                    position and depth in the photo (interpolated per-vertex source
//                    screen positions), a visibility test against the photo's depth buffer,
//                    the photo's colour there (bilinear), or, for surface the photo never
//                    showed (mouth interior, eyeball), a shaded material colour; also the
//                    displacement field (photo position - pixel) that the surroundings
//                    follow.
//  transfer_surround for every other pixel of the box: the smooth extension of that
//                    displacement (given at reduced resolution, upsampled bilinearly here
//                    as cv2.resize INTER_LINEAR does), the blend region before dilation
//                    (covered | fitted face | moved) and, in it, the photo sampled there.
//  transfer_ring     the same samples at the pixels that dilating the region added (the
//                    composite is needed inside the region only).
//  deform_project    screen = project(base + sum_k w_k basis_k), skipping zero weights.
//
// Every output element is written by exactly one worker and depends on no other output,
// so results are bit-identical for any thread count.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <mutex>
#include <vector>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
// transfer_face's and transfer_surround's pixel loops have AVX-512 versions where the
// compiler targets it (-march=native on such a CPU); both give the same bytes.
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512DQ__) && defined(__AVX512VL__) && \
    defined(__AVX512VBMI__) && defined(__BMI2__) && defined(__FMA__)
#include <immintrin.h>
#define AFFCORE_TRANSFER_AVX512 1
#else
#define AFFCORE_TRANSFER_AVX512 0
#endif

#include "affcore/render/parallel.hpp"

namespace affcore::synthesis {

// Parts of the face mesh (synthesis.py: SKIN, SOCKET, GUMS, TEETH, SCLERA, IRIS, EYE_SOCKET).
enum Part : std::int8_t { kSkin = 0, kSocket = 1, kGums = 2, kTeeth = 3, kSclera = 4, kIris = 5, kEyeSocket = 6 };
constexpr int kNumParts = 7;

struct Photo {
    const std::uint8_t* rgb = nullptr;  // height x width x 3
    int height = 0, width = 0;
};

// a + f (b - a), and the barycentric combination b0 v0 + b1 v1 + b2 v2, with their fused
// multiply-adds spelled out: the scalar and the vector (AVX-512) pixel loops below must
// round alike, and the compiler's own contraction of a*b+c is not promised to be the same
// in both.
inline float lerp(float a, float b, float f) { return std::fma(f, b - a, a); }
inline float combine(float b0, float b1, float b2, float v0, float v1, float v2) {
    return std::fma(b2, v2, std::fma(b1, v1, b0 * v0));
}
#if defined(__SSE2__)
inline __m128 lerp(__m128 a, __m128 b, __m128 f) {
#if defined(__FMA__)
    return _mm_fmadd_ps(f, _mm_sub_ps(b, a), a);
#else
    float fa[4], fb[4], ff[4];
    _mm_storeu_ps(fa, a), _mm_storeu_ps(fb, b), _mm_storeu_ps(ff, f);
    for (int k = 0; k < 4; ++k) fa[k] = lerp(fa[k], fb[k], ff[k]);
    return _mm_loadu_ps(fa);
#endif
}
#endif

// Bilinear lookup with edge clamping, as render::sample_bilinear (uint8, 3 channels), with
// its three lerps fused (lerp above): results may differ from it in the last bit.
inline void sample_rgb(const Photo& im, float x, float y, float out[3]) {
    if (std::isnan(x) || std::isnan(y)) {
        out[0] = out[1] = out[2] = 0.0f;
        return;
    }
    const float xmax = static_cast<float>(im.width - 1), ymax = static_cast<float>(im.height - 1);
    x = std::min(std::max(x, 0.0f), xmax);
    y = std::min(std::max(y, 0.0f), ymax);
    const int x0 = static_cast<int>(x), y0 = static_cast<int>(y);
    const int x1 = std::min(x0 + 1, im.width - 1), y1 = std::min(y0 + 1, im.height - 1);
    const float fx = x - static_cast<float>(x0), fy = y - static_cast<float>(y0);
    const std::size_t stride = static_cast<std::size_t>(im.width) * 3;
    const std::uint8_t* r0 = im.rgb + static_cast<std::size_t>(y0) * stride;
    const std::uint8_t* r1 = im.rgb + static_cast<std::size_t>(y1) * stride;
    const std::size_t c0 = static_cast<std::size_t>(x0) * 3, c1 = static_cast<std::size_t>(x1) * 3;
#if defined(__SSE2__)
    // The same arithmetic on the three channels at once (a fourth, unused lane holds the
    // next byte): four 4-byte loads and widenings instead of twelve byte conversions.
    // Only where that byte exists, i.e. short of the image's last column.
    if (x1 + 1 < im.width) {
        const __m128i zero = _mm_setzero_si128();
        auto load = [&](const std::uint8_t* p) {
            std::int32_t v;
            std::memcpy(&v, p, 4);
            return _mm_cvtepi32_ps(_mm_unpacklo_epi16(_mm_unpacklo_epi8(_mm_cvtsi32_si128(v), zero), zero));
        };
        const __m128 a = load(r0 + c0), b = load(r0 + c1), c = load(r1 + c0), d = load(r1 + c1);
        const __m128 wx = _mm_set1_ps(fx), wy = _mm_set1_ps(fy);
        const __m128 top = lerp(a, b, wx), bot = lerp(c, d, wx);
        float v[4];
        _mm_storeu_ps(v, lerp(top, bot, wy));
        out[0] = v[0], out[1] = v[1], out[2] = v[2];
        return;
    }
#endif
    for (int c = 0; c < 3; ++c) {
        const float top = lerp(static_cast<float>(r0[c0 + c]), static_cast<float>(r0[c1 + c]), fx);
        const float bot = lerp(static_cast<float>(r1[c0 + c]), static_cast<float>(r1[c1 + c]), fx);
        out[c] = lerp(top, bot, fy);
    }
}

// np.clip(v + 0.5, 0, 255).astype(np.uint8)
inline std::uint8_t to_u8(float v) {
    v = std::min(std::max(v + 0.5f, 0.0f), 255.0f);
    return static_cast<std::uint8_t>(v);
}

struct FaceInputs {
    Photo photo;
    int box_x0 = 0, box_y0 = 0, box_h = 0, box_w = 0;
    // target raster over the box (rasterize() of the target screen minus the box origin)
    const std::int32_t* triangle_id = nullptr;
    const float* barycentrics = nullptr;
    const float* depth = nullptr;
    const std::int32_t* triangles = nullptr;  // T x 3
    std::size_t num_triangles = 0;            // T
    const std::int8_t* part = nullptr;        // T
    std::size_t num_vertices = 0;
    const float* source_screen = nullptr;  // V x 3: photo position (x, y) and depth under the fit
    const float* target_screen = nullptr;  // V x 3: the deformed face on screen (for normals)
    // Triangles (indices into `triangles`) whose vertices need normals: those of parts
    // other than skin. Normals are area-weighted over these triangles only, which equals
    // the normal over all triangles for vertices used by no skin triangle.
    const std::int32_t* normal_triangles = nullptr;
    std::size_t num_normal_triangles = 0;
    // the photo's depth buffer of the fitted face, over its own box
    const float* src_depth = nullptr;
    int src_x0 = 0, src_y0 = 0, src_h = 0, src_w = 0;
    float depth_slack = 0.0f;  // a surface point is visible when depth <= front + slack
    float lip_depth = 0.0f;    // front of the mouth cavity
    float cavity_scale = 1.0f; // light falls off as exp(-(depth - lip) / cavity_scale)
    // The key light's elevation above the view axis (its sine): the mouth's materials turn to
    // it (0: the camera).
    float light_up = 0.0f;
    // Optional: how much of the key light reaches the mouth socket, gums and tongue through
    // the lips' opening, in [0, 1], over a cavity_h x cavity_w window of the box at
    // (cavity_x0, cavity_y0) (0 outside it; affcore.synthesis._cavity_light). They are then
    // lit by it and by cavity_ambient of ambient light instead of the falloff above (which
    // the teeth keep). Null: the falloff.
    const float* cavity_light = nullptr;
    int cavity_x0 = 0, cavity_y0 = 0, cavity_h = 0, cavity_w = 0;
    float cavity_ambient = 0.0f;
    const float* lit = nullptr;  // kNumParts x 3: lit colour of each part's material
    // Optional, V: a factor on the photo's colour at skin pixels, interpolated from the
    // vertices (the expression's change of skin shading: creases, folds; null = none).
    const float* skin_shade = nullptr;
    // Thickness of the photo's upper lid margin (lashes, the lid's shadow) in pixels, moved up
    // with the lid where widened lids uncover eyeball (continue_eyeball).
    int lid_margin = 0;
    // Tallest run of hidden mouth interior, in pixels, that takes the colour of the shown
    // interior next to it instead of the cavity's shading (fill_mouth_slivers; 0: none).
    int mouth_sliver = 0;
    // Optional, V, in [0, 1]: how far the target opens the mouth beyond the fit, at each
    // vertex of the mouth interior (0: not at all, 1: fully; interpolated per pixel). The
    // interior the photo shows between the fitted lips (lip and the dark line where closed
    // lips meet, or teeth) gives way to the materials' shading to that degree
    // (shade_opened_mouth, fill_mouth_slivers). Null: the photo's interior is kept wherever
    // the photo showed it.
    const float* mouth_opened = nullptr;
    // Optional, T: which tooth each triangle belongs to (0: not a tooth; 1, 2, ... the upper
    // teeth, -1, -2, ... the lower ones), and the widest gap between two teeth, in pixels,
    // that the gums fill at the gum line (find_papillae; null or 0: none).
    const std::int8_t* tooth = nullptr;
    int papilla_width = 0;
    // Derived by transfer_face from the above (not set by callers): the papillae found.
    const struct Papillae* papillae = nullptr;
};

// The displacement field and the coverage go to the extension of the field into the
// surroundings, which works at reduced resolution (the field is smooth): they are written
// as means over reduce x reduce blocks of the box (box_h / reduce x box_w / reduce blocks,
// rounded down; the last rows and columns of the box beyond whole blocks are left out),
// which is what cv2.resize(INTER_AREA) gives for a box of whole blocks, without the
// full-resolution buffers.
struct FaceOutputs {
    std::uint8_t* composite = nullptr;  // box_h x box_w x 3: written at covered pixels only
    float* displacement = nullptr;      // blocks x 2: mean of photo position - pixel (0 off the face)
    float* known = nullptr;             // blocks: covered fraction
    int reduce = 1;                     // block side, >= 1
};

// Vertex normals of the deformed face in a camera frame (x right, y up, z to the camera),
// area-weighted, unit length, for the vertices of `normal_triangles` (others stay 0).
inline void part_vertex_normals(const FaceInputs& in, std::vector<float>& normals) {
    std::vector<double> acc(in.num_vertices * 3, 0.0);
    for (std::size_t k = 0; k < in.num_normal_triangles; ++k) {
        const std::int32_t* tri = in.triangles + 3 * static_cast<std::size_t>(in.normal_triangles[k]);
        float v[3][3];
        for (int a = 0; a < 3; ++a) {
            const float* s = in.target_screen + 3 * static_cast<std::size_t>(tri[a]);
            v[a][0] = s[0];
            v[a][1] = -s[1];
            v[a][2] = -s[2];
        }
        const float e1[3] = {v[1][0] - v[0][0], v[1][1] - v[0][1], v[1][2] - v[0][2]};
        const float e2[3] = {v[2][0] - v[0][0], v[2][1] - v[0][1], v[2][2] - v[0][2]};
        const float fn[3] = {e1[1] * e2[2] - e1[2] * e2[1], e1[2] * e2[0] - e1[0] * e2[2], e1[0] * e2[1] - e1[1] * e2[0]};
        for (int a = 0; a < 3; ++a)
            for (int c = 0; c < 3; ++c) acc[3 * static_cast<std::size_t>(tri[a]) + c] += fn[c];
    }
    normals.assign(in.num_vertices * 3, 0.0f);
    for (std::size_t i = 0; i < in.num_vertices; ++i) {
        const double* a = acc.data() + 3 * i;
        const double len = std::max(std::sqrt(a[0] * a[0] + a[1] * a[1] + a[2] * a[2]), 1e-12);
        for (int c = 0; c < 3; ++c) normals[3 * i + c] = static_cast<float>(a[c] / len);
    }
}

// The photo position (sx, sy) and depth sz of the surface point under a covered pixel.
inline void surface_point(const FaceInputs& in, std::int32_t t, float b0, float b1, float b2, float& sx, float& sy,
                          float& sz) {
    const std::int32_t* tri = in.triangles + 3 * static_cast<std::size_t>(t);
    const float* a0 = in.source_screen + 3 * static_cast<std::size_t>(tri[0]);
    const float* a1 = in.source_screen + 3 * static_cast<std::size_t>(tri[1]);
    const float* a2 = in.source_screen + 3 * static_cast<std::size_t>(tri[2]);
    sx = combine(b0, b1, b2, a0[0], a1[0], a2[0]);
    sy = combine(b0, b1, b2, a0[1], a1[1], a2[1]);
    sz = combine(b0, b1, b2, a0[2], a1[2], a2[2]);
}

// Whether the surface point at photo position (sx, sy), depth sz, was visible in the photo:
// nothing of the fitted face lay in front of it (the photo's depth buffer at the nearest
// pixel centre, plus the slack).
inline bool seen_in_photo(const FaceInputs& in, float sx, float sy, float sz) {
    const long ix = std::min<long>(std::max<long>(static_cast<long>(std::nearbyint(sx)) - in.src_x0, 0), in.src_w - 1);
    const long iy = std::min<long>(std::max<long>(static_cast<long>(std::nearbyint(sy)) - in.src_y0, 0), in.src_h - 1);
    const float front = in.src_depth[static_cast<std::size_t>(iy) * static_cast<std::size_t>(in.src_w) + static_cast<std::size_t>(ix)];
    return sz <= front + in.depth_slack;
}

// The box of pixels (columns c0..c1, rows r0..r1, within the face's box) that the target's
// triangles of the parts `is_part` picks span on screen; false when there are none (or none
// with a finite vertex).
template <typename IsPart>
inline bool part_box(const FaceInputs& in, IsPart is_part, int& c0, int& c1, int& r0, int& r1) {
    float x0 = std::numeric_limits<float>::infinity(), y0 = x0, x1 = -x0, y1 = -x0;
    for (std::size_t t = 0; t < in.num_triangles; ++t) {
        if (!is_part(in.part[t])) continue;
        for (int k = 0; k < 3; ++k) {
            const float* v = in.target_screen + 3 * static_cast<std::size_t>(in.triangles[3 * t + k]);
            x0 = std::min(x0, v[0]), x1 = std::max(x1, v[0]), y0 = std::min(y0, v[1]), y1 = std::max(y1, v[1]);
        }
    }
    if (!(x0 <= x1 && y0 <= y1)) return false;
    auto clamp = [](float v, int lo, int hi) {
        return v < float(lo) ? lo : (v > float(hi) ? hi : static_cast<int>(v));
    };
    const int W = in.box_w, H = in.box_h;
    c0 = clamp(std::floor(x0) - float(in.box_x0), 0, W - 1), c1 = clamp(std::ceil(x1) - float(in.box_x0), 0, W - 1);
    r0 = clamp(std::floor(y0) - float(in.box_y0), 0, H - 1), r1 = clamp(std::ceil(y1) - float(in.box_y0), 0, H - 1);
    return true;
}

// Gum papillae. The model's teeth are separate crowns: between two neighbouring teeth, on
// the gum side of where they touch, they leave a triangular gap through which the gums far
// behind show, shaded dark (deep, and in the upper lip's shadow): a row of black notches
// along the gum line of every smile. Real gums fill those gaps, as far forward as the
// teeth. So a run of gums or socket pixels in a row of the raster, bounded left and right
// by two different teeth of the same arch and no wider than papilla_width, that closes
// towards the biting edge (teeth of that arch below it for the upper teeth, above it for
// the lower ones, within twice papilla_width rows, at the run's middle) is drawn as gum
// lit like the teeth beside it (material_colour). Incisal gaps, which open towards the
// biting edge and show the dark mouth behind, are left as they are.
struct Papillae {
    int c0 = 0, r0 = 0, bw = 0, bh = 0;  // the teeth's box within the face's box
    // per pixel of that box: the box index of the tooth pixel left and right of it, or -1
    std::vector<std::int32_t> left, right;

    bool at(const FaceInputs& in, std::size_t i, std::int32_t& l, std::int32_t& r) const {
        const int y = static_cast<int>(i / static_cast<std::size_t>(in.box_w)) - r0;
        const int x = static_cast<int>(i % static_cast<std::size_t>(in.box_w)) - c0;
        if (x < 0 || x >= bw || y < 0 || y >= bh) return false;
        const std::size_t k = static_cast<std::size_t>(y) * static_cast<std::size_t>(bw) + static_cast<std::size_t>(x);
        l = left[k], r = right[k];
        return l >= 0;
    }
};

inline Papillae find_papillae(const FaceInputs& in) {
    Papillae pp;
    if (!in.tooth || in.papilla_width <= 0) return pp;
    const int W = in.box_w, H = in.box_h;
    int c0, c1, r0, r1;  // the teeth's box
    if (!part_box(in, [](std::int8_t p) { return p == kTeeth; }, c0, c1, r0, r1)) return pp;
    pp.c0 = c0, pp.r0 = r0, pp.bw = c1 - c0 + 1, pp.bh = r1 - r0 + 1;
    pp.left.assign(static_cast<std::size_t>(pp.bw) * static_cast<std::size_t>(pp.bh), -1);
    pp.right = pp.left;
    // the tooth at box pixel (x, y) (0: none, or not a tooth), and whether it is gums or socket
    auto tooth_at = [&](int x, int y) -> int {
        const std::int32_t t = in.triangle_id[static_cast<std::size_t>(y) * W + x];
        return t >= 0 && in.part[t] == kTeeth ? in.tooth[t] : 0;
    };
    auto gap_at = [&](int x, int y) {
        const std::int32_t t = in.triangle_id[static_cast<std::size_t>(y) * W + x];
        return t >= 0 && (in.part[t] == kGums || in.part[t] == kSocket);
    };
    for (int y = r0; y <= r1; ++y) {
        for (int x = c0; x <= c1;) {
            if (!gap_at(x, y)) {
                ++x;
                continue;
            }
            const int start = x;
            while (x <= c1 && gap_at(x, y)) ++x;
            const int end = x;  // the run [start, end)
            if (start == 0 || end >= W || end - start > in.papilla_width) continue;
            const int a = tooth_at(start - 1, y), b = tooth_at(end, y);
            if (a == 0 || b == 0 || a == b || (a > 0) != (b > 0)) continue;
            // towards the biting edge: down the screen for the upper teeth
            const int step = a > 0 ? 1 : -1, mid = (start + end - 1) / 2;
            bool closes = false;
            for (int k = 1, yy = y + step; k <= 2 * in.papilla_width && yy >= 0 && yy < H; ++k, yy += step) {
                const int c = tooth_at(mid, yy);
                if (c != 0) {
                    closes = (c > 0) == (a > 0);
                    break;
                }
                if (!gap_at(mid, yy)) break;
            }
            if (!closes) continue;
            for (int k = start; k < end; ++k) {
                const std::size_t j = static_cast<std::size_t>(y - r0) * static_cast<std::size_t>(pp.bw) + static_cast<std::size_t>(k - c0);
                pp.left[j] = static_cast<std::int32_t>(y * W + start - 1);
                pp.right[j] = static_cast<std::int32_t>(y * W + end);
            }
        }
    }
    return pp;
}

// The light on the material of the covered pixel i (triangle t of a part other than skin,
// barycentrics b), a factor on its part's lit colour. `normals()` gives the part vertex
// normals.
template <typename Normals>
inline float material_shade(const FaceInputs& in, std::size_t i, std::int32_t t, float b0, float b1, float b2,
                            Normals&& normals) {
    const std::int32_t* tri = in.triangles + 3 * static_cast<std::size_t>(t);
    const int p = in.part[t];
    const float* nv = normals();
    const float* n0 = nv + 3 * static_cast<std::size_t>(tri[0]);
    const float* n1 = nv + 3 * static_cast<std::size_t>(tri[1]);
    const float* n2 = nv + 3 * static_cast<std::size_t>(tri[2]);
    float n[3];
    for (int c = 0; c < 3; ++c) n[c] = b0 * n0[c] + b1 * n1[c] + b2 * n2[c];
    const float len = std::max(std::sqrt(n[0] * n[0] + n[1] * n[1] + n[2] * n[2]), 1e-6f);
    float shade = 0.8f;  // uncovered eyeball: in the lid's shadow
    if (p == kSocket || p == kGums || p == kTeeth) {
        // the cosine towards the key light (light_up above the view axis)
        const float towards = (n[1] * in.light_up + n[2] * std::sqrt(1.0f - in.light_up * in.light_up)) / len;
        if (in.cavity_light && p != kTeeth) {
            // the key light through the lips' opening, and ambient light
            const int row = static_cast<int>(i / static_cast<std::size_t>(in.box_w)) - in.cavity_y0;
            const int col = static_cast<int>(i % static_cast<std::size_t>(in.box_w)) - in.cavity_x0;
            const bool inside = row >= 0 && row < in.cavity_h && col >= 0 && col < in.cavity_w;
            const float light = inside ? in.cavity_light[static_cast<std::size_t>(row) * in.cavity_w + col] : 0.0f;
            shade = in.cavity_ambient +
                    (1.0f - in.cavity_ambient) * std::min(std::max(towards, 0.0f), 1.0f) * light;
        } else {
            // darker the deeper behind the lips. Teeth turn to the light half-Lambert (enamel
            // is translucent): lit as a plain Lambert surface, the lower teeth's edges
            // showed for a frame as a dark line between the lower lip and the tongue.
            const float facing = p == kTeeth ? 0.5f * (std::min(std::max(towards, -1.0f), 1.0f) + 1.0f)
                                             : std::min(std::max(towards, 0.0f), 1.0f);
            const float cavity = std::exp(-std::max(in.depth[i] - in.lip_depth, 0.0f) / in.cavity_scale);
            shade = (0.3f + 0.7f * facing) * (0.1f + 0.9f * cavity);
        }
    }
    return shade;
}

// The shaded material colour of the covered pixel i (triangle t of a part other than skin,
// barycentrics b): for surface the photo never showed. A gum papilla (find_papillae) takes
// the gums' colour under the light of the teeth beside it, interpolated across the gap.
// `normals()` gives the part vertex normals.
template <typename Normals>
inline void material_colour(const FaceInputs& in, std::size_t i, std::int32_t t, float b0, float b1, float b2,
                            Normals&& normals, float colour[3]) {
    int p = in.part[t];
    std::int32_t l = -1, r = -1;
    float shade;
    if (in.papillae && (p == kGums || p == kSocket) && in.papillae->at(in, i, l, r)) {
        auto teeth_shade = [&](std::size_t j) {
            const float c1 = in.barycentrics[2 * j], c2 = in.barycentrics[2 * j + 1];
            return material_shade(in, j, in.triangle_id[j], 1.0f - c1 - c2, c1, c2, normals);
        };
        const float f = static_cast<float>(static_cast<std::int32_t>(i) - l) / static_cast<float>(r - l);
        shade = (1.0f - f) * teeth_shade(static_cast<std::size_t>(l)) + f * teeth_shade(static_cast<std::size_t>(r));
        p = kGums;
    } else {
        shade = material_shade(in, i, t, b0, b1, b2, normals);
    }
    const float* lit = in.lit + 3 * p;
    for (int c = 0; c < 3; ++c) colour[c] = lit[c] * shade;
}

// Colour of the covered pixel i (triangle t, barycentrics b, the surface point's photo
// position sx, sy and depth sz): the photo's colour there where the photo showed that
// point, else its part's shaded material. `normals()` gives the part vertex normals.
// (Uncovered eyeball is then continued from the eyeball below it: continue_eyeball.)
template <typename Normals>
inline void face_pixel_colour(const FaceInputs& in, std::size_t i, std::int32_t t, float b0, float b1, float b2,
                              float sx, float sy, float sz, Normals&& normals, float colour[3]) {
    const std::int32_t* tri = in.triangles + 3 * static_cast<std::size_t>(t);
    const int p = in.part[t];
    const bool synthetic = p != kSkin && !seen_in_photo(in, sx, sy, sz);
    if (!synthetic) {
        sample_rgb(in.photo, sx, sy, colour);
        if (p == kSkin && in.skin_shade) {
            const float k = combine(b0, b1, b2, in.skin_shade[tri[0]], in.skin_shade[tri[1]], in.skin_shade[tri[2]]);
            for (int c = 0; c < 3; ++c) colour[c] *= k;
        }
        return;
    }
    material_colour(in, i, t, b0, b1, b2, normals, colour);
}
#if AFFCORE_TRANSFER_AVX512
// sample_rgb for sixteen lanes: the photo's bilinear colour at (x, y) in the lanes of
// `lanes` whose position is finite and whose taps are not in the photo's last column (so a
// fourth byte follows each tap's three), times `scale`, rounded as to_u8; returned as
// R | G << 8 | B << 16 per lane, with the lanes it did in `done`. The same float operations
// as sample_rgb's SSE path and to_u8, so the same bytes.
inline __m512i sample_rgb_avx512(const Photo& im, __m512 x, __m512 y, __mmask16 lanes, const __m512* scale,
                                 __mmask16& done) {
    // byte offsets into the photo are 32-bit lanes
    if (static_cast<std::size_t>(im.width) * 3 * static_cast<std::size_t>(im.height) >= (std::size_t{1} << 31)) {
        done = 0;
        return _mm512_setzero_si512();
    }
    const __m512 zero = _mm512_setzero_ps();
    const __m512i last_x = _mm512_set1_epi32(im.width - 1), last_y = _mm512_set1_epi32(im.height - 1);
    const __m512i one = _mm512_set1_epi32(1), three = _mm512_set1_epi32(3);
    const __mmask16 finite = _mm512_cmp_ps_mask(x, y, _CMP_ORD_Q);
    x = _mm512_min_ps(_mm512_max_ps(x, zero), _mm512_set1_ps(static_cast<float>(im.width - 1)));
    y = _mm512_min_ps(_mm512_max_ps(y, zero), _mm512_set1_ps(static_cast<float>(im.height - 1)));
    const __m512i x0 = _mm512_cvttps_epi32(x), y0 = _mm512_cvttps_epi32(y);
    const __m512i x1 = _mm512_min_epi32(_mm512_add_epi32(x0, one), last_x);
    const __m512i y1 = _mm512_min_epi32(_mm512_add_epi32(y0, one), last_y);
    done = lanes & finite & _mm512_cmplt_epi32_mask(x1, last_x);
    if (!done) return _mm512_setzero_si512();
    const __m512 fx = _mm512_sub_ps(x, _mm512_cvtepi32_ps(x0)), fy = _mm512_sub_ps(y, _mm512_cvtepi32_ps(y0));
    const __m512i stride = _mm512_set1_epi32(3 * im.width);
    const __m512i r0 = _mm512_mullo_epi32(y0, stride), r1 = _mm512_mullo_epi32(y1, stride);
    const __m512i c0 = _mm512_mullo_epi32(x0, three), c1 = _mm512_mullo_epi32(x1, three);
    const __m512i zi = _mm512_setzero_si512();
    const __m512i g00 = _mm512_mask_i32gather_epi32(zi, done, _mm512_add_epi32(r0, c0), im.rgb, 1);
    const __m512i g01 = _mm512_mask_i32gather_epi32(zi, done, _mm512_add_epi32(r0, c1), im.rgb, 1);
    const __m512i g10 = _mm512_mask_i32gather_epi32(zi, done, _mm512_add_epi32(r1, c0), im.rgb, 1);
    const __m512i g11 = _mm512_mask_i32gather_epi32(zi, done, _mm512_add_epi32(r1, c1), im.rgb, 1);
    const __m512i byte = _mm512_set1_epi32(0xFF);
    const __m512 half = _mm512_set1_ps(0.5f), top_u8 = _mm512_set1_ps(255.0f);
    __m512i packed = _mm512_setzero_si512();
    for (int c = 0; c < 3; ++c) {
        auto channel = [&](__m512i g) {
            return _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_srli_epi32(g, 8 * c), byte));
        };
        const __m512 top = _mm512_fmadd_ps(fx, _mm512_sub_ps(channel(g01), channel(g00)), channel(g00));
        const __m512 bot = _mm512_fmadd_ps(fx, _mm512_sub_ps(channel(g11), channel(g10)), channel(g10));
        __m512 v = _mm512_fmadd_ps(fy, _mm512_sub_ps(bot, top), top);
        if (scale) v = _mm512_mul_ps(v, *scale);
        v = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(v, half), zero), top_u8);
        packed = _mm512_or_si512(packed, _mm512_slli_epi32(_mm512_cvttps_epi32(v), 8 * c));
    }
    return packed;
}

// Stores the RGB bytes of the lanes of `lanes` (packed as sample_rgb_avx512 returns them)
// to o[3 l .. 3 l + 2].
inline void store_rgb_avx512(std::uint8_t* o, __mmask16 lanes, __m512i packed) {
    // byte j of 48 (pixel j / 3, channel j % 3) from byte 4 (j / 3) + j % 3 of the lanes
    alignas(64) static constexpr std::uint8_t pack_rgb[64] = {
        0,  1,  2,  4,  5,  6,  8,  9,  10, 12, 13, 14, 16, 17, 18, 20, 21, 22, 24, 25, 26, 28,
        29, 30, 32, 33, 34, 36, 37, 38, 40, 41, 42, 44, 45, 46, 48, 49, 50, 52, 53, 54, 56, 57,
        58, 60, 61, 62, 0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0};
    const __mmask64 bytes = _pdep_u64(lanes, 0x0000249249249249ull) * 7u;
    _mm512_mask_storeu_epi8(o, bytes, _mm512_permutexvar_epi8(_mm512_load_si512(pack_rgb), packed));
}
#endif

// Sums of the covered pixels' displacements (photo position - pixel) and counts over
// blocks of f columns of one row group, in column order within each row.
struct BlockSums {
    float* acc = nullptr;  // dx, dy, count per block
    int f = 1, bw = 0;     // block side; blocks per row (the last partial block is left out)
    bool whole = false;    // the row group holds f rows (a partial group is left out)
    float fx0 = 0.0f, fy0 = 0.0f, frow = 0.0f;  // box origin; row in the box

    void add(int col, float sx, float sy) const {
        const int block = col / f;
        if (whole && block < bw) {
            float* a = acc + 3 * static_cast<std::size_t>(block);
            a[0] += (sx - fx0) - static_cast<float>(col);
            a[1] += (sy - fy0) - frow;
            a[2] += 1.0f;
        }
    }
};

#if AFFCORE_TRANSFER_AVX512
// transfer_face_row's pixel loop sixteen pixels at a time: vertex indices, source positions
// and the photo's four bilinear taps gathered, the colour computed and stored for the lanes
// whose surface point is skin that lies inside the photo; the other covered lanes (eyes,
// mouth, a NaN position, the photo's last column) take the scalar face_pixel_colour. The
// arithmetic is the scalar loop's, operation by operation (combine, lerp, to_u8), so the
// bytes are the same. Returns the row's width: it handles the whole row.
template <typename Normals>
inline int transfer_face_row_avx512(const FaceInputs& in, const FaceOutputs& out, std::size_t row,
                                    const BlockSums& sums, Normals&& normals) {
    const int W = in.box_w;
    const std::size_t base = row * static_cast<std::size_t>(W);
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    const __m512 one = _mm512_set1_ps(1.0f), zero = _mm512_setzero_ps();
    const __m512 lane_f = _mm512_set_ps(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    const __m512i three = _mm512_set1_epi32(3);
    const int* tris = reinterpret_cast<const int*>(in.triangles);
    alignas(64) float sx_l[16], sy_l[16], sz_l[16], b1_l[16], b2_l[16];
    alignas(64) std::int32_t t_l[16];
    // The photo rows a dozen rows further down are fetched ahead: the gathers below read the
    // photo near each pixel (the surface moves little), and waited on it (0.9x with this).
    const long ahead_row = std::clamp<long>(in.box_y0 + static_cast<long>(row) + 12, 0, in.photo.height - 1);
    const std::uint8_t* ahead = in.photo.rgb + static_cast<std::size_t>(ahead_row) * 3 * in.photo.width;
    for (int col = 0; col < W; col += 16) {
        const __mmask16 tail = W - col >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (W - col)) - 1u);
        const std::size_t i = base + static_cast<std::size_t>(col);
        _mm_prefetch(reinterpret_cast<const char*>(ahead + 3 * std::clamp<long>(in.box_x0 + col, 0, in.photo.width - 1)),
                     _MM_HINT_T0);
        const __m512i t = _mm512_maskz_loadu_epi32(tail, in.triangle_id + i);
        const __mmask16 covered = _mm512_mask_cmpge_epi32_mask(tail, t, _mm512_setzero_si512());
        if (!covered) continue;
        // barycentric pairs of 16 pixels: 32 floats, split into b1 and b2
        const unsigned pair_bits = static_cast<unsigned>(_pdep_u32(tail, 0x55555555u) * 3u);
        const __m512 lo = _mm512_maskz_loadu_ps(static_cast<__mmask16>(pair_bits), in.barycentrics + 2 * i);
        const __m512 hi = (pair_bits >> 16) ? _mm512_maskz_loadu_ps(static_cast<__mmask16>(pair_bits >> 16),
                                                                   in.barycentrics + 2 * i + 16)
                                            : _mm512_setzero_ps();  // (no pointer past the row)
        const __m512 b1 = _mm512_permutex2var_ps(lo, even, hi), b2 = _mm512_permutex2var_ps(lo, odd, hi);
        const __m512 b0 = _mm512_sub_ps(_mm512_sub_ps(one, b1), b2);
        const __m512i t3 = _mm512_mullo_epi32(t, three);
        __m512i vertex[3], v3[3];
        for (int k = 0; k < 3; ++k) {
            vertex[k] = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), covered,
                                                    _mm512_add_epi32(t3, _mm512_set1_epi32(k)), tris, 4);
            v3[k] = _mm512_mullo_epi32(vertex[k], three);
        }
        __m512 pos[3];  // sx, sy, sz
        for (int c = 0; c < 3; ++c) {
            const __m512i cc = _mm512_set1_epi32(c);
            __m512 a[3];
            for (int k = 0; k < 3; ++k)
                a[k] = _mm512_mask_i32gather_ps(zero, covered, _mm512_add_epi32(v3[k], cc), in.source_screen, 4);
            pos[c] = _mm512_fmadd_ps(b2, a[2], _mm512_fmadd_ps(b1, a[1], _mm512_mul_ps(b0, a[0])));
        }
        _mm512_store_ps(sx_l, pos[0]);
        _mm512_store_ps(sy_l, pos[1]);
        _mm512_store_ps(sz_l, pos[2]);
        _mm512_store_ps(b1_l, b1);
        _mm512_store_ps(b2_l, b2);
        _mm512_store_si512(t_l, t);
        // lanes the vector colour covers: skin, finite position, not the photo's last column
        __mmask16 skin = 0;
        for (unsigned m = covered; m; m &= m - 1) {
            const int l = __builtin_ctz(m);
            skin |= static_cast<__mmask16>((in.part[t_l[l]] == kSkin) << l);
        }
        __mmask16 simple = 0;
        __m512 shade = one;
        if (in.skin_shade) {
            __m512 k[3];
            for (int v = 0; v < 3; ++v)
                k[v] = _mm512_mask_i32gather_ps(zero, covered & skin, vertex[v], in.skin_shade, 4);
            shade = _mm512_fmadd_ps(b2, k[2], _mm512_fmadd_ps(b1, k[1], _mm512_mul_ps(b0, k[0])));
        }
        const __m512i rgb =
            sample_rgb_avx512(in.photo, pos[0], pos[1], covered & skin, in.skin_shade ? &shade : nullptr, simple);
        store_rgb_avx512(out.composite + 3 * i, simple, rgb);
        if (sums.whole) {
            // each block's run of lanes summed in a register, in column order; an
            // uncovered lane adds +0, which leaves any sum but -0 unchanged (a sum that
            // starts at +0 is never -0)
            const __m512 dx = _mm512_maskz_sub_ps(covered, _mm512_sub_ps(pos[0], _mm512_set1_ps(sums.fx0)),
                                                  _mm512_add_ps(_mm512_set1_ps(static_cast<float>(col)), lane_f));
            const __m512 dy = _mm512_maskz_sub_ps(covered, _mm512_sub_ps(pos[1], _mm512_set1_ps(sums.fy0)),
                                                  _mm512_set1_ps(sums.frow));
            alignas(64) float dx_l[16], dy_l[16];
            _mm512_store_ps(dx_l, dx);
            _mm512_store_ps(dy_l, dy);
            for (int l = 0; l < 16 && col + l < W;) {
                const int block = (col + l) / sums.f;
                if (block >= sums.bw) break;
                const int run_end = std::min((block + 1) * sums.f - col, 16);
                float* a = sums.acc + 3 * static_cast<std::size_t>(block);
                float ax = a[0], ay = a[1], n = a[2];
                for (; l < run_end; ++l) {
                    ax += dx_l[l];
                    ay += dy_l[l];
                    n += static_cast<float>(covered >> l & 1);
                }
                a[0] = ax, a[1] = ay, a[2] = n;
            }
        }
        for (unsigned m = covered & ~simple; m; m &= m - 1) {
            const int l = __builtin_ctz(m);
            const float b1s = b1_l[l], b2s = b2_l[l];
            float colour[3];
            face_pixel_colour(in, i + l, t_l[l], 1.0f - b1s - b2s, b1s, b2s, sx_l[l], sy_l[l], sz_l[l], normals,
                              colour);
            std::uint8_t* o = out.composite + 3 * (i + l);
            for (int c = 0; c < 3; ++c) o[c] = to_u8(colour[c]);
        }
    }
    return W;
}
#endif

// One row of the box: the composite at its covered pixels, and each covered pixel's
// displacement added to `acc` (dx, dy, count per block of f columns; blocks < bw only,
// when `whole`), in column order.
template <typename Normals>
inline void transfer_face_row(const FaceInputs& in, const FaceOutputs& out, std::size_t row, int f, int bw,
                              bool whole, float* acc, Normals&& normals) {
    const int W = in.box_w;
    const std::size_t base = row * static_cast<std::size_t>(W);
    const BlockSums sums{acc, f, bw, whole, static_cast<float>(in.box_x0), static_cast<float>(in.box_y0),
                         static_cast<float>(row)};
    int col = 0;
#if AFFCORE_TRANSFER_AVX512
    // (its gathers index triangles and vertices with 3 t and 3 v in 32-bit lanes)
    if (3 * std::max(in.num_triangles, in.num_vertices) < (std::size_t{1} << 31))
        col = transfer_face_row_avx512(in, out, row, sums, normals);
#endif
    for (; col < W; ++col) {
        const std::size_t i = base + static_cast<std::size_t>(col);
        const std::int32_t t = in.triangle_id[i];
        if (t < 0) continue;
        const float b1 = in.barycentrics[2 * i], b2 = in.barycentrics[2 * i + 1], b0 = 1.0f - b1 - b2;
        float sx, sy, sz, colour[3];
        surface_point(in, t, b0, b1, b2, sx, sy, sz);
        sums.add(col, sx, sy);
        face_pixel_colour(in, i, t, b0, b1, b2, sx, sy, sz, normals, colour);
        std::uint8_t* o = out.composite + 3 * i;
        for (int c = 0; c < 3; ++c) o[c] = to_u8(colour[c]);
    }
}

// The pixels of the target that some parts' triangles cover, for the passes that follow
// the pixel pass (continue_eyeball, shade_opened_mouth, fill_mouth_slivers): the box of
// those triangles' vertices on screen, and over it each pixel's state (-1: not those parts;
// 0: a surface point the photo showed; 1: one it did not), and the composite's colours once
// captured.
struct PartPixels {
    int c0 = 0, c1 = -1, r0 = 0, r1 = -1, bw = 0;
    std::vector<std::int8_t> state;
    std::vector<std::uint8_t> before;  // 3 per pixel of the box
    bool hidden = false;               // some pixel is in state 1

    std::size_t index(int x, int y) const {
        return static_cast<std::size_t>(y - r0) * static_cast<std::size_t>(bw) + static_cast<std::size_t>(x - c0);
    }
    std::int8_t at(int x, int y) const { return state[index(x, y)]; }
    const std::uint8_t* colour(int x, int y) const { return before.data() + 3 * index(x, y); }
};

template <typename IsPart>
inline PartPixels part_pixels(const FaceInputs& in, IsPart is_part) {
    PartPixels px;
    const int W = in.box_w;
    if (!part_box(in, is_part, px.c0, px.c1, px.r0, px.r1)) return px;
    px.bw = px.c1 - px.c0 + 1;
    px.state.assign(static_cast<std::size_t>(px.bw) * static_cast<std::size_t>(px.r1 - px.r0 + 1), -1);
    for (int y = px.r0; y <= px.r1; ++y) {
        for (int x = px.c0; x <= px.c1; ++x) {
            const std::size_t i = static_cast<std::size_t>(y) * static_cast<std::size_t>(W) + static_cast<std::size_t>(x);
            const std::int32_t t = in.triangle_id[i];
            if (t < 0 || !is_part(in.part[t])) continue;
            const float b1 = in.barycentrics[2 * i], b2 = in.barycentrics[2 * i + 1], b0 = 1.0f - b1 - b2;
            float sx, sy, sz;
            surface_point(in, t, b0, b1, b2, sx, sy, sz);
            const bool seen = seen_in_photo(in, sx, sy, sz);
            px.state[px.index(x, y)] = seen ? 0 : 1;
            px.hidden = px.hidden || !seen;
        }
    }
    return px;
}

inline std::uint8_t* composite_pixel(const FaceInputs& in, const FaceOutputs& out, int x, int y) {
    return out.composite + 3 * (static_cast<std::size_t>(y) * static_cast<std::size_t>(in.box_w) + static_cast<std::size_t>(x));
}

// The composite over the box as it is now, into px.before: the colours a pass reads while it
// writes the composite.
inline void capture_colours(PartPixels& px, const FaceInputs& in, const FaceOutputs& out) {
    px.before.resize(3 * px.state.size());
    for (int y = px.r0; y <= px.r1; ++y)
        std::memcpy(px.before.data() + 3 * px.index(px.c0, y), composite_pixel(in, out, px.c0, y),
                    3 * static_cast<std::size_t>(px.bw));
}

// Calls run(x, start, end) for each column's runs of hidden pixels (state 1), rows
// [start, end), column by column, top to bottom.
template <typename Run>
inline void for_each_hidden_run(const PartPixels& px, Run&& run) {
    for (int x = px.c0; x <= px.c1; ++x) {
        for (int y = px.r0; y <= px.r1;) {
            if (px.at(x, y) != 1) {
                ++y;
                continue;
            }
            const int start = y;
            while (y <= px.r1 && px.at(x, y) == 1) ++y;
            run(x, start, y);
        }
    }
}

// The window below a run's lid margin whose shown eyeball gives the run its colour: up to
// this many columns on either side, and this many rows.
inline constexpr int kEyeballHalfWidth = 2;
inline constexpr int kEyeballRows = 3;

// The per-channel median of the eyeball the photo showed (state 0) in the window of columns
// c0..c1 and rows r0..r1 (either way round; clamped to the eyeballs' box), no more than
// kEyeballRows by 2 kEyeballHalfWidth + 1 pixels: the colour continue_eyeball and
// continue_eyeball_sideways give a run (a median, so that a catchlight or a lash is not drawn
// out into a streak). False where the window shows no eyeball.
inline bool shown_median(const PartPixels& px, int c0, int c1, int r0, int r1, std::uint8_t median[3]) {
    std::uint8_t window[3][(2 * kEyeballHalfWidth + 1) * kEyeballRows];
    int n = 0;
    for (int y = std::max(px.r0, std::min(r0, r1)); y <= std::min(px.r1, std::max(r0, r1)); ++y) {
        for (int x = std::max(px.c0, std::min(c0, c1)); x <= std::min(px.c1, std::max(c0, c1)); ++x) {
            if (px.at(x, y) != 0) continue;
            const std::uint8_t* c = px.colour(x, y);
            for (int ch = 0; ch < 3; ++ch) window[ch][n] = c[ch];
            ++n;
        }
    }
    if (n == 0) return false;
    for (int ch = 0; ch < 3; ++ch) {
        std::nth_element(window[ch], window[ch] + n / 2, window[ch] + n);
        median[ch] = window[ch][n / 2];
    }
    return true;
}

// Eyeball hidden in the photo that no column continues (continue_eyeball) lies beside the
// eyeball the photo showed rather than above or below it: at the corners of an eye turned
// sideways (AU61, AU62: affcore/_gaze.py), where the flat material colour showed as a grey
// patch. Each row's run of it (`left` set) takes the per-channel median of the shown eyeball
// beside it (kEyeballRows columns next to the run, kEyeballHalfWidth rows either side), from
// the side whose first kEyeballRows columns show eyeball; where both sides do, it passes
// from one side's median to the other's along the run. No margin moves: no lid edge runs
// along a row. Reads the colours continue_eyeball captured, so the order does not matter.
inline void continue_eyeball_sideways(const FaceInputs& in, const FaceOutputs& out, const PartPixels& px,
                                      const std::vector<std::uint8_t>& left) {
    // the median beside row y in columns near, near + step, ...; false where one of the
    // first kEyeballRows of them does not show eyeball in row y
    auto beside = [&](int y, int near, int step, std::uint8_t median[3]) {
        for (int k = 0; k < kEyeballRows; ++k) {
            const int x = near + step * k;
            if (x < px.c0 || x > px.c1 || px.at(x, y) != 0) return false;
        }
        return shown_median(px, near, near + step * (kEyeballRows - 1), y - kEyeballHalfWidth, y + kEyeballHalfWidth,
                            median);
    };
    for (int y = px.r0; y <= px.r1; ++y) {
        for (int x = px.c0; x <= px.c1;) {
            if (!left[px.index(x, y)]) {
                ++x;
                continue;
            }
            const int start = x;
            while (x <= px.c1 && left[px.index(x, y)]) ++x;
            std::uint8_t a[3], b[3];
            const bool from_left = beside(y, start - 1, -1, a), from_right = beside(y, x, +1, b);
            if (!from_left && !from_right) continue;
            if (!from_left) std::copy(b, b + 3, a);
            if (!from_right) std::copy(a, a + 3, b);
            for (int k = start; k < x; ++k) {
                const float f = static_cast<float>(k - start + 1) / static_cast<float>(x - start + 1);
                std::uint8_t* c = composite_pixel(in, out, k, y);
                for (int ch = 0; ch < 3; ++ch) c[ch] = to_u8((1.0f - f) * a[ch] + f * b[ch]);
            }
        }
    }
}

// Eyeball that the target's widened lids uncover was hidden in the photo, so the photo has
// no colour for it; a flat material colour (face_pixel_colour) showed as a grey arc between
// lid and eyeball. Each column's run of such pixels is filled from the eyeball the photo
// did show next to it, in two parts:
//  * The photo's lid margin (lashes, eyeliner, the lid's shadow on the eyeball) seldom lies
//    exactly on the fitted lid: most often it falls on the fitted eyeball, just inside the
//    lid's edge. Left there, it stays behind as a second lid line, or is drawn out in
//    stripes, while the lid moves. So the first `lid_margin` pixels of shown eyeball next to
//    the run move with the lid, to the run's far end.
//  * The gap they leave takes the colour of the eyeball beyond the margin: the per-channel
//    median of the shown eyeball in a window there (kEyeballRows rows, kEyeballHalfWidth
//    columns either side), so that a catchlight or a lash is not drawn out into a streak,
//    and iris continues as iris, sclera as sclera.
// A run with shown eyeball below it is an upper lid raised (surprise, fear), and continues
// the eyeball below; one without, but with shown eyeball above it, is a lower lid lowered
// (sadness's eyes looking down, AU64), and continues the eyeball above, where the flat
// colour drew a grey line along the lower lid. A column whose shown eyeball on both sides is
// shorter than the margin and one more row is left to continue_eyeball_sideways. Runs after
// transfer_face's pixels are written; sequential, over the eyeballs' box only, reading the
// composite as transfer_face left it (the result does not depend on the order of the
// columns).
inline void continue_eyeball(const FaceInputs& in, const FaceOutputs& out) {
    PartPixels px = part_pixels(in, [](std::int8_t p) { return p == kSclera || p == kIris; });
    if (!px.hidden) return;
    capture_colours(px, in, out);
    const int margin = in.lid_margin;
    std::vector<std::uint8_t> left(px.state.size(), 0);  // runs no column continues
    bool any_left = false;
    // whether rows y, y + step, ... (step +1: down, -1: up) show eyeball for the margin and one row more
    auto enough_shown = [&](int x, int y, int step) {
        int shown = 0;
        while (shown <= margin && y + step * shown >= px.r0 && y + step * shown <= px.r1 &&
               px.at(x, y + step * shown) == 0)
            ++shown;
        return shown > margin;
    };
    for_each_hidden_run(px, [&](int x, int start, int end) {
        // the run [start, end) is continued from the eyeball on side `step` of it: `near` is
        // the first shown row there, the margin is rows near .. near + step (margin - 1)
        int step = 0, near = 0;
        if (enough_shown(x, end, +1)) {
            step = +1, near = end;
        } else if (enough_shown(x, start - 1, -1)) {
            step = -1, near = start - 1;
        } else {
            for (int y = start; y < end; ++y) left[px.index(x, y)] = 1;
            any_left = true;
            return;
        }
        // (enough_shown saw eyeball in row near + step * margin, so the window is not empty)
        std::uint8_t median[3];
        shown_median(px, x - kEyeballHalfWidth, x + kEyeballHalfWidth, near + step * margin,
                     near + step * (margin + kEyeballRows - 1), median);
        // the margin moves by the run's length, to the run's far end; the rest of the run
        // and the margin's old place take the median
        const int shift = end - start;
        const int far = step > 0 ? start : end - 1;  // the run's row next to the lid
        for (int k = 0; k < margin; ++k) {
            const int r = far + step * k;
            std::memcpy(composite_pixel(in, out, x, r), px.colour(x, r + step * shift), 3);
        }
        for (int k = margin; k < shift + margin; ++k) std::memcpy(composite_pixel(in, out, x, far + step * k), median, 3);
    });
    if (any_left) continue_eyeball_sideways(in, out, px, left);
}

// in.mouth_opened at covered pixel i, interpolated over its triangle (as combine rounds).
inline float mouth_opened_at(const FaceInputs& in, std::size_t i) {
    const std::int32_t* tri = in.triangles + 3 * static_cast<std::size_t>(in.triangle_id[i]);
    const float b1 = in.barycentrics[2 * i], b2 = in.barycentrics[2 * i + 1];
    const float* w = in.mouth_opened;
    return combine(1.0f - b1 - b2, b1, b2, w[tri[0]], w[tri[1]], w[tri[2]]);
}

// (1 - f) * a + f * b, exactly a at f = 0 and b at f = 1, rounded as to_u8.
inline std::uint8_t mix_u8(float a, float b, float f) { return to_u8((1.0f - f) * a + f * b); }

// Where the fit and the photo disagree about the lips (most often a fit a little open on
// closed lips), the photo's lips lie on the fitted mouth interior: those interior pixels
// show lip, and move with the teeth and gums. A target that shifts them reveals, next to
// them, thin slivers of interior the photo hid, which the material shades as dark cavity:
// a dark line drawn across the lower lip (anger, contempt, disgust). Each column's run of
// such pixels no taller than `mouth_sliver` and bordering interior the photo showed takes
// the colour of that neighbour (from above and below, halves, when it borders both). Taller
// runs are openings the target makes, and keep their shading. With mouth_opened, the
// neighbours give way to the shading as the target opens the mouth (shade_opened_mouth),
// and the runs take their colour only to the degree that the target leaves the mouth as it
// was (1 - mouth_opened). There, a run may also lie between lip and lip with no shown
// interior beside it: where the target parts the model's closed lips by a few pixels
// (sadness's mouth corners), the teeth behind were shaded as cavity, a black notch in the
// closed mouth. Such a run takes the lip beside it in the same way. After the
// pixel pass and shade_opened_mouth, over the mouth interior's box only, reading the
// composite as they left it.
inline void fill_mouth_slivers(const FaceInputs& in, const FaceOutputs& out, PartPixels& px) {
    if (in.mouth_sliver <= 0 || !px.hidden) return;
    capture_colours(px, in, out);
    // the lip at row y of column x: a covered pixel of the box outside the mouth interior,
    // which no pass after the pixel pass writes (null: none there)
    auto lip = [&](int x, int y) -> const std::uint8_t* {
        if (y < 0 || y >= in.box_h) return nullptr;
        if (y >= px.r0 && y <= px.r1 && px.at(x, y) != -1) return nullptr;
        const std::size_t i = static_cast<std::size_t>(y) * static_cast<std::size_t>(in.box_w) + static_cast<std::size_t>(x);
        return in.triangle_id[i] >= 0 ? composite_pixel(in, out, x, y) : nullptr;
    };
    for_each_hidden_run(px, [&](int x, int start, int end) {
        if (end - start > in.mouth_sliver) return;
        const bool above = start > px.r0 && px.at(x, start - 1) == 0;
        const bool below = end <= px.r1 && px.at(x, end) == 0;
        const std::uint8_t* from_above = above ? px.colour(x, start - 1) : nullptr;
        const std::uint8_t* from_below = below ? px.colour(x, end) : nullptr;
        if (!above && !below && in.mouth_opened) from_above = lip(x, start - 1), from_below = lip(x, end);
        if (!from_above && !from_below) return;
        const int split = from_above && from_below ? start + (end - start + 1) / 2 : (from_above ? end : start);
        for (int r = start; r < end; ++r) {
            const std::uint8_t* from = r < split ? from_above : from_below;
            std::uint8_t* o = composite_pixel(in, out, x, r);
            if (!in.mouth_opened) {
                std::memcpy(o, from, 3);
                continue;
            }
            const std::size_t i = static_cast<std::size_t>(r) * static_cast<std::size_t>(in.box_w) + static_cast<std::size_t>(x);
            const float take = 1.0f - mouth_opened_at(in, i);
            for (int c = 0; c < 3; ++c) o[c] = mix_u8(o[c], from[c], take);
        }
    });
}

// A photo of closed lips shows no mouth interior, yet the fitted lips part a little (the
// model's lips at rest are 0.8 mm apart, and dlib marks closed lips up to a few mm apart):
// the interior the fit leaves visible between them holds the photo's lips and the dark
// line where they meet. A photo that shows teeth shows them at its own opening, on the
// fitted teeth and gums. Where the target leaves the mouth as it was, those colours are
// right, and stay. Where it opens the mouth, they would ride on the teeth and gums, as
// lip-coloured bands across the teeth, dark bars across the lower lip, or the photo's
// teeth beside interior it hid, pieced together column by column (fill_mouth_slivers):
// they give way to the material's shading in proportion to how far the target opens the
// mouth there (mouth_opened), so that a mouth opening over a sequence of frames changes
// smoothly.
template <typename Normals>
inline void shade_opened_mouth(const FaceInputs& in, const FaceOutputs& out, const PartPixels& px, Normals&& normals) {
    if (!in.mouth_opened) return;
    for (int y = px.r0; y <= px.r1; ++y) {
        for (int x = px.c0; x <= px.c1; ++x) {
            if (px.at(x, y) != 0) continue;
            const std::size_t i = static_cast<std::size_t>(y) * static_cast<std::size_t>(in.box_w) + static_cast<std::size_t>(x);
            const float opened = mouth_opened_at(in, i);
            if (!(opened > 0.0f)) continue;
            const float b1 = in.barycentrics[2 * i], b2 = in.barycentrics[2 * i + 1];
            float colour[3];
            material_colour(in, i, in.triangle_id[i], 1.0f - b1 - b2, b1, b2, normals, colour);
            std::uint8_t* o = composite_pixel(in, out, x, y);
            for (int c = 0; c < 3; ++c) o[c] = mix_u8(o[c], colour[c], opened);
        }
    }
}

inline void transfer_face(const FaceInputs& inputs, const FaceOutputs& out, unsigned threads) {
    const Papillae papillae = find_papillae(inputs);
    FaceInputs in = inputs;
    if (!papillae.left.empty()) in.papillae = &papillae;
    // Normals are needed only to shade surface the photo never showed; most targets have
    // none (closed mouth, eyes as in the photo), so they are computed at the first such
    // pixel, once for all workers.
    std::vector<float> normals;
    std::once_flag normals_once;
    auto normals_ready = [&]() -> const float* {
        std::call_once(normals_once, [&] {
            if (in.num_normal_triangles > 0) part_vertex_normals(in, normals);
            else normals.assign(in.num_vertices * 3, 0.0f);
        });
        return normals.data();
    };
    const int W = in.box_w, f = std::max(out.reduce, 1);
    const int bh = in.box_h / f, bw = W / f;
    const float inv_area = 1.0f / static_cast<float>(f * f);
    // Rows go to workers in whole blocks, so that each block's sums (in row-major pixel
    // order) are one worker's: the result does not depend on the thread count.
    const std::size_t groups = static_cast<std::size_t>((in.box_h + f - 1) / f);
    render::parallel_ranges(groups, std::max(1u, threads), [&](std::size_t g0, std::size_t g1, unsigned) {
        std::vector<float> acc(3 * static_cast<std::size_t>(bw));  // per block of the group: dx, dy, count
        for (std::size_t g = g0; g < g1; ++g) {
            std::fill(acc.begin(), acc.end(), 0.0f);
            const bool whole = static_cast<int>(g) < bh;
            const std::size_t row_end = std::min<std::size_t>((g + 1) * f, static_cast<std::size_t>(in.box_h));
            for (std::size_t row = g * f; row < row_end; ++row)
                transfer_face_row(in, out, row, f, bw, whole, acc.data(), normals_ready);
            if (!whole) continue;
            float* d = out.displacement + 2 * g * static_cast<std::size_t>(bw);
            float* k = out.known + g * static_cast<std::size_t>(bw);
            for (int b = 0; b < bw; ++b) {
                d[2 * b] = acc[3 * b] * inv_area;
                d[2 * b + 1] = acc[3 * b + 1] * inv_area;
                k[b] = acc[3 * b + 2] * inv_area;
            }
        }
    });
    continue_eyeball(in, out);
    if (in.mouth_sliver > 0 || in.mouth_opened) {
        PartPixels mouth = part_pixels(in, [](std::int8_t p) { return p == kSocket || p == kGums || p == kTeeth; });
        shade_opened_mouth(in, out, mouth, normals_ready);
        fill_mouth_slivers(in, out, mouth);
    }
}

struct SurroundInputs {
    Photo photo;
    int box_x0 = 0, box_y0 = 0, box_h = 0, box_w = 0;
    const std::int32_t* triangle_id = nullptr;  // box_h x box_w: the target raster
    // the displacement extension at reduced resolution (small_h x small_w x 2), upsampled
    // to the box as cv2.resize(INTER_LINEAR) does (half-pixel centres, edge clamping)
    const float* small = nullptr;
    int small_h = 0, small_w = 0;
    // coverage of the fitted face in the photo (src_h x src_w, nonzero = covered) and where
    // its box lies in the target box
    const std::uint8_t* src_covered = nullptr;
    int src_off_x = 0, src_off_y = 0, src_h = 0, src_w = 0;
    float moved_threshold = 0.3f;  // surroundings moved by more than this (px) join the region
};

struct SurroundOutputs {
    std::uint8_t* composite = nullptr;  // box_h x box_w x 3: written where not covered, in the region
    std::uint8_t* region = nullptr;     // box_h x box_w: covered | fitted face | moved
};

// cv2.resize INTER_LINEAR source index and weight for destination index d.
struct Tap {
    int i0 = 0, i1 = 0;
    float f = 0.0f;
};
inline std::vector<Tap> linear_taps(int dst, int src) {
    std::vector<Tap> taps(static_cast<std::size_t>(dst));
    const double scale = static_cast<double>(src) / dst;
    for (int d = 0; d < dst; ++d) {
        const float fx = static_cast<float>((d + 0.5) * scale - 0.5);
        int s = static_cast<int>(std::floor(fx));
        float f = fx - static_cast<float>(s);
        Tap t;
        if (s < 0) {
            s = 0;
            f = 0.0f;
        }
        if (s >= src - 1) {
            s = src - 1;
            f = 0.0f;
        }
        t.i0 = s;
        t.i1 = std::min(s + 1, src - 1);
        t.f = f;
        taps[static_cast<std::size_t>(d)] = t;
    }
    return taps;
}

// The displacement extension upsampled at (row, col), as cv2.resize(INTER_LINEAR): at a
// few pixels of a row, directly (at(row, col)); at most of a row's pixels, the two source
// rows blended once (row()), then per pixel the two columns (at(buf, col)).
struct Upsampler {
    const SurroundInputs& in;
    std::vector<Tap> tx, ty;
    explicit Upsampler(const SurroundInputs& in_)
        : in(in_), tx(linear_taps(in_.box_w, in_.small_w)), ty(linear_taps(in_.box_h, in_.small_h)) {}
    // buf (small_w x 2) = the extension's source rows blended for box row `row`
    void row(std::size_t row, float* buf) const {
        const Tap& yt = ty[row];
        const float* s0 = in.small + static_cast<std::size_t>(yt.i0) * in.small_w * 2;
        const float* s1 = in.small + static_cast<std::size_t>(yt.i1) * in.small_w * 2;
        for (int k = 0; k < 2 * in.small_w; ++k) buf[k] = lerp(s0[k], s1[k], yt.f);
    }
    void at(std::size_t row, int col, float e[2]) const {
        const Tap& yt = ty[row];
        const Tap& xt = tx[static_cast<std::size_t>(col)];
        const float* s0 = in.small + static_cast<std::size_t>(yt.i0) * in.small_w * 2;
        const float* s1 = in.small + static_cast<std::size_t>(yt.i1) * in.small_w * 2;
        for (int c = 0; c < 2; ++c) {
            const float top = lerp(s0[2 * xt.i0 + c], s0[2 * xt.i1 + c], xt.f);
            const float bot = lerp(s1[2 * xt.i0 + c], s1[2 * xt.i1 + c], xt.f);
            e[c] = lerp(top, bot, yt.f);
        }
    }
    void at(const float* buf, int col, float e[2]) const {
        const Tap& xt = tx[static_cast<std::size_t>(col)];
        for (int c = 0; c < 2; ++c) e[c] = lerp(buf[2 * xt.i0 + c], buf[2 * xt.i1 + c], xt.f);
    }
    // the photo warped by the extension, at (row, col) of the box
    void warped(std::size_t row, int col, const float e[2], std::uint8_t* o) const {
        float colour[3];
        sample_rgb(in.photo, (static_cast<float>(col) + e[0]) + static_cast<float>(in.box_x0),
                   (static_cast<float>(row) + e[1]) + static_cast<float>(in.box_y0), colour);
        for (int c = 0; c < 3; ++c) o[c] = to_u8(colour[c]);
    }
};

// Squared length of a displacement (e0, e1), compared with the moved threshold.
inline float squared_length(float e0, float e1) { return std::fma(e0, e0, e1 * e1); }

#if AFFCORE_TRANSFER_AVX512
// transfer_surround's loop over one row, sixteen pixels at a time: the upsampled
// displacement (gathered column taps, lerp as Upsampler::at), the region, and the warped
// photo per lane where the region holds a pixel the face does not cover. The same float
// operations as the scalar loop, so the same bytes. Returns the row's width.
inline int transfer_surround_row_avx512(const SurroundInputs& in, const SurroundOutputs& out, const Upsampler& up,
                                        const float* buf, std::size_t row, float thr2) {
    const int W = in.box_w;
    const std::size_t base = row * static_cast<std::size_t>(W);
    const long sr = static_cast<long>(row) - in.src_off_y;
    const std::uint8_t* src_row = sr >= 0 && sr < in.src_h
                                      ? in.src_covered + static_cast<std::size_t>(sr) * static_cast<std::size_t>(in.src_w)
                                      : nullptr;
    const int* taps = reinterpret_cast<const int*>(up.tx.data());
    static_assert(sizeof(Tap) == 3 * sizeof(int), "Tap: i0, i1, f");
    const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    const __m512i three = _mm512_set1_epi32(3), one = _mm512_set1_epi32(1);
    const __m512 limit = _mm512_set1_ps(thr2);
    const __m512 lane_f = _mm512_cvtepi32_ps(lane);
    alignas(64) float e0_l[16], e1_l[16];
    for (int col = 0; col < W; col += 16) {
        const int n = std::min(16, W - col);
        const __mmask16 px = n == 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1u);
        const std::size_t i = base + static_cast<std::size_t>(col);
        const __mmask16 covered =
            _mm512_mask_cmpge_epi32_mask(px, _mm512_maskz_loadu_epi32(px, in.triangle_id + i), _mm512_setzero_si512());
        const __mmask16 open = px & ~covered;
        __mmask16 fitted = 0;  // the fitted face covers the pixel in the photo
        if (src_row && open) {
            const long a = std::max<long>(col, in.src_off_x), b = std::min<long>(col + n, in.src_off_x + in.src_w);
            if (a < b) {  // columns a..b-1 of the photo's coverage row, lanes a-col..b-col-1
                const __mmask16 span = static_cast<__mmask16>((1u << (b - a)) - 1u);
                const __m128i cov = _mm_maskz_loadu_epi8(span, src_row + (a - in.src_off_x));
                fitted = static_cast<__mmask16>(_mm_mask_cmpneq_epi8_mask(span, cov, _mm_setzero_si128()) << (a - col));
            }
        }
        __mmask16 moved = 0;
        if (open) {
            const __m512i t3 = _mm512_mullo_epi32(_mm512_add_epi32(_mm512_set1_epi32(col), lane), three);
            const __m512i i0 =
                _mm512_slli_epi32(_mm512_mask_i32gather_epi32(_mm512_setzero_si512(), open, t3, taps, 4), 1);
            const __m512i i1 = _mm512_slli_epi32(
                _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), open, _mm512_add_epi32(t3, one), taps, 4), 1);
            const __m512 f = _mm512_castsi512_ps(_mm512_mask_i32gather_epi32(
                _mm512_setzero_si512(), open, _mm512_add_epi32(t3, _mm512_set1_epi32(2)), taps, 4));
            __m512 e[2];
            for (int c = 0; c < 2; ++c) {
                const __m512i cc = _mm512_set1_epi32(c);
                const __m512 a = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), open, _mm512_add_epi32(i0, cc), buf, 4);
                const __m512 b = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), open, _mm512_add_epi32(i1, cc), buf, 4);
                e[c] = _mm512_fmadd_ps(f, _mm512_sub_ps(b, a), a);
            }
            const __m512 len2 = _mm512_fmadd_ps(e[0], e[0], _mm512_mul_ps(e[1], e[1]));
            moved = _mm512_mask_cmp_ps_mask(open, len2, limit, _CMP_GT_OQ);
            _mm512_store_ps(e0_l, e[0]);
            _mm512_store_ps(e1_l, e[1]);
        }
        const __mmask16 warped = open & (fitted | moved);
        _mm_mask_storeu_epi8(out.region + i, px, _mm_maskz_mov_epi8(covered | warped, _mm_set1_epi8(1)));
        if (!warped) continue;
        // the photo at (col + e0 + box x0, row + e1 + box y0), as Upsampler::warped
        __mmask16 done = 0;
        const __m512 x = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(_mm512_set1_ps(static_cast<float>(col)), lane_f),
                                                     _mm512_load_ps(e0_l)),
                                       _mm512_set1_ps(static_cast<float>(in.box_x0)));
        const __m512 y = _mm512_add_ps(_mm512_add_ps(_mm512_set1_ps(static_cast<float>(row)), _mm512_load_ps(e1_l)),
                                       _mm512_set1_ps(static_cast<float>(in.box_y0)));
        const __m512i rgb = sample_rgb_avx512(in.photo, x, y, warped, nullptr, done);
        store_rgb_avx512(out.composite + 3 * i, done, rgb);
        for (unsigned m = warped & ~done; m; m &= m - 1) {
            const int l = __builtin_ctz(m);
            const float e[2] = {e0_l[l], e1_l[l]};
            up.warped(row, col + l, e, out.composite + 3 * (i + static_cast<std::size_t>(l)));
        }
    }
    return W;
}
#endif

// The undilated blend region (covered | fitted face | moved) and, inside it, the warped
// surroundings at the pixels the face does not cover.
inline void transfer_surround(const SurroundInputs& in, const SurroundOutputs& out, unsigned threads) {
    const int W = in.box_w;
    const Upsampler up(in);
    const float thr2 = in.moved_threshold * in.moved_threshold;
    render::parallel_ranges(static_cast<std::size_t>(in.box_h), std::max(1u, threads),
                            [&](std::size_t r0, std::size_t r1, unsigned) {
        std::vector<float> buf(2 * static_cast<std::size_t>(in.small_w));
        for (std::size_t row = r0; row < r1; ++row) {
            up.row(row, buf.data());
            const long sr = static_cast<long>(row) - in.src_off_y;
            const bool src_row = sr >= 0 && sr < in.src_h;
            int col = 0;
#if AFFCORE_TRANSFER_AVX512
            col = transfer_surround_row_avx512(in, out, up, buf.data(), row, thr2);
#endif
            for (; col < W; ++col) {
                const std::size_t i = row * static_cast<std::size_t>(W) + static_cast<std::size_t>(col);
                if (in.triangle_id[i] >= 0) {
                    out.region[i] = 1;
                    continue;
                }
                bool reg = false;
                if (src_row) {
                    const long sc = static_cast<long>(col) - in.src_off_x;
                    reg = sc >= 0 && sc < in.src_w && in.src_covered[static_cast<std::size_t>(sr) * in.src_w + sc] != 0;
                }
                float e[2];
                up.at(buf.data(), col, e);
                reg = reg || squared_length(e[0], e[1]) > thr2;
                out.region[i] = reg ? 1 : 0;
                if (reg) up.warped(row, col, e, out.composite + 3 * i);
            }
        }
    });
}

// After dilating the region: the warped surroundings at the pixels the dilation added
// (region set, region0 not; covered pixels are always in region0).
inline void transfer_ring(const SurroundInputs& in, const std::uint8_t* region0, const std::uint8_t* region,
                          std::uint8_t* composite, unsigned threads) {
    const int W = in.box_w;
    const Upsampler up(in);
    render::parallel_ranges(static_cast<std::size_t>(in.box_h), std::max(1u, threads),
                            [&](std::size_t r0, std::size_t r1, unsigned) {
        for (std::size_t row = r0; row < r1; ++row) {
            for (int col = 0; col < W; ++col) {
                const std::size_t i = row * static_cast<std::size_t>(W) + static_cast<std::size_t>(col);
                // the added pixels are few (region0 is a subset of region): skip 64, else
                // eight pixels at a time where the two agree
                if (col + 64 <= W && std::memcmp(region + i, region0 + i, 64) == 0) {
                    col += 63;
                    continue;
                }
                if (col + 8 <= W) {
                    std::uint64_t a, b;
                    std::memcpy(&a, region + i, 8);
                    std::memcpy(&b, region0 + i, 8);
                    if (a == b) {
                        col += 7;
                        continue;
                    }
                }
                if (!region[i] || region0[i]) continue;
                float e[2];
                up.at(row, col, e);
                up.warped(row, col, e, composite + 3 * i);
            }
        }
    });
}

// Histogram of R+G+B (0..765) over the pixels whose label equals `which`, with each bin's
// per-channel sums: count (766) and sums (766 x 3). rgb: H x W x 3 with row stride
// `row_stride` bytes; labels: H x W.
inline void rgb_sum_histogram(const std::uint8_t* rgb, std::size_t row_stride, const std::int8_t* labels, int H, int W,
                              std::int8_t which, std::int64_t* count, double* sums) {
    std::fill(count, count + 766, 0);
    std::vector<std::int64_t> acc(766 * 3, 0);  // exact integer sums
    for (int y = 0; y < H; ++y) {
        const std::uint8_t* p = rgb + static_cast<std::size_t>(y) * row_stride;
        const std::int8_t* l = labels + static_cast<std::size_t>(y) * static_cast<std::size_t>(W);
        for (int x = 0; x < W; ++x) {
            if (l[x] != which) continue;
            const int r = p[3 * x], g = p[3 * x + 1], b = p[3 * x + 2], k = r + g + b;
            ++count[k];
            acc[3 * k] += r, acc[3 * k + 1] += g, acc[3 * k + 2] += b;
        }
    }
    for (int k = 0; k < 766 * 3; ++k) sums[k] = static_cast<double>(acc[static_cast<std::size_t>(k)]);
}

// screen[n] = project(base[n] + sum_k weights[k] * basis[k][n]) for n < N, where
// project(X) = (s (R X)_x + tx, -s (R X)_y + ty, -s (R X)_z). basis: K x N x 3.
// Zero weights are skipped (targets use few blendshapes).
inline void deform_project(const float* base, const float* basis, const double* weights, std::size_t K,
                           std::size_t N, const double* R, double s, double tx, double ty, float* screen,
                           unsigned threads) {
    std::vector<std::size_t> active;
    std::vector<float> w;
    for (std::size_t k = 0; k < K; ++k)
        if (weights[k] != 0.0) {
            active.push_back(k);
            w.push_back(static_cast<float>(weights[k]));
        }
    render::parallel_ranges(N, std::max(1u, threads), [&](std::size_t a, std::size_t b, unsigned) {
        // Each weight's basis is read in runs of kChunk vertices (96 KB): long enough runs for
        // the hardware prefetcher, whose restarts at every run dominated with 6 KB runs when
        // the basis comes from memory (a photo's identity: 100 weights, 27 MB; 0.85x).
        constexpr std::size_t kChunk = 8192;
        std::vector<float> chunk(3 * std::min(kChunk, b - a));
        float* buf = chunk.data();
        for (std::size_t c0 = a; c0 < b; c0 += kChunk) {
            const std::size_t c1 = std::min(b, c0 + kChunk), n = 3 * (c1 - c0);
            std::copy(base + 3 * c0, base + 3 * c1, buf);
            for (std::size_t j = 0; j < active.size(); ++j) {
                const float wk = w[j];
                const float* bk = basis + active[j] * N * 3 + 3 * c0;
                for (std::size_t e = 0; e < n; ++e) buf[e] += wk * bk[e];
            }
            for (std::size_t v = c0; v < c1; ++v) {
                const float* x = buf + 3 * (v - c0);
                const double y0 = R[0] * x[0] + R[1] * x[1] + R[2] * x[2];
                const double y1 = R[3] * x[0] + R[4] * x[1] + R[5] * x[2];
                const double y2 = R[6] * x[0] + R[7] * x[1] + R[8] * x[2];
                screen[3 * v] = static_cast<float>(s * y0 + tx);
                screen[3 * v + 1] = static_cast<float>(-s * y1 + ty);
                screen[3 * v + 2] = static_cast<float>(-s * y2);
            }
        }
    });
}

}  // namespace affcore::synthesis
