"""Valence-arousal control: continuity along paths, monotone responses, sequence output."""
import warnings
import weakref

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from affcore import _jobs, affect
from affcore.images import read_image
from affcore.landmarks import inter_ocular_distance
from affcore.sequence import (blink_weights, face_crop_box, iter_va, path_plot, render_va, va_grid, va_plane_picture,
                              write_sequence)
from affcore.synthesis import Synthesizer
from steady import steady_landmarks


@pytest.fixture(scope="module")
def synth(data, model):
    return Synthesizer(read_image(data / "faces" / "london" / "011_neutral.jpg"), model=model)


def _crop_frames(synth, points):
    x0, y0, x1, y1 = face_crop_box(synth.fit.landmarks, synth.image.shape)
    return [f[y0:y1, x0:x1].astype(np.int16) for f in render_va(synth, points)]


def _change_per_step(frames, points):
    step = np.hypot(*np.diff(points, axis=0).T)
    change = np.array([np.abs(b - a).mean() for a, b in zip(frames[:-1], frames[1:])])
    return change / step


def test_frames_change_in_proportion_to_the_va_step(synth):
    corners = affect.parse_va_path("0,0;0.8,0.4;-0.6,0.6;0,0")
    points = affect.va_path(corners, 40)
    step = np.hypot(*np.diff(points, axis=0).T)
    total = np.hypot(*np.diff(corners, axis=0).T).sum()
    # constant speed along the path (chords across a corner are shorter than the arc)
    assert np.isclose(np.median(step), total / (len(points) - 1))
    frames = _crop_frames(synth, points)
    ratio = _change_per_step(frames, points)
    # bounded: mean grey-level change per unit of VA distance
    assert ratio.max() < 80.0, ratio.max()
    assert np.array_equal(frames[0], frames[-1])  # the path returns to (0, 0)
    # no jump: subdividing the steepest step 8x does not make the change per step blow up.
    # At a discontinuity the largest sub-step would carry the whole jump (8x the ratio);
    # a smooth change gives about 1x, plus rounding noise that does not shrink with the step.
    k = int(np.argmax(ratio))
    fine = np.linspace(points[k], points[k + 1], 9)
    assert _change_per_step(_crop_frames(synth, fine), fine).max() < 4.0 * ratio[k]


@pytest.mark.parametrize("photo", ["london/025_neutral", "london/126_neutral", "london/025_smiling", "wild/elon_musk"])
def test_a_mouth_opening_along_a_path_does_not_flicker(data, model, photo):
    """From (0, 0) to surprise the mouth opens. On a photo of closed lips (full lips here,
    which dlib marks 6 mm apart, so the fit leaves a wide band of the photo's lips on the
    mouth interior), that band gives way to the shaded interior as the mouth opens. Decided
    per column by a count of pixels, it switched back and forth from frame to frame (the
    counts jitter by a pixel or two): 6 % and 10 % of the mouth's change went back and
    forth. On a photo that shows teeth, its teeth beside the interior it hid, pieced
    together run by run in each column, did so too (8.8 % and 8.7 % for the last two)
    until they also gave way to the shading. A pixel whose change reverses from one frame
    to the next counts the smaller of the two changes; what remains is the photo's lip
    texture resampled as the lips move."""
    import cv2

    photo = cv2.resize(read_image(data / "faces" / f"{photo}.jpg"), (512, 512), interpolation=cv2.INTER_AREA)
    s = Synthesizer(photo, model=model, threads=1)
    lm = s.fit.landmarks
    (x0, y0), (x1, y1) = np.floor(lm[48:68].min(0)).astype(int) - 6, np.ceil(lm[48:68].max(0)).astype(int) + 12
    points = affect.va_path(np.array([[0.0, 0.0], affect.EXPRESSION_VA["surprise"]]), 40)
    grey = np.array([f[y0:y1, x0:x1].mean(axis=-1) for f in render_va(s, points)])
    change = np.diff(grey, axis=0)
    total = np.abs(change).sum()
    assert total > 20 * (x1 - x0) * (y1 - y0)  # the mouth opens
    reversed_ = change[:-1] * change[1:] < 0
    back_and_forth = np.minimum(np.abs(change[:-1]), np.abs(change[1:]))[reversed_].sum()
    assert back_and_forth < 0.045 * total, back_and_forth / total


