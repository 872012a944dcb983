"""How much memory this process has used: what the engine service reports in its health answer."""

from __future__ import annotations

import sys

MB = 1024 * 1024


def peak_rss_mb() -> float:
    """Largest resident set of this process so far (``getrusage``; Unix only)."""
    import resource  # not on Windows

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kilobytes, macOS bytes.
    return round(peak / MB if sys.platform == "darwin" else peak / 1024, 1)
