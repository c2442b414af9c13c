"""Rasterizer speed on a ~76k-triangle face mesh filling most of the frame.

Named anchor, measured in the same run: affcore._core._anchor_rasterize_bbox, a
single-threaded C-style bounding-box rasterizer of the kind 3DDFA_V2's Sim3DR uses
(it exists only for this comparison). Reference figures for 3DDFA_V2's own rasterizer on
the development machine: 3.3 / 6.9 / 21.8 ms at 256² / 512² / 1024².

Run: AFFCORE_DATA_DIR=... pytest benchmarks/test_bench_render.py --benchmark-only
"""
import pytest

from affcore import _core
from affcore.render import rasterize

from _render_bench import RESULTS, project_to_frame

SIZES = [256, 512, 1024]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("impl", ["ours", "ours_1thread", "anchor"])
def test_rasterize_76k(benchmark, bench_mesh, size, impl):
    verts, tris = bench_mesh
    v = project_to_frame(verts, size)
    benchmark.group = f"rasterize {size}x{size}, {len(tris)} triangles"
    if impl == "anchor":
        fn = lambda: _core._anchor_rasterize_bbox(v, tris, size, size)
    else:
        threads = 1 if impl == "ours_1thread" else 0
        fn = lambda: rasterize(v, tris, size, size, threads=threads)
    tid = benchmark(fn)[0]
    assert (tid >= 0).mean() > 0.5  # the mesh fills most of the frame
    RESULTS[(size, impl)] = benchmark.stats.stats.median
