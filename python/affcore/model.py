"""The ICT Face Model: finding it, loading it, and importing it from ICT-FaceKit's OBJ files.

affcore uses the ICT Face Model Light (USC ICT, MIT licence): a full head of 26,719 vertices
(cm, +x to the subject's left, +y up, +z towards the viewer) with 100 identity modes
(weights ~ N(0, 1)) and 53 ARKit-named expression blendshapes (weights in [0, 1]).

The model is not shipped with affcore. Get it from https://github.com/ICT-VGL/ICT-FaceKit
(folder ``FaceXModel``) and run ``affcore model import PATH/TO/FaceXModel``; that writes
``ict_face_model.npz`` into affcore's cache directory, where it is found from then on.
"""
from __future__ import annotations

import dataclasses
import functools
import os
import re
from pathlib import Path

import numpy as np
import platformdirs

from ._jobs import atomic_file
from .errors import ModelNotFoundError

MODEL_FILENAME = "ict_face_model.npz"
MODEL_SOURCE = "https://github.com/ICT-VGL/ICT-FaceKit (folder FaceXModel)"

# The 68 iBUG/Multi-PIE landmarks as ICT vertices, in iBUG order (ICT-FaceKit's
# vertex_indices.json, idx_to_landmark_verts).
LANDMARK_VERTICES = np.array([
    1225, 1888, 1052, 367, 1719, 1722, 2199, 1447, 966, 3661, 4390, 3927, 3924, 2608, 3272, 4088,
    3443, 268, 493, 1914, 2044, 1401, 3615, 4240, 4114, 2734, 2509, 978, 4527, 4942, 4857, 1140,
    2075, 1147, 4269, 3360, 1507, 1542, 1537, 1528, 1518, 1511, 3742, 3751, 3756, 3721, 3725, 3732,
    5708, 5695, 2081, 0, 4275, 6200, 6213, 6346, 6461, 5518, 5957, 5841, 5702, 5711, 5533, 6216,
    6207, 6470, 5517, 5966], dtype=np.int32)

# Jawline vertex sets published with the model, ordered from the ear to the chin; iBUG
# points 0-7 (subject's right) slide along the first, 9-16 (subject's left) along the second.
JAWLINE_RIGHT = np.array([1280, 1278, 1275, 1272, 1248, 12, 820, 1834, 1902, 243, 844, 781, 1673,
                          2199, 801, 1447, 800], dtype=np.int32)
JAWLINE_LEFT = np.array([3041, 3661, 3042, 4390, 3880, 3022, 3085, 2484, 4102, 4036, 3061, 2253,
                         3466, 3490, 3493, 3496, 3498], dtype=np.int32)
CONTOUR_LANDMARKS_RIGHT = tuple(range(0, 8))
CONTOUR_LANDMARKS_LEFT = tuple(range(9, 17))

# The 53 ARKit blendshape names, in the model's order.
EXPRESSION_NAMES = (
    "browDown_L", "browDown_R", "browInnerUp_L", "browInnerUp_R", "browOuterUp_L", "browOuterUp_R",
    "cheekPuff_L", "cheekPuff_R", "cheekSquint_L", "cheekSquint_R", "eyeBlink_L", "eyeBlink_R",
    "eyeLookDown_L", "eyeLookDown_R", "eyeLookIn_L", "eyeLookIn_R", "eyeLookOut_L", "eyeLookOut_R",
    "eyeLookUp_L", "eyeLookUp_R", "eyeSquint_L", "eyeSquint_R", "eyeWide_L", "eyeWide_R",
    "jawForward", "jawLeft", "jawOpen", "jawRight", "mouthClose", "mouthDimple_L", "mouthDimple_R",
    "mouthFrown_L", "mouthFrown_R", "mouthFunnel", "mouthLeft", "mouthLowerDown_L",
    "mouthLowerDown_R", "mouthPress_L", "mouthPress_R", "mouthPucker", "mouthRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthSmile_L",
    "mouthSmile_R", "mouthStretch_L", "mouthStretch_R", "mouthUpperUp_L", "mouthUpperUp_R",
    "noseSneer_L", "noseSneer_R")

_REQUIRED_ARRAYS = ("neutral_vertices", "polygons", "identity_basis", "expression_basis", "expression_names")


