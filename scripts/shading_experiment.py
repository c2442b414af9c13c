"""Experiment (not part of the pipeline): does shading the deformed skin make synthesized
expressions read better? Runs scripts/recognition_rates.py with the composite's skin
pixels multiplied by a per-vertex factor, interpolated over the face:

* ``--relight P``: (n_target . v / n_fitted . v) ** P, v the viewing direction: skin that
  turns away from the camera (and a roughly frontal light) darkens, skin that turns
  towards it brightens; P = 1 is Lambert under a light from the camera.
* ``--crease K``: 1 + K * min(log(area_target / area_fitted), 0): skin that the
  expression compresses (on screen) darkens, as creases do.

Factors are clipped to [0.4, 1.25]. The photo's texture already holds the neutral face's
shading; these factors change it by the deformation's change of geometry only.

    AFFCORE_DATA_DIR=../shared/data python scripts/shading_experiment.py --relight 2 --out T.md

Slow (an extra raster and interpolation per target, in numpy): an experiment, not a mode.
"""
from __future__ import annotations

import argparse
import runpy
import sys
from pathlib import Path

import numpy as np

import affcore.synthesis as synthesis
from affcore.render import interpolate, rasterize
from affcore._relight import vertex_normals


def _skin_geometry(synth, screen):
    """Per vertex: facing (|n_z| / |n|, screen-space normal) and mean log triangle area."""
    tris = synth._triangles[synth._part == synthesis.SKIN]
    v = screen.astype(np.float64)
    e1, e2 = v[tris[:, 1]] - v[tris[:, 0]], v[tris[:, 2]] - v[tris[:, 0]]
    n = len(v)
    facing = np.abs(vertex_normals(screen, tris)[:, 2])  # (0 at vertices of no skin triangle, never sampled)
    log_area = np.log(np.maximum(np.abs(e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]) / 2, 1e-9))
    count = sum(np.bincount(tris[:, k], minlength=n) for k in range(3))
    mean_log_area = sum(np.bincount(tris[:, k], weights=log_area, minlength=n) for k in range(3))
    return facing, np.where(count > 0, mean_log_area / np.maximum(count, 1), 0.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--relight", type=float, default=0.0, help="exponent P of the facing ratio (0: off)")
    ap.add_argument("--crease", type=float, default=0.0, help="darkening K per unit of log compression (0: off)")
    ap.add_argument("--out", type=Path, required=True, help="table (markdown)")
    args = ap.parse_args()
    compose = synthesis.Synthesizer._compose

    def shaded_compose(self, blendshapes):
        box, comp, region, triangle_id = compose(self, blendshapes)
        screen = self._screen(blendshapes)
        facing, log_area = _skin_geometry(self, screen)
        facing0, log_area0 = _skin_geometry(self, self._source_screen)
        factor = np.ones(len(screen))
        if args.relight:
            factor *= (facing / np.maximum(facing0, 0.05)) ** args.relight
        if args.crease:
            factor *= 1.0 + args.crease * np.minimum(log_area - log_area0, 0.0)
        factor = np.clip(factor, 0.4, 1.25).astype(np.float32)
        x0, y0, x1, y1 = box
        r = rasterize(screen - np.array([x0, y0, 0], np.float32), self._triangles, y1 - y0, x1 - x0,
                      cull_backfaces=True, threads=self.threads)
        per_pixel = interpolate(factor[:, None], self._triangles, r.triangle_id, r.barycentrics)[..., 0]
        skin = (r.triangle_id >= 0) & (self._part[np.maximum(r.triangle_id, 0)] == synthesis.SKIN)
        per_pixel = np.where(skin, per_pixel, 1.0)
        comp = np.clip(comp * per_pixel[..., None] + 0.5, 0, 255).astype(np.uint8)
        return box, comp, region, triangle_id

    synthesis.Synthesizer._compose = shaded_compose
    sys.argv = ["recognition_rates.py", "--out", str(args.out)]
    runpy.run_path(str(Path(__file__).with_name("recognition_rates.py")), run_name="__main__")


if __name__ == "__main__":
    main()
