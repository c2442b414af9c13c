"""Tests of the expression recogniser (affcore.fer). Fast: tiny random nets, few samples.
Tests needing FER2013 / photos skip without AFFCORE_DATA_DIR; those needing torch or onnx
skip without the ``train`` extra."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from affcore.fer import CLASSES, FROM_AFFCORE, TO_AFFCORE, class_index
from affcore.fer.metrics import (accuracy, confusion_matrix, mean_class_accuracy, per_class_recall,
                                 plot_confusion, summarize)


# ---------------------------------------------------------------- names
def test_class_names_and_mapping():
    assert CLASSES == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    assert TO_AFFCORE["happy"] == "happiness" and TO_AFFCORE["sad"] == "sadness" and TO_AFFCORE["angry"] == "anger"
    assert class_index("happiness") == class_index("happy") == 3
    assert all(FROM_AFFCORE[TO_AFFCORE[c]] == c for c in CLASSES)
    with pytest.raises(ValueError, match="unknown expression"):
        class_index("contempt")


# ---------------------------------------------------------------- metrics
def test_metrics_hand_made():
    y = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 2])
    p = np.array([0, 0, 0, 1, 1, 0, 2, 2, 2, 2])
    cm = confusion_matrix(y, p, 3)
    np.testing.assert_array_equal(cm, [[3, 1, 0], [1, 1, 0], [0, 0, 4]])
    assert accuracy(y, p) == pytest.approx(0.8)
    np.testing.assert_allclose(per_class_recall(y, p, 3), [0.75, 0.5, 1.0])
    assert mean_class_accuracy(y, p, 3) == pytest.approx(0.75)


def test_metrics_absent_class_and_perfect():
    y = np.array([3, 3, 6, 6])
    r = per_class_recall(y, y)
    assert np.isnan(r[0]) and r[3] == 1 and r[6] == 1
    assert mean_class_accuracy(y, y) == 1.0 and accuracy(y, y) == 1.0
    # all predicted as one class: accuracy = its share, mean class accuracy = 1 / classes present
    p = np.full(4, 3)
    assert accuracy(y, p) == 0.5 and mean_class_accuracy(y, p) == 0.5
    s = summarize(y, p)
    assert s["per_class_recall"]["angry"] is None and s["per_class_recall"]["neutral"] == 0.0
    assert np.array(s["confusion"]).sum() == 4


def test_metrics_reject_bad_labels():
    with pytest.raises(ValueError, match="differ in length"):
        confusion_matrix([0, 1], [0])
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix([0, 7], [0, 1])
    with pytest.raises(ValueError, match="integer"):
        confusion_matrix(np.array([0.5]), np.array([0]))


def test_confusion_picture(tmp_path):
    y = np.arange(7).repeat(3)
    cm = confusion_matrix(y, (y + (np.arange(21) % 3 == 0)) % 7)
    out = plot_confusion(cm, tmp_path / "cm.png", title="test")
    assert open(out, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------- export
@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    """(torch model, onnx path) of a tiny randomly initialised ResNetFER, BN statistics randomised."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from affcore.fer.export import export_onnx
    from affcore.fer.nets import ResNetFER

    torch.manual_seed(0)
    m = ResNetFER(widths=(8, 16, 16), blocks=(1, 1, 1), stem=8)
    for mod in m.modules():  # non-trivial BN so that folding/rounding differences would show
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 2.0)
            mod.weight.data.uniform_(0.5, 1.5)
    m.eval()
    path = export_onnx(m, tmp_path_factory.mktemp("onnx") / "tiny.onnx", arch="tiny")
    return m, path


@pytest.mark.parametrize("arch", ["mini_xception", "resnet"])
def test_onnx_matches_torch_dynamic_batch(tiny_onnx, tmp_path, arch):
    from affcore.fer.export import TOLERANCE, check_onnx, export_onnx
    from affcore.fer.nets import MiniXception

    if arch == "resnet":
        m, path = tiny_onnx
    else:
        import torch
        torch.manual_seed(1)
        m = MiniXception().eval()
        path = export_onnx(m, tmp_path / "mx.onnx", arch="mini_xception")
    worst = check_onnx(m, path, batch_sizes=(1, 5))
    assert worst <= TOLERANCE


