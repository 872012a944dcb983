"""Simulated clinicians against an engine server (``samsegment serve``, with or without ``--ray``):
how click latency and throughput hold up as clients are added.

Each clinician is a thread with its own protocol client (``EngineClient``, the Slicer side's) and
its own session on the same real volume: it loads the model, sends the volume, then on each of a
few slices draws a box (the first mask on a fresh slice: the encoder runs), refines it with clicks
(the slice is embedded: click-to-mask), pausing ``think_s`` before each, and finally propagates
the object over a few slices. A run does this with 1, 2, 4... clinicians at once.

Throughput is compared side by side in one run, with no think time on either side: the same
clinicians' work done by one engine in this process, one clinician after the other, against the
same work sent by that many clinicians at once to the server.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..intensity import IntensityMapping
from ..prompts import Prompts
from ..propagation import ObjectPrompts, PropagationRequest, StopRule
from ..protocol import LoadModel, MessageKind, Predict, Propagate, Request, SetVolume, WorkerMessage
from ..protocol.codec import PROTOCOL_HEADER, PROTOCOL_VERSION
from ..protocol.endpoints import Endpoint, FixedEndpoint
from ..protocol.engine_client import EngineClient, wait_for
from ..worker import InferenceWorker
from .cases import BenchCase
from .clicks import jittered_prompts
from .timing import milliseconds

_TIMEOUT_S = 900.0
_SLICE_SPACING = 3  # slices between one clinician's slices and the next's: no shared embeddings
_HEALTH_SAMPLES = 8  # health asks per run: on Ray Serve each answer comes from one replica

Driver = EngineClient | InferenceWorker


@dataclass
class LoadSettings:
    model: str = "litemedsam"
    device: str = "auto"
    slices: int = 2  # slices each clinician works on
    clicks: int = 3  # refinements per slice, after its first box
    propagation_slices: int = 4
    think_s: float = 1.0
    stop_rule: StopRule | None = None  # None: the engine's default


@dataclass
class _Tally:
    first_mask_s: list[float]
    click_s: list[float]
    propagation_s_per_slice: list[float]
    masks: int = 0
    errors: int = 0
    first_error: str = ""

    @classmethod
    def empty(cls) -> _Tally:
        return cls([], [], [])

    def add(self, other: _Tally) -> None:
        self.first_mask_s += other.first_mask_s
        self.click_s += other.click_s
        self.propagation_s_per_slice += other.propagation_s_per_slice
        self.masks += other.masks
        self.errors += other.errors
        self.first_error = self.first_error or other.first_error


def clinician(
    driver: Driver, case: BenchCase, intensity: IntensityMapping, settings: LoadSettings, index: int, think_s: float
) -> _Tally:
    """One clinician's work (see the module's docstring); never raises: failures are counted."""
    tally = _Tally.empty()
    try:
        _ask(driver, LoadModel(settings.model, settings.device))
        _ask(driver, SetVolume(case.volume, intensity, volume_key=f"loadtest-{index}"))
        slice_hw = case.volume.slice_shape(case.axis)
        prompts: Prompts | None = None
        for number, slice_index in enumerate(_slices(case, index, settings.slices)):
            refinements = jittered_prompts(case.box, slice_hw, False, settings.clicks + 1, seed=index * 100 + number)
            for click, prompts in enumerate(refinements):
                time.sleep(think_s)
                started = time.perf_counter()
                final = _ask(driver, Predict(case.axis, slice_index, prompts, logits=False))[-1]
                (tally.click_s if click else tally.first_mask_s).append(time.perf_counter() - started)
                tally.masks += 1
                _count(tally, final)
        last = _slices(case, index, settings.slices)[-1]
        total = case.volume.slice_count(case.axis)
        first = max(0, min(last - settings.propagation_slices // 2, total - settings.propagation_slices))
        request = PropagationRequest(
            case.axis,
            last,
            [ObjectPrompts("object", prompts or Prompts(box=case.box))],
            slice_range=(first, min(total - 1, first + settings.propagation_slices - 1)),
        )
        time.sleep(think_s)
        started = time.perf_counter()
        messages = _ask(driver, Propagate(request, settings.stop_rule or StopRule(), volume_masks=False))
        slices = sum(m.kind is MessageKind.SLICE for m in messages)
        tally.propagation_s_per_slice.append((time.perf_counter() - started) / max(1, slices))
        tally.masks += slices
        _count(tally, messages[-1])
    except Exception as error:  # noqa: BLE001 - a load test counts failures, it does not stop at one
        tally.errors += 1
        tally.first_error = tally.first_error or f"{type(error).__name__}: {error}"
    return tally


def run_clients(
    endpoint: Endpoint,
    case: BenchCase,
    intensity: IntensityMapping,
    settings: LoadSettings,
    clients: int,
    think_s: float,
) -> dict[str, object]:
    """``clients`` clinicians at once against the server; their numbers together."""
    tallies: list[_Tally] = [_Tally.empty() for _ in range(clients)]
    restarts = [0] * clients

    def work(index: int) -> None:
        client = EngineClient(FixedEndpoint(endpoint))
        try:
            tallies[index] = clinician(client, case, intensity, settings, index, think_s)
            restarts[index] = client.restarts
        finally:
            close_session(endpoint, client)

    started = time.perf_counter()
    threads = [threading.Thread(target=work, args=(i,), name=f"clinician {i}") for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall_s = time.perf_counter() - started
    total = _Tally.empty()
    for tally in tallies:
        total.add(tally)
    return {**_summary(total, wall_s), "clients": clients, "session_restarts": sum(restarts)}


def run_in_process(
    make_worker: Callable[[], InferenceWorker],
    case: BenchCase,
    intensity: IntensityMapping,
    settings: LoadSettings,
    clients: int,
) -> dict[str, object]:
    """The same clinicians' work, one after the other, by one engine in this process (no think time)."""
    total = _Tally.empty()
    with make_worker() as worker:
        _ask(worker, LoadModel(settings.model, settings.device))  # loading is not what is compared
        started = time.perf_counter()
        for index in range(clients):
            total.add(clinician(worker, case, intensity, settings, index, 0.0))
        wall_s = time.perf_counter() - started
    return {**_summary(total, wall_s), "clients": clients}


