"""Pictures of a fit: the photo with the detected landmarks and the projected model on top."""
from __future__ import annotations

import numpy as np

from .fitting import FitResult
from .images import as_rgb8
from .model import FaceModel


def draw_fit(image: np.ndarray, fit: FitResult, model: FaceModel, *, mesh: bool = True) -> np.ndarray:
    """Return a copy of ``image`` showing the fitted face.

    Drawn: the wireframe of the fitted face region (thin, translucent blue), the landmarks
    fitted to (green dots) and the model's landmarks under the fit (red crosses), joined by
    a line where they differ. Line widths scale with the inter-ocular distance.
    """
    import cv2

    canvas = as_rgb8(image).copy()
    scale = max(1, round(fit.iod_px / 60))
    if mesh:
        verts = model.vertices(fit.identity, fit.expression)
        screen = fit.project(verts)[:, :2]
        face = model.polygons[:, 3] >= 0
        if model.polygon_material is not None:
            face &= model.polygon_material == 0  # the skin of the face only
        quads = model.polygons[face]
        # draw only triangles facing the camera, so the far side does not clutter the picture
        a, b, c = screen[quads[:, 0]], screen[quads[:, 1]], screen[quads[:, 2]]
        facing = ((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])) < 0
        lines = np.round(screen[quads[facing]] * 16).astype(np.int32)
        layer = canvas.copy()
        cv2.polylines(layer, list(lines), True, (60, 140, 255), 1, cv2.LINE_AA, shift=4)
        canvas = cv2.addWeighted(layer, 0.45, canvas, 0.55, 0)
    for (x0, y0), (x1, y1) in zip(fit.landmarks, fit.projected_landmarks):
        cv2.line(canvas, (round(x0), round(y0)), (round(x1), round(y1)), (255, 255, 0), 1, cv2.LINE_AA)
    for x, y in fit.landmarks:
        cv2.circle(canvas, (round(x), round(y)), 2 * scale, (0, 220, 0), -1, cv2.LINE_AA)
    for x, y in fit.projected_landmarks:
        p = (round(x), round(y))
        cv2.drawMarker(canvas, p, (230, 0, 0), cv2.MARKER_CROSS, 5 * scale, max(1, scale // 2), cv2.LINE_AA)
    return canvas
