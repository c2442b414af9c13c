"""Expression synthesis: deform the fitted face, render it with the photo's own texture,
Poisson-blend it back into the photo (Kollias et al., IJCV 2020).

For every pixel of the deformed face, the renderer knows which surface point it shows (a
triangle and barycentric coordinates); the same surface point lay somewhere in the photo
under the fit, and the photo is sampled there. Surface the photo never showed is made up:
the inside of an opening mouth is shaded from a small material model, lit to match the
photo's skin; eyeball uncovered by widened lids continues the eyeball shown below it. The
skin along the face's outline is left to the warp of the surroundings (see RIM_FACING).
The pixels around the face follow the face's motion
through a smooth warp, so the old jaw line moves with the jaw instead of staying behind.
Finally the composite is blended into the photo in the gradient domain.

:class:`Synthesizer` fits once and renders many targets; :func:`synthesize` is one call.
"""
from __future__ import annotations

import dataclasses
import warnings
from typing import Mapping

import cv2
import numpy as np

from . import _core, affect
from ._gaze import gaze_rotations, has_gaze, on_globe, sphere_centre
from ._eyelids import carry_upper_lids, fill_lids, screen_down, upper_lid_layout, upper_lid_vertices
from ._relight import RelightMesh, grey_at, prepare_relight, relight_factors, relight_mesh, vertex_normals
from ._device import resolve_device
from .blend import poisson_blend
from .errors import NonNeutralPhotoWarning
from .fitting import SMILING_PHOTO, FitResult, fit, fitted_smile
from .images import as_rgb8
from .landmarks import (_FACING_INNER_LIPS, _shows_teeth, detect_landmarks, inter_ocular_distance, mouth_pixels,
                        refine_lower_inner_lip)
from .model import LANDMARK_VERTICES, FaceModel, boundary_edges, load_model
from .render import rasterize

# Parts of the ICT mesh, by vertex range (ICT-FaceKit's README).
SKIN, SOCKET, GUMS, TEETH, SCLERA, IRIS, EYE_SOCKET = range(7)
_PART_NAMES = ("skin", "mouth socket", "gums and tongue", "teeth", "sclera", "iris", "eye socket")
_FACE_END = 9409
_RANGES = {SOCKET: (11248, 13294), EYE_SOCKET: (13294, 14062), GUMS: (14062, 17039), TEETH: (17039, 21451)}
_EYEBALLS = (21451, 24591)

# Diffuse albedo (linear-ish RGB in [0, 1]) of what the photo never shows. Relative to skin
# of albedo SKIN_ALBEDO: the photo's own light sets the overall scale (_estimate_light).
# Teeth: the median over TCCE's 137 posed happy photos that show teeth of their teeth's
# median colour over the light their skin gives (interquartile range 0.62-0.72 in red; over
# the light with the sclera's half from the same person's neutral photo, 0.66, 0.62, 0.55):
# teeth look about 1.15 times as bright as the lit half of the skin, not the 1.6 times of a
# white material, since the lips shade them (0.92, 0.88, 0.80 had new teeth glare, clipped
# white).
SKIN_ALBEDO = 0.55
# The lit half of a photo's sclera over the light its skin gives (the median over TCCE's 23
# neutral photos; interquartile range 0.40-0.46). Skin albedo varies between people far
# more than the sclera's, so the skin alone lit dark-skinned faces' materials too dimly (the
# London photos, all under one studio light, spread their skin-only light by a standard
# deviation of 0.215 in log; moved half way to their sclera's, by 0.161).
SCLERA_WHITE = 0.43
ALBEDO = {
    SOCKET: (0.30, 0.07, 0.07),
    EYE_SOCKET: (0.10, 0.05, 0.05),
    GUMS: (0.72, 0.30, 0.30),
    TEETH: (0.66, 0.63, 0.56),
    SCLERA: (0.86, 0.82, 0.80),
    IRIS: (0.25, 0.17, 0.12),
}


@dataclasses.dataclass(frozen=True)
class RenderedTarget:
    """One synthesized face and the buffers behind it."""

    image: np.ndarray         # (H, W, 3) uint8: the photo with the new expression
    composite: np.ndarray     # (H, W, 3) uint8: rendered face + warped surroundings, before blending
    mask: np.ndarray          # (H, W) bool: pixels the blend may change
    face_mask: np.ndarray     # (H, W) bool: pixels covered by the deformed face
    blendshapes: np.ndarray   # (E,) the target weights


def _resting_face(fitted: np.ndarray, target: np.ndarray, names) -> np.ndarray:
    """The fitted weights that a target keeps under keep_resting_face: all of them, except
    that a lid the target closes (eyeBlink) gives up the photo's resting widening (eyeWide)
    in proportion. The two cancel: several London photos fit eyeWide 0.04-0.13, which held
    their closed eyes open a little further (most of the gap is the fitted eye's own
    opening: _closing_gain)."""
    kept = np.array(fitted, np.float64)
    kept[_eye_columns(names, "eyeWide")] *= 1.0 - target[_eye_columns(names, "eyeBlink")]
    return kept


# iBUG's upper and lower lid points that face each other, per eye in _eye_columns' order:
# the subject's left eye (iBUG 42-47, ICT's _L) and right eye (36-41)
_LID_PAIRS = (((43, 47), (44, 46)), ((37, 41), (38, 40)))
# _eyelids' upper lids are those of iBUG 36-41 and 42-47: eyeBlink_R and eyeBlink_L, the
# second and the first of _eye_columns(names, "eyeBlink")
_LID_BLINK = [1, 0]


def _eye_columns(names, shape: str) -> list[int]:
    """The expression columns of a blendshape split by eye: ``shape``_L, then ``shape``_R."""
    return [names.index(f"{shape}_L"), names.index(f"{shape}_R")]


def _closed_eyes(fitted: np.ndarray, names) -> np.ndarray:
    """The fitted expression with both eyes closed (eyeBlink 1, no eyeWide)."""
    closed = np.array(fitted, np.float64)
    closed[_eye_columns(names, "eyeBlink")] = 1.0
    closed[_eye_columns(names, "eyeWide")] = 0.0
    return closed


def _closing_gain(fitted_xy: np.ndarray, closed_xy: np.ndarray, down: np.ndarray) -> np.ndarray:
    """(2,) factors on eyeBlink_L and eyeBlink_R's change from the fit, so that at eyeBlink
    1 the upper lid meets the lower one: the model's blink closes the generic head's eye,
    and a fitted eye opened wider stayed open (3-7 px on 1350-px London photos, a line of
    sclera under a closed lid). ``fitted_xy``, ``closed_xy`` (68, 2): the landmarks' vertices
    on screen under the fit and with the eyes closed (_closed_eyes); ``down`` as
    _eyelids.screen_down. Kept within [1, 1.5]: where the model's blink closes the eye
    already, it is left as it is."""
    gain = np.ones(2)
    for k, pairs in enumerate(_LID_PAIRS):
        upper, lower = [list(p) for p in zip(*pairs)]
        gap_open = float(np.mean((fitted_xy[lower] - fitted_xy[upper]) @ down))
        gap_closed = float(np.mean((closed_xy[lower] - closed_xy[upper]) @ down))
        if gap_open - gap_closed > 1e-3 * max(abs(gap_open), 1.0):
            gain[k] = np.clip(gap_open / (gap_open - gap_closed), 1.0, 1.5)
    return gain


