"""``samsegment demo``: the main job on the embedded default model, with no arguments: one box per
organ on the shared abdominal CT, propagated through the volume, scored against the reference."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ..atomic import (
    PlannedOutput,
    check_outputs,
    write_text,
    written_together,
)
from ..datasets import DATA_DIR_ENV, load_labelled_case, shared_ct_dir
from ..evaluation import EvaluationSettings, StructureReport, evaluate_structure
from ..imageio import Segment, write_segmentation
from ..predictor import VolumePredictor
from ..volume import Axis
from .common import add_model_arguments, open_model
from .overlay import display_flips, write_overlay_png
from .progress import progress_bar

DEMO_STRUCTURES = ("spleen", "liver", "kidney_right", "kidney_left")
_FILES = ("demo.seg.nrrd", "demo.json", "demo.png")  # in --output-dir


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="segment four organs of the shared abdominal CT from one box each")
    parser.add_argument("--output-dir", type=Path, default=Path("out") / "demo")
    add_model_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    data = shared_ct_dir()
    if not (data / "ct.nii.gz").exists():
        print(f"The demo CT is not at {data}; set {DATA_DIR_ENV} to the folder holding ct.nii.gz and labels.nii.gz.")
        return 1
    check_outputs(
        [PlannedOutput("--output-dir", args.output_dir / name) for name in _FILES],
        inputs=[data / "ct.nii.gz", data / "labels.nii.gz", data / "labels.json", args.checkpoint],
    )
    case = load_labelled_case(data / "ct.nii.gz", data / "labels.nii.gz", data / "labels.json")
    predictor = VolumePredictor(open_model(args))
    predictor.set_volume(case.volume, args.intensity)
    print(
        f"{predictor.model.spec.name} on {data / 'ct.nii.gz'} ({predictor.require_mapping().preset} intensity mapping): "
        "one box per organ from the reference on the slice where it is largest, propagated both ways."
    )
    reports = []
    with progress_bar("organs", total=len(DEMO_STRUCTURES)) as bar:
        for name in DEMO_STRUCTURES:
            reports.append(evaluate_structure(predictor, case.mask(name), name, EvaluationSettings()))
            bar.update(1)
    for report in reports:
        print(
            f"  {report.name:<13} 3D Dice {report.dice_3d:.3f}  slices {min(report.segmented_slices)}-"
            f"{max(report.segmented_slices)} (reference {report.reference_slices[0]}-{report.reference_slices[1]})"
            f"  {report.seconds:5.1f} s"
        )
    segmentation, report_path, png = (args.output_dir / name for name in _FILES)
    index = reports[0].seed_index
    with written_together() as outputs:  # the three files of one run, never mixed with an earlier run's
        masks = [_kept_mask(r) for r in reports]
        write_segmentation(segmentation, case.volume, [Segment(r.name, m) for r, m in zip(reports, masks)], outputs)
        write_text(report_path, json.dumps({r.name: r.to_json() for r in reports}, indent=2), outputs)
        write_overlay_png(
            png,
            predictor.slice_image(Axis.AXIAL, index),
            [m[index] for m in masks],
            flips=display_flips(case.volume, Axis.AXIAL),
            outputs=outputs,
        )
    print(
        f"embedded {predictor.embed_count} slices once each; wrote {segmentation} (open it in 3D Slicer over "
        f"the CT), {report_path} and {png}"
    )
    return 0


def _kept_mask(report: StructureReport) -> np.ndarray:
    assert report.mask is not None, "evaluate_structure keeps the mask; only dataset runs drop masks"
    return report.mask
