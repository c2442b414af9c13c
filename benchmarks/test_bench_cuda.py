"""Faces per second for the render + blend pipeline in batches, GPU against CPU in the same run.

Per batch of 64 faces (the ICT mesh, 76k triangles, each with its own small rotation and
shift, as 64 different fitted faces would be): rasterize_batch -> interpolate_batch of the
vertices' positions in the photo -> sample_bilinear_batch of the photo (the source) ->
poisson_blend_batch of that source into the photo (the target) inside the covered mask.
The CPU side (device="cpu", all hardware threads, one face after another) is the named
anchor and runs without a GPU; the GPU side (device="cuda") skips without one.

Run: AFFCORE_DATA_DIR=... pytest benchmarks/test_bench_cuda.py --benchmark-only
"""
import numpy as np
import pytest

from affcore import _core
from affcore.blend import poisson_blend_batch
from affcore.render import interpolate_batch, rasterize_batch, sample_bilinear_batch

from _cuda_bench import BATCH, RESULTS
from _render_bench import project_to_frame

SIZES = [256, 512]


def make_batch(verts, size, seed=0):
    rng = np.random.default_rng(seed)
    base = project_to_frame(verts, size)
    c = size / 2
    out = np.empty((BATCH,) + base.shape, np.float32)
    for b in range(BATCH):
        a = rng.uniform(-0.1, 0.1)
        ca, sa = np.cos(a), np.sin(a)
        x, y = base[:, 0] - c, base[:, 1] - c
        out[b, :, 0] = c + ca * x - sa * y + rng.uniform(-4, 4)
        out[b, :, 1] = c + sa * x + ca * y + rng.uniform(-4, 4)
        out[b, :, 2] = base[:, 2]
    yy, xx = np.mgrid[0:size, 0:size]
    photo = np.stack([80 + 100 * np.sin(xx / 17.0) ** 2, 60 + 0.3 * yy, 140 + 50 * np.cos(yy / 23.0)], -1)
    photos = np.clip(photo[None] + rng.normal(0, 6, (BATCH, size, size, 3)), 0, 255).astype(np.uint8)
    return out, photos


def pipeline(v, tris, photos, size, device):
    r = rasterize_batch(v, tris, size, size, device=device)
    # Where each pixel's surface point lies in the (unwarped) photo: the base pose's positions.
    pos = np.ascontiguousarray(v[0, :, :2])
    coords = interpolate_batch(pos, tris, r.triangle_id, r.barycentrics, device=device)
    mask = r.triangle_id >= 0
    src = sample_bilinear_batch(photos, coords, mask, device=device)
    src = np.clip(src + 0.5, 0, 255).astype(np.uint8)
    return poisson_blend_batch(src, photos, mask, device=device)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_face_pipeline_batch(benchmark, bench_mesh, size, device):
    if device == "cuda" and _core.cuda_unavailable_reason() is not None:
        pytest.skip(f"GPU side needs CUDA: {_core.cuda_unavailable_reason()}")
    verts, tris = bench_mesh
    v, photos = make_batch(verts, size)
    benchmark.group = f"render+blend, {BATCH} faces at {size}x{size}"
    out = benchmark.pedantic(pipeline, args=(v, tris, photos, size, device), rounds=3, iterations=1,
                             warmup_rounds=1 if device == "cuda" else 0)
    assert out.shape == (BATCH, size, size, 3)
    RESULTS[(size, device)] = benchmark.stats.stats.median