@dataclasses.dataclass(frozen=True, eq=False)
class FaceModel:
    """A linear face model: ``neutral + identity_basis^T alpha + expression_basis^T beta``.

    Attributes
    ----------
    neutral_vertices : (V, 3) float32, cm.
    polygons : (F, 4) int32 vertex indices; triangles have -1 in the last slot.
    identity_basis : (K, V, 3) float32, per unit identity weight.
    expression_basis : (E, V, 3) float32, per unit blendshape weight.
    expression_names : tuple of E str.
    uvs, polygon_uv_indices, polygon_material, material_names : texture layout and parts.
    path : where it was loaded from.
    """

    neutral_vertices: np.ndarray
    polygons: np.ndarray
    identity_basis: np.ndarray
    expression_basis: np.ndarray
    expression_names: tuple
    uvs: np.ndarray | None = None
    polygon_uv_indices: np.ndarray | None = None
    polygon_material: np.ndarray | None = None
    material_names: tuple = ()
    path: Path | None = None

    @property
    def num_vertices(self) -> int:
        return self.neutral_vertices.shape[0]

    @property
    def num_identity(self) -> int:
        return self.identity_basis.shape[0]

    @property
    def num_expression(self) -> int:
        return self.expression_basis.shape[0]

    @functools.cached_property
    def triangles(self) -> np.ndarray:
        """(T, 3) int32: quads split along their first diagonal."""
        return polygons_to_triangles(self.polygons)

    @functools.cached_property
    def triangle_material(self) -> np.ndarray | None:
        if self.polygon_material is None:
            return None
        quads = self.polygons[:, 3] >= 0
        return np.concatenate([self.polygon_material, self.polygon_material[quads]])

    def vertices(self, identity=None, expression=None) -> np.ndarray:
        """Vertices (V, 3) float32 for identity weights (<= K) and expression weights (E,)."""
        v = self.neutral_vertices.astype(np.float32, copy=True)
        if identity is not None:
            identity = np.asarray(identity, dtype=np.float32)
            k = identity.shape[0]
            v += np.tensordot(identity, self.identity_basis[:k], axes=1)
        if expression is not None:
            expression = np.asarray(expression, dtype=np.float32)
            if expression.shape != (self.num_expression,):
                raise ValueError(f"expression: expected {self.num_expression} weights, got shape {expression.shape}")
            v += np.tensordot(expression, self.expression_basis, axes=1)
        return v

    @functools.cached_property
    def fitting_basis(self):
        """What the landmark fit needs, precomputed once: the C++ basis over the 68 landmark
        vertices followed by the jawline candidate vertices, and the contour candidate sets."""
        from . import _core

        vertex_ids = np.concatenate([LANDMARK_VERTICES, JAWLINE_RIGHT, JAWLINE_LEFT])
        basis = _core.LandmarkBasis(
            self.neutral_vertices[vertex_ids].astype(np.float64),
            self.identity_basis[:, vertex_ids].astype(np.float64),
            self.expression_basis[:, vertex_ids].astype(np.float64))
        right = np.arange(68, 68 + len(JAWLINE_RIGHT), dtype=np.int32)
        left = np.arange(68 + len(JAWLINE_RIGHT), len(vertex_ids), dtype=np.int32)
        contour = [(i, right) for i in CONTOUR_LANDMARKS_RIGHT] + [(i, left) for i in CONTOUR_LANDMARKS_LEFT]
        return FittingBasis(basis=basis, vertex_ids=vertex_ids.astype(np.int32), contour=contour,
                            correspondence=np.arange(68, dtype=np.int32))


@dataclasses.dataclass(frozen=True)
class FittingBasis:
    basis: object          # affcore._core.LandmarkBasis
    vertex_ids: np.ndarray  # model vertex of each basis point
    contour: list           # [(landmark, candidate point indices)]
    correspondence: np.ndarray  # initial landmark -> basis point


def polygons_to_triangles(polygons: np.ndarray) -> np.ndarray:
    """Split (F, 4) polygons (-1 in the last slot for triangles) into (T, 3) int32 triangles:
    every polygon gives (a, b, c); every quad also gives (a, c, d)."""
    polygons = np.asarray(polygons)
    quads = polygons[:, 3] >= 0
    first = polygons[:, :3]
    second = polygons[quads][:, [0, 2, 3]]
    return np.ascontiguousarray(np.concatenate([first, second]), dtype=np.int32)


