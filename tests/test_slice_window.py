"""A model that zooms to the prompt sees a window of a large slice around the prompts, at the slice's
own resolution; the mask comes back on the whole slice."""

import numpy as np
from synthetic import make_ct_phantom

from SAMSegmentLib.predictor import VolumePredictor
from SAMSegmentLib.prompts import Prompts
from SAMSegmentLib.registry import MODELS, PromptKind
from SAMSegmentLib.slice_window import SliceWindow, prompt_window
from SAMSegmentLib.volume import Axis


def test_a_slice_no_larger_than_the_input_is_seen_whole():
    assert prompt_window(Prompts(box=(10, 10, 20, 20)), (256, 200), 256, 3.0) is None


def test_a_large_structure_is_seen_whole():
    assert prompt_window(Prompts(box=(50, 50, 450, 300)), (512, 512), 256, 3.0) is None


def test_a_small_box_gets_a_window_of_the_input_size_holding_it_well_inside():
    box = (300.0, 100.0, 320.0, 130.0)
    window = prompt_window(Prompts(box=box), (512, 512), 256, 3.0)
    assert window is not None and window.shape == (256, 256)
    x0, y0, x1, y1 = box
    # at least a third of the box's size on every side, so the model sees what surrounds it
    assert window.x0 + 10 <= x0 and x1 + 10 <= window.x0 + window.width
    assert window.y0 + 10 <= y0 and y1 + 10 <= window.y0 + window.height


def test_the_window_grows_with_the_box_to_context_times_its_extent():
    window = prompt_window(Prompts(box=(200, 200, 300, 260)), (1000, 1000), 256, 3.0)
    assert window is not None and window.height == window.width >= 300
    assert window.x0 <= 200 and 300 <= window.x0 + window.width


def test_a_window_at_the_slice_edge_stays_inside_the_slice():
    window = prompt_window(Prompts(box=(2, 480, 12, 509)), (512, 512), 256, 3.0)
    assert window == SliceWindow(y0=256, x0=0, height=256, width=256)


def test_a_narrow_slice_is_windowed_along_its_long_side_only():
    window = prompt_window(Prompts(box=(400, 50, 420, 70)), (200, 600), 256, 3.0)
    assert window is not None and (window.y0, window.height) == (0, 200) and window.width == 256


def test_nearby_boxes_share_a_window_so_its_embedding_is_reused():
    first = prompt_window(Prompts(box=(300, 200, 330, 230)), (512, 512), 256, 3.0)
    moved = prompt_window(Prompts(box=(302, 201, 333, 231)), (512, 512), 256, 3.0)
    assert first == moved


def test_points_alone_are_windowed_around_their_spread():
    prompts = Prompts()
    prompts.add_point(100, 400)
    window = prompt_window(prompts, (512, 512), 256, 3.0)
    assert (
        window is not None
        and window.x0 <= 100 < window.x0 + window.width
        and window.y0 <= 400 < window.y0 + window.height
    )


def test_prompts_move_into_the_window_and_masks_back_onto_the_slice():
    window = SliceWindow(y0=10, x0=20, height=30, width=40)
    prompts = Prompts(points=[(25.0, 15.0)], labels=[1], box=(22.0, 12.0, 50.0, 30.0))
    moved = window.to_window(prompts)
    assert moved.points == [(5.0, 5.0)] and moved.labels == [1] and moved.box == (2.0, 2.0, 30.0, 20.0)
    image = np.arange(100 * 100).reshape(100, 100)
    assert window.crop(image)[0, 0] == image[10, 20] and window.crop(image).shape == (30, 40)
    mask = window.paste(np.ones((30, 40), bool), (100, 100))
    assert mask.sum() == 1200 and mask[10, 20] and mask[39, 59] and not mask[9, 20] and not mask[10, 60]


def test_models_that_zoom_take_no_mask_prompts():
    """Their logits are over a window that the next prompt need not share."""
    for spec in MODELS.values():
        assert not (spec.zoom_context and spec.accepts(PromptKind.MASK)), spec.name


def test_a_zooming_model_segments_the_window_and_the_whole_slice_and_keeps_the_better_scored(
    zooming_tiny_model, monkeypatch
):
    volume = make_ct_phantom((3, 300, 400))
    predictor = VolumePredictor(zooming_tiny_model)
    predictor.set_volume(volume)
    encoded = []
    encode = zooming_tiny_model.encode
    monkeypatch.setattr(zooming_tiny_model, "encode", lambda image: encoded.append(image.copy()) or encode(image))
    box = Prompts(box=(200.0, 150.0, 220.0, 170.0))
    window, whole = predictor.views(Axis.AXIAL, box)
    assert window is not None and window.shape == (128, 128) and whole is None
    prediction = predictor.predict(Axis.AXIAL, 1, box)
    image = predictor.slice_image(Axis.AXIAL, 1)
    assert len(encoded) == 2
    np.testing.assert_array_equal(encoded[0], window.crop(image))
    np.testing.assert_array_equal(encoded[1], image)
    in_window = predictor._predict_in(Axis.AXIAL, 1, window, box, None, False, False)
    on_slice = predictor._predict_in(Axis.AXIAL, 1, None, box, None, False, False)
    assert in_window.mask.shape == on_slice.mask.shape == prediction.mask.shape == (300, 400)
    outside = np.ones((300, 400), bool)
    outside[window.y0 : window.y0 + window.height, window.x0 : window.x0 + window.width] = False
    assert not in_window.mask[outside].any()
    better = max(in_window, on_slice, key=lambda p: p.score)
    assert prediction.score == better.score and np.array_equal(prediction.mask, better.mask)
    predictor.predict(Axis.AXIAL, 1, Prompts(box=(201.0, 151.0, 221.0, 171.0)))  # the same window: no new encode
    assert len(encoded) == 2


def test_a_zooming_model_sees_only_the_whole_of_a_small_slice(zooming_tiny_model):
    predictor = VolumePredictor(zooming_tiny_model)
    predictor.set_volume(make_ct_phantom())  # 48 x 64 slices, smaller than the 128 px input
    assert predictor.views(Axis.AXIAL, Prompts(box=(10.0, 10.0, 40.0, 30.0))) == [None]


def test_an_image_of_exactly_the_input_size_is_smoothed_as_resampling_would(zooming_tiny_model, monkeypatch):
    """LiteMedSAM fails on a CT's own unsmoothed pixels (see LiteMedSAMModel.native_size_smoothing);
    an image that is resampled to the input is smoothed by that already and left alone."""
    rng = np.random.default_rng(0)
    noise, smaller = rng.random((128, 128)).astype(np.float32), rng.random((100, 120)).astype(np.float32)
    unsmoothed, resampled = zooming_tiny_model.prepare_image(noise)[0], zooming_tiny_model.prepare_image(smaller)[0]
    monkeypatch.setattr(zooming_tiny_model, "native_size_smoothing", 0.5)
    assert float(zooming_tiny_model.prepare_image(noise)[0][0, 0].std()) < 0.8 * float(unsmoothed[0, 0].std())
    np.testing.assert_array_equal(zooming_tiny_model.prepare_image(smaller)[0], resampled)
