"""Expression synthesis on real photos: identity kept, the expression shows, no seam,
bad input refused. Rendered faces are shared across tests through a module cache."""
from __future__ import annotations

import numpy as np
import pytest

import affcore
from affcore import affect
from affcore.images import read_image
from affcore.landmarks import detect_landmarks, identity_descriptor, inter_ocular_distance
from affcore.synthesis import Synthesizer, synthesize
from steady import steady_landmarks

EXPRESSIONS = [e for e in affect.EXPRESSIONS if e != "neutral"]


class Rendered:
    """Per photo: its landmarks and descriptor, and those re-detected on each expression
    (with steady_landmarks too where `steady`)."""

    def __init__(self, path, model, steady=False):
        self.image = read_image(path)
        self.landmarks = detect_landmarks(self.image)
        self.descriptor = identity_descriptor(self.image)
        synth = Synthesizer(self.image, landmarks=self.landmarks, model=model)
        self.out_landmarks, self.distance = {}, {}
        self.steady, self.out_steady = (steady_landmarks(self.image) if steady else None), {}
        for e in EXPRESSIONS:
            img = synth.render(expression=e)
            self.out_landmarks[e] = detect_landmarks(img)
            if steady:
                self.out_steady[e] = steady_landmarks(img)
            self.distance[e] = float(np.linalg.norm(identity_descriptor(img) - self.descriptor))
        self.mild_smile = detect_landmarks(synth.render(expression="happiness", intensity=0.5))


@pytest.fixture(scope="module")
def rendered(data, model):
    paths = sorted((data / "faces" / "london").glob("*_neutral.jpg")) + sorted((data / "faces" / "wild").glob("*.jpg"))
    return {p.name: Rendered(p, model, steady=p.name.endswith("_neutral.jpg")) for p in paths}


def test_identity_is_kept(rendered):
    d = np.array([[r.distance[e] for e in EXPRESSIONS] for r in rendered.values()])
    assert len(d) == 40
    # real neutral-vs-smiling photos of the same people: median 0.23; posed expressions 0.28
    assert np.median(d) <= 0.25, np.median(d, axis=0)
    assert d.max() <= 0.45, d.max(axis=0)


def _features(lm: np.ndarray) -> dict:
    iod = inter_ocular_distance(lm)
    return {
        "corner_height": -(lm[48, 1] + lm[54, 1]) / 2 / iod,  # up is positive
        "mouth_width": np.linalg.norm(lm[54] - lm[48]) / iod,
        "brow_height": -lm[17:27, 1].mean() / iod,
        "inner_brow_height": -lm[[21, 22], 1].mean() / iod,
        "inner_brow_gap": (lm[22, 0] - lm[21, 0]) / iod,
        "mouth_opening": (lm[66, 1] - lm[62, 1]) / iod,
        "upper_lip_to_nose": (lm[51, 1] - lm[33, 1]) / iod,
        "right_corner_lift": (lm[54, 1] - lm[48, 1]) / iod,  # subject's right (image left) higher
    }


# expression -> [(feature, +1 grows / -1 shrinks)]: FACS descriptions of each prototype
MOVES = {
    "happiness": [("corner_height", +1), ("mouth_width", +1)],
    "sadness": [("inner_brow_height", +1), ("corner_height", -1)],
    "surprise": [("brow_height", +1), ("mouth_opening", +1)],
    "fear": [("inner_brow_height", +1), ("inner_brow_gap", -1), ("mouth_opening", +1), ("mouth_width", +1)],
    "anger": [("inner_brow_height", -1), ("inner_brow_gap", -1)],
    "disgust": [("upper_lip_to_nose", -1)],
    "contempt": [("right_corner_lift", +1)],
}


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_re_detected_landmarks_move_the_right_way(rendered, expression):
    london = [r for name, r in rendered.items() if name.endswith("_neutral.jpg")]
    for feature, sign in MOVES[expression]:
        change = np.array([_features(r.out_steady[expression])[feature] - _features(r.steady)[feature]
                           for r in london])
        share = np.mean(sign * change > 0.005)
        assert share >= 0.9, f"{expression}: {feature} moved the right way for only {share:.0%} of people"


