"""Batch synthesis (affcore.augment): SPEC grammar, journal, and end-to-end jobs on FER2013
crops and photos: kill -9 + resume, bad inputs, workers 1 vs 2, the .npz output, Ray.

The end-to-end tests share one reference run (30 FER2013 neutral crops x 2 targets, 2
workers); the others compare their outputs to it byte for byte.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from affcore import _jobs
from affcore.augment import MANIFEST_COLUMNS, JobError, parse_targets

TARGETS = "happiness;surprise@0.5"
N_CROPS = 30
BOOKKEEPING = {"journal.jsonl"}  # completion order differs between runs; everything else must not


# -- SPEC grammar ---------------------------------------------------------------------------
def test_spec_grammar():
    names = lambda s: [t.name for t in parse_targets(s)]  # noqa: E731
    assert names("all")[:2] == ["neutral", "happiness"] and len(names("all")) == 8
    assert names("happiness@0.5,1.0") == ["happiness_0.50", "happiness"]
    assert names("happy,sad@0.25") == ["happiness_0.25", "sadness_0.25"]  # FER2013 spellings
    assert names(["happiness", "happiness@1", "va:0.5,0.2"]) == ["happiness", "va_+0.50_+0.20"]  # deduplicated
    assert names("aus:AU12=0.8+au06=0.5") == ["aus_AU6-0.50_AU12-0.80"]
    grid = parse_targets("vagrid:5")
    assert len(grid) == 13 and all(t.valence ** 2 + t.arousal ** 2 <= 1 + 1e-9 for t in grid)
    t = parse_targets("va:-0.3,0.4")[0]
    assert t.render_kwargs() == {"va": (-0.3, 0.4)}


@pytest.mark.parametrize("spec, message", [
    ("hapiness", "unknown expression 'hapiness'"),
    ("happiness@1.5", "must be a number in [0, 1]"),
    ("happiness@0.333", "more than 2 decimals"),
    ("happiness@", "no intensities"),
    ("va:1,1", "outside the unit disc"),
    ("va:0.5", "expected 'va:V,A'"),
    ("vagrid:1", "grid size"),
    ("aus:AU99=1", "unknown action unit"),
    ("xyz:1", "unknown prefix"),
    (" ; ", "no targets"),
])
def test_spec_errors(spec, message):
    with pytest.raises(ValueError, match=None) as e:
        parse_targets(spec)
    assert message in str(e.value)


# -- journal ----------------------------------------------------------------------------------
def test_journal_drops_torn_last_line(tmp_path):
    p = tmp_path / "j.jsonl"
    with _jobs.Journal(p) as j:
        j.append({"seq": 0})
        j.append({"seq": 1})
    with open(p, "ab") as f:
        f.write(b'{"seq": 2, "tor')  # a write cut short
    assert [r["seq"] for _, r in _jobs.Journal.scan(p)] == [0, 1]
    with _jobs.Journal(p) as j:  # reopening cuts the torn line off
        j.append({"seq": 2})
    assert [r["seq"] for _, r in _jobs.Journal.scan(p)] == [0, 1, 2]
    assert p.read_bytes().count(b"\n") == 3


@pytest.mark.parametrize("fsync", [False, True])
def test_atomic_write_leaves_old_file_on_error(tmp_path, fsync):
    p = tmp_path / "a.txt"
    _jobs.atomic_write_bytes(p, b"old", fsync=fsync)
    with pytest.raises(RuntimeError):
        with _jobs.atomic_file(p, "wb", fsync=fsync) as f:
            f.write(b"new, half")
            raise RuntimeError("crash")
    assert p.read_bytes() == b"old" and sorted(os.listdir(tmp_path)) == ["a.txt"]
    with pytest.raises(TypeError):  # every caller says whether it wants the write on disk
        _jobs.atomic_write_bytes(p, b"new")


# -- end to end -------------------------------------------------------------------------------
def _tree(root: Path) -> dict:
    """relative path -> sha256 of every file (bookkeeping excluded)."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name not in BOOKKEEPING:
            out[p.relative_to(root).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _manifest(root: Path) -> list[dict]:
    with open(root / "manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="session")
def fer_npz(fer_neutral_npz):
    """A small .npz in FER2013's layout: the first 30 neutral training crops."""
    return fer_neutral_npz(N_CROPS)


@pytest.fixture(scope="session")
def reference(fer_npz, model, tmp_path_factory):
    """The uninterrupted run every other end-to-end test is compared with."""
    from affcore import augment

    out = tmp_path_factory.mktemp("ref") / "out"
    m = augment(fer_npz, TARGETS, out, workers=2, progress=False, model=model.path)
    return out, m


def _cli(*args, **kw):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", "affcore", "augment", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=300, **kw)


def test_npz_job(reference, fer_npz):
    out, m = reference
    c = m.counts
    assert c["inputs"] == N_CROPS and c["rows"] == 2 * N_CROPS
    assert c["inputs_ok"] + c["inputs_failed"] == c["inputs"] and c["faces_ok"] + c["faces_failed"] == c["rows"]
    assert c["faces_ok"] >= 2 * (N_CROPS - 2)  # the whole-crop fallback leaves few failures
    rows = list(m)
    assert len(rows) == len(m) and list(rows[0]) == list(MANIFEST_COLUMNS)
    assert [r["seq"] for r in rows] == sorted(r["seq"] for r in rows)
    assert {r["face"] for r in rows} <= {"detected", "whole_crop", ""}
    ok = [r for r in rows if r["status"] == "ok"]
    assert all((out / r["output"]).is_file() and (out / r["crop"]).is_file() for r in ok)
    assert all(r["rms_iod"] is not None and r["rms_iod"] < 0.2 for r in ok)
    with np.load(m.npz) as z, np.load(fer_npz) as src:
        assert z["images"].shape == (len(ok), 48, 48) and z["images"].dtype == np.uint8
        names = list(z["label_names"])
        assert names == list(src["label_names"])  # FER's own label names: labels are training-ready
        assert sorted(set(z["labels"].tolist())) == sorted({names.index("happy"), names.index("surprise")})
        assert list(z["target"][:2]) == ["happiness", "surprise_0.50"]
        first = ok[0]
        assert z["source_index"][0] == first["source_index"]
        # the crop differs from the neutral source, and mostly in the lower face
        diff = np.abs(z["images"][0].astype(int) - src["images"][first["source_index"]].astype(int))
        assert diff.mean() > 0.5
    assert not list(out.rglob(f"*{_jobs.TMP_MARK}*"))


def test_parquet_manifest_matches_the_csv(fer_npz, model, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    from affcore import augment

    m = augment(fer_npz, TARGETS, tmp_path / "out", workers=1, limit=3, parquet=True, progress=False,
                model=model.path)
    table = pq.read_table(m.parquet).to_pylist()
    rows = list(m)
    assert len(table) == len(rows) == 6 and list(table[0]) == list(MANIFEST_COLUMNS)
    assert [(r["target"], r["status"], r["output"]) for r in table] == \
        [(r["target"], r["status"], r["output"]) for r in rows]
    assert not list((tmp_path / "out").rglob(f"*{_jobs.TMP_MARK}*"))


def test_kill9_and_resume_is_byte_identical(reference, fer_npz, model, tmp_path):
    ref_out, _ = reference
    out = tmp_path / "out"
    args = [fer_npz, "--targets", TARGETS, "--out", out, "--workers", "2", "--model", model.path, "-q"]
    p = subprocess.Popen([sys.executable, "-m", "affcore", "augment", *map(str, args)], start_new_session=True,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and p.poll() is None:
            n = len(list((out / "images").rglob("*.png"))) if (out / "images").exists() else 0
            if n >= 16:  # partway: several inputs done, others in flight
                break
            time.sleep(0.05)
        assert p.poll() is None, "the job finished before it could be killed"
        os.killpg(p.pid, signal.SIGKILL)  # the job and its workers, mid-write
        p.wait()
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    assert not (out / "manifest.csv").exists()
    done = sum(1 for _ in _jobs.Journal.scan(out / "journal.jsonl"))
    assert 0 < done < N_CROPS

    r = _cli(fer_npz, "--targets", TARGETS, "--out", out, "--workers", "2", "--model", model.path, "--resume")
    assert r.returncode == 0, r.stderr
    assert f"{done} were done already" in r.stdout
    assert _tree(out) == _tree(ref_out)
    assert _manifest(out) == _manifest(ref_out)
    seqs = [rec["seq"] for _, rec in _jobs.Journal.scan(out / "journal.jsonl")]
    assert sorted(seqs) == list(range(N_CROPS))  # each input journaled exactly once

    # resuming a finished job changes nothing; a different request is refused
    r = _cli(fer_npz, "--targets", TARGETS, "--out", out, "--workers", "2", "--model", model.path, "--resume", "-q")
    assert r.returncode == 0 and _tree(out) == _tree(ref_out)
    r = _cli(fer_npz, "--targets", "anger", "--out", out, "--model", model.path, "--resume", "-q")
    assert r.returncode == 2 and "targets" in r.stderr


def test_one_worker_equals_two(reference, fer_npz, model, tmp_path):
    """workers=1 gives the same files as the 2-worker reference (first 8 inputs)."""
    from affcore import augment

    ref_out, ref = reference
    m = augment(fer_npz, TARGETS, tmp_path, workers=1, limit=8, progress=False, model=model.path)
    rows = list(m)
    assert rows == [r for r in ref if r["seq"] < 8]
    for r in rows:
        for k in ("output", "crop"):
            if r[k]:
                assert (tmp_path / r[k]).read_bytes() == (ref_out / r[k]).read_bytes()
    with pytest.raises(JobError, match="already holds a job"):
        augment(fer_npz, TARGETS, tmp_path, workers=1, limit=8, progress=False, model=model.path)


def test_fits_that_miss_their_landmarks_are_refused(reference, fer_npz, model, tmp_path):
    """max_fit_error: a face whose fit misses its landmarks by more than that (RMS, in
    inter-ocular distances) fails with the reason and renders nothing (landmarks found in
    the wrong place, as on profiles taken whole as their crop's face, put the mouth on the
    chin); the others come out as without it, byte for byte."""
    from affcore import augment

    ref_out, ref = reference
    first = [r for r in ref if r["seq"] < 8]
    errors = sorted({r["rms_iod"] for r in first if r["rms_iod"] is not None})
    assert len(errors) >= 4
    limit = 0.5 * (errors[len(errors) // 2 - 1] + errors[len(errors) // 2])  # between two of the fits
    m = augment(fer_npz, TARGETS, tmp_path / "out", workers=1, limit=8, progress=False, model=model.path,
                max_fit_error=limit)
    rows = list(m)
    assert len(rows) == len(first)
    refused = 0
    for r, q in zip(rows, first):
        if q["status"] == "ok" and q["rms_iod"] > limit:
            refused += 1
            assert r["status"] == "failed" and "more than max_fit_error" in r["error"], r
            assert r["output"] == r["crop"] == "" and r["rms_iod"] == q["rms_iod"]  # the fit is still reported
            assert not (tmp_path / "out" / q["output"]).exists() and not (tmp_path / "out" / q["crop"]).exists()
        else:
            assert r == q
            for k in ("output", "crop"):
                if r[k]:
                    assert (tmp_path / "out" / r[k]).read_bytes() == (ref_out / r[k]).read_bytes()
    assert 0 < refused < len(rows)
    assert m.counts["faces_ok"] == sum(q["status"] == "ok" for q in first) - refused
    # a job is resumed only with the same limit
    with pytest.raises(JobError, match="max_fit_error"):
        augment(fer_npz, TARGETS, tmp_path / "out", workers=1, limit=8, progress=False, model=model.path,
                resume=True)
    for bad in (0, -0.1, 1.5, float("nan"), "0.04", True):
        with pytest.raises(ValueError, match="max_fit_error"):
            augment(fer_npz, TARGETS, tmp_path / "bad", workers=0, limit=1, progress=False, model=model.path,
                    max_fit_error=bad)
    r = _cli(fer_npz, "--targets", TARGETS, "--out", tmp_path / "cli", "--max-fit-error", "2", "--model", model.path)
    assert r.returncode != 0 and "max_fit_error" in r.stderr, r.stderr


@pytest.fixture(scope="session")
def bad_folder(data, tmp_path_factory):
    from PIL import Image

    london = data / "faces" / "london"
    photos = sorted(london.glob("*_neutral.jpg"))[:2]
    if len(photos) < 2:
        pytest.skip("London photos missing")
    d = tmp_path_factory.mktemp("bad")
    pair = Image.new("RGB", (640, 320))
    for k, p in enumerate(photos):
        face = Image.open(p).resize((320, 320), Image.LANCZOS)
        face.save(d / p.name, quality=92)
        pair.paste(face, (320 * k, 0))
    pair.save(d / "pair.png")  # two people: which one is meant is ambiguous
    raw = photos[0].read_bytes()
    (d / "truncated.jpg").write_bytes(raw[: len(raw) // 3])
    (d / "notes.jpg").write_text("this is not an image\n")
    Image.fromarray(np.full((200, 200, 3), 128, np.uint8)).save(d / "grey.png")
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(d / "pixel.png")
    (d / "readme.txt").write_text("ignored: not an image extension")
    return d


def test_bad_inputs_are_recorded(bad_folder, model, tmp_path):
    from affcore.cli import main

    out = tmp_path / "out"
    args = ["augment", str(bad_folder), "--targets", "happiness", "--out", str(out), "--workers", "0",
            "--model", str(model.path), "-q"]
    assert main(args) == 0
    rows = {r["source"]: r for r in _manifest(out)}
    assert len(rows) == 7 and "readme.txt" not in rows
    ok = [s for s, r in rows.items() if r["status"] == "ok"]
    assert sorted(ok) == sorted(p.name for p in bad_folder.glob("*_neutral.jpg"))
    assert all(rows[s]["face"] == "detected" and (out / rows[s]["output"]).is_file() for s in ok)
    assert "no face detected" in rows["grey.png"]["error"]
    assert "2 faces of similar size" in rows["pair.png"]["error"]
    assert "needs at least 32x32" in rows["pixel.png"]["error"]
    assert "not a readable image" in rows["notes.jpg"]["error"]
    assert rows["truncated.jpg"]["status"] == "failed" and rows["truncated.jpg"]["error"]
    assert all(r["status"] == "failed" and not r["output"] for s, r in rows.items() if s not in ok)
    # --strict: the same job, completed, now exits non-zero because inputs failed
    assert main(args + ["--resume", "--strict"]) == 1


def test_manifest_input_with_landmarks(bad_folder, model, landmark_cache, tmp_path):
    """A JSON manifest with given landmarks (no detection) and a bad row."""
    from affcore import augment

    photo = sorted(bad_folder.glob("*_neutral.jpg"))[0]
    lm = landmark_cache(photo)
    items = [{"path": photo.name, "landmarks": lm.tolist(), "label": "neutral"}, {"label": "no path"}]
    (bad_folder / "list.json").write_text(json.dumps(items))
    m = augment(bad_folder / "list.json", "va:0.6,0.3", tmp_path, workers=0, progress=False, model=model.path)
    rows = list(m)
    assert [r["status"] for r in rows] == ["ok", "failed"]
    assert rows[0]["face"] == "landmarks" and rows[0]["label"] == "neutral" and rows[0]["valence"] == 0.6
    assert "no 'path'" in rows[1]["error"]


def test_smiling_inputs_are_counted_not_warned_per_input(data, model, landmark_cache, tmp_path, recwarn):
    """A smiling source (sundar_pichai's teeth smile) is counted in the summary, and the
    manifest's fitted_smile says which; no warning per input floods a batch job."""
    from affcore import augment
    from affcore.errors import NonNeutralPhotoWarning
    from affcore.fitting import SMILING_PHOTO

    wild = data / "faces" / "wild"
    items = [{"path": str(wild / n), "landmarks": landmark_cache(wild / n).tolist()}
             for n in ("sundar_pichai.jpg", "barack_obama.jpg")]
    (tmp_path / "list.json").write_text(json.dumps(items))
    m = augment(tmp_path / "list.json", "sadness", tmp_path / "out", workers=0, progress=False, model=model.path)
    smile = {Path(r["source"]).name: r["fitted_smile"] for r in m}
    assert smile["sundar_pichai.jpg"] > SMILING_PHOTO > smile["barack_obama.jpg"] >= 0
    assert m.counts["inputs_smiling"] == 1
    assert not [w for w in recwarn if issubclass(w.category, NonNeutralPhotoWarning)]


def test_ray_engine(reference, fer_npz, model, tmp_path):
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'affcore[ray]')")
    from affcore import augment

    ref_out, ref = reference
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        m = augment(fer_npz, TARGETS, tmp_path, engine="ray", workers=2, limit=6, progress=False, model=model.path)
    finally:
        ray.shutdown()
    rows = list(m)
    assert rows == [r for r in ref if r["seq"] < 6]
    for r in rows:
        if r["output"]:
            assert (tmp_path / r["output"]).read_bytes() == (ref_out / r["output"]).read_bytes()


def test_a_thousand_fer_crops_in_one_run(data, model, tmp_path):
    """The scale check: 1,000 FER2013 neutral training crops, one target, two workers, one
    run; every input accounted for in the manifest and the training .npz."""
    from affcore import augment

    src = data / "fer2013.npz"
    if not src.is_file():
        pytest.skip(f"{src} missing")
    m = augment(src, "happiness", tmp_path / "out", workers=2, npz_split="train", npz_label="neutral", limit=1000,
                progress=False, model=model.path)
    c = m.counts
    assert c["inputs"] == 1000 and c["rows"] == 1000
    assert c["inputs_ok"] + c["inputs_failed"] == c["inputs"] and c["faces_ok"] + c["faces_failed"] == c["rows"]
    assert c["faces_ok"] >= 900  # the whole-crop fallback leaves few failures
    assert len(m) == 1000 and sum(1 for r in m if r["status"] == "ok") == c["faces_ok"]
    with np.load(m.npz) as z:
        assert len(z["images"]) == c["faces_ok"]
