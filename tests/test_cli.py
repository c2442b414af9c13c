"""The command line, run as a user would: in a subprocess, checking files, exit codes and
that errors are one readable line without a traceback."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image


def run(*args, env=None):
    e = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "affcore", *map(str, args)], capture_output=True, text=True, env=e,
                          timeout=600)


def assert_one_line_error(r, *words):
    assert r.returncode != 0
    err = r.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    for w in words:
        assert w in err, err


def test_fit_writes_the_documented_json_and_overlay(data, tmp_path):
    photo = data / "faces" / "london" / "005_neutral.jpg"
    r = run("fit", photo, "--json", tmp_path / "fit.json", "--overlay", tmp_path / "fit.png")
    assert r.returncode == 0, r.stderr
    j = json.loads((tmp_path / "fit.json").read_text())
    for key in ("landmarks", "projected_landmarks", "rms_px", "iod_px", "pose", "identity", "expression",
                "iterations", "time_ms"):
        assert key in j, key
    assert np.shape(j["landmarks"]) == (68, 2) and np.shape(j["projected_landmarks"]) == (68, 2)
    assert {"yaw", "pitch", "roll", "rotation", "scale_px_per_cm", "translation_px"} <= set(j["pose"])
    assert len(j["identity"]) == 100 and len(j["expression"]) == 53
    assert 0 < j["rms_px"] < 0.05 * j["iod_px"]
    overlay = np.asarray(Image.open(tmp_path / "fit.png"))
    assert overlay.shape == (1350, 1350, 3)
    assert not np.array_equal(overlay, np.asarray(Image.open(photo)))


def test_fit_with_pts_landmarks(data, tmp_path):
    r = run("fit", data / "faces" / "300w" / "image_0010.png", "--landmarks", data / "faces" / "300w" / "image_0010.pts",
            "--json", tmp_path / "f.json")
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "f.json").read_text())["rms_px"] < 7.16


@pytest.mark.parametrize("make, words", [
    (lambda p: p.write_text("not an image"), ["not a readable image"]),
    (lambda p: Image.new("RGB", (1, 1)).save(p, "PNG"), ["at least"]),
    (lambda p: Image.new("1", (20000, 20000)).save(p, "PNG"), ["too large"]),
    (lambda p: Image.new("RGB", (300, 300), (128, 128, 128)).save(p, "PNG"), ["no face"]),
])
def test_fit_bad_photos(tmp_path, data, make, words):
    p = tmp_path / "bad.jpg"
    make(p)
    assert_one_line_error(run("fit", p, "--json", tmp_path / "o.json"), *words)
    assert not (tmp_path / "o.json").exists()


def test_fit_bad_landmark_files(tmp_path, data):
    photo = data / "faces" / "london" / "005_neutral.jpg"
    np.save(tmp_path / "nan.npy", np.full((68, 2), np.nan))
    assert_one_line_error(run("fit", photo, "--landmarks", tmp_path / "nan.npy"), "non-finite")
    np.save(tmp_path / "short.npy", np.zeros((10, 2)))
    assert_one_line_error(run("fit", photo, "--landmarks", tmp_path / "short.npy"), "shape")
    assert_one_line_error(run("fit", tmp_path / "missing.jpg"), "no such file")


def test_missing_model_says_how_to_get_it(tmp_path, data):
    env = {"AFFCORE_DATA_DIR": str(tmp_path), "AFFCORE_CACHE_DIR": str(tmp_path), "AFFCORE_MODEL": ""}
    r = run("fit", data / "faces" / "london" / "005_neutral.jpg", env=env)
    assert_one_line_error(r, "ICT-FaceKit", "affcore model import")


def test_synthesize_all_writes_every_expression_and_a_sheet(data, tmp_path):
    r = run("synthesize", data / "faces" / "wild" / "barack_obama.jpg", "--all", "--out", tmp_path, "-q")
    assert r.returncode == 0, r.stderr
    names = sorted(p.name for p in tmp_path.iterdir())
    expected = sorted([f"barack_obama_{e}.png" for e in ("neutral", "happiness", "sadness", "surprise", "fear",
                                                          "anger", "disgust", "contempt")] + ["barack_obama_sheet.png"])
    assert names == expected
    sheet = np.asarray(Image.open(tmp_path / "barack_obama_sheet.png"))
    assert sheet.shape[0] > 300 and sheet.shape[1] >= 1000
    # the tiles show the face: the first is the original's face box, scaled to 320 wide
    import cv2

    from affcore import fit, read_image
    from affcore.sequence import face_crop_box

    photo = read_image(data / "faces" / "wild" / "barack_obama.jpg")
    x0, y0, x1, y1 = face_crop_box(fit(photo).landmarks, photo.shape)
    assert (x1 - x0) < 0.8 * photo.shape[1]
    face = cv2.resize(photo[y0:y1, x0:x1], (320, round((y1 - y0) * 320 / (x1 - x0))), interpolation=cv2.INTER_AREA)
    assert np.abs(sheet[:face.shape[0], :320].astype(int) - face).mean() < 1.0


def test_synthesize_va_and_aus_names(data, tmp_path):
    photo = data / "faces" / "wild" / "barack_obama.jpg"
    assert run("synthesize", photo, "--va", "0.5,-0.25", "--out", tmp_path, "-q").returncode == 0
    assert (tmp_path / "barack_obama_va_+0.50_-0.25.png").is_file()
    assert run("synthesize", photo, "--aus", "AU12=0.8,AU6=0.5", "--out", tmp_path, "-q").returncode == 0
    assert (tmp_path / "barack_obama_AU12-0.80_AU6-0.50.png").is_file()


def test_synthesize_goes_on_past_a_bad_photo_and_names_it_once(data, tmp_path):
    missing = tmp_path / "missing.jpg"
    out = tmp_path / "out"
    r = run("synthesize", missing, data / "faces" / "wild" / "barack_obama.jpg", "--expression", "happiness",
            "--out", out)
    assert r.returncode == 1
    said = r.stdout + r.stderr
    assert "Traceback" not in said
    assert said.count(str(missing)) == 1 and "no such file" in said, said
    assert "1 photo(s) failed" in said
    assert sorted(p.name for p in out.iterdir()) == ["barack_obama_happiness.png"]


def test_synthesize_refuses_a_photo_of_two_people(data, tmp_path):
    a = Image.open(data / "faces" / "london" / "005_neutral.jpg").resize((400, 400))
    b = Image.open(data / "faces" / "london" / "008_neutral.jpg").resize((400, 400))
    pair = Image.new("RGB", (800, 400))
    pair.paste(a, (0, 0))
    pair.paste(b, (400, 0))
    pair.save(tmp_path / "pair.png")
    r = run("synthesize", tmp_path / "pair.png", "--expression", "happiness", "--out", tmp_path / "out")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "pair.png: 2 faces of similar size detected" in r.stderr and "--landmarks" in r.stderr, r.stderr
    assert not list((tmp_path / "out").iterdir())


def test_out_of_disc_va_warns_once_on_one_line(data, tmp_path):
    r = run("synthesize", data / "faces" / "wild" / "barack_obama.jpg", "--va", "1.5,0", "--out", tmp_path, "-q")
    assert r.returncode == 0
    assert r.stderr.strip() == ("affcore synthesize: warning: (valence, arousal) = (1.5, 0) lies outside the unit "
                                "disc; clamped radially to radius 1"), r.stderr
    assert (tmp_path / "barack_obama_va_+1.50_+0.00.png").is_file()


@pytest.mark.parametrize("out, fps, words", [("seq.avi", "30", ["seq.avi", ".mp4"]), ("seq.mp4", "0", ["fps"]),
                                             ("seq.mp4", "nan", ["fps"])])
def test_sequence_refuses_a_bad_output_before_fitting(data, tmp_path, out, fps, words):
    # a missing photo: had the output been checked only after rendering, the photo's error
    # would come first
    r = run("sequence", tmp_path / "missing.jpg", "--path", "0,0;0.5,0.5", "--frames", "3", "--fps", fps,
            "--out", tmp_path / out)
    assert_one_line_error(r, *words)
    assert not list(tmp_path.iterdir())


def test_a_sequence_with_blinks(data, tmp_path):
    """``--blinks 60`` blinks about once a second: in 30 frames of a still VA point some
    frames differ from the first (the eyes close), and the rate is checked before the fit."""
    r = run("sequence", data / "faces" / "london" / "005_neutral.jpg", "--path", "0.2,0.2;0.2,0.2", "--frames", "30",
            "--blinks", "60", "--seed", "3", "--out", tmp_path / "frames", "-q")
    assert r.returncode == 0, r.stderr
    frames = [np.asarray(Image.open(p)) for p in sorted((tmp_path / "frames").glob("frame_*.png"))]
    assert len(frames) == 30
    differ = [int((f != frames[0]).any(axis=-1).sum()) for f in frames]
    assert max(differ) > 500 and min(differ[1:]) == 0, differ
    r = run("sequence", tmp_path / "missing.jpg", "--path", "0,0;0.5,0.5", "--frames", "3", "--blinks", "100",
            "--out", tmp_path / "bad")
    assert_one_line_error(r, "per_minute")


@pytest.mark.parametrize("out", ["frames", "seq.mp4"])
def test_a_terminated_sequence_keeps_whole_frames_and_no_temporary_file(data, tmp_path, out):
    """``kill`` (SIGTERM) ends a command as Ctrl-C does: frames already written stay, each
    whole; the frame and the video being written leave no temporary file behind."""
    import signal
    import time

    from affcore import _jobs

    proc = subprocess.Popen([sys.executable, "-m", "affcore", "sequence", str(data / "faces" / "london" / "005_neutral.jpg"),
                             "--path", "0,0;0.8,0.4", "--frames", "2000", "--out", str(tmp_path / out), "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        # a few frames in: PNGs written, or the video's temporary file growing
        while time.monotonic() < deadline and proc.poll() is None:
            if len([p for p in tmp_path.rglob("*") if p.is_file() and p.stat().st_size > 0]) >= 3 or \
                    any(p.stat().st_size > 100_000 for p in tmp_path.glob("*") if p.is_file()):
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130 and err.strip() == "affcore: interrupted", (proc.returncode, err)
    assert not list(tmp_path.rglob(f"*{_jobs.TMP_MARK}*"))
    if out == "seq.mp4":
        assert list(tmp_path.iterdir()) == []  # no video: it was not finished
    else:
        frames = sorted((tmp_path / out).iterdir())
        assert frames and all(p.name.startswith("frame_") for p in frames)
        for p in frames:
            assert Image.open(p).size == (1350, 1350)  # each frame whole


@pytest.mark.parametrize("args, words", [
    (["--expression", "joy"], ["valid names", "happiness"]),
    (["--expression", "happiness", "--intensity", "2"], ["intensity"]),
    (["--aus", "AU99=0.5"], ["AU99"]),
    (["--va", "nope"], ["V,A"]),
])
def test_synthesize_bad_targets(data, tmp_path, args, words):
    r = run("synthesize", data / "faces" / "wild" / "barack_obama.jpg", *args, "--out", tmp_path)
    assert_one_line_error(r, *words)
    assert not list(tmp_path.iterdir())


def test_info_reports_the_build():
    r = run("info")
    assert r.returncode == 0
    info = json.loads(r.stdout)
    assert isinstance(info["cuda"], bool) and "version" in info


def test_the_cli_needs_neither_torch_nor_onnxruntime_to_start():
    # torch is the 'train' extra: the command line must start (and list every command)
    # without it; importing it is blocked here.
    code = ("import sys; sys.modules['torch'] = None; sys.modules['onnxruntime'] = None\n"
            "from affcore.cli import main\n"
            "sys.exit(main(['info']))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["version"]