def boundary_edges(triangles: np.ndarray) -> np.ndarray:
    """(B, 2) the edges of a triangle mesh that belong to one triangle only: its outer edge
    and the edges of its holes (each edge's vertices in increasing order)."""
    edges = np.sort(np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]]), axis=1)
    unique, count = np.unique(edges, axis=0, return_counts=True)
    return unique[count == 1]


def cache_dir() -> Path:
    """affcore's per-user cache directory (``AFFCORE_CACHE_DIR`` overrides it)."""
    env = os.environ.get("AFFCORE_CACHE_DIR")
    return Path(env) if env else Path(platformdirs.user_cache_dir("affcore"))


def model_search_path(path: str | os.PathLike | None = None) -> list[Path]:
    """The places :func:`find_model` looks, in order: the explicit ``path``; ``$AFFCORE_MODEL``;
    ``$AFFCORE_DATA_DIR/ict_face_model/``; the user cache directory. A directory stands for
    the ``ict_face_model.npz`` inside it."""
    places: list[Path] = []
    if path is not None:
        places.append(Path(path))
    if os.environ.get("AFFCORE_MODEL"):
        places.append(Path(os.environ["AFFCORE_MODEL"]))
    if os.environ.get("AFFCORE_DATA_DIR"):
        places.append(Path(os.environ["AFFCORE_DATA_DIR"]) / "ict_face_model")
    places.append(cache_dir())
    return [p / MODEL_FILENAME if p.suffix != ".npz" else p for p in places]


def find_model(path: str | os.PathLike | None = None) -> Path:
    """Return the path of the model file, or raise :class:`ModelNotFoundError` saying where
    affcore looked and how to get the model. An explicit ``path`` that does not exist is an
    error even when the model exists elsewhere."""
    places = model_search_path(path)
    if path is not None:
        if places[0].is_file():
            return places[0]
        raise ModelNotFoundError(f"face model not found at {places[0]}")
    for p in places:
        if p.is_file():
            return p
    raise ModelNotFoundError(
        "the ICT face model was not found (looked in: " + ", ".join(str(p) for p in places) + "). "
        f"Download it from {MODEL_SOURCE} and run 'affcore model import PATH/TO/FaceXModel', "
        "or set AFFCORE_MODEL to an ict_face_model.npz")


@functools.lru_cache(maxsize=4)
def _load_cached(path: Path, mtime: float) -> FaceModel:
    with np.load(path, allow_pickle=False) as d:
        missing = [k for k in _REQUIRED_ARRAYS if k not in d.files]
        if missing:
            raise ValueError(f"{path} is not an affcore face model: missing arrays {missing}")
        get = lambda k: d[k] if k in d.files else None  # noqa: E731
        model = FaceModel(
            neutral_vertices=d["neutral_vertices"].astype(np.float32),
            polygons=d["polygons"].astype(np.int32),
            identity_basis=d["identity_basis"].astype(np.float32),
            expression_basis=d["expression_basis"].astype(np.float32),
            expression_names=tuple(str(x) for x in d["expression_names"]),
            uvs=get("uvs"),
            polygon_uv_indices=get("polygon_uv_indices"),
            polygon_material=get("polygon_material"),
            material_names=tuple(str(x) for x in d["material_names"]) if "material_names" in d.files else (),
            path=path)
    v = model.num_vertices
    if model.neutral_vertices.shape != (v, 3) or model.identity_basis.shape[1:] != (v, 3) \
            or model.expression_basis.shape[1:] != (v, 3):
        raise ValueError(f"{path}: inconsistent array shapes")
    if model.polygons.max() >= v or LANDMARK_VERTICES.max() >= v:
        raise ValueError(f"{path}: vertex indices out of range for {v} vertices")
    return model


def load_model(path: str | os.PathLike | None = None) -> FaceModel:
    """Load the ICT face model (see :func:`model_search_path` for where it is looked for).

    Loads are cached per file, so calling this repeatedly is cheap."""
    p = find_model(path).resolve()
    return _load_cached(p, p.stat().st_mtime)


