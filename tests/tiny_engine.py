"""``samsegment serve`` with the tiny random-weight SAM (tiny_models.py) behind every model name:
the real engine service in its own process, for tests of what talks to it (plumbing, never
accuracy). Takes ``samsegment serve``'s options."""

from __future__ import annotations

import sys

from tiny_models import tiny_sam

from SAMSegmentLib.cli import build_parser
from SAMSegmentLib.cli.serve_command import serve
from SAMSegmentLib.service.engine import EngineService, ServiceSettings
from SAMSegmentLib.worker import InferenceWorker, WorkerSettings


def main() -> int:
    args = build_parser().parse_args(["serve", *sys.argv[1:]])
    model = tiny_sam()
    engine = EngineService(
        ServiceSettings(), lambda: InferenceWorker(WorkerSettings(prefetch_slices=0), loader=lambda request: model)
    )
    return serve(args, engine)


if __name__ == "__main__":
    sys.exit(main())