def server_health(endpoint: Endpoint, samples: int = _HEALTH_SAMPLES) -> dict[str, object]:
    """The server's health; over several asks, the peak memory of each replica that answered."""
    peaks: dict[str, float] = {}
    health: dict[str, Any] = {}  # JSON
    for _ in range(samples):
        request = urllib.request.Request(
            f"http://{endpoint.host}:{endpoint.port}/v1/health",
            headers={"Authorization": f"Bearer {endpoint.token}", PROTOCOL_HEADER: str(PROTOCOL_VERSION)},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            health = json.loads(response.read())
        replica = str(health.get("replica", "server"))
        peaks[replica] = max(peaks.get(replica, 0.0), float(health.get("peak_rss_mb", 0.0)))
    return {**health, "peak_rss_mb_by_replica": peaks}


def close_session(endpoint: Endpoint, client: EngineClient) -> None:
    """End ``client``'s session on the server, so the next run starts on an idle server."""
    session = client.session_id
    client.close()
    if session is None:
        return
    request = urllib.request.Request(
        f"http://{endpoint.host}:{endpoint.port}/v1/sessions/{session}",
        method="DELETE",
        headers={"Authorization": f"Bearer {endpoint.token}", PROTOCOL_HEADER: str(PROTOCOL_VERSION)},
    )
    try:
        urllib.request.urlopen(request, timeout=60).close()
    except OSError:
        pass  # the session expires anyway


def _ask(driver: Driver, request: Request) -> list[WorkerMessage]:
    request_id = driver.submit(request)
    if isinstance(driver, InferenceWorker):
        messages = driver.wait(request_id, _TIMEOUT_S)
    else:
        messages = wait_for(driver, lambda ms: any(m.request_id == request_id and m.kind.final for m in ms), _TIMEOUT_S)
    mine = [m for m in messages if m.request_id == request_id]
    if mine[-1].kind is not MessageKind.RESULT:
        raise RuntimeError(f"{type(request).__name__}: {mine[-1].kind.value}: {mine[-1].text}")
    return mine


def _count(tally: _Tally, final: WorkerMessage) -> None:
    if final.kind is not MessageKind.RESULT:
        tally.errors += 1
        tally.first_error = tally.first_error or final.text


def _slices(case: BenchCase, index: int, count: int) -> list[int]:
    """Clinician ``index``'s slices: near the object's seed slice, apart from the other clinicians'."""
    total = case.volume.slice_count(case.axis)
    start = case.seed_index + (index - 1) * _SLICE_SPACING * count
    return [int(np.clip(start + number * _SLICE_SPACING, 0, total - 1)) for number in range(count)]


def _summary(tally: _Tally, wall_s: float) -> dict[str, object]:
    return {
        "click_to_mask_ms": _percentiles(tally.click_s),
        "first_mask_ms": _percentiles(tally.first_mask_s),
        "propagation_s_per_slice": round(float(np.median(tally.propagation_s_per_slice)), 3)
        if tally.propagation_s_per_slice
        else None,
        "errors": tally.errors,
        "first_error": tally.first_error or None,
        "masks": tally.masks,
        "wall_s": round(wall_s, 1),
        "masks_per_s": round(tally.masks / wall_s, 3) if wall_s else None,
    }


def _percentiles(seconds: Sequence[float]) -> dict[str, object]:
    if not seconds:
        return {"p50": None, "p95": None, "count": 0}
    return {"p50": milliseconds(seconds, 50), "p95": milliseconds(seconds, 95), "count": len(seconds)}