# --- importing from ICT-FaceKit's OBJ files -------------------------------------------------

def _read_obj(path: Path, geometry_only: bool):
    """Vertices (and, unless geometry_only, polygons, uv indices, uvs, materials) of an OBJ."""
    verts, uvs, polys, uv_polys, mats = [], [], [], [], []
    material_names: list[str] = []
    current = -1
    with open(path, "r", encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("v "):
                verts.append(line[2:].split()[:3])
            elif geometry_only:
                continue
            elif line.startswith("vt "):
                uvs.append(line[3:].split()[:2])
            elif line.startswith("f "):
                idx = [tok.split("/") for tok in line[2:].split()]
                if not 3 <= len(idx) <= 4:
                    raise ValueError(f"{path}: only triangles and quads are supported")
                v = [int(t[0]) - 1 for t in idx] + [-1] * (4 - len(idx))
                t = [(int(t[1]) - 1 if len(t) > 1 and t[1] else -1) for t in idx] + [-1] * (4 - len(idx))
                polys.append(v)
                uv_polys.append(t)
                mats.append(current)
            elif line.startswith("usemtl "):
                name = line.split(None, 1)[1].strip()
                if name not in material_names:
                    material_names.append(name)
                current = material_names.index(name)
    vertices = np.array(verts, dtype=np.float32)
    if vertices.ndim != 2 or vertices.shape[0] == 0:
        raise ValueError(f"{path}: no vertices")
    if geometry_only:
        return vertices
    return (vertices, np.array(polys, dtype=np.int32), np.array(uv_polys, dtype=np.int32),
            np.array(uvs, dtype=np.float32), np.array(mats, dtype=np.int16), material_names)


def import_obj_folder(source: str | os.PathLike, destination: str | os.PathLike | None = None,
                      progress: bool = True) -> Path:
    """Build ``ict_face_model.npz`` from a folder of ICT-FaceKit OBJ files.

    Parameters
    ----------
    source : folder holding ``generic_neutral_mesh.obj``, ``identityNNN.obj`` and the ARKit
        expression OBJs (ICT-FaceKit's ``FaceXModel``). Identities are taken in numeric
        order; expressions in the model's order, skipping those not present.
    destination : output file or folder; default: affcore's cache directory.

    Returns the path written. The file is written to a temporary name and renamed, so an
    interrupted import never leaves a partial model behind.
    """
    from tqdm import tqdm

    src = Path(source)
    neutral_path = src / "generic_neutral_mesh.obj"
    if not neutral_path.is_file():
        raise FileNotFoundError(f"{neutral_path} not found: point 'affcore model import' at ICT-FaceKit's FaceXModel folder")
    identity_paths = sorted((p for p in src.glob("identity*.obj") if re.fullmatch(r"identity\d+", p.stem)),
                            key=lambda p: int(p.stem[len("identity"):]))
    expression_paths = [src / f"{n}.obj" for n in EXPRESSION_NAMES if (src / f"{n}.obj").is_file()]
    neutral, polygons, uv_idx, uvs, material, material_names = _read_obj(neutral_path, geometry_only=False)

    def deltas(paths, what):
        out = np.empty((len(paths),) + neutral.shape, dtype=np.float32)
        for i, p in enumerate(tqdm(paths, desc=f"importing {what}", disable=not progress or not paths)):
            v = _read_obj(p, geometry_only=True)
            if v.shape != neutral.shape:
                raise ValueError(f"{p}: {v.shape[0]} vertices, the neutral mesh has {neutral.shape[0]}")
            out[i] = v - neutral
        return out

    identity_basis = deltas(identity_paths, "identities")
    expression_basis = deltas(expression_paths, "expressions")
    dest = Path(destination) if destination is not None else cache_dir()
    if dest.suffix != ".npz":
        dest = dest / MODEL_FILENAME
    with atomic_file(dest, "wb", fsync=False) as f:
        np.savez(f, neutral_vertices=neutral, polygons=polygons, polygon_uv_indices=uv_idx, uvs=uvs,
                 polygon_material=material, material_names=np.array(material_names),
                 identity_basis=identity_basis, identity_names=np.array([p.stem for p in identity_paths]),
                 expression_basis=expression_basis, expression_names=np.array([p.stem for p in expression_paths]))
    return dest