def _mouth_corner_height(lm):
    return -(lm[48, 1] + lm[54, 1]) / 2 / inter_ocular_distance(lm)


def _eye_opening(lm):
    lids = (lm[[37, 38, 43, 44], 1] - lm[[41, 40, 47, 46], 1])
    return -lids.mean() / inter_ocular_distance(lm)


def _mouth_opening(lm):
    return (lm[66, 1] - lm[62, 1]) / inter_ocular_distance(lm)


def test_more_valence_more_smile(synth):
    # (steady landmarks, as for the eyes below: a single detection's corners jumped back by
    # 0.011 inter-ocular distances between valence 0.6 and 0.9 when the relit lower face
    # (twenty-fourth session) changed the shading beside them, and by up to 0.026 between
    # other steps on other London photos without relighting)
    lms = [steady_landmarks(img) for img in render_va(synth, [(v, 0.2) for v in (0.0, 0.3, 0.6, 0.9)])]
    heights = [_mouth_corner_height(lm) for lm in lms]
    # The corners rise by about a tenth of the inter-ocular distance over the range; towards
    # full valence the smile saturates, and a step may rise by less than the landmarks'
    # remaining jitter (about 0.005 of it).
    assert heights[-1] > heights[0] + 0.05 and all(b >= a - 0.005 for a, b in zip(heights, heights[1:])), heights


def test_more_arousal_wider_eyes_and_mouth(synth):
    # (steady landmarks: a change of at most 2 grey levels at 391 pixels around the eyes, from
    # a change at the ears, once moved a single detection's eye opening by 0.0085)
    lms = [steady_landmarks(img) for img in render_va(synth, [(0.0, a) for a in (0.0, 0.3, 0.6, 0.9)])]
    eyes = [_eye_opening(lm) for lm in lms]
    mouth = [_mouth_opening(lm) for lm in lms]
    assert eyes[-1] > eyes[0] and all(b >= a - 0.005 for a, b in zip(eyes, eyes[1:])), eyes
    assert all(b > a for a, b in zip(mouth, mouth[1:])), mouth


