"""Dataset-scale jobs: one function over many cases, one after the other or as Ray tasks, with the
same results in the same order; and ``samsegment priors --image-dir`` over a folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from synthetic import make_ct_phantom

from SAMSegmentLib.cli import main
from SAMSegmentLib.errors import InputImageError
from SAMSegmentLib.research.sitk_images import image_on_grid
from SAMSegmentLib.service.ray_jobs import RayOptions, run_cases

ROOT = Path(__file__).resolve().parents[2]


def square_or_refuse(case: int) -> int:
    if case < 0:
        raise InputImageError(f"case {case} is not an image")
    return case * case


def test_cases_run_in_order_with_progress():
    seen = []
    assert run_cases(square_or_refuse, [3, 1, 2], progress=lambda done, total: seen.append((done, total))) == [9, 1, 4]
    assert seen == [(1, 3), (2, 3), (3, 3)]


@pytest.mark.ray
def test_cases_as_ray_tasks_give_the_same_results_and_errors():
    ray = pytest.importorskip("ray")
    path = os.pathsep.join(
        [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "service"), os.environ.get("PYTHONPATH", "")]
    )
    ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": {"PYTHONPATH": path}})
    try:
        seen = []
        cases = [5, 0, 7, 2, 9, 1]
        results = run_cases(
            square_or_refuse, cases, RayOptions(enabled=True, cpus_per_case=0.5), lambda done, total: seen.append(done)
        )
        assert results == [case * case for case in cases]  # in the order given, whatever finished first
        assert seen[0] == 0 and seen[-1] == len(cases) and seen == sorted(seen)
        with pytest.raises(InputImageError, match="case -1 is not an image"):  # its own error, as without Ray
            run_cases(square_or_refuse, [1, -1, 2], RayOptions(enabled=True, cpus_per_case=0.5))
        assert ray.is_initialized()  # a cluster it did not start is left running
    finally:
        ray.shutdown()


def test_priors_over_a_folder_write_each_case_and_one_report(tmp_path, monkeypatch, capsys):
    from tiny_models import tiny_sam

    monkeypatch.setattr("SAMSegmentLib.cli.priors_command.open_model", lambda args: tiny_sam())
    folder = tmp_path / "cases"
    folder.mkdir()
    for name, seed in (("a.nrrd", 0), ("b.nii.gz", 1)):
        volume = make_ct_phantom(seed=seed)
        sitk.WriteImage(image_on_grid(volume.array, volume), str(folder / name))
    (folder / "notes.txt").write_text("not an image")
    output = tmp_path / "priors"
    code = main(["priors", "--image-dir", str(folder), "--output-dir", str(output), "--slices", "5:6",
                 "--points-per-side", "4"])  # fmt: skip
    assert code == 0 and "2 cases" in capsys.readouterr().out
    report = json.loads((output / "priors_report.json").read_text())
    assert list(report["cases"]) == ["a", "b"] and report["ray"] is False
    for case in ("a", "b"):
        assert report["cases"][case]["slices"] == 1
        assert (output / case / "sam_prior.nrrd").exists()
    assert np.isfinite(sitk.GetArrayFromImage(sitk.ReadImage(str(output / "a" / "sam_prior.nrrd")))).all()


@pytest.mark.ray
@pytest.mark.realweights
def test_evaluate_a_dataset_as_ray_tasks_gives_the_same_report(tmp_path):
    """``samsegment evaluate --dataset --ray``: each case a Ray task opening the real LiteMedSAM
    itself; the scores are those of the same run on this machine."""
    ray = pytest.importorskip("ray")
    for name, seed in (("case-a", 0), ("case-b", 1)):
        volume = make_ct_phantom(shape=(6, 48, 64), seed=seed)
        folder = tmp_path / "data" / name
        folder.mkdir(parents=True)
        sitk.WriteImage(image_on_grid(volume.array, volume), str(folder / "ct.nrrd"))
        sitk.WriteImage(image_on_grid((volume.array > 100).astype(np.uint8), volume), str(folder / "labels.nrrd"))
        (folder / "labels.json").write_text(json.dumps({"1": "organ"}))
    command = ["evaluate", "--dataset", str(tmp_path / "data"), "--clicks", "0", "--backend", "torch"]
    assert main([*command, "--report", str(tmp_path / "here.json")]) == 0
    path = os.pathsep.join([str(ROOT), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])
    ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": {"PYTHONPATH": path}})
    try:
        assert main([*command, "--ray", "--report", str(tmp_path / "ray.json")]) == 0
    finally:
        ray.shutdown()
    here, on_ray = (json.loads((tmp_path / f"{name}.json").read_text())["cases"] for name in ("here", "ray"))
    assert list(on_ray) == list(here) == ["case-a", "case-b"]
    for case in here:
        box_here = here[case]["structures"]["organ"]["box"]
        assert box_here["dice_3d"] > 0.5
        assert on_ray[case]["structures"]["organ"]["box"]["dice_3d"] == pytest.approx(box_here["dice_3d"], abs=1e-6)
