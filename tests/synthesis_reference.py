"""The original, all-numpy implementation of :class:`affcore.synthesis.Synthesizer`, kept
as the reference the fused C++ fast path is tested against (tests/test_synthesis_fast.py) and
for profiling comparisons. Not part of the public API; do not use it for rendering.
"""
from __future__ import annotations

import dataclasses
from typing import Mapping

import numpy as np

from affcore._gaze import gaze_rotations, on_globe, sphere_centre
from affcore._eyelids import carry_upper_lids, fill_lids, screen_down, upper_lid_layout
from affcore.blend import poisson_blend
from affcore.fitting import FitResult, fit
from affcore.images import as_rgb8
from affcore.landmarks import detect_landmarks, mouth_pixels, refine_lower_inner_lip, shows_teeth, validate_landmarks
from affcore.model import LANDMARK_VERTICES, FaceModel, load_model
from affcore.render import interpolate, rasterize, sample_bilinear

# The mesh parts, materials, result type and target weights are shared with the fast path;
# only the per-pixel implementation is the original one.
from affcore.synthesis import (
    ALBEDO, CAVITY_AMBIENT, GUMS, IRIS, KEY_LIGHT_UP, LID_MARGIN, MOUTH_SLIVER, PAPILLA_WIDTH, SCLERA, SCLERA_WHITE,
    SKIN, SKIN_ALBEDO, SOCKET, TEETH,
    RenderedTarget, Synthesizer, _INNER_LIP_LOWER, _INNER_LIP_UPPER, _LID_BLINK, _LUMA, _PART_NAMES, _closed_eyes,
    _closing_gain, _cavity_light, _eye_columns, _colourless, _face_triangles, _mesh, _mouth_colours, _mouth_opened,
    _outline_skin)


