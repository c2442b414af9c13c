"""Tests of the CPU renderer primitives (affcore.render) against slow numpy references."""
import cv2
import numpy as np
import pytest
from hypothesis import assume, example, given, settings, strategies as st

from affcore import _core
from affcore.render import interpolate, rasterize, sample_bilinear
from meshes import ict_ortho

SUB = 256  # 1/256 px snapping, part of the documented behaviour
GUARD = 2.0**20


# ----------------------------------------------------------------------------------------
# Reference rasterizer: same conventions, written as directly as possible (cross products
# on snapped integer coordinates, triangles drawn one after another in index order).
# ----------------------------------------------------------------------------------------
def ref_rasterize(vertices, triangles, H, W, w=None, cull_backfaces=False):
    v = vertices.astype(np.float64)
    valid = np.isfinite(v).all(1) & (np.abs(np.nan_to_num(v[:, :2], nan=np.inf)) <= GUARD).all(1)
    if w is not None:
        valid &= np.isfinite(w) & (w > 0)
    fixed = np.zeros((len(v), 2), np.int64)
    fixed[valid] = np.rint(v[valid, :2] * SUB).astype(np.int64)
    tid = np.full((H, W), -1, np.int32)
    bary = np.zeros((H, W, 2), np.float32)
    depth = np.full((H, W), np.inf, np.float32)

    tris = triangles.astype(np.int64)
    P = fixed[tris]  # (T,3,2)
    area = (P[:, 1, 0] - P[:, 0, 0]) * (P[:, 2, 1] - P[:, 0, 1]) - (P[:, 1, 1] - P[:, 0, 1]) * (P[:, 2, 0] - P[:, 0, 0])
    x0 = np.maximum(0, -((-P[:, :, 0].min(1)) // SUB)); x1 = np.minimum(W - 1, P[:, :, 0].max(1) // SUB)
    y0 = np.maximum(0, -((-P[:, :, 1].min(1)) // SUB)); y1 = np.minimum(H - 1, P[:, :, 1].max(1) // SUB)
    ok = valid[tris].all(1) & (area != 0) & (x0 <= x1) & (y0 <= y1)
    if cull_backfaces:
        ok &= area < 0
    for t in np.flatnonzero(ok):
        p = P[t]
        s = 1 if area[t] > 0 else -1
        ys, xs = np.mgrid[y0[t]:y1[t] + 1, x0[t]:x1[t] + 1]
        px, py = xs * SUB, ys * SUB
        cover = np.ones(px.shape, bool)
        e = []
        for i, j in [(1, 2), (2, 0), (0, 1)]:  # edge opposite vertex 0, 1, 2
            dx, dy = s * (p[j, 0] - p[i, 0]), s * (p[j, 1] - p[i, 1])
            ek = dx * (py - p[i, 1]) - dy * (px - p[i, 0])
            top_left = dy < 0 or (dy == 0 and dx > 0)
            cover &= (ek >= 0) if top_left else (ek > 0)
            e.append(ek)
        inv_a = 1.0 / float(abs(area[t]))
        b0, b1, b2 = (ek.astype(np.float64) * inv_a for ek in e)
        z = v[tris[t], 2]
        zf = (z[0] + b1 * (z[1] - z[0]) + b2 * (z[2] - z[0])).astype(np.float32)
        sl = (slice(y0[t], y1[t] + 1), slice(x0[t], x1[t] + 1))
        upd = cover & (zf < depth[sl])
        if w is not None:
            wt = w[tris[t]].astype(np.float64)
            q0, q1, q2 = b0 / wt[0], b1 / wt[1], b2 / wt[2]
            b1, b2 = q1 / (q0 + q1 + q2), q2 / (q0 + q1 + q2)
        depth[sl][upd] = zf[upd]
        tid[sl][upd] = t
        bary[sl][..., 0][upd] = b1[upd]
        bary[sl][..., 1][upd] = b2[upd]
    return tid, bary, depth


def assert_matches_reference(got, ref, bary_tol=1e-4):
    tid, bary, depth = got
    rtid, rbary, rdepth = ref
    differ = tid != rtid
    # The only permitted difference is the winner among exactly tied depths.
    assert np.array_equal(depth, rdepth), "depth differs from reference"
    assert not differ.any(), f"{differ.sum()} pixels with a different triangle"
    np.testing.assert_allclose(bary, rbary, atol=bary_tol, rtol=0)


def random_mesh(rng, H, W, nv, nt, on_grid):
    xy = rng.uniform(-0.3, 1.3, (nv, 2)) * [W, H]
    if on_grid:  # quarter-pixel grid: many pixel centres exactly on edges and vertices
        xy = np.round(xy * 4) / 4
    z = rng.integers(0, 4, nv).astype(np.float64)  # few depth levels: many exact ties
    v = np.column_stack([xy, z]).astype(np.float32)
    t = rng.integers(0, nv, (nt, 3)).astype(np.int32)
    return v, t


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), H=st.integers(1, 40), W=st.integers(1, 40),
       nt=st.integers(0, 40), on_grid=st.booleans(), perspective=st.booleans(), threads=st.integers(1, 4))
def test_rasterize_matches_reference_random(seed, H, W, nt, on_grid, perspective, threads):
    rng = np.random.default_rng(seed)
    v, t = random_mesh(rng, H, W, 12, nt, on_grid)
    w = rng.uniform(0.5, 3.0, len(v)).astype(np.float32) if perspective else None
    got = rasterize(v, t, H, W, w=w, threads=threads)
    assert got.triangle_id.dtype == np.int32 and got.barycentrics.dtype == np.float32
    assert got.triangle_id.shape == (H, W) and got.barycentrics.shape == (H, W, 2) and got.depth.shape == (H, W)
    assert_matches_reference(got, ref_rasterize(v, t, H, W, w=w))


def test_rasterize_single_triangle_fill_rule():
    # Pixel centres on the top (y=1) and left (x=1) edges are in; on the hypotenuse out.
    v = np.array([[1, 1, 0], [10, 1, 0], [1, 10, 0]], np.float32)
    tid = rasterize(v, np.array([[0, 1, 2]], np.int32), 12, 12).triangle_id
    ys, xs = np.nonzero(tid == 0)
    assert (xs >= 1).all() and (ys >= 1).all() and (xs + ys < 11).all()
    assert (tid == 0).sum() == sum(range(1, 10))
    # Same result for the other winding.
    tid2 = rasterize(v, np.array([[0, 2, 1]], np.int32), 12, 12).triangle_id
    assert np.array_equal(tid, tid2)


def test_rasterize_barycentrics_and_depth_values():
    v = np.array([[0, 0, 1], [8, 0, 2], [0, 8, 3]], np.float32)
    tid, bary, depth = rasterize(v, np.array([[0, 1, 2]], np.int32), 9, 9)
    # Pixel (row 2, col 4) is at (x=4, y=2): b1 = x/8, b2 = y/8.
    assert tid[2, 4] == 0
    np.testing.assert_allclose(bary[2, 4], [0.5, 0.25], atol=1e-7)
    np.testing.assert_allclose(depth[2, 4], 1 + 0.5 * 1 + 0.25 * 2, atol=1e-6)
    assert np.isinf(depth[8, 8]) and tid[8, 8] == -1 and (bary[8, 8] == 0).all()


def test_rasterize_nearest_wins_and_ties_lowest_index():
    quad = np.array([[-1, -1], [9, -1], [9, 9], [-1, 9]], np.float32)
    v = np.concatenate([np.column_stack([quad, np.full(4, 5.0)]),
                        np.column_stack([quad, np.full(4, 2.0)]),
                        np.column_stack([quad, np.full(4, 2.0)])]).astype(np.float32)
    t = np.array([[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7], [8, 9, 10], [8, 10, 11]], np.int32)
    tid, _, depth = rasterize(v, t, 8, 8)
    assert set(np.unique(tid)) == {2, 3}  # nearer (2.0) beats 5.0; tie 2 vs 4, 3 vs 5 -> lower
    assert (depth == 2.0).all()
    # Reversed draw order still gives the lowest index on ties.
    tid_r, _, _ = rasterize(v, t[::-1].copy(), 8, 8)
    assert set(np.unique(tid_r)) == {0, 1}  # indices of the rows [8,10,11],[8,9,10] reversed


def jittered_grid_mesh(rng, nx, ny, cell, origin, flip_prob=0.5):
    """A grid of nx x ny cells, interior vertices jittered, each cell split along a random
    diagonal, each triangle's winding flipped with flip_prob. A jitter that folds a triangle
    over its neighbour (hypothesis found one: seed 2461643, 6 x 6 cells of 3 px) makes a
    mesh that rightly covers a pixel twice, so such a draw is drawn again."""
    while True:
        gx, gy = np.meshgrid(np.arange(nx + 1), np.arange(ny + 1))
        xy = np.column_stack([gx.ravel(), gy.ravel()]).astype(np.float64) * cell + origin
        interior = ((gx > 0) & (gx < nx) & (gy > 0) & (gy < ny)).ravel()
        xy[interior] += rng.uniform(-0.3, 0.3, (interior.sum(), 2)) * cell
        xy = np.round(xy * 2) / 2  # half-pixel grid: lots of edges and vertices exactly on centres
        tris, unflipped = [], []
        for j in range(ny):
            for i in range(nx):
                a, b, c, d = j * (nx + 1) + i, j * (nx + 1) + i + 1, (j + 1) * (nx + 1) + i + 1, (j + 1) * (nx + 1) + i
                pair = [(a, b, c), (a, c, d)] if rng.random() < 0.5 else [(a, b, d), (b, c, d)]
                for tri in pair:
                    unflipped.append(tri)
                    tris.append(tri[::-1] if rng.random() < flip_prob else tri)
        p = xy[np.array(unflipped)]
        e1, e2 = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]
        area = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
        if (area > 0).all():  # the grid's own winding everywhere: nothing folded
            return xy, np.array(tris, np.int32)


def coverage_count(xy, tris, H, W, threads=1):
    v = np.column_stack([xy, np.zeros(len(xy))]).astype(np.float32)
    count = np.zeros((H, W), np.int32)
    for t in tris:
        count += rasterize(v, t[None].astype(np.int32), H, W, threads=threads).triangle_id >= 0
    return count


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), nx=st.integers(1, 6), ny=st.integers(1, 6), cell=st.sampled_from([2.0, 3.0, 4.5]))
@example(seed=2461643, nx=6, ny=6, cell=3.0)  # its first jitter folded the mesh (jittered_grid_mesh)
def test_watertight_jittered_grid(seed, nx, ny, cell):
    rng = np.random.default_rng(seed)
    origin = np.array([2.0, 3.0])
    xy, tris = jittered_grid_mesh(rng, nx, ny, cell, origin)
    H, W = int(origin[1] + ny * cell) + 4, int(origin[0] + nx * cell) + 4
    count = coverage_count(xy, tris, H, W)
    assert count.max() <= 1, "a pixel was drawn by two triangles"
    ys, xs = np.mgrid[0:H, 0:W]
    x0, y0 = origin
    x1, y1 = origin + [nx * cell, ny * cell]
    # Whole region: top/left borders included, bottom/right excluded (top-left rule).
    inside = (xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1)
    assert np.array_equal(count == 1, inside), "gap or spill in a mesh that tiles a rectangle"


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(3, 12))
def test_watertight_fan_around_pixel_centre(seed, n):
    # A closed fan of triangles around a vertex sitting exactly on a pixel centre: the
    # centre pixel must be drawn exactly once, as must every other pixel inside the fan.
    rng = np.random.default_rng(seed)
    step = 2 * np.pi / n
    angles = np.arange(n) * step + rng.uniform(0, 0.5 * step, n) + rng.uniform(0, 2 * np.pi)
    rim = np.column_stack([np.cos(angles), np.sin(angles)]) * rng.uniform(3, 8, (n, 1))
    rim = np.round(rim * 2) / 2
    # Snapping the rim to the half-pixel grid must keep the spokes in angular order with
    # every sector < 180 degrees, or the "fan" folds over itself.
    gaps = np.diff(np.unwrap(np.arctan2(rim[:, 1], rim[:, 0])))
    assume(np.all(gaps > 1e-6) and gaps.sum() < 2 * np.pi and 2 * np.pi - gaps.sum() < np.pi and np.all(gaps < np.pi))
    centre = np.array([10.0, 10.0])
    xy = np.vstack([centre, centre + rim])
    tris = np.array([[0, 1 + k, 1 + (k + 1) % n] for k in range(n)], np.int32)
    flip = rng.random(n) < 0.5
    tris[flip] = tris[flip][:, ::-1]
    count = coverage_count(xy, tris, 21, 21)
    assert count.max() <= 1
    assert count[10, 10] == 1