def test_recognizer_on_crops_matches_torch(tiny_onnx):
    import torch

    from affcore.fer.data import normalize
    from affcore.fer.infer import Recognizer

    m, path = tiny_onnx
    rec = Recognizer(path)
    assert rec.classes == CLASSES
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (5, 48, 48), dtype=np.uint8)
    probs = rec.predict_crops(crops)
    assert probs.shape == (5, 7)
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-6)
    with torch.inference_mode():
        x = normalize(torch.from_numpy(crops))
        ref = torch.softmax(0.5 * (m(x) + m(torch.flip(x, dims=[3]))), 1).numpy()
    np.testing.assert_allclose(probs, ref, atol=1e-5)
    # same faces as RGB at 96x96 and as floats in [0, 1]: same grey after resize (area) -> close
    big = np.repeat(np.repeat(crops, 2, 1), 2, 2)
    np.testing.assert_allclose(rec.predict_crops(np.stack([big] * 3, -1)), probs, atol=1e-4)
    np.testing.assert_allclose(rec.predict_crops(crops / 255.0), probs, atol=1e-5)
    assert rec.predict_crops(np.zeros((0, 48, 48), np.uint8)).shape == (0, 7)
    preds = rec.classify_crops(crops[:2])
    assert preds[0].label in CLASSES and preds[0].to_dict()["affcore_label"] == TO_AFFCORE[preds[0].label]


@pytest.mark.parametrize("bad, exc, msg", [
    ([[0] * 48] * 48, TypeError, "numpy array"),
    (np.zeros((48, 48), np.uint8), ValueError, r"crop\[None\]"),
    (np.zeros((2, 48, 48, 5), np.uint8), ValueError, "expected"),
    (np.zeros((2, 4, 4), np.uint8), ValueError, "too small"),
    (np.zeros((2, 48, 48), np.bool_), TypeError, "dtype"),
    (np.zeros((2, 48, 48), np.complex64), TypeError, "dtype"),
    (np.full((2, 48, 48), 2.0), ValueError, r"\[0, 1\]"),
    (np.full((2, 48, 48), np.nan), ValueError, "NaN"),
])
def test_bad_crops_are_refused(bad, exc, msg):
    from affcore.fer.infer import to_grey48

    with pytest.raises(exc, match=msg):
        to_grey48(bad)


def test_bad_landmarks_and_missing_model(tmp_path):
    from affcore.errors import ModelNotFoundError
    from affcore.fer.infer import Recognizer, align_face

    with pytest.raises(ValueError, match="68"):
        align_face(np.zeros((64, 64, 3), np.uint8), np.zeros((5, 2)))
    with pytest.raises(ValueError, match="degenerate"):
        align_face(np.zeros((64, 64, 3), np.uint8), np.zeros((68, 2)))
    pytest.importorskip("onnxruntime")
    with pytest.raises(ModelNotFoundError):
        Recognizer(tmp_path / "nope.onnx")


def test_alignment_puts_eyes_on_the_template():
    from affcore.fer.infer import TEMPLATE, alignment_matrix

    # synthetic landmarks: eyes and mouth of a face rotated by 20 degrees, scaled by 5, shifted
    lm = np.zeros((68, 2))
    lm[36:42], lm[42:48], lm[48:68] = TEMPLATE[0], TEMPLATE[1], TEMPLATE[2]
    a = np.radians(20)
    R = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]) * 5
    photo = lm @ R.T + [300, 200]
    M = alignment_matrix(photo)
    back = photo @ M[:, :2].T + M[:, 2]
    np.testing.assert_allclose(back[[36, 42, 48]], TEMPLATE, atol=1e-9)


# ---------------------------------------------------------------- training
def _tiny_training(data, **overrides):
    """A config that trains mini-Xception on 128 FER2013 images in batches of 64 (skips without
    torch or FER2013)."""
    pytest.importorskip("torch")
    from affcore.fer.train import TrainConfig

    if not (data / "fer2013.npz").is_file():
        pytest.skip("fer2013.npz not in the data folder")
    return TrainConfig(arch="mini_xception", epochs=1, batch_size=64, limit=128, data=str(data), bf16=False,
                       threads=2, **overrides)


def _random_pairs(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 48, 48), dtype=np.uint8), rng.integers(0, 7, n)