def test_fear_stretches_the_lips_wider_than_surprise(rendered):
    # AU20 (lip stretcher) is what tells fear's mouth from surprise's, whose jaw drop
    # narrows the mouth (fear's mouth also widens against the photo's: MOVES).
    london = [r for name, r in rendered.items() if name.endswith("_neutral.jpg")]
    wider = [_features(r.out_steady["fear"])["mouth_width"] > _features(r.out_steady["surprise"])["mouth_width"]
             for r in london]
    assert np.mean(wider) >= 0.9, np.mean(wider)


def _procrustes_distance(a: np.ndarray, b: np.ndarray) -> float:
    """RMS distance between landmark sets after the best similarity transform of a onto b,
    in units of b's inter-ocular distance."""
    a0, b0 = a - a.mean(0), b - b.mean(0)
    u, s, vt = np.linalg.svd(a0.T @ b0)
    r = u @ vt
    scale = s.sum() / (a0 ** 2).sum()
    return float(np.sqrt(((scale * a0 @ r - b0) ** 2).sum(1).mean()) / inter_ocular_distance(b))


def test_synthesized_smile_is_closer_to_the_real_smile(rendered, london_pairs, landmark_cache):
    # The London smiles are mild, mostly closed-lip: compare happiness at intensity 0.5
    # (at 1 the open, toothy smile is further from them than the neutral face is).
    closer = 0
    for pid, neutral, smiling in london_pairs:
        r = rendered[neutral.name]
        real = landmark_cache(smiling)
        closer += _procrustes_distance(r.mild_smile, real) < _procrustes_distance(r.landmarks, real)
    assert closer >= 25, f"synthesized happiness closer to the real smile for only {closer}/30 people"


@pytest.fixture(scope="module")
def london_synth(data, model):
    img = read_image(data / "faces" / "london" / "008_neutral.jpg")
    return Synthesizer(img, model=model)


def test_fitted_expression_reproduces_the_photo(london_synth):
    out = london_synth.render(blendshapes=london_synth.fit.expression)
    assert np.array_equal(out, london_synth.image)


def test_neutral_target_keeps_the_resting_face(london_synth, model):
    assert np.array_equal(london_synth.render(expression="neutral"), london_synth.image)
    pure = Synthesizer(london_synth.image, model=model, fit_result=london_synth.fit, keep_resting_face=False)
    assert not np.array_equal(pure.render(expression="neutral"), london_synth.image)


@pytest.fixture(scope="module")
def turned_synth(data, model):
    """300-W's image_0010, hand-labelled, turned by about 20 degrees."""
    from affcore.landmarks import read_pts

    folder = data / "faces" / "300w"
    s = Synthesizer(read_image(folder / "image_0010.png"), landmarks=read_pts(folder / "image_0010.pts"), model=model)
    assert abs(s.fit.yaw) > 15, s.fit.yaw
    return s


def _fer_neutral_crops(data, count):
    """FER2013's first ``count`` neutral training crops, upscaled to 192 x 192 as augment
    upscales crops for fitting: [(index in fer2013.npz, (192, 192) uint8 grey)]."""
    import cv2

    path = data / "fer2013.npz"
    if not path.is_file():
        pytest.skip(f"FER2013 not found at {path}")
    fer = np.load(path)
    neutral = list(fer["label_names"]).index("neutral")
    index = np.flatnonzero((fer["labels"] == neutral) & (fer["split"] == "train"))[:count]
    return [(int(i), cv2.resize(fer["images"][i], (192, 192), interpolation=cv2.INTER_CUBIC)) for i in index]


