"""The models a user can pick in the effect and see in the module: the registry's, then their own
fine-tuned ones."""

from __future__ import annotations

from SAMSegmentLib.checkpoints import CheckpointStore
from SAMSegmentLib.registry import MODELS, ModelSpec, PromptKind

from .i18n import tr


def modelChoices(store: CheckpointStore | None = None) -> list[ModelSpec]:
    """Registry models, then the fine-tuned models in ``store``'s folder. Before torch is installed
    none of the latter are listed: fine-tuning needs torch, so there can be none yet."""
    specs = list(MODELS.values())
    try:
        from SAMSegmentLib.research.finetune.store import list_finetuned_models
    except ImportError:
        return specs
    return specs + list_finetuned_models(store)


def modelLabel(spec: ModelSpec, store: CheckpointStore | None) -> str:
    """How a model is shown in a list: name, whether its weights are in ``store`` (None: a server's,
    not known here), their size, and whether it takes clicks (a box-only model refuses points, so
    the user should know before clicking)."""
    prompts = tr("points and box") if spec.accepts(PromptKind.POINT) else tr("box only")
    if store is None:
        return f"{spec.name} ({spec.size_bytes / 1e6:.0f} MB, {prompts})"
    return f"{spec.name} ({store.state(spec)}, {spec.size_bytes / 1e6:.0f} MB, {prompts})"
