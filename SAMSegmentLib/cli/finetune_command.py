"""``samsegment finetune``: fine-tune a model's mask decoder on labelled volumes and save it as a new model."""

from __future__ import annotations

import argparse
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from ..checkpoints import CheckpointStore, sha256_of
from ..datasets import LabelledCase, load_labelled_case
from ..errors import SAMSegmentError
from ..research.finetune import (
    FinetuneOptions,
    ValidationSplit,
    case_label_values,
    check_new_name,
    finetune_on_volumes,
    save_finetuned,
)
from ..research.finetune.provenance import finetune_provenance
from ..volume import Axis
from .common import add_model_arguments, open_model
from .progress import progress_bar
from .research_args import parse_slice_range


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "finetune",
        help="fine-tune the mask decoder on labelled volumes and save it as a new model",
        description="Trains only the mask decoder (the image and prompt encoders stay frozen) on 2D slices with "
        "box prompts from the labels, and saves the whole model with a provenance file into the models folder. "
        "Give --image/--label once per labelled volume.",
    )
    parser.add_argument("--image", required=True, action="append", type=Path, help="a labelled image (repeatable)")
    parser.add_argument("--label", required=True, action="append", type=Path, help="its label volume (repeatable)")
    parser.add_argument(
        "--labels-json", action="append", type=Path, default=[], help="label value -> name JSON (once, or per image)"
    )
    parser.add_argument("--structures", required=True, help="structures to train on: names or label values, a,b,c")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--val-slices", help="slices a:b of every image held out for validation")
    parser.add_argument("--val-cases", help="images held out for validation, by position from 0: 2,3")
    parser.add_argument("--name", required=True, help="name of the new model")
    parser.add_argument("--overwrite", action="store_true", help="replace a fine-tuned model of that name")
    parser.add_argument("--axis", default="axial", choices=[a.value for a in Axis])
    parser.add_argument("--learning-rate", type=float, default=FinetuneOptions.learning_rate)
    parser.add_argument("--box-jitter", type=float, default=FinetuneOptions.box_jitter_px, help="pixels")
    parser.add_argument("--seed", type=int, default=FinetuneOptions.seed)
    add_model_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    store = CheckpointStore()
    check_new_name(args.name, store, args.overwrite)  # before any slow work
    options = FinetuneOptions(
        epochs=args.epochs, learning_rate=args.learning_rate, box_jitter_px=args.box_jitter, seed=args.seed
    )
    axis = Axis(args.axis)
    cases = _load_cases(args)
    split = _split(args, cases, axis)
    structures = [part.strip() for part in args.structures.split(",") if part.strip()]
    case_label_values(structures, cases)  # a typo fails here, before the model loads
    model = open_model(args)
    with ExitStack() as bars:
        shown: dict[str, Any] = {}  # the progress bar of each stage

        def show(done: int, total: int, stage: str = "") -> None:
            if stage not in shown:
                for earlier in shown.values():
                    earlier.close()
                shown[stage] = bars.enter_context(progress_bar(stage, total, unit="step"))
            shown[stage].update_to(done, total)

        outcome = finetune_on_volumes(model, cases, structures, split, options, axis, args.intensity, progress=show)
    report = outcome.report
    data = [_data_record(args, number) for number in range(len(cases))]
    provenance = finetune_provenance(outcome, data, structures, split, options, axis, args.intensity)
    spec = save_finetuned(model, args.name, provenance, store, args.overwrite)
    print(f"Validation Dice ({split.describe()}, {report.validation_masks} masks), before -> after:")
    print(f"  {'':<16} {'boxes jittered ' + format(options.box_jitter_px, 'g') + ' px':>24} {'tight boxes':>18}")
    for structure in report.before.per_structure:
        jittered = f"{report.before.per_structure[structure]:.3f} -> {report.after.per_structure[structure]:.3f}"
        tight = (
            f"{report.tight_before.per_structure[structure]:.3f} -> {report.tight_after.per_structure[structure]:.3f}"
        )
        print(f"  {structure:<16} {jittered:>24} {tight:>18}")
    jittered = f"{report.before.mean:.3f} -> {report.after.mean:.3f}"
    tight = f"{report.tight_before.mean:.3f} -> {report.tight_after.mean:.3f}"
    print(f"  {'mean':<16} {jittered:>24} {tight:>18}")
    print(f"Saved {spec.name} to {store.cached_path(spec)} (provenance: {spec.extra['provenance']})")
    return 0


def _load_cases(args: argparse.Namespace) -> list[LabelledCase]:
    if len(args.image) != len(args.label):
        raise SAMSegmentError(f"Give one --label per --image ({len(args.image)} images, {len(args.label)} labels).")
    if len(args.labels_json) not in (0, 1, len(args.image)):
        raise SAMSegmentError("Give --labels-json once for every image, or once per image.")
    cases = []
    for number, (image, labels) in enumerate(zip(args.image, args.label)):
        case = load_labelled_case(image, labels, _names_file(args, number))
        if args.modality:
            case.volume.modality = args.modality
        cases.append(case)
    return cases


def _names_file(args: argparse.Namespace, number: int) -> Path | None:
    if not args.labels_json:
        return None
    return args.labels_json[0] if len(args.labels_json) == 1 else args.labels_json[number]


def _split(args: argparse.Namespace, cases: list[LabelledCase], axis: Axis) -> ValidationSplit:
    count = max(case.volume.slice_count(axis) for case in cases)
    slices = parse_slice_range(args.val_slices, count, "--val-slices") if args.val_slices else None
    held_cases: frozenset[int] = frozenset()
    if args.val_cases:
        try:
            held_cases = frozenset(int(part) for part in args.val_cases.split(","))
        except ValueError:
            raise SAMSegmentError(f"--val-cases '{args.val_cases}' must be image positions like 0,2.") from None
        if not held_cases <= set(range(len(cases))):
            raise SAMSegmentError(f"--val-cases '{args.val_cases}': there are only images 0 to {len(cases) - 1}.")
    return ValidationSplit(slices, held_cases)


def _data_record(args: argparse.Namespace, number: int) -> dict[str, str]:
    image, labels = args.image[number].resolve(), args.label[number].resolve()
    record = {"image": str(image), "image_sha256": sha256_of(image) if image.is_file() else "", "labels": str(labels)}
    record["labels_sha256"] = sha256_of(labels)
    names = _names_file(args, number)
    if names is not None:
        record["labels_json"] = str(names.resolve())
    return record
