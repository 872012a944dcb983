"""``samsegment download``: fetch a model's checkpoint, or import a file fetched elsewhere."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..checkpoints import CheckpointStore
from ..registry import MODELS, get_spec
from .progress import progress_bar


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("download", help="download a checkpoint, or import a local copy (offline)")
    parser.add_argument("model", choices=sorted(MODELS))
    parser.add_argument("--from-file", type=Path, help="import this local file instead of downloading")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    spec = get_spec(args.model)
    store = CheckpointStore()
    if spec.embedded:
        print(f"{spec.name} is embedded in the installed '{spec.embedded_package}' package; nothing to download.")
        return 0
    if args.from_file:
        path = store.import_file(spec, args.from_file)
    else:
        with progress_bar(f"downloading {spec.filename}", total=spec.size_bytes, unit="B") as bar:
            path = store.download(spec, progress=bar.update_to)
    print(f"{spec.name}: verified checkpoint at {path}")
    return 0
