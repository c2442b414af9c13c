"""Eyeballs that turn with the gaze blendshapes (affcore._gaze): the rotations, the eyeball's
centre, and the calibration against the model's lids."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from affcore import _gaze
from affcore.model import EXPRESSION_NAMES, LANDMARK_VERTICES

_COLUMN = {n: i for i, n in enumerate(EXPRESSION_NAMES)}


def _change(**weights):
    change = np.zeros(len(EXPRESSION_NAMES))
    for name, w in weights.items():
        change[_COLUMN[name]] = w
    return change


_WEIGHT = st.floats(-1.0, 1.0, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(st.lists(_WEIGHT, min_size=8, max_size=8))
def test_gaze_turns_are_rotations_and_none_without_a_change(weights):
    names = [f"eyeLook{d}_{s}" for d in ("Down", "Up", "In", "Out") for s in "LR"]
    change = _change(**dict(zip(names, weights)))
    for side, turn in zip("LR", _gaze.gaze_rotations(change, EXPRESSION_NAMES)):
        mine = [change[_COLUMN[f"eyeLook{d}_{side}"]] for d in ("Down", "Up", "In", "Out")]
        if turn is None:
            assert _gaze.DOWN_DEGREES * mine[0] - _gaze.UP_DEGREES * mine[1] == 0
            assert mine[3] - mine[2] == 0
            continue
        np.testing.assert_allclose(turn @ turn.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(turn) == pytest.approx(1.0)
        # the eye's axis (+z) turns down by the pitch, and out by the yaw
        axis = turn @ np.array([0.0, 0.0, 1.0])
        pitch = np.degrees(np.arcsin(-axis[1]))
        assert pitch == pytest.approx(_gaze.DOWN_DEGREES * mine[0] - _gaze.UP_DEGREES * mine[1], abs=1e-9)
        outward = 1.0 if side == "L" else -1.0
        yaw = np.degrees(np.arctan2(outward * axis[0], axis[2]))
        assert yaw == pytest.approx(_gaze.SIDEWAYS_DEGREES * (mine[3] - mine[2]), abs=1e-9)


@pytest.mark.parametrize("au, direction", [
    ({"eyeLookDown_L": 0.5, "eyeLookDown_R": 0.5}, (0, -1)),                 # AU64: both look down
    ({"eyeLookUp_L": 0.5, "eyeLookUp_R": 0.5}, (0, 1)),                      # AU63: up
    ({"eyeLookOut_L": 0.5, "eyeLookIn_R": 0.5}, (1, 0)),                     # AU61: to the subject's left
    ({"eyeLookIn_L": 0.5, "eyeLookOut_R": 0.5}, (-1, 0)),                    # AU62: to the right
])
def test_both_eyes_turn_the_same_way(au, direction):
    """The action units turn both eyes alike, although in and out are mirrored between them."""
    for turn in _gaze.gaze_rotations(_change(**au), EXPRESSION_NAMES):
        axis = turn @ np.array([0.0, 0.0, 1.0])
        assert np.sign(np.round(axis[:2], 6)).tolist() == list(direction)


@settings(max_examples=100, deadline=None)
@given(st.tuples(*[st.floats(-5, 5)] * 3), st.floats(0.8, 2.0), st.integers(0, 2**32 - 1))
def test_the_eyeballs_centre_is_the_globes_not_the_bulges(centre, radius, seed):
    """Points on a sphere with a fifth of them on a bulge in front (a cornea): the centre is
    the sphere's to a tenth of a millimetre, where a plain least-squares sphere is pulled
    towards the bulge."""
    rng = np.random.default_rng(seed)
    d = rng.normal(size=(800, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    r = np.full(len(d), radius)
    front = d[:, 2] > 0.8
    r[front] += 0.3 * radius * (d[front, 2] - 0.8) / 0.2  # up to 30 % further out at the front
    points = np.asarray(centre) + d * r[:, None] + rng.normal(scale=1e-3, size=d.shape)
    globe = _gaze.on_globe(points)
    assert not globe[front & (d[:, 2] > 0.85)].any()  # the bulge's outer part is left out
    assert np.linalg.norm(_gaze.sphere_centre(points[globe]) - centre) < 0.01


def test_a_lid_lowered_by_looking_down_keeps_its_place_on_the_eye(model):
    """The calibration of DOWN_DEGREES and UP_DEGREES: at eyeLookDown 1 (eyeLookUp 1), the
    eyeball's point behind the upper lid's margin (iBUG 37, 38, 43, 44) moves down (up) as
    far as the margin, to a tenth of the margin's travel."""
    from affcore.synthesis import IRIS, SCLERA, _face_triangles

    tris, part = _face_triangles(model)
    names = list(model.expression_names)
    v = model.neutral_vertices.astype(np.float64)
    for side, sign, margin in (("L", 1, (43, 44)), ("R", -1, (37, 38))):
        ball = np.unique(tris[np.isin(part, (SCLERA, IRIS))])
        ball = ball[np.sign(v[ball, 0]) == sign]
        sclera = np.unique(tris[part == SCLERA])
        sclera = sclera[np.sign(v[sclera, 0]) == sign]
        centre = _gaze.sphere_centre(v[sclera[_gaze.on_globe(v[sclera])]])
        for shape in ("Down", "Up"):
            change = np.zeros(len(names))
            change[names.index(f"eyeLook{shape}_{side}")] = 1.0
            turn = _gaze.gaze_rotations(change, names)[0 if side == "L" else 1]
            for lm in margin:
                lid = v[LANDMARK_VERTICES[lm]]
                travel = model.expression_basis[names.index(f"eyeLook{shape}_{side}"), LANDMARK_VERTICES[lm], 1]
                # the front-most eyeball point behind the margin
                behind = ball[np.linalg.norm(v[ball, :2] - lid[:2], axis=1) < 0.08]
                p = v[behind[np.argmax(v[behind, 2])]]
                moved = (p - centre) @ turn.T + centre
                assert moved[1] - p[1] == pytest.approx(travel, rel=0.1), (side, shape, lm)
