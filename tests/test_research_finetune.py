"""Mask-decoder fine-tuning: frozen encoders, cached embeddings, Dice before/after, saved models."""

import json

import numpy as np
import pytest
import torch

from SAMSegmentLib.checkpoints import STATE_CACHED, CheckpointStore, sha256_of
from SAMSegmentLib.errors import CancelledError, SAMSegmentError
from SAMSegmentLib.models import load_model
from SAMSegmentLib.predictor import VolumePredictor
from SAMSegmentLib.propagation.types import CancelToken
from SAMSegmentLib.registry import get_spec
from SAMSegmentLib.research.finetune import (
    FinetuneOptions,
    ValidationSplit,
    case_label_values,
    embed_labelled_slices,
    find_finetuned,
    finetune_decoder,
    finetune_on_volumes,
    jittered_boxes,
    label_values,
    list_finetuned_models,
    mask_box,
    save_finetuned,
)
from SAMSegmentLib.volume import Axis


def _organ_labels(volume) -> np.ndarray:
    return (volume.array > 100).astype(np.uint8) * 3


@pytest.fixture
def phantom_slices():
    """A fresh tiny SAM (training changes it) and the phantom's labelled slices, split 6:8."""
    from synthetic import make_ct_phantom
    from tiny_models import tiny_sam

    model = tiny_sam()
    volume = make_ct_phantom()
    predictor = VolumePredictor(model)
    predictor.set_volume(volume)
    slices = embed_labelled_slices(predictor, _organ_labels(volume), {"organ": 3}, Axis.AXIAL, case=0)
    split = ValidationSplit(slices=range(6, 8))
    training = [item for item in slices if not split.holds_out(0, item.index)]
    validation = [item for item in slices if split.holds_out(0, item.index)]
    return model, predictor, training, validation


def test_slices_with_the_structure_are_embedded_once_each(phantom_slices):
    _, predictor, training, validation = phantom_slices
    indices = sorted(item.index for item in training + validation)
    labels = _organ_labels(predictor.volume)
    assert indices == [k for k in range(labels.shape[0]) if (labels[k] == 3).sum() >= 10]
    assert predictor.embed_count == len(indices)
    assert [item.index for item in validation] == [6, 7]
    assert all(item.structures == ["organ"] and item.masks.shape == (1, 48, 64) for item in training)


@pytest.mark.slow  # trains for several epochs
def test_training_changes_only_the_mask_decoder_and_raises_validation_dice(phantom_slices):
    model, _, training, validation = phantom_slices
    before = {name: value.clone() for name, value in model.network.state_dict().items()}
    report = finetune_decoder(model, training, validation, FinetuneOptions(epochs=6, learning_rate=1e-3))
    after = model.network.state_dict()
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed and all(name.startswith("mask_decoder.") for name in changed)
    assert report.epoch_losses[-1] < report.epoch_losses[0]
    # A random decoder fills boxes arbitrarily; a trained one learns the organ inside the box.
    assert report.after.per_structure["organ"] > report.before.per_structure["organ"] + 0.2
    assert report.tight_after.mean > report.tight_before.mean + 0.2
    assert report.training_masks == len(training) and report.validation_masks == 2
    assert not any(parameter.requires_grad for parameter in model.network.parameters())


def test_a_model_running_in_onnx_runtime_trains_its_torch_decoder(phantom_slices, graph_root):
    pytest.importorskip("onnxruntime")
    from SAMSegmentLib.backends import open_backend

    model, _, training, validation = phantom_slices
    onnx_model = open_backend(model, "onnxruntime", graph_root=graph_root)
    before = model.network.mask_decoder.iou_token.weight.clone()
    report = finetune_decoder(onnx_model, training, validation, FinetuneOptions(epochs=1, learning_rate=1e-3))
    assert not torch.equal(model.network.mask_decoder.iou_token.weight, before)
    assert len(report.epoch_losses) == 1


def test_training_needs_both_sets_and_can_be_cancelled(phantom_slices):
    model, _, training, validation = phantom_slices
    with pytest.raises(SAMSegmentError, match="validation"):
        finetune_decoder(model, training, [], FinetuneOptions(epochs=1))
    cancel = CancelToken()
    cancel.cancel()
    with pytest.raises(CancelledError):
        finetune_decoder(model, training, validation, FinetuneOptions(epochs=1), cancel=cancel)
    with pytest.raises(SAMSegmentError, match="epoch"):
        FinetuneOptions(epochs=0)


def test_jittered_boxes_stay_near_the_mask_and_on_the_slice():
    mask = np.zeros((30, 40), dtype=bool)
    mask[10:20, 5:25] = True
    assert np.array_equal(mask_box(mask), [5, 10, 24, 19])
    rng = np.random.default_rng(0)
    boxes = np.concatenate([jittered_boxes(mask[None], 6.0, rng) for _ in range(200)])
    assert (np.abs(boxes - [5, 10, 24, 19]) <= 6.0 + 1e-9).all()
    assert (boxes >= 0).all() and (boxes[:, 2] <= 39).all() and (boxes[:, 3] <= 29).all()
    assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
    assert boxes.std(axis=0).min() > 2.0
    tiny = np.zeros((30, 40), dtype=bool)
    tiny[0, 39] = True  # a one-pixel mask in the corner: the box still has width and height
    corner = jittered_boxes(tiny[None], 6.0, np.random.default_rng(1))[0]
    assert corner[2] - corner[0] >= 1.0 and corner[3] - corner[1] >= 1.0


