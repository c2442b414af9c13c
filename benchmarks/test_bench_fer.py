"""Expression-recogniser inference speed with onnxruntime (2 intra-op threads).

* ``default``: the shipped FER2013 model (flip test-time augmentation inside the graph, so
  two forward passes per face) at batch 1 and 64;
* ``anchor_mini_xception``: the named anchor, a ~57k-parameter mini-Xception (Arriaga et al.
  2017; randomly initialised, plain single forward pass, the same exporter) at batch 64 --
  reference: about 10.8k images/s at batch 64 with 2 threads on the team's 2-core machine.

Images/s is in each benchmark's ``extra_info`` (``--benchmark-json``) and printed.
Run: ``pytest benchmarks/test_bench_fer.py --benchmark-only``.
"""
from __future__ import annotations

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")
THREADS = 2


def _session(path):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = THREADS
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def default_session():
    from affcore.fer.infer import DEFAULT_MODEL

    if not DEFAULT_MODEL.is_file():
        pytest.skip(f"default model not built: {DEFAULT_MODEL}")
    return _session(DEFAULT_MODEL)


@pytest.fixture(scope="module")
def anchor_session(tmp_path_factory):
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from affcore.fer.export import export_onnx
    from affcore.fer.nets import MiniXception, count_params

    torch.manual_seed(0)
    m = MiniXception().eval()
    assert 50_000 < count_params(m) < 65_000
    return _session(export_onnx(m, tmp_path_factory.mktemp("anchor") / "mini_xception.onnx",
                                arch="mini_xception", flip_tta=False))


def _run(benchmark, sess, batch):
    x = np.random.default_rng(0).uniform(0, 255, (batch, 1, 48, 48)).astype(np.float32)
    name = sess.get_inputs()[0].name
    sess.run(None, {name: x})  # warm-up
    benchmark.pedantic(sess.run, args=(None, {name: x}), rounds=30 if batch > 1 else 200, warmup_rounds=3)
    ips = batch / benchmark.stats.stats.median
    benchmark.extra_info["images_per_s"] = round(ips, 1)
    benchmark.extra_info["batch"] = batch
    print(f"\n{benchmark.name}: {ips:,.0f} images/s (median)")


@pytest.mark.parametrize("batch", [1, 64])
def test_default_model(benchmark, default_session, batch):
    _run(benchmark, default_session, batch)


@pytest.mark.parametrize("batch", [1, 64])
def test_anchor_mini_xception(benchmark, anchor_session, batch):
    _run(benchmark, anchor_session, batch)