def test_watertight_full_mesh_no_holes_and_reference():
    rng = np.random.default_rng(7)
    xy, tris = jittered_grid_mesh(rng, 12, 10, 3.5, np.array([1.0, 1.0]))
    v = np.column_stack([xy, rng.uniform(0, 1, len(xy))]).astype(np.float32)
    tid, _, _ = got = rasterize(v, tris, 40, 46)
    ys, xs = np.mgrid[0:40, 0:46]
    inside = (xs >= 1) & (xs < 43) & (ys >= 1) & (ys < 36)
    assert np.array_equal(tid >= 0, inside)
    assert_matches_reference(got, ref_rasterize(v, tris, 40, 46))


# ---------------------------------------------------------------------------- ICT mesh
def test_ict_matches_reference(ict_mesh):
    verts, tris = ict_mesh
    v = ict_ortho(verts, 200)
    got = rasterize(v, tris, 200, 200)
    assert (got.triangle_id >= 0).mean() > 0.3
    assert_matches_reference(got, ref_rasterize(v, tris, 200, 200))


def test_ict_cull_backfaces(ict_mesh):
    verts, tris = ict_mesh
    v = ict_ortho(verts, 200)
    full = rasterize(v, tris, 200, 200).triangle_id
    culled = rasterize(v, tris, 200, 200, cull_backfaces=True).triangle_id
    # The visible surface of a closed-ish head faces the viewer: culling changes little...
    covered = full >= 0
    assert (culled[covered] == full[covered]).mean() > 0.97
    # ...whereas culling the other winding removes it.
    flipped = rasterize(v, tris[:, ::-1].copy(), 200, 200, cull_backfaces=True).triangle_id
    assert (flipped[covered] == full[covered]).mean() < 0.2
    assert_matches_reference(rasterize(v, tris, 200, 200, cull_backfaces=True),
                             ref_rasterize(v, tris, 200, 200, cull_backfaces=True))


