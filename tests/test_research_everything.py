"""Automatic segmentation from a prompt grid (shared by prior maps) and "segment everything"."""

import dataclasses

import numpy as np
import pytest
import torch
from torchvision.ops import box_iou

from SAMSegmentLib.errors import CancelledError, PromptError
from SAMSegmentLib.metrics import dice
from SAMSegmentLib.predictor import VolumePredictor
from SAMSegmentLib.propagation.types import CancelToken
from SAMSegmentLib.research.automatic import GridOptions, SliceMasks, box_grid, generate_masks, point_grid
from SAMSegmentLib.research.decoding import decode_batch
from SAMSegmentLib.research.everything import as_segments, link_slices, segment_everything
from SAMSegmentLib.research.finetune import mask_box
from SAMSegmentLib.volume import Axis

KEEP_ALL = GridOptions(points_per_side=6, min_predicted_iou=-1.0, min_stability=0.0, nms_iou=1.0, min_area_px=1)


@pytest.mark.parametrize(("scale", "overlap"), [(0.5, 0.5), (0.25, 0.5), (0.3, 0.2), (1.0, 0.0)])
def test_each_box_scale_tiles_the_whole_slice_with_the_asked_overlap(scale, overlap):
    height, width = 50, 70
    boxes = box_grid((height, width), (scale,), overlap)
    covered = np.zeros((height, width), dtype=bool)
    for x0, y0, x1, y1 in boxes:
        assert 0 <= x0 < x1 <= width - 1 and 0 <= y0 < y1 <= height - 1
        covered[int(np.floor(y0)) : int(np.ceil(y1)) + 1, int(np.floor(x0)) : int(np.ceil(x1)) + 1] = True
    assert covered.all()
    xs = np.unique(boxes[:, 0])
    if len(xs) > 1:
        shared = 1.0 - (xs[1] - xs[0]) / (scale * width)
        assert shared >= overlap - 1e-9


def test_point_grid_lies_on_the_slice():
    points = point_grid((40, 60), 8)
    assert points.shape == (64, 2)
    assert (points[:, 0] > 0).all() and (points[:, 0] < 60).all()
    assert (points[:, 1] > 0).all() and (points[:, 1] < 40).all()


def test_invalid_grid_options_are_refused():
    with pytest.raises(ValueError, match="scales"):
        GridOptions(box_scales=(0.0,))
    with pytest.raises(ValueError, match="overlap"):
        GridOptions(box_overlap=1.0)


@pytest.fixture(scope="module")
def phantom_predictor(tiny_sam_model):
    from synthetic import make_ct_phantom

    predictor = VolumePredictor(tiny_sam_model)
    predictor.set_volume(make_ct_phantom())
    return predictor


def test_batched_decoding_matches_the_engine_decoder_prompt_by_prompt(phantom_predictor):
    model = phantom_predictor.model
    embedding = phantom_predictor.embed(Axis.AXIAL, 6)
    boxes = np.array([[5.0, 6.0, 30.0, 40.0], [20.0, 10.0, 60.0, 45.0]])
    points = np.array([[12.0, 20.0], [40.0, 30.0]])
    with torch.inference_mode():
        box_logits, box_scores = decode_batch(model, embedding, boxes_xyxy=boxes)
        point_logits, point_scores = decode_batch(model, embedding, points_xy=points, multimask=True)
    for number, box in enumerate(boxes):
        single = model.decode(embedding, None, None, box, None, multimask=False)
        assert torch.allclose(box_logits[number], single.low_res_logits, atol=1e-4)
        assert torch.allclose(box_scores[number], single.scores, atol=1e-5)
    for number, point in enumerate(points):
        single = model.decode(embedding, point[None], np.array([1]), None, None, multimask=True)
        assert torch.allclose(point_logits[number], single.low_res_logits, atol=1e-4)
        assert point_scores[number].shape == (3,)
    with pytest.raises(ValueError, match="either points or boxes"):
        decode_batch(model, embedding, points_xy=points, boxes_xyxy=boxes)


def test_grid_segmentation_runs_on_an_onnx_runtime_model_like_on_torch(phantom_predictor, graph_root):
    pytest.importorskip("onnxruntime")
    from SAMSegmentLib.backends import open_backend

    onnx_model = open_backend(phantom_predictor.model, "onnxruntime", graph_root=graph_root)
    predictor = VolumePredictor(onnx_model)
    predictor.set_volume(phantom_predictor.volume)
    options = dataclasses.replace(KEEP_ALL, points_per_side=3)
    on_onnx = generate_masks(onnx_model, predictor.embed(Axis.AXIAL, 6), options)
    on_torch = generate_masks(phantom_predictor.model, phantom_predictor.embed(Axis.AXIAL, 6), options)
    assert len(on_onnx) == len(on_torch) > 0
    assert np.allclose(on_onnx.predicted_iou, on_torch.predicted_iou, atol=1e-3)
    assert np.mean(on_onnx.masks != on_torch.masks) < 0.01


