"""VA sequence rendering time: (frames, size) -> seconds."""
RESULTS: dict = {}
BUDGET_S = 3.0  # a 90-frame 512x512 sequence


def summary_lines() -> list[str]:
    return [f"{frames} frames at {size}x{size}: {t:.2f} s ({t / frames * 1e3:.1f} ms/frame; budget {BUDGET_S:.0f} s)"
            for (frames, size), t in sorted(RESULTS.items())]
