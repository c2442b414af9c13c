"""Tests of affcore.blend.poisson_blend against OpenCV's seamlessClone and on its own."""
import os
from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
from hypothesis import given, settings, strategies as st

from affcore.blend import poisson_blend

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("AFFCORE_DATA_DIR", REPO.parent / "shared" / "data"))
LONDON = DATA / "faces" / "london"


def cv2_clone(source, target, mask):
    """OpenCV NORMAL_CLONE placed so that the source is not shifted.

    seamlessClone takes the mask's bounding rect r and puts it at (p.x - r.w//2, p.y - r.h//2),
    so p = (r.x + r.w//2, r.y + r.h//2) leaves it in place. It modifies the mask argument in
    place (erodes and inverts it through a view), hence the copy.
    """
    m = np.where(mask, 255, 0).astype(np.uint8)
    x, y, w, h = cv2.boundingRect(m)
    return cv2.seamlessClone(source, target, m.copy(), (x + w // 2, y + h // 2), cv2.NORMAL_CLONE)


def ellipse_mask(h, w, cx, cy, ax, ay):
    m = np.zeros((h, w), np.uint8)
    cv2.ellipse(m, (cx, cy), (ax, ay), 0, 0, 360, 255, -1)
    return m > 0


def irregular_mask(h, w, seed=0):
    rng = np.random.default_rng(seed)
    pts = []
    for k in range(12):
        a = 2 * np.pi * k / 12
        r = rng.uniform(0.18, 0.32)
        pts.append([w / 2 + r * w * np.cos(a), h / 2 + r * h * np.sin(a)])
    m = np.zeros((h, w), np.uint8)
    cv2.fillPoly(m, [np.array(pts, np.int32)], 255)
    m[h // 2 - 10: h // 2 + 10, w // 2 - 40: w // 2 + 40] = 0  # a hole
    return m > 0


def load_pair(ident="005"):
    s, t = LONDON / f"{ident}_smiling.jpg", LONDON / f"{ident}_neutral.jpg"
    if not (s.exists() and t.exists()):
        pytest.skip(f"London face photos not found under {LONDON} (set AFFCORE_DATA_DIR)")
    return cv2.imread(str(s)), cv2.imread(str(t))


def synthetic_pair(h=160, w=200, seed=3):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([60 + 0.5 * xx, 80 + 0.4 * yy, 120 + 0.2 * (xx + yy)], -1)
    tgt = np.clip(base + rng.normal(0, 4, (h, w, 3)), 0, 255).astype(np.uint8)
    tex = cv2.GaussianBlur(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), (0, 0), 2.0)
    src = np.clip(tex.astype(float) * 0.8 + 60, 0, 255).astype(np.uint8)
    return src, tgt


def mad_inside(a, b, mask):
    return float(np.abs(a.astype(int) - b.astype(int))[mask].mean())


# ---------------------------------------------------------------- agreement with OpenCV

def harmonic_extension(values, mask, tol=1e-4, maxit=5000):
    """h = values outside the mask and discrete-harmonic (5-point) on the mask; plain CG.

    Independent of the code under test. Used to remove from OpenCV's result the one part of
    it we differ from by design: OpenCV's correction is not zero on the mask's edge (it
    spreads over the unmasked pixels of the box), ours is (no seam); the difference inside
    the mask is the harmonic extension of OpenCV's correction outside it.
    """
    ys, xs = np.nonzero(mask)
    y0, y1, x0, x1 = ys.min() - 1, ys.max() + 2, xs.min() - 1, xs.max() + 2
    m = mask[y0:y1, x0:x1][..., None]
    b = np.where(m, 0.0, values[y0:y1, x0:x1].astype(np.float64))

    def nbsum(u):
        out = np.zeros_like(u)
        out[1:] += u[:-1]; out[:-1] += u[1:]; out[:, 1:] += u[:, :-1]; out[:, :-1] += u[:, 1:]
        return out

    rhs = nbsum(b) * m
    x = np.zeros_like(b); r = rhs.copy(); p = r.copy()
    rr = (r * r).sum((0, 1)); r0 = np.sqrt(rr) + 1e-30
    for _ in range(maxit):
        q = (4 * p - nbsum(p)) * m
        a = rr / (p * q).sum((0, 1))
        x += a * p; r -= a * q
        rn = (r * r).sum((0, 1))
        if (np.sqrt(rn) <= tol * r0).all():
            break
        p = r + (rn / rr) * p; rr = rn
    h = np.zeros(values.shape, np.float64)
    h[y0:y1, x0:x1] = np.where(m, x, 0.0)
    return h


@pytest.mark.parametrize("kind", ["ellipse", "irregular"])
def test_matches_opencv_on_london_photos(kind):
    src, tgt = load_pair("005")
    # Half size: keeps the numpy reference solve (harmonic_extension) to a few seconds.
    src = cv2.resize(src, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    tgt = cv2.resize(tgt, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    h, w = tgt.shape[:2]
    mask = ellipse_mask(h, w, w // 2, h // 2 - 20, int(0.15 * w), int(0.2 * h)) if kind == "ellipse" \
        else irregular_mask(h, w)
    ref = cv2_clone(src, tgt, mask)
    out = poisson_blend(src, tgt, mask)
    # The comparison is meaningful: naive pasting is far from OpenCV's result.
    assert mad_inside(src, ref, mask) > 3.0
    # Same equation and guidance field as OpenCV inside the mask; only the boundary values
    # differ (OpenCV's correction on the mask edge vs our zero). With that removed:
    adjusted = ref - harmonic_extension(ref.astype(np.float64) - tgt, mask)
    assert float(np.abs(out - adjusted)[mask].mean()) <= 1.0
    # The raw difference is that boundary effect: a few grey levels, not more.
    assert mad_inside(out, ref, mask) <= 6.0


def test_matches_opencv_synthetic():
    src, tgt = synthetic_pair()
    mask = ellipse_mask(160, 200, 100, 80, 50, 40)
    ref = cv2_clone(src, tgt, mask)
    out = poisson_blend(src, tgt, mask)
    assert mad_inside(src, ref, mask) > 3.0
    assert mad_inside(out, ref, mask) <= 1.0


# ---------------------------------------------------------------- behaviour on its own

def test_outside_mask_is_target_exactly():
    src, tgt = load_pair("008")
    h, w = tgt.shape[:2]
    mask = irregular_mask(h, w, seed=5)
    out = poisson_blend(src, tgt, mask)
    assert np.array_equal(out[~mask], tgt[~mask])
    assert not np.array_equal(out[mask], tgt[mask])
    # OpenCV does change pixels outside the mask; we must not.
    assert (cv2_clone(src, tgt, mask)[~mask] != tgt[~mask]).any()


def test_seam_gradient_matches_target():
    src, tgt = load_pair("005")
    h, w = tgt.shape[:2]
    mask = ellipse_mask(h, w, w // 2, h // 2 - 40, int(0.15 * w), int(0.2 * h))
    out = poisson_blend(src, tgt, mask)
    boundary = mask & ~cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)

    def gradmag(img):
        f = img.astype(np.float32)
        gx = cv2.Sobel(f, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(f, cv2.CV_32F, 0, 1, ksize=3)
        return np.sqrt(gx ** 2 + gy ** 2).sum(-1)

    g_out, g_tgt = gradmag(out)[boundary].mean(), gradmag(tgt)[boundary].mean()
    assert abs(g_out - g_tgt) <= 0.2 * g_tgt
    # A naive paste leaves a visible seam, so this check can fail.
    pasted = np.where(mask[..., None], src, tgt)
    assert abs(gradmag(pasted)[boundary].mean() - g_tgt) > 0.2 * g_tgt


images = st.integers(0, 2**31 - 1).map(lambda s: synthetic_pair(48, 56, s))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), cx=st.integers(10, 46), cy=st.integers(10, 38),
       ax=st.integers(2, 20), ay=st.integers(2, 20))
def test_property_source_equal_target_is_fixed_point(seed, cx, cy, ax, ay):
    _, tgt = synthetic_pair(48, 56, seed)
    mask = ellipse_mask(48, 56, cx, cy, ax, ay)
    assert np.array_equal(poisson_blend(tgt.copy(), tgt, mask), tgt)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), c=st.integers(-40, 40), cx=st.integers(14, 42),
       cy=st.integers(14, 34), ax=st.integers(4, 14), ay=st.integers(4, 14))
def test_property_constant_offset_inside_mask_is_invisible(seed, c, cx, cy, ax, ay):
    src, tgt = synthetic_pair(48, 56, seed)
    src = np.clip(src, 50, 200).astype(np.uint8)  # room for the offset without clipping
    mask = ellipse_mask(48, 56, cx, cy, ax, ay)
    shifted = src.astype(int)
    shifted[mask] += c
    shifted = shifted.astype(np.uint8)
    a = poisson_blend(src, tgt, mask).astype(int)
    b = poisson_blend(shifted, tgt, mask).astype(int)
    assert np.abs(a - b).max() <= 1


def test_deterministic_across_thread_counts():
    src, tgt = load_pair("011")
    h, w = tgt.shape[:2]
    mask = ellipse_mask(h, w, w // 2, h // 2, int(0.3 * w), int(0.4 * h))  # large: threads used
    outs = [poisson_blend(src, tgt, mask, threads=t) for t in (1, 2, 3, 8)]
    for o in outs[1:]:
        assert np.array_equal(o, outs[0])


def test_mask_dtypes_agree_and_nonzero_means_inside():
    src, tgt = synthetic_pair()
    mask = ellipse_mask(160, 200, 100, 80, 50, 40)
    a = poisson_blend(src, tgt, mask)
    b = poisson_blend(src, tgt, mask.astype(np.uint8) * 7)
    assert np.array_equal(a, b)


def test_empty_mask_returns_copy_of_target():
    src, tgt = synthetic_pair()
    out = poisson_blend(src, tgt, np.zeros((160, 200), bool))
    assert np.array_equal(out, tgt)
    assert not np.shares_memory(out, tgt)


@pytest.mark.parametrize("region", [np.s_[:, :], np.s_[0:60, :], np.s_[40:120, 150:], np.s_[100:, 0:30]])
def test_mask_touching_image_border(region):
    src, tgt = synthetic_pair()
    mask = np.zeros((160, 200), bool)
    mask[region] = True
    out = poisson_blend(src, tgt, mask)
    assert np.array_equal(out[~mask], tgt[~mask])
    # Masked pixels on the outermost image frame keep the target's value (documented).
    frame = np.zeros_like(mask)
    frame[0, :] = frame[-1, :] = frame[:, 0] = frame[:, -1] = True
    assert np.array_equal(out[mask & frame], tgt[mask & frame])
    # Deep inside, the source's gradients are reproduced.
    inner = cv2.erode(mask.astype(np.uint8), np.ones((21, 21), np.uint8),
                      borderType=cv2.BORDER_CONSTANT, borderValue=0).astype(bool)
    if inner.sum() > 50:
        d_out = np.diff(out.astype(int), axis=1)[inner[:, 1:] & inner[:, :-1]]
        d_src = np.diff(src.astype(int), axis=1)[inner[:, 1:] & inner[:, :-1]]
        assert np.abs(d_out - d_src).mean() < 1.0


# ---------------------------------------------------------------- bad input

def test_bad_dtypes_raise_type_error_naming_argument():
    src, tgt = synthetic_pair()
    mask = ellipse_mask(160, 200, 100, 80, 50, 40)
    with pytest.raises(TypeError, match="source"):
        poisson_blend(src.astype(np.float32), tgt, mask)
    with pytest.raises(TypeError, match="target"):
        poisson_blend(src, tgt.astype(np.uint16), mask)
    with pytest.raises(TypeError, match="mask"):
        poisson_blend(src, tgt, mask.astype(np.float64))
    with pytest.raises(TypeError, match="source"):
        poisson_blend(src.tolist(), tgt, mask)


def test_bad_shapes_raise_value_error():
    src, tgt = synthetic_pair()
    mask = ellipse_mask(160, 200, 100, 80, 50, 40)
    with pytest.raises(ValueError, match="same shape"):
        poisson_blend(src[:100], tgt, mask)
    with pytest.raises(ValueError, match="mask"):
        poisson_blend(src, tgt, mask[:, :100])
    with pytest.raises(ValueError, match="mask"):
        poisson_blend(src, tgt, np.stack([mask] * 3, -1))
    with pytest.raises(ValueError, match="3-channel"):
        poisson_blend(src[..., :2], tgt[..., :2], mask)
    with pytest.raises(ValueError, match="3-channel"):
        poisson_blend(src[..., 0], tgt[..., 0], mask)
    with pytest.raises(ValueError, match="threads"):
        poisson_blend(src, tgt, mask, threads=-1)


def test_non_contiguous_inputs_are_accepted():
    src, tgt = synthetic_pair(160, 400)
    mask = ellipse_mask(160, 400, 100, 80, 50, 40)
    a = poisson_blend(src[:, ::2], tgt[:, ::2], mask[:, ::2])
    b = poisson_blend(np.ascontiguousarray(src[:, ::2]), np.ascontiguousarray(tgt[:, ::2]),
                      np.ascontiguousarray(mask[:, ::2]))
    assert np.array_equal(a, b)


def test_blend_into_a_box_of_a_larger_image_equals_blending_the_box():
    """poisson_blend_into (the synthesizer's in-place path) gives poisson_blend's result in
    the box and leaves every other pixel of the image alone."""
    from affcore import _core
    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)
    x0, y0, h, w = 17, 11, 60, 80
    src = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    mask = np.zeros((h, w), np.uint8)
    mask[10:50, 15:70] = 1
    want = poisson_blend(src, np.ascontiguousarray(image[y0:y0 + h, x0:x0 + w]), mask, threads=1)
    got = image.copy()
    info = _core.poisson_blend_into(src, got, mask, x0, y0, threads=1)
    np.testing.assert_array_equal(got[y0:y0 + h, x0:x0 + w], want)
    outside = np.ones(image.shape[:2], bool)
    outside[y0:y0 + h, x0:x0 + w] = False
    np.testing.assert_array_equal(got[outside], image[outside])
    assert info["unknowns"] > 0
    with pytest.raises(ValueError, match="not inside"):
        _core.poisson_blend_into(src, image.copy(), mask, 50, 40)
    with pytest.raises(TypeError, match="image"):
        _core.poisson_blend_into(src, image[::2], mask, 0, 0)


# ---------------------------------------------------------------- the edge-local solve

def edge_matched_pair(h, w, mask, seed=0, amplitude=30.0, reach=25.0):
    """A target photo and a source that meets it along the mask's edge, as the synthesis
    pipeline's composites do: the source is the target plus a textured change that is
    strong deep inside the mask and fades (not to zero) towards its edge."""
    rng = np.random.default_rng(seed)
    _, tgt = synthetic_pair(h, w, seed)
    inside = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 3)
    fade = 1.0 - np.exp(-inside / reach)
    tex = cv2.GaussianBlur(rng.normal(0, 1, (h, w, 3)), (0, 0), 1.5) * 12
    change = (amplitude * fade[..., None] + tex * (0.2 + fade[..., None])) * mask[..., None]
    src = np.clip(tgt + change, 0, 255).astype(np.uint8)
    return src, tgt


def blend_edge(src, tgt, mask, threads=1):
    from affcore import _core
    out = tgt.copy()
    info = _core.poisson_blend_edge_into(src, out, mask.astype(np.uint8), 0, 0, threads=threads)
    return out, info


@pytest.mark.parametrize("shape,seed", [((300, 260), 0), ((420, 380), 1), ((160, 200), 2)])
def test_edge_blend_is_close_to_the_converged_solve(shape, seed):
    """For a source that meets the target along the mask's edge, one edge-local cycle lands
    within a small fraction of a grey level of the converged solve, changes nothing outside
    the mask and is seamless there."""
    h, w = shape
    mask = irregular_mask(h, w, seed)
    src, tgt = edge_matched_pair(h, w, mask, seed)
    exact = poisson_blend(src, tgt, mask, threads=1, tolerance=1e-6)
    got, info = blend_edge(src, tgt, mask)
    d = np.abs(got.astype(int) - exact.astype(int))[mask]
    assert d.mean() <= 0.25 and d.max() <= 2, (d.mean(), d.max())
    assert np.array_equal(got[~mask], tgt[~mask])
    assert info["unknowns"] > 0 and info["solver"] == "edge"
    # what it solves: not a paste of the source (which would differ from the target by
    # several grey levels just inside the edge)
    edge = mask & ~cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    assert np.abs(got.astype(int) - tgt.astype(int))[edge].mean() < 0.5 * np.abs(
        src.astype(int) - tgt.astype(int))[edge].mean()


def test_edge_blend_is_the_same_for_any_thread_count():
    h, w = 900, 700  # large enough for the thread pool
    mask = irregular_mask(h, w, 4)
    src, tgt = edge_matched_pair(h, w, mask, 4)
    outs = [blend_edge(src, tgt, mask, threads=t)[0] for t in (1, 2, 3)]
    for o in outs[1:]:
        assert o.tobytes() == outs[0].tobytes()


@pytest.mark.parametrize("region", [np.s_[:, :], np.s_[0:60, :], np.s_[40:43, 150:153], np.s_[100:, 0:30]])
def test_edge_blend_small_and_border_masks(region):
    """Masks that touch the image's border, and one so small that its grid is already the
    coarsest: the frame keeps the target, the rest stays close to the converged solve."""
    mask = np.zeros((160, 200), bool)
    mask[region] = True
    src, tgt = edge_matched_pair(160, 200, mask, 5)
    exact = poisson_blend(src, tgt, mask, threads=1, tolerance=1e-6)
    got, _ = blend_edge(src, tgt, mask)
    assert np.array_equal(got[~mask], tgt[~mask])
    assert np.abs(got.astype(int) - exact.astype(int))[mask].mean() <= 0.25


def test_edge_blend_falls_back_to_cg_for_a_source_that_does_not_meet_the_target():
    """A source far from the target along the mask's edge (a plain paste of another
    picture) is beyond one cycle: it is solved to the tolerance, like poisson_blend."""
    src, tgt = synthetic_pair()
    mask = irregular_mask(160, 200, 6)
    got, info = blend_edge(src, tgt, mask)
    assert info["solver"] == "cg"
    assert np.array_equal(got, poisson_blend(src, tgt, mask, threads=1))


def test_edge_blend_of_an_empty_mask_and_bad_arguments():
    from affcore import _core
    src, tgt = synthetic_pair()
    got, info = blend_edge(src, tgt, np.zeros((160, 200), bool))
    assert np.array_equal(got, tgt) and info["unknowns"] == 0
    mask = np.ones((160, 200), np.uint8)
    with pytest.raises(ValueError, match="not inside"):
        _core.poisson_blend_edge_into(src, tgt.copy(), mask, 5, 0)
    with pytest.raises(TypeError, match="image"):
        _core.poisson_blend_edge_into(src, tgt[:, ::2], mask, 0, 0)
    with pytest.raises(ValueError, match="mask"):
        _core.poisson_blend_edge_into(src, tgt.copy(), mask[:, :10], 0, 0)
    with pytest.raises(TypeError, match="source"):
        _core.poisson_blend_edge_into(src.astype(np.float32), tgt.copy(), mask, 0, 0)
    with pytest.raises(ValueError, match="threads"):
        _core.poisson_blend_edge_into(src, tgt.copy(), mask, 0, 0, threads=-1)
    with pytest.raises(ValueError, match="tolerance"):
        _core.poisson_blend_edge_into(src, tgt.copy(), mask, 0, 0, tolerance=0.0)