def test_training_runs_resumes_and_takes_extra_data(data, tmp_path):
    cfg = _tiny_training(data)
    from affcore.fer.train import load_checkpoint, train

    extra = _random_pairs(16)
    s1 = train(cfg, tmp_path, extra_train=extra, progress=False, log=lambda *a: None)
    assert s1["epochs_run"] == 1 and (tmp_path / "last.pt").is_file() and (tmp_path / "best.pt").is_file()
    cfg.epochs = 2
    s2 = train(cfg, tmp_path, resume=True, extra_train=extra, progress=False, log=lambda *a: None)
    assert s2["epochs_run"] == 2
    assert load_checkpoint(tmp_path / "best.pt").__class__.__name__ == "MiniXception"
    with pytest.raises(ValueError, match="labels must lie"):
        train(cfg, tmp_path / "x", extra_train=(extra[0], extra[1] + 7), progress=False, log=lambda *a: None)


def test_training_for_a_step_count_stops_mid_epoch(data, tmp_path):
    """``steps`` (equal-compute comparisons) overrides the epochs and may end inside an epoch."""
    cfg = _tiny_training(data, steps=3)  # 2 steps per epoch: 3 steps end inside epoch 2
    import json

    from affcore.fer.train import train

    s = train(cfg, tmp_path, progress=False, log=lambda *a: None)
    history = json.loads((tmp_path / "history.json").read_text())
    assert s["epochs_run"] == 2 and [h["steps"] for h in history] == [2, 3]

    # fine-tuning starts from the given weights (learning rate 0: they stay as they were)
    import torch

    start = torch.load(tmp_path / "last.pt", weights_only=False)["model"]
    tuned = dataclasses.replace(cfg, steps=1, lr=0.0, init=str(tmp_path / "last.pt"))
    train(tuned, tmp_path / "tuned", progress=False, log=lambda *a: None)
    after = torch.load(tmp_path / "tuned" / "last.pt", weights_only=False)["model"]
    convs = [k for k in start if k.endswith("weight") and start[k].ndim == 4]
    assert convs and all(torch.equal(start[k], after[k]) for k in convs)
    with pytest.raises(ValueError, match="arch 'resnet_s'"):
        train(dataclasses.replace(tuned, arch="resnet_s"), tmp_path / "bad", progress=False, log=lambda *a: None)


@settings(max_examples=60, deadline=None)
@given(n_real=st.integers(1, 300), n_extra=st.integers(1, 300), batch_size=st.integers(2, 64),
       share=st.floats(0.01, 0.99), seed=st.integers(0, 2**31 - 1))
def test_shared_batches_hold_the_share_and_see_images_evenly(n_real, n_extra, batch_size, share, seed):
    torch = pytest.importorskip("torch")
    from affcore.fer.train import TrainConfig, _extra_per_batch, shared_batches

    cfg = TrainConfig(batch_size=batch_size, extra_share=share)
    try:
        k = _extra_per_batch(cfg, n_real, n_extra)
    except ValueError as e:  # a batch with no real or no extra place, or too few real images
        assert round(share * batch_size) in (0, batch_size) or n_real < batch_size - round(share * batch_size), e
        return
    assert k == round(share * batch_size)
    steps = n_real // (batch_size - k)
    order = shared_batches(n_real, n_extra, batch_size, k, steps, torch.Generator().manual_seed(seed))
    batches = order.view(steps, batch_size)
    is_extra = batches >= n_real
    assert (is_extra.sum(1) == k).all()
    real = batches[~is_extra]
    assert len(real.unique()) == len(real) == steps * (batch_size - k)  # each real image at most once
    counts = torch.bincount(batches[is_extra] - n_real, minlength=n_extra)
    assert counts.max() - counts.min() <= 1  # the extra images are used evenly
    again = shared_batches(n_real, n_extra, batch_size, k, steps, torch.Generator().manual_seed(seed))
    assert torch.equal(order, again)


def test_training_with_an_extra_share(data, tmp_path):
    """With ``extra_share`` an epoch is one pass over the real images, each batch a fixed share extra."""
    cfg = _tiny_training(data, extra_share=0.25)  # 48 real + 16 extra a batch: 128 // 48 = 2 steps
    import json

    from affcore.fer.train import train

    extra = _random_pairs(40)
    logs = []
    train(cfg, tmp_path, extra_train=extra, progress=False, log=logs.append)
    assert [h["steps"] for h in json.loads((tmp_path / "history.json").read_text())] == [2]
    assert any("+extra 40, 16 of each batch of 64" in m for m in logs)
    for share, msg in ((1.0, "must lie in"), (0.001, "no extra image"), (0.25, "needs extra training data")):
        with pytest.raises(ValueError, match=msg):
            train(dataclasses.replace(cfg, extra_share=share), tmp_path / "x",
                  extra_train=None if msg.startswith("needs") else extra, progress=False, log=lambda *a: None)


