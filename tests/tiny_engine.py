"""``samsegment serve`` with the tiny random-weight SAM (tiny_models.py) behind every model name:
the real engine service in its own process, for tests of what talks to it (plumbing, never
accuracy). Takes ``samsegment serve``'s options; ``tiny_worker`` is the same engine for Ray
Serve replicas."""

from __future__ import annotations

import functools
import sys
import time

from tiny_models import tiny_sam

from SAMSegmentLib.cli import build_parser
from SAMSegmentLib.cli.serve_command import serve, service_settings
from SAMSegmentLib.service.engine import EngineService
from SAMSegmentLib.worker import InferenceWorker, WorkerSettings


@functools.cache
def _model(encode_delay_s: float):
    model = tiny_sam()
    if encode_delay_s:  # as slow as a real encoder, so a test can act while a propagation runs
        encode = model.encode

        def slow_encode(image01):
            time.sleep(encode_delay_s)
            return encode(image01)

        model.encode = slow_encode
    return model


def tiny_worker(cache_budget_bytes: int, encode_delay_s: float = 0.0) -> InferenceWorker:
    model = _model(encode_delay_s)
    return InferenceWorker(WorkerSettings(cache_budget_bytes, prefetch_slices=0), loader=lambda request: model)


def main() -> int:
    args = build_parser().parse_args(["serve", *sys.argv[1:]])
    return serve(args, EngineService(service_settings(args), tiny_worker))


if __name__ == "__main__":
    sys.exit(main())