def test_outside_the_unit_disc_is_clamped_with_a_warning(synth):
    with pytest.warns(UserWarning, match="outside the unit disc"):
        far = synth.render(va=(2.0, 0.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        edge = synth.render(va=(1.0, 0.0))
    assert np.array_equal(far, edge)


def test_a_path_outside_the_disc_warns_once(synth):
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        frames = render_va(synth, [(0.5, 0.0), (1.5, 0.0), (0.0, 2.0), (1.0, 0.0)])
    assert [str(w.message) for w in said] == [
        "2 of 4 (valence, arousal) points lie outside the unit disc (farthest: (0, 2)); clamped radially to radius 1"]
    assert said[0].filename == __file__  # it points at the caller's line
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        iter_va(synth, [(1.5, 0.0)])
    assert len(said) == 1 and said[0].filename == __file__
    assert np.array_equal(frames[1], frames[3])  # (1.5, 0) is rendered as (1, 0)
    with pytest.raises(ValueError, match="finite"):
        render_va(synth, [(0.0, float("nan"))])


@pytest.mark.parametrize("text", ["", "0,0;0.8", "a,b", "0,0;;1,1", "0,0,0"])
def test_malformed_paths(text):
    with pytest.raises(ValueError):
        affect.parse_va_path(text)


def test_zero_frames():
    with pytest.raises(ValueError, match="frames"):
        affect.va_path([[0, 0], [1, 0]], 0)


def test_grid_and_outputs(synth, tmp_path):
    g = va_grid(3)
    assert g.shape == (9, 2) and tuple(g[0]) == (-1.0, 1.0) and tuple(g[4]) == (0.0, 0.0)
    frames = render_va(synth, [(0.0, 0.0), (0.5, 0.5)])
    out = write_sequence(frames, tmp_path / "seq.mp4", fps=10)
    assert out.stat().st_size > 1000 and not list(tmp_path.glob(f"*{_jobs.TMP_MARK}*"))
    import cv2

    cap = cv2.VideoCapture(str(out))
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    assert n == 2
    folder = write_sequence(frames, tmp_path / "frames")
    assert sorted(p.name for p in folder.iterdir()) == ["frame_0000.png", "frame_0001.png"]
    plot = path_plot([(0, 0), (0.5, 0.5)], [(0, 0), (0.25, 0.25), (0.5, 0.5)])
    assert plot.ndim == 3 and (plot < 255).any()
    with pytest.raises(ValueError):
        write_sequence([], tmp_path / "none.mp4")


def test_points_are_checked_when_asked_not_at_the_first_frame(synth):
    with pytest.raises(ValueError, match="finite"):
        iter_va(synth, [(0.0, 0.0), (0.0, float("nan"))])
    with pytest.raises(ValueError, match=r"shape \(N, 2\)"):
        iter_va(synth, [0.1, 0.2, 0.3])


@pytest.mark.parametrize("name", ["seq.mp4", "frames"])
def test_frames_are_written_as_they_are_rendered(synth, tmp_path, name):
    # A long path must not hold every frame in memory: each frame is rendered when the
    # writer asks for it, and by then the writer has let go of all but the last one.
    points = [(0.0, 0.0), (0.3, 0.1), (0.6, 0.2), (0.9, 0.3)]
    alive = []

    def frames():
        for f in iter_va(synth, points):
            assert sum(r() is not None for r in alive) <= 1, "earlier frames are still held"
            alive.append(weakref.ref(f))
            yield f

    out = write_sequence(frames(), tmp_path / name, fps=10)
    assert len(alive) == len(points)
    if name == "frames":
        assert len(list(out.glob("frame_*.png"))) == len(points)


def test_an_interrupted_sequence_keeps_finished_frames_and_leaves_no_half_video(synth, tmp_path):
    def broken():
        yield from iter_va(synth, [(0.0, 0.0), (0.5, 0.0)])
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_sequence(broken(), tmp_path / "seq.mp4")
    assert list(tmp_path.iterdir()) == []  # neither the video nor its partial file
    with pytest.raises(KeyboardInterrupt):
        write_sequence(broken(), tmp_path / "frames")
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == ["frame_0000.png", "frame_0001.png"]


def test_frames_of_another_size_are_refused(synth, tmp_path):
    frame = synth.render(va=(0.0, 0.0))
    for out in (tmp_path / "seq.mp4", tmp_path / "frames"):
        with pytest.raises(ValueError, match="frame 1 is .* all frames must have the same size"):
            write_sequence([frame, frame[:-2]], out)
    assert not (tmp_path / "seq.mp4").exists() and not list(tmp_path.glob(f"*{_jobs.TMP_MARK}*"))


def test_va_plane_picture_places_each_face_in_its_cell(synth):
    import cv2

    n, tile = 3, 64
    pad = tile // 2
    canvas = va_plane_picture(synth, n=n, tile=tile)
    assert canvas.shape == (n * tile + 2 * pad, n * tile + 2 * pad, 3)

    def cell(r, c):
        return canvas[pad + r * tile:pad + (r + 1) * tile, pad + c * tile:pad + (c + 1) * tile].astype(np.int16)

    # the corners, (+-1, +-1), lie outside the unit disc: left empty (white but for the axes'
    # ink and the anchors' labels)
    for r, c in ((0, 0), (0, 2), (2, 0), (2, 2)):
        assert (cell(r, c) == 255).mean() > 0.8, (r, c)
    # the centre cell is the neutral face (the photo's own, but for labels and axes), the
    # one to its right the person at full valence
    x0, y0, x1, y1 = face_crop_box(synth.fit.landmarks, synth.image.shape)
    own = cv2.resize(synth.render(va=(0.0, 0.0))[y0:y1, x0:x1], (tile, tile), interpolation=cv2.INTER_AREA)
    happy = cv2.resize(synth.render(va=(1.0, 0.0))[y0:y1, x0:x1], (tile, tile), interpolation=cv2.INTER_AREA)
    assert np.median(np.abs(cell(1, 1) - own)) == 0
    assert np.median(np.abs(cell(1, 2) - happy)) == 0 and np.abs(cell(1, 2) - own).mean() > 1


@settings(max_examples=60, deadline=None)
@given(st.floats(0.5, 60.0), st.sampled_from([24.0, 25.0, 30.0, 60.0]), st.integers(0, 2**31 - 1))
def test_blinks_come_at_the_rate_asked_each_closing_the_eyes_briefly(per_minute, fps, seed):
    """Over 20 minutes, blink_weights blinks ``per_minute`` times a minute (within the
    Poisson spread), blinks start at least BLINK_LEAST_GAP apart, each closes the eyes fully
    and lasts the blink's phases; the same seed gives the same blinks."""
    from affcore import sequence

    n = int(20 * 60 * fps)
    w = blink_weights(n, fps, per_minute, seed=seed)
    assert w.shape == (n,) and w.min() >= 0.0 and w.max() <= 1.0
    np.testing.assert_array_equal(w, blink_weights(n, fps, per_minute, seed=seed))
    starts = np.flatnonzero((w[1:] > 0) & (w[:-1] == 0)) + 1
    expected = 20 * per_minute
    assert abs(len(starts) - expected) <= 4 * np.sqrt(expected) + 2, (len(starts), expected)
    if len(starts) > 1:
        assert np.diff(starts).min() / fps >= sequence.BLINK_LEAST_GAP - 1.5 / fps
    # each blink: nonzero for the blink's duration (to a frame), closed (>= 0.95) at its peak
    ends = np.flatnonzero((w[:-1] > 0) & (w[1:] == 0)) + 1
    for a, b in zip(starts, ends[ends > starts[0]]):
        assert abs((b - a) / fps - sum(sequence.BLINK_PHASES)) <= 2.0 / fps, (a, b)
        assert w[a:b].max() >= 0.95 or fps < 30


def test_no_blinks_when_the_rate_is_zero_and_bad_arguments_are_refused():
    assert not blink_weights(300, 30.0, 0.0).any()
    assert blink_weights(0, 30.0, 17.0).shape == (0,)
    for kwargs in ({"frames": -1}, {"frames": 2.5}, {"fps": 0.0}, {"fps": float("nan")}, {"per_minute": -1.0},
                   {"per_minute": 61.0}):
        args = {"frames": 10, "fps": 30.0, "per_minute": 17.0, **kwargs}
        with pytest.raises(ValueError):
            blink_weights(**args)


def test_a_blink_closes_the_eyes_of_the_sequence(synth):
    """``blinks`` closes the eyes on top of the VA target: each frame renders the larger of
    the target's and the blink's (AU45's) weight of each blendshape, and with no blink (0)
    the frame is the VA target's, byte for byte. On this photo the dark pixels inside the
    open eyes' outlines (iris, pupil, the lashes' line) fall from 32 % to 13 % at a blink's
    peak (dlib's landmarks do not find closed eyes closed: they place them half open)."""
    import cv2

    points = np.tile([0.3, 0.2], (3, 1))
    plain = render_va(synth, points)
    blinking = render_va(synth, points, blinks=[0.0, 0.5, 1.0])
    assert np.array_equal(plain[0], blinking[0])
    for frame, b in zip(blinking[1:], (0.5, 1.0)):
        weights = np.maximum(synth.blendshapes(va=(0.3, 0.2)),
                             affect.aus_to_blendshapes({"AU45": b}, synth.model.expression_names))
        assert np.array_equal(frame, synth.render(blendshapes=weights))
    inside = np.zeros(synth.image.shape[:2], np.uint8)
    for a in (36, 42):
        cv2.fillPoly(inside, [np.rint(synth.fit.landmarks[a:a + 6]).astype(np.int32)], 1)
    dark = [float(np.mean(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY)[inside > 0] < 80)) for f in (plain[0], *blinking[1:])]
    assert dark[2] < 0.5 * dark[0] and dark[2] < dark[1] < dark[0], dark


@pytest.mark.parametrize("blinks", [[0.0, 0.5], [0.0, 0.5, 1.5], [0.0, float("nan"), 1.0], [[0.0, 0.5, 1.0]]])
def test_blinks_of_the_wrong_shape_or_range_are_refused(synth, blinks):
    with pytest.raises(ValueError, match="blinks"):
        iter_va(synth, np.zeros((3, 2)), blinks=blinks)