@pytest.mark.parametrize("size", [97, 512])
def test_thread_count_determinism_ict(ict_mesh, size):
    verts, tris = ict_mesh
    v = ict_ortho(verts, size)
    w = (50.0 + v[:, 2]).astype(np.float32)
    base = rasterize(v, tris, size, size + 3, w=w, threads=1)
    for threads in (2, 3, 5, 16):
        other = rasterize(v, tris, size, size + 3, w=w, threads=threads)
        for a, b in zip(base, other):
            assert a.tobytes() == b.tobytes()


def test_thread_count_determinism_random():
    rng = np.random.default_rng(3)
    v, t = random_mesh(rng, 300, 200, 500, 3000, on_grid=True)
    base = rasterize(v, t, 300, 200, threads=1)
    for threads in (2, 4, 7):
        assert all(a.tobytes() == b.tobytes() for a, b in zip(base, rasterize(v, t, 300, 200, threads=threads)))


# ------------------------------------------------------------------------- perspective
def test_perspective_correct_plane():
    # A tilted plane in camera space (x right, y down, z forward), pinhole projection.
    f, cx, cy, H, W = 120.0, 64.0, 48.0, 96, 128
    origin = np.array([-1.0, -0.8, 2.0])
    e1, e2 = np.array([2.0, 0.0, 3.0]), np.array([0.0, 1.6, 0.5])
    uv = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float64)
    P = origin + uv[:, :1] * e1 + uv[:, 1:] * e2
    x = f * P[:, 0] / P[:, 2] + cx
    y = f * P[:, 1] / P[:, 2] + cy
    v = np.column_stack([x, y, P[:, 2]]).astype(np.float32)
    w = P[:, 2].astype(np.float32)
    tris = np.array([[0, 1, 2], [0, 2, 3]], np.int32)
    tid, bary, _ = rasterize(v, tris, H, W, w=w)
    got = interpolate(uv.astype(np.float32), tris, tid, bary)
    ys, xs = np.nonzero(tid >= 0)
    assert len(ys) > 2000
    # Analytic: intersect each pixel's ray with the plane.
    d = np.column_stack([(xs - cx) / f, (ys - cy) / f, np.ones(len(xs))])
    M = np.stack([np.broadcast_to(e1, d.shape), np.broadcast_to(e2, d.shape), -d], axis=2)
    sol = np.linalg.solve(M, -np.broadcast_to(origin, d.shape)[..., None])[..., 0]
    np.testing.assert_allclose(got[ys, xs], sol[:, :2], atol=2e-3)
    # The affine (w=None) result is measurably wrong for this plane, so the test can fail.
    tid_a, bary_a, _ = rasterize(v, tris, H, W)
    affine = interpolate(uv.astype(np.float32), tris, tid_a, bary_a)
    assert np.abs(affine[ys, xs] - sol[:, :2]).max() > 0.05


