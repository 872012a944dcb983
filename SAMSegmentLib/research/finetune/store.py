"""Fine-tuned checkpoints in the user's models folder, and their registry entries.

A fine-tuned model lives in ``<checkpoint cache>/finetuned/`` as ``NAME.pth`` (the network's
full state dict, which ``load_model`` reads like any checkpoint) beside ``NAME.json`` (its
provenance). Its ``ModelSpec`` is the base model's with a new name, the file's digest and size,
and ``filename="finetuned/NAME.pth"``, so ``CheckpointStore.path_for`` finds and size-checks it
in the cache like a downloaded checkpoint. Base checkpoints are never written here.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...atomic import write_file, write_text
from ...checkpoints import CheckpointStore, sha256_of
from ...errors import CheckpointError, SAMSegmentError
from ...registry import MODELS, ModelSpec, get_spec

if TYPE_CHECKING:  # listing models (Slicer's GUI does) needs no torch; saving one does
    from ...models.base import PromptableModel

logger = logging.getLogger(__name__)

FINETUNED_FOLDER = "finetuned"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def finetuned_dir(store: CheckpointStore | None = None) -> Path:
    return (store or CheckpointStore()).cache_dir / FINETUNED_FOLDER


def check_new_name(name: str, store: CheckpointStore | None = None, overwrite: bool = False) -> None:
    """Refuse names of registry models, unsafe file names and (unless ``overwrite``) existing ones."""
    if name in MODELS:
        raise SAMSegmentError(f"'{name}' is a built-in model; give the fine-tuned model another name.")
    if not _NAME.match(name) or name.endswith((".json", ".pth")):
        raise SAMSegmentError(
            f"'{name}' cannot name a model: use up to 64 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit."
        )
    existing = finetuned_dir(store) / f"{name}.json"
    if existing.exists() and not overwrite:
        raise SAMSegmentError(f"A fine-tuned model '{name}' exists ({existing}); choose another name or overwrite it.")


def save_finetuned(
    model: PromptableModel,
    name: str,
    provenance: dict[str, Any],
    store: CheckpointStore | None = None,
    overwrite: bool = False,
) -> ModelSpec:
    """Save ``model``'s full state dict as fine-tuned model ``name`` with its provenance; return its spec."""
    check_new_name(name, store, overwrite)
    base = _base_spec(model.spec)
    folder = finetuned_dir(store)
    folder.mkdir(parents=True, exist_ok=True)
    checkpoint = folder / f"{name}.pth"
    state = {key: value.detach().cpu() for key, value in model.network.state_dict().items()}
    import torch

    write_file(checkpoint, lambda path: torch.save(state, path), _damaged_zip)
    record = {
        "name": name,
        "base_model": base.name,
        "base_sha256": base.sha256,
        "started_from": model.spec.name,
        "started_from_sha256": model.spec.sha256,
        "checkpoint": checkpoint.name,
        "sha256": sha256_of(checkpoint),
        "size_bytes": checkpoint.stat().st_size,
        **provenance,
    }
    # Written last: a model is listed only once both files are complete.
    write_text(folder / f"{name}.json", json.dumps(record, indent=2) + "\n")
    return _spec_from(record, folder / f"{name}.json")


def _base_spec(spec: ModelSpec) -> ModelSpec:
    """The registry model that a (possibly already fine-tuned) model derives from."""
    return get_spec(spec.extra.get("base", spec.name))


def _damaged_zip(path: Path) -> str | None:
    """What is wrong with a ``torch.save`` archive (a zip): its C++ writer is checked, not trusted."""
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()  # reads every member and checks its CRC
    except (zipfile.BadZipFile, OSError) as error:
        return f"the written checkpoint is not a complete archive ({error})"
    return None if damaged is None else f"the written checkpoint's {damaged} is damaged"


def list_finetuned_models(store: CheckpointStore | None = None) -> list[ModelSpec]:
    """Specs of the fine-tuned models in the models folder (those with a readable provenance file)."""
    folder = finetuned_dir(store)
    specs = []
    for sidecar in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            record = json.loads(sidecar.read_text())
            specs.append(_spec_from(record, sidecar))
        except (OSError, ValueError, KeyError, TypeError, SAMSegmentError) as error:
            logger.warning("Skipping fine-tuned model %s: %s", sidecar, error)
    return specs


def find_finetuned(name: str, store: CheckpointStore | None = None) -> ModelSpec | None:
    """The fine-tuned model called ``name``, or None."""
    return next((spec for spec in list_finetuned_models(store) if spec.name == name), None)


def _spec_from(record: dict[str, Any], sidecar: Path) -> ModelSpec:
    base = get_spec(record["base_model"])
    name = str(record["name"])
    if name in MODELS:
        raise CheckpointError(f"{sidecar} claims the built-in name '{name}'.")
    if sidecar.stem != name:
        raise CheckpointError(f"{sidecar} names the model '{name}'; its file name says '{sidecar.stem}'.")
    return dataclasses.replace(
        base,
        name=name,
        filename=f"{FINETUNED_FOLDER}/{record['checkpoint']}",
        url="",
        sha256=str(record["sha256"]),
        size_bytes=int(record["size_bytes"]),
        embedded_package="",
        description=f"{base.description}; mask decoder fine-tuned on {', '.join(record.get('structures', []))}",
        extra={"base": base.name, "provenance": str(sidecar)},
    )
