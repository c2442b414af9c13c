"""Eyeballs that turn with the gaze blendshapes.

ICT's (ARKit's) ``eyeLookDown``, ``eyeLookUp``, ``eyeLookIn`` and ``eyeLookOut`` move only
the lids: the eyeballs are rigid meshes that no blendshape moves, and an ARKit avatar turns
them with a separate transform. Rendered as blendshapes alone, "eyes down" (AU64, which
sadness uses) lowered the lids over eyes that kept staring ahead: half-closed, sleepy eyes,
nearly shut on narrow ones (``leonardo_dicaprio``, ``005``); "eyes turn left" (AU61) moved
nothing but a millimetre of lid.

Here each eyeball turns rigidly about its centre (a sphere fitted to its sclera's globe),
by an angle proportional to the gaze weights' change from the fit: pitch from down minus
up, yaw from out minus in (mirrored between the eyes, so AU61 and AU62 turn both eyes the
same way on screen). The renderer samples each eyeball point where the photo showed it, so
the photo's iris, catchlight included, moves with the eye; eyeball the photo hid under a
lid or in a corner is continued from the eyeball it did show (``continue_eyeball``,
``continue_eyeball_sideways``).
"""
from __future__ import annotations

import numpy as np

# Degrees the eye turns per unit of a gaze weight's change. Calibrated on the model: at
# eyeLookDown 1 the upper lid's margin drops 0.63 cm, and the eye turns down 22.7-25.6
# degrees (at iBUG 43 and 44) for the eyeball point behind the margin to drop as far, so the
# lid keeps its place on the eye as it does in life. eyeLookUp raises the margin 0.29-0.33
# cm: 12.2-12.3 degrees. In and out move no lid margin to follow; they turn as far per unit
# as down does (at AU61 0.6, 14 degrees).
DOWN_DEGREES = 24.0
UP_DEGREES = 12.0
SIDEWAYS_DEGREES = 24.0


def on_globe(points: np.ndarray) -> np.ndarray:
    """(N,) bool: which of an eyeball's sclera points (N, 3) lie on its globe. The sclera
    mesh bulges where it meets the iris; a sphere fitted to all of it is pulled forward
    (0.7 mm on a test sphere with a cornea-like bulge). So the fit is repeated on the points
    closest to the sphere (within 0.2 mm, or the closest 60 %). Per model, on its neutral
    shape: an identity moves the eyeball smoothly, and the same points stay on the globe."""
    p = np.asarray(points, np.float64)
    keep = np.ones(len(p), bool)
    for _ in range(5):
        centre, radius = _sphere(p[keep])
        off = np.abs(np.linalg.norm(p - centre, axis=1) - radius)
        keep = off <= max(0.02, float(np.percentile(off, 60)))
    return keep


def sphere_centre(points: np.ndarray) -> np.ndarray:
    """(3,) centre of the sphere fitted to points (N, 3) by least squares."""
    return _sphere(np.asarray(points, np.float64))[0]


def _sphere(p: np.ndarray):
    # |p - c|^2 = r^2 is linear in (c, r^2 - |c|^2)
    solution = np.linalg.lstsq(np.c_[2.0 * p, np.ones(len(p))], (p * p).sum(axis=1), rcond=None)[0]
    centre = solution[:3]
    return centre, np.sqrt(solution[3] + centre @ centre)


def gaze_rotations(change: np.ndarray, names) -> list:
    """Per eye (the subject's left, then right): the (3, 3) rotation of its eyeball in the
    model's frame (x to the subject's left, y up, z to the viewer) for a change of expression
    weights from the fit, or None where the eye does not turn."""
    column = {n: i for i, n in enumerate(names)}
    out = []
    for side, outward in (("L", 1.0), ("R", -1.0)):
        w = {d: float(change[column[f"eyeLook{d}_{side}"]]) for d in ("Down", "Up", "In", "Out")}
        # down turns the front of the eye to -y; the left eye's "out" is +x, the right's -x
        pitch = DOWN_DEGREES * w["Down"] - UP_DEGREES * w["Up"]
        yaw = outward * SIDEWAYS_DEGREES * (w["Out"] - w["In"])
        if pitch == 0.0 and yaw == 0.0:
            out.append(None)
            continue
        pitch, yaw = np.radians(pitch), np.radians(yaw)
        cp, sp, cy, sy = np.cos(pitch), np.sin(pitch), np.cos(yaw), np.sin(yaw)
        about_x = np.array([[1.0, 0.0, 0.0], [0.0, cp, -sp], [0.0, sp, cp]])
        about_y = np.array([[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]])
        out.append(about_y @ about_x)
    return out


def has_gaze(names) -> bool:
    """Whether a model's expression names include the eight gaze blendshapes."""
    return all(f"eyeLook{d}_{s}" in names for d in ("Down", "Up", "In", "Out") for s in "LR")
