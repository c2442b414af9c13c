"""Export a trained net to ONNX (dynamic batch) and check it against torch with onnxruntime.

The exported graph takes ``input``: (N, 1, 48, 48) float32 grey pixel values in [0, 255]
(the normalisation is inside), and returns ``logits`` (N, 7) in :data:`CLASSES` order --
by default the average of the face's and its mirror image's logits (flip test-time
augmentation). Metadata: ``classes`` (comma-separated), ``input_size``, ``arch``.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from .._jobs import atomic_path
from . import CLASSES
from .data import INPUT_SIZE, MEAN, STD

#: Largest difference between torch and onnxruntime logits accepted by :func:`check_onnx`.
TOLERANCE = 1e-4


def _wrapper(model, flip_tta: bool):
    import torch

    class Deployed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = model

        def forward(self, x):
            x = (x * (1.0 / (255.0 * STD))) - (MEAN / STD)
            y = self.net(x)
            if flip_tta:
                y = 0.5 * (y + self.net(torch.flip(x, dims=[3])))
            return y

    return Deployed().eval()


def export_onnx(model, path: str | os.PathLike, arch: str = "", flip_tta: bool = True, opset: int = 17) -> Path:
    """Write ``model`` (a torch net from :mod:`affcore.fer.nets`) as ONNX to ``path``."""
    import onnx
    import torch

    path = Path(path)
    model = model.float().to(memory_format=torch.contiguous_format).eval()
    wrapped = _wrapper(model, flip_tta)
    dummy = torch.full((2, 1, INPUT_SIZE, INPUT_SIZE), 128.0)
    with atomic_path(path, fsync=False) as tmp:
        with warnings.catch_warnings():
            # The TorchScript exporter is chosen on purpose: the torch.export-based one needs
            # onnxscript, one more dependency, for a plain feed-forward net it gains nothing
            # on. torch 2.9+ calls it deprecated, twice per export; the choice is ours, not
            # the user's.
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")
            warnings.filterwarnings("ignore", message="You are using the legacy TorchScript-based ONNX export")
            torch.onnx.export(wrapped, (dummy,), str(tmp), input_names=["input"], output_names=["logits"],
                              dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, opset_version=opset,
                              dynamo=False, do_constant_folding=True)
        m = onnx.load(str(tmp))
        for k, v in {"classes": ",".join(CLASSES), "input_size": str(INPUT_SIZE), "arch": arch,
                     "flip_tta": str(int(flip_tta)), "producer": "affcore.fer"}.items():
            e = m.metadata_props.add()
            e.key, e.value = k, v
        onnx.checker.check_model(m)
        onnx.save(m, str(tmp))
    return path


def check_onnx(model, path, batch_sizes=(1, 5), flip_tta: bool = True, seed: int = 0) -> float:
    """Run random pixel batches through torch and onnxruntime; return the largest absolute
    logit difference, raising ``AssertionError`` if it exceeds :data:`TOLERANCE`."""
    import onnxruntime as ort
    import torch

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    wrapped = _wrapper(model.float().eval(), flip_tta)
    rng = np.random.default_rng(seed)
    worst = 0.0
    for n in batch_sizes:
        x = rng.uniform(0, 255, (n, 1, INPUT_SIZE, INPUT_SIZE)).astype(np.float32)
        with torch.inference_mode():
            ref = wrapped(torch.from_numpy(x)).numpy()
        got = sess.run(["logits"], {"input": x})[0]
        if got.shape != ref.shape:
            raise AssertionError(f"onnxruntime output shape {got.shape} != torch {ref.shape} at batch {n}")
        worst = max(worst, float(np.abs(got - ref).max()))
    if worst > TOLERANCE:
        raise AssertionError(f"onnxruntime and torch logits differ by {worst:.3g} > {TOLERANCE}")
    return worst


def export_checkpoint(checkpoint, out, flip_tta: bool = True, check: bool = True) -> Path:
    """Export a training checkpoint (``best.pt``/``last.pt``) to ONNX, checking it if asked."""
    import torch

    from .train import load_checkpoint

    ck_arch = torch.load(checkpoint, map_location="cpu", weights_only=False).get("arch", "")
    model = load_checkpoint(checkpoint)
    path = export_onnx(model, out, arch=ck_arch, flip_tta=flip_tta)
    if check:
        check_onnx(model, path, flip_tta=flip_tta)
    return path
