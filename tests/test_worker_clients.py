"""Several GUI parts share one worker: each client sees only its own answers and cancels only its own requests."""

from __future__ import annotations

import time

from test_worker_doubles import SlowEncoder

from SAMSegmentLib.protocol.clients import WorkerHub
from SAMSegmentLib.research.automatic import GridOptions
from SAMSegmentLib.volume import Axis
from SAMSegmentLib.worker import InferenceWorker, LoadModel, MessageKind, SegmentEverything, WorkerSettings

OPTIONS = GridOptions(points_per_side=2, min_predicted_iou=-1.0, min_stability=0.0)


def _poll_until_final(client, request_id: int, timeout: float = 60) -> list:
    messages: list = []
    deadline = time.monotonic() + timeout
    while not any(m.request_id == request_id and m.kind.final for m in messages):
        assert time.monotonic() < deadline, messages
        time.sleep(0.01)
        messages += client.poll()
    return messages


def test_each_client_gets_its_own_answers_whoever_polls(tiny_sam_model, ct_phantom):
    slow = SlowEncoder(tiny_sam_model, seconds=0.2)
    with InferenceWorker(WorkerSettings(prefetch_slices=0), loader=lambda request: slow) as worker:
        hub = WorkerHub(worker)
        effect, panel = hub.client(), hub.client()
        loading = effect.submit(LoadModel("sam_vit_b", device="cpu"))
        slab = panel.submit(SegmentEverything(Axis.AXIAL, 0, 11, OPTIONS, volume=ct_phantom))
        effect_messages = _poll_until_final(effect, loading)
        assert {m.request_id for m in effect_messages} == {loading}
        cancels = effect.cancel()  # the effect has nothing running: the panel's slab goes on
        assert cancels == []
        panel_messages = _poll_until_final(panel, slab)
        assert {m.request_id for m in panel_messages} == {slab}
        assert panel_messages[-1].kind is MessageKind.RESULT
        assert [m.value for m in panel_messages if m.kind is MessageKind.PROGRESS][-1] == (12, 12)


def test_cancel_of_all_stops_only_the_clients_own_requests(tiny_sam_model, ct_phantom):
    slow = SlowEncoder(tiny_sam_model, seconds=0.2)
    with InferenceWorker(WorkerSettings(prefetch_slices=0), loader=lambda request: slow) as worker:
        hub = WorkerHub(worker)
        effect, panel = hub.client(), hub.client()
        effect.submit(LoadModel("sam_vit_b", device="cpu"))
        slab = panel.submit(SegmentEverything(Axis.AXIAL, 0, 11, OPTIONS, volume=ct_phantom))
        other = effect.submit(SegmentEverything(Axis.AXIAL, 0, 1, OPTIONS, volume=ct_phantom))
        (cancel_id,) = panel.cancel()
        messages = _poll_until_final(panel, slab)
        assert [m.kind for m in messages if m.request_id == slab and m.kind.final] == [MessageKind.CANCELLED]
        assert any(m.request_id == cancel_id and m.value == (slab,) for m in messages)
        assert _poll_until_final(effect, other)[-1].kind is MessageKind.RESULT
