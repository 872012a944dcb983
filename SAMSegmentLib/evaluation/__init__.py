"""Evaluate prompting protocols against a reference segmentation: one box, the oracle, and the
CVPR 2025 interactive challenge's box and corrective clicks."""

from .case import CaseReport, StructureResult, evaluate_case, summarize
from .clicks import Click, correct_with_clicks, next_click
from .protocols import box_from_reference, largest_slice, middle_slice
from .runner import (
    ChallengeReport,
    EvaluationSettings,
    OracleReport,
    StructureReport,
    evaluate_challenge,
    evaluate_oracle,
    evaluate_structure,
)

__all__ = [
    "CaseReport",
    "ChallengeReport",
    "Click",
    "EvaluationSettings",
    "OracleReport",
    "StructureReport",
    "StructureResult",
    "box_from_reference",
    "correct_with_clicks",
    "evaluate_case",
    "evaluate_challenge",
    "evaluate_oracle",
    "evaluate_structure",
    "largest_slice",
    "middle_slice",
    "next_click",
    "summarize",
]