def test_kept_masks_satisfy_every_filter(phantom_predictor):
    embedding = phantom_predictor.embed(Axis.AXIAL, 6)
    everything = generate_masks(phantom_predictor.model, embedding, KEEP_ALL)
    assert everything.prompt_count == 36 and len(everything) > 0
    # Thresholds between the observed scores, so that the filters have something to remove.
    options = dataclasses.replace(
        KEEP_ALL,
        min_predicted_iou=float(np.median(everything.predicted_iou)),
        min_stability=float(np.quantile(everything.stability, 0.25)),
        nms_iou=0.5,
        min_area_px=20,
    )
    kept = generate_masks(phantom_predictor.model, embedding, options)
    assert 0 < len(kept) < len(everything)
    assert (kept.predicted_iou >= options.min_predicted_iou).all()
    assert (kept.stability >= options.min_stability).all()
    assert (kept.masks.reshape(len(kept), -1).sum(1) >= options.min_area_px).all()
    assert (np.diff(kept.predicted_iou) <= 0).all()
    for mask, box in zip(kept.masks, kept.boxes):
        assert np.array_equal(mask_box(mask), box)
    overlaps = box_iou(torch.as_tensor(kept.boxes), torch.as_tensor(kept.boxes)).numpy()
    assert (overlaps[~np.eye(len(kept), dtype=bool)] <= options.nms_iou + 1e-6).all()


def test_nothing_passes_an_impossible_threshold(phantom_predictor):
    embedding = phantom_predictor.embed(Axis.AXIAL, 6)
    none = generate_masks(phantom_predictor.model, embedding, dataclasses.replace(KEEP_ALL, min_predicted_iou=99.0))
    assert len(none) == 0 and none.masks.shape == (0, 48, 64) and none.boxes.shape == (0, 4)


def test_litemedsam_box_grid_finds_the_organ(litemedsam):
    from synthetic import make_ct_phantom

    volume = make_ct_phantom()
    predictor = VolumePredictor(litemedsam)
    predictor.set_volume(volume)
    index = 6
    options = GridOptions(box_scales=(0.6,))  # nine boxes: the centre one holds the whole organ
    found = generate_masks(litemedsam, predictor.embed(Axis.AXIAL, index), options)
    organ = volume.array[index] > 100
    assert found.prompt_count == 9
    assert max(dice(mask, organ) for mask in found.masks) > 0.85


def _slice_masks(masks: list[np.ndarray], scores: list[float]) -> SliceMasks:
    stacked = np.stack(masks) if masks else np.zeros((0, 20, 20), dtype=bool)
    boxes = np.stack([mask_box(mask) for mask in masks]) if masks else np.zeros((0, 4))
    return SliceMasks(stacked, np.array(scores), np.ones(len(masks)), boxes, prompt_count=1)


def _square(x0: int, y0: int, size: int) -> np.ndarray:
    mask = np.zeros((20, 20), dtype=bool)
    mask[y0 : y0 + size, x0 : x0 + size] = True
    return mask


def test_overlapping_masks_of_consecutive_slices_become_one_object():
    per_slice = [
        (3, _slice_masks([_square(2, 2, 6), _square(12, 12, 5)], [0.9, 0.8])),
        (4, _slice_masks([_square(12, 12, 5), _square(3, 2, 6)], [0.7, 0.95])),  # both moved or kept
        (5, _slice_masks([_square(3, 3, 6), _square(14, 1, 4)], [0.85, 0.6])),  # a new one appears
        (7, _slice_masks([_square(3, 3, 6)], [0.9])),  # after a gap: a new object
    ]
    objects = link_slices(per_slice, link_iou=0.5)
    slices = sorted(sorted(item.masks) for item in objects)
    assert slices == [[3, 4], [3, 4, 5], [5], [7]]
    first = next(item for item in objects if sorted(item.masks) == [3, 4, 5])
    assert first.scores == [0.9, 0.95, 0.85]
    assert first.voxels == 36 * 3


def test_low_overlap_does_not_link():
    per_slice = [(0, _slice_masks([_square(0, 0, 6)], [0.9])), (1, _slice_masks([_square(4, 4, 6)], [0.9]))]
    assert len(link_slices(per_slice, link_iou=0.5)) == 2


def test_slab_objects_become_segments_on_their_slices(phantom_predictor):
    result = segment_everything(phantom_predictor, Axis.AXIAL, 4, 6, dataclasses.replace(KEEP_ALL, points_per_side=4))
    assert sorted(result.masks_per_slice) == [4, 5, 6]
    assert sum(len(item.masks) for item in result.objects) == sum(result.masks_per_slice.values())
    segments = as_segments(result, phantom_predictor.volume.array.shape, limit=3)
    assert len(segments) == min(3, len(result.objects))
    sizes = [int(segment.mask.sum()) for segment in segments]
    assert sizes == sorted(sizes, reverse=True)
    for segment in segments:
        assert not segment.mask[:4].any() and not segment.mask[7:].any()


def test_segment_everything_checks_the_slab_and_honours_cancel(phantom_predictor):
    with pytest.raises(PromptError, match="outside the volume"):
        segment_everything(phantom_predictor, Axis.AXIAL, 10, 12)
    with pytest.raises(PromptError, match="empty"):
        segment_everything(phantom_predictor, Axis.AXIAL, 5, 4)
    cancel = CancelToken()
    cancel.cancel()
    with pytest.raises(CancelledError):
        segment_everything(phantom_predictor, Axis.AXIAL, 4, 6, cancel=cancel)
