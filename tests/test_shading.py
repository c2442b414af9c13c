"""Expression shading learned from TCCE's posed photo pairs: what it learns lies where
anatomy says the skin folds, it follows the target's expression weights, and it changes
the synthesized skin only where and as much as it says."""
from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from affcore import affect
from affcore.landmarks import detect_landmarks
from affcore.model import LANDMARK_VERTICES
from affcore.shading import (SHADED_EXPRESSIONS, ExpressionShading, ShadingWeights, build_expression_shading,
                             load_expression_shading, read_labelled_photos, save_expression_shading)
from affcore.synthesis import Synthesizer, _mesh

@pytest.fixture(scope="module")
def tcce(data):
    labels = data / "tcce" / "labels.csv"
    if not labels.is_file():
        pytest.skip(f"TCCE not found at {labels}")
    return labels


@pytest.fixture(scope="module")
def shading(tcce, model):
    """Built from all of TCCE's training people, as the docs' figures are (about a minute)."""
    return build_expression_shading(read_labelled_photos(tcce), model=model, progress=False)


def _disc(model, centre, radius_cm=1.0):
    """Vertices of the front of the generic face within radius_cm of centre (x, y)."""
    v = model.neutral_vertices
    return (np.linalg.norm(v[:, :2] - centre[:2], axis=1) < radius_cm) & (v[:, 2] > centre[2] - 1.0)


def _mean(shading, expression, where):
    return float(shading.log_ratio[shading.expressions.index(expression), where].mean())


def test_folds_appear_where_the_muscles_fold_the_skin(shading, model):
    assert shading.expressions == SHADED_EXPRESSIONS
    assert shading.people.min() >= 20  # of TCCE's 23 people (a few photos have no detected face)
    lm = model.neutral_vertices[LANDMARK_VERTICES]
    # the brow lowerer (AU4: sadness, anger, disgust) furrows the skin between the brows
    glabella = _disc(model, (lm[21] + lm[22]) / 2)
    for e in ("sadness", "anger", "disgust"):
        assert _mean(shading, e, glabella) < _mean(shading, "happiness", glabella) - 0.02, e
        assert _mean(shading, e, glabella) < _mean(shading, "surprise", glabella) - 0.02, e
    # raised brows (AU1+2: surprise, fear) fold the forehead into horizontal lines
    forehead = _disc(model, (lm[19] + lm[24]) / 2 + np.array([0.0, 2.0, 0.0]))
    for e in ("surprise", "fear"):
        assert _mean(shading, e, forehead) < _mean(shading, "happiness", forehead) - 0.02, e
        assert _mean(shading, e, forehead) < _mean(shading, "anger", forehead) - 0.02, e
    # a smile bunches the cheeks (AU6) and shadows the skin beside the nose
    cheek = _disc(model, (lm[2] + lm[31]) / 2)
    assert _mean(shading, "happiness", cheek) < -0.03
    assert _mean(shading, "happiness", cheek) < _mean(shading, "surprise", cheek) - 0.02
    # nothing outside the face: ears, neck, the back of the head
    ear = _disc(model, lm[0] + np.array([-1.5, 0.0, -2.0]))
    assert ear.any() and not shading.log_ratio[:, ear].any()


def test_saved_and_loaded_unchanged(shading, tmp_path):
    path = save_expression_shading(shading, tmp_path / "sub" / "shading.npz")
    assert [p.name for p in path.parent.iterdir()] == ["shading.npz"]  # no partial file left
    back = load_expression_shading(path)
    assert back.expressions == shading.expressions and back.strength == shading.strength
    np.testing.assert_array_equal(back.people, shading.people)
    np.testing.assert_allclose(back.log_ratio, shading.log_ratio, rtol=1e-3, atol=1e-4)  # stored as float16


