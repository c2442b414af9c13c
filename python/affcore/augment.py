"""High-throughput batch synthesis: many faces x many targets, in parallel, crash-safe.

:func:`augment` (and ``affcore augment``) takes a folder of images, a CSV/JSON(L)
manifest or an ``.npz`` of crops, fits every face once and renders every target of a
target SPEC on it, writing the images, an output ``.npz`` of crops for ``.npz`` input,
and a manifest with one row per (input, target). See ``docs/augment.md``.

Layout of the output folder ``OUT``::

    OUT/job.json            what the job is (input, targets, options): --resume checks it
    OUT/journal.jsonl       append-only, fsync'd record of every finished input
    OUT/images/<stem>__<target>.png
    OUT/crops/<stem>__<target>.png      (.npz input: the result back at the crop size)
    OUT/augmented.npz       (.npz input: the crops, labels = target expression)
    OUT/manifest.csv        (and manifest.parquet with parquet=True)

Every file is written atomically (temporary file, fsync, ``os.replace``), the journal
line of an input is written only after all of its files exist, and the manifest and the
``.npz`` are rebuilt from the journal at the end, in input order: so after a crash (even
``kill -9``) at any moment, ``resume=True`` finishes the job with the same bytes as an
uninterrupted run, whatever the number of workers.
"""
from __future__ import annotations

import array
import csv
import dataclasses
import hashlib
import json
import math
import os
import sys
import time
import warnings
import zipfile
from pathlib import Path
from typing import Iterator

import numpy as np

from . import _jobs, affect
from .errors import NonNeutralPhotoWarning
from .fitting import SMILING_PHOTO, fitted_smile

# ------------------------------------------------------------------------------------------
# Target SPEC

#: Other spellings of the expressions accepted in a SPEC (e.g. FER2013's label names).
EXPRESSION_ALIASES = {
    "happy": "happiness", "sad": "sadness", "angry": "anger", "surprised": "surprise",
    "afraid": "fear", "fearful": "fear", "disgusted": "disgust", "contemptuous": "contempt",
}

SPEC_HELP = """\
SPEC is one or more terms separated by ';' (and --targets may be repeated):
  all | NAME[,NAME...][@X[,X...]]   expressions (neutral happiness sadness surprise fear
                                    anger disgust contempt; 'all' = every one), at each
                                    intensity X in [0, 1] (default 1): 'happiness@0.5,1'
  va:V,A                            one valence-arousal point in the unit disc: 'va:0.5,0.2'
  vagrid:N                          an N x N grid over [-1, 1]^2 (2 <= N <= 21), points
                                    outside the unit disc dropped, coordinates rounded to 0.01
  aus:AU=X[+AU=X...]                action units: 'aus:AU12=0.8+AU6=0.5'
Numbers have a resolution of 0.01. Duplicate targets are dropped (first one kept)."""


@dataclasses.dataclass(frozen=True)
class Target:
    """One synthesis target. ``name`` is unique, file-name safe and used in output names."""

    name: str
    kind: str                         # "expression" | "va" | "aus"
    expression: str | None = None
    intensity: float | None = None
    valence: float | None = None
    arousal: float | None = None
    aus: tuple = ()                   # ((AU name, intensity), ...)

    def render_kwargs(self) -> dict:
        if self.kind == "expression":
            return {"expression": self.expression, "intensity": self.intensity}
        if self.kind == "va":
            return {"va": (self.valence, self.arousal)}
        return {"aus": dict(self.aus)}

    def describe(self) -> dict:
        return {"kind": self.kind, "expression": self.expression, "intensity": self.intensity,
                "valence": self.valence, "arousal": self.arousal,
                "aus": "+".join(f"{a}={x:.2f}" for a, x in self.aus)}


def _number(text: str, what: str, lo: float, hi: float) -> float:
    try:
        x = float(text)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: {text!r} is not a number") from None
    if not math.isfinite(x) or not lo <= x <= hi:
        raise ValueError(f"{what}: {text!r} must be a number in [{lo:g}, {hi:g}]")
    if abs(x * 100 - round(x * 100)) > 1e-6:
        raise ValueError(f"{what}: {text!r} has more than 2 decimals (targets have a resolution of 0.01)")
    return round(x, 2) + 0.0


def _expression_name(name: str, what: str) -> str:
    n = name.strip().lower()
    n = EXPRESSION_ALIASES.get(n, n)
    if n not in affect.EXPRESSIONS:
        raise ValueError(f"{what}: unknown expression {name.strip()!r}; valid: all, {', '.join(affect.EXPRESSIONS)}")
    return n


def _va_target(v: float, a: float, what: str) -> Target:
    if v * v + a * a > 1.0 + 1e-9:
        raise ValueError(f"{what}: ({v:g}, {a:g}) lies outside the unit disc (valence^2 + arousal^2 <= 1)")
    return Target(name=f"va_{v:+.2f}_{a:+.2f}", kind="va", valence=v, arousal=a)


