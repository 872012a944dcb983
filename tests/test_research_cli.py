"""The research subcommands end to end on a phantom the test writes (tiny random model)."""

import json

import numpy as np
import pytest
import SimpleITK as sitk

from SAMSegmentLib.cli import main
from SAMSegmentLib.research.sitk_images import image_on_grid


@pytest.fixture
def phantom_files(tmp_path):
    from synthetic import make_ct_phantom

    volume = make_ct_phantom()
    labels = (volume.array > 100).astype(np.uint8) * 7
    files = {"image": tmp_path / "ct.nrrd", "labels": tmp_path / "labels.nrrd", "names": tmp_path / "labels.json"}
    sitk.WriteImage(image_on_grid(volume.array, volume), str(files["image"]))
    sitk.WriteImage(image_on_grid(labels, volume), str(files["labels"]))
    files["names"].write_text(json.dumps({"7": "organ"}))
    return volume, files


@pytest.fixture
def tiny_cli_model(monkeypatch):
    """Every research command gets a fresh tiny random SAM instead of downloading weights."""
    from tiny_models import tiny_sam

    for command in ("finetune", "priors", "everything"):
        monkeypatch.setattr(f"SAMSegmentLib.cli.{command}_command.open_model", lambda args: tiny_sam())


@pytest.mark.slow  # trains a decoder end to end
def test_finetune_saves_a_model_with_its_provenance(phantom_files, tiny_cli_model, tmp_path, monkeypatch, capsys):
    _, files = phantom_files
    monkeypatch.setenv("SAMSEGMENT_CACHE_DIR", str(tmp_path / "models"))
    arguments = [
        "finetune", "--image", str(files["image"]), "--label", str(files["labels"]), "--labels-json",
        str(files["names"]), "--structures", "organ", "--epochs", "2", "--val-slices", "6:8", "--name", "organ_tuned",
    ]  # fmt: skip
    assert main(arguments) == 0
    out = capsys.readouterr().out
    assert "organ" in out and "Saved organ_tuned" in out
    record = json.loads((tmp_path / "models" / "finetuned" / "organ_tuned.json").read_text())
    assert record["structures"] == ["organ"] and record["options"]["epochs"] == 2
    assert record["validation"]["split"] == "slices 6:8" and record["validation"]["masks"] == 2
    for boxes in ("jittered_boxes", "tight_boxes"):
        for when in ("before", "after"):
            summary = record["validation"][boxes][when]
            assert set(summary["per_structure"]) == {"organ"} and 0.0 <= summary["mean"] <= 1.0
    assert record["data"][0]["image"] == str(files["image"].resolve()) and len(record["data"][0]["labels_sha256"]) == 64
    assert len(record["training"]["epoch_losses"]) == 2

    assert main(arguments) == 2  # the name is taken now
    assert "exists" in capsys.readouterr().err


def test_finetune_names_structures_that_are_not_labelled(phantom_files, tiny_cli_model, tmp_path, monkeypatch, capsys):
    _, files = phantom_files
    monkeypatch.setenv("SAMSEGMENT_CACHE_DIR", str(tmp_path / "models"))
    code = main([
        "finetune", "--image", str(files["image"]), "--label", str(files["labels"]), "--labels-json",
        str(files["names"]), "--structures", "organ,spleen", "--val-slices", "6:8", "--name", "x",
    ])  # fmt: skip
    assert code == 2 and "Not labelled in any image: spleen. Labelled: organ" in capsys.readouterr().err
    assert not (tmp_path / "models" / "finetuned").exists()


def test_priors_writes_three_volumes_on_the_image_grid(phantom_files, tiny_cli_model, tmp_path, capsys):
    volume, files = phantom_files
    code = main([
        "priors", "--image", str(files["image"]), "--output-dir", str(tmp_path / "priors"), "--slices", "5:7",
        "--points-per-side", "4",
    ])  # fmt: skip
    assert code == 0 and "on 2 slices" in capsys.readouterr().out
    for name in ("sam_prior.nrrd", "sam_boundary.nrrd", "sam_stacked.nrrd"):
        image = sitk.ReadImage(str(tmp_path / "priors" / name))
        assert image.GetSize() == volume.shape_ijk and image.GetOrigin() == pytest.approx(volume.origin)


def test_everything_writes_one_segment_per_structure(phantom_files, tiny_cli_model, tmp_path, capsys):
    _, files = phantom_files
    output = tmp_path / "everything.seg.nrrd"
    code = main([
        "everything", "--image", str(files["image"]), "--slab", "4:6", "--output", str(output), "--png",
        str(tmp_path / "slice.png"), "--points-per-side", "4", "--min-iou", "-1", "--min-stability", "0",
    ])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    written = sitk.ReadImage(str(output))
    names = [written.GetMetaData(key) for key in written.GetMetaDataKeys() if key.endswith("_Name")]
    assert names and f"{len(names)} segments" in printed
    labels = sitk.GetArrayFromImage(written)
    assert labels[4:6].any() and not labels[:4].any() and not labels[6:].any()
    assert (tmp_path / "slice.png").stat().st_size > 0


def test_everything_refuses_a_slab_outside_the_image(phantom_files, tiny_cli_model, tmp_path, capsys):
    _, files = phantom_files
    code = main(
        ["everything", "--image", str(files["image"]), "--slab", "9:30", "--output", str(tmp_path / "o.seg.nrrd")]
    )
    assert code == 2 and "--slab '9:30'" in capsys.readouterr().err
    assert not (tmp_path / "o.seg.nrrd").exists()
