"""Poisson blend results (size, implementation) -> median ms, and their table."""
import pytest

RESULTS: dict = {}


@pytest.fixture(scope="session")
def results():
    return RESULTS


def summary_lines() -> list[str]:
    if not RESULTS:
        return []
    lines = ["ellipse mask 0.3W x 0.4H; anchor: cv2.seamlessClone(NORMAL_CLONE)",
             f"{'size':>6} {'ours ms':>9} {'cv2 ms':>9} {'speed-up':>9}"]
    for n in sorted({k[0] for k in RESULTS}):
        ours, ref = RESULTS.get((n, "ours")), RESULTS.get((n, "cv2"))
        su = f"{ref / ours:9.2f}" if ours and ref else f"{'-':>9}"
        lines.append(f"{n:>6} {ours or float('nan'):9.2f} {ref or float('nan'):9.2f} {su}")
    return lines