# ------------------------------------------------------------------------- interpolate
@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), C=st.integers(1, 5), threads=st.integers(1, 3))
def test_interpolate_matches_numpy(seed, C, threads):
    rng = np.random.default_rng(seed)
    v, t = random_mesh(rng, 30, 25, 20, 15, on_grid=False)
    tid, bary, _ = rasterize(v, t, 30, 25)
    attr = rng.normal(size=(len(v), C)).astype(np.float32)
    got = interpolate(attr, t, tid, bary, threads=threads)
    assert got.shape == (30, 25, C) and got.dtype == np.float32
    b = bary.astype(np.float64)
    tri = t[np.maximum(tid, 0)]
    ref = ((1 - b[..., :1] - b[..., 1:]) * attr[tri[..., 0]] + b[..., :1] * attr[tri[..., 1]]
           + b[..., 1:] * attr[tri[..., 2]])
    ref[tid < 0] = 0
    np.testing.assert_allclose(got, ref, atol=1e-5)
    assert (got[tid < 0] == 0).all()


# ---------------------------------------------------------------------- sample_bilinear
def ref_sample(image, coords, mask=None):
    img = image.astype(np.float64)
    if img.ndim == 2:
        img = img[..., None]
    H, W = img.shape[:2]
    x = np.clip(np.nan_to_num(coords[..., 0].astype(np.float64)), 0, W - 1)
    y = np.clip(np.nan_to_num(coords[..., 1].astype(np.float64)), 0, H - 1)
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    x1, y1 = np.minimum(x0 + 1, W - 1), np.minimum(y0 + 1, H - 1)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    out = (img[y0, x0] * (1 - fx) * (1 - fy) + img[y0, x1] * fx * (1 - fy)
           + img[y1, x0] * (1 - fx) * fy + img[y1, x1] * fx * fy)
    bad = np.isnan(coords).any(-1)
    if mask is not None:
        bad |= ~mask
    out[bad] = 0
    return out if image.ndim == 3 else out[..., 0]


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), dtype=st.sampled_from([np.uint8, np.float32]),
       C=st.sampled_from([0, 1, 3]), threads=st.integers(1, 3))
