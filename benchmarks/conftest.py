"""Benchmark fixtures and the summary table printed at the end of the run."""
from _render_bench import RESULTS, bench_mesh  # noqa: F401  (fixture)


def pytest_terminal_summary(terminalreporter):
    if not RESULTS:
        return
    tr = terminalreporter
    tr.section("rasterizer: ours vs anchor (median ms)")
    tr.write_line(f"{'size':>6} {'ours(all thr)':>14} {'ours(1 thr)':>12} {'anchor':>9} {'anchor/ours':>12} {'anchor/ours1':>13}")
    for size in sorted({k[0] for k in RESULTS}):
        ours, ours1, anc = (RESULTS.get((size, k)) for k in ("ours", "ours_1thread", "anchor"))
        fmt = lambda v: f"{v * 1e3:.2f}" if v else "-"
        ratio = lambda a, b: f"{a / b:.2f}x" if a and b else "-"
        tr.write_line(f"{size:>5}² {fmt(ours):>14} {fmt(ours1):>12} {fmt(anc):>9} {ratio(anc, ours):>12} {ratio(anc, ours1):>13}")
