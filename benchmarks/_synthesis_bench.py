"""Expression synthesis end to end (fit + 7 expressions at 1024x1024, one thread) and per
target, with the phase split of one target; results and their summary table."""
from __future__ import annotations

RESULTS: dict = {}
BUDGET_E2E_MS = 150.0   # fit + all 7 expressions, 1024x1024, threads=1
BUDGET_FRAME_MS = 33.0  # one 512x512 frame of a 90-frame sequence (3 s)


def summary_lines() -> list[str]:
    if not RESULTS:
        return []
    lines = []
    e2e = RESULTS.get("e2e_1024")
    if e2e is not None:
        verdict = "OK" if e2e <= BUDGET_E2E_MS else "OVER"
        lines.append(f"e2e 1024x1024, fit + 7 expressions, threads=1: {e2e:8.1f} ms  "
                     f"(budget {BUDGET_E2E_MS:.0f} ms: {verdict})")
    for size in (1024, 512):
        t = RESULTS.get(("target", size))
        if t is not None:
            extra = ""
            if size == 512:
                extra = f"  (sequence budget {BUDGET_FRAME_MS:.0f} ms/frame: {'OK' if t <= BUDGET_FRAME_MS else 'OVER'})"
            lines.append(f"one target {size}x{size}, threads=1:               {t:8.1f} ms{extra}")
    for size in (1024, 512):
        phases = RESULTS.get(("phases", size))
        if phases:
            lines.append(f"phases of one target at {size}x{size} (median ms): " +
                         ", ".join(f"{k} {v:.1f}" for k, v in phases.items()))
    return lines