def test_a_turned_face_keeps_its_photo_for_its_own_expression(turned_synth, data, model):
    # The far cheek grazes the camera, and its skin, left out of targets with the outline's
    # (synthesis.RIM_FACING), lies in front of teeth and eyeball; they must not show through
    # (they did, as dark and grey arcs at the nostrils and the far eye's inner corner).
    assert np.array_equal(turned_synth.render(expression="neutral"), turned_synth.image)
    # and the same for FER2013's turned faces, upscaled as augment does (on the old renderer 3
    # of these 40 neutral training crops changed, at yaw 12-23 degrees)
    import cv2

    from affcore.landmarks import detect_faces, landmarks_in_box

    changed = []
    for i, grey in _fer_neutral_crops(data, 40):
        crop = cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB)
        boxes = detect_faces(crop)
        # (a crop is a face: where the detector misses it, augment takes the whole crop)
        box = boxes[0] if len(boxes) == 1 else (0, 0, 191, 191)
        s = Synthesizer(crop, landmarks=landmarks_in_box(crop, box), model=model, threads=1)
        if not np.array_equal(s.render(expression="neutral"), crop):
            changed.append((i, round(s.fit.yaw, 1)))
    assert not changed, changed


def test_a_turned_face_renders_its_nose_and_mouth(turned_synth):
    # The skin left out along the outline (the grazing rim) stops short of the inner face: on
    # this turned face it ran from the far cheek into the side of the nose and the mouth's
    # corner (300-500 of these pixels), which the warp then moved apart from the rendered
    # skin next to them (a step in the nostril under disgust).
    import cv2

    p = turned_synth.fit.landmarks
    inner = np.zeros(turned_synth.image.shape[:2], np.uint8)
    cv2.fillConvexPoly(inner, cv2.convexHull(p[31:68].astype(np.float32)).astype(np.int32), 1)
    inner[:int(np.ceil(p[36:48, 1].max())) + 1] = 0  # below the eyes
    inner = cv2.erode(inner, np.ones((5, 5), np.uint8)).astype(bool)  # (not the hull's corners)
    for e in affect.EXPRESSIONS:
        r = turned_synth.render_full(expression=e)
        assert not (inner & ~r.face_mask).any(), (e, int((inner & ~r.face_mask).sum()))


@pytest.mark.parametrize("source", ["london", "fer2013"])
def test_a_grey_photo_stays_grey(data, model, source):
    # The mouth's and eyes' materials have tinted albedos (yellowish teeth, red gums); in a
    # black-and-white picture they drew coloured mouths. Grey in, grey out.
    import cv2

    if source == "london":
        greys = [cv2.cvtColor(read_image(data / "faces" / "london" / "008_neutral.jpg"), cv2.COLOR_RGB2GRAY)]
        faces = [Synthesizer(greys[0], model=model)]
    else:
        from affcore.landmarks import landmarks_in_box

        # (before, three of these four showed coloured teeth or mouths)
        greys = [grey for _, grey in _fer_neutral_crops(data, 4)]
        faces = [Synthesizer(g, landmarks=landmarks_in_box(g, (0, 0, 191, 191)), model=model) for g in greys]
    for grey, s in zip(greys, faces):
        for e in EXPRESSIONS:
            out = s.render(expression=e)
            spread = out.max(axis=2).astype(int) - out.min(axis=2)
            assert not spread.any(), (e, int(np.count_nonzero(spread)), int(spread.max()))
            assert not np.array_equal(out[..., 0], grey), e  # and the face changed


def test_no_seam_and_nothing_changes_outside_the_mask(london_synth):
    import cv2

    photo = london_synth.image
    for e in ("happiness", "surprise"):
        r = london_synth.render_full(expression=e)
        assert np.array_equal(r.image[~r.mask], photo[~r.mask])
        m = r.mask.astype(np.uint8)
        ring = (m - cv2.erode(m, np.ones((3, 3), np.uint8))).astype(bool)

        def grad(im):
            g = cv2.cvtColor(im, cv2.COLOR_RGB2GRAY).astype(np.float32)
            return np.hypot(cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1))

        ours, src = grad(r.image)[ring].mean(), grad(photo)[ring].mean()
        assert abs(ours - src) <= 0.2 * src, (e, ours, src)
        # and the face changed: the target is not the photo
        assert np.abs(r.image[r.face_mask].astype(int) - photo[r.face_mask]).mean() > 2


