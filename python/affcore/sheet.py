"""Contact sheets: labelled grids of images, for looking at many results at once."""
from __future__ import annotations

import numpy as np

from .images import as_rgb8


def contact_sheet(images, labels, *, box=None, columns: int | None = None, tile: int = 320) -> np.ndarray:
    """A grid of ``images`` (each scaled to ``tile`` pixels wide) with a label under each.

    Parameters
    ----------
    images : sequence of (H, W, 3) uint8 arrays.
    labels : one string per image.
    box : optional (x0, y0, x1, y1) pixels (x1, y1 exclusive) cut from every image before
        scaling, e.g. the face (:func:`affcore.sequence.face_crop_box`), so that what
        differs between the images is large enough to see.
    columns : tiles per row (default: up to 4).
    tile : width of each tile in pixels.
    """
    import cv2

    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    if not images:
        raise ValueError("no images for the contact sheet")
    columns = columns or min(4, len(images))
    scaled = []
    for im in images:
        im = as_rgb8(im)
        if box is not None:
            x0, y0, x1, y1 = (int(v) for v in box)
            if not (0 <= x0 < x1 <= im.shape[1] and 0 <= y0 < y1 <= im.shape[0]):
                raise ValueError(f"box {tuple(box)} does not lie inside a {im.shape[1]}x{im.shape[0]} image")
            im = im[y0:y1, x0:x1]
        h = round(im.shape[0] * tile / im.shape[1])
        scaled.append(cv2.resize(im, (tile, h), interpolation=cv2.INTER_AREA))
    th = max(s.shape[0] for s in scaled)
    band = max(22, tile // 12)
    rows = -(-len(scaled) // columns)
    sheet = np.full((rows * (th + band), columns * tile, 3), 255, np.uint8)
    scale = band / 40
    for k, (im, text) in enumerate(zip(scaled, labels)):
        r, c = divmod(k, columns)
        y, x = r * (th + band), c * tile
        sheet[y:y + im.shape[0], x:x + tile] = im
        (tw, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        cv2.putText(sheet, text, (x + max(2, (tile - tw) // 2), y + th + int(band * 0.72)),
                    cv2.FONT_HERSHEY_SIMPLEX, scale, (20, 20, 20), 1, cv2.LINE_AA)
    return sheet
