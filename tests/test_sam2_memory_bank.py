"""The self-sorting memory bank's admission, diversity and resampling on synthetic features."""

from __future__ import annotations

import pytest
import torch

from SAMSegmentLib.propagation.sam2.memory_bank import (
    IMAGE_KEY,
    PREDICTED_IOU_KEY,
    SelfSortingMemoryBank,
    SelfSortingSettings,
    unit_vector,
)

DIM = 16


def basis(i: int, j: int | None = None, weight: float = 0.0) -> torch.Tensor:
    """Unit vector e_i, or e_i tilted towards e_j by ``weight`` (cosine to e_i shrinks as weight grows)."""
    vector = torch.zeros(DIM)
    vector[i] = 1.0
    if j is not None:
        vector[j] = weight
    return unit_vector(vector)


def output(iou: float, features: torch.Tensor, image: torch.Tensor | None = None) -> dict:
    """A SAM 2 per-slice output as our predictor stores it (memory features [1, C, H, W])."""
    return {
        "maskmem_features": features.reshape(1, DIM, 1, 1).to(torch.bfloat16),
        PREDICTED_IOU_KEY: torch.tensor([iou]),
        IMAGE_KEY: image if image is not None else features,
    }


def frames_of(memories) -> list[int]:
    return [m.frame_index for m in memories]


def test_settings_refuse_meaningless_values() -> None:
    with pytest.raises(ValueError, match="IoU threshold"):
        SelfSortingSettings(iou_threshold=1.5)
    with pytest.raises(ValueError, match="at least one"):
        SelfSortingSettings(capacity=0)
    with pytest.raises(ValueError, match="temperature"):
        SelfSortingSettings(temperature=0.0)


def test_only_confident_slices_are_admitted() -> None:
    bank = SelfSortingMemoryBank(SelfSortingSettings(iou_threshold=0.7))
    ious = {0: 0.9, 1: 0.5, 2: 0.71, 3: 0.69}
    bank.update({index: output(iou, basis(index)) for index, iou in ious.items()})
    assert frames_of(bank.memories) == [0, 2]
    assert [m.predicted_iou for m in bank.memories] == pytest.approx([0.9, 0.71])


def test_a_slice_without_memory_features_yet_is_judged_once_they_exist() -> None:
    bank = SelfSortingMemoryBank()
    pending = output(0.9, basis(0))
    features = pending.pop("maskmem_features")
    pending["maskmem_features"] = None
    bank.update({4: pending})
    assert bank.memories == []
    pending["maskmem_features"] = features
    bank.update({4: pending})
    assert frames_of(bank.memories) == [4]


def test_the_bank_keeps_the_most_dissimilar_memories_dropping_the_weaker_twin() -> None:
    bank = SelfSortingMemoryBank(SelfSortingSettings(iou_threshold=0.0, capacity=3))
    # Slices 1 and 2 are near twins; 0 and 3 are unlike everything else.
    outputs = {
        0: output(0.8, basis(0)),
        1: output(0.9, basis(1, 2, 0.1)),
        2: output(0.8, basis(1, 3, 0.1)),
        3: output(0.8, basis(5)),
    }
    bank.update(outputs)
    assert frames_of(bank.memories) == [0, 1, 3]  # the twin with the lower IoU (2) went


def test_of_equally_confident_twins_the_older_is_dropped() -> None:
    bank = SelfSortingMemoryBank(SelfSortingSettings(iou_threshold=0.0, capacity=2))
    bank.update({0: output(0.8, basis(0))})
    bank.update({0: bank.memories[0].output, 7: output(0.8, basis(0, 1, 0.05)), 9: output(0.8, basis(4))})
    assert frames_of(bank.memories) == [7, 9]


def test_diversity_is_judged_on_memory_features_not_image_keys() -> None:
    bank = SelfSortingMemoryBank(SelfSortingSettings(iou_threshold=0.0, capacity=2))
    # Same image key everywhere; memory features tell slices apart.
    same_image = basis(8)
    bank.update(
        {
            0: output(0.9, basis(0), same_image),
            1: output(0.8, basis(0, 1, 0.05), same_image),
            2: output(0.9, basis(3), same_image),
        }
    )
    assert frames_of(bank.memories) == [0, 2]


def test_a_recomputed_slice_replaces_its_old_memory() -> None:
    bank = SelfSortingMemoryBank(SelfSortingSettings(iou_threshold=0.5))
    first = {3: output(0.9, basis(0)), 4: output(0.9, basis(1))}
    bank.update(first)
    old = bank.memories[0]
    recomputed = {3: output(0.4, basis(0)), 4: first[4]}  # slice 3 again, now unsure
    bank.update(recomputed)
    assert frames_of(bank.memories) == [4]
    recomputed[3] = output(0.95, basis(2))
    bank.update(recomputed)
    assert frames_of(bank.memories) == [4, 3]
    assert bank.memories[1].output is recomputed[3] and bank.memories[1] is not old


def test_a_slice_that_became_a_prompted_slice_leaves_the_bank() -> None:
    bank = SelfSortingMemoryBank(SelfSortingSettings(iou_threshold=0.0))
    outputs = {0: output(0.9, basis(0)), 1: output(0.9, basis(1))}
    bank.update(outputs)
    del outputs[1]  # upstream moves a corrected slice from non-conditioning to conditioning
    bank.update(outputs)
    assert frames_of(bank.memories) == [0]


def filled_bank(temperature: float, seed: int = 0) -> SelfSortingMemoryBank:
    """Memories on slices 10..14 whose image keys are ever less like e_0 (the current slice)."""
    bank = SelfSortingMemoryBank(SelfSortingSettings(iou_threshold=0.0, capacity=8, temperature=temperature, seed=seed))
    bank.update({10 + n: output(0.9, basis(n + 1), basis(0, n + 1, 0.5 * n)) for n in range(5)})
    return bank


def test_resampling_orders_memories_by_similarity_to_the_current_slice() -> None:
    bank = filled_bank(temperature=1e-3)  # so sharp that the draw is the top of the ranking
    assert frames_of(bank.select(basis(0), slots=3, exclude_index=99)) == [10, 11, 12]
    assert frames_of(bank.select(basis(0), slots=9, exclude_index=99)) == [10, 11, 12, 13, 14]


def test_resampling_never_offers_a_slice_its_own_earlier_memory() -> None:
    bank = filled_bank(temperature=1e-3)
    assert frames_of(bank.select(basis(0), slots=3, exclude_index=10)) == [11, 12, 13]


def test_resampling_favours_similar_slices_and_is_reproducible() -> None:
    draws = [frames_of(filled_bank(temperature=0.1).select(basis(0), 1, exclude_index=99))[0] for _ in range(3)]
    assert len(set(draws)) == 1  # the same seed gives the same draw
    bank = filled_bank(temperature=0.1)
    picks = [frames_of(bank.select(basis(0), 1, exclude_index=99))[0] for _ in range(300)]
    counts = [picks.count(frame) for frame in range(10, 15)]
    assert counts[0] > counts[2] > counts[4]
    assert sum(counts) == 300


def test_a_high_temperature_draws_almost_uniformly() -> None:
    bank = filled_bank(temperature=100.0)
    picks = [frames_of(bank.select(basis(0), 1, exclude_index=99))[0] for _ in range(500)]
    assert all(60 < picks.count(frame) < 140 for frame in range(10, 15))


def test_an_empty_bank_offers_nothing() -> None:
    assert SelfSortingMemoryBank().select(basis(0), slots=6, exclude_index=0) == []
