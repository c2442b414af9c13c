"""affcore: photorealistic facial-affect synthesis from a single photo."""
from ._core import build_info

__all__ = ["build_info"]
__version__ = "0.1.0"
