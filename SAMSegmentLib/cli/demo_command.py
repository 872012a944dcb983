"""``samsegment demo``: the main job on the embedded default model, with no arguments."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from ..datasets import DATA_DIR_ENV, load_labelled_case, shared_ct_dir
from ..imageio import Segment, write_segmentation
from ..metrics import dice
from ..models import load_model
from ..predictor import VolumePredictor
from ..prompts import Prompts
from ..registry import get_spec
from ..volume import Axis
from .overlay import write_overlay_png

DEMO_STRUCTURES = ("spleen", "liver", "kidney_right", "kidney_left")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="segment organs of the shared abdominal CT with LiteMedSAM")
    parser.add_argument("--output-dir", type=Path, default=Path("out") / "demo")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    data = shared_ct_dir()
    if not (data / "ct.nii.gz").exists():
        print(f"The demo CT is not at {data}; set {DATA_DIR_ENV} to the folder holding ct.nii.gz and labels.nii.gz.")
        return 1
    case = load_labelled_case(data / "ct.nii.gz", data / "labels.nii.gz", data / "labels.json")
    model = load_model(get_spec("litemedsam"), torch.device("cpu"))
    predictor = VolumePredictor(model)
    predictor.set_volume(case.volume)
    print(f"LiteMedSAM (embedded) on {data / 'ct.nii.gz'}, {predictor.mapping.preset} window; "
          "one box per organ from the reference, on the slice where the organ is largest:")
    segments, slice_masks = [], []
    for name in DEMO_STRUCTURES:
        reference = case.mask(name)
        index = int(np.argmax(reference.sum(axis=(1, 2))))
        ys, xs = np.nonzero(reference[index])
        started = time.perf_counter()
        prediction = predictor.predict(Axis.AXIAL, index, Prompts(box=(xs.min(), ys.min(), xs.max(), ys.max())))
        seconds = time.perf_counter() - started
        mask = np.zeros(reference.shape, dtype=bool)
        mask[index] = prediction.mask
        segments.append(Segment(name, mask))
        slice_masks.append((index, prediction.mask))
        print(f"  {name:<13} slice {index:>2}: Dice {dice(prediction.mask, reference[index]):.3f}  ({seconds:.1f} s)")
    output = write_segmentation(args.output_dir / "demo.seg.nrrd", case.volume, segments)
    index = slice_masks[0][0]
    png = args.output_dir / "demo.png"
    write_overlay_png(png, predictor.slice_image(Axis.AXIAL, index), [m for k, m in slice_masks if k == index])
    print(f"wrote {output} (open it in 3D Slicer over the CT) and {png}")
    return 0
