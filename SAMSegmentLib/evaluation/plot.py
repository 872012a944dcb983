"""One figure for an evaluation of one or more cases: Dice and NSD against clicks (the challenge
protocol), and each structure's one-box Dice against its oracle Dice."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..atomic import OutputSet, write_file
from .case import CaseReport, summarize

# The figure formats the plot may be written in (matplotlib picks one by the name's ending).
PLOT_SUFFIXES = (".png", ".pdf", ".svg")


def plot_evaluation(path: Path, cases: Sequence[CaseReport], outputs: OutputSet | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # no display is needed to write a file
    import matplotlib.pyplot as plt

    figure, (curves, boxes) = plt.subplots(1, 2, figsize=(10, 4), dpi=120)
    for case in cases:
        means = summarize(case.structures)
        colour = None
        if "challenge" in means:
            steps = range(len(means["challenge"]["dice"]))
            line = curves.plot(steps, means["challenge"]["dice"], marker="o", label=f"{case.case} Dice")[0]
            colour = line.get_color()
            curves.plot(
                steps, means["challenge"]["nsd"], marker="s", linestyle="--", color=colour, label=f"{case.case} NSD"
            )
        pairs = [
            (r.oracle.dice_3d, r.box.dice_3d) for r in case.structures if r.box is not None and r.oracle is not None
        ]
        if pairs:
            oracle, box = zip(*pairs)
            boxes.scatter(oracle, box, s=14, color=colour, label=case.case)
    curves.set_xlabel("corrective clicks (0: the box)")
    curves.set_ylabel("mean over structures")
    curves.set_title("challenge protocol", fontsize=9)
    boxes.plot([0, 1], [0, 1], color="grey", linewidth=0.8)
    boxes.set_xlabel("oracle Dice (reference box on every slice)")
    boxes.set_ylabel("one-box propagated Dice")
    boxes.set_title("per structure", fontsize=9)
    for axes in (curves, boxes):
        axes.set_ylim(0, 1.02)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7)
    boxes.set_xlim(0, 1.02)
    figure.tight_layout()
    try:
        # The temporary name ends with the real one, so matplotlib writes the format it asks for.
        return write_file(path, figure.savefig, outputs=outputs)
    finally:
        plt.close(figure)
