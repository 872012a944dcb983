"""``samsegment serve`` with the tiny random-weight SAM (tiny_models.py) behind every model name:
the real engine service in its own process, for tests of what talks to it (plumbing, never
accuracy). Takes ``samsegment serve``'s options; ``tiny_worker`` is the same engine for Ray
Serve replicas."""

from __future__ import annotations

import functools
import sys

from tiny_models import tiny_sam

from SAMSegmentLib.cli import build_parser
from SAMSegmentLib.cli.serve_command import serve, service_settings
from SAMSegmentLib.service.engine import EngineService
from SAMSegmentLib.worker import InferenceWorker, WorkerSettings


@functools.cache
def _model():  # noqa: ANN202
    return tiny_sam()


def tiny_worker(cache_budget_bytes: int) -> InferenceWorker:
    model = _model()
    return InferenceWorker(WorkerSettings(cache_budget_bytes, prefetch_slices=0), loader=lambda request: model)


def main() -> int:
    args = build_parser().parse_args(["serve", *sys.argv[1:]])
    return serve(args, EngineService(service_settings(args), tiny_worker))


if __name__ == "__main__":
    sys.exit(main())