def _parse_term(term: str, what: str) -> list[Target]:
    low = term.lower()
    if low.startswith("va:"):
        parts = [p.strip() for p in term[3:].split(",")]
        if len(parts) != 2 or not all(parts):
            raise ValueError(f"{what}: expected 'va:V,A', e.g. 'va:0.5,0.2'")
        v = _number(parts[0], f"{what}: valence", -1.0, 1.0)
        a = _number(parts[1], f"{what}: arousal", -1.0, 1.0)
        return [_va_target(v, a, what)]
    if low.startswith("vagrid:"):
        body = term[7:].strip()
        try:
            n = int(body)
        except ValueError:
            raise ValueError(f"{what}: expected 'vagrid:N' with an integer N, e.g. 'vagrid:5'") from None
        if not 2 <= n <= 21:
            raise ValueError(f"{what}: grid size N must be in [2, 21], got {n}")
        ticks = [round(x, 2) + 0.0 for x in np.linspace(-1.0, 1.0, n)]
        return [_va_target(v, a, what) for a in ticks for v in ticks if v * v + a * a <= 1.0 + 1e-9]
    if low.startswith("aus:"):
        body = term[4:].replace("+", ",")
        try:
            aus = affect.parse_aus(body)
        except ValueError as e:
            raise ValueError(f"{what}: {e}") from None
        if not aus:
            raise ValueError(f"{what}: expected 'aus:AU12=0.8+AU6=0.5'")
        for au, x in aus.items():
            _number(repr(x), f"{what}: {au}", 0.0, 1.0)
        items = tuple(sorted(((au, round(x, 2) + 0.0) for au, x in aus.items()), key=lambda t: affect._au_sort_key(t[0])))
        return [Target(name="aus_" + "_".join(f"{au}-{x:.2f}" for au, x in items), kind="aus", aus=items)]
    if ":" in term:
        raise ValueError(f"{what}: unknown prefix {term.split(':')[0]!r}; expected va:, vagrid:, aus: or expression names")
    names_part, _, inten_part = term.partition("@")
    if "@" in inten_part:
        raise ValueError(f"{what}: more than one '@'")
    names = [s for s in (x.strip() for x in names_part.split(",")) if s]
    if not names:
        raise ValueError(f"{what}: no expression names before '@'")
    exprs: list[str] = []
    for n in names:
        exprs.extend(affect.EXPRESSIONS if n.lower() == "all" else [_expression_name(n, what)])
    if inten_part.strip():
        inten = [_number(x.strip(), f"{what}: intensity", 0.0, 1.0) for x in inten_part.split(",")]
    elif "@" in term:
        raise ValueError(f"{what}: no intensities after '@'")
    else:
        inten = [1.0]
    out = []
    for e in exprs:
        for x in inten:
            if e == "neutral":
                x = 1.0  # neutral looks the same at every intensity
            name = e if x == 1.0 else f"{e}_{x:.2f}"
            out.append(Target(name=name, kind="expression", expression=e, intensity=x))
    return out


def parse_targets(spec) -> list[Target]:
    """Parse a target SPEC (a string, a list of them, or Target objects) into a list of
    unique :class:`Target`, in the order given. See :data:`SPEC_HELP`. Raises ValueError
    naming the offending term."""
    if isinstance(spec, (str, Target)):
        spec = [spec]
    out: dict[str, Target] = {}
    k = 0
    for s in spec:
        if isinstance(s, Target):
            out.setdefault(s.name, s)
            continue
        if not isinstance(s, str):
            raise ValueError(f"targets: expected SPEC strings, got {type(s).__name__}")
        for term in s.split(";"):
            if not term.strip():
                continue
            k += 1
            for t in _parse_term(term.strip(), f"target term {k} {term.strip()!r}"):
                out.setdefault(t.name, t)
    if not out:
        raise ValueError("no targets given; e.g. 'all', 'happiness@0.5,1', 'va:0.5,0.2', 'vagrid:5', "
                         "'aus:AU12=0.8+AU6=0.5'")
    return list(out.values())


# ------------------------------------------------------------------------------------------
# Inputs

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm"}


@dataclasses.dataclass
class Item:
    """One input face, small enough to send to a worker."""

    seq: int                          # position in the (deterministic) input order
    key: str                          # unique id of the input
    source: str                       # what the manifest shows as the source
    out_stem: str                     # relative output stem: images/<out_stem>__<target>.png
    path: str | None = None           # image file to read, or
    array: np.ndarray | None = None   # the image itself (npz crops)
    landmarks: np.ndarray | None = None
    box: tuple | None = None          # (left, top, right, bottom) pixels
    label: str = ""
    source_index: int | None = None
    split: str = ""
    error: str = ""                   # set when the input is already known to be bad


def _scan_folder(root: Path, skip: Path | None) -> Iterator[tuple[str, str, str]]:
    """(key, path, out_stem) of each image file under ``root``, in sorted order, streaming
    folder by folder."""
    for dirpath, dirs, files in os.walk(root):
        d = Path(dirpath)
        dirs[:] = sorted(x for x in dirs if not x.startswith(".") and (skip is None or (d / x).resolve() != skip))
        names = sorted(f for f in files if not f.startswith(".") and Path(f).suffix.lower() in IMAGE_EXTENSIONS)
        stems: dict[str, int] = {}
        for f in names:
            stems[Path(f).stem] = stems.get(Path(f).stem, 0) + 1
        rel_dir = d.relative_to(root).as_posix()
        for f in names:
            stem = Path(f).stem if stems[Path(f).stem] == 1 else f  # "a.jpg" and "a.png": keep the suffix
            rel = f if rel_dir == "." else f"{rel_dir}/{f}"
            out = stem if rel_dir == "." else f"{rel_dir}/{stem}"
            yield rel, str(d / f), out


def _parse_box(value, what: str):
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = value.replace(",", " ").split()
    try:
        b = tuple(float(x) for x in value)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: box must be 4 numbers 'left top right bottom'") from None
    if len(b) != 4 or not all(math.isfinite(x) for x in b) or b[2] <= b[0] or b[3] <= b[1]:
        raise ValueError(f"{what}: box must be 4 finite numbers 'left top right bottom' with right > left, bottom > top")
    return b


def _parse_landmarks(value, base: Path, what: str):
    from .landmarks import load_landmarks, validate_landmarks

    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        parts = value.replace(",", " ").split()
        if len(parts) == 136:
            try:
                return validate_landmarks(np.array([float(x) for x in parts]).reshape(68, 2), what)
            except ValueError:
                pass
        p = Path(value)
        return load_landmarks(p if p.is_absolute() else base / p)
    return validate_landmarks(np.asarray(value, dtype=np.float64), what)


def _manifest_rows(path: Path) -> Iterator[dict]:
    suf = path.suffix.lower()
    if suf == ".csv":
        with open(path, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                yield {k.strip().lower(): v for k, v in row.items() if k is not None}
    elif suf == ".jsonl":
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    yield json.loads(line)
    elif suf == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict):
            data = data.get("items", data.get("images"))
        if not isinstance(data, list):
            raise ValueError(f"{path}: expected a JSON list of objects or {{\"items\": [...]}}")
        yield from data
    else:
        raise ValueError(f"{path}: manifest must be .csv, .json or .jsonl")