def _face_triangles(model: FaceModel):
    """Triangles worth rendering (front face skin, mouth interior, eyes) and their part."""
    tris = model.triangles
    lo, hi = tris.min(axis=1), tris.max(axis=1)
    part = np.full(len(tris), -1, dtype=np.int8)
    part[hi < _FACE_END] = SKIN
    for p, (a, b) in _RANGES.items():
        part[(lo >= a) & (hi < b)] = p
    eyes = (lo >= _EYEBALLS[0]) & (hi < _EYEBALLS[1])
    if model.triangle_material is not None:
        names = model.material_names
        iris = np.isin(model.triangle_material, [names.index(n) for n in ("M_IrisLeft", "M_IrisRight") if n in names])
        part[eyes & iris] = IRIS
        part[eyes & ~iris] = SCLERA
    else:
        part[eyes] = SCLERA
    keep = part >= 0
    tris, part = tris[keep], part[keep]
    # Skin first (the model lists its quads' first triangles for every part, then their
    # second ones): drawn before the mouth interior and the eyeballs, it hides most of them,
    # and the rasterizer then rejects their triangles by depth before drawing a pixel.
    order = np.argsort(part, kind="stable")
    return np.ascontiguousarray(tris[order]), part[order]


def _outer_boundary(triangles: np.ndarray, n: int) -> np.ndarray:
    """(n,) bool: the vertices of the longest boundary loop of a triangle mesh (its outer
    edge; the others are holes: eyes, mouth)."""
    boundary = boundary_edges(triangles)
    label = np.arange(n)
    while True:  # each loop's smallest vertex index, spread along its edges
        low = np.minimum(label[boundary[:, 0]], label[boundary[:, 1]])
        spread = label.copy()
        np.minimum.at(spread, boundary[:, 0], low)
        np.minimum.at(spread, boundary[:, 1], low)
        if np.array_equal(spread, label):
            break
        label = spread
    on = np.unique(boundary)
    loops, size = np.unique(label[on], return_counts=True)
    outline = np.zeros(n, bool)
    outline[on[label[on] == loops[np.argmax(size)]]] = True
    return outline


def _teeth(neutral: np.ndarray, triangles: np.ndarray, part: np.ndarray, bite: float) -> np.ndarray:
    """Which tooth each triangle belongs to: (T,) int8, 0 for other parts, 1, 2, ... for the
    upper teeth and -1, -2, ... for the lower ones, numbered from the left (the model's teeth
    are separate crowns, the connected pieces of its teeth). ``bite``: the height (y) of
    the mouth in ``neutral``; a tooth whose centre lies above it is an upper tooth. A model
    whose teeth fall into more than 127 pieces in an arch (not separate crowns) gets no
    numbers at all: its gaps are left to the materials' shading (no papillae)."""
    teeth = np.flatnonzero(part == TEETH)
    tooth = np.zeros(len(triangles), np.int8)
    if len(teeth) == 0:
        return tooth
    tris = triangles[teeth]
    label = np.arange(len(neutral))
    while True:  # each triangle's vertices take their least label until nothing changes
        low = label[tris].min(axis=1)
        new = label.copy()
        np.minimum.at(new, tris.ravel(), np.repeat(low, 3))
        if np.array_equal(new, label):
            break
        label = new
    pieces, piece = np.unique(label[tris[:, 0]], return_inverse=True)
    centre = np.array([neutral[np.unique(tris[piece == k])].mean(axis=0) for k in range(len(pieces))])
    upper = centre[:, 1] > bite
    if max(upper.sum(), (~upper).sum()) > 127:
        return tooth
    for arch in (1, -1):
        members = np.flatnonzero(upper == (arch > 0))
        order = members[np.argsort(centre[members, 0])]
        for k, m in enumerate(order):
            tooth[teeth[piece == m]] = arch * (k + 1)
    return tooth


def _eyeballs(neutral: np.ndarray, triangles: np.ndarray, part: np.ndarray, expression: np.ndarray) -> tuple:
    """Per eye, the subject's left (+x) then right: None where the mesh has no such eyeball
    (or too little sclera to fit), else (the eyeball's vertices, the vertices of its
    sclera's globe (_gaze.on_globe), the expression basis over the eyeball flattened (E,
    3 n), or None where no blendshape moves it, as in ICT); local indices."""
    ball = np.unique(triangles[np.isin(part, (SCLERA, IRIS))])
    sclera = np.unique(triangles[part == SCLERA])
    eyes = []
    for side in (1, -1):
        this_ball, this_sclera = ball[np.sign(neutral[ball, 0]) == side], sclera[np.sign(neutral[sclera, 0]) == side]
        if len(this_sclera) < 8:
            eyes.append(None)
            continue
        basis = expression[:, this_ball].reshape(len(expression), -1)
        eyes.append((this_ball, this_sclera[on_globe(neutral[this_sclera])], basis if basis.any() else None))
    return tuple(eyes)


