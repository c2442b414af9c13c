"""Run-time choice between the CPU and the CUDA implementations.

``device="auto"`` (the default everywhere) uses CUDA when this build has the CUDA kernels
compiled in *and* a CUDA device is present (``cudaGetDeviceCount`` succeeds with at least
one device), else the CPU. ``device="cpu"`` always uses the CPU. ``device="cuda"`` insists
on the GPU and raises :class:`RuntimeError` saying why when it cannot be used ("affcore was
built without CUDA ..." or "no CUDA device: <reason from the CUDA runtime>").
"""
from __future__ import annotations

from . import _core

DEVICES = ("auto", "cpu", "cuda")


def cuda_available() -> bool:
    """True when the CUDA kernels are compiled in and a CUDA device can be used."""
    return _core.cuda_unavailable_reason() is None


def resolve_device(device: str) -> str:
    """Map ``"auto" | "cpu" | "cuda"`` to the implementation to run: ``"cpu"`` or ``"cuda"``.

    Raises ValueError for any other value and RuntimeError for ``"cuda"`` when CUDA cannot
    be used here.
    """
    if not isinstance(device, str) or device not in DEVICES:
        raise ValueError(f"device: expected one of {DEVICES}, got {device!r}")
    if device == "cpu":
        return "cpu"
    reason = _core.cuda_unavailable_reason()
    if device == "cuda":
        if reason is not None:
            raise RuntimeError(f"device='cuda' requested but {reason}")
        return "cuda"
    return "cpu" if reason is not None else "cuda"
