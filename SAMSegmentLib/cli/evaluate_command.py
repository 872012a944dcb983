"""``samsegment evaluate``: score one box, the oracle and the CVPR 2025 interactive protocol on
each reference structure of one case or of a folder of cases."""

from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path

from ..atomic import PlannedOutput, check_outputs, write_text, written_together
from ..datasets import CaseFiles, find_cases
from ..errors import SAMSegmentError
from ..evaluation import CaseReport, EvaluationSettings, evaluate_case, summarize
from ..evaluation.plot import PLOT_SUFFIXES, plot_evaluation
from ..imageio import SEGMENTATION_SUFFIXES, Segment, write_segmentation
from ..metrics import NSD_TOLERANCE_MM
from ..propagation import Direction
from ..service.ray_jobs import RayOptions, add_ray_arguments, run_cases
from ..volume import Axis
from .common import add_model_arguments, model_choice, open_model
from .progress import progress_bar


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="score one box, the oracle and box + corrective clicks against reference segmentations"
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--image", type=Path, help="one case: the image (a file or a DICOM folder)")
    source.add_argument(
        "--dataset",
        type=Path,
        help="a folder of cases, one subfolder each: labels.nii.gz (or .nrrd ...), labels.json "
        "and one image file or DICOM folder",
    )
    parser.add_argument("--label", type=Path, help="with --image: the reference label image (resampled by geometry)")
    parser.add_argument(
        "--labels-json", type=Path, help='with --image: {"1": "spleen", ...}, names of the label values'
    )
    parser.add_argument("--structures", help="comma-separated names (default: every named structure)")
    parser.add_argument("--click-structures", help="comma-separated names to run the click protocol on (default: all)")
    parser.add_argument("--clicks", type=int, default=5, help="corrective clicks after the box (default: 5; 0: none)")
    parser.add_argument(
        "--tolerance-mm",
        type=float,
        default=NSD_TOLERANCE_MM,
        help=f"tolerance of the normalized surface distance (default: {NSD_TOLERANCE_MM:g} mm)",
    )
    parser.add_argument("--axis", default="axial", choices=[a.value for a in Axis])
    parser.add_argument("--direction", default="both", choices=[d.value for d in Direction])
    parser.add_argument("--output", type=Path, help="with --image: write the one-box segmentation (.seg.nrrd) here")
    parser.add_argument("--report", type=Path, help="write the JSON report here")
    parser.add_argument("--plot", type=Path, help="write a figure of Dice and NSD against clicks, one box vs oracle")
    add_model_arguments(parser)
    add_ray_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.image is not None and args.label is None:
        raise SAMSegmentError("--image needs --label, the reference segmentation.")
    if args.dataset is not None and (args.label or args.labels_json or args.output):
        raise SAMSegmentError("--label, --labels-json and --output go with --image; a --dataset folder holds its own.")
    if args.clicks < 0:
        raise SAMSegmentError("--clicks must be 0 or more.")
    if args.tolerance_mm <= 0:
        raise SAMSegmentError("--tolerance-mm must be more than 0.")
    check_outputs(
        [
            PlannedOutput("--output", args.output, SEGMENTATION_SUFFIXES),
            PlannedOutput("--report", args.report, (".json",)),
            PlannedOutput("--plot", args.plot, PLOT_SUFFIXES),
        ],
        inputs=[args.image, args.label, args.labels_json, args.dataset, args.checkpoint],
    )
    if args.dataset is not None:
        cases = find_cases(args.dataset)
    else:
        cases = [CaseFiles(args.image.name, args.image, args.label, args.labels_json)]
    settings = EvaluationSettings(Axis(args.axis), Direction(args.direction), args.clicks, args.tolerance_mm)
    structures = _names(args.structures)
    click_structures = _names(args.click_structures)
    named = set().union(*(case.structure_names() for case in cases))
    unknown = sorted((set(structures or []) | set(click_structures or [])) - named)
    if unknown:  # a misspelt name fails now, not after an hour
        raise SAMSegmentError(
            f"No case has a structure named {', '.join(unknown)}; they have: {', '.join(sorted(named))}"
        )
    # Here one model serves every case; a Ray task opens its own from the choice (models do not travel).
    model = model_choice(args) if args.ray else open_model(args)
    work = functools.partial(
        evaluate_case,
        settings=settings,
        model=model,
        intensity=args.intensity,
        structures=structures,
        click_structures=click_structures,
        keep_masks=args.output is not None,
    )
    with progress_bar("cases", total=len(cases)) as bar:
        reports: list[CaseReport] = run_cases(work, cases, RayOptions.from_args(args), bar.update_to)
    for report in reports:
        _print_case(report)
    with written_together() as outputs:  # the report, segmentation and plot of one run, all or none
        if args.report:
            document = {
                "command": "samsegment evaluate",
                "settings": {
                    "axis": args.axis,
                    "direction": args.direction,
                    "clicks": args.clicks,
                    "nsd_tolerance_mm": args.tolerance_mm,
                    "model": args.model,
                    "backend": args.backend,
                    "intensity": args.intensity,
                },
                "means": summarize([s for report in reports for s in report.structures]),
                "cases": {report.case: report.to_json() for report in reports},
            }
            write_text(args.report, json.dumps(document, indent=2), outputs)
        if args.output:
            volume = cases[0].load().volume
            write_segmentation(args.output, volume, [Segment(n, m) for n, m in reports[0].masks.items()], outputs)
        if args.plot:
            plot_evaluation(args.plot, reports, outputs)
    for path in (args.report, args.output, args.plot):
        if path:
            print(f"wrote {path}")
    return 0


def _names(text: str | None) -> list[str] | None:
    return [name.strip() for name in text.split(",") if name.strip()] if text else None


def _print_case(report: CaseReport) -> None:
    print(f"{report.case}: {report.slices_embedded} slices embedded, {report.seconds:.0f} s")
    for result in report.structures:
        if result.box is None or result.oracle is None:
            print(f"  {result.name:<28} {result.status}: {result.reason}")
            continue
        box = result.box
        clicks = ""
        if result.challenge is not None:
            steps = result.challenge.steps
            clicks = f"  clicks 0->{len(steps) - 1}: Dice {steps[0].dice:.3f}->{steps[-1].dice:.3f}"
        widened = f" ({result.oracle_margin.dice_3d:.3f} with margin)" if result.oracle_margin else ""
        print(
            f"  {result.name:<28} one box {box.dice_3d:.3f} (NSD {box.nsd:.3f})  oracle {result.oracle.dice_3d:.3f}{widened}  "
            f"beyond {box.beyond[0]}/{box.beyond[1]}  short {box.short[0]}/{box.short[1]}{clicks}"
        )
