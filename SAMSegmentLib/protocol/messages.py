"""What the inference worker reports back, and the results it carries."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from ..prediction import Prediction
from ..propagation import SliceResult
from ..registry import ModelSpec
from ..volume import Axis


class MessageKind(str, Enum):
    PROGRESS = "progress"  # value: (done, total) of a propagation (slices), download (bytes) or research
    # request (see protocol.research; text names the stage of a multi-stage one)
    SLICE = "slice"  # value: a SliceResult of a running propagation
    RESULT = "result"  # final: value is the request's result (see InferenceWorker)
    STALE = "stale"  # final: a Predict superseded by a newer one; nothing to show
    CANCELLED = "cancelled"  # final: value is a cancelled propagation's partial result, else None
    ERROR = "error"  # final: text says what went wrong; the worker keeps serving
    OUT_OF_MEMORY = "out_of_memory"  # final: the device ran out of memory; the GUI may offer the CPU

    @property
    def final(self) -> bool:
        """Every request gets exactly one final message, always the last for its id."""
        return self not in (MessageKind.PROGRESS, MessageKind.SLICE)


@dataclass(frozen=True)
class WorkerMessage:
    request_id: int
    kind: MessageKind
    value: object = None
    text: str = ""


@dataclass(frozen=True)
class ModelReady:
    """Result of LoadModel."""

    spec: ModelSpec
    device: str


@dataclass(frozen=True)
class VolumeReady:
    """Result of SetVolume: the key its embeddings are cached under."""

    volume_key: str


@dataclass(frozen=True)
class Preview:
    """Result of Predict: where the mask belongs and the prediction itself.

    Both kinds of prediction have ``mask`` (bool [y, x]) and ``score``. SAM 2 family models
    answer with a SliceResult: their session keeps the slice's logits for the next prompt.
    """

    axis: Axis
    index: int
    prediction: Prediction | SliceResult