def _manifest_items(path: Path) -> Iterator[Item]:
    base = path.parent
    for i, row in enumerate(_manifest_rows(path)):
        what = f"{path.name} row {i + 1}"
        item = Item(seq=i, key=f"row{i:06d}", source="", out_stem=f"{i:06d}", source_index=i)
        if not isinstance(row, dict):
            item.error = f"{what}: expected an object with a 'path'"
            yield item
            continue
        p = row.get("path") or row.get("image") or row.get("file") or ""
        p = str(p)
        item.source = p
        item.label = str(row.get("label", "") or "")
        if not p:
            item.error = f"{what}: no 'path' (or 'image', 'file') given"
            yield item
            continue
        full = Path(p) if Path(p).is_absolute() else base / p
        item.path = str(full)
        item.key = f"row{i:06d}:{p}"
        item.out_stem = f"{i:06d}_{Path(p).stem}"
        try:
            box = row.get("box")
            if box is None and all(row.get(k) not in (None, "") for k in ("left", "top", "right", "bottom")):
                box = [row[k] for k in ("left", "top", "right", "bottom")]
            item.box = _parse_box(box, what)
            item.landmarks = _parse_landmarks(row.get("landmarks"), base, what)
        except (ValueError, OSError) as e:
            item.error = str(e)
        yield item


class _NpzRows:
    """Reads rows of one array of an .npz (stored or deflated) front to back, one at a
    time: memory stays at one row whatever the file size."""

    def __init__(self, path: Path, key: str):
        self.zf = zipfile.ZipFile(path)
        name = key if key.endswith(".npy") else key + ".npy"
        if name not in self.zf.namelist():
            raise ValueError(f"{path}: no array {key!r} (has {', '.join(n[:-4] for n in self.zf.namelist())})")
        self.f = self.zf.open(name)
        fmt = np.lib.format
        version = fmt.read_magic(self.f)
        shape, fortran, dtype = (fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0)(self.f)
        if fortran or dtype.hasobject:
            raise ValueError(f"{path}: {key} must be a C-ordered numeric array")
        self.shape, self.dtype = shape, dtype
        self.row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
        self.pos = 0

    def read(self, index: int) -> np.ndarray:
        if index < self.pos:
            raise ValueError("rows must be read in increasing order")
        skip = (index - self.pos) * self.row_bytes
        while skip > 0:
            skip -= len(self.f.read(min(skip, 1 << 22)))
        buf = self.f.read(self.row_bytes)
        self.pos = index + 1
        return np.frombuffer(buf, dtype=self.dtype).reshape(self.shape[1:]).copy()

    def close(self):
        self.f.close()
        self.zf.close()


def _npz_meta(path: Path, split, label, limit, key: str):
    """Selected indices, label names and per-row labels/splits (small arrays)."""
    with np.load(path, allow_pickle=False) as z:
        files = set(z.files)
        if key not in files:
            raise ValueError(f"{path}: no array {key!r} (has {', '.join(sorted(files))})")
        labels = z["labels"] if "labels" in files else None
        names = [str(x) for x in z["label_names"]] if "label_names" in files else None
        splits = z["split"] if "split" in files else None
        n = len(labels) if labels is not None else None
    if n is None:
        rows = _NpzRows(path, key)
        n = rows.shape[0]
        rows.close()
    sel = np.ones(n, bool)
    if split:
        if splits is None:
            raise ValueError(f"{path}: --npz-split given but the file has no 'split' array")
        wanted = {s.strip() for s in str(split).split(",")}
        have = set(np.unique(splits).tolist())
        if wanted - have:
            raise ValueError(f"{path}: unknown split(s) {sorted(wanted - have)}; has {sorted(have)}")
        sel &= np.isin(splits, list(wanted))
    if label not in (None, ""):
        if labels is None:
            raise ValueError(f"{path}: --npz-label given but the file has no 'labels' array")
        ids = set()
        for lab in str(label).split(","):
            lab = lab.strip()
            if lab.lstrip("-").isdigit():
                ids.add(int(lab))
            elif names and lab in names:
                ids.add(names.index(lab))
            else:
                raise ValueError(f"{path}: unknown label {lab!r}; label_names: {names}")
        sel &= np.isin(labels, sorted(ids))
    idx = np.flatnonzero(sel)
    if limit is not None:
        idx = idx[: int(limit)]
    return idx, names, labels, splits


def _npz_items(path: Path, idx, names, labels, splits, key: str) -> Iterator[Item]:
    rows = _NpzRows(path, key)
    try:
        for seq, i in enumerate(idx):
            i = int(i)
            lab = ""
            if labels is not None:
                lab = names[int(labels[i])] if names and 0 <= int(labels[i]) < len(names) else str(int(labels[i]))
            yield Item(seq=seq, key=str(i), source=f"{path.name}[{i}]", out_stem=f"{i // 1000:03d}/{i:06d}",
                       array=rows.read(i), label=lab, source_index=i,
                       split=str(splits[i]) if splits is not None else "")
    finally:
        rows.close()


class _Input:
    """An input source: counts its items and streams them."""

    def __init__(self, path, npz_split=None, npz_label=None, limit=None, npz_key="images", skip=None):
        self.path = Path(path).expanduser().resolve()
        self.limit = None if limit is None else int(limit)
        if self.limit is not None and self.limit < 0:
            raise ValueError("limit must be >= 0")
        if self.path.is_dir():
            self.kind = "folder"
        elif not self.path.exists():
            raise FileNotFoundError(f"input not found: {self.path}")
        elif self.path.suffix.lower() == ".npz":
            self.kind = "npz"
        elif self.path.suffix.lower() in (".csv", ".json", ".jsonl"):
            self.kind = "manifest"
        else:
            raise ValueError(f"{self.path}: input must be a folder, a .csv/.json/.jsonl manifest or an .npz")
        if self.kind != "npz" and (npz_split or npz_label not in (None, "")):
            raise ValueError("--npz-split / --npz-label apply to .npz input only")
        self.skip = skip
        self.npz_key = npz_key
        self.options = {"npz_split": npz_split or None, "npz_label": None if npz_label in (None, "") else str(npz_label),
                        "limit": self.limit, "npz_key": npz_key if self.kind == "npz" else None}
        if self.kind == "npz":
            self._meta = _npz_meta(self.path, npz_split, npz_label, self.limit, npz_key)
        self.count, self.fingerprint = self._count()

    def _iter_light(self) -> Iterator[tuple[str, str]]:
        """(key, source) for every item, without reading images."""
        if self.kind == "npz":
            for i in self._meta[0]:
                yield str(int(i)), f"{self.path.name}[{int(i)}]"
        else:
            for it in self.items():
                yield it.key, it.source

    def _count(self):
        h = hashlib.sha256()
        n = 0
        for key, source in self._iter_light():
            h.update(f"{key}\t{source}\n".encode())
            n += 1
        return n, h.hexdigest()

    def items(self) -> Iterator[Item]:
        if self.kind == "folder":
            for seq, (key, path, stem) in enumerate(_scan_folder(self.path, self.skip)):
                if self.limit is not None and seq >= self.limit:
                    return
                yield Item(seq=seq, key=key, source=key, out_stem=stem, path=path)
        elif self.kind == "manifest":
            for it in _manifest_items(self.path):
                if self.limit is not None and it.seq >= self.limit:
                    return
                yield it
        else:
            idx, names, labels, splits = self._meta
            yield from _npz_items(self.path, idx, names, labels, splits, self.npz_key)

    @property
    def label_names(self):
        return self._meta[1] if self.kind == "npz" else None


