import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from affcore import _core
from affcore.errors import LandmarkError
from affcore.fitting import fit_landmarks, fit_landmarks_batch
from affcore.landmarks import read_pts
from affcore.model import LANDMARK_VERTICES


def rotation(yaw, pitch, roll):
    y, p, r = np.radians([yaw, pitch, roll])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return rz @ ry @ rx


# The model's alternative jawline vertices (on its visible outline), used for iBUG 0-7, 9-16.
JAW = {0: 1278, 1: 1272, 2: 12, 3: 1834, 4: 243, 5: 781, 6: 2199, 7: 1447,
       9: 3661, 10: 4390, 11: 3022, 12: 2484, 13: 4036, 14: 2253, 15: 3490, 16: 3496}


def synthetic_landmarks(model, yaw, pitch, roll, scale, identity, expression, t=(500.0, 520.0)):
    ids = LANDMARK_VERTICES.copy()
    for k, v in JAW.items():
        ids[k] = v
    v = model.vertices(identity, expression)[ids].astype(np.float64) @ rotation(yaw, pitch, roll).T
    return np.stack([scale * v[:, 0] + t[0], -scale * v[:, 1] + t[1]], axis=1)


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(yaw=st.floats(-12, 12), pitch=st.floats(-12, 12), roll=st.floats(-25, 25), scale=st.floats(8, 60),
       seed=st.integers(0, 2**31 - 1))
def test_recovers_pose_of_synthetic_faces(model, yaw, pitch, roll, scale, seed):
    rng = np.random.default_rng(seed)
    identity = rng.normal(0, 0.7, 20)
    expression = np.zeros(model.num_expression)
    lm = synthetic_landmarks(model, yaw, pitch, roll, scale, identity, expression)
    r = fit_landmarks(lm, model)
    # exact data, plausible face: the fit reproduces the points to a small fraction of the IOD
    # (not exactly: the priors pull towards the mean face)
    assert r.rms_iod < 0.02
    assert r.converged
    # pitch (and less so yaw) trades off against the identity's depth profile under weak
    # perspective, and the priors pull small faces (8 px/cm: 50 px between the eyes) more
    assert abs(r.roll - roll) < 3.0 and abs(r.yaw - yaw) < 5.0 and abs(r.pitch - pitch) < 8.0
    assert r.scale == pytest.approx(scale, rel=0.08)
    assert np.all((r.expression >= 0) & (r.expression <= 1))


@settings(max_examples=15, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(angles=st.tuples(st.floats(-60, 60), st.floats(-60, 60), st.floats(-170, 170)))
def test_projection_matches_the_documented_camera(model, angles):
    lm = synthetic_landmarks(model, *angles, 20.0, np.zeros(0), np.zeros(model.num_expression))
    r = fit_landmarks(lm, model, num_identity=0, fit_expression=False)
    proj = r.project(model.neutral_vertices[r.landmark_vertices])
    np.testing.assert_allclose(proj[:, :2], r.projected_landmarks, atol=1e-3)
    np.testing.assert_allclose(r.rotation @ r.rotation.T, np.eye(3), atol=1e-9)


def test_real_photos_fit_well_and_deterministically(data, model, landmark_cache):
    lm = landmark_cache(data / "faces" / "london" / "005_neutral.jpg")
    a, b = fit_landmarks(lm, model), fit_landmarks(lm, model)
    assert a.rms_iod < 0.04 and a.converged
    for field in ("projected_landmarks", "identity", "expression", "rotation", "translation"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field
    assert abs(a.yaw) < 15 and abs(a.pitch) < 15 and abs(a.roll) < 15
    # a neutral photo: small expression weights
    assert a.expression.mean() < 0.1


def test_batch_equals_single_fits(data, model, landmark_cache, london_pairs):
    lms = np.stack([landmark_cache(p) for _, n, s in london_pairs[:4] for p in (n, s)])
    single = [fit_landmarks(x, model) for x in lms]
    for threads in (1, 2, 3):
        batch = fit_landmarks_batch(lms, model, threads=threads)
        for s, b in zip(single, batch):
            assert np.array_equal(s.projected_landmarks, b.projected_landmarks)
            assert np.array_equal(s.expression, b.expression)


def test_smiles_are_found_on_smiling_photos(model, landmark_cache, london_pairs):
    def smile(r):
        e = r.expression_dict()
        return e["mouthSmile_L"] + e["mouthSmile_R"]

    wins = sum(smile(fit_landmarks(landmark_cache(s), model)) > smile(fit_landmarks(landmark_cache(n), model))
               for _, n, s in london_pairs)
    assert wins >= 27, f"smile larger on the smiling photo for only {wins}/{len(london_pairs)} people"


def test_hand_labelled_300w_image(data, model):
    truth = read_pts(data / "faces" / "300w" / "image_0010.pts")
    r = fit_landmarks(truth, model)
    assert r.rms_px < 7.16  # eos on the same points: 7.16 px


@pytest.mark.parametrize("bad, err, message", [
    (np.zeros((68, 2)), ValueError, "eyes coincide"),
    (np.full((68, 2), np.nan), LandmarkError, "non-finite"),
    (np.zeros((5, 2)), LandmarkError, "shape"),
])
def test_bad_landmarks(model, bad, err, message):
    with pytest.raises(err, match=message):
        fit_landmarks(bad, model)


def test_core_boundary_refuses_wrong_dtypes_and_shapes(model):
    fb = model.fitting_basis
    lm = np.zeros((68, 2))
    args = dict(num_identity=10, identity_prior=1e-3, expression_prior=np.ones(53))
    with pytest.raises(TypeError, match="landmarks: expected dtype"):
        _core.fit_landmarks(fb.basis, lm.astype(np.float32), fb.correspondence, np.ones(68), fb.contour, 1.0, **args)
    with pytest.raises(ValueError, match="landmarks: expected shape"):
        _core.fit_landmarks(fb.basis, np.zeros((68, 3)), fb.correspondence, np.ones(68), fb.contour, 1.0, **args)
    with pytest.raises(ValueError, match="NaN"):
        _core.fit_landmarks(fb.basis, np.full((68, 2), np.nan), fb.correspondence, np.ones(68), fb.contour, 1.0,
                            **args)
    bad_corr = fb.correspondence.copy()
    bad_corr[3] = 10**6
    with pytest.raises(ValueError, match="correspondence: index"):
        _core.fit_landmarks(fb.basis, lm, bad_corr, np.ones(68), fb.contour, 1.0, **args)
    with pytest.raises(TypeError, match="numpy array"):
        _core.fit_landmarks(fb.basis, [[0, 0]] * 68, fb.correspondence, np.ones(68), fb.contour, 1.0, **args)
    with pytest.raises(ValueError, match="expression_prior"):
        _core.fit_landmarks(fb.basis, lm, fb.correspondence, np.ones(68), fb.contour, 1.0, num_identity=10,
                            identity_prior=1e-3, expression_prior=np.ones(3))
    with pytest.raises(ValueError, match="num_identity"):
        fit_landmarks(np.random.default_rng(0).normal(size=(68, 2)) * 50, model, num_identity=101)
