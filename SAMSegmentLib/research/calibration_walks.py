"""Walks for the stop-rule calibration: each labelled volume embedded once per intensity mapping
(kept on disk), and each structure propagated without stopping while every slice's evidence is
recorded (see ``calibration``, which judges rule variants on these records)."""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import pickle
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..cache import EmbeddingCache
from ..datasets import LabelledCase, load_labelled_case
from ..errors import PromptError
from ..intensity import IntensityMapping, mapping_for
from ..models import PromptableModel
from ..predictor import VolumePredictor
from ..propagation import (
    Direction,
    MaskCarryPropagation,
    ObjectPrompts,
    PropagationRequest,
    StopRule,
)
from ..propagation.stop_rule import SliceEvidence, robust_stats
from ..volume import Axis, Volume

AXIS = Axis.AXIAL
# The shared labelled sets: (name, image inside the set's folder, labels, names).
SHARED_SETS = (
    ("abdomen-ct", "ct.nii.gz"),
    ("abdomen-mr", "mr.nii.gz"),
    ("abdomen-ct-dicom", "dicom"),
)

Log = Callable[[str], None]  # where progress lines go (print by default)


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """``--data-root`` (the shared labelled sets) and ``--cache`` (embeddings and walks, kept between
    runs and shared by every calibration tool)."""
    parser.add_argument("--data-root", type=Path, default=Path("..") / "shared" / "data")
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path("/tmp/samsegment-calibration"),
        help="embeddings and walks kept between runs (shared by the calibration tools)",
    )


def load_case(folder: Path, image_name: str) -> LabelledCase:
    """A shared labelled set (labels read onto the image by geometry), naming only the structures
    its labels hold."""
    case = load_labelled_case(folder / image_name, folder / "labels.nii.gz", folder / "labels.json")
    present = set(np.unique(case.labels).tolist())
    return dataclasses.replace(case, names={v: n for v, n in case.names.items() if v in present})


def embedded_predictor(
    model: PromptableModel, case_name: str, volume: Volume, mapping: IntensityMapping, cache_dir: Path, log: Log = print
) -> VolumePredictor:
    """A predictor on ``volume`` whose every axial slice is embedded, loading the embeddings from
    ``cache_dir`` when an earlier run stored them there (and storing them otherwise)."""
    predictor = VolumePredictor(model, EmbeddingCache(budget_bytes=8 << 30))
    predictor.set_volume(volume, mapping, volume_key=case_name)
    path = cache_dir / f"{model.spec.name}_{case_name}_{mapping.preset}_{mapping.low:g}_{mapping.high:g}.pt"
    count = volume.slice_count(AXIS)
    if path.exists():
        stored = torch.load(path, weights_only=False)
        for index, embedding in stored.items():
            predictor.cache.put(predictor.cache_key(AXIS, index), embedding)
        return predictor
    started = time.perf_counter()
    embeddings = {index: predictor.embed(AXIS, index) for index in range(count)}
    log(f"  embedded {case_name} ({mapping.preset}) {count} slices in {time.perf_counter() - started:.0f} s")
    cache_dir.mkdir(parents=True, exist_ok=True)
    torch.save(embeddings, path.with_suffix(".tmp"))
    os.replace(path.with_suffix(".tmp"), path)
    return predictor


@dataclass
class WalkStep:
    """One slice of a walk that never stops (until the mask is empty)."""

    index: int
    area: int  # pixels of the mask
    hits: int  # pixels of the mask inside the reference
    # asdict(SliceEvidence) plus "legacy_shift"; None for an empty mask (recorded by walks before 2026-12-01)
    evidence: dict | None


@dataclass
class StructureWalk:
    """A structure's one-box propagation walked to the volume's ends, and its oracle."""

    dataset: str
    structure: str
    mapping: str
    slice_count: int
    seed: int
    seed_score: float
    seed_area: int
    seed_hits: int
    reference_voxels: int
    reference_first: int
    reference_last: int
    oracle_area: int
    oracle_hits: int
    seed_spread: float | None = None  # robust std of the seed mask's pixels (ObjectTrack.seed_spread)
    forward: list[WalkStep] = field(default_factory=list)
    backward: list[WalkStep] = field(default_factory=list)


def _legacy_shift(image01: np.ndarray, seed_mask: np.ndarray, mask: np.ndarray) -> float:
    """The intensity shift the rule used before 2026-11-29: mean difference in seed std + 0.02."""
    seed_values = image01[seed_mask]
    return abs(float(image01[mask].mean()) - float(seed_values.mean())) / (float(seed_values.std()) + 0.02)


@dataclass
class EvidenceRecorder(StopRule):
    """A stop rule that refuses nothing but an empty mask and keeps what it measured on each slice, in
    order: the shipped propagation walks past the object's end with this rule's carry (margin,
    appearance gate) and its measurements, so a variant judged on the record is judged on the walk
    the engine makes."""

    recorded: list[SliceEvidence] = field(default_factory=list)

    @classmethod
    def following(cls, rule: StopRule) -> EvidenceRecorder:
        """Records ``rule``'s evidence; never judges the prompted slice absent."""
        settings = {f.name: getattr(rule, f.name) for f in dataclasses.fields(StopRule)}
        settings.update(absent_score=-math.inf)
        return cls(**settings)

    def judge(self, evidence: SliceEvidence) -> str:
        self.recorded.append(evidence)
        return ""


