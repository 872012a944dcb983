"""The appearance gate on hand-made embeddings: which pixels look foreign, and what a carried mask keeps.

The grid is 16x16 cells over a 64 px model input, and the slice is 64x64 px, so one cell is 4x4
pixels; feature vectors are one-hot, so which region a cell belongs to is unambiguous.
"""

import numpy as np
import torch

from SAMSegmentLib.models import ImageEmbedding
from SAMSegmentLib.propagation.appearance import ObjectAppearance, remove_foreign_growth

INPUT = 64
OBJECT, SURROUNDINGS, OTHER = 0, 1, 2


def embedding(regions: np.ndarray) -> ImageEmbedding:
    """A 16x16 grid whose cells carry the one-hot feature of their region (OBJECT, SURROUNDINGS, OTHER)."""
    features = torch.nn.functional.one_hot(torch.from_numpy(regions), 4).permute(2, 0, 1)[None].float()
    return ImageEmbedding({"image_embeddings": features}, (64, 64), (64, 64))


def cells_to_pixels(cells: np.ndarray) -> np.ndarray:
    return np.kron(cells, np.ones((4, 4), dtype=cells.dtype))


def seed_slice() -> tuple[np.ndarray, np.ndarray]:
    """An object of 4x4 cells in the middle of its surroundings."""
    regions = np.full((16, 16), SURROUNDINGS)
    regions[6:10, 6:10] = OBJECT
    return regions, cells_to_pixels(regions == OBJECT)


def learn(regions: np.ndarray, mask: np.ndarray, min_cells: int = 8) -> ObjectAppearance | None:
    return ObjectAppearance.learn(
        embedding(regions), mask, INPUT, min_object_cells=min_cells, surrounding_cells=2, neighbours=3
    )


def test_pixels_like_the_surroundings_are_foreign_and_pixels_like_the_object_are_not():
    regions, mask = seed_slice()
    appearance = learn(regions, mask)
    assert appearance is not None
    following = np.full((16, 16), SURROUNDINGS)
    following[5:11, 6:9] = OBJECT  # the object moved and changed shape
    foreign = appearance.foreign(embedding(following))
    assert foreign.shape == (64, 64)
    # Away from the bilinear blend across a cell border: the object's core, and beyond its cells.
    assert not foreign[24:40, 28:32].any()
    far = np.ones((64, 64), bool)
    far[16:48, 20:40] = False
    assert foreign[far].all()


def test_an_object_filling_too_few_cells_has_no_appearance_to_learn():
    regions = np.full((16, 16), SURROUNDINGS)
    regions[7:9, 7:10] = OBJECT  # 6 cells
    assert learn(regions, cells_to_pixels(regions == OBJECT)) is None
    assert learn(regions, cells_to_pixels(regions == OBJECT), min_cells=6) is not None


def test_an_object_filling_the_whole_slice_has_no_surroundings_to_tell_it_from():
    regions = np.full((16, 16), OBJECT)
    assert learn(regions, np.ones((64, 64), bool)) is None


def test_a_third_tissue_is_judged_by_whichever_it_resembles_more():
    regions, mask = seed_slice()
    appearance = learn(regions, mask)
    following = np.full((16, 16), OTHER)  # unlike both: ties are foreign, so nothing new is kept
    assert appearance.foreign(embedding(following)).all()


def test_growth_onto_foreign_pixels_is_removed_but_the_previous_mask_is_never_cut():
    previous = np.zeros((20, 20), bool)
    previous[5:12, 5:12] = True
    mask = previous.copy()
    mask[5:12, 12:18] = True  # grows to the right...
    mask[2:5, 5:12] = True  # ...and upward
    foreign = np.zeros((20, 20), bool)
    foreign[:, 10:] = True  # the right side looks like the surroundings, even where the object was
    kept = remove_foreign_growth(mask, previous, foreign)
    assert kept[previous].all()
    assert not kept[5:12, 12:18].any()
    assert kept[2:5, 5:10].all()


def test_what_is_left_keeps_only_parts_touching_the_previous_mask_with_holes_filled():
    previous = np.zeros((20, 20), bool)
    previous[4:12, 4:12] = True
    mask = previous.copy()
    mask[7:9, 7:9] = False  # a hole
    mask[15:18, 15:18] = True  # an island joined to the object only through foreign pixels
    mask[12:15, 12:15] = True
    foreign = np.zeros((20, 20), bool)
    foreign[12:15, 12:15] = True
    kept = remove_foreign_growth(mask, previous, foreign)
    assert np.array_equal(kept, previous)