def test_blend_reproduces_opencv_inside_the_mask(london_synth):
    import cv2

    r = london_synth.render_full(expression="happiness")
    m = r.mask.astype(np.uint8) * 255
    x, y, w, h = cv2.boundingRect(m)
    ref = cv2.seamlessClone(r.composite, london_synth.image, m.copy(), (x + w // 2, y + h // 2), cv2.NORMAL_CLONE)
    assert np.abs(r.image[r.mask].astype(int) - ref[r.mask]).mean() <= 1.0


def test_deterministic(london_synth, model):
    a = london_synth.render(expression="fear", intensity=0.7)
    b = Synthesizer(london_synth.image, model=model, fit_result=london_synth.fit, threads=1).render(
        expression="fear", intensity=0.7)
    assert np.array_equal(a, b)


def test_intensity_scales_the_change(london_synth):
    photo = london_synth.image.astype(int)
    diffs = [np.abs(london_synth.render(expression="surprise", intensity=t).astype(int) - photo).mean()
             for t in (0.25, 0.5, 1.0)]
    assert diffs[0] < diffs[1] < diffs[2]


def test_action_units_and_va_targets(london_synth):
    photo = london_synth.image
    au = london_synth.render(aus={"AU12": 0.8, "AU6": 0.5})
    va = london_synth.render(va=(0.8, 0.4))
    assert not np.array_equal(au, photo) and not np.array_equal(va, photo)
    lm0, lm = detect_landmarks(photo), detect_landmarks(au)
    assert _features(lm)["corner_height"] > _features(lm0)["corner_height"]


@pytest.mark.parametrize("convert", [
    lambda im: im.mean(axis=2).astype(np.uint8),                                  # grey
    lambda im: np.dstack([im, np.full(im.shape[:2], 255, np.uint8)]),             # RGBA
    lambda im: im.astype(np.uint16) * 257,                                        # 16-bit
])
def test_other_image_layouts_are_converted(data, model, convert):
    img = read_image(data / "faces" / "wild" / "barack_obama.jpg")
    out = synthesize(convert(img), expression="happiness", model=model)
    assert out.shape == img.shape and out.dtype == np.uint8


@pytest.mark.parametrize("kwargs, message", [
    (dict(expression="joy"), "valid names"),
    (dict(expression="happiness", intensity=1.5), "intensity"),
    (dict(aus={"AU99": 0.5}), "AU"),
    (dict(aus={"AU12": -0.1}), r"\[0, 1\]"),
    (dict(va=(float("nan"), 0.0)), "NaN|finite"),
    (dict(expression="happiness", aus={"AU12": 1.0}), "exactly one"),
    (dict(), "exactly one"),
])
def test_bad_targets_are_refused(london_synth, kwargs, message):
    with pytest.raises(ValueError, match=message):
        london_synth.render(**kwargs)


def test_a_smiling_photo_is_warned_of(data, model, london_pairs, landmark_cache):
    """affcore's targets start from a neutral face: a photo that smiles (sundar_pichai's teeth
    smile) warns that its targets keep the smile; none of the 30 London neutral photos does."""
    import warnings

    from affcore.fitting import SMILING_PHOTO, fitted_smile

    path = data / "faces" / "wild" / "sundar_pichai.jpg"
    with pytest.warns(affcore.NonNeutralPhotoWarning, match=r"the photo smiles \(fitted .* = 1\.\d\d;") as caught:
        smiling = Synthesizer(read_image(path), landmarks=landmark_cache(path), model=model)
    assert "every target keeps at least that smile" in str(caught[0].message)
    assert "--replace-expression" in str(caught[0].message)  # what a CLI user can do about it
    assert fitted_smile(smiling.fit) > SMILING_PHOTO
    with pytest.warns(affcore.NonNeutralPhotoWarning, match="targets replace the smile"):
        Synthesizer(read_image(path), landmarks=landmark_cache(path), model=model, keep_resting_face=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", affcore.NonNeutralPhotoWarning)
        smiles = [fitted_smile(Synthesizer(read_image(p), landmarks=landmark_cache(p), model=model).fit)
                  for _, p, _ in london_pairs]
    assert max(smiles) < SMILING_PHOTO / 2  # neutral photos stay far below (0.22 on 2026-12-07)


def test_no_face_is_refused(model):
    with pytest.raises(affcore.NoFaceError):
        Synthesizer(np.full((200, 200, 3), 90, np.uint8), model=model)
