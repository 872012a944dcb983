"""``samsegment priors``: SAM segmentation and boundary prior maps (SAMAug) as volumes for a U-Net."""

from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path

from ..atomic import PlannedOutput, check_outputs, write_text
from ..errors import SAMSegmentError
from ..imageio import read_volume
from ..intensity import mapping_for
from ..predictor import VolumePredictor
from ..research.prior_maps import (
    PRIOR_GRID_OPTIONS,
    PRIOR_MAP_FILES,
    Combine,
    Quality,
    volume_prior_maps,
    write_prior_maps,
)
from ..service.ray_jobs import RayOptions, add_ray_arguments, run_cases
from ..volume import Axis
from .common import add_model_arguments, open_model
from .progress import progress_bar
from .research_args import add_grid_arguments, grid_options, parse_slice_range


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "priors",
        help="SAM prior maps (SAMAug) as extra input channels for a segmentation network",
        description="Writes sam_prior.nrrd (masks weighted by quality), sam_boundary.nrrd (their boundaries) and "
        "sam_stacked.nrrd (image, prior, boundary as three channels) on the image's geometry. With --image-dir, "
        "for every image of a folder (one output folder each, and priors_report.json), as Ray tasks with --ray.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--image", type=Path, help="any 3D image SimpleITK reads, or a DICOM folder")
    source.add_argument("--image-dir", type=Path, help="a folder of such images (files, or DICOM subfolders)")
    parser.add_argument("--output-dir", required=True, type=Path, help="folder for the three volumes")
    parser.add_argument("--slices", help="slices a:b (a to b-1) along --axis; default: all (others stay zero)")
    parser.add_argument("--axis", default="axial", choices=[a.value for a in Axis])
    parser.add_argument("--quality", default=Quality.STABILITY.value, choices=[q.value for q in Quality])
    parser.add_argument("--combine", default=Combine.SUM.value, choices=[c.value for c in Combine])
    add_grid_arguments(parser, PRIOR_GRID_OPTIONS)
    add_model_arguments(parser)
    add_ray_arguments(parser)
    parser.set_defaults(run=run)


_IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
REPORT_FILE = "priors_report.json"


def run(args: argparse.Namespace) -> int:
    if args.image_dir is None:
        check_outputs(
            [PlannedOutput("--output-dir", args.output_dir / name) for name in PRIOR_MAP_FILES],
            inputs=[args.image, args.checkpoint],
        )
        _priors(args, args.image, args.output_dir, show_progress=True)
        return 0
    images = folder_images(args.image_dir)
    planned = [PlannedOutput("--output-dir", args.output_dir / REPORT_FILE)]
    planned += [
        PlannedOutput("--output-dir", args.output_dir / case / name) for case in images for name in PRIOR_MAP_FILES
    ]
    check_outputs(planned, inputs=[*images.values(), args.checkpoint])
    jobs = [(image, args.output_dir / case) for case, image in images.items()]
    with progress_bar("Prior maps", len(jobs), unit="case") as bar:
        results = run_cases(functools.partial(_priors_job, args), jobs, RayOptions.from_args(args), bar.update_to)
    report = {"ray": args.ray, "cases": dict(zip(images, results))}
    write_text(args.output_dir / REPORT_FILE, json.dumps(report, indent=2, default=str))
    print(f"{len(images)} cases; wrote {args.output_dir / REPORT_FILE}")
    return 0


def folder_images(folder: Path) -> dict[str, Path]:
    """The images of ``folder`` by case name (file name without its suffix; DICOM subfolders by name)."""
    if not folder.is_dir():
        raise SAMSegmentError(f"--image-dir {folder} is not a folder.")
    images: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        suffix = next((s for s in _IMAGE_SUFFIXES if path.name.lower().endswith(s)), None)
        if path.is_dir() or suffix is not None:
            images[path.name[: -len(suffix)] if suffix else path.name] = path
    if not images:
        raise SAMSegmentError(f"--image-dir {folder} holds no image ({', '.join(_IMAGE_SUFFIXES)} or DICOM folders).")
    return images


def _priors_job(args: argparse.Namespace, job: tuple[Path, Path]) -> dict[str, object]:
    return _priors(args, *job, show_progress=False)


def _priors(args: argparse.Namespace, image: Path, output_dir: Path, show_progress: bool) -> dict[str, object]:
    """One image's prior maps, written to ``output_dir``; what was made."""
    volume = read_volume(image, modality=args.modality)
    axis = Axis(args.axis)
    count = volume.slice_count(axis)
    slices = parse_slice_range(args.slices, count, "--slices") if args.slices else range(count)
    options = grid_options(args, PRIOR_GRID_OPTIONS)
    mapping = mapping_for(volume, args.intensity)
    predictor = VolumePredictor(open_model(args))
    predictor.set_volume(volume, mapping)
    quality, combine = Quality(args.quality), Combine(args.combine)
    if show_progress:
        with progress_bar(f"Prior maps ({axis.value})", len(slices), unit="slice") as bar:
            maps = volume_prior_maps(predictor, axis, slices, options, quality, combine, bar.update_to)
    else:
        maps = volume_prior_maps(predictor, axis, slices, options, quality, combine)
    written = write_prior_maps(output_dir, volume, mapping.apply(volume.array), maps)
    masks = sum(maps.masks_per_slice.values())
    if show_progress:
        print(f"{masks} masks on {len(slices)} slices, {maps.seconds_per_slice:.1f} s per slice.")
        for role, path in written.items():
            print(f"wrote {role}: {path}")
    return {
        "image": str(image),
        "masks": masks,
        "slices": len(slices),
        "seconds_per_slice": round(maps.seconds_per_slice, 2),
        "written": {role: str(path) for role, path in written.items()},
    }
