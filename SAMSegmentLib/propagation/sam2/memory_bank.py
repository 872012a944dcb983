"""Which earlier slices SAM 2 remembers: its own default, or MedSAM-2's self-sorting memory bank.

``MemoryPolicy.RECENT`` is SAM 2's default: memory attention reads the prompted slices plus
the ``num_maskmem - 1`` (6) slices just before the current one in the walking direction.

``MemoryPolicy.SELF_SORTING`` follows MedSAM-2 (Zhu et al. 2024, "Medical SAM 2: segment
medical images as video via Segment Anything Model 2"): per object, a bank of at most
``capacity`` memories chosen for quality and diversity rather than recency.

* Admission: a slice's memory enters the bank only if the model's predicted IoU for its
  mask is at least ``iou_threshold`` (default 0.7), so uncertain slices are not remembered.
* Diversity: while the bank holds more than ``capacity`` (default 16, MedSAM-2's bank size)
  memories, the most similar pair is found (cosine similarity of the memory features) and
  the member with the lower predicted IoU is dropped (the older one on a tie), which keeps
  the ``capacity`` most mutually dissimilar memories.
* Resampling: before memory attention on a slice, ``slots`` memories (the 6 SAM 2 attends
  to) are drawn one after the other without replacement, each with probabilities
  ``softmax(similarity / temperature)`` over the memories not drawn yet,
  where similarity is the cosine between the slice's image embedding and each memory's.
  ``temperature`` (default 0.1) sets how strongly similar slices are preferred: at 0.1 a
  memory 0.1 more similar is e (2.7) times as likely to be drawn; at MedSAM-2's plain
  softmax (temperature 1) cosines in [-1, 1] change the odds by e² at most, close to
  uniform. The draw uses a generator seeded with ``seed`` (default 0), so a session is
  reproducible. The drawn memories are ordered most similar first.

Prompted (conditioning) slices are not part of the bank: SAM 2 always attends to them.
Everything here works on tensors only; ``predictor.py`` connects it to SAM 2.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

# The keys SAM 2's per-slice output dict gains from our predictor (see predictor.py).
PREDICTED_IOU_KEY = "samsegment_predicted_iou"
IMAGE_KEY = "samsegment_image_key"
# The key of an object's bank in its SAM 2 output dict, where the predictor looks for it.
MEMORY_BANK_KEY = "samsegment_memory_bank"


@dataclass(frozen=True)
class SelfSortingSettings:
    iou_threshold: float = 0.7
    capacity: int = 16
    temperature: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.iou_threshold <= 1.0:
            raise ValueError(f"The IoU threshold must be between 0 and 1, got {self.iou_threshold}.")
        if self.capacity < 1:
            raise ValueError(f"The memory bank must hold at least one memory, got capacity {self.capacity}.")
        if self.temperature <= 0:
            raise ValueError(f"The resampling temperature must be positive, got {self.temperature}.")


@dataclass
class Memory:
    """One slice's memory in the bank: where it came from and the unit vectors compared."""

    frame_index: int
    output: dict[str, Any]  # SAM 2's output dict of that slice, handed to memory attention
    predicted_iou: float
    feature_key: torch.Tensor  # unit vector of the memory features (diversity)
    image_key: torch.Tensor  # unit vector of the slice's image embedding (resampling)


def unit_vector(tensor: torch.Tensor) -> torch.Tensor:
    return F.normalize(tensor.detach().float().reshape(-1), dim=0)


def most_redundant(memories: list[Memory]) -> int:
    """Index of the memory to drop: of the most similar pair, the one of lower predicted IoU."""
    keys = torch.stack([m.feature_key for m in memories])
    similarity = keys @ keys.T
    similarity.fill_diagonal_(-float("inf"))
    first, second = divmod(int(torch.argmax(similarity)), len(memories))
    first, second = min(first, second), max(first, second)  # first is the older
    return second if memories[second].predicted_iou < memories[first].predicted_iou else first


def keep_most_dissimilar(memories: list[Memory], capacity: int) -> list[Memory]:
    kept = list(memories)
    while len(kept) > capacity:
        del kept[most_redundant(kept)]
    return kept


def resample(
    memories: list[Memory], image_key: torch.Tensor, slots: int, temperature: float, generator: torch.Generator
) -> list[Memory]:
    """Draw up to ``slots`` memories without replacement, each draw with probabilities
    ``softmax(similarity / temperature)`` over those left; most similar first.

    Drawn with the Gumbel-top-k trick (add Gumbel noise to the logits, keep the top ones),
    which samples exactly that way and stays exact when a low temperature makes some
    probabilities underflow to zero.
    """
    if not memories or slots < 1:
        return []
    similarity = torch.stack([m.image_key for m in memories]) @ image_key
    # Drawn on the CPU, where the generator lives, whatever device the features are on.
    gumbel = -torch.empty(len(memories)).exponential_(generator=generator).log().to(similarity.device)
    drawn = torch.topk(similarity / temperature + gumbel, min(slots, len(memories))).indices.tolist()
    return [memories[i] for i in sorted(drawn, key=lambda i: -float(similarity[i]))]


@dataclass
class SelfSortingMemoryBank:
    """One object's bank, fed from SAM 2's per-slice outputs as they appear."""

    settings: SelfSortingSettings = field(default_factory=SelfSortingSettings)
    memories: list[Memory] = field(default_factory=list)
    # The output dict of each slice already considered, so each output is judged once; a slice
    # recomputed later (after a correction) brings a new dict and is judged again.
    _considered: dict[int, dict[str, Any]] = field(default_factory=dict)
    _generator: torch.Generator = field(init=False)

    def __post_init__(self) -> None:
        self._generator = torch.Generator().manual_seed(self.settings.seed)

    def update(self, outputs: dict[int, dict[str, Any]]) -> None:
        """Consider every slice output not seen before (SAM 2's ``non_cond_frame_outputs``)."""
        # A memory whose slice was recomputed or became a prompted slice is out of date.
        self.memories = [m for m in self.memories if outputs.get(m.frame_index) is m.output]
        for index in sorted(outputs):
            output = outputs[index]
            if self._considered.get(index) is output or output.get("maskmem_features") is None:
                continue
            self._considered[index] = output
            if IMAGE_KEY not in output:
                continue  # computed before this bank existed: nothing to compare it by
            iou = float(output[PREDICTED_IOU_KEY].reshape(-1)[0])
            if iou >= self.settings.iou_threshold:
                self.memories.append(
                    Memory(index, output, iou, unit_vector(output["maskmem_features"]), output[IMAGE_KEY])
                )
        self.memories = keep_most_dissimilar(self.memories, self.settings.capacity)

    def select(self, image_key: torch.Tensor, slots: int, exclude_index: int) -> list[Memory]:
        """The memories to attend to on slice ``exclude_index`` (never its own earlier output)."""
        candidates = [m for m in self.memories if m.frame_index != exclude_index]
        return resample(candidates, image_key, slots, self.settings.temperature, self._generator)