# ---------------------------------------------------------------- the shipped model
@pytest.fixture(scope="module")
def default_recognizer():
    pytest.importorskip("onnxruntime")
    from affcore.fer.infer import DEFAULT_MODEL, Recognizer

    if not DEFAULT_MODEL.is_file():
        pytest.skip(f"default model not built: {DEFAULT_MODEL}")
    return Recognizer(threads=2)


def test_default_model_is_small(default_recognizer):
    assert default_recognizer.model_path.stat().st_size < 5e6


def test_default_model_accuracy_on_private_test(default_recognizer, data):
    from affcore.fer.data import load_fer2013

    x, y = load_fer2013(data / "fer2013.npz", "private_test")
    # the file is sorted by label, so "the first 500" would be nearly all 'angry': take every
    # 7th image instead (500 images, all classes in proportion)
    x, y = x[::7][:500], y[::7][:500]
    acc = accuracy(y, default_recognizer.predict_crops(x).argmax(1))
    # the project's bar for the shipped model is 68 % on the whole split (it reaches 70.7 %;
    # 70.8 % on this subset)
    assert acc >= 0.68, acc


def _london_predictions(rec, pairs, landmark_cache, which):
    out = []
    for _, neutral, smiling in pairs[:10]:
        path = smiling if which == "smiling" else neutral
        from affcore.images import read_image

        out.append(rec.recognize(read_image(path), landmarks=landmark_cache(path))[0].label)
    return out


def test_select_keeps_the_faces_read_as_their_label(default_recognizer, data, tmp_path):
    """``affcore fer select`` keeps the faces whose label the recogniser gives at least
    --min-prob, with every per-face array; the kept faces are the ones it reads right."""
    from affcore.cli import main
    from affcore.fer.data import load_fer2013
    from affcore.fer.infer import label_probability

    x, y = load_fer2013(str(data), "public_test")
    x, y = x[::10], y[::10]  # 359 crops of every class (the split is sorted by label)
    src = tmp_path / "faces.npz"
    np.savez(src, images=x, labels=y, source_index=np.arange(len(y)), note=np.array("kept whole"))
    out = tmp_path / "kept.npz"
    assert main(["fer", "select", str(src), "--min-prob", "0.4", "--out", str(out)]) == 0
    p = label_probability(x, y, default_recognizer)
    with np.load(out) as z:
        kept = z["source_index"]
        assert list(kept) == list(np.flatnonzero(p >= 0.4)) and 0 < len(kept) < len(y)
        assert np.array_equal(z["images"], x[kept]) and np.array_equal(z["labels"], y[kept])
        assert str(z["note"]) == "kept whole"
    read_right = default_recognizer.predict_crops(x).argmax(1) == y
    dropped = np.setdiff1d(np.arange(len(y)), kept)
    assert read_right[kept].mean() > 0.85 and read_right[dropped].mean() < 0.3
    with pytest.raises(ValueError, match="labels must lie in 0..6"):
        label_probability(x[:2], np.array([0, 7]), default_recognizer)
    assert main(["fer", "select", str(src), "--min-prob", "1.5", "--out", str(out)]) == 2


def test_london_smiles_are_happy(default_recognizer, london_pairs, landmark_cache):
    labels = _london_predictions(default_recognizer, london_pairs, landmark_cache, "smiling")
    assert sum(lab == "happy" for lab in labels) >= 6, labels  # most of 10


def test_london_neutral_faces_are_not_happy(default_recognizer, london_pairs, landmark_cache):
    labels = _london_predictions(default_recognizer, london_pairs, landmark_cache, "neutral")
    assert sum(lab != "happy" for lab in labels) >= 6, labels  # most of 10


def test_recognize_detects_the_face(default_recognizer, data):
    from affcore.images import read_image

    photo = read_image(data / "faces" / "london" / "005_smiling.jpg")
    faces = default_recognizer.recognize(photo, all_faces=False)
    assert len(faces) == 1 and faces[0].box is not None and faces[0].landmarks.shape == (68, 2)
    l, t, r, b = faces[0].box
    assert 300 < (l + r) / 2 < 1050 and r - l > 200
    assert abs(sum(faces[0].probabilities.values()) - 1) < 1e-6
    assert default_recognizer.recognize(np.full((200, 200, 3), 128, np.uint8)) == []
