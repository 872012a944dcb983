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


def lung_and_abdomen_ct():
    """A CT with soft tissue (40 HU) on the left half and lung (-850 HU) on the right, a 30 HU
    nodule in the lung."""
    array = np.full((6, 64, 64), 40, dtype=np.int16)
    array[:, :, 32:] = -850
    array[:, 28:36, 44:52] = 30
    array[:, :2, :2] = -1024  # air outside the body
    return Volume(array, spacing=(1.0, 1.0, 2.0), modality="CT")


def test_auto_on_ct_adapts_to_the_prompted_region():
    volume = lung_and_abdomen_ct()
    from SAMSegmentLib.intensity import AIR_SHARE_FOR_WIDE_MAPPING

    nodule_box = volume.array[3, 24:40, 40:56]  # mostly lung around the nodule
    organ_box = volume.array[3, 20:40, 4:24]
    assert np.mean(nodule_box < -160) >= AIR_SHARE_FOR_WIDE_MAPPING
    assert mapping_for(volume, "auto", nodule_box).preset == "percentile"
    assert mapping_for(volume, "auto", organ_box).preset == "soft_tissue"
    assert mapping_for(volume, "auto").preset == "soft_tissue"  # before any prompt: today's choice
    mr = Volume(np.abs(volume.array).astype(np.float32), modality="MR")
    assert mapping_for(mr, "auto", mr.array[3, 20:40, 4:24]).preset == "percentile"  # never a CT window


def test_auto_on_ct_offers_the_bone_window_for_a_bright_prompt():
    from SAMSegmentLib.intensity import BRIGHT_SHARE_FOR_BONE_WINDOW, ct_auto_preset, ct_auto_presets

    tissue = np.full(100, 40.0)
    bright = tissue.copy()
    bright[: int(100 * BRIGHT_SHARE_FOR_BONE_WINDOW)] = 600.0  # cortical bone, or contrast
    assert ct_auto_presets(bright) == ("soft_tissue", "bone")
    assert ct_auto_preset(bright) == "soft_tissue"  # without a model to judge: the first
    assert ct_auto_presets(bright[1:]) == ("soft_tissue",)  # just under the share
    assert ct_auto_presets(tissue) == ("soft_tissue",)
    assert ct_auto_presets(np.full(10, -850.0)) == ("percentile",)


@pytest.mark.parametrize(("soft", "bone", "kept"), [(0.60, 0.90, "bone"), (0.80, 0.82, "soft_tissue")])
def test_the_bone_window_is_kept_only_where_the_model_is_surer_of_it(tiny_sam_model, monkeypatch, soft, bone, kept):
    import dataclasses

    from SAMSegmentLib.predictor import VolumePredictor
    from SAMSegmentLib.prompts import Prompts

    array = np.full((4, 32, 32), 40, dtype=np.int16)
    array[:, 10:20, 10:20] = 700  # a bone filling the box
    predictor = VolumePredictor(tiny_sam_model)
    predictor.set_volume(Volume(array, modality="CT"))
    predict = predictor.predict
    scores = {"soft_tissue": soft, "bone": bone}

    def scored(*args, **kwargs):  # the model's predicted quality, as if it were surer under one window
        return dataclasses.replace(predict(*args, **kwargs), score=scores[predictor.mapping.preset])

    monkeypatch.setattr(predictor, "predict", scored)
    assert predictor.choose_intensity("axial", 2, Prompts(box=(8, 8, 21, 21))).preset == kept
    assert predictor.choose_intensity("axial", 2, Prompts(box=(0, 0, 31, 31))).preset == "soft_tissue"  # mostly tissue


