"""Evaluate prompting protocols against a reference segmentation (box and simulated clicks)."""

from .clicks import correct_with_clicks, next_click
from .protocols import box_from_reference, largest_slice
from .runner import EvaluationSettings, StructureReport, evaluate_structure

__all__ = [
    "EvaluationSettings",
    "StructureReport",
    "box_from_reference",
    "correct_with_clicks",
    "evaluate_structure",
    "largest_slice",
    "next_click",
]
