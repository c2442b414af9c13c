"""Landmark fitting, affcore against the named anchor eos (patrikhuber/eos, eos-py 1.5.0:
fitting.fit_shape_and_pose with the Surrey Face Model, its 6 expression blendshapes and
contour fitting, 5 iterations), on the same photos and the same dlib landmarks.

Error: RMS landmark distance / inter-ocular distance (distance between the eye centres).
eos fits the 50 iBUG points its mapping defines plus the 16 contour points (matched, as
eos does, to the nearest projected vertex of its model contour); it has no vertex for the
inner mouth corners 60 and 64. "common" compares both fitters on those 66 points; "all 68"
is affcore on every point.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

RESULTS: dict = {"accuracy": [], "timing": {}}


def data_dir() -> Path:
    d = os.environ.get("AFFCORE_DATA_DIR")
    p = Path(d) if d else Path(__file__).resolve().parents[2] / "shared" / "data"
    if not p.is_dir():
        pytest.skip("benchmark needs the shared data: set AFFCORE_DATA_DIR")
    return p


def photo_sets(root: Path) -> dict:
    faces = root / "faces"
    return {
        "london neutral": sorted((faces / "london").glob("*_neutral.jpg")),
        "london smiling": sorted((faces / "london").glob("*_smiling.jpg")),
        "wild": sorted((faces / "wild").glob("*.jpg")),
        "300w": sorted((faces / "300w").glob("*.png")),
    }


class EosFitter:
    """eos's fit_shape_and_pose, set up as eos's own example does."""

    def __init__(self, root: Path):
        eos = pytest.importorskip("eos", reason="eos-py is the benchmark anchor: pip install eos-py")
        d = root / "eos"
        shape = eos.morphablemodel.load_model(str(d / "sfm_shape_3448.bin"))
        blendshapes = eos.morphablemodel.load_blendshapes(str(d / "expression_blendshapes_3448.bin"))
        self.model = eos.morphablemodel.MorphableModel(
            shape.get_shape_model(), blendshapes, color_model=eos.morphablemodel.PcaModel(),
            vertex_definitions=None, texture_coordinates=shape.get_texture_coordinates())
        self.mapper = eos.core.LandmarkMapper(str(d / "ibug_to_sfm.txt"))
        self.edges = eos.morphablemodel.load_edge_topology(str(d / "sfm_3448_edge_topology.json"))
        self.contour_landmarks = eos.fitting.ContourLandmarks.load(str(d / "ibug_to_sfm.txt"))
        self.model_contour = eos.fitting.ModelContour.load(str(d / "sfm_model_contours.json"))
        contours = json.loads((d / "sfm_model_contours.json").read_text())["model_contour"]
        self.contour_vertices = {"right": np.array(contours["right_contour"]),
                                 "left": np.array(contours["left_contour"])}
        self.eos = eos
        self.mapped = [i for i in range(68) if self.mapper.convert(str(i + 1)) is not None]
        self.mapped_vertices = np.array([int(self.mapper.convert(str(i + 1))) for i in self.mapped])

    def fit(self, landmarks: np.ndarray, width: int, height: int):
        lms = [self.eos.core.Landmark(str(i + 1), [float(x), float(y)]) for i, (x, y) in enumerate(landmarks)]
        t0 = time.perf_counter()
        mesh, pose, _, _ = self.eos.fitting.fit_shape_and_pose(
            self.model, lms, self.mapper, width, height, self.edges, self.contour_landmarks, self.model_contour)
        ms = (time.perf_counter() - t0) * 1e3
        camera = self.eos.fitting.get_3x4_affine_camera_matrix(pose, width, height)
        v = np.asarray(mesh.vertices, dtype=np.float64)
        proj = (np.c_[v, np.ones(len(v))] @ np.asarray(camera).T)[:, :2]
        err = {i: np.linalg.norm(proj[vi] - landmarks[i]) for i, vi in zip(self.mapped, self.mapped_vertices)}
        for side, ids in (("right", range(0, 8)), ("left", range(9, 17))):
            cand = proj[self.contour_vertices[side]]
            for i in ids:
                err[i] = np.min(np.linalg.norm(cand - landmarks[i], axis=1))
        return err, ms


def summary_lines() -> list[str]:
    lines = []
    if RESULTS["accuracy"]:
        lines.append("Landmark fit error, median over photos of RMS / inter-ocular distance (same dlib landmarks)")
        lines.append(f"{'photos':<16}{'n':>4}{'affcore 68':>12}{'affcore 66':>12}{'eos 66':>10}{'ratio':>8}"
                     f"{'affcore ms':>12}{'eos ms':>9}{'speed-up':>10}")
        for row in RESULTS["accuracy"]:
            lines.append(f"{row['set']:<16}{row['n']:>4}{row['ours68']:>12.4f}{row['ours66']:>12.4f}{row['eos66']:>10.4f}"
                         f"{row['ours66'] / row['eos66']:>8.2f}{row['ours_ms']:>12.2f}{row['eos_ms']:>9.1f}"
                         f"{row['eos_ms'] / row['ours_ms']:>10.1f}")
    t = RESULTS["timing"]
    if "affcore" in t and "eos" in t:
        lines.append(f"single fit (pytest-benchmark median): affcore {t['affcore'] * 1e3:.2f} ms, "
                     f"eos {t['eos'] * 1e3:.1f} ms, eos/affcore = {t['eos'] / t['affcore']:.1f}x")
    return lines
