"""CUDA paths (device="cuda") against the CPU, and the run-time device selection.

Two groups:
* Tests marked ``needs_gpu`` compare GPU and CPU outputs; they run only where the CUDA
  kernels are compiled in and a device is present (``affcore._device.cuda_available()``),
  and skip with the reason otherwise. They also run against the test-only host emulation of
  the kernels (CMake ``-DAFFCORE_CUDA_EMULATION=ON``, see docs/cuda.md).
* The others run everywhere: what ``build_info`` reports, the clear RuntimeError for
  ``device="cuda"`` without CUDA, ``"auto"`` falling back to the CPU, ValueError for an unknown
  device, and the CPU batch functions against per-item calls.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest

import affcore
from affcore import _core
from affcore._device import cuda_available, resolve_device
from affcore.blend import poisson_blend, poisson_blend_batch
from affcore.render import (interpolate, interpolate_batch, rasterize, rasterize_batch, sample_bilinear,
                            sample_bilinear_batch)
from meshes import ict_ortho

INFO = affcore.build_info()
REASON = _core.cuda_unavailable_reason()
needs_gpu = pytest.mark.skipif(REASON is not None, reason=f"GPU tests need CUDA: {REASON}")
needs_no_gpu = pytest.mark.skipif(REASON is None, reason="a CUDA device is present: 'auto' means the GPU here")


# ------------------------------------------------------------------------------ inputs
def random_mesh(rng, H, W, nv, nt, on_grid):
    xy = rng.uniform(-0.3, 1.3, (nv, 2)) * [W, H]
    if on_grid:  # quarter-pixel grid: many pixel centres exactly on edges and vertices
        xy = np.round(xy * 4) / 4
    z = rng.integers(0, 4, nv).astype(np.float64)  # few depth levels: many exact ties
    return np.column_stack([xy, z]).astype(np.float32), rng.integers(0, nv, (nt, 3)).astype(np.int32)


def ellipse_mask(h, w, cx, cy, ax, ay):
    m = np.zeros((h, w), np.uint8)
    cv2.ellipse(m, (cx, cy), (ax, ay), 0, 0, 360, 255, -1)
    return m > 0


def blend_case(h, w, seed):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([60 + 0.5 * xx, 80 + 0.4 * yy, 120 + 0.2 * (xx + yy)], -1)
    tgt = np.clip(base + rng.normal(0, 4, (h, w, 3)), 0, 255).astype(np.uint8)
    tex = cv2.GaussianBlur(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), (0, 0), 2.0)
    src = np.clip(tex.astype(float) * 0.8 + rng.uniform(20, 100), 0, 255).astype(np.uint8)
    mask = ellipse_mask(h, w, w // 2 + int(rng.integers(-8, 9)), h // 2 + int(rng.integers(-8, 9)),
                        int(w * rng.uniform(0.2, 0.35)), int(h * rng.uniform(0.25, 0.4)))
    return src, tgt, mask


def assert_raster_close(gpu, cpu):
    """Triangle ids identical; barycentrics within 1e-5; depth equal where drawn."""
    (gt, gb, gd), (ct, cb, cd) = gpu, cpu
    assert gt.shape == ct.shape and gb.shape == cb.shape and gd.shape == cd.shape
    assert gt.dtype == np.int32 and gb.dtype == np.float32 and gd.dtype == np.float32
    differ = gt != ct
    assert not differ.any(), f"{differ.sum()} pixels with a different triangle"
    np.testing.assert_allclose(gb, cb, atol=1e-5, rtol=0)
    assert np.array_equal(np.isinf(gd), np.isinf(cd))
    np.testing.assert_allclose(gd[np.isfinite(cd)], cd[np.isfinite(cd)], rtol=1e-6, atol=0)


# ---------------------------------------------------------------- runs everywhere
def test_build_info_reports_cuda():
    assert isinstance(INFO["cuda"], bool)
    assert "cuda_device" in INFO and "cuda_architectures" in INFO
    if INFO["cuda"]:
        assert INFO["cuda_architectures"], "CUDA compiled in but no architectures recorded"
    else:
        assert INFO["cuda_architectures"] == ""
        assert INFO["cuda_device"] is None
        assert "built without CUDA" in REASON
    # cuda_device is a runtime check: a name exactly when a device can be used.
    assert (INFO["cuda_device"] is None) == (REASON is not None)
    assert cuda_available() == (REASON is None)


@needs_no_gpu
def test_device_cuda_without_gpu_raises_clear_runtime_error():
    v, t = random_mesh(np.random.default_rng(0), 8, 8, 6, 4, False)
    expected = "built without CUDA" if not INFO["cuda"] else "no CUDA device"
    calls = [
        lambda: rasterize(v, t, 8, 8, device="cuda"),
        lambda: rasterize_batch(v[None], t, 8, 8, device="cuda"),
        lambda: interpolate(v, t, np.full((8, 8), -1, np.int32), np.zeros((8, 8, 2), np.float32), device="cuda"),
        lambda: sample_bilinear(np.zeros((4, 4), np.float32), np.zeros((2, 2, 2), np.float32), device="cuda"),
        lambda: poisson_blend(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 3), np.uint8),
                              np.zeros((8, 8), bool), device="cuda"),
        lambda: poisson_blend_batch(np.zeros((1, 8, 8, 3), np.uint8), np.zeros((1, 8, 8, 3), np.uint8),
                                    np.zeros((1, 8, 8), bool), device="cuda"),
        # The raw bindings raise too (never crash) when called directly.
        lambda: _core.cuda_rasterize_batch(v[None], t, 8, 8),
    ]
    for call in calls:
        with pytest.raises(RuntimeError, match=expected):
            call()


@needs_no_gpu
def test_auto_falls_back_to_cpu_identically():
    assert resolve_device("auto") == "cpu"
    rng = np.random.default_rng(1)
    v, t = random_mesh(rng, 30, 40, 20, 30, True)
    a, c = rasterize(v, t, 30, 40), rasterize(v, t, 30, 40, device="cpu")
    for x, y in zip(a, c):
        assert x.tobytes() == y.tobytes()
    attrs = rng.normal(size=(20, 3)).astype(np.float32)
    assert np.array_equal(interpolate(attrs, t, c.triangle_id, c.barycentrics),
                          interpolate(attrs, t, c.triangle_id, c.barycentrics, device="cpu"))
    img = rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)
    coords = rng.uniform(-2, 22, (5, 6, 2)).astype(np.float32)
    assert np.array_equal(sample_bilinear(img, coords), sample_bilinear(img, coords, device="cpu"))
    src, tgt, mask = blend_case(60, 70, 2)
    assert np.array_equal(poisson_blend(src, tgt, mask), poisson_blend(src, tgt, mask, device="cpu"))


@pytest.mark.parametrize("device", ["gpu", "CUDA", "", None, 0, "cuda:0"])
def test_invalid_device_is_value_error(device):
    v, t = random_mesh(np.random.default_rng(0), 8, 8, 6, 4, False)
    with pytest.raises(ValueError, match="device"):
        rasterize(v, t, 8, 8, device=device)
    with pytest.raises(ValueError, match="device"):
        rasterize_batch(v[None], t, 8, 8, device=device)
    with pytest.raises(ValueError, match="device"):
        interpolate(v, t, np.full((8, 8), -1, np.int32), np.zeros((8, 8, 2), np.float32), device=device)
    with pytest.raises(ValueError, match="device"):
        sample_bilinear(np.zeros((4, 4), np.float32), np.zeros((2, 2, 2), np.float32), device=device)
    with pytest.raises(ValueError, match="device"):
        poisson_blend(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), bool),
                      device=device)


def test_cpu_batch_functions_equal_per_item_calls():
    rng = np.random.default_rng(5)
    B, H, W = 3, 25, 31
    meshes = [random_mesh(rng, H, W, 15, 25, True) for _ in range(B)]
    t = meshes[0][1]
    v = np.stack([m[0] for m in meshes])
    wv = rng.uniform(0.5, 2, (B, 15)).astype(np.float32)
    r = rasterize_batch(v, t, H, W, w=wv, device="cpu")
    assert r.triangle_id.shape == (B, H, W) and r.barycentrics.shape == (B, H, W, 2)
    attrs = rng.normal(size=(B, 15, 4)).astype(np.float32)
    out = interpolate_batch(attrs, t, r.triangle_id, r.barycentrics, device="cpu")
    imgs = rng.uniform(0, 1, (B, 9, 11, 2)).astype(np.float32)
    coords = rng.uniform(-1, 12, (B, 4, 5, 2)).astype(np.float32)
    mask = rng.uniform(size=(B, 4, 5)) > 0.3
    smp = sample_bilinear_batch(imgs, coords, mask, device="cpu")
    cases = [blend_case(40, 50, s) for s in range(B)]
    blended = poisson_blend_batch(*(np.stack([c[k] for c in cases]) for k in range(3)), device="cpu")
    for b in range(B):
        one = rasterize(v[b], t, H, W, w=wv[b], device="cpu")
        for x, y in zip(one, (r.triangle_id[b], r.barycentrics[b], r.depth[b])):
            assert np.array_equal(x, y)
        assert np.array_equal(out[b], interpolate(attrs[b], t, one.triangle_id, one.barycentrics, device="cpu"))
        assert np.array_equal(smp[b], sample_bilinear(imgs[b], coords[b], mask[b], device="cpu"))
        assert np.array_equal(blended[b], poisson_blend(*cases[b], device="cpu"))


# ---------------------------------------------------------------- GPU vs CPU
@needs_gpu
@pytest.mark.parametrize("seed", range(12))
def test_gpu_rasterize_matches_cpu_random(seed):
    rng = np.random.default_rng(seed)
    H, W = int(rng.integers(1, 60)), int(rng.integers(1, 60))
    B = int(rng.integers(1, 5))
    perspective, cull, on_grid = bool(seed & 1), bool(seed & 2), bool(seed & 4)
    v = np.stack([random_mesh(rng, H, W, 14, 1, on_grid)[0] for _ in range(B)])
    t = rng.integers(0, 14, (int(rng.integers(0, 60)), 3)).astype(np.int32)
    if seed % 3 == 0 and len(t):  # huge triangles (the one-block-per-triangle path) and bad vertices
        v[:, 0, :2] = [-5 * W, -5 * H]
        v[:, 1, 0] = np.nan
    w = rng.uniform(0.5, 3.0, (B, 14)).astype(np.float32) if perspective else None
    gpu = rasterize_batch(v, t, H, W, w=w, cull_backfaces=cull, device="cuda")
    cpu = rasterize_batch(v, t, H, W, w=w, cull_backfaces=cull, device="cpu")
    assert_raster_close(gpu, cpu)
    # Single-mesh entry point too.
    assert_raster_close(rasterize(v[0], t, H, W, w=None if w is None else w[0], cull_backfaces=cull, device="cuda"),
                        rasterize(v[0], t, H, W, w=None if w is None else w[0], cull_backfaces=cull, device="cpu"))


@needs_gpu
def test_gpu_rasterize_ties_go_to_lowest_index():
    quad = np.array([[-1, -1], [9, -1], [9, 9], [-1, 9]], np.float32)
    v = np.concatenate([np.column_stack([quad, np.full(4, 5.0)]), np.column_stack([quad, np.full(4, 2.0)]),
                        np.column_stack([quad, np.full(4, 2.0)])]).astype(np.float32)
    t = np.array([[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7], [8, 9, 10], [8, 10, 11]], np.int32)
    tid, _, depth = rasterize(v, t, 8, 8, device="cuda")
    assert set(np.unique(tid)) == {2, 3} and (depth == 2.0).all()
    tid_r, _, _ = rasterize(v, t[::-1].copy(), 8, 8, device="cuda")
    assert set(np.unique(tid_r)) == {0, 1}
    # -0.0 and +0.0 are a tie, as in the CPU's depth test.
    v2 = v.copy()
    v2[4:8, 2] = -0.0
    v2[8:12, 2] = 0.0
    assert_raster_close(rasterize(v2, t, 8, 8, device="cuda"), rasterize(v2, t, 8, 8, device="cpu"))


@needs_gpu
@pytest.mark.parametrize("size", [128, 256])
def test_gpu_rasterize_ict_batch_matches_cpu(ict_mesh, size):
    verts, tris = ict_mesh
    rng = np.random.default_rng(size)
    B = 3
    v = np.stack([ict_ortho(verts, size, rng) for _ in range(B)])
    w = (60.0 + v[..., 2]).astype(np.float32)
    for ww in (None, w):
        assert_raster_close(rasterize_batch(v, tris, size, size + 7, w=ww, device="cuda"),
                            rasterize_batch(v, tris, size, size + 7, w=ww, device="cpu"))


@needs_gpu
@pytest.mark.parametrize("per_mesh", [False, True])
def test_gpu_interpolate_matches_cpu(per_mesh):
    rng = np.random.default_rng(11)
    B, H, W, V, C = 3, 33, 41, 30, 5
    v = np.stack([random_mesh(rng, H, W, V, 1, False)[0] for _ in range(B)])
    t = rng.integers(0, V, (80, 3)).astype(np.int32)
    r = rasterize_batch(v, t, H, W, device="cpu")
    attrs = rng.normal(size=(B, V, C) if per_mesh else (V, C)).astype(np.float32)
    gpu = interpolate_batch(attrs, t, r.triangle_id, r.barycentrics, device="cuda")
    cpu = interpolate_batch(attrs, t, r.triangle_id, r.barycentrics, device="cpu")
    assert gpu.shape == (B, H, W, C)
    np.testing.assert_allclose(gpu, cpu, atol=1e-5, rtol=0)
    one = interpolate(attrs[0] if per_mesh else attrs, t, r.triangle_id[0], r.barycentrics[0], device="cuda")
    np.testing.assert_allclose(one, cpu[0], atol=1e-5, rtol=0)


@needs_gpu
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize("C", [0, 1, 3])
def test_gpu_sample_bilinear_matches_cpu(dtype, C):
    rng = np.random.default_rng(C)
    B, IH, IW = 2, 17, 23
    shape = (B, IH, IW) + ((C,) if C else ())
    imgs = (rng.integers(0, 256, shape).astype(np.uint8) if dtype == np.uint8
            else rng.uniform(-5, 5, shape).astype(np.float32))
    coords = rng.uniform(-3, 26, (B, 9, 10, 2)).astype(np.float32)
    coords[0, 0, 0] = [np.nan, 1]
    coords[0, 0, 1] = [np.inf, -np.inf]
    coords[1, 2, :, :] = np.round(coords[1, 2]).astype(np.float32)  # exactly on pixel centres
    mask = rng.uniform(size=(B, 9, 10)) > 0.2
    for m in (None, mask):
        gpu = sample_bilinear_batch(imgs, coords, m, device="cuda")
        cpu = sample_bilinear_batch(imgs, coords, m, device="cpu")
        assert gpu.shape == cpu.shape
        np.testing.assert_allclose(gpu, cpu, atol=1e-3, rtol=0)
    np.testing.assert_allclose(sample_bilinear(imgs[1], coords[1], device="cuda"),
                               sample_bilinear(imgs[1], coords[1], device="cpu"), atol=1e-3, rtol=0)


def _check_blend(gpu, cpu, tgt, mask):
    assert gpu.dtype == np.uint8 and gpu.shape == cpu.shape
    assert np.array_equal(gpu[~mask], tgt[~mask]), "GPU blend changed a pixel outside the mask"
    if mask.any():
        d = np.abs(gpu.astype(int) - cpu.astype(int))[mask]
        assert d.mean() <= 1.0, f"mean |GPU - CPU| inside the mask = {d.mean():.3f} grey levels"
        assert d.max() <= 3, f"max |GPU - CPU| inside the mask = {d.max()}"


@needs_gpu
def test_gpu_poisson_blend_matches_cpu_single():
    src, tgt, mask = blend_case(150, 190, 0)
    _check_blend(poisson_blend(src, tgt, mask, device="cuda"), poisson_blend(src, tgt, mask, device="cpu"), tgt, mask)


@needs_gpu
def test_gpu_poisson_blend_batch_matches_cpu():
    cases = [blend_case(120, 140, s) for s in range(4)]
    # An empty mask and one touching the image border, in the same batch.
    cases.append((cases[0][0], cases[0][1], np.zeros((120, 140), bool)))
    border = np.zeros((120, 140), bool)
    border[:50, 90:] = True
    cases.append((cases[1][0], cases[1][1], border))
    src, tgt, mask = (np.stack([c[k] for c in cases]) for k in range(3))
    gpu = poisson_blend_batch(src, tgt, mask, device="cuda")
    for b in range(len(cases)):
        _check_blend(gpu[b], poisson_blend(src[b], tgt[b], mask[b], device="cpu"), tgt[b], mask[b])
    assert np.array_equal(gpu[4], tgt[4])
    out, info = _core.cuda_poisson_blend_batch(src, tgt, mask)
    assert np.array_equal(out, gpu), "GPU blend is not deterministic"
    assert len(info) == len(cases) and info[4]["unknowns"] == 0 and info[4]["iterations"] == 0
    assert all(i["residual"] <= 1e-3 for i in info)


@needs_gpu
def test_gpu_poisson_blend_fixed_point_and_uint8_mask():
    src, tgt, mask = blend_case(90, 100, 7)
    assert np.array_equal(poisson_blend(tgt, tgt, mask, device="cuda"), tgt)  # no gradients to transfer
    m8 = mask.astype(np.uint8) * 200
    assert np.array_equal(poisson_blend(src, tgt, m8, device="cuda"), poisson_blend(src, tgt, mask, device="cuda"))


@needs_gpu
def test_gpu_bad_inputs_raise_like_cpu():
    v, t = random_mesh(np.random.default_rng(0), 8, 8, 6, 4, False)
    with pytest.raises(TypeError, match="vertices"):
        rasterize_batch(v[None].astype(np.float64), t, 8, 8, device="cuda")
    with pytest.raises(ValueError, match="triangles"):
        rasterize_batch(v[None], t + 10, 8, 8, device="cuda")
    with pytest.raises(ValueError, match="height"):
        rasterize_batch(v[None], t, 0, 8, device="cuda")
    with pytest.raises(ValueError, match="mask"):
        poisson_blend_batch(np.zeros((2, 8, 8, 3), np.uint8), np.zeros((2, 8, 8, 3), np.uint8),
                            np.zeros((1, 8, 8), bool), device="cuda")
