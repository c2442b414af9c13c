"""Benchmark fixtures and the summary tables printed at the end of a run. Each benchmark
module keeps its results in a helper module that also says how to print them."""
import _augment_bench
import _blend_bench
import _cuda_bench
import _fit_bench
import _render_bench
import _sequence_bench
import _synthesis_bench
from _blend_bench import results  # noqa: F401  (fixture)
from _render_bench import bench_mesh  # noqa: F401  (fixture)

SUMMARIES = [("landmark fitting: affcore vs eos", _fit_bench.summary_lines),
             ("rasterizer: affcore vs anchor (median ms)", _render_bench.summary_lines),
             ("Poisson blend: affcore vs cv2.seamlessClone (median ms)", _blend_bench.summary_lines),
             ("expression synthesis (threads=1)", _synthesis_bench.summary_lines),
             ("valence-arousal sequence", _sequence_bench.summary_lines),
             ("render+blend faces/s: GPU vs CPU", _cuda_bench.summary_lines),
             ("batch synthesis (affcore augment): faces/s", _augment_bench.summary_lines)]


def pytest_terminal_summary(terminalreporter):
    for title, lines in SUMMARIES:
        body = lines()
        if body:
            terminalreporter.section(title)
            for line in body:
                terminalreporter.write_line(line)
