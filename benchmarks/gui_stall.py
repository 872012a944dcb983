"""Does inference on the worker thread keep the GUI responsive? A headless stand-in for Slicer.

The main thread runs what the Segment Editor effect runs: a timer every 50 ms that polls
the worker and applies each finished slice (a copy into a 3D array), while the worker
propagates the spleen of the shared CT through 30 slices with the real LiteMedSAM.
A tick that comes late means the GUI froze for that long: the worker's Python code holds
the interpreter lock, or its compute threads leave the main thread no core.

Prints JSON: the longest stall (largest gap between ticks minus the period), the p50 and
p95 of the gaps, the total time, and the click-to-preview latency (Predict on an already
embedded slice, from submit to the timer tick that polls its answer) over 20 clicks, and
the same polled every millisecond (the worker's own answer time).

    python benchmarks/gui_stall.py [--switch-interval-ms 1] [--torch-threads 1]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from SAMSegmentLib.datasets import load_labelled_case, shared_ct_dir
from SAMSegmentLib.prompts import Prompts
from SAMSegmentLib.propagation import ObjectPrompts, PropagationRequest, SliceResult, StopRule
from SAMSegmentLib.volume import Axis, Volume, put_slice
from SAMSegmentLib.worker import (
    InferenceWorker,
    LoadModel,
    MessageKind,
    Predict,
    Propagate,
    Request,
    SetVolume,
    WorkerMessage,
    WorkerSettings,
)

TIMER_PERIOD_S = 0.05
# Measure the GUI over every slice of the range, not just where the spleen is.
THROUGH_EVERY_SLICE = StopRule(min_score=0.0, min_area_fraction=0.0, min_overlap=0.0, max_intensity_shift=np.inf)


@dataclass
class StallReport:
    period_ms: float
    ticks: int
    longest_stall_ms: float
    gap_p50_ms: float
    gap_p95_ms: float
    total_s: float


def run_timer_loop(
    worker: InferenceWorker,
    done: Callable[[WorkerMessage], bool],
    apply: Callable[[WorkerMessage], None],
    period_s: float = TIMER_PERIOD_S,
    until: float = float("inf"),
) -> list[float]:
    """Fire a repeating timer on this thread, as a qt.QTimer does on Slicer's, polling the worker and
    applying each message, until ``done`` says a message was the last one wanted (or the clock
    passes ``until``). Returns the tick times."""
    ticks: list[float] = []
    next_tick = time.perf_counter()
    while next_tick < until:
        delay = next_tick - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        tick = time.perf_counter()
        ticks.append(tick)
        finished = False
        for message in worker.poll():
            apply(message)
            finished = finished or done(message)
        if finished:
            break
        next_tick = tick + period_s
    return ticks


def stall_report(ticks: Sequence[float], started: float, period_s: float) -> StallReport:
    gaps_ms = np.diff(ticks) * 1000.0 if len(ticks) > 1 else np.array([period_s * 1000.0])
    return StallReport(
        period_ms=period_s * 1000.0,
        ticks=len(ticks),
        longest_stall_ms=round(float(gaps_ms.max() - period_s * 1000.0), 1),
        gap_p50_ms=round(float(np.percentile(gaps_ms, 50)), 1),
        gap_p95_ms=round(float(np.percentile(gaps_ms, 95)), 1),
        total_s=round(ticks[-1] - started, 2),
    )


def measure_main_thread_stall(
    worker: InferenceWorker,
    request: Request,
    apply: Callable[[WorkerMessage], None],
    period_s: float = TIMER_PERIOD_S,
) -> StallReport:
    """Submit ``request`` and time the timer loop until its final message."""
    started = time.perf_counter()
    request_id = worker.submit(request)
    ticks = run_timer_loop(worker, lambda m: m.request_id == request_id and m.kind.final, apply, period_s)
    return stall_report(ticks, started, period_s)


def measure_idle_timer(worker: InferenceWorker, seconds: float, period_s: float = TIMER_PERIOD_S) -> StallReport:
    """The same timer with the worker idle: how late ticks come on this machine anyway."""
    started = time.perf_counter()
    ticks = run_timer_loop(worker, lambda m: False, lambda m: None, period_s, until=started + seconds)
    return stall_report(ticks, started, period_s)


def measure_click_latency(
    worker: InferenceWorker, clicks: Sequence[Predict], period_s: float = TIMER_PERIOD_S
) -> list[float]:
    """Seconds from submitting each click to the timer tick that polls its preview, one click at a time."""
    latencies = []
    for click in clicks:
        submitted = time.perf_counter()
        request_id = worker.submit(click)
        messages: list[WorkerMessage] = []
        ticks = run_timer_loop(worker, lambda m: m.request_id == request_id and m.kind.final, messages.append, period_s)
        if messages[-1].kind is not MessageKind.RESULT:
            raise RuntimeError(f"Click {request_id} failed: {messages[-1].text}")
        latencies.append(ticks[-1] - submitted)
    return latencies


def _check(message: WorkerMessage) -> WorkerMessage:
    if message.kind is not MessageKind.RESULT:
        raise RuntimeError(f"{message.kind.value}: {message.text}")
    return message


def _jittered_clicks(seed: int, box: tuple[float, float, float, float], count: int) -> list[Predict]:
    """Boxes a user would draw around the same organ, a few pixels apart."""
    rng = np.random.default_rng(0)
    clicks = []
    for _ in range(count):
        x0, y0, x1, y1 = np.asarray(box) + rng.integers(-3, 4, size=4)
        clicks.append(Predict(Axis.AXIAL, seed, Prompts(box=(float(x0), float(y0), float(x1), float(y1)))))
    return clicks


def _milliseconds(values: Sequence[float], percentile: float) -> float:
    return round(float(np.percentile(values, percentile)) * 1000.0, 1)


def run_benchmark(
    volume: Volume,
    spleen: np.ndarray,
    model: str = "litemedsam",
    device: str = "cpu",
    slices: int = 30,
    clicks: int = 20,
    idle_seconds: float = 5.0,
) -> dict[str, object]:
    """Propagate from the slice where ``spleen`` (the reference mask) is largest, timing the GUI timer."""
    seed = int(np.argmax(spleen.sum(axis=(1, 2))))
    ys, xs = np.nonzero(spleen[seed])
    box = (float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max()))
    count = volume.slice_count(Axis.AXIAL)
    first = max(0, min(seed - slices // 2, count - slices))
    last = min(count - 1, first + slices - 1)
    objects = [ObjectPrompts("spleen", Prompts(box=box))]
    request = PropagationRequest(Axis.AXIAL, seed, objects, slice_range=(first, last))
    labelmap = np.zeros(volume.array.shape, dtype=np.uint8)
    applied: list[int] = []

    def apply(message: WorkerMessage) -> None:
        if message.kind is MessageKind.SLICE:
            result: SliceResult = message.value  # type: ignore[assignment]
            put_slice(labelmap, Axis.AXIAL, result.index, result.mask.astype(np.uint8))
            applied.append(result.index)

    with InferenceWorker(WorkerSettings(prefetch_slices=0)) as worker:
        _check(worker.wait(worker.submit(LoadModel(model, device)))[-1])
        _check(worker.wait(worker.submit(SetVolume(volume, volume_key="benchmark")))[-1])
        idle = measure_idle_timer(worker, idle_seconds)
        stall = measure_main_thread_stall(worker, Propagate(request, THROUGH_EVERY_SLICE), apply)
        latencies = measure_click_latency(worker, _jittered_clicks(seed, box, clicks))
        # Polled every millisecond: the worker's own answer time, without the timer's rounding.
        service = measure_click_latency(worker, _jittered_clicks(seed, box, clicks), period_s=0.001)
    return {
        "model": model,
        "device": device,
        "slices_propagated": len(applied),
        "slice_range": [first, last],
        "switch_interval_ms": sys.getswitchinterval() * 1000.0,
        "torch_threads": torch.get_num_threads(),
        "idle_worker": asdict(idle),
        "propagation": asdict(stall),
        "click_latency_p50_ms": _milliseconds(latencies, 50),
        "click_latency_p95_ms": _milliseconds(latencies, 95),
        "click_answer_p50_ms": _milliseconds(service, 50),
        "click_answer_p95_ms": _milliseconds(service, 95),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=shared_ct_dir())
    parser.add_argument("--model", default="litemedsam")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--slices", type=int, default=30)
    parser.add_argument("--clicks", type=int, default=20)
    parser.add_argument("--switch-interval-ms", type=float, help="sys.setswitchinterval for this run")
    parser.add_argument("--torch-threads", type=int, help="torch.set_num_threads for this run")
    args = parser.parse_args(argv)
    if args.switch_interval_ms is not None:
        sys.setswitchinterval(args.switch_interval_ms / 1000.0)
    if args.torch_threads is not None:
        torch.set_num_threads(args.torch_threads)
    data = args.data_dir
    case = load_labelled_case(data / "ct.nii.gz", data / "labels.nii.gz", data / "labels.json")
    report = run_benchmark(case.volume, case.mask("spleen"), args.model, args.device, args.slices, args.clicks)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