# ------------------------------------------------------------------------------------------
# Worker side

_W: dict = {}
#: One BLAS/OpenMP thread per worker process: the processes are the parallelism, more
#: threads would only oversubscribe the cores (set while the workers start, if unset).
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _init_worker(config: dict) -> None:
    """Load the model (and dlib's detector) once per worker process."""
    from .landmarks import _dlib_models
    from .model import load_model

    import cv2

    cv2.setNumThreads(1)
    _W.clear()
    _W["config"] = config
    _W["model"] = load_model(config["model_path"])
    if config.get("shading_path"):
        from .shading import load_expression_shading

        _W["shading"] = load_expression_shading(config["shading_path"])
    _dlib_models()
    if config.get("identity"):
        from .landmarks import _dlib_identity_model

        _W["facerec"] = _dlib_identity_model()


def _descriptor(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    import dlib

    pts = dlib.points([dlib.point(int(round(x)), int(round(y))) for x, y in landmarks])
    lo, hi = landmarks.min(0), landmarks.max(0)
    rect = dlib.rectangle(int(lo[0]), int(lo[1]), int(hi[0]), int(hi[1]))
    return np.asarray(_W["facerec"].compute_face_descriptor(image, dlib.full_object_detection(rect, pts)))


def _identity_distance(source_desc, image, landmarks) -> float:
    from .landmarks import landmarks_in_box

    lo, hi = landmarks.min(0), landmarks.max(0)
    lm = landmarks_in_box(image, (lo[0], lo[1], hi[0], hi[1]))
    return float(np.linalg.norm(_descriptor(image, lm) - source_desc))


def _encode_png(image: np.ndarray) -> bytes:
    import cv2

    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise OSError("PNG encoding failed")
    return buf.tobytes()


def _error_text(e: BaseException) -> str:
    from .errors import NoFaceError

    if isinstance(e, NoFaceError):
        return "no face detected"
    msg = str(e).strip().replace("\n", " ") or type(e).__name__
    return msg if isinstance(e, (ValueError, OSError)) else f"{type(e).__name__}: {msg}"


def _fmt(x) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.6f}"


def _process_item(item: Item) -> dict:
    """Fit ``item`` once and render every target; write the files; return the journal
    record. Never raises for a bad input: failures are recorded."""
    import cv2

    from .images import as_rgb8, read_image
    from .landmarks import detect_faces, landmarks_in_box, single_face_box
    from .synthesis import Synthesizer

    cfg = _W["config"]
    out = Path(cfg["out"])
    targets: list[Target] = cfg["targets"]
    rec = {"seq": item.seq, "key": item.key, "source": item.source, "source_index": item.source_index,
           "label": item.label, "split": item.split, "status": "ok", "error": "", "face": "", "fit": {}}
    rows = []
    try:
        if item.error:
            raise ValueError(item.error)
        scale = 1.0
        if item.array is not None:
            crop = item.array
            if crop.ndim not in (2, 3) or min(crop.shape[:2]) < 1:
                raise ValueError(f"{item.source}: expected an (h, w) or (h, w, 3) crop, got shape {crop.shape}")
            if min(crop.shape[:2]) < cfg["fit_size"]:
                # small crops (FER2013: 48 x 48) are upscaled for detection and fitting
                scale = cfg["fit_size"] / min(crop.shape[:2])
                size = (round(crop.shape[1] * scale), round(crop.shape[0] * scale))
                crop = cv2.resize(crop, size, interpolation=cv2.INTER_CUBIC)
            image = as_rgb8(crop, item.source)
        else:
            image = read_image(item.path)
        h, w = image.shape[:2]
        if item.landmarks is not None:
            lm, face = np.asarray(item.landmarks, np.float64) * scale, "landmarks"
        elif item.box is not None:
            lm, face = landmarks_in_box(image, np.asarray(item.box) * scale), "box"
        else:
            boxes = detect_faces(image)
            if len(boxes) == 0 and item.array is not None:
                # a crop is a face: when the detector misses it, the whole crop is the box
                lm, face = landmarks_in_box(image, (0, 0, w - 1, h - 1)), "whole_crop"
            else:
                lm, face = landmarks_in_box(image, single_face_box(boxes)), "detected"
        rec["face"] = face
        with warnings.catch_warnings():  # a smiling source is counted in the summary, not warned of per input
            warnings.simplefilter("ignore", NonNeutralPhotoWarning)
            synth = Synthesizer(image, landmarks=lm, model=_W["model"], threads=1, shading=_W.get("shading"),
                                relight=cfg.get("relight"))
        f = synth.fit
        rec["fit"] = {"rms_px": f.rms_px, "rms_iod": f.rms_iod, "iod_px": f.iod_px, "yaw": f.yaw, "pitch": f.pitch,
                      "roll": f.roll, "fitted_smile": fitted_smile(f)}
        max_error = cfg.get("max_fit_error")
        if max_error is not None and f.rms_iod > max_error:
            raise ValueError(f"the fit misses the landmarks by {f.rms_iod:.4f} inter-ocular distances (RMS), more "
                             f"than max_fit_error {max_error:g}: the landmarks ({face}) are probably misplaced")
        src_desc = _descriptor(image, lm) if cfg.get("identity") else None
    except Exception as e:  # noqa: BLE001  (any bad input is recorded, the job goes on)
        rec["status"], rec["error"] = "failed", _error_text(e)
        rec["rows"] = [{"target": t.name, "output": "", "crop": "", "status": "failed", "error": rec["error"],
                        "identity_distance": None} for t in targets]
        return rec
    for t in targets:
        row = {"target": t.name, "output": "", "crop": "", "status": "ok", "error": "", "identity_distance": None}
        try:
            img = synth.render(**t.render_kwargs())
            rel = f"images/{item.out_stem}__{t.name}.png"
            _jobs.atomic_write_bytes(out / rel, _encode_png(img), fsync=cfg["fsync"])
            row["output"] = rel
            if item.array is not None:
                small = img
                if item.array.ndim == 2:
                    small = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
                small = cv2.resize(small, (item.array.shape[1], item.array.shape[0]), interpolation=cv2.INTER_AREA)
                crel = f"crops/{item.out_stem}__{t.name}.png"
                _jobs.atomic_write_bytes(out / crel, _encode_png(small), fsync=cfg["fsync"])
                row["crop"] = crel
            if src_desc is not None:
                try:
                    row["identity_distance"] = _identity_distance(src_desc, img, lm)
                except Exception:  # noqa: BLE001
                    row["identity_distance"] = None
        except Exception as e:  # noqa: BLE001
            row.update(status="failed", error=_error_text(e), output="", crop="")
            rec["status"] = "failed"
            rec["error"] = rec["error"] or f"{t.name}: {row['error']}"
        rows.append(row)
    rec["rows"] = rows
    return rec


