"""The engine as Slicer uses it: in its own process, behind the protocol, polled from a main loop
that holds the GIL (``service`` in the bench report), side by side with the engine in this process.

Three ways of driving the same requests, measured one after the other in one run:

- ``in_process``: the inference worker in this process, waited on directly (``InferenceWorker.wait``,
  no polling loop): the engine's own speed, the reference;
- ``service``: ``samsegment serve`` in a child process (what the Slicer extension starts), polled
  by a GIL-holding loop with a 50 ms timer and socket notifiers, as Slicer's Qt loop does;
- ``in_process_thread_gil_loop``: the old design, the worker thread in the GUI's own process under
  that GIL-holding loop, with fewer requests (it crawls).

Each does: the volume once, the first mask on fresh slices, clicks on an embedded slice (each after
a pause, so it interrupts the background embedding of neighbours as a user's click does), and a
propagation whose slices the main thread applies as the effect does (one slice each).
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, cast

import numpy as np

from ..intensity import IntensityMapping
from ..models import PromptableModel
from ..prompts import Prompts
from ..propagation import ObjectPrompts, PropagationRequest, SliceResult, StopRule
from ..protocol import LoadModel, MessageKind, Predict, Propagate, Request, SetVolume, WorkerMessage
from ..protocol.engine_client import EngineClient
from ..service.launcher import EngineProcess
from ..volume import Axis, put_slice
from ..worker import InferenceWorker, WorkerSettings
from .cases import BenchCase
from .clicks import jittered_prompts
from .host_loop import GilHoldingLoop, SleepingLoop
from .propagation import OBJECT_ID, slice_range
from .timing import milliseconds

SLICER_TIMER_S = 0.05  # the effect's poll timer
THINK_S = 0.3  # between clicks
_CRAWLING_CLICKS, _CRAWLING_FRESH, _CRAWLING_PROPAGATION = 5, 1, 3  # the old design under the GIL
_TIMEOUT_S = 1800.0


class Driver(Protocol):
    def submit(self, request: Request) -> int: ...

    def poll(self) -> list[WorkerMessage]: ...


@dataclasses.dataclass
class ServiceBenchSettings:
    model: str
    device: str
    backend: str
    checkpoint: Path | None
    clicks: int
    fresh_slices: int
    propagation_slices: int
    stop_rule: StopRule
    prefetch_slices: int = WorkerSettings().prefetch_slices


def default_engine_process() -> EngineProcess:
    """``samsegment serve`` run by this interpreter, as the Slicer extension runs it."""
    return EngineProcess(python=sys.executable, python_path=[str(Path(__file__).resolve().parents[2])])


def service_section(
    case: BenchCase,
    intensity: IntensityMapping,
    settings: ServiceBenchSettings,
    engine_model: PromptableModel,
    engine_process: Callable[[], EngineProcess] = default_engine_process,
) -> dict[str, object]:
    """Measure the three ways; ``engine_model`` is this process's (already loaded) engine model and
    ``engine_process`` makes the child the service runs in."""
    worker_settings = WorkerSettings(prefetch_slices=settings.prefetch_slices)

    def in_process_worker() -> InferenceWorker:
        return InferenceWorker(worker_settings, loader=lambda request: engine_model)

    with in_process_worker() as worker:
        _ask(worker, None, LoadModel(settings.model))
        reference = _measure(
            worker, None, case, intensity, settings, settings.clicks, settings.fresh_slices, settings.propagation_slices
        )
    client = EngineClient(engine_process())
    try:
        started = time.perf_counter()
        _ask(
            client,
            SleepingLoop(SLICER_TIMER_S),
            LoadModel(settings.model, settings.device, settings.checkpoint, settings.backend),
        )
        engine_start_s = time.perf_counter() - started
        service = _measure(
            client,
            GilHoldingLoop(SLICER_TIMER_S),
            case,
            intensity,
            settings,
            settings.clicks,
            settings.fresh_slices,
            settings.propagation_slices,
        )
    finally:
        client.close()
    with in_process_worker() as worker:
        _ask(worker, None, LoadModel(settings.model))  # loading is not what is timed
        crawling = _measure(
            worker,
            GilHoldingLoop(SLICER_TIMER_S),
            case,
            intensity,
            settings,
            _CRAWLING_CLICKS,
            _CRAWLING_FRESH,
            _CRAWLING_PROPAGATION,
        )
    return {
        **service,
        "engine_start_s": round(engine_start_s, 1),
        "propagation_vs_in_process": round(
            service["propagation_s_per_slice"]  # type: ignore[operator]
            / reference["propagation_s_per_slice"],
            2,
        ),
        "how": "samsegment serve in a child process, HTTP/1.1 on loopback; the main loop idles in poll() "
        "holding the GIL with a 50 ms timer and socket notifiers, as Slicer's Qt loop does",
        "in_process": {
            **reference,
            "how": "the inference worker in this process, waited on directly (the engine's own speed, no polling loop)",
        },
        "in_process_thread_gil_loop": {
            **crawling,
            "how": "the old design: the inference worker thread in the "
            "GUI's process, polled by the same GIL-holding loop "
            "(fewer requests: it crawls)",
        },
    }


def _measure(
    driver: Driver,
    loop: GilHoldingLoop | None,
    case: BenchCase,
    intensity: IntensityMapping,
    settings: ServiceBenchSettings,
    clicks: int,
    fresh: int,
    propagation_slices: int,
) -> dict[str, object]:
    traffic = driver.traffic if isinstance(driver, EngineClient) else (lambda: (0, 0))
    before = traffic()
    _ask(driver, loop, SetVolume(case.volume, intensity, "bench"))
    volume_bytes = _delta(traffic(), before)[0]
    if loop is not None:
        loop.longest_step_s = 0.0

    first_mask_s = []
    for index in _fresh_slices(case, fresh, settings.prefetch_slices):
        started = time.perf_counter()
        _ask(driver, loop, Predict(case.axis, index, Prompts(box=case.box), logits=False))
        first_mask_s.append(time.perf_counter() - started)

    _ask(driver, loop, Predict(case.axis, case.seed_index, Prompts(box=case.box), logits=False))  # embeds the seed
    prompts = jittered_prompts(case.box, case.volume.slice_shape(case.axis), False, clicks, seed=1)
    click_s = []
    before = traffic()
    for prompt in prompts:
        _think(driver, loop)
        started = time.perf_counter()
        _ask(driver, loop, Predict(case.axis, case.seed_index, prompt, logits=False))
        click_s.append(time.perf_counter() - started)
    click_bytes = _delta(traffic(), before)

    shown = np.zeros(case.volume.array.shape, bool)  # the effect's collector: one slice per message
    request = PropagationRequest(
        case.axis,
        case.seed_index,
        [ObjectPrompts(OBJECT_ID, Prompts(box=case.box))],
        slice_range=slice_range(case, propagation_slices),
    )
    before = traffic()
    started = time.perf_counter()
    messages = _ask(
        driver,
        loop,
        Propagate(request, settings.stop_rule, volume_masks=False),
        lambda m: _show(shown, case.axis, m.value),
    )
    propagation_s = time.perf_counter() - started
    slices = sum(m.kind is MessageKind.SLICE for m in messages)
    propagation_bytes = _delta(traffic(), before)
    return {
        "click_to_mask_ms": {"p50": milliseconds(click_s, 50), "p95": milliseconds(click_s, 95), "clicks": clicks},
        "first_mask_ms": milliseconds(first_mask_s, 50),
        "first_mask_slices": len(first_mask_s),
        "propagation_s_per_slice": round(propagation_s / max(1, slices), 3),
        "propagated_slices": slices,
        "main_thread_stall_ms": None
        if loop is None
        else {
            "max": round(loop.longest_step_s * 1000.0, 1),
            "holds_gil": loop.holds_gil,
        },
        "bytes": {
            "volume": volume_bytes,
            "volume_array": int(case.volume.array.nbytes),
            "per_click": {"sent": click_bytes[0] // max(1, clicks), "received": click_bytes[1] // max(1, clicks)},
            "per_propagated_slice": propagation_bytes[1] // max(1, slices),
        },
    }


def _ask(
    driver: Driver,
    loop: GilHoldingLoop | None,
    request: Request,
    on_slice: Callable[[WorkerMessage], None] | None = None,
) -> list[WorkerMessage]:
    """Submit ``request`` and run ``loop`` until its final message (without a loop, wait on the
    in-process worker itself); every message of it, in order."""
    request_id = driver.submit(request)
    messages: list[WorkerMessage] = []
    if loop is None:
        assert isinstance(driver, InferenceWorker)
        messages = [m for m in driver.wait(request_id, _TIMEOUT_S) if m.request_id == request_id]
        for message in messages:
            if message.kind is MessageKind.SLICE and on_slice is not None:
                on_slice(message)
        if messages[-1].kind is not MessageKind.RESULT:
            raise RuntimeError(f"{type(request).__name__} failed in the bench: {messages[-1].text}")
        return messages

    def collect() -> None:
        for message in driver.poll():
            if message.request_id != request_id:
                continue
            messages.append(message)
            if message.kind is MessageKind.SLICE and on_slice is not None:
                on_slice(message)

    watched = _sockets(driver)
    loop.run_until(lambda: bool(messages) and messages[-1].kind.final, collect, watched, collect, _TIMEOUT_S)
    if messages[-1].kind is not MessageKind.RESULT:
        raise RuntimeError(f"{type(request).__name__} failed in the bench: {messages[-1].text}")
    return messages


def _think(driver: Driver, loop: GilHoldingLoop | None) -> None:
    """A user's pause before the next click: meanwhile the engine embeds neighbouring slices in the
    background, and the click must interrupt that (as every real click does, seconds apart)."""
    if loop is None:
        time.sleep(THINK_S)
        return
    resume = time.monotonic() + THINK_S
    watched = _sockets(driver)
    loop.run_until(lambda: time.monotonic() >= resume, driver.poll, watched, driver.poll, THINK_S + 5.0)


def _sockets(driver: Driver) -> Callable[[], list[tuple[int, bool]]]:
    """What the loop watches for ``driver``: the engine client's sockets; nothing in-process."""
    return driver.watched if isinstance(driver, EngineClient) else list


def _fresh_slices(case: BenchCase, count: int, prefetch_slices: int) -> list[int]:
    """Up to ``count`` slices that neither the seed's prefetch nor each other's will have embedded."""
    total = case.volume.slice_count(case.axis)
    chosen: list[int] = []
    for index in sorted(range(total), key=lambda i: -abs(i - case.seed_index)):
        if all(abs(index - other) > prefetch_slices for other in [case.seed_index, *chosen]):
            chosen.append(index)
        if len(chosen) == count:
            break
    return chosen or [0 if case.seed_index else total - 1]


def _delta(after: tuple[int, int], before: tuple[int, int]) -> tuple[int, int]:
    return after[0] - before[0], after[1] - before[1]


def _show(shown: np.ndarray, axis: Axis, value: object) -> None:
    """Paint a SLICE message's mask into ``shown``, as the effect's collector does."""
    result = cast(SliceResult, value)
    put_slice(shown, axis, result.index, result.mask)