def test_sample_bilinear_matches_numpy(seed, dtype, C, threads):
    rng = np.random.default_rng(seed)
    H, W = rng.integers(1, 20, 2)
    shape = (H, W) if C == 0 else (H, W, C)
    image = (rng.integers(0, 256, shape) if dtype == np.uint8 else rng.normal(size=shape)).astype(dtype)
    coords = rng.uniform(-3, max(H, W) + 3, (7, 9, 2)).astype(np.float32)
    coords[0, 0] = [np.nan, 1]
    coords[0, 1] = [np.inf, -np.inf]
    coords[0, 2] = [1e30, -1e30]
    mask = rng.random((7, 9)) < 0.8
    for m in (None, mask):
        got = sample_bilinear(image, coords, m, threads=threads)
        assert got.dtype == np.float32 and got.shape == (7, 9) + shape[2:]
        np.testing.assert_allclose(got, ref_sample(image, coords, m), atol=1e-3, rtol=1e-5)
    assert (sample_bilinear(image, coords, mask)[~mask] == 0).all()


def test_sample_bilinear_matches_cv2_remap():
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 1, (40, 50, 3)).astype(np.float32)
    coords = rng.uniform(-5, 55, (30, 35, 2)).astype(np.float32)
    got = sample_bilinear(image, coords)
    ref = cv2.remap(image, coords[..., 0], coords[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    # cv2 quantizes the interpolation weights to 1/32, hence the tolerance.
    np.testing.assert_allclose(got, ref, atol=1 / 16)
    assert np.abs(got - ref).mean() < 0.01
    # Integer coordinates hit pixel centres exactly (convention: pixel [i, j] at (j, i)).
    ij = np.stack(np.meshgrid(np.arange(50), np.arange(40)), -1).astype(np.float32)
    assert np.array_equal(sample_bilinear(image, ij), image)


# --------------------------------------------------------------------- bad inputs / edges
V3 = np.zeros((3, 3), np.float32)
T1 = np.array([[0, 1, 2]], np.int32)


@pytest.mark.parametrize("kwargs, exc, name", [
    (dict(vertices=V3.astype(np.float64)), TypeError, "vertices"),
    (dict(vertices=[[0, 0, 0]] * 3), TypeError, "vertices"),
    (dict(triangles=T1.astype(np.int64)), TypeError, "triangles"),
    (dict(vertices=np.zeros((3, 2), np.float32)), ValueError, "vertices"),
    (dict(triangles=np.zeros((1, 4), np.int32)), ValueError, "triangles"),
    (dict(triangles=np.array([[0, 1, 3]], np.int32)), ValueError, "triangles"),
    (dict(triangles=np.array([[0, -1, 2]], np.int32)), ValueError, "triangles"),
    (dict(height=0), ValueError, "height"),
    (dict(width=-5), ValueError, "width"),
    (dict(width=40000), ValueError, "width"),
    (dict(w=np.ones(3, np.float64)), TypeError, "w"),
    (dict(w=np.ones(4, np.float32)), ValueError, "w"),
    (dict(threads=-1), ValueError, "threads"),
])
def test_rasterize_bad_inputs(kwargs, exc, name):
    args = dict(vertices=V3, triangles=T1, height=8, width=8)
    args.update(kwargs)
    pos = [args.pop(k) for k in ("vertices", "triangles", "height", "width")]
    with pytest.raises(exc, match=name):
        rasterize(*pos, **args)


def test_rasterize_hostile_geometry_does_not_crash():
    nan, inf = np.nan, np.inf
    v = np.array([[1, 1, 0], [30, 2, 0], [2, 30, 0],        # ok: 0
                  [nan, 1, 0], [inf, 5, 0], [1, 1, nan],    # non-finite
                  [1e7, 1e7, 0], [-1e30, 3, 0],             # beyond the guard band
                  [-1000, -1000, 0], [2000, -900, 0], [-900, 2000, 0],  # huge, covers screen
                  [5, 5, 0], [5, 5, 0], [6, 6, 0]], np.float32)       # degenerate
    t = np.array([[3, 1, 2], [0, 4, 2], [0, 1, 5], [6, 1, 2], [7, 1, 2], [11, 12, 13], [0, 1, 2], [8, 9, 10]],
                 np.int32)
    tid, bary, depth = rasterize(v, t, 16, 16)
    assert set(np.unique(tid)) == {6, 7}  # only the valid triangle and the screen-filling one
    assert tid[2, 2] == 6 and tid[0, 0] == 7  # equal depth: lower index wins where both cover
    tid2, _, _ = rasterize(v, t[[0, 1, 2, 3, 4, 5, 7]], 16, 16)
    assert (tid2 == 6).all()  # the screen-filling, partly off-screen triangle covers everything
    w = np.ones(len(v), np.float32)
    w[0] = -1
    tid3, _, _ = rasterize(v, t[[6]], 16, 16, w=w)
    assert (tid3 == -1).all()  # w <= 0: skipped
    assert_matches_reference((tid, bary, depth), ref_rasterize(v, t, 16, 16))


def test_rasterize_empty_and_tiny():
    tid, bary, depth = rasterize(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int32), 1, 1)
    assert tid[0, 0] == -1 and np.isinf(depth[0, 0])


@pytest.mark.parametrize("call, exc, name", [
    (lambda: interpolate(np.zeros((3, 2), np.float64), T1, np.full((2, 2), -1, np.int32), np.zeros((2, 2, 2), np.float32)), TypeError, "attributes"),
    (lambda: interpolate(np.zeros((3, 2), np.float32), T1, np.full((2, 2), 1, np.int32), np.zeros((2, 2, 2), np.float32)), ValueError, "triangle_id"),
    (lambda: interpolate(np.zeros((3, 2), np.float32), T1, np.full((2, 2), -2, np.int32), np.zeros((2, 2, 2), np.float32)), ValueError, "triangle_id"),
    (lambda: interpolate(np.zeros((3, 2), np.float32), T1, np.full((2, 2), 0, np.int32), np.zeros((2, 3, 2), np.float32)), ValueError, "barycentrics"),
    (lambda: interpolate(np.zeros((2, 2), np.float32), T1, np.full((2, 2), 0, np.int32), np.zeros((2, 2, 2), np.float32)), ValueError, "triangles"),
    (lambda: interpolate(np.zeros((3, 2), np.float32), T1, np.full((2, 2), 0, np.int64), np.zeros((2, 2, 2), np.float32)), TypeError, "triangle_id"),
    (lambda: sample_bilinear(np.zeros((4, 4, 3), np.float64), np.zeros((2, 2, 2), np.float32)), TypeError, "image"),
    (lambda: sample_bilinear(np.zeros((4, 4, 3), np.uint16), np.zeros((2, 2, 2), np.float32)), TypeError, "image"),
    (lambda: sample_bilinear(np.zeros((0, 4, 3), np.uint8), np.zeros((2, 2, 2), np.float32)), ValueError, "image"),
    (lambda: sample_bilinear(np.zeros((4,), np.uint8), np.zeros((2, 2, 2), np.float32)), ValueError, "image"),
    (lambda: sample_bilinear(np.zeros((4, 4), np.uint8), np.zeros((2, 2, 3), np.float32)), ValueError, "coords"),
    (lambda: sample_bilinear(np.zeros((4, 4), np.uint8), np.zeros((2, 2, 2), np.float64)), TypeError, "coords"),
    (lambda: sample_bilinear(np.zeros((4, 4), np.uint8), np.zeros((2, 2, 2), np.float32), np.ones((2, 2), np.uint8)), TypeError, "mask"),
    (lambda: sample_bilinear(np.zeros((4, 4), np.uint8), np.zeros((2, 2, 2), np.float32), np.ones((2, 3), bool)), ValueError, "mask"),
    (lambda: _core._anchor_rasterize_bbox(np.full((3, 3), np.nan, np.float32), T1, 4, 4), ValueError, "vertices"),
])
def test_interpolate_sample_bad_inputs(call, exc, name):
    with pytest.raises(exc, match=name):
        call()


def test_anchor_agrees_away_from_edges(ict_mesh):
    # The benchmark anchor must do comparable work: same visible triangles almost everywhere
    # (it differs only on pixel centres exactly on edges and in float rounding).
    verts, tris = ict_mesh
    v = ict_ortho(verts, 256)
    ours = rasterize(v, tris, 256, 256).triangle_id
    anchor, _, _ = _core._anchor_rasterize_bbox(v, tris, 256, 256)
    assert (ours == anchor).mean() > 0.97
