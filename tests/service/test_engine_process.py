"""The engine as Slicer runs it: a child process with LiteMedSAM, driven from a main loop that
holds the GIL (as Slicer's does), surviving the engine's death mid-propagation."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from test_worker_doubles import organ_box

from SAMSegmentLib.bench.host_loop import GilHoldingLoop
from SAMSegmentLib.propagation import ObjectPrompts, PropagationRequest
from SAMSegmentLib.protocol import LoadModel, MessageKind, Predict, Propagate, SetVolume
from SAMSegmentLib.protocol.clients import WorkerHub
from SAMSegmentLib.protocol.engine_client import EngineClient
from SAMSegmentLib.service.launcher import EngineProcess
from SAMSegmentLib.volume import Axis

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [
    pytest.mark.skipif(os.name != "posix", reason="the host loop idles in libc's poll()"),
    pytest.mark.slow,  # engine processes
]


@pytest.fixture
def engine():
    process = EngineProcess(python_path=[str(ROOT)])
    client = EngineClient(process, poll_wait_s=5.0)
    yield process, client
    client.close()


def run(loop: GilHoldingLoop, client: EngineClient, messages: list, done, timeout_s: float = 240.0) -> None:
    loop.run_until(
        lambda: done(messages),
        tick=lambda: messages.extend(client.poll()),
        watched=client.watched,
        on_ready=lambda: messages.extend(client.poll()),
        timeout_s=timeout_s,
    )


def finished(request_id: int):
    return lambda messages: any(m.request_id == request_id and m.kind.final for m in messages)


def final(messages: list, request_id: int):
    return next(m for m in messages if m.request_id == request_id and m.kind.final)


def test_engine_in_its_own_process_survives_being_killed_mid_propagation(engine, ct_phantom):
    process, client = engine
    loop, messages = GilHoldingLoop(interval_s=0.05), []
    client.submit(LoadModel("litemedsam", "cpu"))
    volume = client.submit(SetVolume(ct_phantom, volume_key="phantom"))
    preview = client.submit(Predict(Axis.AXIAL, 6, organ_box(ct_phantom)))
    run(loop, client, messages, finished(preview))
    assert final(messages, volume).kind is MessageKind.RESULT
    first = final(messages, preview)
    assert first.kind is MessageKind.RESULT, first.text
    assert first.value.prediction.mask.sum() > 0  # the engine computed while this loop held the GIL

    request = PropagationRequest(Axis.AXIAL, 6, [ObjectPrompts("organ", organ_box(ct_phantom))])
    propagation = client.submit(Propagate(request))
    run(loop, client, messages, lambda ms: any(m.request_id == propagation and m.kind is MessageKind.SLICE for m in ms))
    pid = process.pid
    os.kill(pid, signal.SIGKILL)  # a crash, or the system's out-of-memory killer
    run(loop, client, messages, finished(propagation))
    lost = final(messages, propagation)
    assert lost.kind is MessageKind.ERROR
    assert "engine stopped" in lost.text and "unchanged" in lost.text

    again = client.submit(Predict(Axis.AXIAL, 6, organ_box(ct_phantom)))  # the next action restarts it
    run(loop, client, messages, finished(again))
    answer = final(messages, again)
    assert answer.kind is MessageKind.RESULT, answer.text
    assert process.pid != pid and client.restarts == 1
    assert (answer.value.prediction.mask == first.value.prediction.mask).all()


def test_the_effect_and_panels_share_the_engine_without_taking_each_others_answers(engine, ct_phantom):
    _, client = engine
    hub = WorkerHub(client)
    effect, panel = hub.client(), hub.client()
    loop = GilHoldingLoop()
    effect.submit(LoadModel("litemedsam", "cpu"))
    effect.submit(SetVolume(ct_phantom, volume_key="phantom"))
    mine = effect.submit(Predict(Axis.AXIAL, 6, organ_box(ct_phantom)))
    effect_messages, panel_messages = [], []

    def tick() -> None:
        effect_messages.extend(effect.poll())
        panel_messages.extend(panel.poll())

    loop.run_until(lambda: finished(mine)(effect_messages), tick, client.watched, tick, timeout_s=240)
    assert panel_messages == []
    assert final(effect_messages, mine).kind is MessageKind.RESULT