def _inner_face(neutral: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(T,) bool: the triangles (indices into the model's vertices) whose centroid on the
    neutral face seen from the front lies inside the convex hull of the model's iBUG points
    27-67 (nose, eyes, mouth): the inner face, which is never the face's outline."""
    hull = cv2.convexHull(neutral[LANDMARK_VERTICES[27:], :2].astype(np.float32)).reshape(-1, 2).astype(np.float64)
    if len(hull) < 3:
        return np.zeros(len(triangles), bool)
    centroid = neutral[triangles, :2].astype(np.float64).mean(axis=1)
    edge = np.roll(hull, -1, axis=0) - hull
    # inside a convex polygon: on the same side of every edge
    side = edge[None, :, 0] * (centroid[:, None, 1] - hull[None, :, 1]) \
        - edge[None, :, 1] * (centroid[:, None, 0] - hull[None, :, 0])
    return (side >= 0).all(axis=1) | (side <= 0).all(axis=1)


# The skin along the face's outline is not rendered for targets. Where the fitted face
# turns away from the camera, the mesh's outline seldom lies on the photo's: a fit a few
# pixels too wide puts the true outline, and background, on triangles at the side of the
# face that barely move, next to a cheek or jaw that does. Rendered as they are, such strips
# leave notches, slivers and jagged bites in the face's outline wherever a moving part folds
# over them or ends beside them (below the ears, along the jaw). Left out, the pixels they
# covered are warped with the surroundings (the face's displacement extended outwards), so
# the outline moves smoothly with the face next to it. Left out are two sets of skin
# triangles, both needed (either alone left some notches on London and wild photos):
#  * the grazing rim: triangles whose vertices face the camera by less than RIM_FACING (z
#    of the unit vertex normal, averaged over _RIM_ROUNDS rings of neighbours so that the
#    band has no islands), reached from the skin's outer boundary through such triangles
#    (_core.grazing_rim), but never the inner face around the eyes, nose and mouth
#    (_inner_face): on a frontal face the rim stops at the cheeks, but on a face turned by
#    20 degrees the far cheek grazes too, and the rim ran on into the sides of the nose, the
#    far eye and the mouth's corner, leaving them to the warp, which steps where the
#    rendered skin next to them moves (a nostril raised by disgust);
#  * the outline band: triangles with a vertex within OUTLINE_BAND inter-ocular distances
#    of the edge of the fitted face's coverage of the photo.
RIM_FACING = 0.35
_RIM_ROUNDS = 4
OUTLINE_BAND = 0.15


def _outline_skin(mesh: _Mesh, screen: np.ndarray, covered: np.ndarray, origin, iod: float) -> np.ndarray:
    """Bool mask over ``mesh.skin_triangles``: the skin left out of targets (see
    RIM_FACING) for the fitted face at these screen positions (N, 3) float32, whose
    coverage of the photo is ``covered`` (uint8 0/1 over a box with top-left pixel
    ``origin``); ``iod`` in pixels."""
    rim = _core.grazing_rim(screen, mesh.skin_triangles, mesh.skin_outline, RIM_FACING, _RIM_ROUNDS) & ~mesh.inner_face
    # distance to the outline on _BLOCK x _BLOCK blocks (in blocks): the band is tens of pixels wide
    small = cv2.resize(covered, (max(1, covered.shape[1] // _BLOCK), max(1, covered.shape[0] // _BLOCK)),
                       interpolation=cv2.INTER_AREA)
    distance = cv2.distanceTransform(small, cv2.DIST_L2, 3)
    band = _core.near_outline(screen, mesh.skin_triangles, distance, tuple(origin), float(_BLOCK),
                              OUTLINE_BAND * iod / _BLOCK)
    return rim | band


# Thickness of the photo's upper lid margin (lashes, the lid's shadow on the eyeball), in
# the model's units (cm): where widened lids uncover eyeball, this much of the eyeball shown
# below moves up with the lid (texture_transfer.hpp, continue_eyeball). About 0.02
# inter-ocular distances: 4 pixels at 1350 x 1350 for the London photos.
LID_MARGIN = 0.13
# Tallest sliver of mouth interior, in cm, that the photo hid but that borders interior the
# photo showed (its lips, where the fit lies a little open on them), taking the colour of
# that neighbour rather than the cavity's dark shading, which drew a thin dark line across
# the lower lip (texture_transfer.hpp, fill_mouth_slivers). In a photo of closed lips, a
# sliver between lip and lip takes the lip too (sadness's corners part the model's lips by
# a few pixels, and the cavity showed there as black notches). 5 pixels on the London photos.
MOUTH_SLIVER = 0.15
# How far a target opens the mouth beyond the fit, in cm of gap between the inner lips, over
# which the colours a photo shows between the fitted lips give way to the shaded mouth
# interior: none of them below the first, all past the second, smoothly between
# (texture_transfer.hpp, shade_opened_mouth). On closed lips those colours are lip and the
# line where the lips meet; on a photo that shows teeth, its teeth, which only the photo's
# own opening fits (docs/synthesis.md). A single threshold made sequences that open the
# mouth flicker.
MOUTH_OPENING = (0.02, 0.12)
# The widest gap between two of the model's neighbouring teeth, in cm, that the gums fill at
# the gum line (texture_transfer.hpp, find_papillae): the model's crowns leave gaps of up to
# about 3 mm there between the front teeth, through which the gums far behind showed as
# black notches along every smile's gum line.
PAPILLA_WIDTH = 0.3
# The key light that reaches into an open mouth (_cavity_light): the sine of its elevation
# above the view axis (about 12 degrees), the tangent of its angular radius (the upper lip's
# shadow softens with depth), and the ambient light in that shadow, as a fraction of the
# key light. Lit through the opening so, the tongue shows and the palate and the throat lie
# in the upper lip's shadow, as in TCCE's studio photos of open mouths (eighteenth session;
# the values chosen on them and on the London photos: docs/synthesis.md). A light from 6
# degrees lit the model's palate, a shelf behind the upper teeth; from 20, the tongue too lay
# in shadow.
KEY_LIGHT_UP = 0.2
KEY_LIGHT_SPREAD = 0.3
CAVITY_AMBIENT = 0.1
# Least area of teeth-like pixels between a photo's lips, in square inter-ocular distances,
# whose colour the rendered teeth take (_mouth_colours); four times what shows_teeth asks
# for (about 8 mm²). Fewer are a sliver at the teeth's edge, tinted by the lips around it
# (scarlett_johansson: 1.5e-3, greyish pink).
TEETH_COLOUR_AREA = 2e-3


# Model-dependent preparation, shared by every Synthesizer of the same model: which
# triangles are rendered, the vertices they use, and the identity and expression bases
# restricted to those vertices (a contiguous copy, so a target deforms ~23k vertices
# instead of the model's 27k and never copies the basis).
_LIP_LANDMARKS = (48, 54, 51, 57)  # mouth corners and lip centres: the front of the mouth cavity
_INNER_LIP_UPPER, _INNER_LIP_LOWER = zip(*_FACING_INNER_LIPS)  # iBUG inner-lip points, facing pairs


def _cavity_light(triangle_id: np.ndarray, part: np.ndarray, depth: np.ndarray, lip_xy: np.ndarray, lip: float):
    """How much of the key light reaches the mouth socket, gums and tongue at each pixel of
    a target's raster (``triangle_id``, ``depth`` over the box; ``part`` of each triangle)
    through the lips' opening: (light, (x0, y0)), light (h, w) float32 in [0, 1] over a
    window of the box at (x0, y0), 0 elsewhere; None when the target shows no mouth interior
    there. ``lip_xy`` (K, 2): the outer lips' corners and centres in the box (px), around
    which, with a few pixels' slack, the window lies (the opening lies within them); ``lip``:
    the depth (px) of the front of the mouth. (Teeth, at the front of the mouth, keep the
    depth falloff; texture_transfer.hpp, material_colour.)

    The light comes from KEY_LIGHT_UP above the view axis: from a point ``d`` behind the
    lips, it passes the lips' plane ``d`` x tan(elevation) higher up on screen (the screen's
    projection is orthographic), and that point must lie in the opening, which is where the
    raster shows the mouth interior (teeth included). The light has an angular radius
    (KEY_LIGHT_SPREAD), so the edge of the upper lip's shadow widens with ``d``."""
    h, w = triangle_id.shape
    (lx0, ly0), (lx1, ly1) = _corners(lip_xy)
    x0, y0 = max(int(lx0) - 4, 0), max(int(ly0) - 4, 0)
    x1, y1 = min(int(np.ceil(lx1)) + 5, w), min(int(np.ceil(ly1)) + 5, h)
    if x1 <= x0 or y1 <= y0:
        return None
    tid = triangle_id[y0:y1, x0:x1]
    where = np.take(np.append(part, np.int8(-1)), tid)  # -1 (off the face) takes the appended -1
    lit = (where == SOCKET) | (where == GUMS)  # what the key light lights (the teeth: the falloff)
    opening = lit | (where == TEETH)
    if not opening.any():
        return None
    inside = opening.view(np.uint8)
    # signed distance to the opening's edge, px (positive inside)
    signed = cv2.distanceTransform(inside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE) - cv2.distanceTransform(
        1 - inside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    rows, cols = np.nonzero(lit)
    behind = np.maximum(depth[y0:y1, x0:x1][rows, cols] - lip, 0.0)
    up = KEY_LIGHT_UP / np.sqrt(1.0 - KEY_LIGHT_UP * KEY_LIGHT_UP)
    # the signed distance there, linear between rows (rounded to a row, the light jumped by a
    # row's worth from frame to frame as a mouth opened); above the window: beyond the lips
    # (their height bounds the window)
    at = rows - up * behind
    row = np.floor(at).astype(np.intp)
    f = (at - row).astype(np.float32)
    below = np.minimum(row + 1, len(signed) - 1)
    edge = np.where(row >= 0, (1 - f) * signed[np.maximum(row, 0), cols] + f * signed[below, cols], -np.inf)
    light = np.zeros(tid.shape, np.float32)
    light[rows, cols] = np.clip(0.5 + edge / (2.0 * KEY_LIGHT_SPREAD * behind + 1.0), 0.0, 1.0)
    return light, (x0, y0)


def _mouth_opened(target_xy: np.ndarray, source_xy: np.ndarray, upper: np.ndarray, lower: np.ndarray,
                  interior, scale: float) -> np.ndarray:
    """How far a target opens the mouth beyond the fit, per vertex: (N,) float32 in [0, 1]
    at the ``interior`` vertices (an index array or a slice; MOUTH_OPENING's ramp), 0
    elsewhere.

    ``target_xy`` and ``source_xy`` (N, 2) are the vertices on screen under the target and
    under the fit; ``upper`` and ``lower`` the vertices of the inner lips' facing pairs (left
    to right on screen, or right to left), and ``scale`` pixels per cm. The gap between each
    pair grows by some amount from the fit to the target; along the mouth, between the pairs'
    midpoints, that growth is interpolated linearly (and held beyond the outer pairs, out to
    the corners), and each interior vertex takes it at its projection on the line through
    the outer midpoints."""
    gap = np.linalg.norm(target_xy[upper] - target_xy[lower], axis=1)
    fitted = np.linalg.norm(source_xy[upper] - source_xy[lower], axis=1)
    growth = (gap - fitted) / scale
    middle = 0.5 * (target_xy[upper] + target_xy[lower])
    axis = middle[-1] - middle[0]
    length2 = float(axis @ axis)
    opened = np.zeros(len(target_xy), np.float32)
    xy = target_xy[interior]
    if length2 > 0:
        at = (middle - middle[0]) @ axis / length2
        order = np.argsort(at)
        # (in the vertices' float32: this runs per target)
        ax, ay = float(axis[0] / length2), float(axis[1] / length2)
        along = (xy[:, 0] - float(middle[0, 0])) * ax + (xy[:, 1] - float(middle[0, 1])) * ay
        growth = np.interp(along, at[order], growth[order])
    else:  # a mouth of no width: its mean growth throughout
        growth = np.full(len(xy), growth.mean())
    start, end = MOUTH_OPENING
    x = np.clip((growth - start) / (end - start), 0.0, 1.0)
    opened[interior] = x * x * (3.0 - 2.0 * x)  # smoothstep
    return opened


@dataclasses.dataclass(frozen=True)
class _Mesh:
    triangles: np.ndarray        # (T, 3) int32, indices into `vertices`
    part: np.ndarray             # (T,) int8
    vertices: np.ndarray         # (N,) model vertex of each local vertex, sorted
    used: np.ndarray | None      # local vertices used by a triangle; None = all of them
    lip: np.ndarray              # local indices of the lip landmarks
    inner_lip: tuple             # local indices of the inner lips' facing pairs: (upper, lower)
    interior: slice              # local vertices from the mouth interior's first to its last
    skin_triangles: np.ndarray   # (Ts, 3) int32: the skin's triangles, `triangles`' first Ts
    skin_outline: np.ndarray     # (N,) bool: vertices on the skin's outer boundary
    inner_face: np.ndarray       # (Ts,) bool: skin triangles around the eyes, nose and mouth (_inner_face)
    upper_lids: list             # _eyelids.UpperLidVertices of each eye
    neutral: np.ndarray          # (N, 3) float32
    identity: np.ndarray         # (K, N, 3) float32
    expression: np.ndarray       # (E, N, 3) float32
    tooth: np.ndarray            # (T,) int8: the tooth each triangle belongs to (_teeth)
    eyeballs: tuple              # per eye (subject's left, right): _eyeballs
    relight: RelightMesh         # the face core and the lower face that is relit (affcore._relight)


_MESH_CACHE: dict = {}


def _mesh(model: FaceModel) -> _Mesh:
    hit = _MESH_CACHE.get(id(model))
    if hit is not None and hit[0] is model:
        return hit[1]
    tris, part = _face_triangles(model)
    used = np.unique(tris)
    lip_vertices = LANDMARK_VERTICES[list(_LIP_LANDMARKS)]
    upper, lower = LANDMARK_VERTICES[list(_INNER_LIP_UPPER)], LANDMARK_VERTICES[list(_INNER_LIP_LOWER)]
    verts = np.union1d(np.union1d(used, lip_vertices), np.concatenate([upper, lower]))
    local = np.searchsorted(verts, tris).astype(np.int32)
    interior = local[np.isin(part, (SOCKET, GUMS, TEETH))]
    neutral = np.ascontiguousarray(model.neutral_vertices[verts], dtype=np.float32)
    mesh = _Mesh(
        triangles=local,
        part=np.ascontiguousarray(part),
        vertices=verts,
        used=None if len(verts) == len(used) else np.searchsorted(verts, used),
        lip=np.searchsorted(verts, lip_vertices),
        inner_lip=(np.searchsorted(verts, upper), np.searchsorted(verts, lower)),
        # (a slice: cheaper per target than an index array; the eye sockets' vertices
        # between them take weights that no mouth pixel reads)
        interior=slice(int(interior.min()), int(interior.max()) + 1),
        skin_triangles=np.ascontiguousarray(local[part == SKIN]),
        skin_outline=_outer_boundary(local[part == SKIN], len(verts)),
        inner_face=_inner_face(model.neutral_vertices, tris[part == SKIN]),
        upper_lids=upper_lid_vertices(model.neutral_vertices[verts], local[part == SKIN],
                                      [np.searchsorted(verts, LANDMARK_VERTICES[a:a + 6]) for a in (36, 42)]),
        neutral=neutral,
        identity=np.ascontiguousarray(model.identity_basis[:, verts], dtype=np.float32),
        expression=np.ascontiguousarray(model.expression_basis[:, verts], dtype=np.float32),
        tooth=_teeth(model.neutral_vertices[verts], local, part,
                     float(model.neutral_vertices[np.concatenate([upper, lower]), 1].mean())),
        eyeballs=_eyeballs(model.neutral_vertices[verts], local, part, model.expression_basis[:, verts]),
        relight=relight_mesh(neutral, np.searchsorted(verts, LANDMARK_VERTICES), local[part == SKIN]),
    )
    if len(_MESH_CACHE) >= 4:
        _MESH_CACHE.clear()
    _MESH_CACHE[id(model)] = (model, mesh)
    return mesh


# deform_project with this camera returns the deformed vertices themselves
_NO_CAMERA = (np.diag([1.0, -1.0, -1.0]), 1.0, np.zeros(2))


def _smiling_photo_message(smile: float, keep_resting_face: bool) -> str:
    then = ("every target keeps at least that smile (keep_resting_face=True; the CLI's default, "
            "--replace-expression replaces it)" if keep_resting_face else
            "targets replace the smile but keep the photo's texture (its teeth, its cheeks)")
    return (f"the photo smiles (fitted mouthSmile_L + mouthSmile_R = {smile:.2f}; neutral photos stay below "
            f"{SMILING_PHOTO:g}): {then}. affcore's targets start from a neutral face: give a neutral photo of "
            f"the person")


class Synthesizer:
    """Fit a face once, then render it with any number of target expressions.

    Parameters
    ----------
    image : (H, W, 3) uint8 RGB photo of a (preferably neutral, frontal) face. Grey, RGBA
        and 16-bit images are converted; a grey photo (or grey stored as RGB) renders grey
        (R = G = B), with the mouth and eyes it uncovers in grey too.
    landmarks : (68, 2) iBUG landmarks in pixels; detected with dlib when omitted (a photo
        of several people of similar size raises SeveralFacesError: give the landmarks of
        the face meant, see :func:`affcore.landmarks.detect_landmarks`).
    model : the face model; default :func:`affcore.load_model`.
    fit_result : an existing fit of this image, to skip fitting.
    keep_resting_face : how a target meets the expression fitted to the photo. True
        (default): each blendshape becomes the larger of the target's and the fitted
        weight, so what a neutral face shows at rest (lid shape, a pressed mouth) stays and
        a target never adds to a smile already there (no double smile); the target
        "neutral" reproduces the photo. False: the target replaces the fitted weights
        outright (pure transfer; "neutral" then removes the photo's own expression).
        The targets start from a neutral face either way: a photo that smiles
        (:func:`affcore.fitting.fitted_smile` above ``SMILING_PHOTO``) warns with
        :class:`affcore.NonNeutralPhotoWarning`.
    threads : C++ worker threads for rendering and blending (0 = all cores). Results are
        identical for any value.
    shading : an :class:`affcore.shading.ExpressionShading` (learned from photo pairs,
        :func:`affcore.shading.load_expression_shading`), or None (default). With it the
        skin also darkens and lightens as the target expression folds it (creases,
        furrows), in proportion to the target's weight on each expression.
    relight : whether the lower face's skin takes the shading that the target's change of
        geometry brings under the photo's own light (estimated from the photo: the folds
        beside the nose darken as a smile deepens them, and the skin above the upper lip
        as it turns down; affcore._relight, docs/synthesis.md *Relit lower face*). None
        (default): relit unless ``shading`` is given, whose ratios, measured on real faces,
        hold that change already. False: the moved skin keeps the photo's shading. True
        with ``shading`` is refused (the change would be shaded twice).

    Examples
    --------
    >>> s = Synthesizer(photo)
    >>> happy = s.render(expression="happiness", intensity=0.8)
    >>> custom = s.render(aus={"AU12": 0.8, "AU6": 0.5})
    """

    def __init__(self, image, landmarks=None, model: FaceModel | None = None, fit_result: FitResult | None = None,
                 keep_resting_face: bool = True, threads: int = 0, shading=None, relight: bool | None = None):
        if relight not in (None, True, False):
            raise ValueError(f"relight: expected None, True or False, got {relight!r}")
        if relight is None:
            relight = shading is None
        elif relight and shading is not None:
            raise ValueError("relight=True with shading: the expression shading's ratios already hold the shading "
                             "that the change of geometry brings; give one of them (relight=None chooses)")
        self.image = np.ascontiguousarray(as_rgb8(image))
        self.model = model if model is not None else load_model()
        if fit_result is None:
            lm = detect_landmarks(self.image) if landmarks is None else landmarks
            # dlib marks the inner lower lip of a wide smile mid-lip: a fit to that splits the lip
            # with a dark gap when a target lowers it (refine_lower_inner_lip). fit() checks
            # given landmarks against the image.
            fit_result = fit(self.image, landmarks=refine_lower_inner_lip(self.image, lm), model=self.model)
        self.fit = fit_result
        self.threads = int(threads)
        if self.threads < 0:
            raise ValueError(f"threads: must be >= 0, got {threads}")
        self.keep_resting_face = bool(keep_resting_face)
        smile = fitted_smile(self.fit)
        if smile > SMILING_PHOTO:
            warnings.warn(_smiling_photo_message(smile, self.keep_resting_face), NonNeutralPhotoWarning, stacklevel=2)
        mesh = self._mesh = _mesh(self.model)
        if shading is not None:
            from .shading import ExpressionShading, ShadingWeights

            if not isinstance(shading, ExpressionShading):
                raise TypeError(f"shading: expected an ExpressionShading or None, got {type(shading).__name__}")
            if shading.log_ratio.shape[1] != self.model.num_vertices:
                raise ValueError(f"shading: made for a model of {shading.log_ratio.shape[1]} vertices, "
                                 f"this one has {self.model.num_vertices}")
            shading = ShadingWeights(shading, mesh.vertices)
        self._shading = shading
        self._triangles, self._part = mesh.triangles, mesh.part
        # identity and fitted expression applied once; per target only the blendshapes
        # whose weights differ from the fit are added (with keep_resting_face, those the
        # target raises above it: a few, instead of all of them)
        k = len(self.fit.identity)
        self._fitted_expression = np.asarray(self.fit.expression, np.float64)
        identity = _core.deform_project(mesh.neutral, mesh.identity[:k], self.fit.identity.astype(np.float64),
                                        *_NO_CAMERA, threads=self.threads)
        self._fitted_vertices = _core.deform_project(identity, mesh.expression, self._fitted_expression,
                                                     *_NO_CAMERA, threads=self.threads)
        self._camera = (np.ascontiguousarray(self.fit.rotation, dtype=np.float64), float(self.fit.scale),
                        np.ascontiguousarray(self.fit.translation, dtype=np.float64))
        # the eyeballs that turn with the gaze weights (affcore._gaze), the subject's left then
        # right (None for one the mesh lacks): vertices, centre (of the fitted globe), and the
        # expression basis over them (None where no blendshape moves them)
        gaze = has_gaze(self.model.expression_names)
        self._eyeballs = [None if eye is None or not gaze
                          else (eye[0], sphere_centre(self._fitted_vertices[eye[1]]), eye[2]) for eye in mesh.eyeballs]
        # eyeBlink's change from the fit is scaled so that a closed lid meets the lower lid
        # (_closing_gain; measured with the model's own blink first)
        self._blink, self._blink_gain = _eye_columns(self.model.expression_names, "eyeBlink"), np.ones(2)
        self._source_screen = self._screen(self.fit.expression)
        self._down = screen_down(self.fit.rotation)
        landmarks = np.searchsorted(mesh.vertices, LANDMARK_VERTICES)
        closed = self._screen(_closed_eyes(self.fit.expression, self.model.expression_names))
        self._blink_gain = _closing_gain(self._source_screen[landmarks, :2], closed[landmarks, :2], self._down)
        self._upper_lids = upper_lid_layout(mesh.upper_lids, mesh.neutral[:, 0], self._source_screen[:, :2],
                                            self._down, self.fit.scale, self.image)
        iod = self.fit.iod_px
        self._margin = int(np.ceil(0.25 * iod)) + 2
        # visibility of the fitted face in the photo: a depth buffer over its bounding box
        source_xy = self._used_xy(self._source_screen)
        self._source_corners = _corners(source_xy)
        x0, y0, x1, y1 = self._bbox(source_xy)
        self._src_box = (x0, y0, x1, y1)
        shifted = self._source_screen - np.array([x0, y0, 0], np.float32)
        self._src_raster = rasterize(shifted, self._triangles, y1 - y0, x1 - x0, cull_backfaces=True,
                                     threads=self.threads)
        tid = self._src_raster.triangle_id
        self._src_covered = (tid >= 0).view(np.uint8)
        # what targets render: all but the skin along the outline (see RIM_FACING); the
        # skin comes first in the mesh, the parts that need normals (shaded) after it
        outline = _outline_skin(mesh, self._source_screen, self._src_covered, (x0, y0), self.fit.iod_px)
        skin = mesh.skin_triangles[~outline]
        ns = len(mesh.skin_triangles)
        self._target_triangles = np.concatenate([skin, mesh.triangles[ns:]])
        self._target_part = np.concatenate([np.full(len(skin), SKIN, np.int8), mesh.part[ns:]])
        self._target_skin = self._target_part == SKIN
        self._target_shaded = np.arange(len(skin), len(self._target_part), dtype=np.int32)
        self._target_tooth = np.concatenate([np.zeros(len(skin), np.int8), mesh.tooth[ns:]])
        # The skin left out is still rasterized, after the rest, and what it covers is left
        # uncovered: warped with the surroundings, as the comment at RIM_FACING says, and not
        # drawn from whatever lies behind it. On a turned face the far cheek's rim lies in front
        # of teeth and eyeball, which showed through in their materials' colours even where
        # the target is the photo's own expression, and in front of skin whose photo position
        # is the outline's.
        self._raster_triangles = np.concatenate([self._target_triangles, mesh.skin_triangles[outline]])
        # each pixel's part, -1 off the face: index -1 takes the appended -1
        self._src_part = np.take(np.append(self._part, np.int8(-1)), tid)
        # whether the photo shows teeth whose colour the rendered teeth take (landmarks.shows_teeth,
        # from the mouth's pixels classified once for it and the colours)
        mouth = mouth_pixels(self.image, self.fit.landmarks)
        self._shows_teeth = _shows_teeth(self.fit.landmarks, mouth[1])
        eyes = self._estimate_eye_colours()
        self._light = self._estimate_light(eyes.get(SCLERA))
        self._photo_colours = {**eyes, **_mouth_colours(*mouth, self.fit.landmarks, self._light, self._shows_teeth)}
        # lit colour of each part's material (skin never needs one)
        lit = np.zeros((len(_PART_NAMES), 3), np.float32)
        for q, a in ALBEDO.items():
            lit[q] = self._photo_colours.get(q, np.asarray(a, np.float32) * self._light)
        # A photo without colour (grey, or grey stored as RGB: FER2013, CK+, old photographs)
        # gets materials without colour, at the brightness cv2's RGB2GRAY gives them: the
        # albedos' tints drew yellow teeth and red gums into black-and-white pictures.
        bx0, by0, bx1, by1 = self._src_box
        if _colourless(self.image[by0:by1, bx0:bx1]):
            lit[:] = (lit @ _LUMA)[:, None]
        self._lit = lit
        k = max(3, int(0.06 * self.fit.iod_px) | 1)
        self._dilate_kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
        # the light the photo's face is lit by, from its shading on the fitted geometry
        self._relight = prepare_relight(mesh.relight, self.image, self._source_screen,
                                        self._seen_vertices) if relight else None

    def _seen_vertices(self, vertices=slice(None)) -> np.ndarray:
        """bool per mesh vertex (of ``vertices``): whether the photo shows it, i.e. it lies
        no more than 1.5 mm behind the fitted face's depth buffer at its nearest pixel (as
        transfer_face decides for the surface it samples) and inside that buffer's box."""
        x0, y0 = self._src_box[:2]
        depth = self._src_raster.depth
        h, w = depth.shape
        p = self._source_screen[vertices]
        col, row = np.rint(p[:, 0] - x0), np.rint(p[:, 1] - y0)
        inside = (col >= 0) & (col < w) & (row >= 0) & (row < h)
        front = depth[np.clip(row, 0, h - 1).astype(np.intp), np.clip(col, 0, w - 1).astype(np.intp)]
        return inside & (p[:, 2] <= front + 0.15 * self.fit.scale)

    def _vertex_brightness(self) -> tuple[np.ndarray, np.ndarray]:
        """The photo's log(grey + 8) at each mesh vertex under the fit (affcore._relight.grey_at),
        and whether it shows that vertex's skin facing the camera (|n_z| > 0.55: at the
        silhouette the photo's pixel is half background)."""
        screen = self._source_screen
        normals = vertex_normals(screen, self._mesh.skin_triangles)  # zero off the skin
        return grey_at(self.image, screen[:, :2]), self._seen_vertices() & (np.abs(normals[:, 2]) > 0.55)

    # -- geometry --------------------------------------------------------------------------
    def _geometry_change(self, blendshapes: np.ndarray) -> np.ndarray:
        """The change of expression weights from the fit that the geometry applies for
        these blendshapes: (E,) float64, eyeBlink's scaled by the closing gain."""
        change = np.asarray(blendshapes, np.float64) - self._fitted_expression
        change[self._blink] *= self._blink_gain
        return change

    def _screen(self, blendshapes: np.ndarray) -> np.ndarray:
        """Screen positions (N, 3) float32 of the mesh's vertices with these blendshapes,
        the eyeballs turned by the gaze weights' change (affcore._gaze)."""
        change = self._geometry_change(blendshapes)
        screen = _core.deform_project(self._fitted_vertices, self._mesh.expression, change, *self._camera,
                                      threads=self.threads)
        if all(eye is None for eye in self._eyeballs):
            return screen
        for eye, turn in zip(self._eyeballs, gaze_rotations(change, self.model.expression_names)):
            if eye is not None and turn is not None:
                ball, centre, basis = eye
                moved = self._fitted_vertices[ball].astype(np.float64)
                if basis is not None:
                    moved += (change @ basis).reshape(-1, 3)
                screen[ball] = self.fit.project((moved - centre) @ turn.T + centre)
        return screen

    def _used_xy(self, screen: np.ndarray) -> np.ndarray:
        u = self._mesh.used
        return screen[:, :2] if u is None else screen[u, :2]

    def _bbox(self, screen_xy: np.ndarray, margin: int = 0):
        """The pixel box (x0, y0, x1, y1), end exclusive, around these points plus a
        margin, inside the image; its sides are whole multiples of _BLOCK where the image
        allows (the displacement extension works on blocks of that many pixels)."""
        h, w = self.image.shape[:2]
        x0 = int(np.clip(np.floor(screen_xy[:, 0].min()) - margin, 0, w - 1))
        y0 = int(np.clip(np.floor(screen_xy[:, 1].min()) - margin, 0, h - 1))
        x1 = int(np.clip(np.ceil(screen_xy[:, 0].max()) + margin + 1, x0 + 1, w))
        y1 = int(np.clip(np.ceil(screen_xy[:, 1].max()) + margin + 1, y0 + 1, h))
        x0, x1 = _whole_blocks(x0, x1, w)
        y0, y1 = _whole_blocks(y0, y1, h)
        return x0, y0, x1, y1

    def _estimate_light(self, sclera: np.ndarray | None = None) -> np.ndarray:
        """Light reaching the face, per unit albedo, as RGB: the brightness of the visible
        skin, with a little of the skin's tint (the camera's white balance and the light's
        colour show in it; the skin's own redness should not tint teeth and eyes), its level
        moved half way (geometrically) to what the photo's sclera says, when it shows any
        (see SCLERA_WHITE)."""
        x0, y0, x1, y1 = self._src_box
        box = self.image[y0:y1, x0:x1]
        # the brighter half of the skin: away from shadows, beard and brows. Luminance x 3
        # is an integer in [0, 765]; median and means come from its histogram over the
        # skin, with each bin's channel sums (one C++ pass over the box)
        count, sums = _core.rgb_sum_histogram(box, self._src_part, SKIN)
        n = int(count.sum())
        if n < 50:
            light = np.full(3, 150.0 / SKIN_ALBEDO, np.float32)
        else:
            cum = np.cumsum(count)
            lo, hi = np.searchsorted(cum, (n - 1) // 2, side="right"), np.searchsorted(cum, n // 2, side="right")
            first = int(np.ceil((lo + hi) / 2))  # the totals >= the median
            bright = sums[first:].sum(axis=0) / count[first:].sum()
            grey = np.full(3, bright.mean())
            light = ((0.8 * grey + 0.2 * bright) / SKIN_ALBEDO).astype(np.float32)
        if sclera is not None:
            level = float(np.mean(sclera)) / (SCLERA_WHITE * float(light.mean()))
            light = (light * np.sqrt(max(level, 1e-3))).astype(np.float32)
        return light

    def _estimate_eye_colours(self) -> dict:
        """The photo's own sclera and iris colours (median of their visible pixels), for
        eyeball that widened lids uncover; left out when the photo shows fewer than 20
        pixels of one (eyes shut), which then takes the material model's colour."""
        x0, y0, x1, y1 = self._src_box
        box = self.image[y0:y1, x0:x1]
        out = {}
        for q in (SCLERA, IRIS):
            ys, xs = np.divmod(np.flatnonzero(self._src_part.ravel() == q), box.shape[1])
            px = box[ys, xs].astype(np.float32)
            if len(px) >= 20:
                lum = px.mean(axis=1)
                # sclera: its lit half (lashes and lid shadow darken the rest)
                px = px[lum >= np.median(lum)] if q == SCLERA else px
                out[q] = np.median(px, axis=0).astype(np.float32)
        return out

    # -- targets ---------------------------------------------------------------------------
    def blendshapes(self, expression: str | None = None, intensity: float = 1.0,
                    aus: Mapping[str, float] | None = None, va=None) -> np.ndarray:
        """The (E,) blendshape weights rendered for a target given as an expression with
        intensity, action units, or a valence-arousal pair (exactly one of them), combined
        with the fitted expression as ``keep_resting_face`` says."""
        given = [x is not None for x in (expression, aus, va)]
        if sum(given) != 1:
            raise ValueError("give exactly one of expression=, aus= or va=")
        if expression is not None:
            target = affect.expression_blendshapes(expression, intensity)
        elif aus is not None:
            target = affect.aus_to_blendshapes(aus)
        else:
            try:
                v, a = va
            except (TypeError, ValueError):
                raise ValueError(f"va: expected a (valence, arousal) pair, got {va!r}") from None
            target = affect.va_to_blendshapes(v, a)
        if not self.keep_resting_face:
            return target
        return np.maximum(target, _resting_face(self.fit.expression, target, self.model.expression_names))

    def _checked_blendshapes(self, expression, intensity, aus, va, blendshapes) -> np.ndarray:
        if blendshapes is None:
            return self.blendshapes(expression, intensity, aus, va)
        blendshapes = np.asarray(blendshapes, dtype=np.float64)
        if blendshapes.shape != (self.model.num_expression,) or not np.isfinite(blendshapes).all():
            raise ValueError(f"blendshapes: expected {self.model.num_expression} finite weights")
        return np.clip(blendshapes, 0.0, 1.0)

    def render(self, expression: str | None = None, intensity: float = 1.0, aus: Mapping[str, float] | None = None,
               va=None, blendshapes: np.ndarray | None = None) -> np.ndarray:
        """The photo with the face showing the target: (H, W, 3) uint8."""
        bs = self._checked_blendshapes(expression, intensity, aus, va, blendshapes)
        box, comp, region, _ = self._compose(bs)
        return self._blend(box, comp, region)

    def render_full(self, expression=None, intensity=1.0, aus=None, va=None, blendshapes=None) -> RenderedTarget:
        """Like :meth:`render`, also returning the composite and masks (for inspection).

        ``blendshapes`` (E,) in [0, 1] renders exactly those weights (no resting-face rule)."""
        bs = self._checked_blendshapes(expression, intensity, aus, va, blendshapes)
        (x0, y0, x1, y1), comp, region, triangle_id = self._compose(bs)
        h, w = self.image.shape[:2]
        inside = region.view(bool)
        composite = self.image.copy()
        composite[y0:y1, x0:x1][inside] = comp[inside]
        mask = np.zeros((h, w), bool)
        mask[y0:y1, x0:x1] = inside
        face = np.zeros((h, w), bool)
        face[y0:y1, x0:x1] = triangle_id >= 0
        image = self._blend((x0, y0, x1, y1), comp, region)
        return RenderedTarget(image=image, composite=composite, mask=mask, face_mask=face, blendshapes=bs)

    def _face(self, blendshapes: np.ndarray):
        """The deformed face over the box worked on: the box, the face's raster over it, the
        composite at the pixels it covers, and its displacement field's extension to the
        surroundings (transfer_face's block means, extended; see _extension_small)."""
        screen = self._screen(blendshapes)
        xy = self._used_xy(screen)
        # corners of the deformed face's box and of the fitted one: their box is the union's
        both = np.vstack([_corners(xy), self._source_corners])
        x0, y0, x1, y1 = self._bbox(both, self._margin)
        bw, bh = x1 - x0, y1 - y0
        r = rasterize(screen - np.array([x0, y0, 0], np.float32), self._raster_triangles, bh, bw,
                      cull_backfaces=True, threads=self.threads)
        if len(self._raster_triangles) > len(self._target_triangles):
            r.triangle_id[r.triangle_id >= len(self._target_triangles)] = -1
        # the face: the photo where it showed the surface, shaded materials where it did not
        source, lids = self._target_sources(screen, blendshapes)
        sx0, sy0 = self._src_box[:2]
        lip = float(screen[self._mesh.lip, 2].mean())
        cavity = _cavity_light(r.triangle_id, self._target_part, r.depth,
                               screen[self._mesh.lip, :2] - np.array([x0, y0], np.float32), lip)
        # the displacement field comes as block means: its extension works at a quarter of
        # the resolution (the field is smooth)
        reduce = _BLOCK if min(bh, bw) >= 64 else 1
        comp, disp, known = _core.transfer_face(
            self.image, r.triangle_id, r.barycentrics, r.depth, self._target_triangles, self._target_part,
            source, screen, self._target_shaded, self._src_raster.depth, (sx0, sy0), (x0, y0),
            # 1.5 mm of slack (in pixels): the depth buffer is sampled at the nearest pixel centre
            0.15 * self.fit.scale, lip, 1.5 * self.fit.scale, self._lit, reduce=reduce, threads=self.threads,
            skin_shade=self._skin_shade(blendshapes, screen),
            lid_margin=int(round(LID_MARGIN * self.fit.scale)), mouth_sliver=int(round(MOUTH_SLIVER * self.fit.scale)),
            mouth_opened=_mouth_opened(screen[:, :2], self._source_screen[:, :2], *self._mesh.inner_lip,
                                       self._mesh.interior, self.fit.scale),
            cavity_light=None if cavity is None else cavity[0], cavity_origin=(0, 0) if cavity is None else cavity[1],
            light_up=KEY_LIGHT_UP, cavity_ambient=CAVITY_AMBIENT,
            tooth=self._target_tooth, papilla_width=int(round(PAPILLA_WIDTH * self.fit.scale)))
        if lids is not None:  # where a closing lid unfolds skin the photo hid: the lid's colour and texture
            fill_lids(comp, r.triangle_id, r.barycentrics, self._target_triangles, lids,
                      screen[:, :2] - np.array([x0, y0], np.float32), len(screen), self._target_skin, self.fit.scale,
                      threads=self.threads)
        # surroundings follow the face: the photo warped by the face's motion, extended smoothly
        small = _extension_small(disp, known, sigma=0.12 * self.fit.iod_px / reduce)
        return (x0, y0, x1, y1), r, comp, small

    def _skin_shade(self, blendshapes: np.ndarray, screen: np.ndarray) -> np.ndarray | None:
        """(N,) float32 factors for the skin's colour per mesh vertex, or None to leave it:
        the expression shading's, or else the relighting's where the geometry changes (a
        synthesizer has one or the other, or neither)."""
        if self._shading is not None:
            return self._shading.factors(blendshapes - self._fitted_expression)
        if self._relight is None or not self._geometry_change(blendshapes).any():
            return None
        return relight_factors(self._relight, screen)

    def _target_sources(self, screen: np.ndarray, blendshapes: np.ndarray):
        """Where a target (``blendshapes``, with vertices at ``screen``) samples each vertex
        in the photo (N, 3): where the fit put it, except on upper lids that move down
        relative to the skin above them, whose skin is laid out again (affcore._eyelids); and
        those lids (_eyelids.CarriedLids, or None)."""
        blink = self._geometry_change(blendshapes)[self._blink]
        lids = carry_upper_lids(screen[:, :2], self._source_screen[:, :2], self._upper_lids, self._down,
                                self.fit.scale, blink[_LID_BLINK])
        if lids is None:
            return self._source_screen, None
        source = self._source_screen.copy()
        source[lids.vertices, :2] += lids.moves
        return source, lids

    def _compose(self, blendshapes: np.ndarray):
        """The box worked on, the composite over it (rendered face + warped surroundings;
        defined inside the region only), the blend region (uint8 0/1) and the deformed
        face's raster over the box (triangle ids, -1 where it does not cover)."""
        (x0, y0, x1, y1), r, comp, small = self._face(blendshapes)
        sx0, sy0 = self._src_box[:2]
        surround = (self.image, r.triangle_id, (x0, y0), small, self._src_covered, (sx0 - x0, sy0 - y0))
        region0 = _core.transfer_surround(*surround, comp, 0.3, threads=self.threads)
        # blend region: the union of the fitted and the deformed face, plus the warp's reach
        region = cv2.dilate(region0, self._dilate_kernel)
        region[[0, -1], :] = 0  # the blend needs a ring of fixed pixels inside the box
        region[:, [0, -1]] = 0
        # the composite matters inside the region only: the warped photo where dilation added to it
        _core.transfer_ring(*surround, region0, region, comp, threads=self.threads)
        return (x0, y0, x1, y1), comp, region, r.triangle_id

    def _blend(self, box, comp, region) -> np.ndarray:
        x0, y0, x1, y1 = box
        out = self.image.copy()
        if resolve_device("auto") == "cuda":
            target = np.ascontiguousarray(self.image[y0:y1, x0:x1])
            out[y0:y1, x0:x1] = poisson_blend(comp, target, region, tolerance=_BLEND_TOLERANCE)
        else:
            # in place into the copy's box (no box-sized copies). The composite meets the
            # photo along the mask's edge, so one edge-local multigrid cycle does (see
            # docs/synthesis.md); a composite that does not is solved by CG to the tolerance.
            _core.poisson_blend_edge_into(comp, out, region, x0, y0, threads=self.threads, tolerance=_BLEND_TOLERANCE)
        return out


# The blend's stopping tolerance where it iterates (on the GPU, and the CPU's fallback): the
# solve starts from a close guess and one multigrid-preconditioned CG step usually does;
# 3e-3 (rather than poisson_blend's default 1e-3) saves the second step in about a third
# of the targets and leaves the result within 0.11 grey levels (mean; 8 at most) of the
# converged solve (280 London and wild targets).
_BLEND_TOLERANCE = 3e-3

_BLOCK = 4  # side of the blocks the displacement extension works on (boxes of 64+ pixels)


def _mouth_colours(lips: np.ndarray, teeth: np.ndarray, landmarks: np.ndarray, light: np.ndarray,
                   shows_teeth: bool) -> dict:
    """The photo's own colours for the mouth's materials, where it shows them (``lips`` and
    ``teeth``: the photo's pixels as landmarks.mouth_pixels gives them): the gums
    and tongue take the hue of the photo's lips at the gums' albedo brightness (the
    material model's saturated red drew a painted stripe over teeth that a raised upper lip
    bares); the teeth take the colour of the photo's teeth when it shows at least
    TEETH_COLOUR_AREA of them (the photo's own teeth, in its mouth's shade, are the best
    guide to the colour of those a target uncovers next to them). Parts left out keep the
    material model (ALBEDO x light)."""
    out = {}
    if len(lips) >= 20:
        hue = np.median(lips.astype(np.float32), axis=0)
        gums = float(np.mean(np.asarray(ALBEDO[GUMS], np.float32) * light))
        out[GUMS] = (hue * (gums / max(float(hue.mean()), 1.0))).astype(np.float32)
    iod = inter_ocular_distance(landmarks)
    if shows_teeth and len(teeth) >= TEETH_COLOUR_AREA * iod * iod:
        out[TEETH] = np.median(teeth.astype(np.float32), axis=0).astype(np.float32)
    return out


# cv2.COLOR_RGB2GRAY's weights (ITU-R BT.601)
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def _colourless(rgb: np.ndarray) -> bool:
    """Whether an (H, W, 3) uint8 image has no colour: at most 1 % of its pixels (every
    fourth row and column) have channels more than 3 levels apart (JPEG's chroma noise in a
    grey picture stored as colour)."""
    sample = rgb[::4, ::4].astype(np.int16)
    spread = sample.max(axis=2) - sample.min(axis=2)
    return bool(np.count_nonzero(spread > 3) <= 0.01 * spread.size)


def _corners(xy: np.ndarray) -> np.ndarray:
    """[[x min, y min], [x max, y max]] of (N, 2) points. (Per column: numpy reduces an
    (N, 2) array along axis 0 two values at a time, about 40 times slower.)"""
    x, y = xy[:, 0], xy[:, 1]
    return np.array([[x.min(), y.min()], [x.max(), y.max()]], dtype=xy.dtype)


def _whole_blocks(a: int, b: int, n: int) -> tuple[int, int]:
    """[a, b) grown to a whole number of _BLOCK pixels inside [0, n): at the end first,
    then at the start; unchanged where [0, n) is too small."""
    extra = -(b - a) % _BLOCK
    grow = min(extra, n - b)
    return a - min(extra - grow, a), b + grow


def _extension_small(disp: np.ndarray, known: np.ndarray, sigma: float) -> np.ndarray:
    """The smooth extension of a displacement field to the surroundings of where it is
    known, decaying to zero about ``sigma`` pixels away: a normalised Gaussian average of
    the known displacements, faded by the distance from the known region.

    ``known`` is the covered fraction of each pixel and ``disp`` the displacement times
    it (0 where nothing is known), both at the reduced resolution the extension works at
    (transfer_face's block means); ``sigma`` is in those pixels. The caller upsamples the
    result bilinearly (as cv2.resize INTER_LINEAR) and keeps the exact field on the face."""
    s = max(sigma, 1.0)
    num = cv2.GaussianBlur(disp, (0, 0), s)
    den = cv2.GaussianBlur(known, (0, 0), s)
    avg = num / np.maximum(den, 1e-6)[..., None]
    dist = cv2.distanceTransform((known < 0.5).astype(np.uint8), cv2.DIST_L2, 3)
    fade = np.exp(-((dist / s) ** 2))
    return np.ascontiguousarray(avg * (fade * (den > 1e-4))[..., None], dtype=np.float32)


def synthesize(image, expression: str | None = None, intensity: float = 1.0, aus: Mapping[str, float] | None = None,
               va=None, landmarks=None, model: FaceModel | None = None, shading=None,
               relight: bool | None = None) -> np.ndarray:
    """Synthesize one target on one photo: fit, deform, render, blend.

    Parameters
    ----------
    image : (H, W, 3) uint8 RGB photo (grey, RGBA, 16-bit are converted).
    expression : one of :data:`affcore.affect.EXPRESSIONS`, with ``intensity`` in [0, 1].
    aus : action-unit intensities in [0, 1], e.g. ``{"AU12": 0.8, "AU6": 0.5}``.
    va : (valence, arousal) in [-1, 1]^2.
    landmarks : (68, 2) landmarks; detected when omitted.
    shading : expression shading (:func:`affcore.shading.load_expression_shading`), or None.
    relight : relight the lower face's moved skin (see :class:`Synthesizer`).

    Give exactly one of ``expression``, ``aus`` and ``va``. For many targets of one photo,
    use :class:`Synthesizer`, which fits once.
    """
    synth = Synthesizer(image, landmarks=landmarks, model=model, shading=shading, relight=relight)
    return synth.render(expression, intensity, aus, va)
