"""The engine's facade: open a volume, prompt a slice, propagate."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic import make_ct_phantom

from SAMSegmentLib.errors import PromptError, SAMSegmentError
from SAMSegmentLib.metrics import dice
from SAMSegmentLib.prompts import Prompts
from SAMSegmentLib.propagation import Direction
from SAMSegmentLib.registry import get_spec
from SAMSegmentLib.segmenter import SINGLE_OBJECT, Segmenter
from SAMSegmentLib.volume import Axis


def _organ(volume):  # the phantom's bright ellipsoid
    return volume.array > 100


def _box(mask2d: np.ndarray) -> Prompts:
    ys, xs = np.nonzero(mask2d)
    return Prompts(box=(float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())))


def test_litemedsam_segments_a_slice_and_propagates_through_the_phantom(litemedsam):
    volume = make_ct_phantom()
    organ = _organ(volume)
    seed = int(np.argmax(organ.sum(axis=(1, 2))))
    segmenter = Segmenter.with_model(litemedsam)
    segmenter.set_volume(volume)

    mask = segmenter.segment_slice(Axis.AXIAL, seed, _box(organ[seed])).mask
    assert mask.shape == organ[seed].shape and mask.dtype == bool
    assert dice(mask, organ[seed]) > 0.8

    result = segmenter.propagate(Axis.AXIAL, seed, _box(organ[seed]))
    segmented = result.objects[SINGLE_OBJECT].mask
    assert segmented.shape == volume.array.shape
    assert dice(segmented, organ) > 0.7
    assert np.flatnonzero(segmented.any(axis=(1, 2))).tolist() != [seed]  # it went beyond the seed slice


def test_propagation_stays_inside_its_slice_range(tiny_sam_model):
    volume = make_ct_phantom()
    organ = _organ(volume)
    seed = int(np.argmax(organ.sum(axis=(1, 2))))
    segmenter = Segmenter.with_model(tiny_sam_model)
    segmenter.set_volume(volume)
    result = segmenter.propagate(Axis.AXIAL, seed, _box(organ[seed]), Direction.BOTH, (seed - 1, seed + 1))
    touched = np.flatnonzero(result.objects[SINGLE_OBJECT].mask.any(axis=(1, 2)))
    assert set(touched.tolist()) <= {seed - 1, seed, seed + 1}


def test_bad_calls_get_clear_errors(tiny_sam_model):
    segmenter = Segmenter.with_model(tiny_sam_model)
    with pytest.raises(SAMSegmentError, match="set_volume"):
        segmenter.segment_slice(Axis.AXIAL, 0, Prompts(box=(1, 1, 5, 5)))
    volume = make_ct_phantom()
    segmenter.set_volume(volume)
    with pytest.raises(PromptError, match="range"):
        segmenter.propagate(Axis.AXIAL, 3, Prompts(box=(1, 1, 5, 5)), Direction.BOTH, (5, 8))
    with pytest.raises(PromptError):
        segmenter.segment_slice(Axis.AXIAL, 3, Prompts())
    with pytest.raises(SAMSegmentError, match="no memory"):
        Segmenter(get_spec("litemedsam"), memory_policy="self-sorting")