def test_bad_files_and_values_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="affcore shading build"):
        load_expression_shading(tmp_path / "missing.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="not a readable expression shading file"):
        load_expression_shading(junk)
    other = tmp_path / "other.npz"
    np.savez(other, a=np.zeros(3))
    with pytest.raises(ValueError, match="not an affcore expression shading file"):
        load_expression_shading(other)
    with pytest.raises(ValueError, match="unknown expressions"):
        ExpressionShading(("contempt",), np.zeros((1, 5), np.float32), np.array([5]))
    with pytest.raises(ValueError, match="finite"):
        ExpressionShading(("anger",), np.full((1, 5), np.nan, np.float32), np.array([5]))
    with pytest.raises(ValueError, match="strength"):
        ExpressionShading(("anger",), np.zeros((1, 5), np.float32), np.array([5]), strength=-1.0)


def test_too_few_people_is_refused(tcce, model):
    rows = read_labelled_photos(tcce)
    two = [r for r in rows if r[2] in {"1", "2"} and r[1] in ("neutral", "anger")][:8]
    with pytest.raises(ValueError, match="5\\+ people"):
        build_expression_shading(two, model=model, progress=False)


def _unit_shading(model) -> ExpressionShading:
    """Every expression darkens every vertex by its own amount: weights read off directly."""
    k = len(SHADED_EXPRESSIONS)
    log = np.repeat(-0.05 * (1 + np.arange(k, dtype=np.float32))[:, None], model.num_vertices, axis=1)
    return ExpressionShading(SHADED_EXPRESSIONS, log, np.full(k, 10), strength=1.0)


@settings(max_examples=40, deadline=None)
@given(which=st.sampled_from(SHADED_EXPRESSIONS), t=st.floats(0.0, 1.0))
def test_an_expression_gets_its_own_ratio_times_its_intensity(model, which, t):
    w = ShadingWeights(_unit_shading(model), _mesh(model).vertices)
    weights = w.expression_weights(affect.expression_blendshapes(which, t))
    expected = np.zeros(len(SHADED_EXPRESSIONS))
    expected[SHADED_EXPRESSIONS.index(which)] = t
    np.testing.assert_allclose(weights, expected, atol=1e-9)


@settings(max_examples=40, deadline=None)
@given(v=st.floats(-1.0, 1.0), a=st.floats(-1.0, 1.0))
def test_a_va_point_gets_the_same_blend_of_ratios(model, v, a):
    w = ShadingWeights(_unit_shading(model), _mesh(model).vertices)
    r = np.hypot(v, a)
    if r > 1:
        v, a = v / r, a / r
    weights = w.expression_weights(affect.va_to_blendshapes(v, a))
    expected = np.zeros(len(SHADED_EXPRESSIONS))
    for e, x in affect.va_weights(v, a).items():
        expected[SHADED_EXPRESSIONS.index(e)] += x
    np.testing.assert_allclose(weights, expected, atol=1e-9)


@pytest.fixture(scope="module")
def london_shaded(data, model, shading):
    from affcore.images import read_image

    photo = read_image(data / "faces" / "london" / "005_neutral.jpg")
    lm = detect_landmarks(photo)
    return (Synthesizer(photo, landmarks=lm, model=model, threads=1),
            Synthesizer(photo, landmarks=lm, model=model, threads=1, shading=shading))


def test_neutral_is_the_photo_with_or_without_shading(london_shaded):
    plain, shaded = london_shaded
    np.testing.assert_array_equal(shaded.render(expression="neutral"), plain.render(expression="neutral"))


def test_shading_furrows_the_brows_inside_the_face_only(london_shaded):
    plain, shaded = london_shaded
    a, b = plain.render_full(expression="anger"), shaded.render_full(expression="anger")
    np.testing.assert_array_equal(a.mask, b.mask)
    np.testing.assert_array_equal(a.image[~a.mask], b.image[~b.mask])  # the blend never leaves its mask
    grey_a, grey_b = a.image.astype(float).mean(axis=2), b.image.astype(float).mean(axis=2)
    change = grey_b - grey_a
    assert np.abs(change[a.face_mask]).max() < 0.4 * 255  # bounded factors: nothing blackened or bleached
    # between the brows, where anger's brow lowerer furrows the skin, the face darkens
    lm = detect_landmarks(b.image)
    x, y = np.rint((lm[21] + lm[22]) / 2).astype(int)
    r = max(2, int(0.1 * np.linalg.norm(lm[39] - lm[42])))
    assert change[y - r:y + r + 1, x - r:x + r + 1].mean() < -2.0
    # the photo's own colour: shading scales the three channels alike
    sa, sb = a.image[a.face_mask].astype(float), b.image[a.face_mask].astype(float)
    bright = (sa.sum(axis=1) > 150) & (sb.sum(axis=1) > 150)
    ratio_a = sa[bright] / sa[bright].sum(axis=1, keepdims=True)
    ratio_b = sb[bright] / sb[bright].sum(axis=1, keepdims=True)
    assert np.abs(ratio_a - ratio_b).mean() < 0.01


def test_model_mismatch_and_wrong_type_are_refused(london_shaded, model):
    plain, _ = london_shaded
    with pytest.raises(TypeError, match="ExpressionShading"):
        Synthesizer(plain.image, fit_result=plain.fit, model=model, shading="shading.npz")
    small = ExpressionShading(("anger",), np.zeros((1, 10), np.float32), np.array([5]))
    with pytest.raises(ValueError, match="10 vertices"):
        Synthesizer(plain.image, fit_result=plain.fit, model=model, shading=small)


def test_cli_builds_and_uses_shading(tcce, data, tmp_path, shading):
    csv_path = tmp_path / "few.csv"
    lines = tcce.read_text().splitlines()
    csv_path.write_text("\n".join(lines[:1] + [row for row in lines[1:] if row.split(",")[2] in {"1", "2"}]) + "\n")
    env_args = [sys.executable, "-m", "affcore"]
    built = subprocess.run(env_args + ["shading", "build", "--labels", str(csv_path), "--images", str(tcce.parent / "images"),
                                       "--out", str(tmp_path / "s.npz"), "-q"], capture_output=True, text=True)
    assert built.returncode == 2 and "5+ people" in built.stderr  # two people are too few
    assert "smiles" not in built.stderr  # expression photos are read, not rendered: no warning that they smile
    path = save_expression_shading(shading, tmp_path / "s.npz")
    photo = data / "faces" / "london" / "005_neutral.jpg"
    outs = []
    for extra in ([], ["--shading", str(path)]):
        out = tmp_path / ("shaded" if extra else "plain")
        r = subprocess.run(env_args + ["synthesize", str(photo), "--expression", "anger", "--out", str(out), "-q"] + extra,
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        outs.append((out / "005_neutral_anger.png").read_bytes())
    assert outs[0] != outs[1]
    frames = tmp_path / "frames"
    r = subprocess.run(env_args + ["sequence", str(photo), "--path", "0,0;-0.52,0.58", "--frames", "3", "--shading", str(path),
                                   "--out", str(frames), "-q"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert len(list(frames.glob("*.png"))) >= 3
    r = subprocess.run(env_args + ["synthesize", str(photo), "--expression", "anger", "--out", str(tmp_path / "x"),
                                   "--shading", str(tmp_path / "nope.npz")], capture_output=True, text=True)
    assert r.returncode == 2 and "affcore shading build" in r.stderr


def test_augment_synthesizes_with_shading_and_keeps_it_on_resume(fer_neutral_npz, model, shading, tmp_path):
    from affcore import augment
    from affcore.augment import JobError

    crops = fer_neutral_npz(4)
    path = save_expression_shading(shading, tmp_path / "shading.npz")
    plain = augment(crops, "anger", tmp_path / "plain", workers=0, progress=False, model=model.path)
    shaded = augment(crops, "anger", tmp_path / "shaded", workers=0, progress=False, model=model.path, shading=path)
    with np.load(plain.npz) as a, np.load(shaded.npz) as b:
        assert a["images"].shape == b["images"].shape and len(a["images"]) >= 3
        assert (a["images"] != b["images"]).any()
    # the job remembers its shading: resuming without it, or with another, is refused
    with pytest.raises(JobError, match="shading"):
        augment(crops, "anger", tmp_path / "shaded", workers=0, progress=False, model=model.path, resume=True)
    other = save_expression_shading(dataclasses.replace(shading, strength=0.3), tmp_path / "other.npz")
    with pytest.raises(JobError, match="shading"):
        augment(crops, "anger", tmp_path / "shaded", workers=0, progress=False, model=model.path, shading=other,
                resume=True)
    again = augment(crops, "anger", tmp_path / "shaded", workers=0, progress=False, model=model.path, shading=path,
                    resume=True)
    assert again.counts["skipped"] == 4 and again.counts["processed"] == 0


def test_identity_is_kept_with_shading(data, model, shading):
    """The synthesis issue's identity bound holds with shading too (London neutral and wild
    photos, 7 expressions at intensity 1: median <= 0.25, max <= 0.45)."""
    from affcore.images import read_image
    from affcore.landmarks import identity_descriptor

    paths = sorted((data / "faces" / "london").glob("*_neutral.jpg")) + sorted((data / "faces" / "wild").glob("*.jpg"))
    d = []
    for p in paths:
        photo = read_image(p)
        own = identity_descriptor(photo)
        synth = Synthesizer(photo, landmarks=detect_landmarks(photo), model=model, shading=shading)
        d.append([np.linalg.norm(identity_descriptor(synth.render(expression=e)) - own)
                  for e in affect.EXPRESSIONS if e != "neutral"])
    d = np.array(d)
    assert d.shape == (40, 7)
    assert np.median(d) <= 0.25, np.median(d, axis=0)
    assert d.max() <= 0.45, d.max(axis=0)