def _crash_record(item: Item, targets, error: Exception) -> dict:
    msg = f"worker crashed: {error}"
    return {"seq": item.seq, "key": item.key, "source": item.source, "source_index": item.source_index,
            "label": item.label, "split": item.split, "status": "failed", "error": msg, "face": "", "fit": {},
            "rows": [{"target": t.name, "output": "", "crop": "", "status": "failed", "error": msg,
                      "identity_distance": None} for t in targets]}


# ------------------------------------------------------------------------------------------
# Manifest

MANIFEST_COLUMNS = ("seq", "input_id", "source", "source_index", "split", "label", "target", "target_kind",
                    "expression", "intensity", "valence", "arousal", "aus", "output", "crop", "status", "error",
                    "face", "rms_px", "rms_iod", "iod_px", "yaw", "pitch", "roll", "fitted_smile", "identity_distance")
_FLOAT_COLUMNS = {"intensity", "valence", "arousal", "rms_px", "rms_iod", "iod_px", "yaw", "pitch", "roll",
                  "fitted_smile", "identity_distance"}
_INT_COLUMNS = {"seq", "source_index"}


def _rows_of(rec: dict, targets: dict) -> Iterator[dict]:
    fit = rec.get("fit") or {}
    for r in rec["rows"]:
        t = targets[r["target"]].describe()
        yield {
            "seq": rec["seq"], "input_id": rec["key"], "source": rec["source"],
            "source_index": "" if rec.get("source_index") is None else rec["source_index"],
            "split": rec.get("split", ""), "label": rec.get("label", ""), "target": r["target"],
            "target_kind": t["kind"], "expression": t["expression"] or "",
            "intensity": _fmt(t["intensity"]), "valence": _fmt(t["valence"]), "arousal": _fmt(t["arousal"]),
            "aus": t["aus"], "output": r["output"], "crop": r["crop"], "status": r["status"], "error": r["error"],
            "face": rec.get("face", ""), **{k: _fmt(fit.get(k)) for k in ("rms_px", "rms_iod", "iod_px", "yaw",
                                                                         "pitch", "roll", "fitted_smile")},
            "identity_distance": _fmt(r.get("identity_distance")),
        }


class Manifest:
    """The result of :func:`augment`: the manifest on disk, read lazily (memory stays bounded
    however large the job).

    Iterating yields one dict per (input, target) in input order, keys
    :data:`MANIFEST_COLUMNS`, numbers as int/float (None where empty). ``len()`` is the
    number of rows; ``counts`` the summary; ``path`` the CSV, ``parquet`` and ``npz`` the
    optional outputs (or None); ``list(manifest)`` gives a plain list of dicts.
    """

    def __init__(self, path: Path, counts: dict, parquet: Path | None = None, npz: Path | None = None):
        self.path, self.counts, self.parquet, self.npz = Path(path), counts, parquet, npz

    def __len__(self) -> int:
        return self.counts["rows"]

    def __iter__(self) -> Iterator[dict]:
        with open(self.path, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                yield {k: _parse_cell(k, v) for k, v in row.items()}

    def failed(self) -> list[dict]:
        return [r for r in self if r["status"] != "ok"]

    def __repr__(self) -> str:
        return f"Manifest({str(self.path)!r}, counts={self.counts})"


def _parse_cell(k, v):
    if v == "" and (k in _FLOAT_COLUMNS or k in _INT_COLUMNS):
        return None
    if k in _FLOAT_COLUMNS:
        return float(v)
    if k in _INT_COLUMNS:
        return int(v)
    return v


def _ordered_records(journal_path: Path, offsets: array.array) -> Iterator[dict]:
    with open(journal_path, "rb") as f:
        for seq, off in enumerate(offsets):
            if off < 0:
                raise RuntimeError(f"internal error: input {seq} has no journal record")
            f.seek(off)
            yield json.loads(f.readline())


def _write_outputs(out: Path, journal_path: Path, offsets: array.array, targets: list[Target], parquet: bool,
                   npz_info: dict | None, fsync: bool) -> Manifest:
    tmap = {t.name: t for t in targets}
    counts = {"inputs": len(offsets), "inputs_ok": 0, "inputs_failed": 0, "rows": 0, "faces_ok": 0, "faces_failed": 0,
              "inputs_smiling": 0}
    npz_rows = []  # (crop path, target name, source_index, split) of ok rows: small
    with _jobs.atomic_file(out / "manifest.csv", "w", fsync=fsync, newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
        w.writeheader()
        for rec in _ordered_records(journal_path, offsets):
            counts["inputs_ok" if rec["status"] == "ok" else "inputs_failed"] += 1
            counts["inputs_smiling"] += (rec.get("fit") or {}).get("fitted_smile", 0.0) > SMILING_PHOTO
            for row in _rows_of(rec, tmap):
                w.writerow(row)
                counts["rows"] += 1
                counts["faces_ok" if row["status"] == "ok" else "faces_failed"] += 1
                if npz_info is not None and row["status"] == "ok" and row["crop"]:
                    npz_rows.append((row["crop"], row["target"], rec["source_index"], rec.get("split", "")))
    pq = _write_parquet(out, fsync) if parquet else None
    npz = _write_npz(out, npz_rows, tmap, npz_info, fsync) if npz_info is not None else None
    return Manifest(out / "manifest.csv", counts, pq, npz)


def _write_parquet(out: Path, fsync: bool) -> Path:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ValueError("parquet output needs pyarrow (pip install pyarrow)") from None
    types = {c: (pa.float64() if c in _FLOAT_COLUMNS else pa.int64() if c in _INT_COLUMNS else pa.string())
             for c in MANIFEST_COLUMNS}
    schema = pa.schema([(c, types[c]) for c in MANIFEST_COLUMNS])
    dest = out / "manifest.parquet"
    with _jobs.atomic_path(dest, fsync=fsync) as tmp, pq.ParquetWriter(tmp, schema) as writer, \
            open(out / "manifest.csv", newline="", encoding="utf-8") as f:
        batch: list[dict] = []
        for row in csv.DictReader(f):
            batch.append({k: _parse_cell(k, v) for k, v in row.items()})
            if len(batch) >= 65536:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                batch = []
        writer.write_table(pa.Table.from_pylist(batch, schema=schema))
    return dest


_LABEL_SYNONYMS = {"anger": ("angry",), "happiness": ("happy",), "sadness": ("sad",), "surprise": ("surprised",),
                   "fear": ("fearful", "afraid"), "disgust": ("disgusted",), "contempt": ("contemptuous",)}


def _zip_npy(zf: zipfile.ZipFile, name: str, compress: bool):
    info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))  # fixed date: reproducible bytes
    info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16
    return zf.open(info, "w", force_zip64=True)


