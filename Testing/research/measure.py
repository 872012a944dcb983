"""Measure the research features on the shared abdominal CT and save dated JSON reports here.

    SAMSEGMENT_DATA_DIR=/path/to/abdomen-ct python Testing/research/measure.py [finetune priors everything registration]

Fine-tuning runs the real ``samsegment finetune`` command (LiteMedSAM on the CPU) into a
temporary models folder, then reloads the saved model to check it. CPU-heavy: a few minutes each.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch

from SAMSegmentLib.checkpoints import CheckpointStore
from SAMSegmentLib.cli import main as samsegment
from SAMSegmentLib.datasets import load_labelled_case, shared_ct_dir
from SAMSegmentLib.metrics import dice
from SAMSegmentLib.models import load_model
from SAMSegmentLib.predictor import VolumePredictor
from SAMSegmentLib.registry import get_spec
from SAMSegmentLib.research.automatic import GridOptions, generate_masks
from SAMSegmentLib.research.everything import segment_everything
from SAMSegmentLib.research.finetune import find_finetuned
from SAMSegmentLib.research.prior_maps import volume_prior_maps
from SAMSegmentLib.research.registration import (
    RegistrationOptions,
    mask_points,
    register_with_masks,
    transform_error,
)
from SAMSegmentLib.research.synthetic_pair import synthetic_pair
from SAMSegmentLib.volume import Axis

HERE = Path(__file__).resolve().parent
STAMP = date.today().isoformat()
STRUCTURES = ("spleen", "liver", "kidney_right", "kidney_left")


def _case():
    folder = shared_ct_dir()
    return folder, load_labelled_case(folder / "ct.nii.gz", folder / "labels.nii.gz", folder / "labels.json")


def _machine() -> dict:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_at_start": os.getloadavg(),
        "device": "cpu",
    }


def _save(name: str, report: dict) -> None:
    path = HERE / f"{STAMP}_{name}.json"
    path.write_text(json.dumps({"date": STAMP, "machine": _machine(), **report}, indent=2) + "\n")
    print(f"wrote {path}")


def measure_finetune(epochs: int = 5) -> None:
    folder, _ = _case()
    with tempfile.TemporaryDirectory() as models:
        os.environ["SAMSEGMENT_CACHE_DIR"] = models
        started = time.perf_counter()
        code = samsegment([
            "finetune", "--image", str(folder / "ct.nii.gz"), "--label", str(folder / "labels.nii.gz"),
            "--labels-json", str(folder / "labels.json"), "--structures", ",".join(STRUCTURES),
            "--epochs", str(epochs), "--val-slices", "15:30", "--name", "abdomen_decoder", "--device", "cpu",
        ])  # fmt: skip
        wall = time.perf_counter() - started
        if code != 0:
            raise SystemExit(f"samsegment finetune failed ({code})")
        store = CheckpointStore()
        spec = find_finetuned("abdomen_decoder", store)
        record = json.loads(Path(spec.extra["provenance"]).read_text())
        reloaded = load_model(spec, torch.device("cpu"), store=store)  # the saved model loads by its spec
        base = load_model(get_spec("litemedsam"), torch.device("cpu"))
        decoder_changed = any(
            not torch.equal(value, base.network.state_dict()[name])
            for name, value in reloaded.network.state_dict().items()
            if name.startswith("mask_decoder.")
        )
        encoder_same = all(
            torch.equal(value, base.network.state_dict()[name])
            for name, value in reloaded.network.state_dict().items()
            if not name.startswith("mask_decoder.")
        )
        del os.environ["SAMSEGMENT_CACHE_DIR"]
    _save(
        "finetune",
        {
            "what": "LiteMedSAM mask decoder fine-tuned on axial slices k<15 of the shared CT, validated on k>=15 "
            "(same patient), box prompts from the labels jittered +-5 px per side (validation boxes jittered once "
            "from a fixed seed) and also tight label boxes",
            "command_seconds": wall,
            "validation": record["validation"],
            "training": record["training"],
            "options": record["options"],
            "checkpoint_bytes": record["size_bytes"],
            "reloaded_with_load_model": True,
            "reloaded_decoder_differs_from_base": decoder_changed,
            "reloaded_encoders_equal_base": encoder_same,
        },
    )


def measure_priors(slices: tuple[int, ...] = (10, 15, 20)) -> None:
    _, case = _case()
    predictor = VolumePredictor(load_model(get_spec("litemedsam"), torch.device("cpu")))
    predictor.set_volume(case.volume)
    started = time.perf_counter()
    for index in slices:
        predictor.embed(Axis.AXIAL, index)
    embed_seconds = (time.perf_counter() - started) / len(slices)
    maps = volume_prior_maps(predictor, Axis.AXIAL, slices)
    organs = np.isin(case.labels, [value for value, name in case.names.items() if name in STRUCTURES])
    chosen = np.zeros(case.labels.shape, dtype=bool)
    chosen[list(slices)] = True
    _save(
        "priors",
        {
            "what": "SAMAug prior maps with LiteMedSAM (box grid at scales 0.5 and 0.25, 58 boxes per slice) on "
            "axial slices of the shared CT",
            "slices": list(slices),
            "masks_per_slice": maps.masks_per_slice,
            "seconds_per_slice_decoding_and_maps": maps.seconds_per_slice,
            "seconds_per_slice_embedding": embed_seconds,
            "mean_prior_inside_spleen_liver_kidneys": float(maps.prior[chosen & organs].mean()),
            "mean_prior_elsewhere_in_slices": float(maps.prior[chosen & ~organs].mean()),
            "fraction_of_slice_pixels_with_prior": float((maps.prior[chosen] > 0).mean()),
        },
    )


def measure_everything(first: int = 14, last: int = 16) -> None:
    _, case = _case()
    predictor = VolumePredictor(load_model(get_spec("litemedsam"), torch.device("cpu")))
    predictor.set_volume(case.volume)
    options = GridOptions()
    started = time.perf_counter()
    result = segment_everything(predictor, Axis.AXIAL, first, last, options)
    seconds = (time.perf_counter() - started) / (last - first + 1)
    best_dice = {}
    middle = (first + last) // 2
    found = generate_masks(predictor.model, predictor.embed(Axis.AXIAL, middle), options)
    for structure in STRUCTURES:
        reference = case.mask(structure)[middle]
        if reference.any():
            best_dice[structure] = max((dice(mask, reference) for mask in found.masks), default=0.0)
    _save(
        "everything",
        {
            "what": "Segment everything with LiteMedSAM on an axial slab of the shared CT (58 grid boxes per slice, "
            "predicted IoU >= 0.8, stability >= 0.75, box NMS 0.7, masks linked across slices at IoU >= 0.5)",
            "slab": [first, last],
            "masks_per_slice": result.masks_per_slice,
            "objects_in_slab": len(result.objects),
            "seconds_per_slice_including_embedding": seconds,
            "middle_slice": middle,
            "best_mask_dice_per_structure_on_middle_slice": best_dice,
        },
    )


def measure_registration() -> None:
    _, case = _case()
    rng = np.random.default_rng(0)

    def other_modality(hu: np.ndarray) -> np.ndarray:
        return 1000.0 * (1.0 - np.sqrt(np.clip((hu + 1024.0) / 2000.0, 0.0, 1.0))) + rng.normal(0.0, 10.0, hu.shape)

    runs = []
    for structure in ("liver", "spleen"):
        mask = case.mask(structure)
        pair = synthetic_pair(case.volume, mask, (3.0, -2.0, 5.0), (8.0, -5.0, 4.0), other_modality, background=-1024.0)
        points = mask_points(case.volume, mask)
        for affine in (False, True):
            for edges in (False, True):
                started = time.perf_counter()
                result = register_with_masks(
                    case.volume,
                    mask,
                    pair.moving,
                    pair.moving_mask,
                    RegistrationOptions(affine=affine, edge_refinement=edges),
                )
                error = transform_error(result.transform, pair.truth, points)
                runs.append({
                    "structure": structure, "affine": affine, "edge_refinement": edges,
                    "edge_refinement_kept": result.edge_refined, "seconds": time.perf_counter() - started,
                    "mean_error_mm": error.mean_mm, "max_error_mm": error.max_mm,
                    "rotation_error_deg": error.rotation_deg,
                    "dice_identity": result.dice_identity, "dice_centroids": result.dice_centroids,
                    "dice_masks": result.dice_masks, "dice_final": result.dice_final,
                })  # fmt: skip
    _save(
        "registration",
        {
            "what": "Synthetic pair from the shared CT (3 x 3 x 3 mm voxels): content rotated (3, -2, 5) degrees "
            "about x, y, z and moved (8, -5, 4) mm, intensities inverted and non-linear; masks are the labels "
            "moved with it. Errors at the fixed mask's voxels against the known transform",
            "runs": runs,
        },
    )


MEASUREMENTS = {
    "finetune": measure_finetune,
    "priors": measure_priors,
    "everything": measure_everything,
    "registration": measure_registration,
}

if __name__ == "__main__":
    for name in sys.argv[1:] or list(MEASUREMENTS):
        MEASUREMENTS[name]()