@pytest.mark.slow  # embeds whole volumes and trains
def test_whole_volumes_are_split_into_training_and_validation_slices():
    from synthetic import make_ct_phantom
    from tiny_models import tiny_sam

    from SAMSegmentLib.datasets import LabelledCase

    cases = []
    for seed in (0, 1):
        volume = make_ct_phantom(seed=seed)
        cases.append(LabelledCase(volume, _organ_labels(volume), {3: "organ"}))
    stages = []
    run = finetune_on_volumes(
        tiny_sam(),
        cases,
        ["organ"],
        ValidationSplit(cases=frozenset({1})),
        FinetuneOptions(epochs=1),
        progress=lambda done, total, stage="": stages.append(stage),
    )
    assert {item.case for item in run.training} == {0} and {item.case for item in run.validation} == {1}
    assert run.report.training_masks == len(run.training) == 9 and run.report.validation_masks == 9
    assert list(dict.fromkeys(stages)) == ["Embedding image 0", "Embedding image 1", "Training the mask decoder"]
    with pytest.raises(SAMSegmentError, match="Not labelled in any image: liver"):
        case_label_values(["organ", "liver"], cases)


def test_structures_are_found_by_name_or_value():
    names = {1: "spleen", 5: "liver"}
    assert label_values(names, ["liver", "1"]) == {"liver": 5, "1": 1}
    with pytest.raises(SAMSegmentError, match="Labelled structures: liver, spleen"):
        label_values(names, ["kidney"])
    assert label_values(names, ["kidney", "liver"], missing_ok=True) == {"liver": 5}


def test_split_by_case_and_by_slices():
    split = ValidationSplit(slices=range(15, 30), cases=frozenset({2}))
    assert split.holds_out(0, 15) and not split.holds_out(0, 14) and split.holds_out(2, 0)
    assert split.describe() == "slices 15:30 and cases 2"
    with pytest.raises(SAMSegmentError, match="Hold out"):
        ValidationSplit()


@pytest.fixture
def store(tmp_path):
    return CheckpointStore(tmp_path / "checkpoints")


@pytest.mark.slow  # trains, saves and loads a model
def test_a_saved_model_is_listed_and_loads_with_its_weights(store):
    base = load_model(get_spec("litemedsam"), torch.device("cpu"))
    with torch.no_grad():
        base.network.mask_decoder.iou_token.weight.add_(0.5)  # stands in for training
    spec = save_finetuned(base, "liver_decoder", {"structures": ["liver"], "epochs": 3}, store)

    assert [listed.name for listed in list_finetuned_models(store)] == ["liver_decoder"]
    assert find_finetuned("liver_decoder", store) == spec and find_finetuned("other", store) is None
    assert spec.family == base.spec.family and spec.prompts == base.spec.prompts and not spec.embedded
    assert spec.extra["base"] == "litemedsam" and store.state(spec) == STATE_CACHED
    path = store.path_for(spec)
    assert path == store.cache_dir / "finetuned" / "liver_decoder.pth" and sha256_of(path) == spec.sha256

    for loaded in (
        load_model(spec, torch.device("cpu"), store=store),
        load_model(spec, torch.device("cpu"), checkpoint=path),
    ):
        for name, value in base.network.state_dict().items():
            assert torch.equal(loaded.network.state_dict()[name], value), name
    record = json.loads((store.cache_dir / "finetuned" / "liver_decoder.json").read_text())
    assert record["base_model"] == "litemedsam" and record["base_sha256"] == get_spec("litemedsam").sha256
    assert record["structures"] == ["liver"] and record["epochs"] == 3 and record["sha256"] == spec.sha256


def test_names_of_built_in_and_existing_models_are_refused(store, tiny_sam_model):
    with pytest.raises(SAMSegmentError, match="built-in"):
        save_finetuned(tiny_sam_model, "litemedsam", {}, store)
    with pytest.raises(SAMSegmentError, match="cannot name"):
        save_finetuned(tiny_sam_model, "../escape", {}, store)
    save_finetuned(tiny_sam_model, "mine", {"structures": []}, store)
    first = (store.cache_dir / "finetuned" / "mine.pth").read_bytes()
    with pytest.raises(SAMSegmentError, match="exists"):
        save_finetuned(tiny_sam_model, "mine", {}, store)
    assert (store.cache_dir / "finetuned" / "mine.pth").read_bytes() == first
    save_finetuned(tiny_sam_model, "mine", {"structures": []}, store, overwrite=True)
    assert not list((store.cache_dir / "finetuned").glob("*partial*"))


def test_broken_provenance_files_are_skipped(store, tiny_sam_model):
    save_finetuned(tiny_sam_model, "good", {"structures": []}, store)
    folder = store.cache_dir / "finetuned"
    (folder / "broken.json").write_text("{not json")
    (folder / "renamed.json").write_text((folder / "good.json").read_text())  # names another model
    assert [spec.name for spec in list_finetuned_models(store)] == ["good"]
