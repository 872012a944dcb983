"""``samsegment bench``: time the encoder, clicks, first mask and propagation; check the targets."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from ..atomic import PlannedOutput, check_outputs, write_text
from ..backends import BACKEND_CHOICES
from ..bench import BenchSettings, format_table, image_case, run_bench, synthetic_ct
from ..bench.memory import MB, peak_rss_mb
from ..bench.propagation import TIMING_ONLY_STOP_RULE
from ..cache import DEFAULT_BUDGET_BYTES
from ..device import DEVICE_CHOICES, select_device
from ..errors import SAMSegmentError
from ..intensity import PRESETS
from ..models import PromptableModel, build_network, load_model, wrap_network
from ..propagation import StopRule
from ..registry import MODELS, get_spec


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="measure encoder, click-to-mask, first-mask and propagation speed and memory",
        description="Prints a JSON report and a table of measured values against the interactive targets. "
        "Without --image it generates a 512x512 CT-like volume with one ellipsoid organ.",
    )
    parser.add_argument("--image", type=Path, help="volume to measure on (default: a synthetic CT)")
    parser.add_argument("--labels", type=Path, help="label volume of --image; the box surrounds --structure")
    parser.add_argument("--structure", help="label name to prompt (default: the largest)")
    parser.add_argument("--slices", type=int, default=64, help="slices of the synthetic CT (default: 64)")
    parser.add_argument("--model", default="litemedsam", choices=sorted(MODELS), help="model (default: litemedsam)")
    parser.add_argument("--checkpoint", type=Path, help="use this checkpoint file instead of the cached one")
    parser.add_argument(
        "--random-weights",
        action="store_true",
        help="full-size network with random weights: timings only (no download needed)",
    )
    parser.add_argument("--device", default="auto", choices=DEVICE_CHOICES, help="compute device (default: auto)")
    parser.add_argument(
        "--backend",
        default="auto",
        choices=BACKEND_CHOICES,
        help="the engine's backend; both are timed (default: auto)",
    )
    parser.add_argument("--intensity", default="auto", choices=PRESETS, help="intensity mapping (default: auto)")
    parser.add_argument("--clicks", type=int, default=40, help="prompts timed per backend (default: 40)")
    parser.add_argument("--encoder-slices", type=int, default=5, help="slices timed per encoder (default: 5)")
    parser.add_argument("--propagation-slices", type=int, default=30, help="slices propagated (default: 30)")
    parser.add_argument(
        "--cache-budget-mb",
        type=float,
        default=DEFAULT_BUDGET_BYTES / MB,
        help=f"embedding cache budget (default: {DEFAULT_BUDGET_BYTES / MB:g})",
    )
    parser.add_argument(
        "--no-service", action="store_true", help="skip the measurements through the engine service (a child process)"
    )
    parser.add_argument("--json", type=Path, help="also write the report to this file")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    for name in ("slices", "clicks", "encoder_slices", "propagation_slices"):
        if getattr(args, name) < 1:
            raise SAMSegmentError(f"--{name.replace('_', '-')} must be at least 1.")
    if args.labels is not None and args.image is None:
        raise SAMSegmentError("--labels needs --image.")
    check_outputs([PlannedOutput("--json", args.json)], inputs=[args.image, args.labels])
    baseline = peak_rss_mb()  # before the model and volume: what the rest of the process needs
    case = synthetic_ct(args.slices) if args.image is None else image_case(args.image, args.labels, args.structure)
    settings = BenchSettings(
        encoder_slices=args.encoder_slices,
        clicks=args.clicks,
        propagation_slices=args.propagation_slices,
        cache_budget_bytes=int(args.cache_budget_mb * MB),
        backend=args.backend,
        intensity=args.intensity,
        random_weights=args.random_weights,
        service=not args.no_service,
        checkpoint=args.checkpoint,
        stop_rule=TIMING_ONLY_STOP_RULE if args.random_weights else StopRule(),
    )
    report = run_bench(_model(args), case, settings, baseline_rss_mb=baseline)
    text = json.dumps(report, indent=2)
    print(text)
    print(format_table(report))
    if args.json is not None:
        write_text(args.json, text + "\n")
    return 0


def _model(args: argparse.Namespace) -> PromptableModel:
    spec = get_spec(args.model)
    try:
        device = select_device(args.device)
    except ValueError as error:
        raise SAMSegmentError(str(error)) from error
    if not args.random_weights:
        return load_model(spec, device, checkpoint=args.checkpoint)
    torch.manual_seed(0)  # the same random weights every run, so the exported graphs are reused
    return wrap_network(spec, build_network(spec), device)
