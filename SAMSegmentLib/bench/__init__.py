"""Speed and memory measurements of the engine (``samsegment bench``)."""

from .cases import BenchCase, image_case, synthetic_ct
from .report import BenchSettings, run_bench
from .targets import check_targets, format_table

__all__ = ["BenchCase", "BenchSettings", "check_targets", "format_table", "image_case", "run_bench", "synthetic_ct"]