def _write_npz(out: Path, rows, tmap, info: dict, fsync: bool) -> Path:
    """OUT/augmented.npz: images (N, h, w[, 3]) uint8 at the input crop size, labels (N,)
    int64 indexing label_names (-1: the target is not a basic expression), label_names,
    target, source_index, split, intensity, valence, arousal. Written streaming."""
    import cv2

    names = list(info.get("label_names") or affect.EXPRESSIONS)
    index = {n: i for i, n in enumerate(names)}

    def label_of(t: Target) -> int:
        if t.kind != "expression":
            return -1
        for cand in (t.expression,) + _LABEL_SYNONYMS.get(t.expression, ()):
            if cand in index:
                return index[cand]
        index[t.expression] = len(names)
        names.append(t.expression)
        return index[t.expression]

    labels = np.array([label_of(tmap[t]) for _, t, _, _ in rows], dtype=np.int64)
    shape = tuple(info["crop_shape"])
    dest = out / "augmented.npz"
    with _jobs.atomic_file(dest, "wb", fsync=fsync) as f, zipfile.ZipFile(f, "w") as zf:
        with _zip_npy(zf, "images", True) as fh:
            np.lib.format.write_array_header_2_0(fh, {"descr": "|u1", "fortran_order": False,
                                                      "shape": (len(rows),) + shape})
            for crop, _, _, _ in rows:
                img = cv2.imread(str(out / crop), cv2.IMREAD_UNCHANGED)
                if img is None:
                    raise OSError(f"cannot read {out / crop}")
                if img.ndim == 3:
                    img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
                if img.shape != shape:
                    raise OSError(f"{out / crop}: shape {img.shape}, expected {shape}")
                fh.write(np.ascontiguousarray(img).tobytes())
        small = {
            "labels": labels,
            "label_names": np.array(names, dtype=str),
            "target": np.array([t for _, t, _, _ in rows], dtype=str).reshape(-1),
            "source_index": np.array([s for _, _, s, _ in rows], dtype=np.int64),
            "split": np.array([sp for _, _, _, sp in rows], dtype=str).reshape(-1),
            "intensity": np.array([np.nan if tmap[t].intensity is None else tmap[t].intensity for _, t, _, _ in rows]),
            "valence": np.array([np.nan if tmap[t].valence is None else tmap[t].valence for _, t, _, _ in rows]),
            "arousal": np.array([np.nan if tmap[t].arousal is None else tmap[t].arousal for _, t, _, _ in rows]),
        }
        for k, v in small.items():
            with _zip_npy(zf, k, True) as fh:
                np.lib.format.write_array(fh, v, allow_pickle=False)
    return dest


# ------------------------------------------------------------------------------------------
# The job

JOB_VERSION = 1


class JobError(ValueError):
    """The output folder and the request disagree (an existing job, a changed input)."""


