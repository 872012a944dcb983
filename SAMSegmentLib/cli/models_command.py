"""``samsegment models``: every known model and whether it can be used right now."""

from __future__ import annotations

import argparse

from ..checkpoints import CheckpointStore
from ..registry import MODELS
from ..research.finetune.store import list_finetuned_models


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("models", help="list models and their state (embedded / cached / not downloaded)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    store = CheckpointStore()
    rows = [("name", "family", "state", "size", "prompts", "description")]
    for spec in [*MODELS.values(), *list_finetuned_models(store)]:
        prompts = "+".join(sorted(kind.value for kind in spec.prompts))
        size = f"{spec.size_bytes / 1e6:.0f} MB" if spec.size_bytes else "?"
        rows.append((spec.name, spec.family.value, store.state(spec), size, prompts, spec.description))
    widths = [max(len(row[column]) for row in rows) for column in range(5)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[5])
    print(f"\ncheckpoint folder: {store.cache_dir}")
    return 0
