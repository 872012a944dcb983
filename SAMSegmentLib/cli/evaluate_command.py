"""``samsegment evaluate``: prompt each reference structure as a protocol says, propagate, score."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..atomic import PlannedOutput, check_outputs, write_text, written_together
from ..datasets import load_labelled_case
from ..evaluation import EvaluationSettings, evaluate_structure
from ..evaluation.plot import PLOT_SUFFIXES, plot_click_curves
from ..evaluation.runner import BOX, CLICKS
from ..imageio import SEGMENTATION_SUFFIXES, Segment, write_segmentation
from ..predictor import VolumePredictor
from ..propagation import Direction
from ..volume import Axis
from .common import add_model_arguments, open_model
from .progress import progress_bar


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("evaluate", help="score box or click prompting against a reference segmentation")
    parser.add_argument("--image", required=True, type=Path)
    parser.add_argument("--label", required=True, type=Path, help="reference label image on the image's grid")
    parser.add_argument("--labels-json", type=Path, help='{"1": "spleen", ...}: names of the label values')
    parser.add_argument("--structures", help="comma-separated names (default: every structure in the reference)")
    parser.add_argument("--prompt", default=BOX, choices=(BOX, CLICKS))
    parser.add_argument("--clicks", type=int, default=5, help="clicks per structure for --prompt clicks")
    parser.add_argument("--axis", default="axial", choices=[a.value for a in Axis])
    parser.add_argument("--propagate", action="store_true", help="propagate from the prompted slice")
    parser.add_argument("--direction", default="both", choices=[d.value for d in Direction])
    parser.add_argument("--output", type=Path, help="write the segmentation (.seg.nrrd) here")
    parser.add_argument("--report", type=Path, help="write the JSON report here")
    parser.add_argument("--plot", type=Path, help="write a PNG of Dice against clicks here")
    add_model_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    check_outputs(
        [
            PlannedOutput("--output", args.output, SEGMENTATION_SUFFIXES),
            PlannedOutput("--report", args.report, (".json",)),
            PlannedOutput("--plot", args.plot, PLOT_SUFFIXES),
        ],
        inputs=[args.image, args.label, args.labels_json, args.checkpoint],
    )
    case = load_labelled_case(args.image, args.label, args.labels_json)
    names = args.structures.split(",") if args.structures else sorted(case.names.values())
    predictor = VolumePredictor(open_model(args))
    predictor.set_volume(case.volume, args.preset)
    settings = EvaluationSettings(args.prompt, args.clicks, Axis(args.axis), args.propagate, Direction(args.direction))
    reports = []
    with progress_bar("structures", total=len(names)) as bar:
        for name in names:
            reports.append(evaluate_structure(predictor, case.mask(name), name, settings))
            bar.update(1)
    for report in reports:
        print(f"{report.name:<16} 3D Dice {report.dice_3d:.3f}  IoU {report.iou_3d:.3f}  "
              f"slice Dice {report.dice_seed_slice:.3f}  slices {len(report.segmented_slices)} "
              f"({report.slices_beyond_reference} beyond the reference)  {report.seconds:.1f} s")
        for stop in report.stops:
            print(f"    {stop.direction} stopped after slice {stop.last_index}: {stop.reason}")
    with written_together() as outputs:  # the report, segmentation and plot of one run, all or none
        if args.report:
            document = {
                "image": str(args.image),
                "label": str(args.label),
                "model": predictor.model.spec.name,
                "intensity": vars(predictor.mapping),
                "settings": {"protocol": args.prompt, "clicks": args.clicks, "axis": args.axis,
                             "propagate": args.propagate, "direction": args.direction},
                "structures": {report.name: report.to_json() for report in reports},
            }
            write_text(args.report, json.dumps(document, indent=2), outputs)
        if args.output:
            write_segmentation(args.output, case.volume, [Segment(r.name, r.mask) for r in reports], outputs)
        if args.plot:
            plot_click_curves(args.plot, reports, outputs)
    for path in (args.report, args.output, args.plot):
        if path:
            print(f"wrote {path}")
    return 0
