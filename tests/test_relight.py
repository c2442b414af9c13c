"""Relighting the lower face (affcore._relight): the geometry's normals, the light estimated
from the photo, the factors it gives, and what they do to synthesized smiles on real photos."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from affcore._relight import FACTOR_RANGE, estimate_light, prepare_relight, relight_factors, vertex_normals
from affcore.images import read_image
from affcore.landmarks import detect_landmarks
from affcore.model import LANDMARK_VERTICES
from affcore.synthesis import Synthesizer, _mesh


def _sphere(rows: int = 24, cols: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """A UV sphere of radius 1 (poles included), triangles wound outward."""
    theta = np.linspace(0, np.pi, rows + 1)[1:-1]
    phi = np.linspace(0, 2 * np.pi, cols, endpoint=False)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    ring = np.stack([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)], axis=-1).reshape(-1, 3)
    v = np.vstack([[0, 0, 1], ring, [0, 0, -1]])
    idx = 1 + np.arange(len(ring)).reshape(rows - 1, cols)
    tris = [[0, idx[0, j], idx[0, (j + 1) % cols]] for j in range(cols)]
    for i in range(rows - 2):
        for j in range(cols):
            a, b, c, d = idx[i, j], idx[i, (j + 1) % cols], idx[i + 1, j], idx[i + 1, (j + 1) % cols]
            tris += [[a, c, b], [b, c, d]]
    tris += [[len(v) - 1, idx[-1, (j + 1) % cols], idx[-1, j]] for j in range(cols)]
    return v, np.array(tris)


def test_normals_of_a_sphere_point_outward_and_a_lone_vertex_has_none():
    v, t = _sphere()
    v = np.vstack([v, [5.0, 5.0, 5.0]])  # used by no triangle
    n = vertex_normals(v, t)
    assert np.all(np.sum(n[:-1] * v[:-1], axis=1) > 0.995)
    np.testing.assert_allclose(np.linalg.norm(n[:-1], axis=1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(n[-1], 0.0)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(0.01, 100.0))
def test_normals_turn_with_the_mesh_and_ignore_its_scale(seed, scale):
    rng = np.random.default_rng(seed)
    v, t = _sphere(8, 12)
    v = v * rng.uniform(0.5, 2.0, size=3) + rng.normal(scale=0.02, size=v.shape)  # a lumpy ellipsoid
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    rot = q * np.sign(np.diag(r))
    if np.linalg.det(rot) < 0:  # a rotation, not a reflection (which flips the winding)
        rot[:, 0] *= -1
    moved = scale * v @ rot.T + rng.normal(size=3)
    np.testing.assert_allclose(vertex_normals(moved, t), vertex_normals(v, t) @ rot.T, atol=1e-9)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(0.05, 1.0), st.floats(0.1, 2.0))
def test_a_lambertian_light_is_recovered_exactly(seed, ambient, strength):
    rng = np.random.default_rng(seed)
    n = rng.normal(size=(500, 3))
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    n[:, 2] = -np.abs(n[:, 2])  # the half that faces the camera
    direction = rng.normal(size=3)
    light = np.concatenate([[ambient], strength * direction / np.linalg.norm(direction)])
    radiance = light[0] + n @ light[1:]
    lit = radiance > 0  # a photo shows no negative light: fit where the model holds
    if lit.sum() < 20:
        return
    np.testing.assert_allclose(estimate_light(n[lit], radiance[lit]), light, atol=1e-8 * (1 + strength))


def test_the_light_fit_ignores_dark_hair_and_bright_highlights():
    """Brows, beard and specular highlights are not the skin's albedo: a tenth of the points
    far off the model barely move the estimate."""
    rng = np.random.default_rng(7)
    n = rng.normal(size=(3000, 3))
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    n[:, 2] = -np.abs(n[:, 2])
    light = np.array([0.4, 0.0, -0.2, -0.3])
    radiance = light[0] + n @ light[1:] + rng.normal(scale=0.005, size=len(n))
    odd = rng.random(len(n)) < 0.1
    radiance[odd] *= np.where(rng.random(odd.sum()) < 0.7, 0.2, 2.5)  # mostly dark hair, some highlights
    plain = np.linalg.lstsq(np.column_stack([np.ones(len(n)), n]), radiance, rcond=None)[0]
    robust = estimate_light(n, radiance)
    assert np.abs(robust - light).max() < 0.02
    assert np.abs(robust - light).max() < 0.5 * np.abs(plain - light).max()


def test_the_light_fit_checks_its_inputs():
    with pytest.raises(ValueError, match="normals"):
        estimate_light(np.zeros((10, 2)), np.zeros(10))
    with pytest.raises(ValueError, match="radiance"):
        estimate_light(np.zeros((10, 3)), np.zeros(9))


# -- on real photos -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def studio(london_pairs, landmark_cache, model):
    """Synthesizers of the first 8 London neutral photos (a studio, lit from above and in front)."""
    return [Synthesizer(read_image(path), landmarks=landmark_cache(path), model=model)
            for _, path, _ in london_pairs[:8]]


def test_the_studio_light_comes_from_above_and_mirrors_with_the_photo(studio, model):
    for s in studio:
        a, b = s._relight.light[0], s._relight.light[1:]
        # screen y points down and a face's front faces -z: lit from above and in front
        assert b[1] < 0 and b[2] < 0 and a - b[2] > 0, s._relight.light
        mirror = np.ascontiguousarray(s.image[:, ::-1])
        c = Synthesizer(mirror, landmarks=detect_landmarks(mirror), model=model)._relight.light
        scale = np.linalg.norm(b)
        # left and right swap; up, down, front and the ambient stay
        assert abs(c[1] + b[0]) < 0.15 * scale and abs(c[2] - b[1]) < 0.15 * scale, (s._relight.light, c)
        assert abs(c[3] - b[2]) < 0.15 * scale and abs(c[0] - a) < 0.15 * scale, (s._relight.light, c)


def test_only_the_lower_face_is_relit_and_within_range(studio, model):
    mesh = _mesh(model)
    relit = mesh.relight.relit.vertices
    lids = mesh.neutral[np.searchsorted(mesh.vertices, LANDMARK_VERTICES[[40, 41, 46, 47]]), 1].mean()
    assert mesh.neutral[relit, 1].max() < lids  # below the lower lids (y up, cm)
    others = np.setdiff1d(np.arange(len(mesh.vertices)), relit)
    for s in studio:
        for e in ("happiness", "surprise", "disgust"):
            f = relight_factors(s._relight, s._screen(s.blendshapes(e)))
            np.testing.assert_array_equal(f[others], 1.0)
            assert FACTOR_RANGE[0] - 1e-6 <= f.min() and f.max() <= FACTOR_RANGE[1] + 1e-6
            if e != "surprise":  # a smile and a raised upper lip bend the lower face enough to shade it
                assert f.min() < 0.95, e
        # the photo's own expression changes no geometry: nothing is relit, byte for byte
        own = s.fit.expression
        np.testing.assert_array_equal(relight_factors(s._relight, s._screen(own)), 1.0)
        unrelit = Synthesizer(s.image, fit_result=s.fit, model=model, relight=False)
        np.testing.assert_array_equal(s.render(blendshapes=own), unrelit.render(blendshapes=own))


def test_an_evenly_lit_face_is_not_relit(studio):
    """Where the photo's brightness does not depend on the surface's orientation (flat,
    ambient light), bending the surface changes nothing."""
    s = studio[0]
    flat = np.full_like(s.image, 150)
    relight = prepare_relight(_mesh(s.model).relight, flat, s._source_screen, s._seen_vertices)
    assert relight is not None
    np.testing.assert_allclose(relight.light[1:], 0.0, atol=1e-9)
    np.testing.assert_allclose(relight_factors(relight, s._screen(s.blendshapes("happiness"))), 1.0, atol=1e-6)


@pytest.mark.slow
def test_relit_smiles_read_as_happy_more_often(data, model):
    """What relighting is for (docs/recognition.md, twenty-fourth session): affcore's own
    recogniser reads synthesized happiness on the 40 London and wild photos as happy far
    more often with the lower face relit (72 % against 42 % when measured)."""
    from affcore.fer import TO_AFFCORE
    from affcore.fer.infer import Recognizer, align_face

    paths = sorted((data / "faces" / "london").glob("*_neutral.jpg")) + sorted((data / "faces" / "wild").glob("*.jpg"))
    crops = {True: [], False: []}
    for p in paths:
        image = read_image(p)
        s = Synthesizer(image, landmarks=detect_landmarks(image), model=model)
        plain = Synthesizer(image, fit_result=s.fit, model=model, relight=False)
        for relit, synth in ((True, s), (False, plain)):
            out = synth.render(expression="happiness")
            crops[relit].append(align_face(out, detect_landmarks(out)))
    rec = Recognizer(threads=2)
    happy = [TO_AFFCORE[c] for c in rec.classes].index("happiness")
    rate = {k: float(np.mean(rec.predict_crops(np.stack(v)).argmax(1) == happy)) for k, v in crops.items()}
    assert len(paths) == 40
    assert rate[True] >= 0.6 and rate[True] >= rate[False] + 0.2, rate


def test_relighting_and_expression_shading_are_not_stacked(studio, model):
    """Expression shading's ratios are measured on real faces: they hold the shading that the
    change of geometry brings, so a synthesizer with them is not relit as well, and asking
    for both is refused."""
    from affcore.shading import SHADED_EXPRESSIONS, ExpressionShading

    s = studio[0]
    shading = ExpressionShading(SHADED_EXPRESSIONS, np.zeros((6, model.num_vertices), np.float32),
                                np.full(6, 20, np.int32), 0.65)
    assert Synthesizer(s.image, fit_result=s.fit, model=model, shading=shading)._relight is None
    with pytest.raises(ValueError, match="relight=True with shading"):
        Synthesizer(s.image, fit_result=s.fit, model=model, shading=shading, relight=True)
    with pytest.raises(ValueError, match="relight: expected None, True or False"):
        Synthesizer(s.image, fit_result=s.fit, model=model, relight="no")


def test_the_cli_relights_unless_told_not_to(data, model, tmp_path):
    import subprocess
    import sys

    from affcore.images import read_image as read

    photo = data / "faces" / "london" / "005_neutral.jpg"
    outs = {}
    for extra in ([], ["--no-relight"]):
        out = tmp_path / ("unrelit" if extra else "relit")
        r = subprocess.run([sys.executable, "-m", "affcore", "synthesize", str(photo), "--expression", "happiness",
                            "--out", str(out), "-q"] + extra, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        outs[bool(extra)] = read(out / "005_neutral_happiness.png")
    image = read_image(photo)
    unrelit = Synthesizer(image, model=model, relight=False).render(expression="happiness")
    np.testing.assert_array_equal(outs[True], unrelit)
    assert np.abs(outs[False].astype(int) - unrelit).max() > 5


def test_augment_relights_unless_told_not_to_and_keeps_that_on_resume(fer_neutral_npz, model, tmp_path):
    from affcore import augment
    from affcore.augment import JobError

    crops = fer_neutral_npz(4)
    relit = augment(crops, "happiness", tmp_path / "relit", workers=0, progress=False, model=model.path)
    unrelit = augment(crops, "happiness", tmp_path / "unrelit", workers=0, progress=False, model=model.path,
                      relight=False)
    with np.load(relit.npz) as a, np.load(unrelit.npz) as b:
        assert a["images"].shape == b["images"].shape and len(a["images"]) >= 3
        assert (a["images"] != b["images"]).any()
    # the job remembers it: resuming relit is refused, resuming as started is not
    with pytest.raises(JobError, match="relight"):
        augment(crops, "happiness", tmp_path / "unrelit", workers=0, progress=False, model=model.path, resume=True)
    again = augment(crops, "happiness", tmp_path / "unrelit", workers=0, progress=False, model=model.path,
                    relight=False, resume=True)
    assert again.counts["skipped"] == 4 and again.counts["processed"] == 0
    with pytest.raises(ValueError, match="relight=True with shading"):
        augment(crops, "happiness", tmp_path / "both", workers=0, progress=False, model=model.path, relight=True,
                shading=tmp_path / "any.npz")
