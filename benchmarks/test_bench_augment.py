"""Batch synthesis throughput (affcore.augment): synthesized faces per second, 1 target per
face, with 1 and 2 worker processes, landmarks given vs detected, on 256² face crops and
1024² photos (the 30 London neutral photos: 256² crops ten times each, 1024² photos twice). "steady" is first-to-last finished
input (no worker start-up); "end-to-end" is the whole job. Target: >= 50 faces/s on 2 cores
for 256² crops with landmarks given.

Also a 1,000-input job (FER2013 neutral crops, 1 target, 2 workers) whose manifest counts
must add up (tests/test_augment.py runs the same job in CI).

Run: AFFCORE_DATA_DIR=... pytest benchmarks/test_bench_augment.py --benchmark-only
"""
import numpy as np
import pytest

from _augment_bench import RESULTS, make_sets, run_job
from _fit_bench import data_dir


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    return make_sets(data_dir(), tmp_path_factory.mktemp("augment_sets"))


@pytest.mark.parametrize("size", ["256", "1024"])
@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("mode", ["landmarks", "detect"])
def test_augment_throughput(benchmark, sets, tmp_path, size, workers, mode):
    manifest = sets[size][0 if mode == "landmarks" else 1]
    benchmark.group = f"augment {size}, landmarks {mode}"
    runs = iter(range(100))
    m, r = benchmark.pedantic(lambda: run_job(manifest, tmp_path / f"run{next(runs)}", workers), rounds=1, iterations=1)
    assert m.counts["faces_ok"] == m.counts["rows"]
    RESULTS[(size, workers, mode)] = r


def test_augment_fer_1000(benchmark, tmp_path):
    path = data_dir() / "fer2013.npz"
    if not path.is_file():
        pytest.skip("fer2013.npz missing")
    m, r = benchmark.pedantic(lambda: run_job(path, tmp_path / "fer", 2, npz_split="train", npz_label="neutral",
                                              limit=1000), rounds=1, iterations=1)
    c = m.counts
    assert c["inputs"] == 1000 and c["rows"] == 1000
    assert c["inputs_ok"] + c["inputs_failed"] == c["inputs"] and c["faces_ok"] + c["faces_failed"] == c["rows"]
    with np.load(m.npz) as z:
        assert len(z["images"]) == c["faces_ok"]
    RESULTS[("fer48", 2, "detect")] = r
