"""Does inference on the worker thread keep the GUI responsive? A headless stand-in for Slicer.

The main thread runs what the Segment Editor effect runs: a timer every 50 ms that polls
the worker and applies each finished slice (a copy into a 3D array), while the worker
propagates the spleen of the shared CT (box on its largest axial slice) through 30 slices
with the real LiteMedSAM.
A tick that comes late means the GUI froze for that long: the worker's Python code holds
the interpreter lock, or its compute threads leave the main thread no core.

Prints JSON: the longest stall (largest gap between ticks minus the period), the p50 and
p95 of the gaps, the total time, and the click-to-preview latency (Predict on an already
embedded slice, from submit to the timer tick that polls its answer) over 20 clicks, and
the same polled every millisecond (the worker's own answer time).

    python benchmarks/gui_stall.py [--switch-interval-ms 1] [--torch-threads 1]

The timer loop itself is ``SAMSegmentLib.bench.stall.measure_main_thread_stall``, which
``samsegment bench`` uses too.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from SAMSegmentLib.bench.cases import BenchCase, image_case
from SAMSegmentLib.bench.propagation import slice_range
from SAMSegmentLib.bench.stall import TIMER_PERIOD_S, measure_main_thread_stall
from SAMSegmentLib.datasets import shared_ct_dir
from SAMSegmentLib.prompts import Prompts
from SAMSegmentLib.propagation import ObjectPrompts, PropagationRequest, SliceResult, StopRule
from SAMSegmentLib.volume import put_slice
from SAMSegmentLib.worker import (
    InferenceWorker,
    LoadModel,
    MessageKind,
    Predict,
    Propagate,
    SetVolume,
    WorkerMessage,
    WorkerSettings,
)

# Measure the GUI over every slice of the range, not just where the spleen is.
THROUGH_EVERY_SLICE = StopRule.keep_going()


def measure_click_latency(
    worker: InferenceWorker, clicks: Sequence[Predict], period_s: float = TIMER_PERIOD_S
) -> list[float]:
    """Seconds from submitting each click to the timer tick that polls its preview, one click at a time."""
    latencies = []
    for click in clicks:
        messages: list[WorkerMessage] = []
        report = measure_main_thread_stall(worker, click, messages.append, period_s)
        _check(messages[-1])
        latencies.append(report.total_s)
    return latencies


def _check(message: WorkerMessage) -> WorkerMessage:
    if message.kind is not MessageKind.RESULT:
        raise RuntimeError(f"{message.kind.value}: {message.text}")
    return message


def _jittered_clicks(case: BenchCase, count: int) -> list[Predict]:
    """Boxes a user would draw around the seed's object, a few pixels apart."""
    rng = np.random.default_rng(0)
    clicks = []
    for _ in range(count):
        x0, y0, x1, y1 = np.asarray(case.box) + rng.integers(-3, 4, size=4)
        box = (float(x0), float(y0), float(x1), float(y1))
        clicks.append(Predict(case.axis, case.seed_index, Prompts(box=box)))
    return clicks


def _milliseconds(values: Sequence[float], percentile: float) -> float:
    return round(float(np.percentile(values, percentile)) * 1000.0, 1)


def run_benchmark(
    case: BenchCase, model: str = "litemedsam", device: str = "cpu", slices: int = 30, clicks: int = 20
) -> dict[str, object]:
    """Propagate ``case`` through ``slices`` slices around its seed, timing the GUI timer meanwhile."""
    first, last = slice_range(case, slices)
    objects = [ObjectPrompts("organ", Prompts(box=case.box))]
    request = PropagationRequest(case.axis, case.seed_index, objects, slice_range=(first, last))
    labelmap = np.zeros(case.volume.array.shape, dtype=np.uint8)
    applied: list[int] = []

    def apply(message: WorkerMessage) -> None:
        if message.kind is MessageKind.SLICE:
            result: SliceResult = message.value  # type: ignore[assignment]
            put_slice(labelmap, case.axis, result.index, result.mask.astype(np.uint8))
            applied.append(result.index)

    with InferenceWorker(WorkerSettings(prefetch_slices=0)) as worker:
        _check(worker.wait(worker.submit(LoadModel(model, device)))[-1])
        _check(worker.wait(worker.submit(SetVolume(case.volume, volume_key="benchmark")))[-1])
        stall = measure_main_thread_stall(worker, Propagate(request, THROUGH_EVERY_SLICE), apply)
        latencies = measure_click_latency(worker, _jittered_clicks(case, clicks))
        # Polled every millisecond: the worker's own answer time, without the timer's rounding.
        service = measure_click_latency(worker, _jittered_clicks(case, clicks), period_s=0.001)
    return {
        "model": model,
        "device": device,
        "slices_propagated": len(applied),
        "case": case.description,
        "slice_range": [first, last],
        "switch_interval_ms": sys.getswitchinterval() * 1000.0,
        "torch_threads": torch.get_num_threads(),
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
    case = image_case(args.data_dir / "ct.nii.gz", args.data_dir / "labels.nii.gz", "spleen")
    report = run_benchmark(case, args.model, args.device, args.slices, args.clicks)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