def test_the_predictor_decides_auto_at_the_prompt_and_keeps_forced_presets(tiny_sam_model):
    from SAMSegmentLib.predictor import VolumePredictor
    from SAMSegmentLib.prompts import Prompts

    volume = lung_and_abdomen_ct()
    predictor = VolumePredictor(tiny_sam_model)
    predictor.set_volume(volume)
    assert predictor.mapping.preset == "soft_tissue"
    assert predictor.choose_intensity("axial", 3, Prompts(box=(40, 24, 55, 39))).preset == "percentile"
    lung_key = predictor.cache_key("axial", 3)
    assert predictor.choose_intensity("axial", 3, Prompts(box=(4, 20, 23, 39))).preset == "soft_tissue"
    assert predictor.cache_key("axial", 3) != lung_key  # embeddings are kept per mapping
    points = Prompts()
    points.add_point(48, 32)
    assert predictor.choose_intensity("axial", 3, points).preset == "percentile"  # the region around the point

    predictor.set_volume(volume, "lung")
    assert predictor.choose_intensity("axial", 3, Prompts(box=(4, 20, 23, 39))).preset == "lung"


def test_a_propagation_decides_auto_at_its_seed_and_keeps_it(tiny_sam_model):
    from SAMSegmentLib.predictor import VolumePredictor
    from SAMSegmentLib.prompts import Prompts
    from SAMSegmentLib.propagation import MaskCarryPropagation, ObjectPrompts, PropagationRequest, StopRule
    from SAMSegmentLib.volume import Axis

    predictor = VolumePredictor(tiny_sam_model)
    predictor.set_volume(lung_and_abdomen_ct())
    request = PropagationRequest(Axis.AXIAL, 3, [ObjectPrompts("nodule", Prompts(box=(40, 24, 55, 39)))])
    MaskCarryPropagation(predictor, request, StopRule.keep_going()).run()
    assert predictor.mapping.preset == "percentile"
    # Every slice was embedded once, with the mapping decided at the seed.
    assert predictor.embed_count == 6 and all(predictor.is_embedded(Axis.AXIAL, k) for k in range(6))


def mr_with_a_small_bright_lesion():
    """MR-like tissue about 500 with a lesion at 900 filling 0.1% of the volume: above its 99.5th percentile."""
    rng = np.random.default_rng(3)
    array = np.zeros((10, 40, 40), dtype=np.float32)
    array[:, 5:35, 5:35] = rng.normal(500, 30, (10, 30, 30))
    array[5, 18:22, 18:22] = rng.normal(900, 20, (4, 4))
    return Volume(array, modality="MR")


def test_auto_on_mr_widens_the_percentiles_to_a_prompt_they_clip():
    from SAMSegmentLib.intensity import CLIPPED_SHARE_FOR_WIDER_RANGE, widened_to_prompt

    volume = mr_with_a_small_bright_lesion()
    start = mapping_for(volume)
    lesion = volume.array[5, 18:22, 18:22].reshape(-1)
    assert np.mean(lesion > start.high) > CLIPPED_SHARE_FOR_WIDER_RANGE
    widened = widened_to_prompt(start, lesion)
    assert widened.preset == "percentile_widened" and widened.low == start.low
    assert widened.high == pytest.approx(np.percentile(lesion, 99.5))
    assert np.sum(widened.apply(lesion) >= 1.0) <= 1 < np.sum(start.apply(lesion) >= 1.0)  # no longer clipped
    assert mapping_for(volume, "auto", lesion) == widened  # what auto gives at that prompt
    tissue = volume.array[5, 8:14, 8:14].reshape(-1)
    assert widened_to_prompt(start, tissue) is start
    assert widened_to_prompt(start, np.array([])) is start


def test_the_predictor_widens_auto_on_mr_at_the_prompt_and_never_a_forced_preset(tiny_sam_model):
    from SAMSegmentLib.predictor import VolumePredictor
    from SAMSegmentLib.prompts import Prompts

    volume = mr_with_a_small_bright_lesion()
    predictor = VolumePredictor(tiny_sam_model)
    predictor.set_volume(volume)
    start = predictor.mapping
    assert predictor.choose_intensity("axial", 5, Prompts(box=(18, 18, 21, 21))).preset == "percentile_widened"
    assert predictor.choose_intensity("axial", 5, Prompts(box=(6, 6, 12, 12))) == start  # decided afresh
    predictor.set_volume(volume, "percentile")
    assert predictor.choose_intensity("axial", 5, Prompts(box=(18, 18, 21, 21))) == start
