"""Which of the requests sent to the inference worker the effect still wants.

The worker already marks a superseded preview STALE; this also drops answers the effect
stopped wanting for its own reasons (prompts cleared, another volume, the effect closed),
so a late answer never lands on the wrong image or segment.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Tracked:
    purpose: Any  # what the answer is for, e.g. the session's Purpose.PREVIEW
    context: Any  # what the effect needs to use the answer (prompt revision, segment, grid ...)


class RequestTracker:
    """At most one wanted request per purpose; a newer one of the same purpose replaces it."""

    def __init__(self) -> None:
        self._wanted: dict[int, Tracked] = {}

    def track(self, requestId: int, purpose: Any, context: Any = None) -> None:
        self.forget(purpose)
        self._wanted[requestId] = Tracked(purpose, context)

    def forget(self, purpose: Any) -> int | None:
        """Stop wanting the request of ``purpose``; its id (to cancel it), or None if there was none."""
        for requestId, tracked in list(self._wanted.items()):
            if tracked.purpose == purpose:
                del self._wanted[requestId]
                return requestId
        return None

    def forgetAll(self, keep: Any = None) -> list[int]:
        """Stop wanting every request but those of purpose ``keep``; the ids forgotten."""
        ids = [requestId for requestId, tracked in self._wanted.items() if tracked.purpose != keep]
        for requestId in ids:
            del self._wanted[requestId]
        return ids

    def pending(self, purpose: Any) -> int | None:
        return next((requestId for requestId, t in self._wanted.items() if t.purpose == purpose), None)

    def wanted(self, messages: Iterable[Any]) -> Iterator[tuple[Tracked, Any]]:
        """The messages (anything with ``request_id`` and ``kind.final``) of wanted requests, with
        what they were tracked for; a request is no longer wanted after its final message."""
        for message in messages:
            tracked = self._wanted.get(message.request_id)
            if tracked is None:
                continue
            if message.kind.final:
                del self._wanted[message.request_id]
            yield tracked, message
