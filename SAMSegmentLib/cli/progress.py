"""A progress bar on stderr for work that takes more than a moment."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from tqdm import tqdm


class _Bar(tqdm):
    def update_to(self, done: int, total: int = 0, stage: str = "") -> None:
        """A :class:`SAMSegmentLib.cancel.Progress`: the bar at ``done`` of ``total`` (0: unknown)."""
        if total:
            self.total = total
        if stage:
            self.set_description(stage, refresh=False)
        self.update(done - self.n)


@contextmanager
def progress_bar(description: str, total: int | None, unit: str = "it") -> Iterator[_Bar]:
    # unit_scale makes byte counts readable; slices stay plain integers.
    with _Bar(desc=description, total=total, unit=unit, unit_scale=unit == "B", leave=True, mininterval=0.5) as bar:
        yield bar
