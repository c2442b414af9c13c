"""Collects timings from test_bench_blend.py and prints a size / ours / cv2 / speed-up table."""
import pytest

RESULTS = {}


@pytest.fixture(scope="session")
def results():
    return RESULTS


def pytest_terminal_summary(terminalreporter):
    if not RESULTS:
        return
    tr = terminalreporter
    tr.write_line("")
    tr.write_line("Poisson blend, median ms (ellipse mask 0.3W x 0.4H)")
    tr.write_line(f"{'size':>6} {'ours ms':>9} {'cv2 ms':>9} {'speed-up':>9}")
    for n in sorted({k[0] for k in RESULTS}):
        ours, ref = RESULTS.get((n, "ours")), RESULTS.get((n, "cv2"))
        su = f"{ref / ours:9.2f}" if ours and ref else f"{'-':>9}"
        tr.write_line(f"{n:>6} {ours or float('nan'):9.2f} {ref or float('nan'):9.2f} {su}")
