import numpy as np
import pytest

from SAMSegmentLib.intensity import CT_WINDOWS, IntensityMapping, looks_like_ct, mapping_for
from SAMSegmentLib.volume import Volume


def test_ct_gets_the_soft_tissue_window_by_default(ct_phantom):
    assert looks_like_ct(ct_phantom)
    mapping = mapping_for(ct_phantom)
    level, width = CT_WINDOWS["soft_tissue"]
    assert mapping.preset == "soft_tissue"
    assert (mapping.low, mapping.high) == (level - width / 2, level + width / 2)
    scaled = mapping.apply(np.array([-1000, 40, 1000]))
    assert scaled.tolist() == [0.0, 0.5, 1.0]


def test_every_slice_is_scaled_by_the_same_volume_wide_mapping(ct_phantom):
    mapping = mapping_for(ct_phantom)
    # The same HU value maps to the same intensity whichever slice it sits in.
    a = mapping.apply(ct_phantom.array[0])[ct_phantom.array[0] == ct_phantom.array[0].max()]
    b = mapping.apply(np.array([ct_phantom.array[0].max()]))
    assert np.allclose(a, b)


def test_mr_like_volume_uses_robust_percentiles_ignoring_background():
    rng = np.random.default_rng(1)
    array = np.zeros((10, 40, 40), dtype=np.float32)
    array[:, 10:30, 10:30] = rng.normal(500, 50, (10, 20, 20))
    array[5, 20, 20] = 1e6  # a single hot voxel must not compress the scale
    volume = Volume(array, modality="MR")
    assert not looks_like_ct(volume)
    mapping = mapping_for(volume)
    assert mapping.preset == "percentile"
    assert 300 < mapping.low < 450 and 550 < mapping.high < 700


def test_named_presets_and_bad_input():
    volume = Volume(np.linspace(-1000, 1000, 1000).reshape(10, 10, 10), modality="CT")
    assert mapping_for(volume, "lung").preset == "lung"
    with pytest.raises(ValueError, match="Unknown intensity preset"):
        mapping_for(volume, "rainbow")
    with pytest.raises(ValueError, match="positive"):
        IntensityMapping.window(0, 0)
