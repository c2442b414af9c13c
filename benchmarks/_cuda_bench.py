"""CUDA vs CPU face pipeline results ((size, device) -> median seconds per batch), and their
table (faces per second)."""

RESULTS: dict = {}
BATCH = 64


def summary_lines() -> list[str]:
    if not RESULTS:
        return []
    lines = [f"{BATCH} faces per batch: rasterize_batch + interpolate_batch + sample_bilinear_batch + "
             "poisson_blend_batch (ICT mesh, 76k triangles)",
             f"{'size':>6} {'cpu faces/s':>12} {'cuda faces/s':>13} {'cuda/cpu':>9}"]
    for size in sorted({k[0] for k in RESULTS}):
        cpu, gpu = RESULTS.get((size, "cpu")), RESULTS.get((size, "cuda"))
        fps = lambda t: f"{BATCH / t:.1f}" if t else "-"  # noqa: E731
        ratio = f"{cpu / gpu:.1f}x" if cpu and gpu else "-"
        lines.append(f"{size:>5}² {fps(cpu):>12} {fps(gpu):>13} {ratio:>9}")
    if not any(k[1] == "cuda" for k in RESULTS):
        lines.append("(no CUDA device here: GPU side skipped; the CPU side is the named anchor)")
    return lines