def augment(input, targets, out, *, workers: int | None = None, resume: bool = False, engine: str = "local",
            address: str | None = None, npz_split: str | None = None, npz_label=None, npz_key: str = "images",
            limit: int | None = None, fit_size: int = 192, identity: bool = False, parquet: bool = False,
            model=None, shading=None, relight: bool | None = None, max_fit_error: float | None = None,
            progress: bool = True, start_method: str = "spawn", fsync: bool = True, max_in_flight: int | None = None,
            log=None, on_result=None) -> Manifest:
    """Synthesize every target of ``targets`` on every face of ``input``; see ``docs/augment.md``.

    Parameters
    ----------
    input : a folder of images (searched recursively, sorted), a ``.csv``/``.json``/``.jsonl``
        manifest (column/key ``path``; optional ``label``, ``box`` 'l t r b' or
        left/top/right/bottom, ``landmarks`` as a file or 136 numbers), or an ``.npz`` of
        crops (``images`` (N, h, w[, 3]) uint8; optional ``labels``, ``label_names``, ``split``).
    targets : a target SPEC string (see :data:`SPEC_HELP`), a list of them, or Targets.
    out : output folder.
    workers : processes (default: all CPUs; 0 = in this process); with ``engine="ray"`` the
        number of Ray actors (default: the cluster's CPUs).
    resume : continue the job in ``out`` (refused if the input or options changed). Without
        it, an ``out`` that already holds a job is refused.
    engine : "local" (processes on this machine) or "ray"; ``address`` for ``ray.init``.
    npz_split, npz_label, npz_key : select rows of an .npz (split names, label names or ids,
        comma-separated) and the image array.
    limit : only the first ``limit`` inputs (after selection).
    fit_size : .npz crops smaller than this are upscaled to it (shorter side) for detection,
        fitting and rendering; results go back to the crop size in ``augmented.npz``.
    identity : also record the dlib face-descriptor distance between source and output.
    parquet : also write ``manifest.parquet`` (needs pyarrow).
    model : path of the face model (default: :func:`affcore.find_model`).
    shading : path of an expression shading file (``affcore shading build``) to synthesize
        with; None (default) renders with the photos' texture alone.
    relight : relight the lower face's moved skin under each photo's light: None (default)
        unless ``shading`` is given, False never (see :class:`affcore.Synthesizer`).
    max_fit_error : refuse a face whose fit misses its landmarks by more than this RMS, in
        inter-ocular distances (in (0, 1]; the manifest's ``rms_iod``): it fails with the
        reason, and nothing is rendered from it. Landmarks found in the wrong place (a
        profile or a face on its side taken whole as its crop's face) fit badly and gave
        faces with the mouth on the chin; see ``docs/augment.md`` for the rates on FER2013.
        None (default): every fit is used.
    progress : show a tqdm progress bar (faces/s and ETA) on stderr.
    start_method : "spawn" or "forkserver" for the worker processes.
    fsync : fsync every output file before its rename (off only for throw-away runs).
    max_in_flight : inputs submitted but not finished at once (default 2 x workers + 2).
    log : called with a line for each failed input; on_result : called with each journal
        record (a dict) as inputs finish, in completion order.

    Returns
    -------
    :class:`Manifest` (iterable of row dicts; ``.counts`` has inputs, inputs_ok,
    inputs_failed, rows, faces_ok, faces_failed, and ``processed`` / ``skipped`` / ``seconds``
    for this call).
    """
    from .model import find_model

    t_start = time.perf_counter()
    tlist = parse_targets(targets)
    if engine not in ("local", "ray"):
        raise ValueError(f"engine must be 'local' or 'ray', got {engine!r}")
    if not isinstance(fit_size, int) or not 48 <= fit_size <= 2048:
        raise ValueError(f"fit_size must be an integer in [48, 2048], got {fit_size!r}")
    if max_fit_error is not None:
        if isinstance(max_fit_error, bool) or not isinstance(max_fit_error, (int, float)) \
                or not 0 < max_fit_error <= 1:
            raise ValueError(f"max_fit_error must be a number in (0, 1] (inter-ocular distances) or None, "
                             f"got {max_fit_error!r}")
        max_fit_error = float(max_fit_error)
    if relight not in (None, True, False):
        raise ValueError(f"relight must be None, True or False, got {relight!r}")
    if relight and shading is not None:
        raise ValueError("relight=True with shading: the expression shading's ratios already hold the shading that "
                         "the change of geometry brings; give one of them (relight=None chooses)")
    out = Path(out).expanduser().resolve()
    src = _Input(input, npz_split, npz_label, limit, npz_key, skip=out)
    model_path = str(find_model(model))
    shading_path, shading_id = None, None
    if shading is not None:
        import hashlib

        from .shading import load_expression_shading

        shading_path = str(Path(shading).expanduser().resolve())
        load_expression_shading(shading_path)  # a bad file fails here, not in every worker
        shading_id = hashlib.sha256(Path(shading_path).read_bytes()).hexdigest()[:16]
    job = {"version": JOB_VERSION, "input": str(src.path), "input_kind": src.kind, "count": src.count,
           "fingerprint": src.fingerprint, "targets": [t.name for t in tlist], "fit_size": fit_size,
           "identity": bool(identity), **src.options}
    if shading_id is not None:  # (absent otherwise: jobs started before shading existed resume)
        job["shading"] = shading_id
    if max_fit_error is not None:  # (the same)
        job["max_fit_error"] = max_fit_error
    if relight is False:  # (the same)
        job["relight"] = False
    job_path, journal_path = out / "job.json", out / "journal.jsonl"
    if job_path.exists():
        if not resume:
            raise JobError(f"{out} already holds a job (job.json): pass resume=True (--resume) to continue it, "
                           "or choose another output folder")
        old = json.loads(job_path.read_text())
        diff = sorted(k for k in set(old) | set(job) if old.get(k) != job.get(k))
        if diff:
            raise JobError(f"{out}: cannot resume: the job differs from the one started there in {', '.join(diff)}")
    else:
        out.mkdir(parents=True, exist_ok=True)
        if journal_path.exists():
            raise JobError(f"{out} holds a journal but no job.json: choose another output folder")
        _jobs.atomic_write_bytes(job_path, (json.dumps(job, indent=2, sort_keys=True) + "\n").encode(), fsync=fsync)
    _jobs.remove_temp_files(out)

    # what is done already
    offsets = array.array("q", [-1]) * src.count
    journal = _jobs.Journal(journal_path).open()
    try:
        for off, rec in _jobs.Journal.scan(journal_path):
            seq = rec.get("seq")
            if not isinstance(seq, int) or not 0 <= seq < src.count:
                raise JobError(f"{journal_path}: record for input {seq!r} outside the input (changed input?)")
            offsets[seq] = off
        skipped = sum(1 for o in offsets if o >= 0)

        config = {"model_path": model_path, "targets": tlist, "out": str(out), "fit_size": fit_size,
                  "identity": bool(identity), "fsync": bool(fsync), "shading_path": shading_path,
                  "max_fit_error": max_fit_error, "relight": relight}
        todo = (it for it in src.items() if offsets[it.seq] < 0)
        processed = 0
        if skipped < src.count:
            if engine == "ray":
                eng = _jobs.RayEngine(_process_item, _init_worker, (config,), workers, address)
            elif workers == 0:
                eng = _jobs.InlineEngine(_process_item, _init_worker, (config,))
            else:
                n = (os.cpu_count() or 1) if workers is None else int(workers)
                if n < 0:
                    raise ValueError(f"workers must be >= 0, got {workers}")
                eng = _jobs.ProcessEngine(_process_item, _init_worker, (config,), n, start_method,
                                          env={k: "1" for k in _THREAD_VARIABLES})
            from tqdm import tqdm

            nt = len(tlist)
            bar = tqdm(total=src.count * nt, initial=skipped * nt, unit="face", disable=not progress,
                       smoothing=0.05, dynamic_ncols=True, desc="augment", file=sys.stderr)
            failed = 0
            try:
                limit_inflight = max_in_flight or 2 * eng.workers + 2
                for item, rec in _jobs.bounded_map(eng, todo, limit_inflight,
                                                   lambda it, e: _crash_record(it, tlist, e)):
                    if rec["key"] != item.key:
                        raise RuntimeError(f"internal error: record {rec['key']!r} for item {item.key!r}")
                    off = os.lseek(journal.fd, 0, os.SEEK_END)
                    journal.append(rec)
                    offsets[item.seq] = off
                    processed += 1
                    if on_result is not None:
                        on_result(rec)
                    if rec["status"] != "ok":
                        failed += 1
                        bar.set_postfix(failed=failed, refresh=False)
                        if log is not None:
                            log(f"{item.source}: {rec['error']}")
                    bar.update(nt)
            except BaseException:
                eng.close(cancel=True)
                raise
            finally:
                bar.close()
            eng.close()
    finally:
        journal.close()

    npz_info = None
    if src.kind == "npz":
        crop_shape = _NpzRows(src.path, npz_key)
        npz_info = {"label_names": src.label_names, "crop_shape": crop_shape.shape[1:]}
        crop_shape.close()
    manifest = _write_outputs(out, journal_path, offsets, tlist, parquet, npz_info, fsync)
    manifest.counts.update(processed=processed, skipped=skipped, seconds=round(time.perf_counter() - t_start, 3))
    return manifest


