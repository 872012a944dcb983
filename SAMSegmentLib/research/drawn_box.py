"""Measure the drawn-box widening (``ModelSpec.drawn_box_widenings``) on the shared labelled sets.

Every structure of each set is segmented as ``samsegment evaluate`` does it (one box on its
largest slice, propagated; the oracle: the reference's box on every slice), once with the box
decoded as drawn and once at the model's widenings, logits averaged. The embeddings are shared
with the stop-rule calibration (``--cache``), so a rerun costs decoder calls only.

    python -m SAMSegmentLib.research.drawn_box --data-root ../shared/data --out Testing/calibration/DATE_drawn_box.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from ..atomic import write_text
from ..errors import PromptError
from ..evaluation.runner import EvaluationSettings, evaluate_oracle, evaluate_structure
from ..intensity import mapping_for
from ..models import PromptableModel, load_model
from ..registry import get_spec
from .calibration_walks import SHARED_SETS, add_data_arguments, embedded_predictor, load_case

# What each set is mapped with: ``auto``'s choice for every structure of these sets but the CT's lung lobes.
PRESETS = {"abdomen-ct": "soft_tissue", "abdomen-mr": "percentile", "abdomen-ct-dicom": "soft_tissue"}
_VARIANTS = ("as_drawn", "widened")


def measure_set(model: PromptableModel, data_root: Path, dataset: str, image_name: str, cache_dir: Path) -> list[dict]:
    """Per structure of one set: one box propagated and the oracle, as drawn and widened."""
    case = load_case(data_root / dataset, image_name)
    predictor = embedded_predictor(model, dataset, case.volume, mapping_for(case.volume, PRESETS[dataset]), cache_dir)
    widened_spec = model.spec
    rows = []
    for value, name in sorted(case.names.items()):
        reference = case.labels == value
        row: dict = {"dataset": dataset, "structure": name}
        for variant in _VARIANTS:
            model.spec = (
                widened_spec if variant == "widened" else dataclasses.replace(widened_spec, drawn_box_widenings=())
            )
            try:
                one_box = evaluate_structure(predictor, reference, name, EvaluationSettings())
            except PromptError as error:
                row["unpromptable"] = str(error)
                break
            oracle = evaluate_oracle(predictor, reference, EvaluationSettings())
            row[variant] = {
                "dice_seed_slice": round(one_box.dice_seed_slice, 4),
                "one_box_dice": round(one_box.dice_3d, 4),
                "beyond": list(one_box.beyond),
                "short": list(one_box.short),
                "absent": any(stop.reason.startswith("absent") for stop in one_box.stops),
                "oracle_dice": round(oracle.dice_3d, 4),
            }
        model.spec = widened_spec
        rows.append(row)
        print(dataset, name, {v: row.get(v, {}).get("one_box_dice") for v in _VARIANTS}, flush=True)
    return rows


def summarise(rows: list[dict]) -> dict:
    """Means over the structures both variants could prompt, and the ends run past by more than one slice."""
    measured = [row for row in rows if "unpromptable" not in row]
    summary: dict = {"structures": len(measured)}
    for variant in _VARIANTS:
        results = [row[variant] for row in measured]
        summary[variant] = {
            "mean_dice_seed_slice": round(float(np.mean([r["dice_seed_slice"] for r in results])), 4),
            "mean_one_box_dice": round(float(np.mean([r["one_box_dice"] for r in results])), 4),
            "mean_oracle_dice": round(float(np.mean([r["oracle_dice"] for r in results])), 4),
            "ends_more_than_one_beyond": sum(end > 1 for r in results for end in r["beyond"]),
            "slices_beyond_total": sum(sum(r["beyond"]) for r in results),
            "seeds_judged_absent": sum(r["absent"] for r in results),
        }
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_arguments(parser)
    parser.add_argument("--model", default="litemedsam")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    torch.set_grad_enabled(False)
    model = load_model(get_spec(args.model), torch.device("cpu"))
    rows = [
        row for dataset, image in SHARED_SETS for row in measure_set(model, args.data_root, dataset, image, args.cache)
    ]
    record = {
        "date": datetime.now(timezone.utc).date().isoformat(),
        "what": "a drawn box (one box on each structure's largest axial slice; the oracle's box on every slice) decoded "
        "as drawn, and at the model's drawn_box_widenings with the logits averaged",
        "harness": "python -m SAMSegmentLib.research.drawn_box",
        "model": args.model,
        "widenings_model_pixels": list(model.spec.drawn_box_widenings),
        "intensity": PRESETS,
        "tried": {
            "seed slice 2D Dice, mean over the shared structures (tight 0.607)": {
                "one width: 1.5 / 2 / 3 / 4 / 6 px": [0.644, 0.645, 0.633, 0.631, 0.644],
                "the best-scored of 0, 2, 4, 8 px": 0.663,
                "the best-scored of 0, 1.5, 3, 6 px": 0.637,
                "logits averaged over 0, 1.5, 3 px": 0.651,
                "over 0, 2, 4 px": 0.651,
                "over 0, 1.5, 3, 6 px (chosen)": 0.659,
            },
            "the same widening also on the box carried from slice to slice": "one-box 3D Dice 0.405 against 0.413 "
            "(seed only) and 0.369 (as drawn), 22 ends more than one slice past against 18 and 17: not taken",
            "picking by predicted IoU": "rejected: which width scores best varies from run to run of widths",
            "the seed's absence judged on the averaged mask alone": "rejected: a box on plain tissue "
            "(tests/test_stop_rule_real.py) passed the edge check by 0.01 (1.11 against 1.1) and ran "
            "through the whole volume",
            "the seed's absence judged on the box as drawn alone": "rejected: abdomen-mr one box 0.407 -> 0.387 "
            "(the lung tip, 0.86 with the averaged mask, judged absent as drawn)",
            "chosen": "absent when the box as drawn shows nothing standing out (the calibrated three signals) "
            "and the averaged mask does not stand out either (contrast below the rule's floor)",
        },
        "summary": {
            "all": summarise(rows),
            **{d: summarise([r for r in rows if r["dataset"] == d]) for d, _ in SHARED_SETS},
        },
        "structures": rows,
    }
    write_text(args.out, json.dumps(record, indent=1) + "\n")
    print(json.dumps(record["summary"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
