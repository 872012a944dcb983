"""Does work on the inference worker freeze the GUI? A headless stand-in for Slicer's timer.

The main thread fires a timer every 50 ms, as the Segment Editor effect's qt.QTimer does,
polling the worker and applying each message. A late tick is a frozen GUI: the worker's
Python code holds the interpreter lock, or its compute threads leave the main thread no
core. Same interface as ``benchmarks/gui_stall.py`` (which measures the same on the
shared CT), here inside the package so that ``samsegment bench`` works when installed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..worker import InferenceWorker, Request, WorkerMessage

TIMER_PERIOD_S = 0.05


@dataclass
class StallReport:
    period_ms: float
    ticks: int
    longest_stall_ms: float  # largest gap between two ticks, minus the period
    gap_p50_ms: float
    gap_p95_ms: float
    total_s: float  # from submitting the request to the tick that polled its final message


def measure_main_thread_stall(
    worker: InferenceWorker,
    request: Request,
    apply: Callable[[WorkerMessage], None],
    period_s: float = TIMER_PERIOD_S,
) -> StallReport:
    """Submit ``request`` and run the timer loop on this thread until its final message."""
    started = time.perf_counter()
    request_id = worker.submit(request)
    ticks: list[float] = []
    next_tick = started
    finished = False
    while not finished:
        delay = next_tick - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        tick = time.perf_counter()
        ticks.append(tick)
        for message in worker.poll():
            apply(message)
            finished = finished or (message.request_id == request_id and message.kind.final)
        next_tick = tick + period_s
    gaps_ms = np.diff(ticks) * 1000.0 if len(ticks) > 1 else np.array([period_s * 1000.0])
    return StallReport(
        period_ms=period_s * 1000.0,
        ticks=len(ticks),
        longest_stall_ms=round(float(gaps_ms.max() - period_s * 1000.0), 1),
        gap_p50_ms=round(float(np.percentile(gaps_ms, 50)), 1),
        gap_p95_ms=round(float(np.percentile(gaps_ms, 95)), 1),
        total_s=round(ticks[-1] - started, 3),
    )