def walk_structure(
    predictor: VolumePredictor,
    reference: np.ndarray,
    dataset: str,
    structure: str,
    walk_rule: StopRule,
    oracle: bool = True,
    past_end: int = 4,
) -> StructureWalk:
    """Propagate one box on the reference's largest slice in both directions with ``MaskCarryPropagation``
    carrying as ``walk_rule`` does, without stopping (up to ``past_end`` slices past the reference's
    end), recording every slice's evidence; with ``oracle`` also the reference's box on every slice."""
    from ..evaluation.protocols import box_from_reference, largest_slice

    volume = predictor.require_volume()
    present = np.nonzero(reference.any(axis=(1, 2)))[0]
    seed = largest_slice(reference, AXIS)
    oracle_area = oracle_hits = 0
    for index in present if oracle else ():
        try:
            box = box_from_reference(reference[index])
            box.validate(reference[index].shape, predictor.model.spec)
        except PromptError:  # a sliver too thin to box: the oracle segments nothing there
            continue
        found = predictor.predict(AXIS, int(index), box).mask
        oracle_area += int(found.sum())
        oracle_hits += int((found & reference[index]).sum())
    recorder = EvidenceRecorder.following(walk_rule)
    request = PropagationRequest(
        AXIS,
        seed,
        [ObjectPrompts(structure, box_from_reference(reference[seed]))],
        Direction.BOTH,
        (int(present.min()) - past_end, int(present.max()) + past_end),
    )
    results = iter(MaskCarryPropagation(predictor, request, recorder))
    # The prompted slice comes first, unless the model found nothing at the box (nothing is walked then).
    seed_result = next(results, None)
    seed_image = predictor.slice_image(AXIS, seed)
    seed_mask = seed_result.mask if seed_result is not None else np.zeros_like(reference[seed])
    walk = StructureWalk(
        dataset,
        structure,
        predictor.require_mapping().preset,
        volume.slice_count(AXIS),
        seed,
        seed_result.score if seed_result is not None else 0.0,
        int(seed_mask.sum()),
        int((seed_mask & reference[seed]).sum()),
        int(reference.sum()),
        int(present.min()),
        int(present.max()),
        oracle_area,
        oracle_hits,
        seed_spread=robust_stats(seed_image[seed_mask])[1] if seed_mask.any() else None,
    )
    for result in results:  # each accepted slice right after the recorder measured it
        evidence = asdict(recorder.recorded[-1])
        evidence["legacy_shift"] = _legacy_shift(seed_image, seed_mask, result.mask)
        steps = walk.forward if result.index > seed else walk.backward
        mask = result.mask
        steps.append(WalkStep(result.index, int(mask.sum()), int((mask & reference[result.index]).sum()), evidence))
    return walk


def annotate_seed_spread(model: PromptableModel, data_root: Path, walks: list[StructureWalk], cache_dir: Path) -> None:
    """Fill ``seed_spread`` of walks recorded before it was kept (one decoder call each)."""
    from ..evaluation.protocols import box_from_reference
    from ..propagation import StopRule

    for dataset, image in SHARED_SETS:
        missing = [w for w in walks if w.dataset == dataset and w.seed_spread is None]
        if not missing:
            continue
        case = load_case(data_root / dataset, image)
        for preset in sorted({w.mapping for w in missing}):
            predictor = embedded_predictor(model, dataset, case.volume, mapping_for(case.volume, preset), cache_dir)
            for walk in (w for w in missing if w.mapping == preset):
                seed = predictor.predict(AXIS, walk.seed, box_from_reference(case.mask(walk.structure)[walk.seed]))
                walk.seed_spread = (
                    StopRule().start(seed, predictor.slice_image(AXIS, walk.seed)).seed_spread
                    if seed.mask.any()
                    else 0.0
                )


def walk_dataset(
    model: PromptableModel,
    data_root: Path,
    dataset: str,
    image_name: str,
    preset: str,
    cache_dir: Path,
    walk_rule: StopRule,
    oracle: bool = True,
    structures: Callable[[str], bool] | None = None,
    tag: str = "",
    log: Log = print,
) -> list[StructureWalk]:
    """Walk every structure of one labelled set (or those ``structures`` accepts: a name -> bool)."""
    case = load_case(data_root / dataset, image_name)
    predictor = embedded_predictor(model, dataset, case.volume, mapping_for(case.volume, preset), cache_dir, log)
    walks = []
    for value, name in sorted(case.names.items()):
        if structures is not None and not structures(name):
            continue
        stored = cache_dir / f"walk{tag}_{model.spec.name}_{dataset}_{preset}_{name}.pkl"
        if stored.exists():
            walks.append(pickle.loads(stored.read_bytes()))
            continue
        started = time.perf_counter()
        try:
            walk = walk_structure(predictor, case.labels == value, dataset, name, walk_rule, oracle)
        except PromptError as error:  # e.g. a structure one pixel wide on its largest slice
            log(f"  skipped {dataset}/{name}: {error}")
            continue
        stored.write_bytes(pickle.dumps(walk))
        walks.append(walk)
        log(f"  walked {dataset}/{name} ({preset}) in {time.perf_counter() - started:.1f} s")
    return walks