def _vertex_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals (V, 3), unit length (zero for unused vertices)."""
    v0, v1, v2 = (vertices[triangles[:, k]] for k in range(3))
    fn = np.cross(v1 - v0, v2 - v0)
    n = np.zeros_like(vertices)
    for k in range(3):
        for c in range(3):
            n[:, c] += np.bincount(triangles[:, k], weights=fn[:, c], minlength=len(vertices))
    length = np.linalg.norm(n, axis=1, keepdims=True)
    return (n / np.maximum(length, 1e-12)).astype(np.float32)


def _runs(inside: np.ndarray):
    """(x, start, end) of each column's runs of True in a boolean map, rows [start, end),
    column by column, top to bottom."""
    for x in np.flatnonzero(inside.any(axis=0)):
        edges = np.flatnonzero(np.diff(np.concatenate([[0], inside[:, x], [0]]).astype(np.int8)))
        for start, end in zip(edges[::2], edges[1::2]):
            yield int(x), int(start), int(end)


def _hidden_runs(state: np.ndarray):
    """The runs (as _runs) of 1s, hidden pixels, in a state map."""
    return _runs(state == 1)


class ReferenceSynthesizer:
    """:class:`affcore.synthesis.Synthesizer` in its original all-numpy form: the same
    parameters, methods and results (to the tolerances of tests/test_synthesis_fast.py)."""

    def __init__(self, image, landmarks=None, model: FaceModel | None = None, fit_result: FitResult | None = None,
                 keep_resting_face: bool = True, threads: int = 0):
        self.image = as_rgb8(image)
        self.model = model if model is not None else load_model()
        if fit_result is None:
            lm = detect_landmarks(self.image) if landmarks is None else validate_landmarks(landmarks)
            fit_result = fit(self.image, landmarks=refine_lower_inner_lip(self.image, lm), model=self.model)
        self.fit = fit_result
        self.threads = int(threads)
        self.keep_resting_face = bool(keep_resting_face)
        m = self.model
        self._triangles, self._part = _face_triangles(m)
        self._used = np.unique(self._triangles)
        # identity applied once; per target only the expression basis is added
        base = m.neutral_vertices.astype(np.float32) + np.tensordot(
            self.fit.identity.astype(np.float32), m.identity_basis[: len(self.fit.identity)], axes=1)
        self._base = base
        self._expression_matrix = m.expression_basis.reshape(m.num_expression, -1)
        source = self._vertices(self.fit.expression)
        self._source_screen = self.fit.project(source)
        # each eyeball's vertices (the subject's left, then right) and its centre, about which
        # it turns with the gaze: the fitted sphere through the points of its sclera that lie
        # on the neutral globe (the shared geometry of affcore._gaze)
        self._eyeballs = []
        for side in (1, -1):
            ball = [np.unique(self._triangles[self._part == q]) for q in (SCLERA, IRIS)]
            sclera, iris = [v[np.sign(m.neutral_vertices[v, 0]) == side] for v in ball]
            globe = sclera[on_globe(m.neutral_vertices[sclera])]
            self._eyeballs.append((np.union1d(sclera, iris), sphere_centre(source[globe])))
        self._down = screen_down(self.fit.rotation)
        closed = self.fit.project(self._vertices(_closed_eyes(self.fit.expression, m.expression_names)))
        self._blink = _eye_columns(m.expression_names, "eyeBlink")
        self._blink_gain = _closing_gain(self._source_screen[LANDMARK_VERTICES, :2], closed[LANDMARK_VERTICES, :2],
                                         self._down)
        h, w = self.image.shape[:2]
        iod = self.fit.iod_px
        self._margin = int(np.ceil(0.25 * iod)) + 2
        # visibility of the fitted face in the photo: a depth buffer over its bounding box
        x0, y0, x1, y1 = self._bbox(self._source_screen[self._used])
        self._src_box = (x0, y0, x1, y1)
        shifted = self._source_screen - np.array([x0, y0, 0], np.float32)
        self._src_raster = rasterize(shifted, self._triangles, y1 - y0, x1 - x0, threads=self.threads)
        # targets leave out the skin along the outline (synthesis.RIM_FACING); _face_triangles
        # lists the triangles in the order of the fast path's mesh
        mesh = _mesh(m)
        covered = (self._src_raster.triangle_id >= 0).astype(np.uint8)
        local = np.ascontiguousarray(self._source_screen[mesh.vertices], dtype=np.float32)
        keep = np.ones(len(self._triangles), bool)
        keep[:len(mesh.skin_triangles)] = ~_outline_skin(mesh, local, covered, (x0, y0), self.fit.iod_px)
        self._target_triangles, self._target_part = self._triangles[keep], self._part[keep]
        self._target_tooth = mesh.tooth[keep]  # (synthesis._teeth, shared like the mesh's order)
        self._left_out = self._triangles[~keep]
        # the upper lids' skin, laid out again under targets that move a lid down (the shared
        # geometry of affcore._eyelids, like _mouth_opened's)
        self._mesh_vertices = mesh.vertices  # (the fast path's mesh indexes these model vertices)
        self._upper_lids = upper_lid_layout(mesh.upper_lids, mesh.neutral[:, 0], local[:, :2], self._down,
                                            self.fit.scale, self.image)
        self._shows_teeth = shows_teeth(self.image, self.fit.landmarks)
        # (a pixel statistic, not part of what is tested)
        self._colourless = _colourless(self.image[y0:y1, x0:x1])
        self._inner_lip = (LANDMARK_VERTICES[list(_INNER_LIP_UPPER)], LANDMARK_VERTICES[list(_INNER_LIP_LOWER)])
        self._interior = np.unique(self._triangles[np.isin(self._part, (SOCKET, GUMS, TEETH))])
        eyes = self._estimate_eye_colours()
        self._light = self._estimate_light(eyes.get(SCLERA))
        # the mouth's colours from the photo: plain pixel statistics, not part of what is tested
        self._photo_colours = {**eyes, **_mouth_colours(*mouth_pixels(self.image, self.fit.landmarks), self.fit.landmarks,
                                                      self._light, self._shows_teeth)}

    # -- geometry --------------------------------------------------------------------------
    def _vertices(self, blendshapes: np.ndarray) -> np.ndarray:
        offsets = blendshapes.astype(np.float32) @ self._expression_matrix
        return self._base + offsets.reshape(-1, 3)

    _bbox = Synthesizer._bbox  # plain box arithmetic, not part of what is tested

    def _visible(self, xy: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """Whether surface points with photo positions ``xy`` (N, 2) and fitted depths (N,)
        were visible in the photo (nothing of the face lay in front of them)."""
        x0, y0, x1, y1 = self._src_box
        ix = np.clip(np.rint(xy[:, 0]).astype(np.int64) - x0, 0, x1 - x0 - 1)
        iy = np.clip(np.rint(xy[:, 1]).astype(np.int64) - y0, 0, y1 - y0 - 1)
        front = self._src_raster.depth[iy, ix]
        # 1.5 mm of slack (in pixels): the depth buffer is sampled at the nearest pixel centre
        return depth <= front + 0.15 * self.fit.scale

    def _estimate_light(self, sclera=None) -> np.ndarray:
        """Light reaching the face, per unit albedo, as RGB: the brightness of the visible
        skin, with a little of the skin's tint (the camera's white balance and the light's
        colour show in it; the skin's own redness should not tint teeth and eyes)."""
        r = self._src_raster
        x0, y0, x1, y1 = self._src_box
        tid = r.triangle_id
        skin = tid >= 0
        skin[skin] = self._part[tid[skin]] == SKIN
        patch = self.image[y0:y1, x0:x1][skin]
        if len(patch) < 50:
            light = np.full(3, 150.0 / SKIN_ALBEDO, np.float32)
        else:
            # the brighter half of the skin: away from shadows, beard and brows
            lum = patch.mean(axis=1)
            bright = patch[lum >= np.median(lum)].mean(axis=0)
            grey = np.full(3, bright.mean())
            light = ((0.8 * grey + 0.2 * bright) / SKIN_ALBEDO).astype(np.float32)
        if sclera is not None:
            # half way, geometrically, to the level the sclera gives
            light = light * np.sqrt(max(float(np.mean(sclera)) / (SCLERA_WHITE * float(light.mean())), 1e-3))
        return light.astype(np.float32)

    def _estimate_eye_colours(self) -> dict:
        """The photo's own sclera and iris colours (median of their visible pixels), for
        eyeball that widened lids uncover; from the material model when the eyes are shut."""
        r = self._src_raster
        x0, y0, x1, y1 = self._src_box
        tid = r.triangle_id
        part = np.full(tid.shape, -1, np.int8)
        part[tid >= 0] = self._part[tid[tid >= 0]]
        box = self.image[y0:y1, x0:x1].astype(np.float32)
        out = {}
        for q in (SCLERA, IRIS):
            px = box[part == q]
            if len(px) >= 20:
                lum = px.mean(axis=1)
                # sclera: its lit half (lashes and lid shadow darken the rest)
                px = px[lum >= np.median(lum)] if q == SCLERA else px
                out[q] = np.median(px, axis=0).astype(np.float32)
        return out

    # -- targets ---------------------------------------------------------------------------
    blendshapes = Synthesizer.blendshapes

    def render(self, expression: str | None = None, intensity: float = 1.0, aus: Mapping[str, float] | None = None,
               va=None, blendshapes: np.ndarray | None = None) -> np.ndarray:
        """The photo with the face showing the target: (H, W, 3) uint8."""
        return self.render_full(expression, intensity, aus, va, blendshapes).image

    def render_full(self, expression=None, intensity=1.0, aus=None, va=None, blendshapes=None) -> RenderedTarget:
        """Like :meth:`render`, also returning the composite and masks (for inspection).

        ``blendshapes`` (E,) in [0, 1] renders exactly those weights (no resting-face rule)."""
        if blendshapes is None:
            blendshapes = self.blendshapes(expression, intensity, aus, va)
        else:
            blendshapes = np.asarray(blendshapes, dtype=np.float64)
            if blendshapes.shape != (self.model.num_expression,) or not np.isfinite(blendshapes).all():
                raise ValueError(f"blendshapes: expected {self.model.num_expression} finite weights")
            blendshapes = np.clip(blendshapes, 0.0, 1.0)
        # eyeBlink's change from the fit scaled so that closed lids meet (synthesis._closing_gain)
        geometry = np.array(blendshapes, np.float64)
        geometry[self._blink] = self.fit.expression[self._blink] + self._blink_gain * (
            geometry[self._blink] - self.fit.expression[self._blink])
        target = self._vertices(geometry)
        # the eyeballs turn rigidly about their centres with the gaze weights' change
        for (ball, centre), turn in zip(self._eyeballs, gaze_rotations(geometry - self.fit.expression,
                                                                      self.model.expression_names)):
            if turn is not None:
                target[ball] = (target[ball] - centre) @ turn.T.astype(np.float32) + centre
        screen = self.fit.project(target)
        h, w = self.image.shape[:2]
        both = np.concatenate([screen[self._used, :2], self._source_screen[self._used, :2]])
        x0, y0, x1, y1 = self._bbox(both, self._margin)
        bw, bh = x1 - x0, y1 - y0
        offset = np.array([x0, y0, 0], np.float32)
        tris = self._target_triangles
        r = rasterize(screen - offset, tris, bh, bw, threads=self.threads)
        tid = r.triangle_id
        # what the skin left out covers is left to the warp, not drawn from what lies behind it
        front = rasterize(screen - offset, self._left_out, bh, bw, threads=self.threads).depth
        tid[front < r.depth] = -1
        covered = tid >= 0
        # where each covered pixel's surface point lay in the photo, and how deep
        src_attr = np.ascontiguousarray(self._source_screen)
        v = self._mesh_vertices
        closing = geometry[self._blink] - self.fit.expression[self._blink]  # per eye, as the geometry closes it
        lids = carry_upper_lids(screen[v, :2], src_attr[v, :2], self._upper_lids, self._down, self.fit.scale,
                                closing[_LID_BLINK])
        if lids is not None:
            src_attr = src_attr.copy()
            src_attr[v[lids.vertices], :2] += lids.moves
        src = interpolate(src_attr, tris, tid, r.barycentrics, threads=self.threads)
        part = np.full(tid.shape, -1, np.int8)
        part[covered] = self._target_part[tid[covered]]
        colour = sample_bilinear(self.image, np.ascontiguousarray(src[:, :, :2]), covered, threads=self.threads)

        # surface the photo never showed: mouth interior and uncovered eyeball
        idx = np.flatnonzero(covered)
        src_flat = src.reshape(-1, 3)[idx]
        seen = self._visible(src_flat[:, :2], src_flat[:, 2])
        p = part.reshape(-1)[idx]
        synthetic = ~seen & (p != SKIN)
        material = np.zeros((len(idx), 3), np.float32)
        normals = _vertex_normals(screen * np.array([1, -1, -1], np.float32), tris)
        # camera-facing normal (x right, y up, z towards the camera)
        n = interpolate(normals, tris, tid, r.barycentrics, threads=self.threads).reshape(-1, 3)[idx]
        n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-6)
        # the cosine towards the key light, KEY_LIGHT_UP above the view axis
        towards = n[:, 1] * KEY_LIGHT_UP + n[:, 2] * np.sqrt(1.0 - KEY_LIGHT_UP ** 2)
        depth = r.depth.reshape(-1)[idx]
        lm = self._lip_depth(screen)
        # light falls off inside the mouth: the deeper behind the lips, the darker; teeth
        # turn to the light half-Lambert, the rest Lambert
        cavity = np.exp(-np.maximum(depth - lm, 0.0) / (1.5 * self.fit.scale))
        facing = np.where(p == TEETH, 0.5 * (np.clip(towards, -1.0, 1.0) + 1.0), np.clip(towards, 0.0, 1.0))
        part_lit = np.zeros((len(_PART_NAMES), 3), np.float32)  # each part's lit colour
        for q, a in ALBEDO.items():
            part_lit[q] = self._photo_colours.get(q, np.asarray(a) * self._light)
        if self._colourless:  # a grey photo's materials are grey (luminance)
            part_lit[:] = (part_lit @ _LUMA)[:, None]
        lit = part_lit[p]
        mouth = np.isin(p, (SOCKET, GUMS, TEETH))
        # newly uncovered eyeball sits in the shadow of the lid
        shade = np.where(mouth, (0.3 + 0.7 * facing) * (0.1 + 0.9 * cavity), 0.8)
        # the socket, gums and tongue are lit instead by the key light through the opening
        # (synthesis._cavity_light, around the outer lips' corners and centres) and by
        # ambient light
        lips = screen[LANDMARK_VERTICES[[48, 54, 51, 57]], :2] - offset[:2]
        through = _cavity_light(tid, self._target_part, r.depth, lips, lm)
        if through is not None:
            light = np.zeros(tid.shape, np.float32)
            (ch, cw), (cx, cy) = through[0].shape, through[1]
            light[cy:cy + ch, cx:cx + cw] = through[0]
            light = light.reshape(-1)[idx]
            key = CAVITY_AMBIENT + (1.0 - CAVITY_AMBIENT) * np.clip(towards, 0.0, 1.0) * light
            shade = np.where(np.isin(p, (SOCKET, GUMS)), key, shade)
        # gum papillae between two teeth of an arch, on the gum side of where they touch
        # (texture_transfer.hpp, find_papillae): gums lit like the teeth beside them
        papilla = self._papillae(tid, part, screen[:, :2] - offset[:2], shade, idx)
        lit[papilla >= 0] = part_lit[GUMS]
        shade = np.where(papilla >= 0, papilla, shade)
        material = lit * shade[:, None]
        flat = colour.reshape(-1, 3)
        flat[idx[synthetic]] = material[synthetic]
        rendered = np.clip(colour + 0.5, 0, 255).astype(np.uint8)
        # uncovered eyeball, column by column (texture_transfer.hpp, continue_eyeball): the
        # lid margin shown next to it moves with the lid; the gap takes the median colour of
        # the shown eyeball beyond the margin (3 rows, 5 columns). Eyeball shown below: an
        # upper lid raised; else shown above: a lower lid lowered.
        eye = np.full(tid.shape, -1, np.int8)
        on_eye = np.isin(p, (SCLERA, IRIS))
        eye.reshape(-1)[idx[on_eye]] = (~seen[on_eye]).astype(np.int8)
        margin = int(round(LID_MARGIN * self.fit.scale))
        before = rendered.copy()
        left = np.zeros(tid.shape, bool)  # runs no column continues
        for x, start, end in _hidden_runs(eye):
            col = eye[:, x]
            if end + margin < bh and (col[end:end + margin + 1] == 0).all():
                rows = np.arange(end + margin, min(end + margin + 3, bh))
                moved_from, moved_to = np.arange(end, end + margin), np.arange(start, start + margin)
                gap = np.arange(start + margin, end + margin)
            elif start - margin - 1 >= 0 and (col[start - margin - 1:start] == 0).all():
                rows = np.arange(start - margin - 1, max(start - margin - 4, -1), -1)
                moved_from, moved_to = np.arange(start - margin, start), np.arange(end - margin, end)
                gap = np.arange(start - margin, end - margin)
            else:
                left[start:end, x] = True
                continue
            window = eye[rows, max(0, x - 2):x + 3]
            colours = before[rows, max(0, x - 2):x + 3][window == 0]
            median = np.sort(colours, axis=0)[len(colours) // 2]
            rendered[moved_to, x] = before[moved_from, x]
            rendered[gap, x] = median
        # those runs, row by row (continue_eyeball_sideways): the median colour of the shown
        # eyeball in the 3 columns beside the run (5 rows), from the side whose 3 columns show
        # eyeball in the run's row, or passing from one side's to the other's along the run
        for y, start, end in _runs(left.T):
            sides = []
            for cols in (np.arange(start - 1, start - 4, -1), np.arange(end, end + 3)):
                if cols.min() < 0 or cols.max() >= bw or (eye[y, cols] != 0).any():
                    sides.append(None)
                    continue
                rows = np.arange(max(0, y - 2), min(bh, y + 3))
                colours = before[rows][:, cols][eye[rows][:, cols] == 0]
                sides.append(np.sort(colours, axis=0)[len(colours) // 2].astype(np.float32))
            a, b = sides
            if a is None and b is None:
                continue
            a, b = (b if a is None else a), (a if b is None else b)
            f = (np.arange(1, end - start + 1, dtype=np.float32) / np.float32(end - start + 1))[:, None]
            rendered[y, start:end] = np.clip((1 - f) * a + f * b + 0.5, 0, 255).astype(np.uint8)

        # the mouth interior the photo showed between the fitted lips (lip on closed lips, or
        # teeth at the photo's own opening) fits only the mouth as it was: as far as the
        # target opens the mouth there, it gives way to the materials' shading
        # (texture_transfer.hpp, shade_opened_mouth)
        mouth = np.full(tid.shape, -1, np.int8)
        in_mouth = np.isin(p, (SOCKET, GUMS, TEETH))
        mouth.reshape(-1)[idx[in_mouth]] = (~seen[in_mouth]).astype(np.int8)
        weights = _mouth_opened(screen[:, :2], self._source_screen[:, :2], *self._inner_lip, self._interior,
                                self.fit.scale)
        opened = interpolate(weights[:, None], tris, tid, r.barycentrics, threads=self.threads)[..., 0]
        shaded = np.zeros(tid.shape + (3,), np.float32)
        shaded.reshape(-1, 3)[idx] = material
        shown = mouth == 0
        weight = opened[shown][:, None]
        mixed = (1 - weight) * rendered[shown] + weight * shaded[shown]
        rendered[shown] = np.clip(mixed + 0.5, 0, 255).astype(np.uint8)
        # thin slivers of hidden mouth interior next to shown interior take the shown
        # neighbour's colour, halves from above and below, as far as the target leaves the
        # mouth as it was (texture_transfer.hpp, fill_mouth_slivers); so do those between
        # lip and lip; taller runs keep the cavity's shading
        sliver = int(round(MOUTH_SLIVER * self.fit.scale))
        before = rendered.copy()
        for x, start, y in _hidden_runs(mouth) if sliver > 0 else []:
            col = mouth[:, x]
            above = start > 0 and col[start - 1] == 0
            below = y < bh and col[y] == 0
            if not (above or below):
                above = start > 0 and col[start - 1] == -1 and tid[start - 1, x] >= 0
                below = y < bh and col[y] == -1 and tid[y, x] >= 0
            if y - start > sliver or not (above or below):
                continue
            split = start + (y - start + 1) // 2 if above and below else (y if above else start)
            for a, b, r0 in ((start, split, start - 1), (split, y, y)):
                if a < b:
                    take = (1 - opened[a:b, x])[:, None]
                    fill = (1 - take) * before[a:b, x] + take * before[r0, x]
                    rendered[a:b, x] = np.clip(fill + 0.5, 0, 255).astype(np.uint8)

        # where a closing lid unfolds skin the photo hid, the lid's colour and the texture of the
        # skin below the eye (affcore._eyelids)
        if lids is not None:
            carried = dataclasses.replace(lids, vertices=v[lids.vertices], margins=tuple(v[m] for m in lids.margins),
                                          lowers=tuple(v[m] for m in lids.lowers))
            fill_lids(rendered, tid, r.barycentrics, tris, carried, screen[:, :2] - offset[:2], len(screen),
                      self._target_part == SKIN, self.fit.scale, threads=self.threads)

        # surroundings follow the face: warp the photo by the face's motion, extended smoothly
        box = self.image[y0:y1, x0:x1]
        gy, gx = np.mgrid[0:bh, 0:bw].astype(np.float32)
        disp = np.zeros((bh, bw, 2), np.float32)
        disp[..., 0] = np.where(covered, src[..., 0] - x0 - gx, 0)
        disp[..., 1] = np.where(covered, src[..., 1] - y0 - gy, 0)
        ext = _extend_displacement(disp, covered, sigma=0.12 * self.fit.iod_px)
        coords = np.stack([gx + ext[..., 0] + x0, gy + ext[..., 1] + y0], axis=-1)
        warped = sample_bilinear(self.image, np.ascontiguousarray(coords), threads=self.threads)
        comp_box = np.where(covered[..., None], rendered, np.clip(warped + 0.5, 0, 255).astype(np.uint8))

        # blend region: the union of the fitted and the deformed face, plus the warp's reach
        x0s, y0s, x1s, y1s = self._src_box
        src_cov = np.zeros((bh, bw), bool)
        sy0, sx0 = y0s - y0, x0s - x0
        src_cov[sy0:sy0 + (y1s - y0s), sx0:sx0 + (x1s - x0s)] = self._src_raster.triangle_id >= 0
        moved = np.hypot(ext[..., 0], ext[..., 1]) > 0.3
        region = covered | src_cov | moved
        import cv2

        k = max(3, int(0.06 * self.fit.iod_px) | 1)
        region = cv2.dilate(region.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))) > 0
        region[[0, -1], :] = False  # the blend needs a ring of fixed pixels inside the box
        region[:, [0, -1]] = False

        composite = self.image.copy()
        composite[y0:y1, x0:x1] = np.where(region[..., None], comp_box, box)
        mask = np.zeros((h, w), bool)
        mask[y0:y1, x0:x1] = region
        face = np.zeros((h, w), bool)
        face[y0:y1, x0:x1] = covered
        out = self.image.copy()
        out[y0:y1, x0:x1] = poisson_blend(composite[y0:y1, x0:x1], box, region, threads=self.threads)
        return RenderedTarget(image=out, composite=composite, mask=mask, face_mask=face, blendshapes=blendshapes)

    def _papillae(self, tid, part, screen_xy, shade, idx) -> np.ndarray:
        """Gum papillae (texture_transfer.hpp, find_papillae): at the covered pixels ``idx``,
        the light of the teeth beside each papilla, interpolated across its gap (from
        ``shade``, the materials' light at those pixels), and -1 at other pixels."""
        width = int(round(PAPILLA_WIDTH * self.fit.scale))
        h, w = tid.shape
        out = np.full(h * w, -1.0, np.float32)
        light = np.zeros(h * w, np.float32)
        light[idx] = shade
        tooth = np.zeros(tid.shape, np.int32)
        teeth = part == TEETH
        tooth[teeth] = self._target_tooth[tid[teeth]]
        gap = np.isin(part, (GUMS, SOCKET))
        corners = screen_xy[np.unique(self._target_triangles[self._target_part == TEETH])]
        if width <= 0 or not len(corners):
            return out[idx]
        c0, r0 = np.clip(np.floor(corners.min(axis=0)).astype(int), 0, [w - 1, h - 1])
        c1, r1 = np.clip(np.ceil(corners.max(axis=0)).astype(int), 0, [w - 1, h - 1])
        for y in range(r0, r1 + 1):
            for _, start, end in _runs(gap[y, c0:c1 + 1, None]):
                start, end = start + c0, end + c0
                if start == 0 or end >= w or end - start > width:
                    continue
                a, b = tooth[y, start - 1], tooth[y, end]
                if a == 0 or b == 0 or a == b or (a > 0) != (b > 0):
                    continue
                # the gap closes towards the biting edge: teeth of the arch there, at its middle
                step, mid = (1 if a > 0 else -1), (start + end - 1) // 2
                closes = False
                for yy in range(y + step, y + step * (2 * width + 1), step):
                    if not 0 <= yy < h:
                        break
                    if tooth[yy, mid] != 0:
                        closes = (tooth[yy, mid] > 0) == (a > 0)
                        break
                    if not gap[yy, mid]:
                        break
                if closes:
                    left, right = y * w + start - 1, y * w + end
                    f = (np.arange(start, end, dtype=np.float32) - np.float32(start - 1)) / np.float32(end - start + 1)
                    out[y * w + start:y * w + end] = (1 - f) * light[left] + f * light[right]
        return out[idx]

    def _lip_depth(self, screen: np.ndarray) -> float:
        """Depth (pixels) of the mouth corners: the front of the mouth cavity."""
        from affcore.model import LANDMARK_VERTICES

        return float(screen[LANDMARK_VERTICES[[48, 54, 51, 57]], 2].mean())


def _extend_displacement(disp: np.ndarray, known: np.ndarray, sigma: float) -> np.ndarray:
    """Extend a displacement field known on ``known`` to its surroundings, decaying to zero
    about ``sigma`` pixels away: a normalised Gaussian average of the known displacements,
    faded by the distance from the known region. Computed at a quarter of the resolution
    (the field is smooth) and kept exactly as given on ``known``."""
    import cv2

    h, w = known.shape
    f = 4 if min(h, w) >= 64 else 1
    sh, sw = max(1, h // f), max(1, w // f)
    k = cv2.resize(known.astype(np.float32), (sw, sh), interpolation=cv2.INTER_AREA)
    d = cv2.resize(disp * known[..., None], (sw, sh), interpolation=cv2.INTER_AREA)
    s = max(sigma / f, 1.0)
    num = cv2.GaussianBlur(d, (0, 0), s)
    den = cv2.GaussianBlur(k, (0, 0), s)
    avg = num / np.maximum(den, 1e-6)[..., None]
    dist = cv2.distanceTransform((k < 0.5).astype(np.uint8), cv2.DIST_L2, 3)
    fade = np.exp(-((dist / s) ** 2))
    small = avg * (fade * (den > 1e-4))[..., None]
    ext = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.where(known[..., None], disp, ext).astype(np.float32)
