"""``samsegment priors``: SAM segmentation and boundary prior maps (SAMAug) as volumes for a U-Net."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..imageio import read_volume
from ..intensity import mapping_for
from ..predictor import VolumePredictor
from ..atomic import PlannedOutput, check_outputs
from ..research.prior_maps import (
    PRIOR_GRID_OPTIONS,
    PRIOR_MAP_FILES,
    Combine,
    Quality,
    volume_prior_maps,
    write_prior_maps,
)
from ..volume import Axis
from .common import add_model_arguments, open_model
from .progress import progress_bar
from .research_args import add_grid_arguments, grid_options, parse_slice_range


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "priors",
        help="SAM prior maps (SAMAug) as extra input channels for a segmentation network",
        description="Writes sam_prior.nrrd (masks weighted by quality), sam_boundary.nrrd (their boundaries) and "
        "sam_stacked.nrrd (image, prior, boundary as three channels) on the image's geometry.",
    )
    parser.add_argument("--image", required=True, type=Path, help="any 3D image SimpleITK reads, or a DICOM folder")
    parser.add_argument("--output-dir", required=True, type=Path, help="folder for the three volumes")
    parser.add_argument("--slices", help="slices a:b (a to b-1) along --axis; default: all (others stay zero)")
    parser.add_argument("--axis", default="axial", choices=[a.value for a in Axis])
    parser.add_argument("--quality", default=Quality.STABILITY.value, choices=[q.value for q in Quality])
    parser.add_argument("--combine", default=Combine.SUM.value, choices=[c.value for c in Combine])
    add_grid_arguments(parser, PRIOR_GRID_OPTIONS)
    add_model_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    check_outputs(
        [PlannedOutput("--output-dir", args.output_dir / name) for name in PRIOR_MAP_FILES],
        inputs=[args.image, args.checkpoint],
    )
    volume = read_volume(args.image, modality=args.modality)
    axis = Axis(args.axis)
    count = volume.slice_count(axis)
    slices = parse_slice_range(args.slices, count, "--slices") if args.slices else range(count)
    options = grid_options(args, PRIOR_GRID_OPTIONS)
    mapping = mapping_for(volume, args.preset)
    predictor = VolumePredictor(open_model(args))
    predictor.set_volume(volume, mapping)
    with progress_bar(f"Prior maps ({axis.value})", len(slices), unit="slice") as bar:
        maps = volume_prior_maps(
            predictor, axis, slices, options, Quality(args.quality), Combine(args.combine), bar.update_to
        )
    written = write_prior_maps(args.output_dir, volume, mapping.apply(volume.array), maps)
    masks = sum(maps.masks_per_slice.values())
    print(f"{masks} masks on {len(slices)} slices, {maps.seconds_per_slice:.1f} s per slice.")
    for role, path in written.items():
        print(f"wrote {role}: {path}")
    return 0