# ------------------------------------------------------------------------------------------
# Command line

def _cmd_augment(args) -> int:
    from tqdm import tqdm

    m = augment(args.input, args.targets, args.out, workers=args.workers, resume=args.resume, engine=args.engine,
                address=args.address, npz_split=args.npz_split, npz_label=args.npz_label, npz_key=args.npz_key,
                limit=args.limit, fit_size=args.fit_size, identity=args.identity, parquet=args.parquet,
                model=args.model, shading=args.shading, relight=False if args.no_relight else None,
                max_fit_error=args.max_fit_error, progress=not args.quiet,
                fsync=not args.no_fsync,
                log=None if args.quiet else (lambda s: tqdm.write(f"affcore augment: {s}", file=sys.stderr)))
    c = m.counts
    rate = c["processed"] * (c["rows"] / max(c["inputs"], 1)) / max(c["seconds"], 1e-9)
    if not args.quiet:
        print(f"{c['inputs']} inputs: {c['inputs_ok']} ok, {c['inputs_failed']} failed; {c['faces_ok']} faces "
              f"written, {c['faces_failed']} failed; {c['processed']} inputs processed now, {c['skipped']} were done "
              f"already; {c['seconds']:.1f} s ({rate:.1f} faces/s). Manifest: {m.path}"
              + (f"; crops: {m.npz}" if m.npz else ""))
        if c["inputs_smiling"]:
            print(f"affcore augment: warning: {c['inputs_smiling']} of the inputs smile (the manifest's fitted_smile "
                  f"above {SMILING_PHOTO:g}; neutral photos stay below): their targets keep the smile", file=sys.stderr)
    return 1 if args.strict and c["inputs_failed"] else 0


def add_augment_command(subparsers) -> None:
    """Register ``affcore augment`` on the CLI's subparsers."""
    import argparse

    a = subparsers.add_parser(
        "augment", help="synthesize many targets on many faces, in parallel and resumable",
        description="Fit every face of INPUT once and render every target of SPEC on it. Writes OUT/images, "
                    "OUT/manifest.csv (and OUT/augmented.npz for .npz input). Safe to kill: rerun with --resume.",
        epilog=SPEC_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    a.add_argument("input", metavar="INPUT", help="folder of images, .csv/.json/.jsonl manifest, or .npz of crops")
    a.add_argument("--targets", action="append", required=True, metavar="SPEC",
                   help="what to synthesize (repeatable), e.g. 'all', 'happiness@0.5,1;va:0.5,0.2', 'vagrid:5'")
    a.add_argument("--out", required=True, metavar="OUT", help="output folder")
    a.add_argument("--workers", type=int, default=None, metavar="N",
                   help="worker processes (default: all CPUs; 0 = in this process); Ray actors with --engine ray")
    a.add_argument("--resume", action="store_true", help="continue the (interrupted) job in OUT")
    a.add_argument("--strict", action="store_true", help="exit 1 when any input failed")
    a.add_argument("--engine", choices=("local", "ray"), default="local", help="local processes or a Ray cluster")
    a.add_argument("--address", help="Ray cluster address (default: start a local Ray, or RAY_ADDRESS)")
    a.add_argument("--npz-split", metavar="NAME[,NAME]", help=".npz input: rows of these splits only")
    a.add_argument("--npz-label", metavar="LABEL[,LABEL]", help=".npz input: rows with these labels (names or ids)")
    a.add_argument("--npz-key", default="images", help=".npz input: the image array (default images)")
    a.add_argument("--limit", type=int, metavar="N", help="the first N inputs only")
    a.add_argument("--fit-size", type=int, default=192, metavar="PX",
                   help="upscale smaller .npz crops to this size for fitting (default 192)")
    a.add_argument("--identity", action="store_true", help="record the dlib face-descriptor distance to the source")
    a.add_argument("--max-fit-error", type=float, metavar="IOD",
                   help="refuse faces whose fit misses the landmarks by more than this RMS, in inter-ocular "
                        "distances (e.g. 0.045; see docs/augment.md); default: use every fit")
    a.add_argument("--parquet", action="store_true", help="also write OUT/manifest.parquet (needs pyarrow)")
    a.add_argument("--no-fsync", action="store_true",
                   help="do not fsync output files (faster; still safe against a killed job, not a power cut)")
    a.add_argument("--model", help="path to ict_face_model.npz")
    a.add_argument("--shading", metavar="FILE.npz",
                   help="expression shading (skin folds and furrows) made by 'affcore shading build'")
    a.add_argument("--no-relight", action="store_true",
                   help="keep the photos' shading on the moved skin (default: without --shading the lower face is "
                        "relit under each photo's light as the target bends it)")
    a.add_argument("-q", "--quiet", action="store_true", help="no progress bar, per-input errors or summary")
    a.set_defaults(func=_cmd_augment)
